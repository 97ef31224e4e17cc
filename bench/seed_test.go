package bench

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/acommgo/acomm"
)

// The cycle of the seed (original 2016) acomm API, as its users wrote it:
// NewRequest with a handler, Tracker.TrackRequest, acomm.Send to the
// service, which acknowledges the request frame and later answers with
// Respond to the tracker's socket; the tracker acknowledges the answer and
// runs the handler, which hands the response back. One op is the whole
// cycle, checked (the result must be echoPayload). The two rows differ only
// in the service:
//
//   - acomm-seed-oneshot: an original-style service (oneShotService): it
//     reads one frame per connection, acknowledges it and closes the
//     connection, then answers with Respond. Every send needs a new
//     connection, so its yardstick is floor-dial.
//   - acomm-seed-server: an acomm.Server (newEchoServer), which reads frame
//     after frame on a kept connection. Its yardstick is floor-kept.
//
// One tracker, shared by the 64 par64 goroutines.
func init() {
	echoSystems = append(echoSystems,
		echoSystem{name: "acomm-seed-oneshot", setup: func(tb testing.TB) echoClient {
			tr := newAcommTracker(tb, nil)
			return echoClient{call: seedCycle(tr, newOneShotService(tb).URL())}
		}},
		echoSystem{name: "acomm-seed-server", setup: func(tb testing.TB) echoClient {
			tr := newAcommTracker(tb, nil)
			return echoClient{call: seedCycle(tr, newEchoServer(tb, tr).URL())}
		}},
	)
}

// seedCycle returns one seed-style cycle of an "echo" request to dest
// through tr; it is safe for concurrent use.
func seedCycle(tr *acomm.Tracker, dest *url.URL) func() error {
	hook := tr.URL().String()
	args := json.RawMessage(echoPayload)
	return func() error {
		done := make(chan *acomm.Response, 1)
		h := func(_ *acomm.Request, resp *acomm.Response) { done <- resp }
		req, err := acomm.NewRequest("echo", hook, args, h, h)
		if err != nil {
			return err
		}
		if err := tr.TrackRequest(req, 0); err != nil {
			return err
		}
		if err := acomm.Send(dest, req); err != nil {
			tr.RemoveRequest(req)
			return err
		}
		// Bounded: the tracker runs the handler with an error once the
		// request's timeout (the tracker's default, a minute) has passed.
		return checkResult(<-done)
	}
}

// oneShotService emulates a service built on the original acomm: for each
// connection, it reads one request frame (UnmarshalConnData), acknowledges
// it (SendConnData of a Response carrying only the request's id, with no
// "features" of ours), closes the connection (DoneConn), then answers the
// request with Respond. It never reads a second frame from a connection.
type oneShotService struct {
	ul *acomm.UnixListener
	wg sync.WaitGroup
}

// newOneShotService starts a oneShotService on a fresh socket, stopped at
// cleanup once every connection's goroutine has returned.
func newOneShotService(tb testing.TB) *oneShotService {
	tb.Helper()
	s := &oneShotService{ul: acomm.NewUnixListener(socketPath(tb), 0)}
	if err := s.ul.Start(); err != nil {
		tb.Fatal(err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for conn := s.ul.NextConn(); conn != nil; conn = s.ul.NextConn() {
			s.wg.Add(1)
			go s.serve(conn)
		}
	}()
	tb.Cleanup(func() {
		s.ul.Stop(0)
		s.wg.Wait()
	})
	return s
}

// URL is where the service listens.
func (s *oneShotService) URL() *url.URL { return s.ul.URL() }

func (s *oneShotService) serve(conn net.Conn) {
	defer s.wg.Done()
	req := &acomm.Request{}
	err := acomm.UnmarshalConnData(conn, req)
	if err == nil {
		err = acomm.SendConnData(conn, &acomm.Response{ID: req.ID})
	}
	s.ul.DoneConn(conn)
	if err != nil {
		return
	}
	var result json.RawMessage
	if req.Args != nil {
		result = *req.Args
	}
	resp, err := acomm.NewResponse(req, result, nil, nil)
	if err != nil {
		return
	}
	_ = req.Respond(resp)
}

// TestOneShotService checks that the emulated original service behaves as
// one: it acknowledges one frame, then closes the connection without
// reading another, and answers the request at its response hook.
func TestOneShotService(t *testing.T) {
	tr := newAcommTracker(t, nil)
	svc := newOneShotService(t)
	done := make(chan *acomm.Response, 1)
	h := func(_ *acomm.Request, resp *acomm.Response) { done <- resp }
	req, err := acomm.NewRequest("echo", tr.URL().String(), json.RawMessage(echoPayload), h, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.TrackRequest(req, 0); err != nil {
		t.Fatal(err)
	}
	conn := dialUnix(t, svc.URL().Path)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := acomm.SendConnData(conn, req); err != nil {
		t.Fatal(err)
	}
	// Decoded as a map to see every field: an original service's ack
	// names no features, so our senders must not take it for one of ours.
	var ack map[string]json.RawMessage
	if err := acomm.UnmarshalConnData(conn, &ack); err != nil {
		t.Fatal(err)
	}
	var id string
	if err := json.Unmarshal(ack["id"], &id); err != nil || id != req.ID {
		t.Fatalf("ack %s for request %s", ack, req.ID)
	}
	if f, ok := ack["features"]; ok {
		t.Fatalf("the ack of an original-style service carries features %s", f)
	}
	if n, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after the ack: read %d bytes, %v; want EOF", n, err)
	}
	select {
	case resp := <-done:
		if err := checkResult(resp); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer within 10s")
	}
}
