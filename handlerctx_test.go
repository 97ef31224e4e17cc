package acomm

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A handler's context tells what context.WithDeadline(server's, deadline)
// would, whether it is built before its end or after, by Done or by Value.
func TestHandlerContextMeansWithDeadline(t *testing.T) {
	const tick = 20 * time.Millisecond
	type step func(t *testing.T, c context.Context, end func(), stopServer func())
	wait := func(d time.Duration) step {
		return func(*testing.T, context.Context, func(), func()) { time.Sleep(d) }
	}
	done := step(func(_ *testing.T, c context.Context, _, _ func()) { _ = c.Done() })
	value := step(func(_ *testing.T, c context.Context, _, _ func()) { _ = c.Value("k") })
	end := step(func(_ *testing.T, _ context.Context, end, _ func()) { end() })
	stop := step(func(_ *testing.T, _ context.Context, _, stop func()) { stop() })
	for _, tc := range []struct {
		name     string
		deadline time.Duration // 0: none
		steps    []step
		want     error
	}{
		{"running", time.Minute, nil, nil},
		{"running, built", time.Minute, []step{done}, nil},
		{"no deadline", 0, []step{value}, nil},
		{"ended", time.Minute, []step{end}, context.Canceled},
		{"ended, then built", time.Minute, []step{end, done}, context.Canceled},
		{"built, then ended", time.Minute, []step{done, end}, context.Canceled},
		{"past its deadline", tick, []step{wait(2 * tick)}, context.DeadlineExceeded},
		{"past its deadline, built", tick, []step{done, wait(2 * tick)}, context.DeadlineExceeded},
		{"past its deadline, ended, built", tick, []step{wait(2 * tick), end, done}, context.DeadlineExceeded},
		{"server stopped", time.Minute, []step{stop}, context.Canceled},
		{"server stopped, built", time.Minute, []step{stop, value}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, stopServer := context.WithCancel(context.WithValue(context.Background(), handlerOf{}, "srv"))
			t.Cleanup(stopServer)
			var dl time.Time
			if tc.deadline > 0 {
				dl = time.Now().Add(tc.deadline)
			}
			var c handlerContext
			c.init(parent, dl)
			t.Cleanup(c.end)
			for _, s := range tc.steps {
				s(t, &c, c.end, stopServer)
			}
			assert.ErrorIs(t, c.Err(), tc.want)
			if tc.want == nil {
				assert.NoError(t, c.Err())
			}
			gotDL, ok := c.Deadline()
			assert.Equal(t, tc.deadline > 0, ok)
			assert.Equal(t, dl, gotDL)
			assert.Equal(t, "srv", c.Value(handlerOf{}))

			// What is built agrees: Done, Cause and a child's Err.
			child, cancel := context.WithCancel(&c)
			defer cancel()
			if tc.want == nil {
				select {
				case <-c.Done():
					t.Fatal("done while running")
				default:
				}
				assert.NoError(t, child.Err())
				return
			}
			select {
			case <-c.Done():
			case <-time.After(time.Second):
				t.Fatal("not done")
			}
			assert.ErrorIs(t, c.Err(), tc.want)
			assert.ErrorIs(t, context.Cause(&c), tc.want)
			assert.ErrorIs(t, child.Err(), tc.want)
		})
	}
}

// A context built while running ends at its deadline, and a child's
// deadline under it says DeadlineExceeded, as one of WithDeadline would.
func TestHandlerContextDeadlineReachesChildren(t *testing.T) {
	var c handlerContext
	c.init(context.Background(), time.Now().Add(30*time.Millisecond))
	t.Cleanup(c.end)
	child, cancel := context.WithTimeout(&c, time.Minute)
	defer cancel()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("child not done at its parent's deadline")
	}
	require.ErrorIs(t, child.Err(), context.DeadlineExceeded)
	require.ErrorIs(t, c.Err(), context.DeadlineExceeded)
}

// Ending, building and asking at once from many goroutines is race-free
// and ends in one story.
func TestHandlerContextConcurrent(t *testing.T) {
	for range 50 {
		var c handlerContext
		c.init(context.Background(), time.Now().Add(time.Minute))
		start := make(chan struct{})
		finished := make(chan struct{}, 3)
		for _, f := range []func(){c.end, func() { _ = c.Done() }, func() { _ = c.Err() }} {
			go func() {
				<-start
				f()
				finished <- struct{}{}
			}()
		}
		close(start)
		for range 3 {
			<-finished
		}
		<-c.Done()
		require.ErrorIs(t, c.Err(), context.Canceled)
	}
}

// Once Err has told an error, it tells the same one, whatever comes after
// and whether or not the context is built since.
func TestHandlerContextErrNeverChanges(t *testing.T) {
	const tick = 10 * time.Millisecond
	for _, tc := range []struct {
		name  string
		first func(c *handlerContext, stop func()) // makes Err non-nil
		then  func(c *handlerContext, stop func())
		want  error
	}{
		{"ended, then past the deadline, then built", func(c *handlerContext, _ func()) { c.end() },
			func(c *handlerContext, _ func()) { time.Sleep(3 * tick); <-c.Done() }, context.Canceled},
		{"past the deadline, then the server stopped", func(*handlerContext, func()) { time.Sleep(3 * tick) },
			func(_ *handlerContext, stop func()) { stop() }, context.DeadlineExceeded},
		{"past the deadline, then the server stopped, then built", func(*handlerContext, func()) { time.Sleep(3 * tick) },
			func(c *handlerContext, stop func()) { stop(); <-c.Done() }, context.DeadlineExceeded},
		{"server stopped, then past the deadline, then built", func(_ *handlerContext, stop func()) { stop() },
			func(c *handlerContext, _ func()) { time.Sleep(3 * tick); _ = c.Value("k") }, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, stop := context.WithCancel(context.Background())
			t.Cleanup(stop)
			var c handlerContext
			c.init(parent, time.Now().Add(tick))
			t.Cleanup(c.end)
			tc.first(&c, stop)
			first := c.Err()
			require.ErrorIs(t, first, tc.want)
			tc.then(&c, stop)
			require.Equal(t, first, c.Err())
			require.ErrorIs(t, context.Cause(&c), tc.want)
		})
	}
}
