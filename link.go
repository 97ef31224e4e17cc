package acomm

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"
)

// A peer that listed "pipeline" gets a link: one kept connection, frames
// written as they come (several to a write under load) without waiting
// for earlier acknowledgements, which match frames in order. Any other
// gets a connection per frame (one acknowledged with "pipeline" is kept).

// linkIdleTimeout (below receivers' DefaultIdleTimeout) bounds idle links:
// a sweep closes them, run by a timer while any link is kept.
const linkIdleTimeout = 30 * time.Second

// maxLinks bounds the links kept at once, and so the descriptors they
// hold: a peer may name any number of sockets (a request's response hook
// is the requester's choice), each of which would keep one. Past it, the
// least recently used idle link makes room; when none is idle, a new
// peer's connections stay one frame each.
const maxLinks = 256

// links holds the link of each socket path that has one.
var links = struct {
	sync.Mutex
	m     map[string]*link
	sweep *time.Timer // armed while m is not empty; see adoptLink
}{m: make(map[string]*link)}

// link is a connection to a peer. No goroutine waits on an idle one: a
// sender that finds nobody reading acknowledgements reads until its own
// is in, then passes the reading on if more are awaited.
type link struct {
	path     string
	conn     net.Conn
	br       *bufio.Reader
	body     []byte   // holds an acknowledgement while it is decoded
	once     bool     // a connection for one frame, not (yet) a link
	features []string // from the acknowledgement that made the link

	mu       sync.Mutex   // protects the fields below
	queue    []*exchange  // frames awaiting acknowledgement, oldest first
	qmem     []*exchange  // queue's memory, from its front
	qarr     [1]*exchange // qmem's first, in the link (a connection for one frame queues one)
	varr     [1][]byte    // vec's first, likewise
	unsent   int          // how many of the last in queue wait to be written
	vec      net.Buffers  // the frames of the write under way
	wvec     net.Buffers  // what of vec is left to write, in write
	flushing bool         // a write is under way (its writer writes out next)
	reading  bool         // someone reads acknowledgements
	peeker   *exchange    // whose sender waits for an acknowledgement to begin
	writer   *exchange    // whose sender writes; see exchange.wake
	cut      bool         // the writer's ctx cut the write under way short
	rdl, wdl time.Time    // the deadlines set on conn; see lazyDeadline
	dead     bool         // failed or closed: never used again
	err      error        // why it failed, once dead
	ack      *ackShape    // the last acknowledgement's, of a kept link (see ackmemo.go); its reader's
	used     time.Time    // when a frame was last posted
}

// exchange is a frame awaiting its acknowledgement, whose outcome done gets.
type exchange struct {
	l        *link
	frame    []byte
	buf      *[]byte // frame's pooled buffer (see framePool), or nil
	start    int     // where frame starts in the write that writes it
	state    exState // under the link's mu
	passed   uint8   // how many times small frames went before it; under mu
	timeout  time.Duration
	deadline time.Time
	outcome  outcome
	answer   answerTo // takes an answer found in the ack; zero: none asked
	id       string   // the frame's id (a request's or a response's), if it has one
	// What frame was encoded from, in the form for the link's peer: sent
	// again (see failLocked), it goes in the form for a peer not known
	// yet, as whoever listens at the path now may not be that peer (a
	// service restarted onto another build). Nil on a connection for one
	// frame, never sent again. The payload is its sender's, read only
	// while the sender waits: one that leaves with its frame being
	// written (withdraw) has that form encoded first, into again.
	payload any
	cfg     *config
	again   *encoded
	// The sender's ctx, watched (stop set) from the moment its sender
	// first blocks on the link's connection, writing or waiting for an
	// acknowledgement to begin: only those waits need cutting short (see
	// wake). Both are touched by the sender's goroutine only.
	ctx  context.Context
	stop func() bool
}

// encoded is a frame encoded, or the error of encoding it.
type encoded struct {
	frame    []byte
	onAnswer answerTo
	err      error
}

// againLocked returns ex's frame encoded for a peer not known yet (see
// exchange.payload). Its caller holds the link's mu, and ex's sender
// waits still, or left it encoded.
func (ex *exchange) againLocked() *encoded {
	if ex.again == nil {
		frame, onAnswer, err := frameFor(nil, nil, ex.payload, ex.cfg)
		ex.again, ex.payload = &encoded{frame, onAnswer, err}, nil
	}
	return ex.again
}

// answerTo takes an answer found in an acknowledgement: take(id, answer),
// id being the request's. The zero answerTo asks for no answer.
type answerTo struct {
	id   string
	take func(id string, answer *Response)
}

