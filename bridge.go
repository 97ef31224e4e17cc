package acomm

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// DefaultMaxBodyBytes is the largest request body a Bridge accepts unless
// its MaxBodyBytes says otherwise.
const DefaultMaxBodyBytes = 4 << 20

// Timeouts of the server made by NewHTTPServer, and the bound on each write
// of a stream served by a Bridge.
const (
	bridgeReadHeaderTimeout  = 10 * time.Second
	bridgeReadTimeout        = time.Minute
	bridgeWriteTimeout       = time.Minute
	bridgeIdleTimeout        = 2 * time.Minute
	bridgeMaxHeaderBytes     = 64 << 10
	bridgeStreamWriteTimeout = DefaultHTTPTimeout
)

// Route sends the requests for some tasks to a local service.
type Route struct {
	// Pattern is a task name, matched exactly, or a prefix followed by
	// "*" ("disk.*"), matched by every task that begins with the prefix.
	// "*" alone matches every task.
	Pattern string
	// Addr is the unix URL of the service's socket.
	Addr *url.URL
}

// ParseRoute parses a route written PATTERN=UNIX_URL, such as
// "disk.*=unix:///run/disk.sock". Errors match ErrInvalidArgument.
func ParseRoute(s string) (Route, error) {
	pattern, addr, ok := strings.Cut(s, "=")
	if !ok {
		return Route{}, fmt.Errorf("%w: route %q: want PATTERN=unix:///path", ErrInvalidArgument, s)
	}
	u, err := url.Parse(strings.TrimSpace(addr))
	if err != nil {
		return Route{}, fmt.Errorf("%w: route %q: %w: %w", ErrInvalidArgument, s, ErrInvalidURL, err)
	}
	r := Route{Pattern: strings.TrimSpace(pattern), Addr: u}
	if err := r.validate(); err != nil {
		return Route{}, err
	}
	return r, nil
}

// String returns the route in the form ParseRoute reads.
func (r Route) String() string {
	addr := ""
	if r.Addr != nil {
		addr = r.Addr.String()
	}
	return r.Pattern + "=" + addr
}

// validate checks the pattern and that the address is a unix socket URL.
func (r Route) validate() error {
	switch i := strings.IndexByte(r.Pattern, '*'); {
	case r.Pattern == "":
		return fmt.Errorf("%w: route %q: empty pattern", ErrInvalidArgument, r.String())
	case i >= 0 && i != len(r.Pattern)-1:
		return fmt.Errorf("%w: route %q: '*' may only end a pattern", ErrInvalidArgument, r.String())
	}
	if err := checkURL(r.Addr); err != nil {
		return fmt.Errorf("%w: route %q: %w", ErrInvalidArgument, r.String(), err)
	}
	if r.Addr.Scheme != "unix" {
		return fmt.Errorf("%w: route %q: %w: %q: routes lead to unix sockets", ErrInvalidArgument, r.String(), ErrUnsupportedScheme, r.Addr.Scheme)
	}
	return nil
}

