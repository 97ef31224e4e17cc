package acomm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sirupsen/logrus"
)

// DefaultRequestTimeout is the timeout used when NewTracker is given a
// default timeout of zero or less.
const DefaultRequestTimeout = time.Minute

// ErrTrackerStopped is the error of the response a tracker hands to the
// handlers of requests still outstanding when Shutdown's context ends.
var ErrTrackerStopped = errors.New("acomm: tracker stopped")

// tracker states.
const (
	stateNew = iota
	stateRunning
	stateStopping
)

// Tracker keeps track of requests waiting on a response.
//
// Each tracked request's handler runs exactly once: when its response
// arrives, or when it times out (with an error matching ErrTimeout), and
// never if RemoveRequest took it out first. A Tracker is safe for use by
// several goroutines.
type Tracker struct {
	cfg            config
	socketPath     string
	tmpDir         string // named by NewTracker, made by Start, removed by Stop
	tmpMade        bool   // Start made tmpDir; protected by mu
	httpStreamURL  *url.URL
	defaultTimeout time.Duration

	epoch       time.Time                         // origin of the tracker's clock; see now
	hook        *url.URL                          // URL(), for the requests the tracker makes; never changed
	hookText    string                            // hook.String(), which each of those frames carries
	answerTaker func(id string, answer *Response) // takeAnswer, for the onAnswer of requests
	callFn      CallFunc                          // Call wrapped in its middleware; nil for none
	cancels     chan struct{}                     // slots for cancel notices in flight; see notifyCancel
	noticed     idRing[string]                    // ids lately sent a cancel notice; protected by mu

	hookKey   hookKey        // see BindHook
	announced streamRegistry // streams ProxyStreamHandler may serve

	mu               sync.Mutex // protects the fields below
	state            int
	requests         map[string]*trackedRequest
	requestsPeak     int // most entries requests has held; see untrackLocked
	timeouts         timeoutHeap
	timer            *time.Timer // runs onTimer; nil until first armed
	timerAt          int64       // when timer is due (see now); noTimer when idle
	timerOff         bool        // Stop has disarmed the timer for good
	responseListener *UnixListener
	streams          map[string]*unixStream // by socket path
	stopDone         chan struct{}          // closed when a stop finishes
	stopHurry        chan struct{}          // closed when a Shutdown gives up waiting
	workers          *workerPool            // run SendAll's sends; made by Start

	untracked chan struct{} // closed once nothing is tracked while stopping; protected by mu

	stats   trackerCounters
	waiters stopWaiters    // response handlers running and Stop calls waiting; see shutdown.go
	pending sync.WaitGroup // one count per tracked request until handled
	bg      sync.WaitGroup // background goroutines
	timerWG sync.WaitGroup // one count per scheduled or running onTimer
}

// Timeouts: every tracked request sits in a min-heap ordered by deadline,
// and one runtime timer (an AfterFunc, so no goroutine waits on it) is
// armed for the earliest deadline. A request's three fates (response,
// timeout, RemoveRequest) each take it out of t.requests under t.mu;
// whoever removes it owns its single handling. The timer is moved earlier
// only when a new request is due before it; a request answered first
// leaves it as it is, and it then fires once in vain and re-arms for the
// new earliest deadline. So the common case of answered requests costs a
// heap insert and removal, with no timer operation.

// noTimer is timerAt when no onTimer run is due.
const noTimer = int64(math.MaxInt64)

// trackedRequest is the tracker's state for one request.
type trackedRequest struct {
	req       *Request
	forwardTo *url.URL  // for proxied requests: the original response hook
	dest      *url.URL  // where Call, SendAll or Tracker.Send sent it: see notifyCancel
	cancels   bool      // dest's acknowledgement of it listed "cancel"
	async     *callSend // Call's send, when it runs on its own: see postCall
	timeout   time.Duration
	byCaller  bool   // timeout is what was left of the caller's deadline
	index     int32  // in the timeouts heap
	inline    bool   // the handlers never block: run them on any goroutine
	binding   uint64 // its hook capability's binding; 0 for none (see BindHook)
}