// outcome is how an exchange ended, which its sender waits for: done is
// closed once err is set. (A chan error would be two allocations, its
// buffer holding a pointer; a chan struct{} is one.)
type outcome struct {
	done chan struct{}
	err  error
}

// set sets the outcome; once only.
func (o *outcome) set(err error) {
	o.err = err
	close(o.done)
}

// exState is how far an exchange's frame was written.
type exState uint8

const (
	exQueued    exState = iota // in the link's out, not yet written
	exWriting                  // in the write under way
	exWritten                  // written whole: the peer has it
	exWithdrawn                // taken back unwritten: the peer never gets it
)

// pollNow is the deadline that wakes a blocked read or write at once.
var pollNow = time.Unix(1, 0)

// peerFeatures returns the features listed by the peer at path when its
// link was made; nil when it has none.
func peerFeatures(path string) []string {
	if l := linkFor(path); l != nil {
		return l.features
	}
	return nil
}

// linkFor returns the link of path, or nil.
func linkFor(path string) *link {
	links.Lock()
	defer links.Unlock()
	return links.m[path]
}

// keptLinks returns the links kept now, to be looked at outside the lock
// of the links (each has a lock of its own, taken before that one).
func keptLinks() []*link {
	links.Lock()
	defer links.Unlock()
	all := make([]*link, 0, len(links.m))
	for _, l := range links.m {
		all = append(all, l)
	}
	return all
}

// CloseIdleConnections closes the unix connections that Send keeps for
// reuse and on which no acknowledgement is awaited.
func CloseIdleConnections() { closeIdleLinks(0) }

// closeIdleLinks closes the links idle for d or longer.
func closeIdleLinks(d time.Duration) {
	all := keptLinks()
	for _, l := range all {
		l.mu.Lock()
		if len(l.queue) == 0 && time.Since(l.used) >= d {
			l.failLocked(net.ErrClosed)
		}
		l.mu.Unlock()
	}
}

// sweepLinks closes the links idle for linkIdleTimeout, and runs again
// that much later while links are kept.
func sweepLinks() {
	closeIdleLinks(linkIdleTimeout)
	links.Lock()
	defer links.Unlock()
	if len(links.m) > 0 {
		links.sweep.Reset(linkIdleTimeout)
	} else {
		links.sweep = nil
	}
}

// adoptLink makes l its path's link, unless there is one, or maxLinks
// are kept and none of them is idle. The caller holds l.mu; l is no
// path's link yet, so no other goroutine takes it.
func adoptLink(l *link) bool {
	links.Lock()
	full := len(links.m) >= maxLinks
	links.Unlock()
	if full && !closeLeastUsedLink() {
		return false
	}
	links.Lock()
	defer links.Unlock()
	if links.m[l.path] != nil || len(links.m) >= maxLinks {
		return false
	}
	l.once, links.m[l.path] = false, l
	l.br = bufio.NewReaderSize(l.conn, keptReadBuffer) // (nothing is buffered: see exchangeOnce)
	if links.sweep == nil {
		links.sweep = time.AfterFunc(linkIdleTimeout, sweepLinks)
	}
	return true
}

// closeLeastUsedLink closes the idle link least recently used, and
// reports whether there was one.
func closeLeastUsedLink() bool {
	all := keptLinks()
	var oldest *link
	var used time.Time
	for _, l := range all {
		l.mu.Lock()
		if len(l.queue) == 0 && !l.dead && (oldest == nil || l.used.Before(used)) {
			oldest, used = l, l.used
		}
		l.mu.Unlock()
	}
	if oldest == nil {
		return false
	}
	oldest.mu.Lock()
	defer oldest.mu.Unlock()
	if len(oldest.queue) > 0 || oldest.dead { // taken up meanwhile
		return false
	}
	oldest.failLocked(net.ErrClosed)
	return true
}

// pending is a frame handed to a link, whose acknowledgement's outcome
// out gets; out is nil when the exchange is over already.
type pending struct {
	out *outcome
	l   *link
	ex  *exchange
}

// done is closed once the outcome is in; nil (never) when there is none
// to wait for.
func (p pending) done() <-chan struct{} {
	if p.out == nil {
		return nil
	}
	return p.out.done
}

// err is the outcome, once done is closed.
func (p pending) err() error { return p.out.err }

// withdraw takes the frame back, its sender having given up, and reports
// whether the peer certainly never gets it: it was not written yet, and
// now never will be. A frame whose writing has begun is finished (the
// peer may handle it), and false is returned.
func (p pending) withdraw() bool {
	if p.l == nil {
		return false
	}
	return p.l.withdraw(p.ex)
}

