package acomm_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// service is a minimal acomm service written with UnixListener, as a user
// of the seed API would write one: read a request, acknowledge it, answer
// it on its response hook.
type service struct {
	ul       *acomm.UnixListener
	received atomic.Int64
	wg       sync.WaitGroup
}

// answer computes the response to a request; nil means do not answer.
type answer func(req *acomm.Request) *acomm.Response

// echo answers every request with its args as the result.
func echo(req *acomm.Request) *acomm.Response {
	var v json.RawMessage
	if req.Args != nil {
		v = *req.Args
	}
	resp, _ := acomm.NewResponse(req, v, nil, nil)
	return resp
}

// newService starts a service answering with fn, stopped at cleanup.
func newService(t testing.TB, fn answer) *service {
	t.Helper()
	s := &service{ul: newListener(t, 0)}
	go func() {
		for conn := s.ul.NextConn(); conn != nil; conn = s.ul.NextConn() {
			s.wg.Add(1)
			go s.serve(conn, fn)
		}
	}()
	t.Cleanup(func() {
		s.ul.Stop(0)
		s.wg.Wait()
	})
	return s
}

// serve reads requests from conn until it closes.
func (s *service) serve(conn net.Conn, fn answer) {
	defer s.wg.Done()
	defer s.ul.DoneConn(conn)
	for {
		req := &acomm.Request{}
		if err := acomm.UnmarshalConnData(conn, req); err != nil {
			return
		}
		s.received.Add(1)
		if err := acomm.SendConnData(conn, &acomm.Response{ID: req.ID}); err != nil {
			return
		}
		if resp := fn(req); resp != nil {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				_ = req.Respond(resp)
			}()
		}
	}
}

// result is what a handler saw.
type result struct {
	req  *acomm.Request
	resp *acomm.Response
}

// newRequest returns a request whose handlers send to ch.
func newRequest(t testing.TB, tr *acomm.Tracker, task string, args any, ch chan<- result) *acomm.Request {
	t.Helper()
	h := func(req *acomm.Request, resp *acomm.Response) { ch <- result{req, resp} }
	req, err := acomm.NewRequest(task, tr.URL().String(), args, h, h)
	require.NoError(t, err)
	return req
}

func TestTrackerFullCycle(t *testing.T) {
	tr := newTracker(t, nil, 5*time.Second)
	svc := newService(t, echo)

	ch := make(chan result, 1)
	req := newRequest(t, tr, "echo", map[string]int{"n": 42}, ch)
	require.NoError(t, tr.TrackRequest(req, 0))
	require.Equal(t, 1, tr.NumRequests())
	require.NoError(t, acomm.Send(svc.ul.URL(), req))

	got := waitFor(t, ch, 5*time.Second, "response")
	require.NoError(t, got.resp.Error)
	var out map[string]int
	require.NoError(t, got.resp.UnmarshalResult(&out))
	assert.Equal(t, 42, out["n"])
	assert.Same(t, req, got.req)
	assert.Equal(t, 0, tr.NumRequests())
}

func TestTrackerLargePayload(t *testing.T) {
	tr := newTracker(t, nil, time.Minute)
	svc := newService(t, echo)

	// 16 MiB of random letters: a JSON string with nothing to escape.
	blob := make([]byte, 16<<20)
	_, _ = rand.Read(blob)
	for i := range blob {
		blob[i] = 'a' + blob[i]%26
	}
	ch := make(chan result, 1)
	req := newRequest(t, tr, "echo", string(blob), ch)
	require.NoError(t, tr.TrackRequest(req, 0))
	require.NoError(t, acomm.Send(svc.ul.URL(), req))

	got := waitFor(t, ch, time.Minute, "response") // slow under -race on 2 cores
	require.NoError(t, got.resp.Error)
	var back string
	require.NoError(t, got.resp.UnmarshalResult(&back))
	require.True(t, string(blob) == back, "payload corrupted")
}

