package acomm

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// DefaultHTTPTimeout bounds a whole HTTP exchange made by Send.
const DefaultHTTPTimeout = 30 * time.Second

// httpClient is the client of HTTP sends: no proxy, every phase bounded,
// no redirect followed (a 3xx fails the send, not a second POST elsewhere).
var httpClient = func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy, t.MaxIdleConnsPerHost, t.ResponseHeaderTimeout = nil, 16, DefaultHTTPTimeout
	return &http.Client{Timeout: DefaultHTTPTimeout, Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}()

var sendDefaults = config{maxFrameSize: DefaultMaxFrameSize, ioTimeout: DefaultIOTimeout}

// Send sends the payload to the specified URL. For a unix URL it writes
// one frame and waits for the acknowledgement; a refusal matches
// ErrRefused (and, through RemoteError, the receiver's sentinel). For an
// http(s) URL it POSTs the JSON; a non-2xx status matches ErrHTTPStatus.
// A peer not known to read URLs as strings gets them in the object form.
func Send(addr *url.URL, payload interface{}) error {
	return sendMsg(context.Background(), addr, payload, &sendDefaults)
}

// SendContext is Send bounded by ctx too: when ctx ends first, it returns
// ctx.Err() (the frame may have been delivered).
func SendContext(ctx context.Context, addr *url.URL, payload interface{}) error {
	return sendMsg(ctx, addr, payload, &sendDefaults)
}

// Send is SendContext with the tracker's settings (WithMaxFrameSize,
// WithIOTimeout, WithLegacyURLs). When payload is a Request that t tracks
// and addr acknowledged it, listing the "cancel" feature, a timeout or
// removal (RemoveRequest) of the request before its answer sends addr a
// cancel notice (see the README's wire format); one that addr refused, or
// that never reached it, is not followed by a notice.
func (t *Tracker) Send(ctx context.Context, addr *url.URL, payload interface{}) error {
	req, isReq := payload.(*Request)
	if isReq {
		t.sending(req.ID, addr)
	}
	err := sendMsg(ctx, addr, payload, &t.cfg)
	switch {
	case !isReq:
	case err == nil:
		t.sentTo(req.ID, addr)
	case !mayBeDelivered(err):
		t.notSent(req.ID)
	}
	return err
}

// sendMsg sends payload to addr and waits for its acknowledgement. When
// ctx ends first, it returns ctx.Err(), and a frame not yet written is
// taken back: wrapped in ErrNotDelivered then.
func sendMsg(ctx context.Context, addr *url.URL, payload any, cfg *config) error {
	p, err := post(ctx, addr, payload, cfg)
	if err != nil || p.out == nil {
		return err
	}
	select {
	case <-p.done():
		return p.err()
	case <-ctx.Done():
		return giveUp(ctx, p)
	}
}

// giveUp takes p back, its sender's ctx having ended, and returns
// ctx.Err(), wrapped in ErrNotDelivered when p's frame was not written.
func giveUp(ctx context.Context, p pending) error {
	if p.withdraw() {
		return fmt.Errorf("%w: %w", ErrNotDelivered, ctx.Err())
	}
	return ctx.Err()
}

// post starts sending payload to addr (see postUnix).
func post(ctx context.Context, addr *url.URL, payload any, cfg *config) (pending, error) {
	if ctx == nil {
		return pending{}, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	if err := cmp.Or(checkURL(addr), ctx.Err()); err != nil {
		return pending{}, err
	}
	if addr.Scheme == "unix" {
		return postUnix(ctx, unixPath(addr), payload, cfg)
	}
	return pending{}, sendHTTP(ctx, addr, payload, cfg.legacyURLs)
}

// sendHTTP POSTs payload as JSON to addr and checks the acknowledgement.
func sendHTTP(ctx context.Context, addr *url.URL, payload any, legacy bool) error {
	frame, err := appendFrame(nil, payload, legacy, 0, nil)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr.String(), bytes.NewReader(frame[frameHeaderSize:]))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // ("Post <the URL>": said here, redacted)
		}
		return cmp.Or(ctx.Err(), fmt.Errorf("%w: post to %s: %w", ErrUnreachable, redacted(addr), err))
	}
	defer resp.Body.Close()
	ack, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w: read acknowledgement from %s: %w", ErrOutcomeUnknown, ErrConnection, redacted(addr), err)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return fmt.Errorf("%w: %s from %s: %s", ErrHTTPStatus, resp.Status, redacted(addr), bytes.TrimSpace(ack[:min(len(ack), 512)]))
	}
	features, _, err := decodeAck(ack, true, false)
	if errors.Is(err, ErrRefused) {
		return err
	}
	noteHTTPFeatures(addr, features)
	return nil
}
