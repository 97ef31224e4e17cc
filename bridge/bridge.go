// Package bridge connects callers that speak HTTP to local acomm services
// behind a tracker: an HTTP front for unix sockets, built only on the
// acomm package's exported API.
//
// The security defaults, and why:
//
//   - Response hooks are normalised once (no opaque part, no userinfo; the
//     URL is rebuilt from its string, which is what is dialed), and the
//     URL that CheckHook and HookPolicy vet is the URL dialed.
//   - Deliveries to hooks never follow redirects, use no proxy, are bounded
//     in time (DefaultHookTimeout), in connections per host and port
//     (DefaultMaxHookConnsPerHost), and in deliveries under way and
//     connections kept idle in all (DefaultMaxHookConns each), and end
//     when Shutdown's context does.
//   - The requests a bridge holds, awaiting their answer or its delivery,
//     are bounded in number (MaxPending): past it, new ones get 503.
//   - With a HookPolicy (acomm bridge always sets one), deliveries to
//     loopback, link-local, unspecified and multicast addresses are
//     refused, checked on the address actually dialed.
//   - /responses accepts a response only at a hook URL bound to its
//     request by the tracker (acomm.Tracker.BindHook), so that only the
//     party that was sent a request can answer it.
package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/acommgo/acomm"
	"github.com/pborman/uuid"
	"github.com/sirupsen/logrus"
)

// DefaultMaxBodyBytes is the largest request body a Bridge accepts unless
// its MaxBodyBytes says otherwise.
const DefaultMaxBodyBytes = 4 << 20