// postUnix sends payload to the socket at path, within ctx and cfg's
// settings; the acknowledgement's outcome comes on the returned pending's
// done (at once if another sender reads the link's acknowledgements).
func postUnix(ctx context.Context, path string, payload any, cfg *config) (pending, error) {
	l := linkFor(path)
	buf := getFrameBuffer()
	frame, onAnswer, err := frameFor(*buf, l, payload, cfg)
	if err != nil {
		putFrameBuffer(buf, frame)
		return pending{}, err
	}
	if l != nil {
		if ex, ok := l.exchange(ctx, frameID(payload), frame, buf, payload, cfg, onAnswer); ok {
			return pending{out: &ex.outcome, l: l, ex: ex}, nil
		}
		// The link died meanwhile: whoever listens at path now is a peer
		// not known yet (see exchange.payload).
		if frame, onAnswer, err = frameFor(frame[:0], nil, payload, cfg); err != nil {
			putFrameBuffer(buf, frame)
			return pending{}, err
		}
	}
	return pending{}, exchangeOnce(ctx, path, frameID(payload), frame, buf, cfg, onAnswer)
}

// frameFor appends payload, encoded as a frame for l (nil: a peer not
// known yet), to b, in the form that l's peer takes; onAnswer takes an
// answer found in the acknowledgement, if the frame asks for one.
func frameFor(b []byte, l *link, payload any, cfg *config) ([]byte, answerTo, error) {
	legacy := cfg.legacyURLs || l == nil || !slices.Contains(l.features, featureStringURLs)
	var onAnswer answerTo
	if req, ok := payload.(*Request); ok && req != nil && req.onAnswer != nil && req.ResponseHook == req.answerHook &&
		l != nil && slices.Contains(l.features, featureAnswerInAck) {
		payload, onAnswer = answerInAck{req}, answerTo{req.ID, req.onAnswer}
	}
	frame, err := appendFrame(b, payload, legacy, cfg.maxFrameSize, nil)
	if err != nil {
		return b, answerTo{}, fmt.Errorf("acomm: send frame: %w", err)
	}
	return frame, onAnswer, nil
}

// The buffers of the frames that postUnix sends: a frame is written, then
// kept until its acknowledgement is in, and then its buffer is taken
// again (see link.read). It was the largest allocation of a Call (375 of
// its 2,370 B, BenchmarkEcho/acomm-call/par64, -memprofile). A buffer
// grown past maxPooledFrame is left to the GC, so that one large frame
// does not pin its memory.
var framePool = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledFrame = 4 << 10

// releaseFrame returns ex's frame buffer, if pooled, to the pool, once
// nothing reads the frame again. Its caller holds the link's mu.
func (ex *exchange) releaseFrame() {
	if ex.buf != nil {
		putFrameBuffer(ex.buf, ex.frame)
		ex.buf, ex.frame = nil, nil
	}
}

// getFrameBuffer returns a frame buffer, empty, from the pool.
func getFrameBuffer() *[]byte { return framePool.Get().(*[]byte) }

// putFrameBuffer returns buf to the pool holding frame's memory (buf's,
// or where appending frame moved it), unless frame is too large to keep.
// frame is not to be used again.
func putFrameBuffer(buf *[]byte, frame []byte) {
	if cap(frame) > maxPooledFrame {
		frame = nil
	}
	*buf = frame[:0]
	framePool.Put(buf)
}

// The read buffers of links. A link's first connection expects one
// acknowledgement, most often small; a link kept for more has them arrive
// in batches, whose reading keptReadBuffer sizes: with 512 bytes, 64 Calls
// in flight on one link read at most two acknowledgements carrying
// 100-byte answers per read syscall (0.90 reads per call, against
// net/rpc+gob's 0.30); with 4 KiB, 0.30 (BenchmarkEcho/acomm-call/par64,
// perf stat).
const (
	onceReadBuffer = 512
	keptReadBuffer = 4 << 10
)