func TestTrackerConcurrentRoundTripsExactlyOnce(t *testing.T) {
	const n = 2000
	tr := newTracker(t, nil, 30*time.Second)
	svc := newService(t, echo)

	var mu sync.Mutex
	calls := make(map[string]int, n)
	var done sync.WaitGroup
	done.Add(n)
	h := func(req *acomm.Request, resp *acomm.Response) {
		mu.Lock()
		calls[req.ID]++
		mu.Unlock()
		done.Done()
	}
	var sendErrs atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, err := acomm.NewRequest("echo", tr.URL().String(), i, h, h)
			if err != nil {
				sendErrs.Add(1)
				done.Done()
				return
			}
			if err := tr.TrackRequest(req, 0); err != nil {
				sendErrs.Add(1)
				done.Done()
				return
			}
			if err := acomm.Send(svc.ul.URL(), req); err != nil {
				if tr.RemoveRequest(req) {
					done.Done()
				}
				sendErrs.Add(1)
			}
		}(i)
	}
	wg.Wait()
	waitFor(t, chanOf(done.Wait), 30*time.Second, "all handlers")
	require.Zero(t, sendErrs.Load())
	require.Len(t, calls, n)
	for id, c := range calls {
		require.Equal(t, 1, c, "request %s handled %d times", id, c)
	}
	assert.EqualValues(t, n, svc.received.Load())
}

// chanOf runs f in a goroutine and returns a channel closed when it returns.
func chanOf(f func()) <-chan struct{} {
	ch := make(chan struct{})
	go func() { f(); close(ch) }()
	return ch
}

func TestTrackerTimeout(t *testing.T) {
	tr := newTracker(t, nil, time.Minute)
	ch := make(chan result, 1)
	req := newRequest(t, tr, "never", nil, ch)
	require.NoError(t, tr.TrackRequest(req, 20*time.Millisecond))

	got := waitFor(t, ch, 5*time.Second, "timeout")
	require.Error(t, got.resp.Error)
	assert.ErrorIs(t, got.resp.Error, acomm.ErrTimeout)
	var te interface{ Timeout() bool }
	require.True(t, errors.As(got.resp.Error, &te))
	assert.True(t, te.Timeout())
	assert.Equal(t, req.ID, got.resp.ID)
	assert.Equal(t, 0, tr.NumRequests())

	// A late response is dropped quietly.
	tr.HandleResponse(&acomm.Response{ID: req.ID})
	select {
	case r := <-ch:
		t.Fatalf("handler ran twice: %+v", r)
	default:
	}
}

// TestTrackerRaceResponseTimeoutRemove races a response, the timeout and
// RemoveRequest for many requests: each must be handled at most once, and
// exactly once unless RemoveRequest won.
func TestTrackerRaceResponseTimeoutRemove(t *testing.T) {
	const n = 500
	tr := newTracker(t, nil, time.Minute)
	var handled [n]atomic.Int32
	var removed [n]atomic.Bool
	var wg sync.WaitGroup
	reqs := make([]*acomm.Request, n)
	for i := range reqs {
		i := i
		h := func(*acomm.Request, *acomm.Response) { handled[i].Add(1) }
		req, err := acomm.NewRequest("race", tr.URL().String(), nil, h, h)
		require.NoError(t, err)
		reqs[i] = req
		require.NoError(t, tr.TrackRequest(req, time.Duration(i%5)*time.Millisecond+time.Millisecond))
	}
	for i, req := range reqs {
		wg.Add(2)
		go func(req *acomm.Request) {
			defer wg.Done()
			tr.HandleResponse(&acomm.Response{ID: req.ID})
		}(req)
		go func(i int, req *acomm.Request) {
			defer wg.Done()
			if tr.RemoveRequest(req) {
				removed[i].Store(true)
			}
		}(i, req)
	}
	wg.Wait()
	tr.Stop() // waits for any timeout still pending
	for i := range reqs {
		want := int32(1)
		if removed[i].Load() {
			want = 0
		}
		require.Equal(t, want, handled[i].Load(), "request %d (removed=%v)", i, removed[i].Load())
	}
}

