package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/acommgo/acomm/bridge"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bridgeClient is the external caller's HTTP client.
var bridgeClient = &http.Client{Timeout: 10 * time.Second}

// bridgeService starts a unix service written with the seed API
// (UnixListener, UnmarshalConnData, SendConnData, Respond): it acknowledges
// each request and answers it with fn's response (nil: no answer). It
// returns the service's URL and is stopped at cleanup.
func bridgeService(t testing.TB, fn func(*acomm.Request) *acomm.Response) *url.URL {
	t.Helper()
	ul := acomm.NewUnixListener(sockPath(t, "svc.sock"), 0)
	require.NoError(t, ul.Start())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for conn := ul.NextConn(); conn != nil; conn = ul.NextConn() {
			wg.Add(1)
			go func(conn net.Conn) {
				defer wg.Done()
				defer ul.DoneConn(conn)
				for {
					req := &acomm.Request{}
					if acomm.UnmarshalConnData(conn, req) != nil {
						return
					}
					if acomm.SendConnData(conn, &acomm.Response{ID: req.ID}) != nil {
						return
					}
					if resp := fn(req); resp != nil {
						wg.Add(1)
						go func() {
							defer wg.Done()
							_ = req.Respond(resp)
						}()
					}
				}
			}(conn)
		}
	}()
	t.Cleanup(func() {
		ul.Stop(0)
		wg.Wait()
	})
	return ul.URL()
}

// bridgeRefusingService starts a unix service that acknowledges every
// request with reason, refusing it.
func bridgeRefusingService(t testing.TB, reason error) *url.URL {
	t.Helper()
	ul := acomm.NewUnixListener(sockPath(t, "busy.sock"), 0)
	require.NoError(t, ul.Start())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for conn := ul.NextConn(); conn != nil; conn = ul.NextConn() {
			req := &acomm.Request{}
			if acomm.UnmarshalConnData(conn, req) == nil {
				_ = acomm.SendConnData(conn, &acomm.Response{ID: req.ID, Error: reason})
			}
			ul.DoneConn(conn)
		}
	}()
	t.Cleanup(func() {
		ul.Stop(0)
		<-done
	})
	return ul.URL()
}

// bridgeEcho answers with the request's args.
func bridgeEcho(req *acomm.Request) *acomm.Response {
	var v json.RawMessage
	if req.Args != nil {
		v = *req.Args
	}
	resp, _ := acomm.NewResponse(req, v, nil, nil)
	return resp
}

// bridgeEnv is a bridge served over HTTP in front of its tracker.
type bridgeEnv struct {
	tr   *acomm.Tracker
	b    *bridge.Bridge
	base string // the bridge's base URL
}

// newBridgeEnv starts a tracker whose HTTP stream URL is the bridge's
// /stream and a bridge for it, configured by configure, on an httptest
// server; the server is closed, then the tracker stopped, at cleanup.
func newBridgeEnv(t testing.TB, configure func(*bridge.Bridge), routes ...bridge.Route) *bridgeEnv {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	streamURL, err := url.Parse(base + "/stream")
	require.NoError(t, err)
	tr := newTracker(t, streamURL, 5*time.Second)
	b, err := bridge.New(tr, routes...)
	require.NoError(t, err)
	if configure != nil {
		configure(b)
	}
	srv.Config = bridge.NewHTTPServer("", b.Handler())
	srv.Start()
	t.Cleanup(func() { _ = shutdownBridge(b, 200*time.Millisecond) }) // after the server's Close
	t.Cleanup(srv.Close)                                              // runs before the tracker's Stop
	return &bridgeEnv{tr: tr, b: b, base: base}
}

// bridgeHook is an external caller's response hook.
type bridgeHook struct {
	url string
	got chan *acomm.Response
}

