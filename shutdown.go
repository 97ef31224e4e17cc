package acomm

import (
	"context"
	"io"
	"reflect"
	"runtime"
	"sync"
	"time"
)

// Shutting down: every component stops with Shutdown(ctx), which returns
// nil once it has stopped, or ctx.Err() as soon as ctx ends, leaving what
// is left of the stop (closing connections, answering or abandoning work
// in progress) to finish in the background. The seed API's Stop methods
// wrap it. A component that runs user code (a Tracker's response handlers,
// a Server's task handlers) cannot wait for that code to return when the
// code itself asks it to stop: there, Stop and Shutdown begin the stop and
// return at once, and the stop finishes once the handler returns.

// Names of the functions that run user handlers; see calledFrom.
var (
	responseHandlerFunc = funcName(runResponseHandler)
	taskHandlerFunc     = funcName(runTaskHandler)
)

// funcName returns the name of the function f, as stack frames give it.
func funcName(f any) string {
	return runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
}

// calledFrom reports whether the calling goroutine runs inside the
// function named name: whether a Stop was called, directly or not, from a
// handler that the stop would wait for. It walks the stack, so it is for
// cold paths only.
func calledFrom(name string) bool {
	pcs := make([]uintptr, 64)
	for {
		n := runtime.Callers(2, pcs)
		if n < len(pcs) {
			pcs = pcs[:n]
			break
		}
		pcs = make([]uintptr, 2*len(pcs))
	}
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		if f.Function == name {
			return true
		}
		if !more {
			return false
		}
	}
}

// runResponseHandler runs a tracked request's handlers: the one place a
// Tracker runs user code, which calledFrom looks for.
func runResponseHandler(req *Request, resp *Response) {
	req.HandleResponse(resp)
}

// runTaskHandler runs a Server's task handler: the one place a Server runs
// user code, which calledFrom looks for.
func runTaskHandler(ctx context.Context, h TaskHandler, req *Request) (any, io.ReadCloser, error) {
	return h(ctx, req)
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
