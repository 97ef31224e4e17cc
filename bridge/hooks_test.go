package bridge_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
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

// shutdownBridge shuts b down within d and reports how it went.
func shutdownBridge(b *bridge.Bridge, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return b.Shutdown(ctx)
}

// TestBridgeHookCheckedIsDialed checks that CheckHook sees the very URL
// that is dialed, and that hooks whose parts could make them differ are
// refused before CheckHook is asked.
func TestBridgeHookCheckedIsDialed(t *testing.T) {
	hook := newBridgeHook(t)
	svc := bridgeService(t, bridgeEcho)
	var checked atomic.Pointer[url.URL]
	env := newBridgeEnv(t, func(b *bridge.Bridge) {
		b.CheckHook = func(u *url.URL) error {
			checked.Store(u)
			return nil
		}
	}, bridge.Route{Pattern: "echo", Addr: svc})

	body, req := bridgeRequestJSON(t, "echo", hook.url+"?q=1#frag", nil)
	requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), req.ID)
	waitFor(t, hook.got, 5*time.Second, "answer at the hook")
	got := checked.Load()
	require.NotNil(t, got)
	assert.Equal(t, strings.TrimSuffix(hook.url, "")+"?q=1", got.String(), "the fragment is never sent, so never checked")

	// The legacy object form with an allowed Host and an Opaque that
	// names another host used to pass CheckHook and reach the other.
	checked.Store(nil)
	for name, hookJSON := range map[string]string{
		"legacy opaque":   `{"Scheme":"http","Host":"allowed.example","Opaque":"//127.0.0.1:1/admin","Path":"/x"}`,
		"string userinfo": `"http://allowed.example@127.0.0.1:1/x"`,
		"legacy no host":  `{"Scheme":"http","Path":"/x"}`,
	} {
		t.Run(name, func(t *testing.T) {
			r := bridgePost(t, env.base+"/requests", "", `{"id":"o","task":"echo","responsehook":`+hookJSON+`}`)
			requireBridgeError(t, r, http.StatusBadRequest)
			assert.Nil(t, checked.Load(), "refused before CheckHook")
		})
	}
}

// TestBridgeHookNoRedirects checks that a hook answering with a redirect
// is not followed: the answer is POSTed once, to the hook only.
func TestBridgeHookNoRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
	}))
	t.Cleanup(target.Close)
	redirected := make(chan struct{}, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected <- struct{}{}
		http.Redirect(w, r, target.URL+"/admin", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(hook.Close)
	svc := bridgeService(t, bridgeEcho)
	env := newBridgeEnv(t, nil, bridge.Route{Pattern: "echo", Addr: svc})

	body, req := bridgeRequestJSON(t, "echo", hook.URL+"/hook", "x")
	requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), req.ID)
	waitFor(t, redirected, 5*time.Second, "the delivery")
	require.NoError(t, shutdownBridge(env.b, 5*time.Second), "the delivery is over")
	assert.Zero(t, elsewhere.Load(), "the redirect was followed")
}

