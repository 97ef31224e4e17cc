package acomm_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// srvStart returns a started server with its socket in a short temp dir,
// stopped at cleanup. Register handlers with Handle; handlers that block
// should be released by a cleanup registered after this one.
func srvStart(t testing.TB, tr *acomm.Tracker, opts ...acomm.Option) *acomm.Server {
	t.Helper()
	srv := acomm.NewServer(sockPath(t, "s.sock"), tr)
	require.NoError(t, srv.Configure(opts...))
	require.NoError(t, srv.Start())
	t.Cleanup(srv.Stop)
	return srv
}

// srvEcho answers with the request's args.
func srvEcho(_ context.Context, req *acomm.Request) (interface{}, io.ReadCloser, error) {
	if req.Args == nil {
		return nil, nil, nil
	}
	return *req.Args, nil, nil
}

// srvDouble answers with twice its integer argument.
func srvDouble(_ context.Context, req *acomm.Request) (interface{}, io.ReadCloser, error) {
	var n int
	if err := req.UnmarshalArgs(&n); err != nil {
		return nil, nil, err
	}
	return 2 * n, nil, nil
}

// taskGate is a handler that reports each start and blocks until the gate
// opens (answering "released") or its context ends (answering ctx.Err()).
type taskGate struct {
	started chan string // request IDs, in order of start
	release chan struct{}
	once    sync.Once
}

