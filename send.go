package acomm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// DefaultHTTPTimeout bounds a whole HTTP exchange made by Send and the
// tracker's response forwarding.
const DefaultHTTPTimeout = 30 * time.Second

// maxAckBody bounds how much of an HTTP acknowledgement is read.
const maxAckBody = 1 << 20

// httpClient is the client used for HTTP sends: every phase has a timeout,
// and a redirect is never followed (a 3xx is a failed send, not a second
// POST of the payload to wherever the peer points).
var httpClient = &http.Client{
	Timeout:       DefaultHTTPTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: DefaultHTTPTimeout,
		ExpectContinueTimeout: time.Second,
	},
}

// sendDefaults are the settings of Send and SendContext.
var sendDefaults = config{maxFrameSize: DefaultMaxFrameSize, ioTimeout: DefaultIOTimeout}

// Send sends the payload to the specified URL. For a unix URL it
// writes one frame and waits for the receiver's acknowledgement frame; an
// acknowledgement that carries an error is returned as an error matching
// ErrRefused (and, through RemoteError, the receiver's sentinel). For an
// http(s) URL it POSTs the JSON; a non-2xx status matches ErrHTTPStatus.
// URLs in a frame to a peer not known to read the string form (the
// original acomm) travel in the object form.
func Send(addr *url.URL, payload interface{}) error {
	return sendMsg(context.Background(), addr, payload, &sendDefaults)
}

// SendContext is Send bounded by ctx as well as DefaultIOTimeout: when
// ctx ends first, it returns ctx.Err() (the frame may or may not have
// been delivered).
func SendContext(ctx context.Context, addr *url.URL, payload interface{}) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	return sendMsg(ctx, addr, payload, &sendDefaults)
}

// Send is SendContext with the tracker's settings (WithMaxFrameSize,
// WithIOTimeout, WithLegacyURLs). When payload is a Request that t tracks
// and addr acknowledged it, listing the "cancel" feature, a timeout or
// removal (RemoveRequest) of the request before its answer sends addr a
// cancel notice (see the README's wire format).
func (t *Tracker) Send(ctx context.Context, addr *url.URL, payload interface{}) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	err := sendMsg(ctx, addr, payload, &t.cfg)
	if req, ok := payload.(*Request); ok && err == nil {
		t.sentTo(req.ID, addr)
	}
	return err
}

// sendMsg sends payload to addr and waits for the acknowledgement, within
// ctx and cfg's settings.
func sendMsg(ctx context.Context, addr *url.URL, payload any, cfg *config) error {
	ack, err := post(ctx, addr, payload, cfg)
	if err != nil || ack == nil {
		return err
	}
	select {
	case err := <-ack:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// post starts sending payload to addr: see postUnix. An http(s) send is
// made at once.
func post(ctx context.Context, addr *url.URL, payload any, cfg *config) (<-chan error, error) {
	if err := checkURL(addr); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if addr.Scheme == "unix" {
		return postUnix(ctx, unixPath(addr), payload, cfg)
	}
	return nil, sendHTTP(ctx, httpClient, addr, payload, cfg.legacyURLs)
}

// sendHTTP POSTs payload as JSON to addr and checks the acknowledgement.
func sendHTTP(ctx context.Context, client *http.Client, addr *url.URL, payload any, legacy bool) error {
	frame, err := appendFrame(nil, payload, legacy, 0)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr.String(), bytes.NewReader(frame[frameHeaderSize:]))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: post to %s: %w", ErrUnreachable, addr.Redacted(), err)
	}
	defer resp.Body.Close()
	ackBody, err := io.ReadAll(io.LimitReader(resp.Body, maxAckBody))
	if err != nil {
		return fmt.Errorf("%w: read acknowledgement from %s: %w", ErrConnection, addr.Redacted(), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w: %s from %s: %s", ErrHTTPStatus, resp.Status, addr.Redacted(), bytes.TrimSpace(ackBody[:min(len(ackBody), 512)]))
	}
	var ack Response
	features, err := decodeResponse(ackBody, &ack)
	if err == nil && ack.Error != nil {
		return fmt.Errorf("%w: %w", ErrRefused, ack.Error)
	}
	noteHTTPFeatures(addr, features)
	return nil
}