// TestHookPolicy checks the default refusals and what Allow, AllowHosts
// and Deny change.
func TestHookPolicy(t *testing.T) {
	var p bridge.HookPolicy
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1", false}, {"127.1.2.3", false}, {"::1", false},
		{"169.254.169.254", false}, {"fe80::1", false},
		{"0.0.0.0", false}, {"::", false},
		{"224.0.0.1", false}, {"ff02::1", false}, {"::ffff:127.0.0.1", false},
		{"192.0.2.10", true}, {"10.1.2.3", true}, {"2001:db8::1", true},
		// The rest of 0.0.0.0/8 ("this network"), which Linux dials as
		// the local host.
		{"0.0.0.1", false}, {"0.1.2.3", false}, {"0.255.255.255", false},
		{"::ffff:0.1.2.3", false},
		// NAT64 (64:ff9b::/96) spellings of refused IPv4 addresses.
		{"64:ff9b::127.0.0.1", false}, {"64:ff9b::a9fe:a9fe", false},
		{"64:ff9b::0.1.2.3", false}, {"64:ff9b::224.0.0.1", false},
		{"64:ff9b::192.0.2.10", true},
		// IPv4-compatible (::a.b.c.d) spellings of them.
		{"::127.0.0.1", false}, {"::169.254.169.254", false},
		{"::0.1.2.3", false}, {"::224.0.0.1", false},
		{"::192.0.2.10", true},
	} {
		t.Run(tt.addr, func(t *testing.T) {
			err := p.CheckAddr(netip.MustParseAddr(tt.addr))
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, bridge.ErrHookForbidden)
		})
	}
	q := bridge.HookPolicy{Deny: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	require.NoError(t, q.AllowHook("127.0.0.0/8"))
	require.NoError(t, q.AllowHook("10.1.2.3"))
	require.NoError(t, q.AllowHook("Hooks.Example.com."))
	assert.NoError(t, q.CheckAddr(netip.MustParseAddr("127.0.0.9")))
	assert.NoError(t, q.CheckAddr(netip.MustParseAddr("10.1.2.3")), "allow wins over deny")
	assert.ErrorIs(t, q.CheckAddr(netip.MustParseAddr("10.1.2.4")), bridge.ErrHookForbidden)
	assert.ErrorIs(t, q.CheckAddr(netip.MustParseAddr("::1")), bridge.ErrHookForbidden)
	for _, spelling := range []string{"10.1.2.4", "::ffff:10.1.2.4", "64:ff9b::10.1.2.4", "::10.1.2.4"} {
		assert.ErrorIs(t, q.CheckAddr(netip.MustParseAddr(spelling)), bridge.ErrHookForbidden, "denied in every spelling: %s", spelling)
	}
	for _, spelling := range []string{"127.0.0.9", "::ffff:127.0.0.9", "64:ff9b::127.0.0.9", "::127.0.0.9"} {
		assert.NoError(t, q.CheckAddr(netip.MustParseAddr(spelling)), "allowed in every spelling: %s", spelling)
	}
	for _, bad := range []string{"", "a b", "10.0.0.0/33", "http://x", ".."} {
		assert.ErrorIs(t, q.AllowHook(bad), acomm.ErrInvalidArgument, bad)
	}
}

// TestBridgeHookPolicy checks that a bridge with a policy refuses loopback
// hooks: an address literal at once (403), a name when the delivery dials
// the address it resolves to (so a name that resolves elsewhere when
// checked cannot lead to loopback when dialed).
func TestBridgeHookPolicy(t *testing.T) {
	hook := newBridgeHook(t)
	svc := bridgeService(t, bridgeEcho)
	port := hook.url[strings.LastIndex(hook.url, ":")+1:]

	t.Run("refused", func(t *testing.T) {
		env := newBridgeEnv(t, func(b *bridge.Bridge) { b.HookPolicy = &bridge.HookPolicy{} }, bridge.Route{Pattern: "echo", Addr: svc})
		body, _ := bridgeRequestJSON(t, "echo", hook.url, nil)
		msg := requireBridgeError(t, bridgePost(t, env.base+"/requests", "", body), http.StatusForbidden)
		assert.Contains(t, msg, "loopback")
		assert.Equal(t, 0, env.tr.NumRequests())

		// By name: accepted, then refused as it is dialed.
		body, req := bridgeRequestJSON(t, "echo", "http://localhost:"+port, nil)
		requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), req.ID)
		require.NoError(t, shutdownBridge(env.b, 5*time.Second))
		select {
		case r := <-hook.got:
			t.Fatalf("a loopback hook got an answer: %+v", r)
		default:
		}
	})
	t.Run("allowed", func(t *testing.T) {
		p := &bridge.HookPolicy{}
		require.NoError(t, p.AllowHook("127.0.0.1"))
		require.NoError(t, p.AllowHook("::1"))
		env := newBridgeEnv(t, func(b *bridge.Bridge) { b.HookPolicy = p }, bridge.Route{Pattern: "echo", Addr: svc})
		body, req := bridgeRequestJSON(t, "echo", "http://localhost:"+port, "hi")
		requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), req.ID)
		got := waitFor(t, hook.got, 5*time.Second, "answer at the allowed hook")
		assert.Equal(t, req.ID, got.ID)
	})
}

// TestBridgeForgedResponse checks that an answer to a tracked request is
// taken only at the hook bound to it: a forger who knows the id, and even
// holds a hook bound to another request, is refused, and the real answer
// still gets through.
func TestBridgeForgedResponse(t *testing.T) {
	env := newBridgeEnv(t, func(b *bridge.Bridge) { b.Token = "main" })
	got := make(chan *acomm.Response, 2)
	h := func(_ *acomm.Request, resp *acomm.Response) { got <- resp }
	req, err := acomm.NewRequest("x", env.base+"/responses", nil, h, h)
	require.NoError(t, err)
	require.NoError(t, env.tr.TrackRequest(req, 0))
	bound := env.tr.BindHook(req.ResponseHook, req.ID)
	other := env.tr.BindHook(req.ResponseHook, "other-id")

	forged := `{"id":"` + req.ID + `","result":"forged"}`
	for _, u := range []string{env.base + "/responses", other.String(), env.base + "/responses?acomm-cap=00"} {
		requireBridgeError(t, bridgePost(t, u, "main", forged), http.StatusForbidden)
	}
	assert.Equal(t, 1, env.tr.NumRequests(), "still waiting for its real answer")

	requireBridgeAck(t, bridgePost(t, bound.String(), "", `{"id":"`+req.ID+`","result":"real"}`), req.ID)
	resp := waitFor(t, got, 5*time.Second, "the real answer")
	var s string
	require.NoError(t, resp.UnmarshalResult(&s))
	assert.Equal(t, "real", s)
}