// Bridge connects callers that speak HTTP to the local services behind a
// tracker. It serves three endpoints (see Handler):
//
//   - POST /requests takes a Request from an external caller. The request
//     must have an http(s) response hook and a task that one of Routes
//     matches; it is proxied through the tracker (Tracker.ProxyUnix) and
//     sent to the route's service, and the POST is answered with an
//     acknowledgement: a Response with the request's id and error "", as
//     a unix socket acknowledges a frame, so Send to the bridge works. The
//     service's answer comes back to the tracker, which forwards it to the
//     caller's hook, with a unix stream_url rewritten to the tracker's
//     HTTP stream URL.
//   - POST /responses takes a Response for a request tracked by the
//     tracker and hands it to Tracker.HandleResponse: a tracker can send a
//     request to a remote bridge with an http hook pointing back at its own
//     bridge's /responses and have its handlers run as for unix responses.
//   - GET /stream?addr=unix:///... serves, once, a stream that the
//     tracker announced (a stream_url it rewrote, or one it made with
//     NewStreamUnix). Streams announced by other trackers are refused.
//
// For streams to be readable, the tracker's HTTP stream URL (the second
// argument of NewTracker) must be the bridge's advertised base URL +
// "/stream"; without one, stream URLs are dropped from forwarded
// responses.
//
// Every answer but a stream is JSON: an acknowledgement, or {"error":
// "..."} with 400 for a body that is not a valid request or response (or
// that names a unix hook or stream_url, which an outside caller must not
// make the bridge use), 401 for a missing or wrong token, 403 for a hook
// that CheckHook refuses, 404 for a task no route matches, 405 for a wrong
// method, 409 for a request id already tracked, 413 for a body over
// MaxBodyBytes, 502 when the service cannot be reached or refuses the
// request, and 503 when the tracker is not running. A 2xx
// acknowledgement of a request means its hook will receive exactly one
// response (the answer, or an error such as a timeout); any other status
// means it will receive none.
//
// Create a Bridge with NewBridge, or as a struct literal; set the fields
// before serving and do not change them afterwards. A Bridge has no
// goroutines of its own. To stop, shut the HTTP server down first, then
// stop the tracker, which waits for the answers still due.
type Bridge struct {
	// Tracker proxies requests and receives the services' answers. It
	// must be started before requests arrive.
	Tracker *Tracker

	// Routes send each task to the unix socket of its service. An exact
	// pattern wins over prefix patterns; among prefix patterns the
	// longest prefix wins.
	Routes []Route

	// Token, when not empty, is required on every endpoint, as a bearer
	// token ("Authorization: Bearer TOKEN") or as the password of basic
	// authentication, so that a URL can carry it:
	// http://acomm:TOKEN@host/requests. Tokens are compared in constant
	// time.
	Token string

	// ResponsesToken, when not empty, is required by the /responses
	// endpoint instead of Token. Response hooks travel to remote bridges
	// inside requests, so a token in a hook URL should grant no more than
	// posting responses.
	ResponsesToken string

	// MaxBodyBytes bounds the body of a POST; zero or less means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64

	// Timeout is how long a proxied request is tracked awaiting its
	// answer; zero or less means the tracker's default. When it passes,
	// the hook receives an error response matching ErrTimeout.
	Timeout time.Duration

	// CheckHook, when not nil, vets the http(s) response hook of every
	// request; an error refuses the request with 403. Without it the
	// bridge will POST an answer to any http(s) URL a caller names, which
	// may reach hosts that the caller itself cannot.
	CheckHook func(hook *url.URL) error

	// Logger receives a line for every refused or failed exchange
	// (refusals at Debug, failures to reach a service at Warn). Nil means
	// the tracker's logger (see WithLogger).
	Logger logrus.FieldLogger
}

// NewBridge returns a Bridge that proxies requests through tracker to the
// services that routes name. It fails with ErrInvalidArgument for a nil
// tracker, an invalid route or a pattern given twice.
func NewBridge(tracker *Tracker, routes ...Route) (*Bridge, error) {
	if tracker == nil {
		return nil, fmt.Errorf("%w: nil tracker", ErrInvalidArgument)
	}
	seen := make(map[string]bool, len(routes))
	for _, r := range routes {
		if err := r.validate(); err != nil {
			return nil, err
		}
		if seen[r.Pattern] {
			return nil, fmt.Errorf("%w: route pattern %q given twice", ErrInvalidArgument, r.Pattern)
		}
		seen[r.Pattern] = true
	}
	return &Bridge{Tracker: tracker, Routes: append([]Route(nil), routes...)}, nil
}