// newTaskGate returns a gate opened at cleanup, so that blocked handlers do
// not hold up the server's Stop. Create it after the server.
func newTaskGate(t testing.TB) *taskGate {
	g := &taskGate{started: make(chan string, 64), release: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *taskGate) open() { g.once.Do(func() { close(g.release) }) }

func (g *taskGate) handle(ctx context.Context, req *acomm.Request) (interface{}, io.ReadCloser, error) {
	g.started <- req.ID
	select {
	case <-g.release:
		return "released", nil, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// callResult is what a Call returned.
type callResult struct {
	resp *acomm.Response
	err  error
}

// callAsync runs tr.Call in a goroutine and delivers its outcome.
func callAsync(tr *acomm.Tracker, srv *acomm.Server, task string, args interface{}) <-chan callResult {
	ch := make(chan callResult, 1)
	go func() {
		resp, err := tr.Call(context.Background(), srv.URL(), task, args)
		ch <- callResult{resp, err}
	}()
	return ch
}

// logCatcher returns a logger that discards output and sends entries at
// level or above whose message contains msg to the returned channel.
func logCatcher(msg string) (*logrus.Logger, <-chan *logrus.Entry) {
	ch := make(chan *logrus.Entry, 64)
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.DebugLevel)
	l.AddHook(&catchHook{msg: msg, ch: ch})
	return l, ch
}

type catchHook struct {
	msg string
	ch  chan *logrus.Entry
}

func (h *catchHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *catchHook) Fire(e *logrus.Entry) error {
	if strings.Contains(e.Message, h.msg) {
		select {
		case h.ch <- e:
		default:
		}
	}
	return nil
}

// srvFrame frames body with its true length.
func srvFrame(body string) []byte {
	b := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(b, uint32(len(body)))
	return append(b, body...)
}

// closeSignal is a stream source that reports its Close.
type closeSignal struct {
	io.Reader
	closed chan struct{}
	once   sync.Once
}

func (c *closeSignal) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

func TestServerRoundTrip(t *testing.T) {
	panics, panicLogged := logCatcher("task handler panicked")
	tr := newTracker(t, nil, 5*time.Second)
	srv := srvStart(t, nil, acomm.WithLogger(panics), acomm.WithMaxFrameSize(64<<10))
	srv.Handle("double", srvDouble)
	srv.Handle("fail", func(context.Context, *acomm.Request) (interface{}, io.ReadCloser, error) {
		return nil, nil, errors.New("disk on fire")
	})
	srv.Handle("boom", func(context.Context, *acomm.Request) (interface{}, io.ReadCloser, error) {
		panic("boom")
	})
	srv.Handle("badraw", func(context.Context, *acomm.Request) (interface{}, io.ReadCloser, error) {
		return json.RawMessage(`{"unterminated":`), nil, nil
	})
	srv.Handle("unmarshalable", func(context.Context, *acomm.Request) (interface{}, io.ReadCloser, error) {
		return func() {}, nil, nil
	})
	srv.Handle("big", func(context.Context, *acomm.Request) (interface{}, io.ReadCloser, error) {
		return strings.Repeat("x", 100<<10), nil, nil
	})
	ctx := context.Background()

	t.Run("result", func(t *testing.T) {
		resp, err := tr.Call(ctx, srv.URL(), "double", 21)
		require.NoError(t, err)
		var n int
		require.NoError(t, resp.UnmarshalResult(&n))
		assert.Equal(t, 42, n)
		assert.Nil(t, resp.StreamURL)
	})
	t.Run("handler error", func(t *testing.T) {
		resp, err := tr.Call(ctx, srv.URL(), "fail", nil)
		require.Error(t, err)
		var re *acomm.RemoteError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, "disk on fire", re.Message)
		require.NotNil(t, resp)
		assert.Equal(t, err, resp.Error)
	})
	t.Run("handler error from bad args", func(t *testing.T) {
		_, err := tr.Call(ctx, srv.URL(), "double", "not a number")
		assert.ErrorIs(t, err, acomm.ErrInvalidRequest)
	})
	t.Run("unknown task", func(t *testing.T) {
		resp, err := tr.Call(ctx, srv.URL(), "no-such-task", nil)
		require.ErrorIs(t, err, acomm.ErrUnknownTask)
		assert.Contains(t, err.Error(), `"no-such-task"`)
		require.NotNil(t, resp)
		assert.Nil(t, resp.Result)
	})
	t.Run("panic is answered and the server keeps serving", func(t *testing.T) {
		_, err := tr.Call(ctx, srv.URL(), "boom", nil)
		require.ErrorIs(t, err, acomm.ErrHandlerPanic)
		assert.Contains(t, err.Error(), `"boom"`)
		entry := waitFor(t, panicLogged, 5*time.Second, "panic log")
		assert.Equal(t, logrus.ErrorLevel, entry.Level)
		assert.Equal(t, "boom", entry.Data["panic"])
		assert.Contains(t, entry.Data["stack"], "runtime/debug.Stack")

		resp, err := tr.Call(ctx, srv.URL(), "double", 2)
		require.NoError(t, err)
		var n int
		require.NoError(t, resp.UnmarshalResult(&n))
		assert.Equal(t, 4, n)
	})
	t.Run("invalid raw result", func(t *testing.T) {
		_, err := tr.Call(ctx, srv.URL(), "badraw", nil)
		assert.ErrorIs(t, err, acomm.ErrInvalidResponse)
	})
	t.Run("unmarshalable result", func(t *testing.T) {
		_, err := tr.Call(ctx, srv.URL(), "unmarshalable", nil)
		assert.ErrorIs(t, err, acomm.ErrInvalidResponse)
	})
	t.Run("result too large to send", func(t *testing.T) {
		_, err := tr.Call(ctx, srv.URL(), "big", nil)
		assert.ErrorIs(t, err, acomm.ErrFrameTooLarge)
	})
	assert.Zero(t, tr.NumRequests())
}

func TestServerBusy(t *testing.T) {
	tr := newTracker(t, nil, 5*time.Second)
	srv := srvStart(t, nil, acomm.WithMaxHandlers(2))
	g := newTaskGate(t)
	srv.Handle("block", g.handle)
	srv.Handle("double", srvDouble)

	first := callAsync(tr, srv, "block", nil)
	second := callAsync(tr, srv, "block", nil)
	waitFor(t, g.started, 5*time.Second, "first handler")
	waitFor(t, g.started, 5*time.Second, "second handler")

	// The limit is reached: the answer comes at once, not when a slot
	// frees up (the gate stays closed until after this call).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := tr.Call(ctx, srv.URL(), "double", 1)
	require.ErrorIs(t, err, acomm.ErrBusy)
	require.NotNil(t, resp)
	assert.Contains(t, err.Error(), `"double"`)

	g.open()
	for _, ch := range []<-chan callResult{first, second} {
		res := waitFor(t, ch, 5*time.Second, "blocked call")
		require.NoError(t, res.err)
		var s string
		require.NoError(t, res.resp.UnmarshalResult(&s))
		assert.Equal(t, "released", s)
	}
}

func TestServerStream(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB

	t.Run("served by the tracker", func(t *testing.T) {
		tr := newTracker(t, nil, 5*time.Second)
		srv := srvStart(t, tr)
		srv.Handle("stream", func(context.Context, *acomm.Request) (interface{}, io.ReadCloser, error) {
			return len(data), io.NopCloser(bytes.NewReader(data)), nil
		})
		resp, err := tr.Call(context.Background(), srv.URL(), "stream", nil)
		require.NoError(t, err)
		var n int
		require.NoError(t, resp.UnmarshalResult(&n))
		assert.Equal(t, len(data), n)
		require.NotNil(t, resp.StreamURL)
		assert.Equal(t, "unix", resp.StreamURL.Scheme)

		var buf bytes.Buffer
		require.NoError(t, acomm.Stream(&buf, resp.StreamURL))
		assert.True(t, bytes.Equal(data, buf.Bytes()), "stream corrupted")
	})
	t.Run("no tracker", func(t *testing.T) {
		tr := newTracker(t, nil, 5*time.Second)
		srv := srvStart(t, nil)
		src := &closeSignal{Reader: bytes.NewReader(data), closed: make(chan struct{})}
		srv.Handle("stream", func(context.Context, *acomm.Request) (interface{}, io.ReadCloser, error) {
			return "ignored", src, nil
		})
		resp, err := tr.Call(context.Background(), srv.URL(), "stream", nil)
		require.ErrorIs(t, err, acomm.ErrInvalidResponse)
		assert.Contains(t, err.Error(), "no tracker")
		assert.Nil(t, resp.StreamURL)
		assert.Nil(t, resp.Result)
		waitFor(t, src.closed, 5*time.Second, "stream closed")
	})
	t.Run("error closes the stream", func(t *testing.T) {
		tr := newTracker(t, nil, 5*time.Second)
		srv := srvStart(t, tr)
		src := &closeSignal{Reader: bytes.NewReader(data), closed: make(chan struct{})}
		srv.Handle("stream", func(context.Context, *acomm.Request) (interface{}, io.ReadCloser, error) {
			return nil, src, errors.New("half done")
		})
		resp, err := tr.Call(context.Background(), srv.URL(), "stream", nil)
		require.EqualError(t, err, "half done")
		assert.Nil(t, resp.StreamURL)
		waitFor(t, src.closed, 5*time.Second, "stream closed")
	})
}

func TestServerRefusesBadRequests(t *testing.T) {
	srv := srvStart(t, nil, acomm.WithIOTimeout(time.Second))
	var called atomic.Int64
	srv.Handle("echo", func(ctx context.Context, req *acomm.Request) (interface{}, io.ReadCloser, error) {
		called.Add(1)
		return srvEcho(ctx, req)
	})
	dial := func(t *testing.T) net.Conn {
		conn, err := net.Dial("unix", srv.Addr())
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	hook := &acomm.Request{ID: "x", Task: "echo", ResponseHook: newTracker(t, nil, time.Second).URL()}

	tests := []struct {
		name  string
		frame []byte
		id    string
		want  error
	}{
		{"garbage", srvFrame("garbage"), "", acomm.ErrMalformedFrame},
		{"wrong json type", srvFrame("[1,2]"), "", acomm.ErrInvalidRequest},
		{"bad response hook", srvFrame(`{"id":"a","task":"echo","responsehook":"ftp://x"}`), "a", acomm.ErrInvalidRequest},
		{"no response hook", mustFrame(t, &acomm.Request{ID: "b", Task: "echo"}), "b", acomm.ErrInvalidRequest},
		{"no task", mustFrame(t, &acomm.Request{ID: "c", ResponseHook: hook.ResponseHook}), "c", acomm.ErrInvalidRequest},
		{"no id", mustFrame(t, &acomm.Request{Task: "echo", ResponseHook: hook.ResponseHook}), "", acomm.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := dial(t)
			_, err := conn.Write(tt.frame)
			require.NoError(t, err)
			ack := &acomm.Response{}
			require.NoError(t, acomm.UnmarshalConnData(conn, ack))
			require.Error(t, ack.Error)
			assert.ErrorIs(t, ack.Error, tt.want, ack.Error.Error())
			assert.Equal(t, tt.id, ack.ID)

			// The connection still serves: a good frame is accepted.
			require.NoError(t, acomm.SendConnData(conn, hook))
			require.NoError(t, acomm.UnmarshalConnData(conn, ack))
			assert.NoError(t, ack.Error)
		})
	}
	t.Run("raw SendConnData without a hook", func(t *testing.T) {
		conn := dial(t)
		require.NoError(t, acomm.SendConnData(conn, &acomm.Request{ID: "raw", Task: "echo"}))
		ack := &acomm.Response{}
		require.NoError(t, acomm.UnmarshalConnData(conn, ack))
		assert.ErrorIs(t, ack.Error, acomm.ErrInvalidRequest)
		assert.Contains(t, ack.Error.Error(), "response hook")
	})
	t.Run("Send reports the refusal", func(t *testing.T) {
		err := acomm.Send(srv.URL(), &acomm.Request{ID: "s", Task: "echo"})
		assert.ErrorIs(t, err, acomm.ErrRefused)
		assert.ErrorIs(t, err, acomm.ErrInvalidRequest)
	})
	t.Run("oversized frame", func(t *testing.T) {
		small := srvStart(t, nil, acomm.WithMaxFrameSize(1<<10))
		conn, err := net.Dial("unix", small.Addr())
		require.NoError(t, err)
		defer conn.Close()
		_, err = conn.Write(srvFrame(strings.Repeat("x", 2<<10)))
		require.NoError(t, err)
		ack := &acomm.Response{}
		require.NoError(t, acomm.UnmarshalConnData(conn, ack))
		assert.ErrorIs(t, ack.Error, acomm.ErrFrameTooLarge)
	})
	// Refused requests never reach a handler; the good frames above (one
	// per table case) did.
	srv.Stop()
	assert.EqualValues(t, len(tests), called.Load())
}

// mustFrame encodes req as a frame.
func mustFrame(t testing.TB, req *acomm.Request) []byte {
	t.Helper()
	body, err := json.Marshal(req)
	require.NoError(t, err)
	return srvFrame(string(body))
}

func TestServerStop(t *testing.T) {
	socketGone := func(t *testing.T, srv *acomm.Server) {
		t.Helper()
		require.Eventually(t, func() bool {
			_, err := os.Stat(srv.Addr())
			return errors.Is(err, os.ErrNotExist)
		}, 5*time.Second, time.Millisecond, "socket removed")
	}

	t.Run("handler finishing within the grace period is answered", func(t *testing.T) {
		tr := newTracker(t, nil, 5*time.Second)
		srv := srvStart(t, nil, acomm.WithGracePeriod(time.Minute))
		g := newTaskGate(t)
		srv.Handle("block", g.handle)

		call := callAsync(tr, srv, "block", nil)
		waitFor(t, g.started, 5*time.Second, "handler start")
		stopped := runAsync(srv.Stop)
		socketGone(t, srv) // Stop is under way
		select {
		case <-stopped:
			t.Fatal("Stop returned while a handler ran within its grace period")
		default:
		}
		g.open()
		res := waitFor(t, call, 5*time.Second, "response")
		require.NoError(t, res.err)
		var s string
		require.NoError(t, res.resp.UnmarshalResult(&s))
		assert.Equal(t, "released", s, "the handler's context was not cancelled")
		waitFor(t, stopped, 5*time.Second, "Stop")
	})

	t.Run("handler past the grace period is cancelled and answered", func(t *testing.T) {
		tr := newTracker(t, nil, 5*time.Second)
		srv := srvStart(t, nil, acomm.WithGracePeriod(20*time.Millisecond))
		g := newTaskGate(t) // never opened before Stop
		srv.Handle("block", g.handle)

		call := callAsync(tr, srv, "block", nil)
		waitFor(t, g.started, 5*time.Second, "handler start")
		waitFor(t, runAsync(srv.Stop), 5*time.Second, "Stop")
		res := waitFor(t, call, 5*time.Second, "response")
		require.ErrorIs(t, res.err, acomm.ErrServerStopped)
		assert.Contains(t, res.err.Error(), context.Canceled.Error())
	})

	t.Run("handler ignoring cancellation is abandoned", func(t *testing.T) {
		dropLog, dropped := logCatcher("dropped result")
		tr := newTracker(t, nil, 5*time.Second)
		srv := srvStart(t, nil, acomm.WithGracePeriod(time.Millisecond), acomm.WithLogger(dropLog))
		started, release, returned := make(chan struct{}), make(chan struct{}), make(chan struct{})
		srv.Handle("stubborn", func(context.Context, *acomm.Request) (interface{}, io.ReadCloser, error) {
			defer close(returned)
			close(started)
			<-release
			return "too late", nil, nil
		})
		t.Cleanup(func() {
			select {
			case <-release:
			default:
				close(release)
			}
		})

		call := callAsync(tr, srv, "stubborn", nil)
		waitFor(t, started, 5*time.Second, "handler start")
		waitFor(t, runAsync(srv.Stop), 5*time.Second, "Stop")
		res := waitFor(t, call, 5*time.Second, "response")
		require.ErrorIs(t, res.err, acomm.ErrServerStopped)

		close(release)
		waitFor(t, returned, 5*time.Second, "handler return")
		waitFor(t, dropped, 5*time.Second, "late result dropped")
	})

	t.Run("lifecycle", func(t *testing.T) {
		path := sockPath(t, "s.sock")
		srv := acomm.NewServer(path, nil)
		assert.Equal(t, path, srv.Addr())
		assert.Equal(t, "unix://"+path, srv.URL().String())
		srv.Stop() // not started: harmless
		require.NoError(t, srv.Configure(acomm.WithSocketMode(0o600)))
		require.NoError(t, srv.Start())
		require.NoError(t, srv.Start(), "Start is idempotent")
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		assert.ErrorIs(t, srv.Configure(), acomm.ErrAlreadyStarted)

		other := acomm.NewServer(path, nil)
		assert.ErrorIs(t, other.Start(), acomm.ErrAddrInUse)

		var wg sync.WaitGroup
		for i := 0; i < 3; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); srv.Stop() }()
		}
		waitFor(t, runAsync(wg.Wait), 5*time.Second, "concurrent Stops")
		srv.Stop()
		_, err = os.Stat(path)
		assert.ErrorIs(t, err, os.ErrNotExist)
		assert.ErrorIs(t, srv.Start(), acomm.ErrServerStopped)
		assert.ErrorIs(t, srv.Configure(), acomm.ErrAlreadyStarted)
	})
}