// stalledHook is a hook that accepts connections, reads what comes and
// never answers. It counts the connections open at once.
type stalledHook struct {
	url      string
	mu       sync.Mutex
	open     int
	peak     int
	accepted chan struct{}
}

func newStalledHook(t *testing.T) *stalledHook {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h := &stalledHook{url: "http://" + ln.Addr().String() + "/hook", accepted: make(chan struct{}, 1024)}
	var wg sync.WaitGroup
	var conns sync.Map
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, nil)
			h.mu.Lock()
			h.open++
			h.peak = max(h.peak, h.open)
			h.mu.Unlock()
			h.accepted <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				h.mu.Lock()
				h.open--
				h.mu.Unlock()
				conns.Delete(c)
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		conns.Range(func(k, _ any) bool { _ = k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return h
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestBridgeStalledHook sends 200 answers to a hook that never answers:
// the connections to it stay bounded, and Shutdown ends the deliveries
// when its context does, closing every connection.
func TestBridgeStalledHook(t *testing.T) {
	const n = 200
	hook := newStalledHook(t)
	svc := bridgeService(t, bridgeEcho)
	env := newBridgeEnv(t, nil, bridge.Route{Pattern: "echo", Addr: svc})
	before := openFDs(t)

	for i := 0; i < n; i++ {
		body, req := bridgeRequestJSON(t, "echo", hook.url, i)
		requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), req.ID)
	}
	for i := 0; i < bridge.DefaultMaxHookConnsPerHost; i++ {
		waitFor(t, hook.accepted, 10*time.Second, "deliveries to the stalled hook")
	}
	require.Eventually(t, func() bool { return env.tr.NumRequests() == 0 }, 10*time.Second, 5*time.Millisecond, "all answered")
	during := openFDs(t)
	hook.mu.Lock()
	peak := hook.peak
	hook.mu.Unlock()
	t.Logf("%d answers to a stalled hook: %d descriptors before, %d during; at most %d connections to it at once", n, before, during, peak)
	assert.LessOrEqual(t, peak, bridge.DefaultMaxHookConnsPerHost, "connections to one hook")
	assert.Less(t, during-before, 2*bridge.DefaultMaxHookConnsPerHost+20, "descriptors: %d before, %d with %d answers stalled", before, during, n)

	start := time.Now()
	err := shutdownBridge(env.b, 200*time.Millisecond)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second, "Shutdown is bounded by its context")
	require.Eventually(t, func() bool {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return hook.open == 0
	}, 5*time.Second, 5*time.Millisecond, "the stalled connections are closed: %d open", func() int { hook.mu.Lock(); defer hook.mu.Unlock(); return hook.open }())

	requireBridgeError(t, bridgePost(t, env.base+"/requests", "", `{}`), http.StatusServiceUnavailable)
}

// TestBridgeStalledHooksOnManyPorts checks that hooks on many ports (a
// caller may name any number) pin at most DefaultMaxHookConns
// connections in all, not DefaultMaxHookConnsPerHost each.
func TestBridgeStalledHooksOnManyPorts(t *testing.T) {
	const ports = 12 // 12 x 8 connections would be 96
	hooks := make([]*stalledHook, ports)
	for i := range hooks {
		hooks[i] = newStalledHook(t)
	}
	svc := bridgeService(t, bridgeEcho)
	env := newBridgeEnv(t, nil, bridge.Route{Pattern: "echo", Addr: svc})
	for _, h := range hooks {
		for j := 0; j < bridge.DefaultMaxHookConnsPerHost; j++ {
			body, req := bridgeRequestJSON(t, "echo", h.url, j)
			requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), req.ID)
		}
	}
	open := func() int {
		n := 0
		for _, h := range hooks {
			h.mu.Lock()
			n += h.open
			h.mu.Unlock()
		}
		return n
	}
	require.Eventually(t, func() bool { return open() == bridge.DefaultMaxHookConns }, 10*time.Second, 5*time.Millisecond,
		"deliveries under way: %d", open())
	// The others wait their turn: none more is opened meanwhile.
	assert.Never(t, func() bool { return open() > bridge.DefaultMaxHookConns }, 200*time.Millisecond, 5*time.Millisecond,
		"connections to all the hooks")
	assert.ErrorIs(t, shutdownBridge(env.b, 100*time.Millisecond), context.DeadlineExceeded)
}

