package acomm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// TaskHandler runs one task for a Server. It returns the result to send
// back (marshalled to JSON; nil travels as null), optionally a stream of
// further data, or an error, which takes precedence over a result. A
// handler runs in a goroutine of its own; a panic in it is recovered,
// logged with its stack and answered with an error matching
// ErrHandlerPanic. The error's message travels to the caller,
// where it becomes a *RemoteError; wrap one of the package's sentinels
// (with %w, at the start of the message) for callers to match it.
//
// ctx is cancelled when the server stops and the grace period has run out;
// a handler that may run long should watch it. It also names the server:
// a handler stops its own server with Shutdown(ctx), which then returns at
// once (see Server.Stop). A returned stream is served once through the
// server's tracker (see NewServer) and closed after it has been read; it
// is closed unread when the response carries an error.
type TaskHandler func(ctx context.Context, req *Request) (result interface{}, stream io.ReadCloser, err error)

// Defaults of the Server's settings.
const (
	// DefaultMaxHandlers is how many handlers a Server runs at once
	// unless set with WithMaxHandlers. It is a fixed number rather than
	// a multiple of GOMAXPROCS because handlers usually wait (on disks,
	// other services) rather than compute; each running handler costs a
	// goroutine and whatever it holds.
	DefaultMaxHandlers = 1024
	// DefaultGracePeriod is how long Stop lets running handlers finish
	// before it cancels their context, unless set with WithGracePeriod.
	DefaultGracePeriod = 10 * time.Second
)

// minCancelWait is the least time Stop waits, after cancelling the
// handlers' context, for them to return before it abandons them.
const minCancelWait = 100 * time.Millisecond

// WithGracePeriod sets how long a Server's Stop lets running handlers
// finish before it cancels their context, how long a UnixListener's
// Shutdown waits for the connections it handed out before it closes them,
// and how long a Tracker's Stop, once no request is tracked, waits for
// response handlers that may be blocked in it (see Tracker.Stop) (default
// DefaultGracePeriod). Zero cancels, closes or stops waiting at once.
func WithGracePeriod(d time.Duration) Option {
	return option("WithGracePeriod", forAll, func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: grace period %s", ErrInvalidArgument, d)
		}
		c.gracePeriod = d
		return nil
	})
}

// WithMaxHandlers sets how many handlers a Server runs at once (default
// DefaultMaxHandlers). A request arriving when that many are running is
// answered at once with an error matching ErrBusy.
func WithMaxHandlers(n int) Option {
	return option("WithMaxHandlers", forServer, func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("%w: max handlers %d", ErrInvalidArgument, n)
		}
		c.maxHandlers = n
		return nil
	})
}

// Server states.
const (
	serverNew = iota
	serverRunning
	serverStopping
	serverStopped
)

// Server receives requests on a unix socket and runs the handler
// registered for each request's task, sending the handler's result to the
// request's response hook.
//
// Every request frame is acknowledged: a frame that cannot be decoded, or
// a request that fails validation (no ID, task or usable response hook),
// is refused in the acknowledgement, so the sender's Send returns the
// reason. An accepted request gets exactly one response on its hook: the
// handler's result, or an error matching ErrUnknownTask (no handler for
// the task), ErrBusy (the maximum number of handlers is running),
// ErrHandlerPanic (the handler panicked; the panic and its stack are
// logged) or ErrServerStopped (the server is stopping).
//
// A Server is safe for use by several goroutines. It cannot be restarted
// once stopped.
type Server struct {
	socketPath string
	tracker    *Tracker

	handlersMu sync.Mutex                                      // serializes Handle and Use
	handlers   atomic.Pointer[map[string]TaskHandler]          // copied on write
	middleware atomic.Pointer[[]func(TaskHandler) TaskHandler] // see Use; copied on write
	docs       taskDocs                                        // see Describe

	mu        sync.Mutex // protects the fields below
	cfg       config     // not changed once started
	state     int
	ul        *UnixListener
	ctx       context.Context // handlers' context; cancelled by Stop
	cancel    context.CancelFunc
	jobs      map[*job]struct{} // handlers running, answer not yet sent
	byID      map[string]*job   // the jobs, by request ID, chained by sameID; see cancelNotice
	early     idRing[uint64]    // cancel notices that came before their request, by earlyKey
	answers   chan struct{}     // slots for immediate answers; see answerNow
	idle      chan struct{}     // made by Shutdown; closed when jobs is empty
	stopDone  chan struct{}     // closed when the stop finishes
	stopHurry chan struct{}     // closed when a Shutdown gives up waiting

	stats   serverCounters
	bg      sync.WaitGroup // accept loop, connections, immediate answers
	workers *workerPool    // run the handlers
}

