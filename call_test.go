package acomm_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCallConcurrent(t *testing.T) {
	const n = 1000
	tr := newTracker(t, nil, 30*time.Second)
	srv := srvStart(t, nil)
	var handled atomic.Int64
	srv.Handle("double", func(ctx context.Context, req *acomm.Request) (interface{}, io.ReadCloser, error) {
		handled.Add(1)
		return srvDouble(ctx, req)
	})

	errs := make([]error, n)
	got := make([]int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := tr.Call(context.Background(), srv.URL(), "double", i)
			if err == nil {
				err = resp.UnmarshalResult(&got[i])
			}
			errs[i] = err
		}(i)
	}
	waitFor(t, runAsync(wg.Wait), 60*time.Second, "all calls")
	for i := 0; i < n; i++ {
		require.NoError(t, errs[i], "call %d", i)
		require.Equal(t, 2*i, got[i], "call %d", i)
	}
	assert.EqualValues(t, n, handled.Load(), "each request handled once")
	assert.Zero(t, tr.NumRequests())
}

func TestCallContext(t *testing.T) {
	t.Run("cancelled while the handler runs", func(t *testing.T) {
		dropLog, dropped := logCatcher("dropped response for untracked request")
		tr := newTracker(t, nil, 5*time.Second, acomm.WithLogger(dropLog))
		srv := srvStart(t, nil)
		g := newTaskGate(t)
		srv.Handle("block", g.handle)

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		call := make(chan callResult, 1)
		go func() {
			resp, err := tr.Call(ctx, srv.URL(), "block", nil)
			call <- callResult{resp, err}
		}()
		id := waitFor(t, g.started, 5*time.Second, "handler start")
		cancel()
		res := waitFor(t, call, 5*time.Second, "Call to return")
		require.ErrorIs(t, res.err, context.Canceled)
		assert.Nil(t, res.resp)
		assert.Zero(t, tr.NumRequests())

		// The handler finishes; its response reaches the tracker and is
		// dropped.
		g.open()
		entry := waitFor(t, dropped, 5*time.Second, "late response dropped")
		assert.Equal(t, id, entry.Data["id"])
	})

	t.Run("deadline", func(t *testing.T) {
		tr := newTracker(t, nil, 5*time.Second)
		srv := srvStart(t, nil)
		g := newTaskGate(t)
		srv.Handle("block", g.handle)

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		resp, err := tr.Call(ctx, srv.URL(), "block", nil)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Nil(t, resp)
		assert.Zero(t, tr.NumRequests())
	})

	t.Run("already done", func(t *testing.T) {
		tr := newTracker(t, nil, 5*time.Second)
		srv := srvStart(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := tr.Call(ctx, srv.URL(), "echo", nil)
		require.ErrorIs(t, err, context.Canceled)
		ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		_, err = tr.Call(ctx, srv.URL(), "echo", nil)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Zero(t, tr.NumRequests())
	})

	t.Run("tracker timeout", func(t *testing.T) {
		tr := newTracker(t, nil, 30*time.Millisecond)
		srv := srvStart(t, nil)
		g := newTaskGate(t)
		srv.Handle("block", g.handle)

		// A later ctx deadline leaves the tracker's timeout in force.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		resp, err := tr.Call(ctx, srv.URL(), "block", nil)
		require.ErrorIs(t, err, acomm.ErrTimeout)
		require.NotNil(t, resp)
		assert.Equal(t, err, resp.Error)
		assert.Zero(t, tr.NumRequests())
	})
}

func TestCallErrors(t *testing.T) {
	tr := newTracker(t, nil, 5*time.Second)
	ctx := context.Background()

	t.Run("send fails", func(t *testing.T) {
		missing := &url.URL{Scheme: "unix", Path: sockPath(t, "missing.sock")}
		resp, err := tr.Call(ctx, missing, "echo", nil)
		require.Error(t, err)
		assert.Nil(t, resp)
		assert.Zero(t, tr.NumRequests())
	})
	t.Run("refused", func(t *testing.T) {
		srv := srvStart(t, nil, acomm.WithMaxFrameSize(1<<10))
		_, err := tr.Call(ctx, srv.URL(), "echo", strings.Repeat("x", 2<<10))
		require.ErrorIs(t, err, acomm.ErrRefused)
		assert.ErrorIs(t, err, acomm.ErrFrameTooLarge)
		assert.Zero(t, tr.NumRequests())
	})
	t.Run("bad arguments", func(t *testing.T) {
		srv := srvStart(t, nil)
		_, err := tr.Call(ctx, nil, "echo", nil)
		assert.ErrorIs(t, err, acomm.ErrInvalidURL)
		_, err = tr.Call(ctx, &url.URL{Scheme: "ftp", Host: "x"}, "echo", nil)
		assert.ErrorIs(t, err, acomm.ErrUnsupportedScheme)
		_, err = tr.Call(ctx, srv.URL(), "", nil)
		assert.ErrorIs(t, err, acomm.ErrInvalidRequest)
		_, err = tr.Call(ctx, srv.URL(), "echo", func() {})
		assert.ErrorIs(t, err, acomm.ErrInvalidRequest)
		var noCtx context.Context
		_, err = tr.Call(noCtx, srv.URL(), "echo", nil)
		assert.ErrorIs(t, err, acomm.ErrInvalidArgument)
		assert.Zero(t, tr.NumRequests())
	})
	t.Run("tracker not started", func(t *testing.T) {
		srv := srvStart(t, nil)
		idle, err := acomm.NewTracker(sockPath(t, "t.sock"), nil, time.Second)
		require.NoError(t, err)
		_, err = idle.Call(ctx, srv.URL(), "echo", nil)
		assert.ErrorIs(t, err, acomm.ErrNotStarted)
	})
}

// Call sends to an http(s) service with the same semantics: the service
// decodes the request, acknowledges it and answers on its response hook.
func TestCallHTTP(t *testing.T) {
	tr := newTracker(t, nil, 5*time.Second)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := &acomm.Request{}
		if err := json.NewDecoder(r.Body).Decode(req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var args struct{ Name string }
		if err := req.UnmarshalArgs(&args); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := acomm.NewResponse(req, "hello, "+args.Name, nil, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := acomm.Send(req.ResponseHook, resp); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(hs.Close)
	dest, err := url.Parse(hs.URL + "/acomm")
	require.NoError(t, err)

	resp, err := tr.Call(context.Background(), dest, "greet", map[string]string{"Name": "http"})
	require.NoError(t, err)
	var s string
	require.NoError(t, resp.UnmarshalResult(&s))
	assert.Equal(t, "hello, http", s)
	assert.Zero(t, tr.NumRequests())

	t.Run("error status", func(t *testing.T) {
		_, err := tr.Call(context.Background(), dest, "greet", "not an object")
		require.ErrorIs(t, err, acomm.ErrHTTPStatus)
		assert.Zero(t, tr.NumRequests())
	})
}