func TestServerConfigure(t *testing.T) {
	srv := acomm.NewServer(sockPath(t, "s.sock"), nil)
	for name, opt := range map[string]acomm.Option{
		"negative grace":  acomm.WithGracePeriod(-time.Second),
		"zero handlers":   acomm.WithMaxHandlers(0),
		"nil logger":      acomm.WithLogger(nil),
		"zero frame size": acomm.WithMaxFrameSize(0),
	} {
		t.Run(name, func(t *testing.T) {
			assert.ErrorIs(t, srv.Configure(opt), acomm.ErrInvalidArgument)
		})
	}
	assert.NoError(t, srv.Configure(acomm.WithGracePeriod(0), acomm.WithMaxHandlers(1)))
	t.Run("handle", func(t *testing.T) {
		assert.Panics(t, func() { srv.Handle("", srvEcho) })
		assert.Panics(t, func() { srv.Handle("echo", nil) })
	})
	t.Run("bad socket path", func(t *testing.T) {
		assert.ErrorIs(t, acomm.NewServer("", nil).Start(), acomm.ErrInvalidArgument)
		long := "/tmp/" + strings.Repeat("x", 120)
		assert.ErrorIs(t, acomm.NewServer(long, nil).Start(), acomm.ErrSocketPathTooLong)
	})
}