// handlerOf is the key of the value that a Server's handlers' context
// carries: the server, so that its Shutdown knows a call from one of them.
type handlerOf struct{}

// calledFromHandler reports whether ctx is (or derives from) the context
// of one of s's task handlers.
func (s *Server) calledFromHandler(ctx context.Context) bool {
	return ctx.Value(handlerOf{}) == s
}

// job is one running handler.
type job struct {
	req      *Request
	state    atomic.Int32   // jobRunning, then jobAnswering or jobAbandoned
	ctx      handlerContext // the handler's; ctx.end cancels it
	byCaller atomic.Bool    // cancelled by a cancel notice
	sameID   *job           // the next job whose request has the same ID; see byID

	srv      *Server
	ack      ackRef       // set when the response may go in the acknowledgement
	ackState atomic.Int32 // ackWaiting, then ackAnswered or ackByHook
	resp     *Response    // the response put in the acknowledgement

	h TaskHandler // for runHeld: the handler
}

// runHeld runs the job's handler on the calling goroutine: the
// connection's reader, which was told it may (see heldJob).
func (j *job) runHeld() {
	h := j.h
	j.h = nil
	j.srv.run(&j.ctx, j, h)
}

// Job states: whoever moves a job out of jobRunning sends its response.
const (
	jobRunning int32 = iota
	jobAnswering
	jobAbandoned
)

// NewServer returns a Server that will listen on socketPath. tracker
// serves the streams that handlers return (see Tracker.NewStreamUnix); it
// must be running while the server is, and may be nil for a server whose
// handlers never return a stream, in which case a returned stream is
// closed and the caller gets an error matching ErrInvalidResponse.
func NewServer(socketPath string, tracker *Tracker) *Server {
	if socketPath != "" {
		if abs, err := filepath.Abs(socketPath); err == nil {
			socketPath = abs
		}
	}
	s := &Server{
		socketPath: socketPath,
		tracker:    tracker,
		cfg:        configFor(forServer),
	}
	s.handlers.Store(&map[string]TaskHandler{})
	return s
}

// Configure applies options before Start. These apply to a Server:
// WithLogger, WithMaxFrameSize, WithIOTimeout, WithIdleTimeout,
// WithSocketMode, WithMaxConns, WithPeerCheck, WithListener,
// WithGracePeriod, WithMaxHandlers and WithoutIntrospection. Any other
// option fails with an error matching ErrOptionNotApplicable, and an
// invalid one with ErrInvalidArgument; on error no option is applied. It
// fails with ErrAlreadyStarted once the server has been started.
func (s *Server) Configure(opts ...Option) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != serverNew {
		return ErrAlreadyStarted
	}
	cfg := s.cfg
	if err := cfg.apply(opts); err != nil {
		return err
	}
	s.cfg = cfg
	return nil
}