// dialUnix connects to the unix socket at path, within ctx; timeout
// bounds the dial only where connect can wait, which is not on Linux:
// there, connect(2) of a unix stream socket (non-blocking) connects or
// fails at once, with EAGAIN when the listener's backlog is full, so a
// ctx that is not done yet when the dial starts has nothing to cut
// short. Linux dials with net.DialUnix, which has no context: a
// net.Dialer given a deadline would pay for one anyway (a
// context.WithDeadline and its timer, and a context.AfterFunc to cut a
// wait short: 5 of the 64 allocations of a cycle of
// BenchmarkEcho/acomm-seed-oneshot, and 6.3k of its 140k instructions),
// and even without one, DialContext resolves the address and races its
// list of one (1.7k instructions and 3 allocations a dial more than
// DialUnix; BenchmarkDialUnix). TestSendToFullBacklogFailsAtOnce holds
// Linux to that.
func dialUnix(ctx context.Context, path string, timeout time.Duration) (net.Conn, error) {
	if runtime.GOOS == "linux" {
		if err := ctx.Err(); err != nil {
			return nil, &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: path, Net: "unix"}, Err: err}
		}
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			return nil, err // (not a nil *UnixConn in a non-nil net.Conn)
		}
		return c, nil
	}
	d := net.Dialer{Deadline: time.Now().Add(timeout)}
	return d.DialContext(ctx, "unix", path)
}

// exchangeOnce sends frame, of the message id, on a connection of its
// own, within ctx and cfg's I/O timeout; onAnswer takes an answer found in
// the acknowledgement. buf, if not nil, is frame's pooled buffer (see
// framePool), which it takes over.
func exchangeOnce(ctx context.Context, path, id string, frame []byte, buf *[]byte, cfg *config, onAnswer answerTo) error {
	conn, err := dialUnix(ctx, path, cfg.ioTimeout)
	if err != nil {
		if buf != nil {
			putFrameBuffer(buf, frame)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrNotDelivered, ctx.Err())
		}
		return fmt.Errorf("%w: %w", ErrUnreachable, err) // err names the path
	}
	o := onceIOs.Get().(*onceIO)
	o.br.Reset(conn)
	l := &link{path: path, conn: conn, br: o.br, body: o.body[:0], once: true}
	l.qmem, l.vec = l.qarr[:0], l.varr[:0]
	ex, _ := l.exchange(ctx, id, frame, buf, nil, cfg, onAnswer)
	select {
	case <-ex.outcome.done:
		err = ex.outcome.err
	default:
	}
	if ctx.Err() != nil { // it ended first
		if errors.Is(err, ErrNotDelivered) {
			err = fmt.Errorf("%w: %w", ErrNotDelivered, ctx.Err())
		} else {
			err = ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// A peer that sent more than the one acknowledgement is not kept:
	// what it sent would pass for the acknowledgement of the next frame.
	if l.dead || len(l.queue) > 0 || !slices.Contains(l.features, featurePipeline) || l.br.Buffered() > 0 || !adoptLink(l) {
		l.failLocked(net.ErrClosed)
	}
	if l.once && !l.reading { // not adopted, and nobody reads on
		o.br.Reset(nil)
		if cap(l.body) <= maxReusedBody {
			o.body = l.body[:0]
		}
		l.br, l.body = nil, nil
		onceIOs.Put(o)
	}
	return err
}

// onceIO is the read buffer and frame body of a connection for one
// frame, which goes back to onceIOs once the connection is closed and
// nobody reads on it (a link that is kept keeps its body, and its buffer
// goes to the GC). A cycle of BenchmarkEcho/acomm-seed-oneshot made them
// anew each time: 3 of its 58 allocations, 850 of its 5,970 bytes.
type onceIO struct {
	br   *bufio.Reader
	body []byte
}

var onceIOs = sync.Pool{New: func() any {
	return &onceIO{br: bufio.NewReaderSize(nil, onceReadBuffer), body: make([]byte, 0, 256)}
}}

// exchange posts frame, of the message id, encoded from payload with
// cfg's settings (nil on a connection for one frame), and, if no other
// sender does, reads
// acknowledgements until its own is in or ctx ends; ex.outcome gets its
// outcome. ctx is watched by one registration at most, made only if the
// sender blocks on the connection (see exchange.watch). ok is false
// when the link is dead.
func (l *link) exchange(ctx context.Context, id string, frame []byte, buf *[]byte, payload any, cfg *config, onAnswer answerTo) (ex *exchange, ok bool) {
	now := time.Now()
	ex = &exchange{l: l, frame: frame, buf: buf, id: id, timeout: cfg.ioTimeout, deadline: now.Add(cfg.ioTimeout),
		outcome: outcome{done: make(chan struct{})}, answer: onAnswer, payload: payload, ctx: ctx}
	if payload != nil {
		ex.cfg = cfg
	}
	defer ex.unwatch()
	lead, ok := l.post(ctx, ex, now)
	if lead {
		l.read(ctx, ex)
	}
	return ex, ok
}

// watch has wake called when ex's sender's ctx ends, unless it is watched
// already or never ends. Its sender calls it before it may block on the
// connection (as the writer, or the reader: see post and read), not
// holding the link's mu, which wake takes (a Context's own AfterFunc may
// call wake at once). A sender whose frame another
// sender writes, and whose acknowledgement another reads, blocks only on
// its outcome, which its caller waits for beside ctx (see sendMsg), so it
// costs no registration (with 64 Calls in flight on one link, most:
// context.AfterFunc and its cancellation were 2.5% of the CPU of
// BenchmarkEcho/acomm-call/par64, and 125 of its 2,470 B a call).
func (ex *exchange) watch() {
	if ex.stop == nil && ex.ctx.Done() != nil {
		ex.stop = context.AfterFunc(ex.ctx, ex.wake)
	}
}

// watched reports whether ex's sender's ctx is watched, or needs no
// watching.
func (ex *exchange) watched() bool { return ex.stop != nil || ex.ctx.Done() == nil }

// unwatch undoes watch, once ex's sender is done with the link, and lets
// go of its ctx (ex may stay queued, up to the I/O timeout, after its
// sender has given up on it).
func (ex *exchange) unwatch() {
	if ex.stop != nil {
		ex.stop()
	}
	ex.ctx = nil
}

// wake cuts short the waits of ex's sender, whose ctx ended: its write,
// or its wait for an acknowledgement to begin. A wait of anybody else's is
// left alone.
func (ex *exchange) wake() {
	l := ex.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.writer == ex {
		l.cut = true
		_ = l.conn.SetWriteDeadline(pollNow)
	}
	if l.peeker == ex {
		l.rdl = pollNow
		_ = l.conn.SetReadDeadline(pollNow)
	}
}

// post queues ex and writes it, unless a write is under way (whose writer
// then writes it too); lead says the caller must read acknowledgements
// (see read). ok is false when the link is dead.
func (l *link) post(ctx context.Context, ex *exchange, now time.Time) (lead, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		return false, false
	}
	if len(l.queue) == 0 { // start again at the front of the queue's memory
		l.queue = l.qmem[:0]
	}
	if prev := l.queue; len(prev) == cap(prev) { // it moves to new memory
		l.queue = append(l.queue, ex)
		clear(prev) // (qmem's, holding the same frames: not to be kept alive)
		l.qmem = l.queue[:0]
	} else {
		l.queue = append(l.queue, ex)
	}
	l.unsent++
	l.used = now
	lead, l.reading = !l.reading, true
	if !l.flushing && len(l.queue) > 2 {
		// Two other frames or more are in flight: their senders, woken
		// by one batch of acknowledgements, are about to send again.
		// Yielding once lets them queue their frames behind this one
		// (they see a write under way), and one write takes them all:
		// with 64 Calls in flight on one link, 0.14 write syscalls per
		// call instead of 1.1 (BenchmarkEcho/acomm-call/par64, perf
		// stat; BenchmarkCallInFlight shows 2 to 16 in flight). A lone
		// sender never yields, nor one behind a single frame: sequential
		// sends find the previous exchange still queued until its sender
		// reads the acknowledgement, and a yield only delayed them
		// (4.4 us of scheduling delay a cycle in acomm-seed-oneshot's
		// trace).
		l.flushing = true
		l.mu.Unlock()
		runtime.Gosched()
		l.mu.Lock()
		l.flushing = false
	}
	if !l.flushing && !ex.watched() {
		// It is to write (the frames waiting, its own among them):
		// watched from now on, registered with mu let go (see watch).
		// Meanwhile another sender may take the writing, or the link
		// die: flushLocked sees to both.
		l.mu.Unlock()
		ex.watch()
		l.mu.Lock()
	}
	l.flushLocked(ctx, ex, ex.timeout)
	return lead, true
}

