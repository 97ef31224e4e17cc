package acomm

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// Shutting down: every component stops with Shutdown(ctx), which returns
// nil once it has stopped, or ctx.Err() as soon as ctx ends, leaving what
// is left of the stop (closing connections, answering or abandoning work
// in progress) to finish in the background. The seed API's Stop methods
// wrap it.
//
// Stopping from a handler. A component that runs user code (a Tracker's
// response handlers, a Server's task handlers) waits for that code to
// return; a handler that stops its own component cannot return until its
// Stop or Shutdown call does. Nothing tells a call where it was made by
// walking stacks or naming goroutines; the rule rests on what the
// component can see:
//
//   - A Server's task handler gets a context that names its server
//     (handlerOf): a Shutdown given it, or a context derived from it, is
//     known to come from that handler and returns nil at once; the stop
//     goes on, and waits for that handler as for the others. Any other
//     call waits as usual, bounded by the stop itself: after the grace
//     period and a further one (at least minCancelWait) the server
//     abandons the handlers still running, so a Stop from a handler
//     returns then, its handler's caller answered with ErrServerStopped.
//   - A Tracker's response handlers get no context, and a Tracker's stop
//     has no such bound, so the Tracker counts (stopWaiters): a Stop or
//     Shutdown call waits for the handlers, except that once no request
//     is tracked and the grace period (WithGracePeriod, default
//     DefaultGracePeriod) is over, it stops waiting for handlers that
//     were already running when it began, if each handler still running
//     was running when one of the waiting calls began, a different call
//     for each (each of them may then be blocked in one of those calls).
//     Those calls return nil, and the stop finishes in the background when
//     the handlers return. A handler that started after a call began
//     cannot be its caller and is waited for without bound, as is every
//     handler by a call that began while none was running. What this
//     cannot tell apart: an outside call made while a handler runs is
//     taken for a possible caller of that handler, and once nothing is
//     tracked and the grace period is over, returns before it.
//
// So a handler of one component stopping another is an outside caller of
// the other, whose Stop waits as any other: its own handlers are not its
// caller.

// stopWaiters counts the response handlers a Tracker runs and the Stop
// and Shutdown calls waiting for it to stop, and releases those calls as
// the rule above says.
type stopWaiters struct {
	mu      sync.Mutex
	seq     uint64              // handlers started so far
	running map[uint64]struct{} // the seq of each handler running
	calls   map[*stopCall]struct{}
	late    bool // no request is tracked, and the grace period is over
}

// stopCall is a Stop or Shutdown call waiting; release is closed when it
// stops waiting for the handlers.
type stopCall struct {
	entry   uint64 // the seq of the last handler started when the call began
	release chan struct{}
}

// started records that a handler starts, and returns its seq for ended.
func (w *stopWaiters) started() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running == nil {
		w.running = make(map[uint64]struct{})
	}
	w.seq++
	w.running[w.seq] = struct{}{}
	return w.seq
}

// ended records that the handler with seq returned.
func (w *stopWaiters) ended(seq uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.running, seq)
	w.releaseLocked()
}

// onlyHandlersLeft records that the stop waits for nothing but handlers
// (no request is tracked), and that the grace period is over.
func (w *stopWaiters) onlyHandlersLeft() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.late = true
	w.releaseLocked()
}

// reset forgets onlyHandlersLeft, for a component that starts again.
func (w *stopWaiters) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.late = false
}

// releaseLocked releases the waiting calls that may have a handler for a
// caller, if every handler running may be blocked in one of them: the
// handlers, latest first, can each be given a different call that began
// while it ran. (A call's candidates are the running handlers whose seq is
// at most its entry: nested sets, so matching the latest handler to the
// latest call, and so on, finds such an assignment if there is one.)
// w.mu must be held.
func (w *stopWaiters) releaseLocked() {
	if !w.late || len(w.running) == 0 || len(w.running) > len(w.calls) {
		return
	}
	handlers := make([]uint64, 0, len(w.running))
	for seq := range w.running {
		handlers = append(handlers, seq)
	}
	entries := make([]uint64, 0, len(w.calls))
	for c := range w.calls {
		entries = append(entries, c.entry)
	}
	latestFirst := func(a, b uint64) int { return cmp.Compare(b, a) }
	slices.SortFunc(handlers, latestFirst)
	slices.SortFunc(entries, latestFirst)
	for i, seq := range handlers {
		if seq > entries[i] {
			return
		}
	}
	earliest := handlers[len(handlers)-1]
	for c := range w.calls {
		if c.entry >= earliest { // a call that began while a handler still running ran
			close(c.release)
			delete(w.calls, c)
		}
	}
}

// began returns what a Stop or Shutdown call needs to know of the
// handlers as it begins, for wait: the seq of the last handler started,
// and whether any is running (if none, none can be its caller).
func (w *stopWaiters) began() (entry uint64, handlers bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq, len(w.running) > 0
}

// wait waits for the stop, as waitStopped does, but returns nil when
// released (see releaseLocked); entry and handlers are what began said
// when the call began.
func (w *stopWaiters) wait(ctx context.Context, entry uint64, handlers bool, done <-chan struct{}, giveUp func()) error {
	if !handlers {
		return waitStopped(ctx, done, giveUp) // no handler can be the caller
	}
	select {
	case <-done:
		return nil
	default:
	}
	w.mu.Lock()
	c := &stopCall{entry: entry, release: make(chan struct{})}
	if w.calls == nil {
		w.calls = make(map[*stopCall]struct{})
	}
	w.calls[c] = struct{}{}
	w.releaseLocked()
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.calls, c)
		w.mu.Unlock()
	}()
	select {
	case <-done:
		return nil
	case <-c.release:
		return nil
	case <-ctx.Done():
		giveUp()
		return ctx.Err()
	}
}

// waitStopped waits for a stop under way to finish (done closed) or ctx to
// end; in that case it calls giveUp, which hurries the stop along, and
// returns ctx.Err().
func waitStopped(ctx context.Context, done <-chan struct{}, giveUp func()) error {
	select {
	case <-done:
		return nil
	default:
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		giveUp()
		return ctx.Err()
	}
}

// waitClosed reports whether ch is closed within d, or before stop is
// closed.
func waitClosed(ch, stop <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	default:
	}
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	case <-stop:
		return false
	}
}

// closeOnce closes ch unless it is closed already; mu guards ch.
func closeOnce(mu *sync.Mutex, ch chan struct{}) {
	mu.Lock()
	defer mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}