// Handle registers h as the handler of task, replacing any handler
// registered for it before. It may be called while the server runs; the
// handler applies to requests that arrive afterwards. Like
// http.ServeMux.Handle, it panics on an empty task or a nil handler.
func (s *Server) Handle(task string, h TaskHandler) {
	if task == "" {
		panic("acomm: Server.Handle: empty task")
	}
	if h == nil {
		panic("acomm: Server.Handle: nil handler for task " + task)
	}
	s.handlersMu.Lock()
	defer s.handlersMu.Unlock()
	old := *s.handlers.Load()
	m := make(map[string]TaskHandler, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[task] = h
	s.handlers.Store(&m)
}

// handler returns the handler of task, or nil.
func (s *Server) handler(task string) TaskHandler {
	return (*s.handlers.Load())[task]
}

// Addr returns the path of the server's socket.
func (s *Server) Addr() string {
	return s.socketPath
}

// URL returns the unix URL of the server's socket, to send requests to.
func (s *Server) URL() *url.URL {
	return &url.URL{Scheme: "unix", Path: s.socketPath}
}

// log returns the server's logger.
func (s *Server) log() logrus.FieldLogger { return s.cfg.logger }

// Start listens on the server's socket and starts serving requests.
// Starting a running server does nothing; starting a stopped one fails
// with an error matching ErrServerStopped.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case serverRunning:
		return nil
	case serverStopping, serverStopped:
		return fmt.Errorf("%w: a stopped server cannot be restarted", ErrServerStopped)
	}
	ul := NewUnixListener(s.socketPath, 0)
	ul.cfg = s.cfg
	ul.frames = true
	if err := ul.Start(); err != nil {
		return err
	}
	s.ul = ul
	s.ctx, s.cancel = context.WithCancel(context.WithValue(context.Background(), handlerOf{}, s))
	s.jobs = make(map[*job]struct{})
	s.byID = make(map[string]*job)
	s.answers = make(chan struct{}, s.cfg.maxHandlers)
	s.workers = newWorkerPool()
	s.state = serverRunning
	s.bg.Add(1)
	go s.accept(ul)
	return nil
}

// accept serves each connection in its own goroutine until the listener
// stops.
func (s *Server) accept(ul *UnixListener) {
	defer s.bg.Done()
	for conn := ul.NextConn(); conn != nil; conn = ul.NextConn() {
		s.bg.Add(1)
		c := &serverConn{s: s}
		c.answer = c.answerInAck
		go serveFrames(conn, &s.cfg, s.log(), c.receiveFrame, &s.stats.refusedFrames, func() {
			ul.DoneConn(conn)
			s.bg.Done()
		}, serverAckFeatures)
	}
}

// serverConn is what a Server keeps of one connection, for its reader.
type serverConn struct {
	s      *Server
	rep    repeats    // the hook and the task of the last request read
	next   *Request   // the request answer is for, once receiveFrame returns it
	answer answerFunc // answerInAck: made once, not a closure per request
}

// receiveFrame decodes and validates a request frame. An accepted request
// is dispatched after its acknowledgement is written: once a handler runs,
// Stop may close the connection, and the sender must have its
// acknowledgement by then.
func (c *serverConn) receiveFrame(body []byte, clock *frameClock) (string, error, func(), answerFunc) {
	s := c.s
	req := &Request{}
	if err := decodeRequestMem(body, req, &req.argsMem, &c.rep, clock); err != nil {
		if !errors.Is(err, ErrInvalidRequest) {
			err = fmt.Errorf("%w: %w", ErrMalformedFrame, err)
		}
		return "", err, nil, nil
	}
	if req.Task == CancelTask {
		return req.ID, s.cancelNotice(req), nil, nil
	}
	if err := req.Validate(); err != nil {
		return req.ID, err, nil, nil
	}
	s.stats.received.Add(1)
	req.via = &s.cfg
	if req.answerInAck {
		c.next = req // answer is called at once (see frameHandler)
		return req.ID, nil, nil, c.answer
	}
	return req.ID, nil, func() { s.dispatch(req) }, nil
}

// answerInAck is the answerFunc of the request receiveFrame just returned.
func (c *serverConn) answerInAck(ack ackRef) ackBudget {
	req := c.next
	c.next = nil
	return c.s.answerInAck(req, ack)
}

// dispatch starts the handler of req, or answers it at once when there is
// none, the server is busy or it is stopping.
func (s *Server) dispatch(req *Request) { s.start(req, nil) }