// newBridgeHook serves a response hook that passes each response it
// receives to got and acknowledges it.
func newBridgeHook(t testing.TB) *bridgeHook {
	t.Helper()
	h := &bridgeHook{got: make(chan *acomm.Response, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp := &acomm.Response{}
		if err := json.NewDecoder(r.Body).Decode(resp); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.got <- resp
		_ = json.NewEncoder(w).Encode(&acomm.Response{ID: resp.ID})
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL + "/hook"
	return h
}

// bridgeReply is an HTTP answer, read in full.
type bridgeReply struct {
	status int
	header http.Header
	body   []byte
}

// bridgeDo makes an HTTP request with token as a bearer token (none when
// empty).
func bridgeDo(t testing.TB, method, u, token string, body io.Reader) bridgeReply {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := bridgeClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return bridgeReply{status: resp.StatusCode, header: resp.Header, body: b}
}

// bridgePost POSTs body as JSON.
func bridgePost(t testing.TB, u, token, body string) bridgeReply {
	t.Helper()
	return bridgeDo(t, http.MethodPost, u, token, strings.NewReader(body))
}

// requireBridgeError checks that r is a JSON error with status code and
// returns its message.
func requireBridgeError(t testing.TB, r bridgeReply, code int) string {
	t.Helper()
	require.Equal(t, code, r.status, "body: %s", r.body)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	var e struct {
		Error string `json:"error"`
	}
	require.NoError(t, json.Unmarshal(r.body, &e), "body: %s", r.body)
	assert.NotEmpty(t, e.Error)
	return e.Error
}

// requireBridgeAck checks that r acknowledges request id the way a unix
// socket does.
func requireBridgeAck(t testing.TB, r bridgeReply, id string) {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	var raw map[string]any
	require.NoError(t, json.Unmarshal(r.body, &raw), "body: %s", r.body)
	assert.Equal(t, id, raw["id"])
	assert.Equal(t, "", raw["error"])
	ack := &acomm.Response{}
	require.NoError(t, json.Unmarshal(r.body, ack))
	assert.NoError(t, ack.Error)
}

// bridgeRequestJSON returns the wire JSON of a new request.
func bridgeRequestJSON(t testing.TB, task, hook string, args any) (string, *acomm.Request) {
	t.Helper()
	req, err := acomm.NewRequest(task, hook, args, nil, nil)
	require.NoError(t, err)
	b, err := json.Marshal(req)
	require.NoError(t, err)
	return string(b), req
}

// mustURL parses u.
func mustURL(t testing.TB, u string) *url.URL {
	t.Helper()
	p, err := url.Parse(u)
	require.NoError(t, err)
	return p
}

// withUser returns u with basic authentication credentials, which carry a
// bridge token through APIs that take only a URL.
func withUser(t testing.TB, u, password string) *url.URL {
	t.Helper()
	p, err := url.Parse(u)
	require.NoError(t, err)
	p.User = url.UserPassword("acomm", password)
	return p
}

func TestBridgeRequest(t *testing.T) {
	hook := newBridgeHook(t)
	svc := bridgeService(t, bridgeEcho)
	env := newBridgeEnv(t, func(b *bridge.Bridge) { b.Token = "s3cret" }, bridge.Route{Pattern: "echo", Addr: svc})

	body, req := bridgeRequestJSON(t, "echo", hook.url, map[string]int{"n": 7})
	requireBridgeAck(t, bridgePost(t, env.base+"/requests", "s3cret", body), req.ID)

	got := waitFor(t, hook.got, 5*time.Second, "answer at the hook")
	require.NoError(t, got.Error)
	assert.Equal(t, req.ID, got.ID)
	assert.Nil(t, got.StreamURL)
	var out map[string]int
	require.NoError(t, got.UnmarshalResult(&out))
	assert.Equal(t, 7, out["n"])
	assert.Equal(t, 0, env.tr.NumRequests())

	t.Run("acomm.Send over http", func(t *testing.T) {
		req, err := acomm.NewRequest("echo", hook.url, "hi", nil, nil)
		require.NoError(t, err)
		require.NoError(t, acomm.Send(withUser(t, env.base+"/requests", "s3cret"), req))
		got := waitFor(t, hook.got, 5*time.Second, "answer at the hook")
		assert.Equal(t, req.ID, got.ID)
		var s string
		require.NoError(t, got.UnmarshalResult(&s))
		assert.Equal(t, "hi", s)
	})
	t.Run("acomm.Send sees refusals", func(t *testing.T) {
		req, err := acomm.NewRequest("nope", hook.url, nil, nil, nil)
		require.NoError(t, err)
		err = acomm.Send(withUser(t, env.base+"/requests", "s3cret"), req)
		assert.ErrorIs(t, err, acomm.ErrHTTPStatus)
		assert.ErrorContains(t, err, "404")
	})
}

func TestBridgeTaskError(t *testing.T) {
	hook := newBridgeHook(t)
	svc := bridgeService(t, func(req *acomm.Request) *acomm.Response {
		resp, _ := acomm.NewResponse(req, nil, nil, errors.New("disk full"))
		return resp
	})
	env := newBridgeEnv(t, nil, bridge.Route{Pattern: "disk.*", Addr: svc})

	body, req := bridgeRequestJSON(t, "disk.create", hook.url, nil)
	requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), req.ID)
	got := waitFor(t, hook.got, 5*time.Second, "answer at the hook")
	assert.Equal(t, req.ID, got.ID)
	require.Error(t, got.Error)
	assert.Equal(t, "disk full", got.Error.Error())
	assert.Nil(t, got.Result)
}

func TestBridgeTimeout(t *testing.T) {
	hook := newBridgeHook(t)
	svc := bridgeService(t, func(*acomm.Request) *acomm.Response { return nil })
	env := newBridgeEnv(t, func(b *bridge.Bridge) { b.Timeout = 20 * time.Millisecond }, bridge.Route{Pattern: "*", Addr: svc})

	body, req := bridgeRequestJSON(t, "slow", hook.url, nil)
	requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), req.ID)
	got := waitFor(t, hook.got, 5*time.Second, "timeout at the hook")
	assert.Equal(t, req.ID, got.ID)
	assert.ErrorIs(t, got.Error, acomm.ErrTimeout)
}