// Route returns the route for task: the route whose pattern is task, or
// else the prefix pattern with the longest prefix of task. It reports
// false when no route matches.
func (b *Bridge) Route(task string) (Route, bool) {
	best, bestLen := -1, -1
	for i, r := range b.Routes {
		if r.Addr == nil {
			continue
		}
		prefix, isPrefix := strings.CutSuffix(r.Pattern, "*")
		switch {
		case !isPrefix:
			if r.Pattern == task {
				return r, true
			}
		case len(prefix) > bestLen && strings.HasPrefix(task, prefix):
			best, bestLen = i, len(prefix)
		}
	}
	if best < 0 {
		return Route{}, false
	}
	return b.Routes[best], true
}

// Handler returns a handler that serves RequestsHandler at /requests,
// ResponsesHandler at /responses and StreamHandler at /stream, and 404 at
// any other path. Mount it under a prefix with http.StripPrefix.
func (b *Bridge) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/requests":
			b.serveRequests(w, r)
		case "/responses":
			b.serveResponses(w, r)
		case "/stream":
			b.serveStream(w, r)
		default:
			if b.authorize(w, r, b.Token) {
				httpError(w, http.StatusNotFound, "not found")
			}
		}
	})
}

// RequestsHandler returns the handler of POSTed requests (see Bridge).
func (b *Bridge) RequestsHandler() http.Handler { return http.HandlerFunc(b.serveRequests) }

// ResponsesHandler returns the handler of POSTed responses (see Bridge).
func (b *Bridge) ResponsesHandler() http.Handler { return http.HandlerFunc(b.serveResponses) }

// StreamHandler returns the handler of stream reads (see Bridge). It is
// ProxyStreamHandler limited to the streams the bridge's tracker
// announced: a GET uses the stream up, a HEAD only reports whether it is
// there. A stream may outlast the server's WriteTimeout: each write is
// bounded instead, and the copy stops when the client goes away.
func (b *Bridge) StreamHandler() http.Handler { return http.HandlerFunc(b.serveStream) }

// serveRequests checks, proxies and sends one request.
func (b *Bridge) serveRequests(w http.ResponseWriter, r *http.Request) {
	if !b.authorize(w, r, b.Token) || !b.checkPost(w, r) || !b.checkTracker(w) {
		return
	}
	body, ok := b.readBody(w, r)
	if !ok {
		return
	}
	req := &Request{}
	if err := json.Unmarshal(body, req); err != nil {
		b.refuse(w, r, http.StatusBadRequest, err)
		return
	}
	if err := req.Validate(); err != nil {
		b.refuse(w, r, http.StatusBadRequest, err)
		return
	}
	if req.ResponseHook.Scheme == "unix" {
		b.refuse(w, r, http.StatusBadRequest, fmt.Errorf("%w: unix response hooks are not accepted over http", ErrInvalidRequest))
		return
	}
	if b.CheckHook != nil {
		if err := b.CheckHook(req.ResponseHook); err != nil {
			b.refuse(w, r, http.StatusForbidden, fmt.Errorf("%w: response hook refused: %w", ErrInvalidRequest, err))
			return
		}
	}
	route, ok := b.Route(req.Task)
	if !ok {
		b.refuse(w, r, http.StatusNotFound, fmt.Errorf("%w: no route for task %q", ErrUnknownTask, req.Task))
		return
	}
	t := b.Tracker
	proxied, err := t.ProxyUnix(req, b.Timeout)
	if err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrDuplicateID):
			code = http.StatusConflict
		case errors.Is(err, ErrNotStarted):
			code = http.StatusServiceUnavailable
		}
		b.refuse(w, r, code, err)
		return
	}
	if err := t.Send(r.Context(), route.Addr, proxied); err != nil {
		if !t.RemoveRequest(req) {
			// The answer (or the timeout) came first and went to the
			// hook: the request was delivered after all.
			b.log().WithError(err).WithField("id", req.ID).Debug("send failed after the request was answered")
			writeBridgeAck(w, req.ID)
			return
		}
		b.log().WithError(err).WithFields(logrus.Fields{"id": req.ID, "task": req.Task, "service": route.Addr.String()}).
			Warn("bridge could not deliver request to service")
		// Tell the caller why, but not where the service lives.
		code, msg := http.StatusBadGateway, fmt.Sprintf("acomm: service for task %q is unavailable", req.Task)
		var re *RemoteError
		switch {
		case errors.Is(err, ErrFrameTooLarge):
			code, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("%v: request too large for the service of task %q", ErrFrameTooLarge, req.Task)
		case errors.As(err, &re):
			msg = fmt.Sprintf("%v: service for task %q: %s", ErrRefused, req.Task, re.Message)
		}
		httpError(w, code, msg)
		return
	}
	writeBridgeAck(w, req.ID)
}