// timeoutEntry is an entry of the timeouts heap: the deadline is kept
// beside the pointer so that sifting does not chase pointers.
type timeoutEntry struct {
	at int64 // deadline, on the clock of Tracker.now
	tr *trackedRequest
}

// timeoutHeap is a binary min-heap of deadlines. Each entry's request
// records its index, for removal from the middle.
type timeoutHeap []timeoutEntry

func (h *timeoutHeap) push(e timeoutEntry) {
	*h = append(*h, e)
	h.up(len(*h) - 1)
}

// remove removes the entry at i.
func (h *timeoutHeap) remove(i int) {
	s := *h
	n := len(s) - 1
	if i != n {
		s[i] = s[n]
		s[i].tr.index = int32(i)
	}
	s[n] = timeoutEntry{}
	s = s[:n]
	if c := cap(s); c > 1024 && n < c/8 {
		// Let a burst's backing array go.
		s = append(make(timeoutHeap, 0, 2*n), s...)
	}
	*h = s
	if i < n && !h.down(i) {
		h.up(i)
	}
}

func (h timeoutHeap) up(i int) {
	e := h[i]
	for i > 0 {
		p := (i - 1) / 2
		if h[p].at <= e.at {
			break
		}
		h[i] = h[p]
		h[i].tr.index = int32(i)
		i = p
	}
	h[i] = e
	e.tr.index = int32(i)
}

// down sifts the entry at i down and reports whether it moved.
func (h timeoutHeap) down(i int) bool {
	e, start, n := h[i], i, len(h)
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && h[r].at < h[c].at {
			c = r
		}
		if e.at <= h[c].at {
			break
		}
		h[i] = h[c]
		h[i].tr.index = int32(i)
		i = c
	}
	h[i] = e
	e.tr.index = int32(i)
	return i != start
}

// now returns the tracker's monotonic clock, in nanoseconds.
func (t *Tracker) now() int64 { return int64(time.Since(t.epoch)) }

// NewTracker creates and initializes a new Tracker. If a socketPath is not
// provided, the response socket will be created in a temporary directory,
// which Start makes (mode 0700) and Stop removes; Start refuses, with an
// error matching ErrUnsafeSocketPath, to use that directory if someone
// else has made it meanwhile.
// httpStreamURL, when not nil, is the base URL of a ProxyStreamHandler
// that makes this tracker's streams readable over HTTP. A defaultTimeout
// of zero or less means DefaultRequestTimeout.
func NewTracker(socketPath string, httpStreamURL *url.URL, defaultTimeout time.Duration) (*Tracker, error) {
	if httpStreamURL != nil {
		if httpStreamURL.Scheme != "http" && httpStreamURL.Scheme != "https" || httpStreamURL.Host == "" {
			return nil, fmt.Errorf("%w: http stream url %q must be an absolute http(s) url", ErrInvalidURL, httpStreamURL.String())
		}
	}
	if defaultTimeout <= 0 {
		defaultTimeout = DefaultRequestTimeout
	}
	t := &Tracker{
		cfg:            configFor(forTracker),
		httpStreamURL:  httpStreamURL,
		defaultTimeout: defaultTimeout,
		epoch:          time.Now(),
		requests:       make(map[string]*trackedRequest),
		timerAt:        noTimer,
		streams:        make(map[string]*unixStream),
		cancels:        make(chan struct{}, maxCancelsInFlight),
	}
	if socketPath == "" {
		// Named now, made by Start: a tracker never started leaves
		// nothing behind.
		t.tmpDir = filepath.Join(os.TempDir(), "acomm-"+rand.Text())
		socketPath = filepath.Join(t.tmpDir, "tracker.sock")
	}
	if abs, err := filepath.Abs(socketPath); err == nil {
		socketPath = abs
	}
	t.socketPath = socketPath
	t.hook = t.URL()
	t.hookText = t.hook.String()
	t.answerTaker = t.takeAnswer
	t.responseListener = NewUnixListener(socketPath, 0)
	return t, nil
}