func TestBridgeStream(t *testing.T) {
	hook := newBridgeHook(t)
	// The service has its own tracker, as if in its own process: its
	// stream reaches the bridge only through the response.
	svcTracker := newTracker(t, nil, 5*time.Second)
	svc := bridgeService(t, func(req *acomm.Request) *acomm.Response {
		su, err := svcTracker.NewStreamUnix("", io.NopCloser(strings.NewReader("streamed bytes")))
		if err != nil {
			resp, _ := acomm.NewResponse(req, nil, nil, err)
			return resp
		}
		resp, _ := acomm.NewResponse(req, "see stream", su, nil)
		return resp
	})
	env := newBridgeEnv(t, func(b *bridge.Bridge) { b.Token = "s3cret" }, bridge.Route{Pattern: "dump", Addr: svc})

	body, req := bridgeRequestJSON(t, "dump", hook.url, nil)
	requireBridgeAck(t, bridgePost(t, env.base+"/requests", "s3cret", body), req.ID)
	got := waitFor(t, hook.got, 5*time.Second, "answer at the hook")
	require.NoError(t, got.Error)
	require.NotNil(t, got.StreamURL)
	streamURL := got.StreamURL.String()
	assert.True(t, strings.HasPrefix(streamURL, env.base+"/stream?addr=unix"), streamURL)

	r := bridgeDo(t, http.MethodGet, streamURL, "", nil)
	requireBridgeError(t, r, http.StatusUnauthorized)
	r = bridgeDo(t, http.MethodHead, streamURL, "s3cret", nil)
	require.Equal(t, http.StatusOK, r.status, "HEAD does not use the stream up")

	r = bridgeDo(t, http.MethodGet, streamURL, "s3cret", nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	assert.Equal(t, "streamed bytes", string(r.body))
	assert.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))

	requireBridgeError(t, bridgeDo(t, http.MethodGet, streamURL, "s3cret", nil), http.StatusNotFound)
	assert.Equal(t, http.StatusNotFound, bridgeDo(t, http.MethodHead, streamURL, "s3cret", nil).status)
	// acomm.Stream reaches it with the token in the URL, and sees the 404.
	err := acomm.Stream(io.Discard, withUser(t, streamURL, "s3cret"))
	assert.ErrorIs(t, err, acomm.ErrHTTPStatus)
	assert.ErrorContains(t, err, "404")
}

// TestBridgeStreamScope checks that a bridge serves only the streams its
// own tracker announced, and leaves the others alone.
func TestBridgeStreamScope(t *testing.T) {
	env := newBridgeEnv(t, nil)
	other := newTracker(t, nil, 5*time.Second)
	su, err := other.NewStreamUnix("", io.NopCloser(strings.NewReader("not yours")))
	require.NoError(t, err)
	viaBridge := env.base + "/stream?addr=" + url.QueryEscape(su.String())

	assert.Equal(t, http.StatusNotFound, bridgeDo(t, http.MethodHead, viaBridge, "", nil).status)
	requireBridgeError(t, bridgeDo(t, http.MethodGet, viaBridge, "", nil), http.StatusNotFound)

	// Still announced: the process-wide handler serves it.
	ps := httptest.NewServer(http.HandlerFunc(acomm.ProxyStreamHandler))
	t.Cleanup(ps.Close)
	r := bridgeDo(t, http.MethodGet, ps.URL+"/stream?addr="+url.QueryEscape(su.String()), "", nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	assert.Equal(t, "not yours", string(r.body))

	t.Run("refusals", func(t *testing.T) {
		for _, tt := range []struct {
			name, method, query string
			want                int
		}{
			{"missing addr", http.MethodGet, "", http.StatusBadRequest},
			{"malformed addr", http.MethodGet, "?addr=%25zz", http.StatusBadRequest},
			{"not unix", http.MethodGet, "?addr=" + url.QueryEscape("http://example.com/x"), http.StatusForbidden},
			{"never announced", http.MethodGet, "?addr=" + url.QueryEscape("unix:///tmp/nothing.sock"), http.StatusNotFound},
			{"wrong method", http.MethodPost, "?addr=" + url.QueryEscape(su.String()), http.StatusMethodNotAllowed},
		} {
			t.Run(tt.name, func(t *testing.T) {
				requireBridgeError(t, bridgeDo(t, tt.method, env.base+"/stream"+tt.query, "", nil), tt.want)
			})
		}
	})
}

// TestBridgeStreamOutlivesServerTimeouts serves a stream for longer than
// the server's read and write timeouts. It has to let real time pass: the
// source withholds its second half until well after both have elapsed.
// (Without per-write deadlines, the server's WriteTimeout cuts it off.)
func TestBridgeStreamOutlivesServerTimeouts(t *testing.T) {
	const serverTimeout = 30 * time.Millisecond
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	streamBase, err := url.Parse(base + "/stream")
	require.NoError(t, err)
	tr := newTracker(t, streamBase, 5*time.Second)
	b, err := bridge.New(tr)
	require.NoError(t, err)
	srv.Config = bridge.NewHTTPServer("", b.Handler())
	srv.Config.ReadTimeout = serverTimeout
	srv.Config.WriteTimeout = serverTimeout
	srv.Start()
	t.Cleanup(srv.Close)

	pr, pw := io.Pipe()
	t.Cleanup(func() { _ = pw.Close() })
	su, err := tr.NewStreamUnix("", pr)
	require.NoError(t, err)
	hu, err := tr.ProxyStreamHTTPURL(su)
	require.NoError(t, err)

	resp, err := bridgeClient.Get(hu.String())
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	go func() {
		_, _ = io.WriteString(pw, "first ")
		<-time.After(5 * serverTimeout)
		_, _ = io.WriteString(pw, "second")
		_ = pw.Close()
	}()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "stream cut off after %q", body)
	assert.Equal(t, "first second", string(body))
}