// start starts the handler of req, or answers it at once (see dispatch).
// With ack, the handler's response may go in that acknowledgement (see
// answerInAck); it returns nil when no handler started.
func (s *Server) start(req *Request, ack *ackRef) *job {
	var now time.Time
	if ack != nil {
		now = ack.at // its frame was read just now
	} else {
		now = time.Now()
	}
	if req.expired(now) {
		s.stats.expired.Add(1)
		s.answerNow(req, fmt.Errorf("%w: task %q arrived after its caller's deadline", ErrTimeout, req.Task))
		return nil
	}
	h := s.handler(req.Task)
	if h == nil {
		h = s.reservedHandler(req.Task) // introspect.go
	}
	if h == nil {
		s.stats.unknownTask.Add(1)
		s.answerNow(req, fmt.Errorf("%w: %q", ErrUnknownTask, req.Task))
		return nil
	}
	j, ctx, err := s.acquire(req)
	if err != nil {
		if errors.Is(err, ErrBusy) {
			s.stats.busy.Add(1)
		}
		s.answerNow(req, err)
		return nil
	}
	if ack != nil {
		j.ack = *ack
		if ack.here { // the connection's reader runs it: see heldJob
			j.h = h
			return j
		}
	}
	s.workers.run(func() { s.run(ctx, j, h) })
	return j
}

// answerNow sends req an error response without running a handler. It
// sends from a goroutine of its own while fewer than the handler limit
// are sending such answers, so that a slow response hook does not hold up
// the frames queued behind on the connection; beyond that it sends from
// the connection's goroutine, which slows down only that connection's
// sender instead of piling up goroutines.
func (s *Server) answerNow(req *Request, err error) {
	resp := errorResponse(req, err)
	select {
	case s.answers <- struct{}{}:
		s.bg.Add(1) // the calling connection holds a count: never from zero
		go func() {
			defer s.bg.Done()
			defer func() { <-s.answers }()
			s.respond(req, resp)
		}()
	default:
		s.respond(req, resp)
	}
}

// acquire registers a job for req if the server runs and has room for
// another handler.
func (s *Server) acquire(req *Request) (*job, context.Context, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != serverRunning {
		return nil, nil, fmt.Errorf("%w: task %q not started", ErrServerStopped, req.Task)
	}
	if len(s.jobs) >= s.cfg.maxHandlers {
		return nil, nil, fmt.Errorf("%w: task %q refused: %d handlers running", ErrBusy, req.Task, len(s.jobs))
	}
	if len(s.early.set) > 0 && s.early.take(earlyKey(req.ID, req.ResponseHook.String())) {
		s.stats.cancelled.Add(1)
		return nil, nil, fmt.Errorf("%w: task %q", errCancelledByCaller, req.Task)
	}
	j := &job{req: req, srv: s}
	dl, _ := req.Deadline()
	j.ctx.init(s.ctx, dl)
	s.jobs[j] = struct{}{}
	j.sameID = s.byID[req.ID]
	s.byID[req.ID] = j
	return j, &j.ctx, nil
}

// forgetLocked removes j from the jobs and from byID. s.mu must be held.
func (s *Server) forgetLocked(j *job) {
	delete(s.jobs, j)
	id := j.req.ID
	head := s.byID[id]
	if head == j {
		if j.sameID == nil {
			delete(s.byID, id)
		} else {
			s.byID[id] = j.sameID
		}
		return
	}
	for p := head; p != nil; p = p.sameID {
		if p.sameID == j {
			p.sameID = j.sameID
			return
		}
	}
}