// serveResponses hands one response to the tracker.
func (b *Bridge) serveResponses(w http.ResponseWriter, r *http.Request) {
	token := b.ResponsesToken
	if token == "" {
		token = b.Token
	}
	if !b.authorize(w, r, token) || !b.checkPost(w, r) || !b.checkTracker(w) {
		return
	}
	body, ok := b.readBody(w, r)
	if !ok {
		return
	}
	resp := &Response{}
	if err := json.Unmarshal(body, resp); err != nil {
		b.refuse(w, r, http.StatusBadRequest, err)
		return
	}
	if err := resp.validate(); err != nil {
		b.refuse(w, r, http.StatusBadRequest, err)
		return
	}
	if resp.StreamURL != nil && resp.StreamURL.Scheme == "unix" {
		b.refuse(w, r, http.StatusBadRequest, fmt.Errorf("%w: unix stream urls are not accepted over http", ErrInvalidResponse))
		return
	}
	// The handler runs before the answer, so a sender that gets the
	// acknowledgement knows it has run. Like a unix socket, the bridge
	// acknowledges a response for an untracked request and drops it.
	b.Tracker.HandleResponse(resp)
	writeBridgeAck(w, resp.ID)
}

// serveStream copies an announced stream to the client.
func (b *Bridge) serveStream(w http.ResponseWriter, r *http.Request) {
	if !b.authorize(w, r, b.Token) {
		return
	}
	path, ok := streamRequestPath(w, r)
	if !ok {
		return
	}
	if r.Method == http.MethodHead {
		// HEAD is safe: it must not use up the stream's one read.
		if b.Tracker == nil || !announcedOK(findAnnounced(path, b.Tracker, false)) {
			httpError(w, http.StatusNotFound, "stream not found")
			return
		}
		setBridgeStreamHeaders(w)
		w.WriteHeader(http.StatusOK)
		return
	}
	if b.Tracker == nil || !announcedOK(findAnnounced(path, b.Tracker, true)) {
		httpError(w, http.StatusNotFound, "stream not found")
		return
	}
	conn, err := dialStream(r.Context(), path)
	if err != nil {
		b.log().WithError(err).WithField("stream", path).Debug("announced stream is gone")
		httpError(w, http.StatusNotFound, "stream not available")
		return
	}
	defer conn.Close()
	// A client that goes away ends the copy.
	stop := context.AfterFunc(r.Context(), func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	// A stream may take longer than the server's WriteTimeout: bound each
	// write instead of the whole answer. (The server's ReadTimeout does
	// not apply once a bodiless request has been read.)
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(bridgeStreamWriteTimeout))
	setBridgeStreamHeaders(w)
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush() // the client learns at once that the stream is there
	fw := &flushWriter{w: w, rc: rc, timeout: bridgeStreamWriteTimeout}
	defer fw.finish()
	_, err = copyStream(fw, conn.Conn)
	if err = conn.end(err); err != nil {
		// Headers are gone: abort so the client sees a broken stream
		// rather than a short one.
		b.log().WithError(err).WithField("stream", path).Debug("stream copy ended early")
		panic(http.ErrAbortHandler)
	}
}

// setBridgeStreamHeaders sets the headers of a stream answer.
func setBridgeStreamHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

