package acomm

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Call sends a request for task, with args marshalled to JSON, to the
// service at dest (a unix, http or https URL), with the tracker's own
// socket as the response hook, and waits for the response.
//
// It returns the response and, when the response carries an error, that
// error too: a *RemoteError for an error sent by the service (matching,
// with errors.Is, the package's sentinels such as ErrBusy or
// ErrUnknownTask), an error matching ErrTimeout when no response arrived
// within the tracker's default timeout, or one matching ErrTrackerStopped
// when the tracker was shut down first.
//
// When ctx ends first, Call stops tracking the request (a late response is
// dropped) and returns ctx.Err(). A deadline of ctx earlier than the
// tracker's default timeout becomes the request's timeout. A request that
// cannot be sent is not tracked either, and the send error is returned.
// The tracker must be running.
//
// The request carries the time left until its timeout ("timeout_ms"; see
// Request.Deadline) and the meta set on ctx by ContextWithMeta. When ctx
// ends or the request times out, a service that understands it is told
// to cancel the request (see the README's wire format). Call runs
// through the middleware of WithCallMiddleware.
//
// The request's response hook is the tracker's unix socket, except for an
// http(s) destination when the tracker has an HTTP hook (WithHTTPHook):
// an acomm bridge on another machine answers there.
func (t *Tracker) Call(ctx context.Context, dest *url.URL, task string, args interface{}) (*Response, error) {
	if t.callFn != nil {
		return t.callFn(ctx, dest, task, args)
	}
	return t.call(ctx, dest, task, args)
}

// call is Call without its middleware.
func (t *Tracker) call(ctx context.Context, dest *url.URL, task string, args interface{}) (*Response, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkURL(dest); err != nil {
		return nil, err
	}
	id := newID()
	hook := t.hook // only encoded: it may be shared
	if dest.Scheme != "unix" && t.cfg.httpHook != nil {
		hook = t.BindHook(t.cfg.httpHook, id) // a remote bridge answers over HTTP
	}
	req := &Request{
		ID:             id,
		Task:           task,
		ResponseHook:   hook,
		SuccessHandler: callHandler,
		ErrorHandler:   callHandler,
		LegacyURLs:     t.cfg.legacyURLs,
		Meta:           metaFromContext(ctx),
		callDone:       make(chan struct{}), // the tracker hands over exactly one response
	}
	raw, err := marshalRawInto(args, &req.argsMem)
	if err != nil {
		return nil, fmt.Errorf("%w: args: %w", ErrInvalidRequest, err)
	}
	req.Args, req.argsChecked = raw, checkedOwn(raw)
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if hook == t.hook { // (req is not handed out: it stays so)
		req.hookText = t.hookText
	}
	t.takeAnswersInAck(req)

	timeout, fromCtx := t.defaultTimeout, false
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d <= 0 {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		if d < timeout {
			timeout, fromCtx = d, true
		}
	}
	if err := t.trackInline(req, timeout, dest, nil); err != nil {
		return nil, err
	}
	// Over a pipe, the acknowledgement is not waited for before the
	// response: whichever comes first.
	p, async, err := t.postCall(ctx, dest, req)
	if async != nil {
		defer async.leave()
	}
	var resp *Response
	ack := p.done()
	if err == nil && ack == nil {
		t.sentTo(req.ID, dest) // acknowledged already (http)
	}
	for resp == nil {
		if err != nil {
			// A notice only when the caller gave up: a send that
			// failed did not deliver the request, or it was refused.
			if t.remove(req, ctx.Err() != nil) {
				return nil, err
			}
			// Answered (or timed out) while the send was failing or
			// ctx ending: the response is on its way.
			<-req.callDone
			resp = req.callResp
			break
		}
		select {
		case <-req.callDone:
			resp = req.callResp
		case <-ack:
			err, ack = p.err(), nil
			if err == nil {
				t.sentTo(req.ID, dest)
			}
		case <-ctx.Done():
			if err = ctx.Err(); p.withdraw() {
				t.notSent(req.ID) // never written: no notice is due
			}
		}
	}
	if resp.Error == nil {
		return resp, nil
	}
	if fromCtx && ctxTimeout(ctx, resp.Error) {
		// The tracker's timer is ctx's deadline: report it as ctx does.
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return resp, resp.Error
}

// callHandler is both handlers of a request of Call's: it hands the
// response to the waiting Call. (A function, not a closure per Call: the
// request carries what it needs.)
func callHandler(req *Request, resp *Response) {
	req.callResp = resp
	close(req.callDone)
}

// ctxTimeout reports whether err, the error of a response to a request
// whose timeout is ctx's deadline, is that deadline passing: the tracker's
// own timeout, or the service's answer that the deadline it was sent has
// passed. The service's deadline is the caller's give or take the frame's
// transit and rounding (under a millisecond), so a remote timeout that
// arrives when ctx's deadline is that close is taken as ctx's.
func ctxTimeout(ctx context.Context, err error) bool {
	if isLocalTimeout(err) {
		return true
	}
	dl, _ := ctx.Deadline()
	return errors.Is(err, ErrTimeout) && time.Until(dl) <= time.Millisecond
}

// isLocalTimeout reports whether err is the tracker's own timeout, not a
// timeout reported by the remote service.
func isLocalTimeout(err error) bool {
	var re *RemoteError
	return errors.Is(err, ErrTimeout) && !errors.As(err, &re)
}