// release forgets j, and tells Stop when no job is left.
func (s *Server) release(j *job) {
	j.ctx.end()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetLocked(j)
	if len(s.jobs) == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// run runs a handler and sends its response, unless Stop gave up on it
// and answered for it.
func (s *Server) run(ctx context.Context, j *job, h TaskHandler) {
	released := false
	defer func() {
		if !released {
			s.release(j)
		}
	}()
	result, stream, err := s.invoke(ctx, h, j.req)
	s.stats.handled.Add(1)
	if !j.state.CompareAndSwap(jobRunning, jobAnswering) {
		if stream != nil {
			_ = stream.Close()
		}
		s.log().WithFields(logrus.Fields{"id": j.req.ID, "task": j.req.Task}).
			Debug("dropped result of a handler that returned after Stop answered for it")
		return
	}
	if err != nil && ctx.Err() != nil {
		err = s.contextError(ctx, j, err)
	}
	resp := s.response(j.req, result, stream, err)
	if j.takeAck() {
		// Released first: whoever writes the acknowledgement runs the
		// after funcs of the frames behind it, dispatching them, and this
		// handler must not count against WithMaxHandlers then.
		released = true
		s.release(j)
		j.fillAck(resp)
		return
	}
	s.respond(j.req, resp)
}

// invoke calls h, wrapped in the server's middleware, turning a panic into
// an error matching ErrHandlerPanic.
func (s *Server) invoke(ctx context.Context, h TaskHandler, req *Request) (result interface{}, stream io.ReadCloser, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log().WithFields(logrus.Fields{"id": req.ID, "task": req.Task, "panic": p, "stack": string(debug.Stack())}).
				Error("task handler panicked")
			s.stats.panics.Add(1)
			result, stream, err = nil, nil, fmt.Errorf("%w: task %q", ErrHandlerPanic, req.Task)
		}
	}()
	return s.wrap(h)(ctx, req)
}

// response builds the response to req from what its handler returned. It
// closes the stream whenever the response does not offer it.
func (s *Server) response(req *Request, result interface{}, stream io.ReadCloser, err error) *Response {
	fail := func(err error) *Response {
		if stream != nil {
			_ = stream.Close()
		}
		return errorResponse(req, err)
	}
	if err != nil {
		return fail(err)
	}
	resp := &Response{ID: req.ID, LegacyURLs: req.LegacyURLs}
	raw, err := marshalRawInto(result, &resp.resultMem) // checks raw JSON too
	if err != nil {
		return fail(fmt.Errorf("%w: task %q: result: %w", ErrInvalidResponse, req.Task, err))
	}
	resp.Result, resp.resultChecked = raw, checkedOwn(raw)
	if stream != nil {
		if s.tracker == nil {
			return fail(fmt.Errorf("%w: task %q returned a stream, but the server has no tracker to serve it", ErrInvalidResponse, req.Task))
		}
		u, err := s.tracker.NewStreamUnix("", stream)
		if err != nil {
			return fail(fmt.Errorf("%w: task %q: serve stream: %w", ErrInvalidResponse, req.Task, err))
		}
		resp.StreamURL = u
	}
	return resp
}

// errorResponse returns the response to req carrying err.
func errorResponse(req *Request, err error) *Response {
	return &Response{ID: req.ID, Error: err, LegacyURLs: req.LegacyURLs}
}

// respond sends resp to req's response hook. A result too large to send
// is replaced by an error, so the caller is not left waiting.
func (s *Server) respond(req *Request, resp *Response) {
	err := sendMsg(context.Background(), req.ResponseHook, resp, &s.cfg)
	if err != nil && resp.Error == nil && errors.Is(err, ErrFrameTooLarge) {
		s.log().WithError(err).WithFields(logrus.Fields{"id": req.ID, "task": req.Task}).
			Warn("response too large; sending an error instead")
		resp = errorResponse(req, fmt.Errorf("%w: the response to task %q is too large to send", ErrFrameTooLarge, req.Task))
		err = sendMsg(context.Background(), req.ResponseHook, resp, &s.cfg)
	}
	if err != nil {
		s.stats.respondFailed.Add(1)
		s.log().WithError(err).WithFields(logrus.Fields{"id": req.ID, "task": req.Task, "hook": redacted(req.ResponseHook)}).
			Warn("sending response failed")
		return
	}
	s.stats.responded.Add(1)
}

// Stop stops the server. It stops accepting connections and removes the
// socket. It then lets running handlers finish for the grace period
// (WithGracePeriod), cancels the context of those still running, and
// waits for them to return and their responses to be sent; a handler
// cancelled this way is answered with an error matching ErrServerStopped
// unless it returns a result. A handler that ignores its context for a
// further grace period (at least 100ms) is abandoned: Stop answers its
// caller with ErrServerStopped and returns, and its result, when it
// finally returns, is dropped. The open connections stay open meanwhile,
// so that every acknowledgement due goes out; then they stop being read,
// and those not done within 100ms are closed.
//
// Requests that arrive while the server stops are answered with
// ErrServerStopped. Stopping a server that was not started does nothing;
// Stop may be called more than once and from several goroutines, each
// call returning when the server has stopped.
//
// A task handler that stops its own server should call Shutdown with its
// context, which returns at once. Stop cannot tell that it was called
// from a handler, and waits as above: for the handler that called it too,
// which cannot return before Stop does, so that Stop returns only when
// the stop abandons that handler (after the grace period and a further
// one, at least 100ms), and its caller is answered with ErrServerStopped.
func (s *Server) Stop() {
	_ = s.Shutdown(context.Background())
}

