package bridge_test

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/acommgo/acomm"
	"github.com/acommgo/acomm/bridge"
)

// serveGreetings runs a local service on ul: it acknowledges each request
// and answers it with a greeting for the name in its args.
func serveGreetings(ul *acomm.UnixListener, wg *sync.WaitGroup) {
	defer wg.Done()
	for conn := ul.NextConn(); conn != nil; conn = ul.NextConn() {
		req := &acomm.Request{}
		if acomm.UnmarshalConnData(conn, req) == nil && acomm.SendConnData(conn, &acomm.Response{ID: req.ID}) == nil {
			var name string
			_ = req.UnmarshalArgs(&name)
			resp, _ := acomm.NewResponse(req, "hello, "+name, nil, nil)
			_ = req.Respond(resp)
		}
		ul.DoneConn(conn)
	}
}

// ExampleBridge puts a bridge in front of a local service: an external
// caller POSTs a request over HTTP, and the answer arrives at the caller's
// HTTP response hook.
func Example() {
	dir, err := os.MkdirTemp("", "acomm-bridge")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The local service, on a unix socket.
	svc := acomm.NewUnixListener(filepath.Join(dir, "greet.sock"), 0)
	if err := svc.Start(); err != nil {
		log.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go serveGreetings(svc, &wg)
	defer wg.Wait()
	defer svc.Stop(0)

	// The bridge: its tracker offers streams at the bridge's /stream.
	web := httptest.NewUnstartedServer(nil)
	base := "http://" + web.Listener.Addr().String()
	streamURL, _ := url.Parse(base + "/stream")
	tracker, err := acomm.NewTracker(filepath.Join(dir, "bridge.sock"), streamURL, 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := tracker.Start(); err != nil {
		log.Fatal(err)
	}
	defer tracker.Stop()
	route, err := bridge.ParseRoute("greet=unix://" + svc.Addr())
	if err != nil {
		log.Fatal(err)
	}
	br, err := bridge.New(tracker, route)
	if err != nil {
		log.Fatal(err)
	}
	br.Token = "s3cret"
	web.Config = bridge.NewHTTPServer("", br.Handler())
	web.Start()
	defer web.Close()

	// The external caller's response hook.
	answers := make(chan *acomm.Response, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp := &acomm.Response{}
		if err := json.NewDecoder(r.Body).Decode(resp); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		answers <- resp
		_ = json.NewEncoder(w).Encode(&acomm.Response{ID: resp.ID})
	}))
	defer hook.Close()

	// The external caller speaks plain HTTP.
	body := `{"id":"req-1","task":"greet","responsehook":"` + hook.URL + `/hook","args":"world"}`
	post, _ := http.NewRequest(http.MethodPost, base+"/requests", strings.NewReader(body))
	post.Header.Set("Authorization", "Bearer s3cret")
	post.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 10 * time.Second}
	ack, err := client.Do(post)
	if err != nil {
		log.Fatal(err)
	}
	var ackBody json.RawMessage
	_ = json.NewDecoder(ack.Body).Decode(&ackBody)
	ack.Body.Close()
	fmt.Println(ack.Status, string(ackBody))

	answer := <-answers
	var greeting string
	_ = answer.UnmarshalResult(&greeting)
	fmt.Println(answer.ID, greeting)
	// Output:
	// 200 OK {"id":"req-1","result":null,"stream_url":null,"error":"","features":["cancel"]}
	// req-1 hello, world
}