func TestBridgeRefusals(t *testing.T) {
	hook := newBridgeHook(t)
	svc := bridgeService(t, bridgeEcho)
	silent := bridgeService(t, func(*acomm.Request) *acomm.Response { return nil })
	busy := bridgeRefusingService(t, acomm.ErrBusy)
	dead := &url.URL{Scheme: "unix", Path: sockPath(t, "dead.sock")}
	const token = "s3cret"
	env := newBridgeEnv(t, func(b *bridge.Bridge) {
		b.Token = token
		b.MaxBodyBytes = 512
		b.CheckHook = func(u *url.URL) error {
			if u.Hostname() == "forbidden.example" {
				return errors.New("not that host")
			}
			return nil
		}
	},
		bridge.Route{Pattern: "echo", Addr: svc},
		bridge.Route{Pattern: "silent", Addr: silent},
		bridge.Route{Pattern: "dead", Addr: dead},
		bridge.Route{Pattern: "busy", Addr: busy},
	)
	valid, _ := bridgeRequestJSON(t, "echo", hook.url, nil)
	big := fmt.Sprintf(`{"id":"big","task":"echo","responsehook":%q,"args":%q}`, hook.url, strings.Repeat("x", 1024))
	validResp := `{"id":"unknown","result":null,"stream_url":null,"error":""}`
	boundResponses := env.tr.BindHook(mustURL(t, env.base+"/responses"), "unknown").String()

	t.Run("unauthorized", func(t *testing.T) {
		for _, path := range []string{"/requests", "/stream?addr=unix:///x.sock", "/elsewhere"} {
			for _, tok := range []string{"", "wrong", token + "x", token[:3]} {
				t.Run(path+"/"+tok, func(t *testing.T) {
					method := http.MethodPost
					if strings.HasPrefix(path, "/stream") {
						method = http.MethodGet
					}
					r := bridgeDo(t, method, env.base+path, tok, strings.NewReader(valid))
					requireBridgeError(t, r, http.StatusUnauthorized)
					challenge := r.header.Get("WWW-Authenticate")
					assert.True(t, strings.HasPrefix(challenge, "Bearer "), challenge)
					assert.Equal(t, tok != "", strings.Contains(challenge, `error="invalid_token"`), challenge)
				})
			}
		}
		t.Run("other scheme", func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, env.base+"/requests", strings.NewReader(valid))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Token "+token)
			resp, err := bridgeClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		})
	})
	t.Run("accepted credentials", func(t *testing.T) {
		for name, set := range map[string]func(*http.Request){
			"bearer":            func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) },
			"bearer lowercase":  func(r *http.Request) { r.Header.Set("Authorization", "bearer "+token) },
			"basic password":    func(r *http.Request) { r.SetBasicAuth("anyone", token) },
			"basic in url user": func(r *http.Request) { r.URL.User = url.UserPassword("acomm", token) },
		} {
			t.Run(name, func(t *testing.T) {
				req, err := http.NewRequest(http.MethodHead, env.base+"/stream?addr=unix:///x.sock", nil)
				require.NoError(t, err)
				set(req)
				resp, err := bridgeClient.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				assert.Equal(t, http.StatusNotFound, resp.StatusCode, "past the token check")
			})
		}
	})
	t.Run("responses need the capability, not the token", func(t *testing.T) {
		requireBridgeAck(t, bridgePost(t, boundResponses, "", validResp), "unknown")
		msg := requireBridgeError(t, bridgePost(t, env.base+"/responses", token, validResp), http.StatusForbidden)
		assert.Contains(t, msg, bridge.ErrUnboundResponse.Error())
	})

	chunked := func(s string) io.Reader { return io.MultiReader(strings.NewReader(s)) } // no Content-Length
	tests := []struct {
		name   string
		method string
		path   string
		body   io.Reader
		want   int
		allow  string
	}{
		{"requests: GET", http.MethodGet, "/requests", nil, http.StatusMethodNotAllowed, "POST"},
		{"requests: PUT", http.MethodPut, "/requests", strings.NewReader(valid), http.StatusMethodNotAllowed, "POST"},
		{"responses: GET", http.MethodGet, "/responses", nil, http.StatusMethodNotAllowed, "POST"},
		{"stream: POST", http.MethodPost, "/stream", nil, http.StatusMethodNotAllowed, "GET, HEAD"},
		{"unknown path", http.MethodGet, "/nothing", nil, http.StatusNotFound, ""},

		{"requests: too large", http.MethodPost, "/requests", strings.NewReader(big), http.StatusRequestEntityTooLarge, ""},
		{"requests: too large, chunked", http.MethodPost, "/requests", chunked(big), http.StatusRequestEntityTooLarge, ""},
		{"responses: too large", http.MethodPost, boundResponses[len(env.base):], chunked(`{"id":"x","result":"` + strings.Repeat("y", 1024) + `"}`), http.StatusRequestEntityTooLarge, ""},

		{"requests: invalid json", http.MethodPost, "/requests", strings.NewReader(`{"id":`), http.StatusBadRequest, ""},
		{"requests: not an object", http.MethodPost, "/requests", strings.NewReader(`[1,2]`), http.StatusBadRequest, ""},
		{"requests: empty body", http.MethodPost, "/requests", nil, http.StatusBadRequest, ""},
		{"requests: missing hook", http.MethodPost, "/requests", strings.NewReader(`{"id":"a","task":"echo"}`), http.StatusBadRequest, ""},
		{"requests: null hook", http.MethodPost, "/requests", strings.NewReader(`{"id":"a","task":"echo","responsehook":null}`), http.StatusBadRequest, ""},
		{"requests: unix hook", http.MethodPost, "/requests", strings.NewReader(`{"id":"a","task":"echo","responsehook":"unix:///run/x.sock"}`), http.StatusBadRequest, ""},
		{"requests: legacy unix hook", http.MethodPost, "/requests", strings.NewReader(`{"id":"a","task":"echo","responsehook":{"Scheme":"unix","Path":"/run/x.sock"}}`), http.StatusBadRequest, ""},
		{"requests: ftp hook", http.MethodPost, "/requests", strings.NewReader(`{"id":"a","task":"echo","responsehook":"ftp://h/x"}`), http.StatusBadRequest, ""},
		{"requests: hook without host", http.MethodPost, "/requests", strings.NewReader(`{"id":"a","task":"echo","responsehook":"http:///x"}`), http.StatusBadRequest, ""},
		{"requests: missing id", http.MethodPost, "/requests", strings.NewReader(fmt.Sprintf(`{"task":"echo","responsehook":%q}`, hook.url)), http.StatusBadRequest, ""},
		{"requests: missing task", http.MethodPost, "/requests", strings.NewReader(fmt.Sprintf(`{"id":"a","responsehook":%q}`, hook.url)), http.StatusBadRequest, ""},
		{"requests: hook refused by CheckHook", http.MethodPost, "/requests", strings.NewReader(`{"id":"a","task":"echo","responsehook":"http://forbidden.example/x"}`), http.StatusForbidden, ""},
		{"requests: hook with userinfo", http.MethodPost, "/requests", strings.NewReader(`{"id":"a","task":"echo","responsehook":"http://allowed.example@forbidden.example/x"}`), http.StatusBadRequest, ""},
		{"requests: legacy hook with opaque", http.MethodPost, "/requests", strings.NewReader(`{"id":"a","task":"echo","responsehook":{"Scheme":"http","Host":"allowed.example","Opaque":"//forbidden.example/admin"}}`), http.StatusBadRequest, ""},
		{"requests: no route", http.MethodPost, "/requests", strings.NewReader(fmt.Sprintf(`{"id":"a","task":"echo.more","responsehook":%q}`, hook.url)), http.StatusNotFound, ""},

		{"responses: invalid json", http.MethodPost, "/responses", strings.NewReader(`nope`), http.StatusBadRequest, ""},
		{"responses: missing id", http.MethodPost, "/responses", strings.NewReader(`{"result":1}`), http.StatusBadRequest, ""},
		{"responses: unix stream url", http.MethodPost, "/responses", strings.NewReader(`{"id":"x","stream_url":"unix:///etc/passwd"}`), http.StatusBadRequest, ""},
		{"responses: not bound", http.MethodPost, "/responses", strings.NewReader(`{"id":"x"}`), http.StatusForbidden, ""},
		{"responses: bound to another id", http.MethodPost, boundResponses[len(env.base):], strings.NewReader(`{"id":"x"}`), http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bridgeDo(t, tt.method, env.base+tt.path, token, tt.body)
			requireBridgeError(t, r, tt.want)
			if tt.allow != "" {
				assert.Equal(t, tt.allow, r.header.Get("Allow"))
			}
			assert.Equal(t, 0, env.tr.NumRequests(), "a refused request is not tracked")
		})
	}

	t.Run("no route error names the task", func(t *testing.T) {
		body, _ := bridgeRequestJSON(t, "disk.create", hook.url, nil)
		msg := requireBridgeError(t, bridgePost(t, env.base+"/requests", token, body), http.StatusNotFound)
		assert.Contains(t, msg, `"disk.create"`)
		assert.Contains(t, msg, acomm.ErrUnknownTask.Error())
	})
	t.Run("service unreachable", func(t *testing.T) {
		body, _ := bridgeRequestJSON(t, "dead", hook.url, nil)
		msg := requireBridgeError(t, bridgePost(t, env.base+"/requests", token, body), http.StatusBadGateway)
		assert.NotContains(t, msg, dead.Path, "the service's socket is not disclosed")
		assert.Equal(t, 0, env.tr.NumRequests(), "untracked after the failed send")
	})
	t.Run("service refuses", func(t *testing.T) {
		body, _ := bridgeRequestJSON(t, "busy", hook.url, nil)
		msg := requireBridgeError(t, bridgePost(t, env.base+"/requests", token, body), http.StatusBadGateway)
		assert.Contains(t, msg, acomm.ErrBusy.Error(), "the service's reason is passed on")
		assert.NotContains(t, msg, busy.Path)
		assert.Equal(t, 0, env.tr.NumRequests(), "untracked after the refusal")
	})
	t.Run("duplicate id", func(t *testing.T) {
		before := env.tr.NumRequests()
		body, req := bridgeRequestJSON(t, "silent", hook.url, nil)
		requireBridgeAck(t, bridgePost(t, env.base+"/requests", token, body), req.ID)
		requireBridgeError(t, bridgePost(t, env.base+"/requests", token, body), http.StatusConflict)
		assert.Equal(t, before+1, env.tr.NumRequests(), "the first is still tracked")
	})
	select {
	case r := <-hook.got:
		t.Fatalf("a refused request reached the hook: %+v", r)
	default:
	}
}