// Bridge connects callers that speak HTTP to the local services behind a
// tracker. It serves four endpoints (see Handler):
//
//   - POST /requests takes a Request from an external caller. The request
//     must have an http(s) response hook and a task that one of Routes
//     matches; it is tracked by the tracker, under an id of the bridge's
//     own and with the tracker's socket as its hook, and sent to the
//     route's service, and the POST is answered
//     with an acknowledgement: a Response with the request's id and error
//     "", as a unix socket acknowledges a frame, so acomm.Send to the
//     bridge works. The service's answer comes back to the tracker, and
//     the bridge delivers it to the caller's hook, under the caller's id,
//     with a unix stream_url rewritten to the tracker's HTTP stream URL.
//     A caller's ids are its own: the ids of two callers (two hooks)
//     never meet at the tracker or the service, so one's late answer or
//     cancel notice never reaches the other's request of the same id.
//   - POST /responses takes a Response for a request tracked by the
//     tracker and hands it to the request's handlers, when the URL it was
//     posted to is bound to that one tracked request
//     (acomm.Tracker.BindHook and HandleBoundResponse; Call binds the
//     tracker's WithHTTPHook URL itself): a tracker can send a
//     request to a remote bridge with an http hook pointing back at its own
//     bridge's /responses and have its handlers run as for unix responses.
//   - GET /stream?addr=unix:///... serves, once, a stream that the
//     tracker announced (acomm.Tracker.ProxyStreamHandler). Streams
//     announced by other trackers are refused.
//   - GET /healthz answers 200 {"status":"ok"} without a token while the
//     bridge takes requests, 503 once it is shutting down; it reveals
//     nothing else.
//
// For streams to be readable, the tracker's HTTP stream URL (the second
// argument of acomm.NewTracker) must be the bridge's advertised base URL
// + "/stream"; without one, stream URLs are dropped from forwarded
// responses.
//
// Every answer but a stream is JSON: an acknowledgement, or {"error":
// "..."} with 400 for a body that is not a valid request or response (or
// that names a unix hook or stream_url, which an outside caller must not
// make the bridge use, or a hook with an opaque part or userinfo), 401 for
// a missing or wrong token, 403 for a hook that CheckHook or HookPolicy
// refuses or a response posted at a URL not bound to its request, 404 for
// a task no route matches, 405 for a wrong method, 409 for a request id
// in flight already with the same hook, 413 for a body over MaxBodyBytes, 502 when the service
// cannot be reached or refuses the request, and 503 when the tracker is
// not running, the bridge holds MaxPending requests already, or it is
// shutting down. A 2xx acknowledgement of a
// request means its hook will be sent exactly one response (the answer,
// or an error such as a timeout) unless Shutdown runs out of time first;
// any other status means it will be sent none.
//
// Create a Bridge with New, or as a struct literal; set the fields before
// serving and do not change them afterwards. Deliveries to hooks run on
// goroutines of the bridge. To stop, shut the HTTP server down, then the
// bridge (Shutdown: the answers still due are delivered within its
// context), then the tracker.
type Bridge struct {
	// Tracker tracks the requests and receives the services' answers. It
	// must be started before requests arrive.
	Tracker *acomm.Tracker

	// Routes send each task to the unix socket of its service. An exact
	// pattern wins over prefix patterns; among prefix patterns the
	// longest prefix wins.
	Routes []Route

	// Token, when not empty, is required on /requests and /stream, as a
	// bearer token ("Authorization: Bearer TOKEN") or as the password of
	// basic authentication, so that a URL can carry it:
	// http://acomm:TOKEN@host/requests. Tokens are compared in constant
	// time. /responses is guarded by per-request capabilities instead
	// (see Bridge), so that hook URLs never carry this token.
	Token string

	// ResponsesToken, when not empty, is required by /responses as well
	// as the capability. Hooks may not carry userinfo, so set it only
	// when those who answer present it themselves.
	ResponsesToken string

	// MaxBodyBytes bounds the body of a POST; zero or less means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64

	// Timeout is how long a request is tracked awaiting its answer; zero
	// or less means the tracker's default. When it passes, the hook
	// receives an error response matching acomm.ErrTimeout.
	Timeout time.Duration

	// CheckHook, when not nil, vets the http(s) response hook of every
	// request (a copy of the URL that will be dialed); an error refuses
	// the request with 403.
	CheckHook func(hook *url.URL) error

	// HookPolicy, when not nil, vets the address of every hook delivery
	// as it is dialed, and address literals as requests arrive (403).
	// Without it the bridge will POST an answer to any http(s) URL a
	// caller names, which may reach hosts that the caller itself cannot:
	// set one unless every caller is trusted.
	HookPolicy *HookPolicy

	// HookTimeout bounds each delivery to a hook; zero or less means
	// DefaultHookTimeout.
	HookTimeout time.Duration

	// MaxPending bounds the requests the bridge holds at once: tracked
	// awaiting their answer, or answered and awaiting delivery to their
	// hook. Past it, /requests answers 503 (matching acomm.ErrBusy) until
	// one is done. Zero or less means DefaultMaxPending.
	MaxPending int

	// OnDelivery, when not nil, is called after each delivery to a hook,
	// from the delivery's goroutine, with how long it took and its error
	// (nil when the hook acknowledged the answer): a hook for metrics.
	// Shutdown does not wait for it (it may call Shutdown).
	OnDelivery func(took time.Duration, err error)

	// Logger receives a line for every refused or failed exchange
	// (refusals at Debug, failures to reach a service or a hook at
	// Warn). Nil means none.
	Logger logrus.FieldLogger

	clientOnce sync.Once
	client     *http.Client
	hookSlots  chan struct{} // one per delivery under way; see DefaultMaxHookConns

	mu         sync.Mutex                // protects the fields below
	closed     bool                      // Shutdown has begun
	pending    map[caller]*acomm.Request // forwarded requests, by their caller
	delivering int                       // answers being delivered
	work       sync.WaitGroup            // one count per pending request or delivery
	stopOnce   sync.Once
	stopCtx    context.Context // ends when Shutdown gives up on deliveries
	giveUp     context.CancelFunc
}

// New returns a Bridge that sends requests through tracker to the
// services that routes name. It fails with acomm.ErrInvalidArgument for a
// nil tracker, an invalid route or a pattern given twice.
func New(tracker *acomm.Tracker, routes ...Route) (*Bridge, error) {
	if tracker == nil {
		return nil, fmt.Errorf("%w: nil tracker", acomm.ErrInvalidArgument)
	}
	seen := make(map[string]bool, len(routes))
	for _, r := range routes {
		if err := r.validate(); err != nil {
			return nil, err
		}
		if seen[r.Pattern] {
			return nil, fmt.Errorf("%w: route pattern %q given twice", acomm.ErrInvalidArgument, r.Pattern)
		}
		seen[r.Pattern] = true
	}
	return &Bridge{Tracker: tracker, Routes: append([]Route(nil), routes...)}, nil
}

// Route returns the route for task: the route whose pattern is task, or
// else the prefix pattern with the longest prefix of task. It reports
// false when no route matches.
func (b *Bridge) Route(task string) (Route, bool) { return match(b.Routes, task) }

// Handler returns a handler that serves RequestsHandler at /requests,
// ResponsesHandler at /responses, StreamHandler at /stream, the health
// check at /healthz, and 404 at any other path. Mount it under a prefix
// with http.StripPrefix.
func (b *Bridge) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/requests":
			b.serveRequests(w, r)
		case "/responses":
			b.serveResponses(w, r)
		case "/stream":
			b.serveStream(w, r)
		case "/healthz":
			b.serveHealth(w, r)
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