func TestTrackerTrackRequestErrors(t *testing.T) {
	tr, err := acomm.NewTracker(sockPath(t, "t.sock"), nil, time.Second)
	require.NoError(t, err)
	req, err := acomm.NewRequest("t", tr.URL().String(), nil, nil, nil)
	require.NoError(t, err)

	assert.ErrorIs(t, tr.TrackRequest(req, 0), acomm.ErrNotStarted, "unstarted")
	require.NoError(t, tr.Start())
	require.NoError(t, tr.Start(), "Start is idempotent")
	assert.ErrorIs(t, tr.TrackRequest(nil, 0), acomm.ErrInvalidArgument)
	assert.ErrorIs(t, tr.TrackRequest(&acomm.Request{}, 0), acomm.ErrInvalidRequest)
	require.NoError(t, tr.TrackRequest(req, 0))
	assert.ErrorIs(t, tr.TrackRequest(req, 0), acomm.ErrDuplicateID)
	assert.True(t, tr.RemoveRequest(req))
	assert.False(t, tr.RemoveRequest(req), "second remove")
	assert.False(t, tr.RemoveRequest(nil))
	tr.Stop()
	assert.ErrorIs(t, tr.TrackRequest(req, 0), acomm.ErrNotStarted, "stopped")
	tr.Stop() // second Stop is harmless
}