func TestBridgeNotStarted(t *testing.T) {
	tr, err := acomm.NewTracker(sockPath(t, "t.sock"), nil, 0)
	require.NoError(t, err)
	b, err := bridge.New(tr, bridge.Route{Pattern: "*", Addr: &url.URL{Scheme: "unix", Path: "/nowhere.sock"}})
	require.NoError(t, err)
	body, _ := bridgeRequestJSON(t, "x", "http://caller.example/hook", nil)
	rec := httptest.NewRecorder()
	b.RequestsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/requests", strings.NewReader(body)))
	requireBridgeError(t, bridgeReply{rec.Code, rec.Header(), rec.Body.Bytes()}, http.StatusServiceUnavailable)
}

// TestBridgeTwoMachines runs two trackers as if on two machines: A sends a
// request to B's bridge with a hook pointing at A's own /responses, B's
// service answers, and A's handler runs exactly once, as for a unix
// response. Both sides use tokens, carried in URLs.
func TestBridgeTwoMachines(t *testing.T) {
	// Machine A: a tracker and a bridge serving only its responses.
	trA := newTracker(t, nil, 5*time.Second)
	bridgeA := &bridge.Bridge{Tracker: trA, Token: "a-requests"}
	srvA := httptest.NewServer(bridgeA.Handler())
	t.Cleanup(srvA.Close)

	// Machine B: a service behind a bridge.
	svc := bridgeService(t, func(req *acomm.Request) *acomm.Response {
		var name string
		_ = req.UnmarshalArgs(&name)
		resp, _ := acomm.NewResponse(req, "hello, "+name, nil, nil)
		return resp
	})
	envB := newBridgeEnv(t, func(b *bridge.Bridge) { b.Token = "b-token" }, bridge.Route{Pattern: "greet", Addr: svc})

	var calls atomic.Int32
	done := make(chan *acomm.Response, 4)
	h := func(_ *acomm.Request, resp *acomm.Response) {
		calls.Add(1)
		done <- resp
	}
	req, err := acomm.NewRequest("greet", srvA.URL+"/responses", "A", h, h)
	require.NoError(t, err)
	req.ResponseHook = trA.BindHook(req.ResponseHook, req.ID)
	require.NoError(t, trA.TrackRequest(req, 0))
	require.NoError(t, acomm.Send(withUser(t, envB.base+"/requests", "b-token"), req))

	got := waitFor(t, done, 5*time.Second, "A's handler")
	require.NoError(t, got.Error)
	var s string
	require.NoError(t, got.UnmarshalResult(&s))
	assert.Equal(t, "hello, A", s)

	// Quiesce both machines; the handler must not run again.
	trA.Stop()
	envB.tr.Stop()
	srvA.Close()
	assert.EqualValues(t, 1, calls.Load())
	assert.Equal(t, 0, trA.NumRequests())

	t.Run("Call through a bridge with an HTTP hook", func(t *testing.T) {
		trE, err := acomm.NewTracker(sockPath(t, "e.sock"), nil, 5*time.Second)
		require.NoError(t, err)
		srvE := httptest.NewServer((&bridge.Bridge{Tracker: trE}).ResponsesHandler())
		t.Cleanup(srvE.Close)
		hookE, err := url.Parse(srvE.URL + "/responses")
		require.NoError(t, err)
		require.NoError(t, trE.Configure(acomm.WithHTTPHook(hookE)))
		require.NoError(t, trE.Start())
		t.Cleanup(trE.Stop)
		envF := newBridgeEnv(t, nil, bridge.Route{Pattern: "greet", Addr: svc})

		dest, err := url.Parse(envF.base + "/requests")
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := trE.Call(ctx, dest, "greet", "E")
		require.NoError(t, err)
		var s string
		require.NoError(t, resp.UnmarshalResult(&s))
		assert.Equal(t, "hello, E", s)

		bad, err := acomm.NewTracker(sockPath(t, "bad.sock"), nil, 0)
		require.NoError(t, err)
		assert.ErrorIs(t, bad.Configure(acomm.WithHTTPHook(&url.URL{Scheme: "unix", Path: "/x"})), acomm.ErrInvalidURL)
	})

	t.Run("hook not bound to the request", func(t *testing.T) {
		trC := newTracker(t, nil, 5*time.Second)
		bridgeC := &bridge.Bridge{Tracker: trC}
		srvC := httptest.NewServer(bridgeC.ResponsesHandler())
		t.Cleanup(srvC.Close)
		envD := newBridgeEnv(t, nil, bridge.Route{Pattern: "greet", Addr: svc})

		done := make(chan *acomm.Response, 4)
		h := func(_ *acomm.Request, resp *acomm.Response) { done <- resp }
		req, err := acomm.NewRequest("greet", srvC.URL+"/responses", "C", h, h)
		require.NoError(t, err)
		require.NoError(t, trC.TrackRequest(req, 50*time.Millisecond))
		require.NoError(t, acomm.Send(&url.URL{Scheme: "http", Host: strings.TrimPrefix(envD.base, "http://"), Path: "/requests"}, req))
		got := waitFor(t, done, 5*time.Second, "C's handler")
		assert.ErrorIs(t, got.Error, acomm.ErrTimeout, "the answer was refused, so the request timed out")
	})
}