// maxPassed is how many times the small frames waiting behind a large one
// may be written before it (see takeBatchLocked).
const maxPassed = 16

// rank orders waiting frames: 0 for a small one, 1 for a large one that
// small ones may still pass, 0 for one passed maxPassed times.
func (ex *exchange) rank() int {
	if len(ex.frame) > maxWriteBatch && ex.passed < maxPassed {
		return 1
	}
	return 0
}

// maxWriteBatch is about how many bytes of frames go to one write: frames
// beyond it (but a write's first) wait their turn, and a sender that gives
// up meanwhile can still take its frame back.
const maxWriteBatch = 64 << 10

// flushLocked writes the frames waiting to be written, within the link's
// I/O timeout, one batch to a write. The link is shared, so ctx, its
// caller's, bounds only the caller's wait: when it ends, the writing goes
// on in a goroutine of its own; mine, the caller's frame, is dropped from
// a write it cut short if its writing had not begun (one still waiting,
// its sender takes back: see pending.withdraw). A connection for one frame
// is not shared: ctx cuts its write. Its caller holds l.mu.
func (l *link) flushLocked(ctx context.Context, mine *exchange, timeout time.Duration) {
	for !l.flushing && l.unsent > 0 && !l.dead {
		l.flushing = true
		if ctx.Err() != nil && !l.once {
			go l.finishWrite(0, nil, timeout)
			return
		}
		vec := l.takeBatchLocked()
		// (The deadline is set before wake may cut it: under l.mu.)
		err := lazyDeadline(l.conn.SetWriteDeadline, &l.wdl, time.Now().Add(timeout), timeout)
		l.writer = mine
		l.mu.Unlock()
		n := 0
		if err == nil {
			n, err = l.write(vec)
		}
		l.mu.Lock()
		cut := l.cut
		l.writer, l.cut = nil, false
		if cut {
			l.wdl = time.Time{} // ctx ended, and moved the deadline
			if err != nil && !l.once && errors.Is(err, os.ErrDeadlineExceeded) {
				go l.finishWrite(n, mine, timeout) // ctx cut the write short
				return
			}
		}
		l.wroteLocked(n, err)
	}
}