// A handler registered while the server runs serves later requests.
func TestServerHandleWhileRunning(t *testing.T) {
	tr := newTracker(t, nil, 5*time.Second)
	srv := srvStart(t, nil)
	_, err := tr.Call(context.Background(), srv.URL(), "late", nil)
	require.ErrorIs(t, err, acomm.ErrUnknownTask)
	srv.Handle("late", func(context.Context, *acomm.Request) (interface{}, io.ReadCloser, error) {
		return "here", nil, nil
	})
	_, err = tr.Call(context.Background(), srv.URL(), "late", nil)
	require.NoError(t, err)
}

// runAsync runs f in a goroutine and returns a channel closed when it
// returns.
func runAsync(f func()) <-chan struct{} {
	ch := make(chan struct{})
	go func() { f(); close(ch) }()
	return ch
}

// benchArgs is a 100-byte JSON payload, as in BENCHMARKS.md.
var benchArgs = json.RawMessage(fmt.Sprintf(`{"payload":%q}`, strings.Repeat("x", 100-len(`{"payload":""}`))))

// benchCallSetup returns a running tracker and an echo server.
func benchCallSetup(b *testing.B) (*acomm.Tracker, *acomm.Server) {
	tr := newTracker(b, nil, 30*time.Second)
	srv := srvStart(b, nil)
	srv.Handle("echo", srvEcho)
	return tr, srv
}

// BenchmarkCall measures one Call at a time: request to the server, its
// acknowledgement, the handler, the response to the tracker and its
// acknowledgement.
func BenchmarkCall(b *testing.B) {
	tr, srv := benchCallSetup(b)
	u, ctx := srv.URL(), context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tr.Call(ctx, u, "echo", benchArgs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCallParallel keeps about 64 Calls in flight.
func BenchmarkCallParallel(b *testing.B) {
	tr, srv := benchCallSetup(b)
	u, ctx := srv.URL(), context.Background()
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := tr.Call(ctx, u, "echo", benchArgs); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