// authorize reports whether r carries token (always, when token is
// empty); otherwise it answers 401 with a Bearer challenge.
func (b *Bridge) authorize(w http.ResponseWriter, r *http.Request, token string) bool {
	if token == "" {
		return true
	}
	got, present := bridgeCredential(r)
	if present && tokensEqual(got, token) {
		return true
	}
	challenge, msg := `Bearer realm="acomm"`, "acomm: unauthorized: missing token"
	if present {
		challenge, msg = `Bearer realm="acomm", error="invalid_token"`, "acomm: unauthorized: invalid token"
	}
	b.log().WithFields(logrus.Fields{"remote": r.RemoteAddr, "path": r.URL.Path}).Debug(msg)
	w.Header().Set("WWW-Authenticate", challenge)
	httpError(w, http.StatusUnauthorized, msg)
	return false
}

// bridgeCredential returns the token r presents, as a bearer token or a
// basic authentication password, and whether it presents any credential.
func bridgeCredential(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	if scheme, rest, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(rest), true
	}
	if _, pw, ok := r.BasicAuth(); ok {
		return pw, true
	}
	return "", true
}

// tokensEqual compares two tokens in constant time, lengths included.
func tokensEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// checkPost answers 405 unless r is a POST.
func (b *Bridge) checkPost(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodPost {
		return true
	}
	w.Header().Set("Allow", http.MethodPost)
	httpError(w, http.StatusMethodNotAllowed, "method not allowed")
	return false
}

// checkTracker answers 500 when the bridge has no tracker.
func (b *Bridge) checkTracker(w http.ResponseWriter) bool {
	if b.Tracker != nil {
		return true
	}
	httpError(w, http.StatusInternalServerError, "acomm: bridge has no tracker")
	return false
}

// readBody reads r's body up to the bridge's limit, answering 413 when it
// is larger and 400 when it cannot be read.
func (b *Bridge) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	max := b.MaxBodyBytes
	if max <= 0 {
		max = DefaultMaxBodyBytes
	}
	if r.ContentLength > max {
		b.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("acomm: request body of %d bytes exceeds the limit of %d", r.ContentLength, max))
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			b.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("acomm: request body exceeds the limit of %d bytes", mbe.Limit))
		} else {
			b.refuse(w, r, http.StatusBadRequest, fmt.Errorf("acomm: read request body: %w", err))
		}
		return nil, false
	}
	return body, true
}

// refuse logs a refusal at Debug level and answers it.
func (b *Bridge) refuse(w http.ResponseWriter, r *http.Request, code int, err error) {
	b.log().WithError(err).WithFields(logrus.Fields{"remote": r.RemoteAddr, "path": r.URL.Path, "status": code}).
		Debug("bridge refused request")
	httpError(w, code, err.Error())
}

// log returns the bridge's logger.
func (b *Bridge) log() logrus.FieldLogger {
	switch {
	case b.Logger != nil:
		return b.Logger
	case b.Tracker != nil:
		return b.Tracker.log()
	default:
		return discardLogger()
	}
}

// writeBridgeAck answers with the acknowledgement of id: the Response a
// unix socket would acknowledge a frame with.
func writeBridgeAck(w http.ResponseWriter, id string) {
	body, err := json.Marshal(&Response{ID: id})
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(body, '\n'))
}

// NewHTTPServer returns an http.Server for h (a Bridge's Handler, say)
// with every timeout set, so a slow or idle client cannot hold it:
// ReadHeaderTimeout 10s, ReadTimeout 1m, WriteTimeout 1m, IdleTimeout 2m,
// and headers limited to 64 KiB. A Bridge's stream handler lifts the
// write timeout for its own answer, since a stream may take longer, and
// bounds each write by DefaultHTTPTimeout instead. Start the server with
// ListenAndServe, or Serve on a listener; stop it with Shutdown.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: bridgeReadHeaderTimeout,
		ReadTimeout:       bridgeReadTimeout,
		WriteTimeout:      bridgeWriteTimeout,
		IdleTimeout:       bridgeIdleTimeout,
		MaxHeaderBytes:    bridgeMaxHeaderBytes,
	}
}
