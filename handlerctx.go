package acomm

import (
	"context"
	"sync"
	"time"
)

// handlerContext is the context of one handler run: the server's, with the
// caller's deadline, cancelled when the job ends (release) or its caller
// cancels. It means exactly what context.WithDeadline(server's, deadline)
// would, but builds that context (a cancelCtx, a timer and its
// registration: 4 allocations, and a timer started and stopped in the
// runtime's heap) only once the handler asks for it: on Done, or on a Value
// other than the server's own key. Most handlers answer without watching
// their context; theirs costs nothing (BenchmarkStage/server-dispatch).
//
// Before it is built, Err tells the same story from the server's context,
// the deadline and the job's end, and the first error it tells stays (a
// context's Err never changes once it is not nil); once built, everything
// is the built context's, which is made to end with that error if there
// was one. One difference from WithDeadline remains: when both the
// deadline and the server's stop came before anybody asked, the stop is
// told, though it may have come second.
type handlerContext struct {
	parent context.Context // the server's: Stop cancels it
	dl     time.Time       // the caller's deadline; zero for none

	mu     sync.Mutex
	built  context.Context    // nil until needed
	cancel context.CancelFunc // built's
	ended  error              // the error told before built, if any: it stays
}

var _ context.Context = (*handlerContext)(nil)

// init sets c up for a job under parent with deadline dl (zero: none).
func (c *handlerContext) init(parent context.Context, dl time.Time) {
	c.parent, c.dl = parent, dl
}

// Deadline returns the caller's deadline, if it sent one.
func (c *handlerContext) Deadline() (time.Time, bool) {
	if c.dl.IsZero() {
		return c.parent.Deadline()
	}
	return c.dl, true
}

// Done returns the built context's channel.
func (c *handlerContext) Done() <-chan struct{} { return c.build().Done() }

// Err returns why the context ended, nil while it has not.
func (c *handlerContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.built != nil:
		return c.built.Err()
	case c.ended == nil:
		c.ended = c.endNow()
	}
	return c.ended
}

// endNow is why the context ends now, if it does, by its parent or its
// deadline, as the built context would tell.
func (c *handlerContext) endNow() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !c.dl.IsZero() && !time.Now().Before(c.dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value returns the server's own key without building; anything else is
// the built context's (which the context package's own keys need).
func (c *handlerContext) Value(key any) any {
	if _, ok := key.(handlerOf); ok {
		return c.parent.Value(key)
	}
	return c.build().Value(key)
}

// build returns the context, building it if it is not yet.
func (c *handlerContext) build() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.built != nil:
	case c.ended == context.DeadlineExceeded:
		// Past its deadline already, and told so: a stop of the server
		// since must not change that.
		c.built, c.cancel = context.WithDeadline(context.WithoutCancel(c.parent), c.dl)
	case c.ended != nil:
		c.built, c.cancel = context.WithCancel(c.parent)
		c.cancel()
	case c.dl.IsZero():
		c.built, c.cancel = context.WithCancel(c.parent)
	default:
		c.built, c.cancel = context.WithDeadline(c.parent, c.dl)
	}
	return c.built
}

// end cancels the context: the job is over, or its caller cancelled it.
func (c *handlerContext) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.built != nil:
		c.cancel()
	case c.ended == nil:
		c.ended = c.endNow()
		if c.ended == nil {
			c.ended = context.Canceled
		}
	}
}

// String names the context as the context package's do.
func (c *handlerContext) String() string { return "acomm.handlerContext" }