// Shutdown stops the server as Stop does, but gives up waiting when ctx
// ends: it then cancels the context of the handlers still running,
// answers their callers with ErrServerStopped, abandons them, and returns
// ctx.Err() at once, leaving the sending of those answers to finish in the
// background. Several calls may run at once; each returns when the server
// has stopped or its own ctx ends.
//
// Given the context of one of the server's task handlers (or a context
// derived from it), Shutdown knows that it is called from that handler:
// it begins the stop and returns nil at once, and the stop waits for that
// handler as for the others. Given any other context, it waits as Stop
// does, also from a handler (see Stop).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	switch s.state {
	case serverNew:
		s.mu.Unlock()
		return nil
	case serverRunning:
		s.state = serverStopping
		s.stopDone = make(chan struct{})
		s.stopHurry = make(chan struct{})
		idle := make(chan struct{})
		if len(s.jobs) == 0 {
			close(idle)
		} else {
			s.idle = idle
		}
		go s.teardown(idle, s.stopDone, s.stopHurry)
	}
	done, hurry := s.stopDone, s.stopHurry
	s.mu.Unlock()
	if s.calledFromHandler(ctx) {
		return nil // the stop waits for this handler: it cannot wait for the stop
	}
	return waitStopped(ctx, done, func() { closeOnce(&s.mu, hurry) })
}

// teardown stops the server: see Stop. Closing hurry skips what is left
// of the grace periods.
func (s *Server) teardown(idle, done, hurry chan struct{}) {
	// The listener stops accepting at once; its connections stay open
	// while the handlers finish (frames read meanwhile are answered
	// ErrServerStopped), so that the acknowledgements still due, answers
	// in them included, go out before the connections close.
	cut, stopCut := context.WithCancel(context.Background())
	defer stopCut()
	listenerDone := make(chan struct{})
	go func() {
		defer close(listenerDone)
		_, _ = s.ul.shutdown(cut, math.MaxInt64)
	}()
	grace := s.cfg.gracePeriod
	if !waitClosed(idle, hurry, grace) {
		s.cancel()
		if !waitClosed(idle, hurry, max(grace, minCancelWait)) {
			s.abandon()
			<-idle // the responses being sent when the handlers returned
		}
	}
	// Readers see the end of their input, write what is due, and close;
	// a connection that is not done within minCancelWait is cut.
	s.ul.closeReads()
	if !waitClosed(listenerDone, hurry, minCancelWait) {
		stopCut()
		<-listenerDone
	}
	s.cancel()
	s.bg.Wait()
	s.workers.close()

	s.mu.Lock()
	s.state = serverStopped
	close(done)
	s.mu.Unlock()
}

// abandon answers, with ErrServerStopped, every handler that has not
// returned, and forgets it.
func (s *Server) abandon() {
	s.mu.Lock()
	var abandoned []*job
	for j := range s.jobs {
		if j.state.CompareAndSwap(jobRunning, jobAbandoned) {
			abandoned = append(abandoned, j)
			s.forgetLocked(j)
		}
	}
	if len(s.jobs) == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, j := range abandoned {
		s.log().WithFields(logrus.Fields{"id": j.req.ID, "task": j.req.Task}).
			Warn("task handler ignored cancellation; answered for it and abandoned it")
		wg.Add(1)
		go func(req *Request) {
			defer wg.Done()
			s.respond(req, errorResponse(req, fmt.Errorf("%w: task %q did not finish", ErrServerStopped, req.Task)))
		}(j.req)
	}
	wg.Wait()
}