// Configure applies options before Start. These apply to a Tracker:
// WithLogger, WithMaxFrameSize, WithIOTimeout, WithIdleTimeout,
// WithSocketMode, WithMaxConns, WithPeerCheck (its response socket and
// stream sockets), WithListener (its response socket),
// WithStreamIdleTimeout, WithMaxStreams, WithLegacyURLs, WithMaxTracked,
// WithHTTPHook, WithCallMiddleware and WithGracePeriod (see Stop). Any other option fails with an
// error matching ErrOptionNotApplicable, and an invalid one with
// ErrInvalidArgument; on error no option is applied. It fails with
// ErrAlreadyStarted on a running tracker.
func (t *Tracker) Configure(opts ...Option) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != stateNew {
		return ErrAlreadyStarted
	}
	cfg := t.cfg
	if err := cfg.apply(opts); err != nil {
		return err
	}
	callFn, err := chainCalls(cfg.callMiddleware, t.call)
	if err != nil {
		return err
	}
	t.cfg, t.callFn = cfg, callFn
	return nil
}

// log returns the tracker's logger.
func (t *Tracker) log() logrus.FieldLogger { return t.cfg.logger }

// Addr returns the string representation of the Tracker's response
// listener socket.
func (t *Tracker) Addr() string {
	return t.socketPath
}

// URL returns the URL of the Tracker's response listener socket.
func (t *Tracker) URL() *url.URL {
	return &url.URL{Scheme: "unix", Path: t.socketPath}
}

// Start activates the tracker. This allows tracking of requests as well as
// listening for and handling responses. Starting a running tracker does
// nothing; a stopped tracker can be started again.
func (t *Tracker) Start() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.state {
	case stateRunning:
		return nil
	case stateStopping:
		return fmt.Errorf("%w: tracker is stopping", ErrNotStarted)
	}
	if t.tmpDir != "" {
		created, err := makePrivateDir(t.tmpDir)
		if err != nil {
			return err
		}
		t.tmpMade = created
	}
	ul := NewUnixListener(t.socketPath, 0)
	ul.cfg = t.cfg
	ul.frames = true
	if err := ul.Start(); err != nil {
		t.removeTmpDir()
		return err
	}
	t.responseListener = ul
	t.workers = newWorkerPool()
	t.state = stateRunning
	t.timerOff = false
	t.bg.Add(1)
	go t.acceptResponses(ul)
	return nil
}

// acceptResponses hands each connection of the response listener to its
// own goroutine.
func (t *Tracker) acceptResponses(ul *UnixListener) {
	defer t.bg.Done()
	for conn := ul.NextConn(); conn != nil; conn = ul.NextConn() {
		t.bg.Add(1)
		go func(conn net.Conn) {
			defer t.bg.Done()
			defer ul.DoneConn(conn)
			serveFrames(conn, &t.cfg, t.log(), t.receiveFrame, &t.stats.refusedFrames, nil, baseAckFeatures)
		}(conn)
	}
}

// receiveFrame decodes a response frame. An accepted response is handed
// to its request after its acknowledgement is written: once it is handled,
// Stop may close the connection, and the sender must have its
// acknowledgement by then.
func (t *Tracker) receiveFrame(body []byte, _ *frameClock) (string, error, func(), answerFunc) {
	resp := &Response{}
	if _, err := decodeResponse(body, resp); err != nil {
		return "", fmt.Errorf("%w: %w", ErrMalformedFrame, err), nil, nil
	}
	if err := resp.validate(); err != nil {
		return "", err, nil, nil
	}
	return resp.ID, nil, func() { t.handleReceived(resp) }, nil
}