func TestBridgeRoute(t *testing.T) {
	addr := func(name string) *url.URL { return &url.URL{Scheme: "unix", Path: "/run/" + name + ".sock"} }
	routes := []bridge.Route{
		{Pattern: "disk.*", Addr: addr("disk")},
		{Pattern: "disk.snap.*", Addr: addr("snap")},
		{Pattern: "disk.create", Addr: addr("create")},
		{Pattern: "net.up", Addr: addr("up")},
	}
	tr, err := acomm.NewTracker(sockPath(t, "t.sock"), nil, 0)
	require.NoError(t, err)
	b, err := bridge.New(tr, routes...)
	require.NoError(t, err)
	withAll, err := bridge.New(tr, append(routes, bridge.Route{Pattern: "*", Addr: addr("all")})...)
	require.NoError(t, err)

	tests := []struct {
		task    string
		want    string // socket name; "" for no match
		wantAll string // with a "*" route added
	}{
		{"disk.create", "create", "create"}, // exact beats the prefix listed before it
		{"disk.delete", "disk", "disk"},     // prefix
		{"disk.snap.list", "snap", "snap"},  // longest prefix
		{"disk.snap.", "snap", "snap"},      // the prefix itself, dot included
		{"disk.snap", "disk", "disk"},       // not under disk.snap.*
		{"disk", "", "all"},                 // the stem is not under disk.*
		{"net.up", "up", "up"},              // exact
		{"net.upper", "", "all"},            // exact patterns are not prefixes
		{"net.down", "", "all"},             // no match
		{"DISK.create", "", "all"},          // case matters
		{"", "", "all"},                     // "*" matches everything
		{"xdisk.create", "", "all"},         // prefixes anchor at the start
		{"disk.*", "disk", "disk"},          // a literal star is just a character
	}
	for _, tt := range tests {
		t.Run(tt.task, func(t *testing.T) {
			for _, c := range []struct {
				b    *bridge.Bridge
				want string
			}{{b, tt.want}, {withAll, tt.wantAll}} {
				r, ok := c.b.Route(tt.task)
				if c.want == "" {
					assert.False(t, ok, "matched %v", r)
					continue
				}
				require.True(t, ok)
				assert.Equal(t, addr(c.want).String(), r.Addr.String())
			}
		})
	}
}