// StreamHandler returns the handler of stream reads (see Bridge): the
// tracker's acomm.Tracker.ProxyStreamHandler behind the bridge's token.
func (b *Bridge) StreamHandler() http.Handler { return http.HandlerFunc(b.serveStream) }

// serveHealth answers the health check: no token, no details.
func (b *Bridge) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if b.isClosed() {
		httpError(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
}

// serveRequests checks, tracks and sends one request.
func (b *Bridge) serveRequests(w http.ResponseWriter, r *http.Request) {
	if !b.authorize(w, r, b.Token) || !checkPost(w, r) || !b.checkTracker(w) {
		return
	}
	if b.isClosed() {
		b.refuse(w, r, http.StatusServiceUnavailable, fmt.Errorf("%w: shutting down", ErrClosed))
		return
	}
	body, ok := b.readBody(w, r)
	if !ok {
		return
	}
	req := &acomm.Request{}
	if err := json.Unmarshal(body, req); err != nil {
		b.refuse(w, r, http.StatusBadRequest, err)
		return
	}
	if req.Task == acomm.CancelTask {
		b.serveCancel(w, r, req)
		return
	}
	if err := req.Validate(); err != nil {
		b.refuse(w, r, http.StatusBadRequest, err)
		return
	}
	hook, err := normalizeHook(req.ResponseHook)
	if err != nil {
		b.refuse(w, r, http.StatusBadRequest, err)
		return
	}
	if err := b.checkHook(hook); err != nil {
		b.refuse(w, r, http.StatusForbidden, err)
		return
	}
	route, ok := b.Route(req.Task)
	if !ok {
		b.refuse(w, r, http.StatusNotFound, fmt.Errorf("%w: no route for task %q", acomm.ErrUnknownTask, req.Task))
		return
	}

	t := b.Tracker
	// A copy, so that the caller's deadline and meta go on to the service,
	// under an id of the bridge's own (see Bridge).
	fwd := new(acomm.Request)
	*fwd = *req
	fwd.ID, fwd.ResponseHook, fwd.LegacyURLs = uuid.New(), t.URL(), false
	fwd.Meta = metaFromHeader(r.Header, req.Meta)
	if err := fwd.Validate(); err != nil {
		b.refuse(w, r, http.StatusBadRequest, err)
		return
	}
	c := caller{id: req.ID, hook: hook.String()}
	answer := func(_ *acomm.Request, resp *acomm.Response) { b.answer(fwd, c, hook, req.LegacyURLs, resp) }
	fwd.SuccessHandler, fwd.ErrorHandler = answer, answer
	switch err := b.begin(fwd, c); {
	case errors.Is(err, acomm.ErrDuplicateID):
		b.refuse(w, r, http.StatusConflict, err)
		return
	case err != nil: // ErrBusy, or the bridge stopping
		b.refuse(w, r, http.StatusServiceUnavailable, err)
		return
	}
	if err := t.TrackRequest(fwd, b.Timeout); err != nil {
		b.end(c, fwd)
		code := http.StatusInternalServerError
		if errors.Is(err, acomm.ErrNotStarted) || errors.Is(err, acomm.ErrTooManyRequests) {
			code = http.StatusServiceUnavailable
		}
		b.refuse(w, r, code, err)
		return
	}
	if err := t.Send(r.Context(), route.Addr, fwd); err != nil {
		if !t.RemoveRequest(fwd) {
			// The answer (or the timeout) came first and goes to the
			// hook: the request was delivered after all.
			b.log().WithError(err).WithField("id", req.ID).Debug("send failed after the request was answered")
			writeAck(w, req.ID)
			return
		}
		b.end(c, fwd)
		b.log().WithError(err).WithFields(logrus.Fields{"id": req.ID, "task": req.Task, "service": route.Addr.String()}).
			Warn("bridge could not deliver request to service")
		// Tell the caller why, but not where the service lives.
		code, msg := http.StatusBadGateway, fmt.Sprintf("%v: service for task %q is unavailable", acomm.ErrUnreachable, req.Task)
		var re *acomm.RemoteError
		switch {
		case errors.Is(err, acomm.ErrFrameTooLarge):
			code, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("%v: request too large for the service of task %q", acomm.ErrFrameTooLarge, req.Task)
		case errors.As(err, &re):
			msg = fmt.Sprintf("%v: service for task %q: %s", acomm.ErrRefused, req.Task, re.Message)
		}
		httpError(w, code, msg)
		return
	}
	writeAck(w, req.ID)
}

// checkHook vets a normalised hook with CheckHook and, for an address
// literal, the HookPolicy; errors match ErrHookForbidden.
func (b *Bridge) checkHook(hook *url.URL) error {
	if b.CheckHook != nil {
		c := *hook
		if err := b.CheckHook(&c); err != nil {
			return fmt.Errorf("%w: %w", ErrHookForbidden, err)
		}
	}
	if b.HookPolicy != nil {
		return b.HookPolicy.checkHost(hook.Hostname())
	}
	return nil
}

// isClosed reports whether Shutdown has begun.
func (b *Bridge) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// The pending map owns one count of b.work per request: whoever takes a
// request out of it (answer, end, or Shutdown giving up) gives the count
// back, once.

// caller is who sent a forwarded request: its own id for it, and its
// hook, normalised.
type caller struct{ id, hook string }

// begin records fwd, sent by c, as pending, unless the bridge is shutting
// down (ErrClosed) or c has a request of that id pending already
// (acomm.ErrDuplicateID).
func (b *Bridge) begin(fwd *acomm.Request, c caller) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("%w: shutting down", ErrClosed)
	}
	if b.pending[c] != nil {
		return fmt.Errorf("%w: %q, with the same hook", acomm.ErrDuplicateID, c.id)
	}
	max := b.MaxPending
	if max <= 0 {
		max = DefaultMaxPending
	}
	if len(b.pending)+b.delivering >= max {
		return fmt.Errorf("%w: the bridge holds %d requests, awaiting their answers or their delivery", acomm.ErrBusy, max)
	}
	if b.pending == nil {
		b.pending = make(map[caller]*acomm.Request)
	}
	b.pending[c] = fwd
	b.work.Add(1)
	return nil
}