func TestTrackerStopLifecycle(t *testing.T) {
	t.Run("unstarted", func(t *testing.T) {
		tr, err := acomm.NewTracker("", nil, 0)
		require.NoError(t, err)
		tr.Stop()
		tr.Stop()
		_, err = os.Stat(tr.Addr())
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("temp dir socket removed", func(t *testing.T) {
		tr, err := acomm.NewTracker("", nil, 0)
		require.NoError(t, err)
		require.NoError(t, tr.Start())
		_, err = os.Stat(tr.Addr())
		require.NoError(t, err)
		tr.Stop()
		_, err = os.Stat(tr.Addr())
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("idle stop is immediate", func(t *testing.T) {
		tr, err := acomm.NewTracker(sockPath(t, "t.sock"), nil, 0)
		require.NoError(t, err)
		require.NoError(t, tr.Start())
		waitFor(t, chanOf(tr.Stop), time.Second, "idle Stop")
		_, err = os.Stat(tr.Addr())
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("restart", func(t *testing.T) {
		tr, err := acomm.NewTracker(sockPath(t, "t.sock"), nil, 0)
		require.NoError(t, err)
		require.NoError(t, tr.Start())
		tr.Stop()
		require.NoError(t, tr.Start())
		tr.Stop()
	})
	t.Run("stop waits for outstanding request", func(t *testing.T) {
		tr := newTracker(t, nil, time.Minute)
		ch := make(chan result, 1)
		req := newRequest(t, tr, "slow", nil, ch)
		require.NoError(t, tr.TrackRequest(req, 0))
		stopped := chanOf(tr.Stop)
		select {
		case <-stopped:
			t.Fatal("Stop returned with a request outstanding")
		case <-time.After(20 * time.Millisecond):
		}
		// Still listening: the response is delivered over the socket.
		resp := &acomm.Response{ID: req.ID}
		require.NoError(t, acomm.Send(tr.URL(), resp))
		waitFor(t, ch, 5*time.Second, "handler")
		waitFor(t, stopped, 5*time.Second, "Stop")
	})
	t.Run("shutdown context abandons outstanding", func(t *testing.T) {
		tr := newTracker(t, nil, time.Minute)
		ch := make(chan result, 1)
		req := newRequest(t, tr, "slow", nil, ch)
		require.NoError(t, tr.TrackRequest(req, 0))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, tr.Shutdown(ctx), context.DeadlineExceeded)
		got := waitFor(t, ch, time.Second, "abandoned handler")
		assert.ErrorIs(t, got.resp.Error, acomm.ErrTrackerStopped)
	})
}

func TestTrackerStopDuringTraffic(t *testing.T) {
	const n = 300
	tr, err := acomm.NewTracker(sockPath(t, "t.sock"), nil, 2*time.Second)
	require.NoError(t, err)
	require.NoError(t, tr.Start())
	svc := newService(t, echo)

	var handled, tracked atomic.Int64
	h := func(*acomm.Request, *acomm.Response) { handled.Add(1) }
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, err := acomm.NewRequest("echo", tr.URL().String(), nil, h, h)
			if err != nil {
				return
			}
			if tr.TrackRequest(req, 0) != nil {
				return // stopped already: refused, never handled
			}
			tracked.Add(1)
			if acomm.Send(svc.ul.URL(), req) != nil && tr.RemoveRequest(req) {
				tracked.Add(-1)
			}
		}()
	}
	close(start)
	tr.Stop()
	wg.Wait()
	assert.Equal(t, tracked.Load(), handled.Load(), "every tracked request handled once")
	_, err = os.Stat(tr.Addr())
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// rawFrame writes a frame header declaring n bytes followed by body.
func rawFrame(n uint32, body []byte) []byte {
	b := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(b, n)
	return append(b, body...)
}

// frameOf frames body with its true length.
func frameOf(body string) []byte { return rawFrame(uint32(len(body)), []byte(body)) }

func TestTrackerBadFrames(t *testing.T) {
	tr := newTracker(t, nil, time.Second, acomm.WithMaxFrameSize(1<<10), acomm.WithIOTimeout(200*time.Millisecond))
	dial := func(t *testing.T) net.Conn {
		conn, err := net.Dial("unix", tr.Addr())
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
		return conn
	}
	readAck := func(t *testing.T, conn net.Conn) *acomm.Response {
		ack := &acomm.Response{}
		require.NoError(t, acomm.UnmarshalConnData(conn, ack))
		return ack
	}

	tests := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"not json", frameOf("hello"), acomm.ErrMalformedFrame},
		{"wrong json type", frameOf("[]"), acomm.ErrMalformedFrame},
		{"bad stream url", frameOf(`{"id":"x","stream_url":12.5}`), acomm.ErrMalformedFrame},
		{"bad error type", frameOf(`{"id":"x","error":{}}`), acomm.ErrMalformedFrame},
		{"missing id", frameOf("{}"), acomm.ErrInvalidResponse},
		{"too large", rawFrame(1<<20, nil), acomm.ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := dial(t)
			_, err := conn.Write(tt.frame)
			require.NoError(t, err)
			ack := readAck(t, conn)
			require.Error(t, ack.Error)
			assert.ErrorIs(t, ack.Error, tt.want, ack.Error.Error())
		})
	}

	t.Run("connection survives a refused frame", func(t *testing.T) {
		conn := dial(t)
		_, err := conn.Write(rawFrame(5, []byte("hello")))
		require.NoError(t, err)
		require.Error(t, readAck(t, conn).Error)
		require.NoError(t, acomm.SendConnData(conn, &acomm.Response{ID: "unknown"}))
		assert.NoError(t, readAck(t, conn).Error, "unknown ids are dropped quietly, not refused")
	})
	t.Run("split frame decodes", func(t *testing.T) {
		conn := dial(t)
		body := []byte(`{"id":"split","result":null,"stream_url":null,"error":""}`)
		for _, b := range rawFrame(uint32(len(body)), body) {
			_, err := conn.Write([]byte{b})
			require.NoError(t, err)
		}
		ack := readAck(t, conn)
		assert.NoError(t, ack.Error)
		assert.Equal(t, "split", ack.ID)
	})
	t.Run("stalled mid-frame is cut off", func(t *testing.T) {
		conn := dial(t)
		_, err := conn.Write(rawFrame(100, []byte(`{"id":`)))
		require.NoError(t, err)
		buf := make([]byte, 1)
		_, err = conn.Read(buf) // the tracker closes the connection
		assert.Error(t, err)
	})
	t.Run("stalled peer does not block Stop", func(t *testing.T) {
		tr2, err := acomm.NewTracker(sockPath(t, "t2.sock"), nil, time.Second)
		require.NoError(t, err)
		require.NoError(t, tr2.Start())
		conn, err := net.Dial("unix", tr2.Addr())
		require.NoError(t, err)
		defer conn.Close()
		_, err = conn.Write([]byte{0, 0})
		require.NoError(t, err)
		waitFor(t, chanOf(tr2.Stop), 2*time.Second, "Stop with a stalled peer")
	})
}

func TestTrackerHandlerPanicIsContained(t *testing.T) {
	tr := newTracker(t, nil, time.Second)
	boom := func(*acomm.Request, *acomm.Response) { panic("boom") }
	req, err := acomm.NewRequest("t", tr.URL().String(), nil, boom, boom)
	require.NoError(t, err)
	require.NoError(t, tr.TrackRequest(req, 0))
	require.NoError(t, acomm.Send(tr.URL(), &acomm.Response{ID: req.ID}))
	waitFor(t, chanOf(tr.Stop), 5*time.Second, "Stop after a panicking handler")
}

func TestTrackerProxyUnix(t *testing.T) {
	// The external caller's HTTP hook.
	hooked := make(chan *acomm.Response, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp := &acomm.Response{}
		if err := json.NewDecoder(r.Body).Decode(resp); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		hooked <- resp
		_ = json.NewEncoder(w).Encode(&acomm.Response{ID: resp.ID})
	}))
	t.Cleanup(hook.Close)
	streams := httptest.NewServer(http.HandlerFunc(acomm.ProxyStreamHandler))
	t.Cleanup(streams.Close)
	streamBase, _ := url.Parse(streams.URL + "/stream")

	tr := newTracker(t, streamBase, 5*time.Second)
	svc := newService(t, func(req *acomm.Request) *acomm.Response {
		su, err := tr.NewStreamUnix("", nopCloser{bytes.NewReader([]byte("streamed bytes"))})
		if err != nil {
			panic(err)
		}
		resp, _ := acomm.NewResponse(req, "ok", su, nil)
		return resp
	})

	orig, err := acomm.NewRequest("work", hook.URL+"/hook", nil, nil, nil)
	require.NoError(t, err)
	unixReq, err := tr.ProxyUnix(orig, 0)
	require.NoError(t, err)
	assert.Equal(t, orig.ID, unixReq.ID)
	assert.Equal(t, tr.URL().String(), unixReq.ResponseHook.String())
	assert.Equal(t, 1, tr.NumRequests())

	require.NoError(t, acomm.Send(svc.ul.URL(), unixReq))
	got := waitFor(t, hooked, 5*time.Second, "forwarded response")
	require.NoError(t, got.Error)
	assert.Equal(t, orig.ID, got.ID)
	require.NotNil(t, got.StreamURL)
	assert.Equal(t, "http", got.StreamURL.Scheme, "stream url rewritten to the http proxy")

	var buf bytes.Buffer
	require.NoError(t, acomm.Stream(&buf, got.StreamURL))
	assert.Equal(t, "streamed bytes", buf.String())

	t.Run("unix hook returned as is", func(t *testing.T) {
		req, err := acomm.NewRequest("work", tr.URL().String(), nil, nil, nil)
		require.NoError(t, err)
		same, err := tr.ProxyUnix(req, 0)
		require.NoError(t, err)
		assert.Same(t, req, same)
		assert.Equal(t, 0, tr.NumRequests())
	})
	t.Run("invalid request", func(t *testing.T) {
		_, err := tr.ProxyUnix(&acomm.Request{}, 0)
		assert.ErrorIs(t, err, acomm.ErrInvalidRequest)
	})
}