// takeBatchLocked marks the frames of the next write, the first of those
// waiting, as many as fit in maxWriteBatch (one at least), and returns
// them. Its caller holds l.mu.
func (l *link) takeBatchLocked() net.Buffers {
	waiting := l.queue[len(l.queue)-l.unsent:]
	if len(waiting) > 1 && len(waiting[0].frame) > maxWriteBatch && waiting[0].passed < maxPassed {
		// Small frames go before large ones, which would hold them up
		// for as long as the peer takes to read (and handle) them.
		slices.SortStableFunc(waiting, func(a, b *exchange) int {
			return cmp.Compare(a.rank(), b.rank())
		})
		for _, ex := range waiting {
			if ex.rank() == 1 {
				ex.passed++
			}
		}
	}
	vec, k := l.vec[:0], 0
	for _, ex := range waiting {
		if len(vec) > 0 && k+len(ex.frame) > maxWriteBatch {
			break
		}
		ex.state, ex.start = exWriting, k
		k += len(ex.frame)
		vec = append(vec, ex.frame)
	}
	l.unsent -= len(vec)
	l.vec = vec[:0]
	return vec
}

// write writes vec, returning how many bytes it wrote. Its caller holds
// l.flushing.
func (l *link) write(vec net.Buffers) (int, error) {
	defer clear(vec[:cap(vec)]) // (the frames are not to be kept alive)
	if len(vec) == 1 {
		return l.conn.Write(vec[0])
	}
	// WriteTo takes the slice's address: as a field of l's, not as vec,
	// which would then move to the heap on every call.
	l.wvec = vec
	n, err := l.wvec.WriteTo(l.conn)
	l.wvec = nil
	return int(n), err
}

// writingLocked returns the exchanges of the write under way. Its caller
// holds l.mu.
func (l *link) writingLocked() []*exchange {
	end := len(l.queue) - l.unsent
	i := end
	for i > 0 && l.queue[i-1].state == exWriting {
		i--
	}
	return l.queue[i:end]
}

// finishWrite writes the rest of the write under way, from byte n on,
// and then the frames that wait, under the link's own I/O timeout: the
// writing of a sender that gave up. mine, that sender's frame, is dropped
// if its writing has not begun. Its caller holds l.flushing.
func (l *link) finishWrite(n int, mine *exchange, timeout time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	vec, dropped := l.vec[:0], 0
	for _, ex := range l.writingLocked() {
		ex.start -= dropped
		switch end := ex.start + len(ex.frame); {
		case end <= n:
		case ex == mine && ex.start >= n:
			dropped += len(ex.frame)
			ex.state = exWithdrawn
		default:
			vec = append(vec, ex.frame[max(0, n-ex.start):])
		}
	}
	if dropped > 0 {
		l.queue = slices.DeleteFunc(l.queue, func(ex *exchange) bool { return ex == mine })
	}
	l.vec = vec[:0]
	var err error
	if l.dead { // its frames wait for wroteLocked: see failLocked
		err = net.ErrClosed
	} else if len(vec) > 0 {
		l.mu.Unlock()
		l.wdl = time.Now().Add(timeout)
		if err = l.conn.SetWriteDeadline(l.wdl); err == nil {
			var m int
			m, err = l.write(vec)
			n += m
		}
		l.mu.Lock()
	}
	l.wroteLocked(n, err)
	l.flushLocked(context.Background(), nil, timeout)
}