// TestBridgeIdleHookConnsInAll checks that the connections deliveries
// leave for reuse, to hooks on as many ports as callers name, are kept
// DefaultMaxHookConns at most.
func TestBridgeIdleHookConnsInAll(t *testing.T) {
	const ports = 100
	var open atomic.Int64
	urls := make([]string, ports)
	got := make(chan struct{}, ports)
	for i := range urls {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var resp acomm.Response
			_ = json.NewDecoder(r.Body).Decode(&resp)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"id":"` + resp.ID + `","error":""}`))
			got <- struct{}{}
		}))
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		}
		srv.Start()
		t.Cleanup(srv.Close)
		urls[i] = srv.URL + "/hook"
	}
	svc := bridgeService(t, bridgeEcho)
	env := newBridgeEnv(t, nil, bridge.Route{Pattern: "echo", Addr: svc})
	for i, u := range urls {
		body, req := bridgeRequestJSON(t, "echo", u, i)
		requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), req.ID)
	}
	for range urls {
		waitFor(t, got, 10*time.Second, "a delivery")
	}
	require.Eventually(t, func() bool { return open.Load() <= bridge.DefaultMaxHookConns }, 5*time.Second, 5*time.Millisecond,
		"connections kept to hooks in all: %d", open.Load())
}

// TestBridgeMaxPending checks that a bridge holding MaxPending requests
// (here awaiting answers that never come) refuses the next with 503, and
// takes requests again once one is done.
func TestBridgeMaxPending(t *testing.T) {
	hook := newBridgeHook(t)
	silent := bridgeService(t, func(*acomm.Request) *acomm.Response { return nil })
	env := newBridgeEnv(t, func(b *bridge.Bridge) { b.MaxPending = 3 }, bridge.Route{Pattern: "*", Addr: silent})
	var ids []string
	for i := 0; i < 3; i++ {
		body, req := bridgeRequestJSON(t, "wait", hook.url, i)
		requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), req.ID)
		ids = append(ids, req.ID)
	}
	body, last := bridgeRequestJSON(t, "wait", hook.url, 3)
	msg := requireBridgeError(t, bridgePost(t, env.base+"/requests", "", body), http.StatusServiceUnavailable)
	assert.Contains(t, msg, acomm.ErrBusy.Error())
	// The caller cancels one: room for one more.
	notice := `{"id":"n1","task":"acomm.cancel","responsehook":"` + hook.url + `","args":{"id":"` + ids[0] + `"}}`
	requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", notice), "n1")
	requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), last.ID)
	assert.ErrorIs(t, shutdownBridge(env.b, 100*time.Millisecond), context.DeadlineExceeded)
}

// TestBridgeHealthz checks that the health check needs no token, says
// nothing more than ok, and turns 503 on shutdown.
func TestBridgeHealthz(t *testing.T) {
	env := newBridgeEnv(t, func(b *bridge.Bridge) { b.Token = "s3cret" })
	r := bridgeDo(t, http.MethodGet, env.base+"/healthz", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"status":"ok"}`, string(r.body))
	assert.Equal(t, http.StatusMethodNotAllowed, bridgeDo(t, http.MethodPost, env.base+"/healthz", "", nil).status)
	require.NoError(t, shutdownBridge(env.b, time.Second))
	requireBridgeError(t, bridgeDo(t, http.MethodGet, env.base+"/healthz", "", nil), http.StatusServiceUnavailable)
}

// TestBridgeStreamFromOriginalPeer reads, through the bridge, a stream
// served by an original acomm (2016) service, which closes without
// reading the ready byte: it ends cleanly after its last byte.
func TestBridgeStreamFromOriginalPeer(t *testing.T) {
	data := strings.Repeat("original ", 10000)
	path := sockPath(t, "4815162342") // ioutil.TempFile's kind of name
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = c.Write([]byte(data))
		_ = c.Close()
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-served
	})
	hook := newBridgeHook(t)
	svc := bridgeService(t, func(req *acomm.Request) *acomm.Response {
		resp, _ := acomm.NewResponse(req, nil, &url.URL{Scheme: "unix", Path: path}, nil)
		return resp
	})
	env := newBridgeEnv(t, nil, bridge.Route{Pattern: "dump", Addr: svc})
	body, req := bridgeRequestJSON(t, "dump", hook.url, nil)
	requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), req.ID)
	got := waitFor(t, hook.got, 5*time.Second, "answer at the hook")
	require.NotNil(t, got.StreamURL)
	var buf strings.Builder
	require.NoError(t, acomm.Stream(&buf, got.StreamURL))
	assert.Equal(t, data, buf.String())
}