// end forgets fwd, c's pending request, which will not be answered.
func (b *Bridge) end(c caller, fwd *acomm.Request) {
	if b.settle(c, fwd, 0) {
		b.work.Done()
	}
}

// settle takes fwd, c's request, out of the pending map and reports
// whether it was there: if so, the caller owns its count of b.work, and
// delivering more deliveries are counted under way (in the same hold of
// b.mu: see begin's bound).
func (b *Bridge) settle(c caller, fwd *acomm.Request, delivering int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending[c] != fwd {
		return false
	}
	delete(b.pending, c)
	b.delivering += delivering
	return true
}

// answer is the handler of a forwarded request, c's: it hands the
// response to a delivery goroutine, so that a slow hook holds none of the
// tracker's.
func (b *Bridge) answer(fwd *acomm.Request, c caller, hook *url.URL, legacy bool, resp *acomm.Response) {
	if !b.settle(c, fwd, 1) {
		return // Shutdown gave up on it
	}
	id := c.id
	out := *resp
	out.ID, out.LegacyURLs = id, legacy
	if out.Error != nil && strings.Contains(out.Error.Error(), fwd.ID) {
		// The tracker's own errors (a timeout) name the request by the
		// bridge's id: the caller knows it by its own.
		out.Error = &renamed{msg: strings.ReplaceAll(out.Error.Error(), fwd.ID, id), err: out.Error}
	}
	if out.StreamURL != nil && out.StreamURL.Scheme == "unix" {
		// A local socket means nothing to a remote caller: offer it
		// through the HTTP stream proxy, or not at all.
		su, err := b.Tracker.ProxyStreamHTTPURL(out.StreamURL)
		if err != nil {
			b.log().WithError(err).WithField("id", id).Warn("cannot proxy stream url; dropping it")
			su = nil
		}
		out.StreamURL = su
	}
	go func() {
		start := time.Now()
		err := b.deliver(b.deliveryContext(), hook, fwd.Meta, &out)
		took := time.Since(start)
		if err != nil {
			level := logrus.WarnLevel
			if dl, ok := fwd.Deadline(); ok && !time.Now().Before(dl) {
				// Its caller said it would not wait this long (the
				// answer is then the timeout): its hook is likely gone.
				level = logrus.DebugLevel
			}
			b.log().WithError(err).WithFields(logrus.Fields{"id": id, "hook": shown(hook)}).
				Log(level, "delivering response to hook failed")
		}
		// The delivery is over: Shutdown no longer waits for it, so that
		// OnDelivery, user code, may call Shutdown.
		b.mu.Lock()
		b.delivering--
		b.mu.Unlock()
		b.work.Done()
		if b.OnDelivery != nil {
			b.OnDelivery(took, err)
		}
	}()
}