func TestParseRoute(t *testing.T) {
	t.Run("valid", func(t *testing.T) {
		for in, want := range map[string]bridge.Route{
			"disk.*=unix:///run/disk.sock":  {Pattern: "disk.*", Addr: &url.URL{Scheme: "unix", Path: "/run/disk.sock"}},
			" echo = unix:///run/echo.sock": {Pattern: "echo", Addr: &url.URL{Scheme: "unix", Path: "/run/echo.sock"}},
			"*=unix:/run/all.sock":          {Pattern: "*", Addr: &url.URL{Scheme: "unix", Path: "/run/all.sock"}},
			"a=b=unix:///run/ab.sock":       {},
		} {
			t.Run(in, func(t *testing.T) {
				r, err := bridge.ParseRoute(in)
				if want.Pattern == "" {
					assert.ErrorIs(t, err, acomm.ErrInvalidArgument, "a '=' in the address is not a unix url")
					return
				}
				require.NoError(t, err)
				assert.Equal(t, want.Pattern, r.Pattern)
				assert.Equal(t, want.Addr.Path, r.Addr.Path)
				back, err := bridge.ParseRoute(r.String())
				require.NoError(t, err)
				assert.Equal(t, r.String(), back.String())
			})
		}
	})
	for _, tt := range []struct {
		in   string
		also error
	}{
		{"", nil},
		{"disk.*", nil},
		{"=unix:///run/x.sock", nil},
		{"  =unix:///run/x.sock", nil},
		{"di*sk=unix:///run/x.sock", nil},
		{"*disk=unix:///run/x.sock", nil},
		{"disk.**=unix:///run/x.sock", nil},
		{"disk=", acomm.ErrUnsupportedScheme},
		{"disk=unix://", acomm.ErrInvalidURL},
		{"disk=/run/x.sock", acomm.ErrUnsupportedScheme},
		{"disk=http://host/x", acomm.ErrUnsupportedScheme},
		{"disk=https://host/x", acomm.ErrUnsupportedScheme},
		{"disk=%zz", acomm.ErrInvalidURL},
	} {
		t.Run("invalid "+tt.in, func(t *testing.T) {
			_, err := bridge.ParseRoute(tt.in)
			require.ErrorIs(t, err, acomm.ErrInvalidArgument)
			if tt.also != nil {
				assert.ErrorIs(t, err, tt.also)
			}
		})
	}
}

func TestNewBridgeErrors(t *testing.T) {
	tr, err := acomm.NewTracker(sockPath(t, "t.sock"), nil, 0)
	require.NoError(t, err)
	ok := bridge.Route{Pattern: "a", Addr: &url.URL{Scheme: "unix", Path: "/run/a.sock"}}

	_, err = bridge.New(nil, ok)
	assert.ErrorIs(t, err, acomm.ErrInvalidArgument, "nil tracker")
	_, err = bridge.New(tr, ok, ok)
	assert.ErrorIs(t, err, acomm.ErrInvalidArgument, "pattern twice")
	_, err = bridge.New(tr, bridge.Route{Pattern: "a"})
	assert.ErrorIs(t, err, acomm.ErrInvalidArgument, "no address")
	_, err = bridge.New(tr, bridge.Route{Addr: ok.Addr})
	assert.ErrorIs(t, err, acomm.ErrInvalidArgument, "no pattern")

	routes := []bridge.Route{ok}
	b, err := bridge.New(tr, routes...)
	require.NoError(t, err)
	routes[0].Pattern = "changed"
	_, found := b.Route("a")
	assert.True(t, found, "NewBridge copies the routes")
}

func TestNewHTTPServer(t *testing.T) {
	h := http.NotFoundHandler()
	s := bridge.NewHTTPServer("127.0.0.1:0", h)
	assert.Equal(t, "127.0.0.1:0", s.Addr)
	assert.NotNil(t, s.Handler)
	assert.Positive(t, s.ReadHeaderTimeout)
	assert.Positive(t, s.ReadTimeout)
	assert.Positive(t, s.WriteTimeout)
	assert.Positive(t, s.IdleTimeout)
	assert.Positive(t, s.MaxHeaderBytes)
}

// TestBridgeSlowClient checks that a client that sends its headers and
// then stalls is cut off by the server's timeouts.
func TestBridgeSlowClient(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = bridge.NewHTTPServer("", http.NotFoundHandler())
	srv.Config.ReadHeaderTimeout = 20 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /requests HTTP/1.1\r\nHost: x\r\n") // headers never end
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.Copy(io.Discard, conn)
	assert.NoError(t, err, "the server hung up before the client's deadline")
}