// nopCloser adds a Close to a reader.
type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func TestNewTrackerErrors(t *testing.T) {
	for _, raw := range []string{"unix:///x.sock", "/relative", "ftp://h/x"} {
		t.Run(raw, func(t *testing.T) {
			u, err := url.Parse(raw)
			require.NoError(t, err)
			_, err = acomm.NewTracker(sockPath(t, "t.sock"), u, 0)
			assert.ErrorIs(t, err, acomm.ErrInvalidURL)
		})
	}
	t.Run("configure after start", func(t *testing.T) {
		tr := newTracker(t, nil, 0)
		assert.ErrorIs(t, tr.Configure(acomm.WithMaxFrameSize(10)), acomm.ErrAlreadyStarted)
	})
	t.Run("bad option", func(t *testing.T) {
		tr, err := acomm.NewTracker(sockPath(t, "t.sock"), nil, 0)
		require.NoError(t, err)
		assert.ErrorIs(t, tr.Configure(acomm.WithMaxFrameSize(0)), acomm.ErrInvalidArgument)
		assert.ErrorIs(t, tr.Configure(acomm.WithLogger(nil)), acomm.ErrInvalidArgument)
	})
	t.Run("socket path too long", func(t *testing.T) {
		tr, err := acomm.NewTracker("/tmp/"+fmt.Sprintf("%0120d", 0)+".sock", nil, 0)
		require.NoError(t, err)
		assert.ErrorIs(t, tr.Start(), acomm.ErrSocketPathTooLong)
	})
}