// TestHookPolicyDialContext dials through the policy: a loopback address
// is refused before any connection is made, whatever name leads to it.
func TestHookPolicyDialContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	p := &bridge.HookPolicy{}
	for _, addr := range []string{ln.Addr().String(), net.JoinHostPort("localhost", port)} {
		_, err := p.DialContext(context.Background(), "tcp", addr)
		assert.ErrorIs(t, err, bridge.ErrHookForbidden, addr)
	}
	require.NoError(t, p.AllowHook("localhost"))
	c, err := p.DialContext(context.Background(), "tcp", net.JoinHostPort("localhost", port))
	require.NoError(t, err, "an allowed host name is dialed")
	_ = c.Close()
	_, err = p.DialContext(context.Background(), "tcp", "127.0.0.1:1")
	assert.ErrorIs(t, err, bridge.ErrHookForbidden, "a name allowed opens only that name")
}

// TestBridgeShutdownGivesUp checks that Shutdown waits for unanswered
// requests only as long as its context, then takes them off the tracker,
// even one that someone else took off first.
func TestBridgeShutdownGivesUp(t *testing.T) {
	hook := newBridgeHook(t)
	forwarded := make(chan *acomm.Request, 3) // (under the bridge's ids)
	silent := bridgeService(t, func(req *acomm.Request) *acomm.Response { forwarded <- req; return nil })
	env := newBridgeEnv(t, nil, bridge.Route{Pattern: "*", Addr: silent})
	for i := 0; i < 3; i++ {
		body, req := bridgeRequestJSON(t, "wait", hook.url, i)
		requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), req.ID)
	}
	assert.True(t, env.tr.RemoveRequest(waitFor(t, forwarded, 5*time.Second, "a forwarded request")), "taken off by someone else")
	done := make(chan error, 1)
	go func() { done <- shutdownBridge(env.b, 100*time.Millisecond) }()
	assert.ErrorIs(t, waitFor(t, done, 5*time.Second, "Shutdown"), context.DeadlineExceeded)
	assert.Equal(t, 0, env.tr.NumRequests())
	select {
	case r := <-hook.got:
		t.Fatalf("an abandoned request reached the hook: %+v", r)
	default:
	}
}

// TestBridgeForgedCancel checks that a cancel notice removes a request
// only when it comes with the request's own response hook (our trackers
// send it; a hook of Call's carries the request's capability): someone
// who knows only the id, even holding the main token, cannot make the
// bridge drop another caller's answer. A notice that matches nothing is
// acknowledged all the same, so that it does not tell which ids are in
// flight.
func TestBridgeForgedCancel(t *testing.T) {
	hook := newBridgeHook(t)
	svc := bridgeService(t, func(*acomm.Request) *acomm.Response { return nil }) // never answers
	env := newBridgeEnv(t, nil, bridge.Route{Pattern: "slow", Addr: svc})
	body, req := bridgeRequestJSON(t, "slow", hook.url, nil)
	requireBridgeAck(t, bridgePost(t, env.base+"/requests", "", body), req.ID)
	require.Equal(t, 1, env.tr.NumRequests())

	notice := func(id, noticeHook string) string {
		n, err := acomm.NewRequest(acomm.CancelTask, noticeHook, map[string]string{"id": req.ID}, nil, nil)
		require.NoError(t, err)
		n.ID = id
		b, err := json.Marshal(n)
		require.NoError(t, err)
		return string(b)
	}
	for i, forged := range []string{"http://attacker.example/hook", hook.url + "?x=1", hook.url + "x"} {
		r := bridgePost(t, env.base+"/requests", "", notice("f"+strconv.Itoa(i), forged))
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		require.Equal(t, 1, env.tr.NumRequests(), "a cancel with hook %s removed another caller's request", forged)
	}
	r := bridgePost(t, env.base+"/requests", "", `{"id":"f9","task":"acomm.cancel","args":{"id":"`+req.ID+`"}}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, 1, env.tr.NumRequests(), "a cancel without a hook removed the request")

	r = bridgePost(t, env.base+"/requests", "", notice("real", hook.url))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, 0, env.tr.NumRequests(), "the caller's own cancel is honoured")
}
