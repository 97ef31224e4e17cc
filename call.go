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
// The request's response hook is the tracker's unix socket, except for an
// http(s) destination when the tracker has an HTTP hook (WithHTTPHook):
// an acomm bridge on another machine answers there.
func (t *Tracker) Call(ctx context.Context, dest *url.URL, task string, args interface{}) (*Response, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkURL(dest); err != nil {
		return nil, err
	}
	raw, err := marshalRaw(args)
	if err != nil {
		return nil, fmt.Errorf("%w: args: %w", ErrInvalidRequest, err)
	}
	ch := make(chan *Response, 1) // the tracker hands over exactly one response
	h := func(_ *Request, resp *Response) { ch <- resp }
	id := newID()
	hook := t.hook // only encoded: it may be shared
	if dest.Scheme != "unix" && t.cfg.httpHook != nil {
		hook = t.BindHook(t.cfg.httpHook, id) // a remote bridge answers over HTTP
	}
	req := &Request{
		ID:             id,
		Task:           task,
		ResponseHook:   hook,
		Args:           raw,
		SuccessHandler: h,
		ErrorHandler:   h,
		LegacyURLs:     t.cfg.legacyURLs,
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}

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
	if err := t.trackInline(req, timeout); err != nil {
		return nil, err
	}
	// Over a pipe, the acknowledgement is not waited for before the
	// response: whichever comes first.
	ack, err := post(ctx, dest, req, &t.cfg)
	var resp *Response
	for resp == nil {
		if err != nil {
			if t.RemoveRequest(req) {
				return nil, err
			}
			// Answered (or timed out) while the send was failing or
			// ctx ending: the response is on its way to ch.
			resp = <-ch
			break
		}
		select {
		case resp = <-ch:
		case err = <-ack:
			ack = nil
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if resp.Error == nil {
		return resp, nil
	}
	if fromCtx && isLocalTimeout(resp.Error) {
		// The tracker's timer is ctx's deadline: report it as ctx does.
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return resp, resp.Error
}

// isLocalTimeout reports whether err is the tracker's own timeout, not a
// timeout reported by the remote service.
func isLocalTimeout(err error) bool {
	var re *RemoteError
	return errors.Is(err, ErrTimeout) && !errors.As(err, &re)
}
