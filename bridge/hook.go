package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/acommgo/acomm"
)

// Bounds of hook deliveries: a hook that accepts the POST and never
// answers holds one connection for at most DefaultHookTimeout; one host
// and port holds at most DefaultMaxHookConnsPerHost connections, and all
// hooks together DefaultMaxHookConns deliveries under way, the other
// deliveries waiting their turn (within their own timeout). Of the
// connections that deliveries leave for reuse, at most
// DefaultMaxHookConns are kept, each for 30 s.
const (
	// DefaultHookTimeout bounds one delivery of an answer to a response
	// hook, from dial to acknowledgement, waiting for a connection
	// included.
	DefaultHookTimeout = 30 * time.Second
	// DefaultMaxHookConnsPerHost bounds the connections open to one
	// hook host at once.
	DefaultMaxHookConnsPerHost = 8
	// DefaultMaxHookConns bounds the deliveries under way at once, to all
	// hooks together (a caller may name any number of hosts and ports).
	DefaultMaxHookConns = 64
	// DefaultMaxPending bounds the requests a Bridge holds at once, those
	// awaiting their answer and those whose answer awaits delivery,
	// unless its MaxPending says otherwise: each holds its args or its
	// answer in memory.
	DefaultMaxPending = 1024
)

// shown is a caller's hook as the bridge's logs and errors show it: no
// password, and no query values, which may be secrets (a capability that
// answers the request, as acomm.Tracker.BindHook puts there).
func shown(hook *url.URL) string {
	if hook.RawQuery == "" {
		return hook.Redacted()
	}
	c := *hook
	q := c.Query()
	for k := range q {
		q.Set(k, "xxxxx")
	}
	c.RawQuery = q.Encode()
	return c.Redacted()
}

// maxHookAckBytes bounds how much of a hook's acknowledgement is read.
const maxHookAckBytes = 64 << 10

// normalizeHook checks a response hook and returns the one URL the bridge
// will both vet and dial: an absolute http(s) URL with a host and nothing
// that can make the URL dialed differ from the URL checked (an opaque
// part, such as the legacy form's Opaque "//127.0.0.1/admin" behind an
// allowed Host, or userinfo, which fools prefix checks such as
// "http://allowed.example@127.0.0.1/"). The URL is rebuilt from its
// string, which is what an HTTP client dials, and must come back the same.
func normalizeHook(u *url.URL) (*url.URL, error) {
	switch {
	case u == nil:
		return nil, fmt.Errorf("%w: missing response hook", acomm.ErrInvalidRequest)
	case u.Scheme == "unix":
		return nil, fmt.Errorf("%w: unix response hooks are not accepted over http", acomm.ErrInvalidRequest)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%w: response hook: %w: %q", acomm.ErrInvalidRequest, acomm.ErrUnsupportedScheme, u.Scheme)
	case u.Opaque != "":
		return nil, fmt.Errorf("%w: response hook: %w: opaque part not allowed", acomm.ErrInvalidRequest, acomm.ErrInvalidURL)
	case u.User != nil:
		return nil, fmt.Errorf("%w: response hook: %w: userinfo not allowed", acomm.ErrInvalidRequest, acomm.ErrInvalidURL)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("%w: response hook: %w: no host", acomm.ErrInvalidRequest, acomm.ErrInvalidURL)
	}
	c := *u
	c.Fragment, c.RawFragment = "", ""
	n, err := url.Parse(c.String())
	if err != nil || n.Scheme != u.Scheme || n.Host != u.Host || n.Opaque != "" || n.User != nil || n.Path != u.Path {
		return nil, fmt.Errorf("%w: response hook: %w: %q does not read back as itself", acomm.ErrInvalidRequest, acomm.ErrInvalidURL, c.Redacted())
	}
	return n, nil
}

// hookClient returns the client of hook deliveries: it never follows a
// redirect (a 3xx is a failed delivery, never a second POST elsewhere),
// uses no proxy, dials through the HookPolicy when there is one, and
// bounds each phase and the connections per host.
func (b *Bridge) hookClient() *http.Client {
	b.clientOnce.Do(func() {
		b.hookSlots = make(chan struct{}, DefaultMaxHookConns)
		dial := (&net.Dialer{Timeout: hookDialTimeout, KeepAlive: 30 * time.Second}).DialContext
		if b.HookPolicy != nil {
			dial = b.HookPolicy.DialContext
		}
		b.client = &http.Client{
			Timeout: b.hookTimeout(),
			Transport: &http.Transport{
				Proxy:                 nil,
				DialContext:           dial,
				ForceAttemptHTTP2:     true,
				MaxConnsPerHost:       DefaultMaxHookConnsPerHost,
				MaxIdleConnsPerHost:   DefaultMaxHookConnsPerHost,
				MaxIdleConns:          DefaultMaxHookConns,
				IdleConnTimeout:       30 * time.Second,
				TLSHandshakeTimeout:   10 * time.Second,
				ResponseHeaderTimeout: b.hookTimeout(),
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	})
	return b.client
}

// hookTimeout returns the bound of one delivery.
func (b *Bridge) hookTimeout() time.Duration {
	if b.HookTimeout > 0 {
		return b.HookTimeout
	}
	return DefaultHookTimeout
}

// deliver POSTs resp to hook, with the request's meta as headers (see
// setMetaHeader), and checks the acknowledgement. ctx ends deliveries
// when the bridge's Shutdown runs out of time.
func (b *Bridge) deliver(ctx context.Context, hook *url.URL, meta map[string]string, resp *acomm.Response) error {
	body, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("%w: marshal response: %w", acomm.ErrInvalidResponse, err)
	}
	// The wait for a turn (see DefaultMaxHookConns) counts in the
	// delivery's time.
	ctx, cancel := context.WithTimeout(ctx, b.hookTimeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", acomm.ErrInvalidURL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	setMetaHeader(req.Header, meta)
	client := b.hookClient()
	select {
	case b.hookSlots <- struct{}{}:
		defer func() { <-b.hookSlots }()
	case <-ctx.Done():
		return fmt.Errorf("%w: post to %s: waiting for a turn among %d deliveries under way: %w", acomm.ErrUnreachable, shown(hook), DefaultMaxHookConns, ctx.Err())
	}
	hr, err := client.Do(req)
	if err != nil {
		var ue *url.Error // "Post <the URL>": said below
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, acomm.ErrUnreachable) {
			return err // the hook policy's dialer: it names the address
		}
		return fmt.Errorf("%w: post to %s: %w", acomm.ErrUnreachable, shown(hook), err)
	}
	defer hr.Body.Close()
	ack, err := io.ReadAll(io.LimitReader(hr.Body, maxHookAckBytes))
	if err != nil {
		return fmt.Errorf("%w: read acknowledgement from %s: %w", acomm.ErrConnection, shown(hook), err)
	}
	if hr.StatusCode < 200 || hr.StatusCode > 299 {
		return fmt.Errorf("%w: %s from %s: %s", acomm.ErrHTTPStatus, hr.Status, shown(hook), strings.TrimSpace(string(ack[:min(len(ack), 512)])))
	}
	return nil
}