// handleReceived hands a response read from the socket to its request.
// User handlers run off the connection's goroutine, so that a slow one
// does not hold up the next frame; the tracker's own handlers, which
// never block (Call's, MultiRequest's), run right here, which spares a
// goroutine and a hop to it.
func (t *Tracker) handleReceived(resp *Response) {
	tr := t.take(resp.ID)
	if tr == nil {
		t.stats.droppedUnknown.Add(1)
		t.log().WithField("id", resp.ID).Debug("dropped response for untracked request")
		return
	}
	t.stats.answered.Add(1)
	if tr.inline && tr.forwardTo == nil {
		defer t.pending.Done()
		t.deliver(tr, resp)
		return
	}
	t.bg.Add(1) // the connection's goroutine holds a count: never from zero
	go func() {
		defer t.bg.Done()
		defer t.pending.Done()
		t.deliver(tr, resp)
	}()
}

// NumRequests returns the number of tracked requests
func (t *Tracker) NumRequests() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.requests)
}

// TrackRequest tracks a request. This does not need to be called after
// using ProxyUnix. A timeout of zero or less means the tracker's default.
// It fails with ErrNotStarted when the tracker is not running and with
// ErrDuplicateID when a request with the same ID is tracked.
func (t *Tracker) TrackRequest(req *Request, timeout time.Duration) error {
	if req == nil {
		return fmt.Errorf("%w: nil request", ErrInvalidArgument)
	}
	if req.ID == "" {
		return fmt.Errorf("%w: missing id", ErrInvalidRequest)
	}
	return t.track(req, timeout, nil)
}

// track registers req; forwardTo is set for proxied requests.
func (t *Tracker) track(req *Request, timeout time.Duration, forwardTo *url.URL) error {
	return t.trackRequest(req, timeout, forwardTo, nil, false, nil)
}

// trackInline registers req, whose handlers are the tracker's own and never
// block, so that they may run on the goroutine that reads the response.
// dest, when known, is where it is about to be sent. A handler, when not
// nil, becomes both of req's handlers (with the answer taking that goes
// with them) only once req is certain to be tracked: a refused req is
// left as it was, handlers included (it may be tracked already).
func (t *Tracker) trackInline(req *Request, timeout time.Duration, dest *url.URL, handler func(*Request, *Response)) error {
	return t.trackRequest(req, timeout, nil, dest, true, handler)
}

