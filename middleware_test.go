package acomm_test

import (
	"context"
	"io"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// trail records the steps of middleware and handlers, in order.
type trail struct {
	mu    sync.Mutex
	steps []string
}

func (tr *trail) add(s string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.steps = append(tr.steps, s)
}

// take returns the steps so far and forgets them.
func (tr *trail) take() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	s := tr.steps
	tr.steps = nil
	return s
}

// handlerMW returns a server middleware that records name around the
// handler it wraps.
func handlerMW(tr *trail, name string) func(acomm.TaskHandler) acomm.TaskHandler {
	return func(next acomm.TaskHandler) acomm.TaskHandler {
		return func(ctx context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
			tr.add(name + ">" + req.Task)
			res, s, err := next(ctx, req)
			tr.add(name + "<")
			return res, s, err
		}
	}
}

func TestServerUse(t *testing.T) {
	tk := newTracker(t, nil, 5*time.Second)
	srv := srvStart(t, tk)
	steps := &trail{}
	srv.Handle("before", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) {
		steps.add("before")
		return nil, nil, nil
	})
	srv.Use(handlerMW(steps, "a"), handlerMW(steps, "b"))
	srv.Use(handlerMW(steps, "c"))
	srv.Handle("after", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) {
		steps.add("after")
		return nil, nil, nil
	})

	for _, task := range []string{"before", "after"} {
		t.Run("handler registered "+task+" Use", func(t *testing.T) {
			_, err := tk.Call(context.Background(), srv.URL(), task, nil)
			require.NoError(t, err)
			assert.Equal(t, []string{"a>" + task, "b>" + task, "c>" + task, task, "c<", "b<", "a<"}, steps.take())
		})
	}

	t.Run("built-in tasks too", func(t *testing.T) {
		for _, task := range []string{acomm.PingTask, acomm.InfoTask} {
			_, err := tk.Call(context.Background(), srv.URL(), task, nil)
			require.NoError(t, err)
			assert.Equal(t, []string{"a>" + task, "b>" + task, "c>" + task, "c<", "b<", "a<"}, steps.take())
		}
	})

	t.Run("once per call, with many in flight", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := tk.Call(context.Background(), srv.URL(), "after", nil)
				assert.NoError(t, err)
			}()
		}
		wg.Wait()
		count := map[string]int{}
		for _, s := range steps.take() {
			count[s]++
		}
		assert.Equal(t, map[string]int{"a>after": 20, "b>after": 20, "c>after": 20, "after": 20, "c<": 20, "b<": 20, "a<": 20}, count)
	})

	t.Run("a middleware can refuse without calling the handler", func(t *testing.T) {
		srv := srvStart(t, tk)
		srv.Handle("echo", srvEcho)
		srv.Use(func(next acomm.TaskHandler) acomm.TaskHandler {
			return func(ctx context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
				if req.Meta["user"] != "ops" {
					return nil, nil, acomm.ErrInvalidRequest
				}
				return next(ctx, req)
			}
		})
		_, err := tk.Call(context.Background(), srv.URL(), "echo", 1)
		assert.ErrorIs(t, err, acomm.ErrInvalidRequest)
		resp, err := tk.Call(acomm.ContextWithMeta(context.Background(), map[string]string{"user": "ops"}), srv.URL(), "echo", 1)
		require.NoError(t, err)
		assert.JSONEq(t, `1`, string(*resp.Result))
	})

	t.Run("nil middleware panics", func(t *testing.T) {
		assert.Panics(t, func() { srv.Use(nil) })
	})

	t.Run("a middleware that returns no handler is a panic, answered", func(t *testing.T) {
		srv := srvStart(t, tk)
		srv.Handle("echo", srvEcho)
		srv.Use(func(acomm.TaskHandler) acomm.TaskHandler { return nil })
		_, err := tk.Call(context.Background(), srv.URL(), "echo", 1)
		assert.ErrorIs(t, err, acomm.ErrHandlerPanic)
	})
}

func TestCallMiddleware(t *testing.T) {
	steps := &trail{}
	mw := func(name string) func(acomm.CallFunc) acomm.CallFunc {
		return func(next acomm.CallFunc) acomm.CallFunc {
			return func(ctx context.Context, dest *url.URL, task string, args any) (*acomm.Response, error) {
				steps.add(name + ">" + task)
				ctx = acomm.ContextWithMeta(ctx, map[string]string{"via-" + name: "1"})
				resp, err := next(ctx, dest, task, args)
				steps.add(name + "<")
				return resp, err
			}
		}
	}
	tk := newTracker(t, nil, 5*time.Second,
		acomm.WithCallMiddleware(mw("a"), mw("b")), acomm.WithCallMiddleware(mw("c")))
	srv := srvStart(t, tk)
	srv.Handle("meta", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		steps.add("handler")
		return req.Meta, nil, nil
	})

	resp, err := tk.Call(context.Background(), srv.URL(), "meta", nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"a>meta", "b>meta", "c>meta", "handler", "c<", "b<", "a<"}, steps.take())
	assert.JSONEq(t, `{"via-a":"1","via-b":"1","via-c":"1"}`, string(*resp.Result), "each middleware's meta reached the handler")

	t.Run("refused options", func(t *testing.T) {
		tk, err := acomm.NewTracker(sockPath(t, "t.sock"), nil, time.Second)
		require.NoError(t, err)
		assert.ErrorIs(t, tk.Configure(acomm.WithCallMiddleware(nil)), acomm.ErrInvalidArgument)
		nilCall := func(acomm.CallFunc) acomm.CallFunc { return nil }
		assert.ErrorIs(t, tk.Configure(acomm.WithCallMiddleware(nilCall)), acomm.ErrInvalidArgument)
	})
}
