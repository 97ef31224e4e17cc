package acomm

import (
	"context"
	"fmt"
	"net/url"
)

// Middleware wraps handlers: a Server's TaskHandlers (Server.Use) and a
// Tracker's calls (WithCallMiddleware), to add logging, metrics,
// authorization or tracing to every one of them in one place. Several
// middlewares nest in the order given: the first is the outermost, so it
// runs first and returns last.

// Use adds middleware that wraps every handler of the server, those
// registered with Handle before or after and the built-in acomm.* tasks
// alike. Each request runs through the middleware once, in the order
// given, then through the middleware of later calls of Use. It may be
// called while the server runs; requests that arrive afterwards go
// through the new middleware. Like Handle, it panics on a nil middleware.
// (Notices such as acomm.cancel are not requests and run no handler.)
func (s *Server) Use(mw ...func(TaskHandler) TaskHandler) {
	for _, m := range mw {
		if m == nil {
			panic("acomm: Server.Use: nil middleware")
		}
	}
	s.handlersMu.Lock()
	defer s.handlersMu.Unlock()
	var all []func(TaskHandler) TaskHandler
	if old := s.middleware.Load(); old != nil {
		all = append(all, *old...)
	}
	all = append(all, mw...)
	s.middleware.Store(&all)
}

// wrap returns h wrapped in the server's middleware, the first outermost.
// It wraps when a request runs rather than when a handler is registered,
// so that every handler a request can reach is wrapped, however it was
// found.
func (s *Server) wrap(h TaskHandler) TaskHandler {
	mw := s.middleware.Load()
	if mw == nil {
		return h
	}
	for i := len(*mw) - 1; i >= 0; i-- {
		if h = (*mw)[i](h); h == nil {
			panic(fmt.Sprintf("acomm: Server.Use: middleware %d returned a nil handler", i))
		}
	}
	return h
}

// CallFunc is the signature of Tracker.Call, which a middleware given to
// WithCallMiddleware wraps.
type CallFunc func(ctx context.Context, dest *url.URL, task string, args interface{}) (*Response, error)

// WithCallMiddleware wraps every Tracker.Call in mw, the first outermost:
// a call runs through each once, in the order given, before its request
// is built. A middleware may change the context (ContextWithMeta adds
// meta to the request), the destination, the task or the args, and sees
// the response and error. Given several times, the middleware of later
// options runs inside that of earlier ones. It applies to a Tracker only.
func WithCallMiddleware(mw ...func(CallFunc) CallFunc) Option {
	return option("WithCallMiddleware", forTracker, func(c *config) error {
		for _, m := range mw {
			if m == nil {
				return fmt.Errorf("%w: nil call middleware", ErrInvalidArgument)
			}
		}
		c.callMiddleware = append(c.callMiddleware[:len(c.callMiddleware):len(c.callMiddleware)], mw...)
		return nil
	})
}

// chainCalls returns call wrapped in mw, the first outermost, or nil
// when there is no middleware.
func chainCalls(mw []func(CallFunc) CallFunc, call CallFunc) (CallFunc, error) {
	if len(mw) == 0 {
		return nil, nil
	}
	for i := len(mw) - 1; i >= 0; i-- {
		call = mw[i](call)
		if call == nil {
			return nil, fmt.Errorf("%w: call middleware %d returned a nil CallFunc", ErrInvalidArgument, i)
		}
	}
	return call, nil
}