// trackRequest registers req; see track and trackInline. It sets req's
// deadline (see Request.Deadline) to the end of its timeout.
func (t *Tracker) trackRequest(req *Request, timeout time.Duration, forwardTo, dest *url.URL, inline bool, handler func(*Request, *Response)) error {
	if timeout <= 0 {
		timeout = t.defaultTimeout
	}
	now := t.now()
	at := now + int64(timeout)
	if at < now { // overflow: as good as never
		at = noTimer - 1
	}
	byCaller := false // the caller's deadline comes first
	if req.callerDeadline {
		// A received request, tracked to be passed on: its caller
		// waits no longer than it said.
		if cd := int64(req.deadline.Sub(t.epoch)); cd < at {
			at = max(cd, now+1)
			timeout, byCaller = time.Duration(at-now), true
		}
	}
	if !utf8.ValidString(req.ID) {
		// It would travel as U+FFFD, and its answer never match.
		return fmt.Errorf("%w: %w: id is not valid UTF-8", ErrInvalidRequest, ErrInvalidArgument)
	}
	tr := &trackedRequest{req: req, timeout: timeout, byCaller: byCaller, forwardTo: forwardTo, dest: dest, inline: inline}
	var rebound *url.URL
	if forwardTo == nil {
		rebound, tr.binding = t.hookKey.rebind(req) // hookcap.go
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != stateRunning {
		t.stats.refused.Add(1)
		return fmt.Errorf("%w: cannot track request %s", ErrNotStarted, req.ID)
	}
	if _, ok := t.requests[req.ID]; ok {
		t.stats.refused.Add(1)
		return fmt.Errorf("%w: %s", ErrDuplicateID, req.ID)
	}
	if t.cfg.maxTracked > 0 && len(t.requests) >= t.cfg.maxTracked {
		t.stats.refused.Add(1)
		return fmt.Errorf("%w: %d requests tracked", ErrTooManyRequests, len(t.requests))
	}
	t.stats.tracked.Add(1)
	if rebound != nil {
		req.ResponseHook, req.hookText = rebound, ""
	}
	req.deadline = t.epoch.Add(time.Duration(at))
	if handler != nil {
		req.SuccessHandler, req.ErrorHandler = handler, handler
		t.takeAnswersInAck(req)
	}
	if !inline && forwardTo == nil {
		// Answered at this tracker's socket: a Server that takes
		// answer_in_ack may as well answer in the acknowledgement of
		// Send (see answer.go), one exchange instead of two.
		t.takeAnswersInAck(req)
	}
	t.requests[req.ID] = tr
	if n := len(t.requests); n > t.requestsPeak {
		t.requestsPeak = n
	}
	t.pending.Add(1)
	t.timeouts.push(timeoutEntry{at: at, tr: tr})
	if at < t.timerAt {
		t.armLocked(at, now)
	}
	return nil
}

// armLocked (re)schedules onTimer for at. t.mu must be held.
func (t *Tracker) armLocked(at, now int64) {
	d := time.Duration(at - now)
	switch {
	case t.timer == nil:
		t.timerWG.Add(1)
		t.timer = time.AfterFunc(d, t.onTimer)
	case !t.timer.Reset(d):
		// Not a pending run moved, but a new run scheduled.
		t.timerWG.Add(1)
	}
	t.timerAt = at
}

// onTimer expires the requests whose deadline has passed and re-arms the
// timer for the earliest one left. Several runs may overlap; each takes
// what is due under t.mu, so each request expires once.
func (t *Tracker) onTimer() {
	defer t.timerWG.Done()
	now := t.now()
	var (
		first   *trackedRequest
		expired []*trackedRequest
	)
	t.mu.Lock()
	for len(t.timeouts) > 0 && t.timeouts[0].at <= now {
		tr := t.timeouts[0].tr
		t.untrackLocked(tr)
		if first == nil {
			first = tr
		} else {
			expired = append(expired, tr)
		}
	}
	t.timerAt = noTimer
	if len(t.timeouts) > 0 && !t.timerOff {
		t.armLocked(t.timeouts[0].at, now)
	}
	t.mu.Unlock()
	// Like the answers of different requests, timeouts due together are
	// handled concurrently: a slow handler does not hold up the others.
	for _, tr := range expired {
		go t.expire(tr)
	}
	if first != nil {
		t.expire(first)
	}
}

// untrackLocked removes tr from the requests and timeouts. t.mu must be
// held, and tr must be tracked.
func (t *Tracker) untrackLocked(tr *trackedRequest) {
	delete(t.requests, tr.req.ID)
	t.timeouts.remove(int(tr.index))
	if len(t.requests) == 0 && t.requestsPeak > 1024 {
		// Maps do not shrink: after a burst, start a small one.
		t.requests = make(map[string]*trackedRequest)
		t.requestsPeak = 0
	}
	t.noteUntrackedLocked()
}

// noteUntrackedLocked closes t.untracked when the tracker stops and
// nothing is tracked any more. t.mu must be held.
func (t *Tracker) noteUntrackedLocked() {
	if t.untracked != nil && len(t.requests) == 0 {
		close(t.untracked)
		t.untracked = nil
	}
}

// take removes and returns the tracked request with id. The caller that
// gets it owns its single handling.
func (t *Tracker) take(id string) *trackedRequest {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr, ok := t.requests[id]
	if !ok {
		return nil
	}
	t.untrackLocked(tr)
	return tr
}

// expire handles a request whose timeout fired; onTimer has taken it.
func (t *Tracker) expire(tr *trackedRequest) {
	defer t.pending.Done()
	t.stats.timedOut.Add(1)
	t.notifyCancel(tr)
	err := fmt.Errorf("%w: request %s (task %q) got no response within %s", ErrTimeout, tr.req.ID, tr.req.Task, tr.timeout)
	switch {
	case tr.byCaller && tr.timeout < time.Millisecond:
		err = fmt.Errorf("%w: request %s (task %q) arrived after its caller's deadline", ErrTimeout, tr.req.ID, tr.req.Task)
	case tr.byCaller:
		err = fmt.Errorf("%w: request %s (task %q) got no response by its caller's deadline (%s)", ErrTimeout, tr.req.ID, tr.req.Task, tr.timeout.Round(time.Millisecond))
	}
	resp := &Response{ID: tr.req.ID, Error: err}
	t.deliver(tr, resp)
}

// HandleResponse associates a response with a request and either forwards
// the response or calls the request's handler. A response for a request
// that is not tracked (unknown, already answered, timed out or removed) is
// dropped and logged at Debug level.
func (t *Tracker) HandleResponse(resp *Response) {
	if resp == nil {
		return
	}
	t.handleTaken(t.take(resp.ID), resp)
}

// handleTaken handles resp, the response to tr, which the caller took (see
// take), on the calling goroutine; a nil tr (the request was not tracked)
// drops it.
func (t *Tracker) handleTaken(tr *trackedRequest, resp *Response) {
	if tr == nil {
		t.stats.droppedUnknown.Add(1)
		t.log().WithField("id", resp.ID).Debug("dropped response for untracked request")
		return
	}
	t.stats.answered.Add(1)
	defer t.pending.Done()
	t.deliver(tr, resp)
}

// deliver runs the request's handler, or forwards a proxied request's
// response to its original hook. A panicking handler is logged, not
// propagated, so one bad handler cannot take the tracker down.
func (t *Tracker) deliver(tr *trackedRequest, resp *Response) {
	defer func() {
		if p := recover(); p != nil {
			t.log().WithFields(logrus.Fields{"id": tr.req.ID, "task": tr.req.Task, "panic": p, "stack": string(debug.Stack())}).
				Error("response handler panicked")
		}
	}()
	if tr.forwardTo == nil {
		if !tr.inline { // the user's handlers, not Call's or MultiRequest's
			seq := t.waiters.started()
			defer t.waiters.ended(seq)
		}
		tr.req.HandleResponse(resp)
		return
	}
	fwd := *resp
	fwd.LegacyURLs = tr.req.LegacyURLs || t.cfg.legacyURLs
	if fwd.StreamURL != nil && fwd.StreamURL.Scheme == "unix" {
		// A local socket means nothing to a remote caller: offer it
		// through the HTTP stream proxy, or not at all.
		su, err := t.ProxyStreamHTTPURL(fwd.StreamURL)
		if err != nil {
			t.log().WithError(err).WithField("id", resp.ID).Warn("cannot proxy stream url; dropping it")
			su = nil
		}
		fwd.StreamURL = su
	}
	if err := sendMsg(context.Background(), tr.forwardTo, &fwd, &t.cfg); err != nil {
		t.log().WithError(err).WithFields(logrus.Fields{"id": resp.ID, "hook": redacted(tr.forwardTo)}).
			Warn("forwarding response failed")
	}
}

// RemoveRequest should be used to remove a tracked request. Use in cases
// such as sending failures, where there is no hope of a response being
// received. It reports whether the request was tracked; once it returns
// true, the request's handlers will not run. A request sent by Call or
// MultiRequest.SendAll is cancelled at its service (see the README's
// wire format).
func (t *Tracker) RemoveRequest(req *Request) bool {
	return t.remove(req, true)
}

// remove is RemoveRequest; notify says whether to send a cancel notice.
func (t *Tracker) remove(req *Request, notify bool) bool {
	if req == nil {
		return false
	}
	tr := t.take(req.ID)
	if tr == nil {
		return false
	}
	t.stats.removed.Add(1)
	if notify {
		t.notifyCancel(tr)
	}
	t.pending.Done()
	return true
}

// ProxyUnix proxies requests that have response hooks of non-unix sockets
// through one that does. If the response hook is already a unix socket, it
// returns the original request. If not, it tracks the original request and
// returns a new request with a unix socket response hook. The purpose of
// this is so that there can be a single entry and exit point for external
// communication, while local services can reply directly to each other.
func (t *Tracker) ProxyUnix(req *Request, timeout time.Duration) (*Request, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if req.ResponseHook.Scheme == "unix" {
		return req, nil
	}
	if err := t.track(req, timeout, req.ResponseHook); err != nil {
		return nil, err
	}
	return &Request{
		ID:             req.ID,
		Task:           req.Task,
		ResponseHook:   t.URL(),
		Args:           req.Args,
		LegacyURLs:     req.LegacyURLs || t.cfg.legacyURLs,
		Meta:           req.Meta,
		deadline:       req.deadline,
		callerDeadline: req.callerDeadline,
	}, nil
}

// Stop deactivates the tracker. It blocks until all active connections or
// tracked requests to finish: every tracked request is answered or times
// out and its handler returns first, then the response listener and every
// stream listener are closed and their socket files removed. Stop returns
// at once when idle. Stopping a tracker that is not running does nothing.
//
// A response handler may stop its own tracker. Stop cannot tell that it
// was called from a handler: it waits as above, except that once no
// request is tracked and the grace period (WithGracePeriod, default
// DefaultGracePeriod) is over, it stops waiting for the handlers that
// were already running when it was called, as soon as each handler still
// running was running when one of the Stop or Shutdown calls waiting
// began, a different call for each (each handler may then be blocked in
// one of them; see the README, "Shutting down"). It then returns, and the
// stop finishes when the handlers return (until then Start fails). So
// Stop from a handler returns once nothing else is tracked and the grace
// period is over; a handler that starts after Stop was called is waited
// for without bound; and an outside Stop made while a handler runs may
// return before that handler, once nothing is tracked and the grace
// period is over. Stop of another tracker from a handler is like any
// other Stop of it.
func (t *Tracker) Stop() {
	_ = t.Shutdown(context.Background())
}

// Shutdown is Stop with a bound: when ctx ends before the tracker has
// stopped, it returns ctx.Err() at once, and the stop goes on in the
// background without waiting for responses any more: the handlers of the
// requests still tracked run with an error response matching
// ErrTrackerStopped, and the stop finishes when the handlers running
// return. Until then Start fails. Several calls may run at once; each
// returns when the tracker has stopped or its own ctx ends. Called from a
// response handler, Shutdown returns as Stop does (or when ctx ends).
func (t *Tracker) Shutdown(ctx context.Context) error {
	entry, handlers := t.waiters.began()
	t.mu.Lock()
	switch t.state {
	case stateNew:
		t.mu.Unlock()
		return nil
	case stateRunning:
		t.state = stateStopping
		t.stopDone = make(chan struct{})
		t.stopHurry = make(chan struct{})
		untracked := make(chan struct{})
		t.untracked = untracked
		t.noteUntrackedLocked()
		go t.teardown(t.responseListener, untracked, t.stopDone, t.stopHurry)
	}
	done, hurry := t.stopDone, t.stopHurry
	t.mu.Unlock()
	return t.waiters.wait(ctx, entry, handlers, done, func() { closeOnce(&t.mu, hurry) })
}

// teardown stops the tracker: it waits until every tracked request is
// handled (or, once hurry is closed, hands those left ErrTrackerStopped),
// then closes the listeners, waits for the background goroutines and
// closes done. Once nothing is tracked (untracked is closed) and the
// grace period is over, it tells the Stop calls waiting (see
// stopWaiters).
func (t *Tracker) teardown(ul *UnixListener, untracked, done, hurry chan struct{}) {
	idle := make(chan struct{})
	go func() {
		t.pending.Wait()
		close(idle)
	}()
	var grace *time.Timer
	var graceOver <-chan time.Time
wait:
	for {
		select {
		case <-idle:
			break wait
		case <-hurry:
			// Not on this goroutine: a handler it runs may call Stop,
			// which waits for what this loop does next.
			hurry = nil
			t.bg.Add(1)
			go func() {
				defer t.bg.Done()
				t.failOutstanding()
			}()
		case <-untracked:
			untracked = nil
			grace = time.NewTimer(t.cfg.gracePeriod)
			graceOver = grace.C
		case <-graceOver:
			graceOver = nil
			t.waiters.onlyHandlersLeft()
		}
	}
	if grace != nil {
		grace.Stop()
	}

	// Nothing is tracked any more: disarm the timer, and wait for a run
	// that may be under way (it finds nothing to do).
	t.mu.Lock()
	t.timerOff = true
	if t.timer != nil && t.timer.Stop() {
		t.timerWG.Done()
	}
	t.timerAt = noTimer
	t.mu.Unlock()
	t.timerWG.Wait()

	ul.Stop(0)
	t.mu.Lock()
	streams := make([]*unixStream, 0, len(t.streams))
	for _, s := range t.streams {
		streams = append(streams, s)
	}
	t.mu.Unlock()
	for _, s := range streams {
		s.close()
	}
	t.bg.Wait()
	t.mu.Lock()
	workers := t.workers
	t.mu.Unlock()
	workers.close()
	unannounceAll(t)

	t.waiters.reset()
	t.mu.Lock()
	t.removeTmpDir()
	t.untracked = nil
	t.state = stateNew
	close(done)
	t.mu.Unlock()
}

// goRun runs f on a goroutine, one of the tracker's workers if it runs.
func (t *Tracker) goRun(f func()) {
	t.mu.Lock()
	workers := t.workers
	t.mu.Unlock()
	if workers == nil {
		go f()
		return
	}
	workers.run(f) // a closed pool's worker runs f and exits
}

// removeTmpDir removes the temporary directory if Start made it. t.mu
// must be held (or the tracker be in Start).
func (t *Tracker) removeTmpDir() {
	if t.tmpMade {
		_ = os.RemoveAll(t.tmpDir)
		t.tmpMade = false
	}
}

// failOutstanding hands every tracked request an ErrTrackerStopped
// response.
func (t *Tracker) failOutstanding() {
	t.mu.Lock()
	outstanding := make([]*trackedRequest, 0, len(t.requests))
	for _, e := range t.timeouts {
		outstanding = append(outstanding, e.tr)
	}
	t.timeouts = nil
	t.requests = make(map[string]*trackedRequest)
	t.requestsPeak = 0
	t.noteUntrackedLocked()
	t.mu.Unlock()
	t.stats.abandoned.Add(uint64(len(outstanding)))
	// Proxied requests are answered over HTTP: do it side by side, so
	// that many slow or unreachable hooks cost one timeout, not one each.
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, tr := range outstanding {
		t.notifyCancel(tr)
		sem <- struct{}{}
		wg.Add(1)
		go func(tr *trackedRequest) {
			defer wg.Done()
			defer func() { <-sem }()
			t.deliver(tr, &Response{ID: tr.req.ID, Error: fmt.Errorf("%w: request %s abandoned", ErrTrackerStopped, tr.req.ID)})
			t.pending.Done()
		}(tr)
	}
	wg.Wait()
}
