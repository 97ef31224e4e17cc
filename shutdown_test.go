package acomm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/require"
)

// stopCalls are the ways to stop a component from inside one of its
// handlers.
var stopCalls = map[string]func(stop func(), shutdown func(context.Context) error) error{
	"Stop": func(stop func(), _ func(context.Context) error) error { stop(); return nil },
	"Shutdown": func(_ func(), shutdown func(context.Context) error) error {
		return shutdown(context.Background())
	},
	"Shutdown with deadline": func(_ func(), shutdown func(context.Context) error) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return shutdown(ctx)
	},
}

// Stop and Shutdown called from a tracker's response handler return once
// nothing is tracked and the grace period is over, without waiting for
// that handler, however the handler was reached, and the tracker finishes
// stopping once it returns.
func TestTrackerStopFromHandler(t *testing.T) {
	deliveries := map[string]func(t *testing.T, tr *acomm.Tracker, req *acomm.Request){
		"response on the socket": func(t *testing.T, tr *acomm.Tracker, req *acomm.Request) {
			require.NoError(t, tr.TrackRequest(req, 0))
			require.NoError(t, acomm.Send(tr.URL(), &acomm.Response{ID: req.ID}))
		},
		"HandleResponse": func(t *testing.T, tr *acomm.Tracker, req *acomm.Request) {
			require.NoError(t, tr.TrackRequest(req, 0))
			go tr.HandleResponse(&acomm.Response{ID: req.ID})
		},
		"timeout": func(t *testing.T, tr *acomm.Tracker, req *acomm.Request) {
			require.NoError(t, tr.TrackRequest(req, time.Millisecond))
		},
		"abandoned by a Shutdown out of time": func(t *testing.T, tr *acomm.Tracker, req *acomm.Request) {
			require.NoError(t, tr.TrackRequest(req, 0))
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			gaveUp := chanOfValue(func() error { return tr.Shutdown(ctx) })
			t.Cleanup(func() {
				cancel()
				<-gaveUp // bounded by ctx
			})
		},
	}
	for how, deliver := range deliveries {
		for name, call := range stopCalls {
			t.Run(how+"/"+name, func(t *testing.T) {
				tr := newTracker(t, nil, time.Minute, acomm.WithGracePeriod(10*time.Millisecond))
				returned := make(chan error, 1)
				h := func(*acomm.Request, *acomm.Response) {
					returned <- call(tr.Stop, tr.Shutdown)
				}
				req, err := acomm.NewRequest("t", tr.URL().String(), nil, h, h)
				require.NoError(t, err)
				deliver(t, tr, req)
				require.NoError(t, waitFor(t, returned, 5*time.Second, "Stop inside the handler"))
				// The stop finishes once the handler returns. A Stop
				// made now, while the handler may still be running,
				// may return first (see Tracker.Stop): the socket's
				// removal says when.
				require.Eventually(t, func() bool {
					_, err := os.Stat(tr.Addr())
					return errors.Is(err, os.ErrNotExist)
				}, 5*time.Second, time.Millisecond, "the stop, after the handler")
				require.ErrorIs(t, tr.TrackRequest(req, 0), acomm.ErrNotStarted)
			})
		}
	}
}

// Shutdown returns ctx.Err() when its context ends, without waiting for
// a handler that does not return; the stop finishes once it does.
func TestTrackerShutdownBlockedHandler(t *testing.T) {
	cases := map[string]struct {
		tracked bool // a second request, never answered, is tracked
	}{
		"handler blocked":                        {},
		"handler blocked, another request asked": {tracked: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tr := newTracker(t, nil, time.Minute)
			started, release := make(chan struct{}), make(chan struct{})
			t.Cleanup(func() { closeIfOpen(release) })
			block := func(*acomm.Request, *acomm.Response) { close(started); <-release }
			req, err := acomm.NewRequest("t", tr.URL().String(), nil, block, block)
			require.NoError(t, err)
			require.NoError(t, tr.TrackRequest(req, 0))
			abandoned := make(chan result, 1)
			if tc.tracked {
				require.NoError(t, tr.TrackRequest(newRequest(t, tr, "t", nil, abandoned), 0))
			}
			require.NoError(t, acomm.Send(tr.URL(), &acomm.Response{ID: req.ID}))
			waitFor(t, started, 5*time.Second, "handler start")

			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			err = waitFor(t, chanOfValue(func() error { return tr.Shutdown(ctx) }), 5*time.Second, "Shutdown")
			require.ErrorIs(t, err, context.DeadlineExceeded)
			if tc.tracked {
				got := waitFor(t, abandoned, 5*time.Second, "abandoned request's handler")
				require.ErrorIs(t, got.resp.Error, acomm.ErrTrackerStopped)
			}
			require.ErrorIs(t, tr.Start(), acomm.ErrNotStarted, "still stopping")

			close(release)
			waitFor(t, chanOf(tr.Stop), 5*time.Second, "the stop, after the handler")
			require.NoError(t, tr.Start(), "stopped: may start again")
		})
	}
}