// wroteLocked records the end of the write under way, which wrote n
// bytes: its frames written whole await their acknowledgements; on an
// error, the link fails, and those not written whole (which the peer
// cannot have handled) are sent again on a connection of their own. Its
// caller holds l.mu and l.flushing, which it gives up.
func (l *link) wroteLocked(n int, err error) {
	l.flushing = false
	writing := l.writingLocked()
	for _, ex := range writing {
		if err == nil || ex.start+len(ex.frame) <= n {
			ex.state = exWritten
		} else {
			ex.state = exQueued
		}
	}
	if l.dead { // meanwhile: failLocked left these to this writer
		for _, ex := range writing {
			l.settleDeadLocked(ex)
		}
		clear(l.queue)
		l.queue = nil
		return
	}
	if err != nil {
		l.failLocked(fmt.Errorf("write: %w", err))
	}
}

// withdraw takes ex back if its frame waits to be written: see
// pending.withdraw.
func (l *link) withdraw(ex *exchange) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ex.state == exWithdrawn {
		return true
	}
	if ex.state == exWriting && ex.payload != nil && (!l.dead || slices.Contains(l.queue, ex)) {
		// Its sender leaves, and the write may yet fail: encoded now
		// for a resend, its payload is the sender's again.
		ex.againLocked()
	}
	if ex.state != exQueued || l.dead {
		return false // being written, written, or sent again elsewhere
	}
	i := slices.Index(l.queue, ex)
	if i < 0 {
		return false
	}
	l.queue = slices.Delete(l.queue, i, i+1)
	l.unsent--
	ex.state = exWithdrawn
	ex.releaseFrame() // never in a write: nothing reads it again
	return true
}

// resend sends the exchange's payload again on a connection of its own,
// as frame, encoded for a peer not known yet, whose answer (if the frame
// asks for one in the acknowledgement) onAnswer takes.
func (ex *exchange) resend(path string, frame []byte, onAnswer answerTo) {
	ex.outcome.set(exchangeOnce(context.Background(), path, ex.id, frame, nil, ex.cfg, onAnswer))
}

// failLocked closes and forgets the link. The frames written whole and
// awaiting acknowledgement fail with ErrOutcomeUnknown; those not written
// (whole) are sent again on a connection of their own, or, on a
// connection for one frame, fail as not delivered. The frames of a write
// under way are left to its writer, whose write the close ends, and who
// alone knows how much of each went out (see wroteLocked): taken for
// written, a frame that the reader's failure (the peer hung up) caught
// half written would never be sent again.
func (l *link) failLocked(err error) {
	if l.dead {
		return
	}
	l.dead, l.err = true, err
	links.Lock()
	if links.m[l.path] == l {
		delete(links.m, l.path)
	}
	links.Unlock()
	_ = l.conn.Close()
	writing := l.queue[:0]
	for _, ex := range l.queue {
		if ex.state == exWriting && l.flushing {
			writing = append(writing, ex)
			continue
		}
		l.settleDeadLocked(ex)
	}
	clear(l.queue[len(writing):])
	l.queue, l.unsent = writing, 0
}

// settleDeadLocked sets the outcome of ex, a frame of the dead link l
// (see failLocked). Its caller holds l.mu.
func (l *link) settleDeadLocked(ex *exchange) {
	switch {
	case ex.state == exWritten || ex.state == exWriting:
		ex.outcome.set(fmt.Errorf("%w: %w", ErrOutcomeUnknown, exchangeError("read acknowledgement", l.err)))
	case l.once || (ex.payload == nil && ex.again == nil):
		ex.outcome.set(fmt.Errorf("%w: %w: %w", ErrNotDelivered, ErrConnection, l.err))
	default:
		// Encoded here while its sender waits (for the outcome, or
		// for l.mu to take it back), or already by withdraw.
		if a := ex.againLocked(); a.err != nil {
			ex.outcome.set(a.err)
		} else {
			go ex.resend(l.path, a.frame, a.onAnswer)
		}
	}
}