func TestBridgeOnDelivery(t *testing.T) {
	hook := newBridgeHook(t)
	svc := bridgeService(t, bridgeEcho)
	delivered := make(chan error, 1)
	env := newBridgeEnv(t, func(b *bridge.Bridge) {
		b.OnDelivery = func(took time.Duration, err error) {
			assert.Positive(t, took)
			delivered <- err
		}
	}, bridge.Route{Pattern: "echo", Addr: svc})
	body, req := bridgeRequestJSON(t, "echo", hook.url, 1)
	requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), req.ID)
	waitFor(t, hook.got, 5*time.Second, "answer at the hook")
	assert.NoError(t, waitFor(t, delivered, 5*time.Second, "the delivery reported"))
}

// Issue 10 item 10: Shutdown called from OnDelivery, the bridge's one
// callback that runs on a delivery's goroutine, does not wait for that
// delivery, and returns.
func TestBridgeShutdownFromOnDelivery(t *testing.T) {
	hook := newBridgeHook(t)
	svc := bridgeService(t, bridgeEcho)
	shut := make(chan error, 1)
	env := newBridgeEnv(t, func(b *bridge.Bridge) {
		b.OnDelivery = func(time.Duration, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			shut <- b.Shutdown(ctx)
		}
	}, bridge.Route{Pattern: "echo", Addr: svc})
	body, req := bridgeRequestJSON(t, "echo", hook.url, 1)
	requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), req.ID)
	waitFor(t, hook.got, 5*time.Second, "answer at the hook")
	assert.NoError(t, waitFor(t, shut, 10*time.Second, "Shutdown from OnDelivery to return"))
}

// Each caller's ids are its own: a late answer to one caller's request
// never reaches another's request of the same id, and a cancel notice the
// bridge sends for one (its timeout) never refuses another's.
func TestBridgeCallersIDsAreTheirOwn(t *testing.T) {
	t.Run("a late answer goes to nobody else", func(t *testing.T) {
		releaseA, releaseB := make(chan struct{}), make(chan struct{})
		var onceA, onceB sync.Once
		freeA := func() { onceA.Do(func() { close(releaseA) }) }
		freeB := func() { onceB.Do(func() { close(releaseB) }) }
		t.Cleanup(freeA)
		t.Cleanup(freeB)
		srv := acomm.NewServer(sockPath(t, "s.sock"), nil)
		srv.Handle("a", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) {
			<-releaseA // works on, whatever its context says
			return "A's result", nil, nil
		})
		srv.Handle("b", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) {
			<-releaseB
			return "B's result", nil, nil
		})
		require.NoError(t, srv.Start())
		t.Cleanup(srv.Stop)
		env := newBridgeEnv(t, nil, bridge.Route{Pattern: "*", Addr: srv.URL()})
		hookA, hookB := newBridgeHook(t), newBridgeHook(t)

		requireBridgeAck(t, bridgePost(t, env.base+"/requests", "",
			`{"id":"job-7","task":"a","responsehook":"`+hookA.url+`","timeout_ms":100}`), "job-7")
		a := waitFor(t, hookA.got, 5*time.Second, "A's timeout")
		require.ErrorIs(t, a.Error, acomm.ErrTimeout)
		assert.Equal(t, "job-7", a.ID)
		assert.Contains(t, a.Error.Error(), "request job-7 ", "the error names the request as its caller does")
		// B, another caller, takes up the same id while A's handler runs.
		requireBridgeAck(t, bridgePost(t, env.base+"/requests", "",
			`{"id":"job-7","task":"b","responsehook":"`+hookB.url+`"}`), "job-7")

		freeA() // A's late answer comes back to the bridge's tracker
		require.Eventually(t, func() bool { s := srv.Stats(); return s.Responded+s.RespondFailed >= 1 },
			5*time.Second, 5*time.Millisecond, "A's late answer sent")
		freeB()
		b := waitFor(t, hookB.got, 5*time.Second, "B's answer")
		require.NoError(t, b.Error, "B's hook got A's late answer")
		assert.Equal(t, "job-7", b.ID, "answered under the caller's id")
		assert.JSONEq(t, `"B's result"`, string(*b.Result))
		select {
		case got := <-hookA.got:
			t.Errorf("A's hook got a second answer: %+v", got)
		default:
		}
	})
	t.Run("a cancel notice refuses nobody else's request", func(t *testing.T) {
		srv := acomm.NewServer(sockPath(t, "s.sock"), nil)
		srv.Handle("work", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) { return "done", nil, nil })
		require.NoError(t, srv.Start())
		t.Cleanup(srv.Stop)
		env := newBridgeEnv(t, nil, bridge.Route{Pattern: "work", Addr: srv.URL()})
		attacker, victim := newBridgeHook(t), newBridgeHook(t)
		// The bridge's tracker learns that the service takes notices.
		requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", `{"id":"warm","task":"work","responsehook":"`+attacker.url+`"}`), "warm")
		waitFor(t, attacker.got, 5*time.Second, "the warm-up")
		const n = 10
		for i := range n {
			id := "order-" + strconv.Itoa(i)
			requireBridgeAck(t, bridgePost(t, env.base+"/requests", "",
				`{"id":"`+id+`","task":"work","responsehook":"`+attacker.url+`","timeout_ms":0}`), id)
			waitFor(t, attacker.got, 5*time.Second, "the attacker's answer")
		}
		for i := range n {
			id := "order-" + strconv.Itoa(i)
			requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", `{"id":"`+id+`","task":"work","responsehook":"`+victim.url+`"}`), id)
			got := waitFor(t, victim.got, 5*time.Second, "the victim's answer")
			assert.NoError(t, got.Error, id)
		}
	})
}