// renamed is err, its message naming a request by its caller's id.
type renamed struct {
	msg string
	err error
}

func (e *renamed) Error() string { return e.msg }
func (e *renamed) Unwrap() error { return e.err }

// deliveryContext returns the context of deliveries: it ends when
// Shutdown gives up on them.
func (b *Bridge) deliveryContext() context.Context {
	b.stopOnce.Do(func() { b.stopCtx, b.giveUp = context.WithCancel(context.Background()) })
	return b.stopCtx
}

// Shutdown stops the bridge: /requests refuses new requests (503) and
// /healthz reports 503 at once; Shutdown then waits for the answers still
// due to the requests the bridge sent, and for their deliveries to the
// hooks. When ctx ends first, the requests still unanswered are removed
// from the tracker (their hooks get nothing), deliveries under way are cut
// off, and Shutdown returns ctx.Err() once they have stopped. It does not
// stop the HTTP server (shut it down first) or the tracker (after). A
// bridge that was shut down stays shut.
func (b *Bridge) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	idle := make(chan struct{})
	go func() {
		b.work.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		b.hookClient().CloseIdleConnections()
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	pending := make([]*acomm.Request, 0, len(b.pending))
	for _, fwd := range b.pending {
		pending = append(pending, fwd)
	}
	b.pending = nil
	b.mu.Unlock()
	for _, fwd := range pending {
		b.Tracker.RemoveRequest(fwd)
		b.work.Done()
	}
	b.deliveryContext()
	b.giveUp()
	<-idle
	// Close the kept connections, and those of dials begun for
	// deliveries that were then cut off, which still end in the pool.
	b.hookClient().CloseIdleConnections()
	return ctx.Err()
}

// serveResponses hands one response to the tracker.
func (b *Bridge) serveResponses(w http.ResponseWriter, r *http.Request) {
	if !b.authorize(w, r, b.ResponsesToken) || !checkPost(w, r) || !b.checkTracker(w) {
		return
	}
	body, ok := b.readBody(w, r)
	if !ok {
		return
	}
	resp := &acomm.Response{}
	if err := json.Unmarshal(body, resp); err != nil {
		b.refuse(w, r, http.StatusBadRequest, err)
		return
	}
	if resp.ID == "" {
		b.refuse(w, r, http.StatusBadRequest, fmt.Errorf("%w: missing id", acomm.ErrInvalidResponse))
		return
	}
	if resp.StreamURL != nil && resp.StreamURL.Scheme == "unix" {
		b.refuse(w, r, http.StatusBadRequest, fmt.Errorf("%w: unix stream urls are not accepted over http", acomm.ErrInvalidResponse))
		return
	}
	// The handler runs before the answer, so a sender that gets the
	// acknowledgement knows it has run. Like a unix socket, the bridge
	// acknowledges a response for a request no longer tracked and drops
	// it (when bound to it).
	if !b.Tracker.HandleBoundResponse(r.URL, resp) {
		b.refuse(w, r, http.StatusForbidden, fmt.Errorf("%w: id %q", ErrUnboundResponse, resp.ID))
		return
	}
	writeAck(w, resp.ID)
}

// serveStream serves an announced stream through the tracker.
func (b *Bridge) serveStream(w http.ResponseWriter, r *http.Request) {
	if !b.authorize(w, r, b.Token) {
		return
	}
	if b.Tracker == nil {
		httpError(w, http.StatusNotFound, "stream not found")
		return
	}
	b.Tracker.ProxyStreamHandler(w, r)
}

// checkTracker answers 500 when the bridge has no tracker.
func (b *Bridge) checkTracker(w http.ResponseWriter) bool {
	if b.Tracker != nil {
		return true
	}
	httpError(w, http.StatusInternalServerError, "acomm bridge: no tracker")
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
		b.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: request body of %d bytes exceeds the limit of %d", acomm.ErrInvalidArgument, r.ContentLength, max))
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			b.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: request body exceeds the limit of %d bytes", acomm.ErrInvalidArgument, mbe.Limit))
		} else {
			b.refuse(w, r, http.StatusBadRequest, fmt.Errorf("%w: read request body: %w", acomm.ErrConnection, err))
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
	if b.Logger != nil {
		return b.Logger
	}
	return discard
}

// discard is the logger of a bridge without one.
var discard = func() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.PanicLevel)
	return l
}()