// read hands acknowledgements to their frames until mine has its own (nil:
// none is awaited), ctx ends or the link fails, each wait bounded by the
// oldest frame's deadline. Its caller holds l.reading, which it passes on
// to a goroutine if acknowledgements are still awaited. ctx bounds only
// the wait for an acknowledgement to begin: one begun is read whole,
// within the link's own deadline, whoever waits for it.
func (l *link) read(ctx context.Context, mine *exchange) {
	if mine != nil {
		mine.watch() // the lead reader waits for acknowledgements to begin
	}
	for {
		cd, hasDeadline := ctx.Deadline()
		if hasDeadline && !time.Now().Before(cd) {
			<-ctx.Done() // ctx notices a moment after our clock
		}
		l.mu.Lock()
		if l.dead || len(l.queue) == 0 || ctx.Err() != nil {
			if l.reading = !l.dead && len(l.queue) > 0; l.reading {
				go l.read(context.Background(), nil)
			}
			l.mu.Unlock()
			return
		}
		front, once := l.queue[0], l.once
		dl := front.deadline
		if hasDeadline && cd.Before(dl) {
			dl = cd
		}
		_ = lazyDeadline(l.conn.SetReadDeadline, &l.rdl, dl, front.timeout)
		l.peeker = mine
		l.mu.Unlock()
		_, err := l.br.Peek(1)
		l.mu.Lock()
		l.peeker = nil
		if err == nil { // the wait may have been cut short: read on within the frame's own
			_ = lazyDeadline(l.conn.SetReadDeadline, &l.rdl, front.deadline, front.timeout)
		}
		l.mu.Unlock()
		if errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(front.deadline) {
			l.mu.Lock()
			l.rdl = time.Time{} // ctx ended, or the deadline came early: nothing was read
			l.mu.Unlock()
			continue
		}
		var body []byte
		if err == nil {
			body, err = readFrame(l.br, DefaultMaxFrameSize, l.body)
			l.body = reuseBody(l.body, body)
		}
		var idCheck ackIDCheck // (checked on kept links only: see below)
		var frontID string
		l.mu.Lock()
		wantAnswer := len(l.queue) > 0 && l.queue[0].answer.take != nil
		if len(l.queue) > 0 {
			frontID = l.queue[0].id
			if !once {
				idCheck.want = frontID
			}
		}
		l.mu.Unlock()
		var (
			features []string
			answer   *Response
			ackErr   error
		)
		if shape := l.ackShape(once); err == nil && frontID != "" && shape.matches(body, frontID) && (!once || shape.listed) {
			if once {
				features = shape.features
			}
		} else {
			features, answer, ackErr = decodeAckOf(body, once, wantAnswer, &idCheck)
			if err == nil && ackErr == nil && frontID != "" && idCheck.other == "" {
				l.keepAckShape(once, newAckShape(body, frontID, &idCheck, features))
			}
		}
		l.mu.Lock()
		if err != nil || len(l.queue) == 0 {
			l.failLocked(cmp.Or(err, fmt.Errorf("%w: acknowledgement of nothing sent", ErrMalformedFrame)))
			l.mu.Unlock()
			return
		}
		ex := l.queue[0]
		if ex.state == exQueued { // (one being written may be acknowledged: its writer lags)
			l.failLocked(fmt.Errorf("%w: acknowledgement of a frame not yet sent", ErrMalformedFrame))
			l.mu.Unlock()
			return
		}
		// Our receivers give the id of the frame they acknowledge (or
		// none, for one they could not read): another id is an
		// acknowledgement the peer sent unasked, which would pass for
		// this frame's. (A one-frame connection's peer may be the
		// original, whose acknowledgements are not checked.)
		if idCheck.other != "" && idCheck.want == ex.id {
			l.failLocked(fmt.Errorf("%w: acknowledgement for %q, not for the frame sent (%q)", ErrMalformedFrame, idCheck.other, ex.id))
			l.mu.Unlock()
			return
		}
		l.queue[0], l.queue = nil, l.queue[1:]
		if once {
			l.features = features
		}
		if ex.state == exWritten {
			// Acknowledged, and its write has returned: nothing reads
			// the frame again. (One acknowledged while its writer lags
			// is left to the GC.)
			ex.releaseFrame()
		}
		l.mu.Unlock()
		if answer != nil && ex.answer.take != nil {
			ex.answer.take(ex.answer.id, answer) // before done: whoever waits on both finds the answer first
		}
		ex.outcome.set(ackErr)
		if ex == mine {
			l.mu.Lock()
			if l.reading = len(l.queue) > 0; l.reading {
				go l.read(context.Background(), nil)
			}
			l.mu.Unlock()
			return
		}
	}
}

// exchangeError wraps an error of a frame's exchange: a connection's in
// ErrConnection; a hang-up instead of an acknowledgement is no clean end.
func exchangeError(stage string, err error) error {
	switch {
	case isWireError(err):
		return fmt.Errorf("acomm: %s: %w", stage, err)
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%w: %s: peer closed without acknowledging: %w", ErrConnection, stage, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("%w: %s: %w", ErrConnection, stage, err)
}
