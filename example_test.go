package acomm_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acommgo/acomm"
)

// serveUpper is a service written with the seed API: it acknowledges each
// request and answers it with its args in upper case.
func serveUpper(ul *acomm.UnixListener, done chan<- struct{}) {
	defer close(done)
	for conn := ul.NextConn(); conn != nil; conn = ul.NextConn() {
		req := &acomm.Request{}
		err := acomm.UnmarshalConnData(conn, req)
		_ = acomm.SendConnData(conn, &acomm.Response{ID: req.ID, Error: err})
		ul.DoneConn(conn)
		if err != nil {
			continue
		}
		var s string
		_ = req.UnmarshalArgs(&s)
		resp, _ := acomm.NewResponse(req, strings.ToUpper(s), nil, nil)
		_ = req.Respond(resp)
	}
}

// startUpper starts serveUpper on a socket in dir and returns the listener
// and a func that stops it.
func startUpper(dir string) (*acomm.UnixListener, func()) {
	svc := acomm.NewUnixListener(filepath.Join(dir, "upper.sock"), 0)
	if err := svc.Start(); err != nil {
		panic(err)
	}
	done := make(chan struct{})
	go serveUpper(svc, done)
	return svc, func() { svc.Stop(time.Second); <-done }
}

// A tracker sends a request to a service and handles its response.
func Example() {
	dir, _ := os.MkdirTemp("", "ex")
	defer os.RemoveAll(dir)

	// The service.
	svc, stopSvc := startUpper(dir)
	defer stopSvc()

	// The caller.
	tracker, err := acomm.NewTracker(filepath.Join(dir, "caller.sock"), nil, 5*time.Second)
	if err != nil {
		panic(err)
	}
	if err := tracker.Start(); err != nil {
		panic(err)
	}
	defer tracker.Stop()

	answered := make(chan struct{})
	onSuccess := func(req *acomm.Request, resp *acomm.Response) {
		var s string
		_ = resp.UnmarshalResult(&s)
		fmt.Println("result:", s)
		close(answered)
	}
	onError := func(req *acomm.Request, resp *acomm.Response) {
		fmt.Println("error:", resp.Error)
		close(answered)
	}
	req, err := acomm.NewRequest("upper", tracker.URL().String(), "hello", onSuccess, onError)
	if err != nil {
		panic(err)
	}
	if err := tracker.TrackRequest(req, 0); err != nil {
		panic(err)
	}
	if err := acomm.Send(svc.URL(), req); err != nil {
		tracker.RemoveRequest(req)
		panic(err)
	}
	<-answered
	// Output: result: HELLO
}

// A MultiRequest fans requests out and collects the answers by name.
func ExampleMultiRequest() {
	dir, _ := os.MkdirTemp("", "ex")
	defer os.RemoveAll(dir)

	svc, stopSvc := startUpper(dir)
	defer stopSvc()

	tracker, _ := acomm.NewTracker(filepath.Join(dir, "caller.sock"), nil, 5*time.Second)
	if err := tracker.Start(); err != nil {
		panic(err)
	}
	defer tracker.Stop()

	multi := acomm.NewMultiRequest(tracker, 0)
	for _, word := range []string{"alpha", "beta", "gamma"} {
		req, _ := acomm.NewRequest("upper", tracker.URL().String(), word, nil, nil)
		if err := multi.AddRequest(word, req); err != nil {
			panic(err)
		}
		if err := acomm.Send(svc.URL(), req); err != nil {
			multi.RemoveRequest(req)
		}
	}
	resps := multi.Responses()
	for _, word := range []string{"alpha", "beta", "gamma"} {
		var s string
		_ = resps[word].UnmarshalResult(&s)
		fmt.Println(word, "->", s)
	}
	// Output:
	// alpha -> ALPHA
	// beta -> BETA
	// gamma -> GAMMA
}

// A tracker serves a large result on a one-shot unix socket; the reader
// copies it with Stream.
func ExampleTracker_NewStreamUnix() {
	dir, _ := os.MkdirTemp("", "ex")
	defer os.RemoveAll(dir)

	tracker, _ := acomm.NewTracker(filepath.Join(dir, "t.sock"), nil, 0)
	if err := tracker.Start(); err != nil {
		panic(err)
	}
	defer tracker.Stop()

	src := io.NopCloser(strings.NewReader("a large result"))
	streamURL, err := tracker.NewStreamUnix("", src)
	if err != nil {
		panic(err)
	}
	var buf bytes.Buffer
	if err := acomm.Stream(&buf, streamURL); err != nil {
		panic(err)
	}
	fmt.Println(buf.String())
	// Output: a large result
}