// Shutdown called from a server's task handler with the handler's context
// (or one derived from it) returns at once, whatever the grace period, and
// the handler's answer reaches its caller. Stop, or Shutdown with another
// context, cannot tell it was called from the handler: it returns when the
// stop abandons the handler, after the grace period and a further one, and
// the caller is answered with ErrServerStopped; it does not deadlock.
func TestServerStopFromHandler(t *testing.T) {
	const short, long = 10 * time.Millisecond, time.Minute
	cases := map[string]struct {
		grace     time.Duration
		stop      func(ctx context.Context, srv *acomm.Server) error
		abandoned bool // the handler's caller is answered ErrServerStopped
	}{
		"Shutdown with the handler's context": {long, func(ctx context.Context, srv *acomm.Server) error {
			return srv.Shutdown(ctx)
		}, false},
		"Shutdown with a context derived from it": {long, func(ctx context.Context, srv *acomm.Server) error {
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			return srv.Shutdown(ctx)
		}, false},
		"Stop": {short, func(_ context.Context, srv *acomm.Server) error {
			srv.Stop()
			return nil
		}, true},
		"Shutdown with another context": {short, func(_ context.Context, srv *acomm.Server) error {
			return srv.Shutdown(context.Background())
		}, true},
	}
	for name, tc := range cases {
		// On a kept link (after a first call), the lone call is run by
		// the connection's reader itself (a held job).
		for _, kept := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/kept link %v", name, kept), func(t *testing.T) {
				tr := newTracker(t, nil, 5*time.Second)
				srv := srvStart(t, nil, acomm.WithGracePeriod(tc.grace))
				returned := make(chan error, 1)
				srv.Handle("stop", func(ctx context.Context, _ *acomm.Request) (interface{}, io.ReadCloser, error) {
					returned <- tc.stop(ctx, srv)
					return "stopping", nil, nil
				})
				srv.Handle("ping", srvEcho)
				if kept {
					_, err := tr.Call(context.Background(), srv.URL(), "ping", "x")
					require.NoError(t, err)
				}
				res := waitFor(t, callAsync(tr, srv, "stop", nil), 10*time.Second, "response")
				require.NoError(t, waitFor(t, returned, 5*time.Second, "Stop inside the handler"))
				if tc.abandoned {
					require.ErrorIs(t, res.err, acomm.ErrServerStopped)
				} else {
					require.NoError(t, res.err)
					var s string
					require.NoError(t, res.resp.UnmarshalResult(&s))
					require.Equal(t, "stopping", s)
				}
				waitFor(t, chanOf(srv.Stop), 5*time.Second, "the stop, after the handler")
				_, err := os.Stat(srv.Addr())
				require.ErrorIs(t, err, os.ErrNotExist)
			})
		}
	}
}

// Shutdown returns ctx.Err() when its context ends, before the grace
// period, without waiting for a handler that ignores cancellation; its
// caller is answered with ErrServerStopped.
func TestServerShutdownBlockedHandler(t *testing.T) {
	tr := newTracker(t, nil, 5*time.Second)
	srv := srvStart(t, nil, acomm.WithGracePeriod(time.Minute))
	started, release := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { closeIfOpen(release) })
	srv.Handle("stubborn", func(context.Context, *acomm.Request) (interface{}, io.ReadCloser, error) {
		close(started)
		<-release
		return "too late", nil, nil
	})
	call := callAsync(tr, srv, "stubborn", nil)
	waitFor(t, started, 5*time.Second, "handler start")

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := waitFor(t, chanOfValue(func() error { return srv.Shutdown(ctx) }), 5*time.Second, "Shutdown")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	res := waitFor(t, call, 5*time.Second, "response")
	require.ErrorIs(t, res.err, acomm.ErrServerStopped)

	close(release)
	waitFor(t, chanOf(srv.Stop), 5*time.Second, "the stop")
	require.NoError(t, srv.Shutdown(context.Background()), "stopped")
}

// UnixListener.Shutdown waits for the connections handed out until its
// context ends, then closes them and returns ctx.Err().
func TestUnixListenerShutdown(t *testing.T) {
	cases := map[string]struct {
		done bool // the connection is finished with DoneConn
		want error
	}{
		"connection finished": {done: true},
		"connection kept":     {want: context.DeadlineExceeded},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ul := newListener(t, 0)
			client := dialUnix(t, ul.Addr())
			conn := ul.NextConn()
			require.NotNil(t, conn)
			if tc.done {
				ul.DoneConn(conn)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			err := waitFor(t, chanOfValue(func() error { return ul.Shutdown(ctx) }), 5*time.Second, "Shutdown")
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
			_, err = client.Read(make([]byte, 1))
			require.ErrorIs(t, err, io.EOF, "connection closed")
			_, err = os.Stat(ul.Addr())
			require.ErrorIs(t, err, os.ErrNotExist)
			require.NoError(t, ul.Shutdown(context.Background()), "stopped")
		})
	}
}

// UnixListener.Shutdown without a deadline is bounded as a Server's is:
// it waits for the connections handed out for the grace period
// (WithGracePeriod, default DefaultGracePeriod), then closes those still
// open and returns; a connection finished in time is not cut.
func TestUnixListenerShutdownGrace(t *testing.T) {
	cases := map[string]struct {
		done bool // the connection is finished with DoneConn within the grace period
	}{
		"connection kept past the grace period": {},
		"connection finished in time":           {done: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ul := newListener(t, 0, acomm.WithGracePeriod(50*time.Millisecond))
			client := dialUnix(t, ul.Addr())
			conn := ul.NextConn()
			require.NotNil(t, conn)
			if tc.done {
				ul.DoneConn(conn)
			}
			err := waitFor(t, chanOfValue(func() error { return ul.Shutdown(context.Background()) }), 5*time.Second, "Shutdown")
			require.NoError(t, err, "the grace period is the stop's own bound, not a failure")
			_, err = client.Read(make([]byte, 1))
			require.ErrorIs(t, err, io.EOF, "connection closed")
			_, err = os.Stat(ul.Addr())
			require.ErrorIs(t, err, os.ErrNotExist)
		})
	}
}

// closeIfOpen closes ch unless it is closed.
func closeIfOpen(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}
