package acomm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Features a receiver lists in its acknowledgements ("features"); a peer
// whose acknowledgement lacks one has not got it (the original lists none).
const (
	featurePipeline   = "pipeline"    // reads frame after frame, acknowledges in order
	featureStringURLs = "string-urls" // reads URLs in the string form
)

// baseFeatures are the features of every receiver in this package.
var baseFeatures = []string{featurePipeline, featureStringURLs}

// The "features" members of the acknowledgements of a Tracker or
// UnixListener (base) and of a Server, encoded once.
var (
	baseAckFeatures   = newAckFeatures(baseFeatures...)
	serverAckFeatures = newAckFeatures(append(baseFeatures[:len(baseFeatures):len(baseFeatures)], featureCancel, featureAnswerInAck)...)
)

// frameHandler handles a frame body, which it must not keep (it is
// overwritten by the next frame's), read at clock's time: the ID for the acknowledgement, the
// refusal reason (nil: accepted) and a func to run after the
// acknowledgement is written, which must not block. Or, in place of
// after, answer, called at once: before the next frame is handled, on
// the same goroutine (see answerFunc).
type frameHandler func(body []byte, clock *frameClock) (id string, refusal error, after func(), answer answerFunc)

// frameClock is when a frame was read: the clock, read the first time it
// is asked for, serves all that the frame's handling times (the deadline
// its timeout_ms gives, whether that has passed, its answer's budget).
// time.Now costs 55 ns on a 2-vCPU VM, and was 4.6% of the CPU of
// BenchmarkEcho/acomm-call/par64 at 7 readings a Call, three of them a
// Server's for one frame.
type frameClock struct{ at time.Time }

// now returns the frame's time.
func (c *frameClock) now() time.Time {
	if c.at.IsZero() {
		c.at = time.Now()
	}
	return c.at
}

// answerFunc starts handling a frame whose acknowledgement may carry the
// response (see featureAnswerInAck). It must fill ack exactly once, at
// once or from another goroutine, unless the ackBudget it returns (nil
// once it filled ack) takes that on. Acknowledgements go out in order, so
// those after it wait: past answerBudget, the connection asks the
// ackBudget.
type answerFunc func(ack ackRef) ackBudget

// ackBudget is asked, once an acknowledgement has waited answerBudget,
// whether it goes without its answer: if so, nobody fills it, the
// connection does.
type ackBudget interface{ budgetPassed() bool }

// ackRef is an acknowledgement queued on a connection, waiting for fill.
// here says that the reader may run its handler: its answerFunc may
// return a heldJob, which the reader then runs itself (see
// frameServer.runHere). So it does for a lone frame (none waits behind
// it), and for one with frames behind while the handlers it ran that way
// returned within their budget (see runsBehind).
type ackRef struct {
	s    *frameServer
	seq  uint64
	here bool
	at   time.Time // when its frame was read
}

// heldJob is an ackBudget whose handling waits for the connection's reader
// to run it on its own goroutine: a lone request is answered with no
// hand-over to another goroutine (one wake-up fewer per call). A handler
// that outlasts answerBudget moves the reading to a new goroutine.
type heldJob interface {
	ackBudget
	runHeld()
}

// fill completes the acknowledgement with answer, the response to carry
// (nil: none); w, if not nil, is then told whether it was written.
func (r ackRef) fill(answer *Response, w ackWatcher) { r.s.fill(r.seq, answer, w) }

// ackWatcher is told whether an acknowledgement carrying its answer was
// written.
type ackWatcher interface{ written(ok bool) }

// readerPool holds the read buffers of served connections.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// frameServer is serveFrames's state on a connection. The reading
// goroutine queues acknowledgements; whoever completes the oldest (the
// reader, or the handler that answers in it) writes those ready.
type frameServer struct {
	conn     net.Conn
	cfg      *config
	log      logrus.FieldLogger
	features ackFeatures // (baseAckFeatures if nil was given)
	br       *bufio.Reader
	handle   frameHandler
	refused  *atomic.Uint64
	end      func()     // run once the connection is over
	rdl      time.Time  // the read deadline set on conn
	clock    frameClock // of the frame being handled (a field: handle's argument)
	body     []byte     // holds a frame's body while it is handled

	mu      sync.Mutex    // protects the fields below
	cond    sync.Cond     // signalled when waiting drops to 0, or slots shrink
	slots   []ackSlot     // acknowledgements not yet written, oldest first
	head    uint64        // the number of slots written (or dropped)
	waiting int           // slots awaiting their fill
	timer   *time.Timer   // tells the ackBudgets of slots past due
	armed   bool          // timer is set for the oldest waiting slot's due
	busy    bool          // the reader handles frames read, and flushes after
	held    uint64        // the run of a heldJob by the reader, if any: see runHere
	heldDue time.Time     // when that job's acknowledgement is due
	runs    uint64        // runHere's count of runs
	moved   []uint64      // the runs that the reading moved away from, not yet over
	slow    bool          // a held run outlasted its budget: see runsBehind
	handed  int           // jobs handed to workers since, while slow
	wdl     time.Time     // the write deadline set on conn
	out     []byte        // acknowledgements being encoded
	ackOut  ackWithAnswer // the one encode codes; see there
	failed  bool          // a write failed: nothing more is written
}

// ackSlot is an acknowledgement in the queue.
type ackSlot struct {
	id      string
	refusal error
	after   func()
	waiting bool      // for its answerFunc's fill
	due     time.Time // when it has waited answerBudget
	budget  ackBudget // to tell then
	answer  *Response // to put in it
	watcher ackWatcher
}

// serveFrames reads frames from conn until the peer closes it, it idles
// past cfg.idleTimeout, or a frame cannot be read whole in cfg.ioTimeout.
// Frames that arrived together are handled in turn, and their
// acknowledgements, listing features (baseAckFeatures if nil), go out in one write
// before their after funcs run. An oversized frame is refused, skipped.
// Once every frame read is acknowledged (or the write failed), it runs
// end (if not nil) and returns. A heldJob that outlasts its budget moves
// the reading to a new goroutine, which then ends the connection: the
// held goroutine returns once its handler does, as a worker would, and
// end may have run before, or run after, as the connection goes on.
func serveFrames(conn net.Conn, cfg *config, log logrus.FieldLogger, handle frameHandler, refused *atomic.Uint64, end func(), features ackFeatures) {
	growStack() // a connection's new goroutine: see there
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(conn)
	if features == nil {
		features = baseAckFeatures
	}
	s := &frameServer{conn: conn, cfg: cfg, log: log, features: features,
		br: br, handle: countingHandler(handle, refused), refused: refused, end: end, body: make([]byte, 0, 1<<10)}
	s.cond.L = &s.mu
	s.read()
}

// read is serveFrames's loop: it reads frames until the connection ends,
// then ends it, or until the reading moves to another goroutine (see
// runHere), which then does.
func (s *frameServer) read() {
	moved := false
	defer func() {
		if !moved {
			s.drain()
			s.br.Reset(nil)
			readerPool.Put(s.br)
			if s.end != nil {
				s.end()
			}
		}
	}()
	br, cfg, log, handle, refused := s.br, s.cfg, s.log, s.handle, s.refused
	for {
		if br.Buffered() == 0 {
			if !s.flush() || s.readDeadline(cfg.idleTimeout) != nil {
				return
			}
			if _, err := br.Peek(1); err != nil {
				logReadEnd(log, err)
				return
			}
		}
		if hdr, _ := br.Peek(min(br.Buffered(), frameHeaderSize)); len(hdr) < frameHeaderSize ||
			br.Buffered()-frameHeaderSize < int(binary.BigEndian.Uint32(hdr)) {
			// The rest of the frame is awaited: write what is ready first.
			if !s.flush() || s.readDeadline(cfg.ioTimeout) != nil {
				return
			}
		}
		body, err := readFrame(br, cfg.maxFrameSize, s.body)
		s.body = reuseBody(s.body, body)
		if fse := frameSizeError(err); fse != nil {
			// Refuse it, then read past its body, so that the sender
			// gets the reason (closing with its data unread would reset
			// the connection) and the connection stays in step.
			log.WithError(err).Warn("refused oversized frame")
			refused.Add(1)
			s.queue(ackSlot{refusal: err})
			if !s.flush() || s.readDeadline(cfg.ioTimeout) != nil {
				return
			}
			if _, err = io.CopyN(io.Discard, br, int64(fse.Size)); err == nil {
				continue
			}
		}
		if err != nil {
			logReadEnd(log, err)
			return
		}
		if s.broken() {
			return
		}
		s.clock = frameClock{}
		id, refusal, after, answer := handle(body, &s.clock)
		if refusal != nil {
			log.WithError(refusal).Debug("refused frame")
		}
		a := ackSlot{id: id, refusal: refusal, after: after, waiting: answer != nil}
		var at time.Time
		if answer != nil {
			at = s.clock.now()
			a.due = at.Add(answerBudget)
		}
		seq, full := s.queue(a)
		if answer != nil {
			lone := br.Buffered() == 0
			here := lone || s.runsBehind()
			if b := answer(ackRef{s: s, seq: seq, here: here, at: at}); b != nil {
				s.setBudget(seq, b)
				if j, ok := b.(heldJob); ok && here && !s.runHere(j, a.due, lone) {
					moved = true
					return // another goroutine reads on
				}
			}
		}
		if full && !s.flush() {
			return
		}
		if full {
			s.awaitRoom()
		}
	}
}

// runHere runs j, a heldJob whose acknowledgement is due at due, on the
// reader's goroutine, and reports whether that goroutine still reads
// afterwards: if j outlasts due, budgetsDue moves the reading to a new
// goroutine (so that the frames behind are read and acknowledged), and the
// handler's goroutine leaves once it returns.
func (s *frameServer) runHere(j heldJob, due time.Time, lone bool) bool {
	s.mu.Lock()
	s.runs++
	run := s.runs
	s.held, s.heldDue = run, due
	// (The budget may have passed already. Checked against the frame's
	// clock, which its due counts from: a budget that passed since has
	// the timer, which setBudget set for due, fire at once.)
	s.checkHeldLocked(s.clock.now())
	s.mu.Unlock()
	j.runHeld()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == run {
		s.held = 0
	}
	if i := slices.Index(s.moved, run); i >= 0 {
		s.moved = slices.Delete(s.moved, i, i+1)
		return false
	}
	if lone {
		s.slow, s.handed = false, 0 // in time: frames behind may wait for the next ones again
	}
	return true
}

// runsBehind reports whether the reader runs a heldJob that frames wait
// behind, on its own goroutine: so do 64 Calls in flight on one link, with
// no hand-over to a worker and back per call (par64: 92-97k -> 143-156k
// calls/s, BenchmarkEcho/acomm-call/par64). Once a handler run that way
// outlasts its budget (the frames behind it waited that long, the reading
// then moving on), the connection hands such jobs to workers again, until
// a lone one returns in time, or until it has handed retrySlow of them (a
// connection that always has frames behind is never lone): then it tries
// again, which costs at most one budget's wait of the frames behind.
func (s *frameServer) runsBehind() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slow {
		if s.handed++; s.handed >= retrySlow {
			s.slow, s.handed = false, 0
		}
	}
	return !s.slow
}

// retrySlow is how many jobs with frames behind a connection hands to
// workers, after one run on its reader outlasted its budget, before it
// runs one there again (see runsBehind).
const retrySlow = 256

// checkHeldLocked moves the reading to a new goroutine if the reader runs
// a heldJob past its due, or else has the timer set for that due. Its
// caller holds s.mu.
func (s *frameServer) checkHeldLocked(now time.Time) {
	switch {
	case s.held == 0:
	case !now.Before(s.heldDue):
		s.moveReadingLocked()
	default:
		s.armLocked(s.heldDue) // (or for an earlier due, which checks again)
	}
}

// moveReadingLocked starts a new goroutine reading the connection, the
// reader being held up by a slow heldJob; the held goroutine, once its
// handler returns, leaves, and the new reader ends the connection: like
// a worker's, the handler does not keep the connection's end (and a
// Server's Stop) waiting. Its caller holds s.mu.
func (s *frameServer) moveReadingLocked() {
	s.moved = append(s.moved, s.held)
	s.held, s.busy, s.slow, s.handed = 0, false, true, 0
	go s.read()
}

// frameSizeError returns err as a *FrameSizeError, or nil.
func frameSizeError(err error) *FrameSizeError {
	if err == nil {
		return nil // (before fse: &fse escapes, a heap allocation per frame)
	}
	var fse *FrameSizeError
	if errors.As(err, &fse) {
		return fse
	}
	return nil
}

// readDeadline sets the connection's read deadline about d from now.
func (s *frameServer) readDeadline(d time.Duration) error {
	return lazyDeadline(s.conn.SetReadDeadline, &s.rdl, time.Now().Add(d), d)
}

// lazyDeadline moves a deadline, last set to *at, to want unless it is no
// later and at most span/16 earlier (setting one costs, and each frame
// would set several): a wait then ends after 15/16 of span to all of it.
func lazyDeadline(set func(time.Time) error, at *time.Time, want time.Time, span time.Duration) error {
	if !at.After(want) && at.After(want.Add(-span/16)) {
		return nil
	}
	*at = want
	return set(want)
}

// setBudget has b told when the acknowledgement seq, if it still waits,
// is due. One timer per connection serves them all, set for the oldest.
func (s *frameServer) setBudget(seq uint64, b ackBudget) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq < s.head || !s.slots[seq-s.head].waiting {
		return // filled already
	}
	a := &s.slots[seq-s.head]
	a.budget = b
	s.armLocked(a.due)
}

// armLocked sets the timer for due, unless it is set (for an earlier
// slot, so an earlier or equal due).
func (s *frameServer) armLocked(due time.Time) {
	if s.armed {
		return
	}
	s.armed = true
	if s.timer == nil {
		s.timer = time.AfterFunc(time.Until(due), s.budgetsDue)
		return
	}
	s.timer.Reset(time.Until(due))
}

// budgetsDue completes, without their answers, the acknowledgements past
// due whose ackBudget agrees, writes what is ready (all in one write),
// and sets the timer for the next.
func (s *frameServer) budgetsDue() {
	now := time.Now()
	s.mu.Lock()
	s.armed = false
	filled := 0
	for i := range s.slots {
		a := &s.slots[i]
		if !a.waiting || a.budget == nil {
			continue
		}
		if a.due.After(now) {
			s.armLocked(a.due)
			break
		}
		if b := a.budget; b.budgetPassed() {
			a.waiting, a.budget = false, nil
			filled++
		}
	}
	s.checkHeldLocked(now)
	if filled == 0 {
		s.mu.Unlock()
		return
	}
	s.settleLocked(filled)
}

// awaitRoom waits while the queue is full: its oldest acknowledgement
// awaits an answer (answerBudget at most).
func (s *frameServer) awaitRoom() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.slots) >= maxQueuedAcks && !s.failed {
		s.cond.Wait()
	}
}

// broken reports whether an acknowledgement could not be written: the
// frames read after it are not handled, since none will be acknowledged.
func (s *frameServer) broken() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// maxQueuedAcks is how many acknowledgements are queued before they are
// written, more frames waiting to be read or not.
const maxQueuedAcks = 64

// queue adds an acknowledgement to the queue and returns its number, and
// whether the queue is full.
func (s *frameServer) queue(a ackSlot) (seq uint64, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slots, s.busy = append(s.slots, a), true
	if a.waiting {
		s.waiting++
	}
	return s.head + uint64(len(s.slots)) - 1, len(s.slots) >= maxQueuedAcks
}

// fill completes the acknowledgement seq with its answer, and writes it
// and those after it that are ready if it was the oldest, unless the
// reader will (under load, acknowledgements then share its writes).
func (s *frameServer) fill(seq uint64, answer *Response, w ackWatcher) {
	s.mu.Lock()
	a := &s.slots[seq-s.head]
	a.waiting, a.answer, a.watcher = false, answer, w
	s.settleLocked(1)
}

// settleLocked, called with s.mu held once n waiting acknowledgements are
// ready, releases it: it writes what is ready unless the reader will,
// finishes that, and only then counts the n down, since the reader waits
// for them before it returns, which keeps the connection, and the
// server, open meanwhile.
func (s *frameServer) settleLocked(n int) {
	var buf [4]ackSlot
	done, ok := buf[:0], true
	if !s.busy {
		done, ok = s.writeLocked(done)
	}
	s.mu.Unlock()
	finish(done, ok)
	s.mu.Lock()
	if s.waiting -= n; s.waiting == 0 {
		s.cond.Broadcast()
	}
	s.mu.Unlock()
}

// flush writes the acknowledgements that are ready, oldest first, then
// runs their after funcs; those that get ready later, their handlers
// write, until the reader queues more. It reports whether the connection
// may go on.
func (s *frameServer) flush() bool {
	var buf [4]ackSlot
	s.mu.Lock()
	s.busy = false
	done, ok := s.writeLocked(buf[:0])
	ok = ok && !s.failed
	s.mu.Unlock()
	finish(done, ok)
	return ok
}

// drain waits for the acknowledgements still awaiting an answer (a
// moment: see answerBudget), then writes them.
func (s *frameServer) drain() {
	var buf [4]ackSlot
	s.mu.Lock()
	for s.waiting > 0 {
		s.cond.Wait()
	}
	done, ok := s.writeLocked(buf[:0])
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	finish(done, ok)
}

// writeLocked encodes and writes the ready acknowledgements at the head of
// the queue, within cfg.ioTimeout, and appends them to done, for finish
// to tell their watchers whether they went out (ok) and run their
// after funcs: once a frame is handled, Stop may close the connection,
// and the sender must have its acknowledgement by then.
func (s *frameServer) writeLocked(done []ackSlot) ([]ackSlot, bool) {
	n := 0
	for n < len(s.slots) && !s.slots[n].waiting {
		if !s.failed {
			s.encode(&s.slots[n])
		}
		n++
	}
	if n == 0 {
		return done, true
	}
	taken := len(done)
	done = append(done, s.slots[:n]...)
	clear(s.slots[:n])
	s.slots = append(s.slots[:0], s.slots[n:]...)
	s.head += uint64(n)
	s.cond.Broadcast() // room in the queue
	// Nothing goes out after a failed write, and what was never
	// acknowledged is not handled either.
	if s.failed {
		for i := range done[taken:] {
			done[taken+i].after = nil
		}
		return done, false
	}
	err := lazyDeadline(s.conn.SetWriteDeadline, &s.wdl, time.Now().Add(s.cfg.ioTimeout), s.cfg.ioTimeout)
	if err == nil {
		_, err = s.conn.Write(s.out)
	}
	s.out = s.out[:0]
	if err != nil {
		s.log.WithError(err).Debug("write acknowledgement failed")
		s.failed = true
	}
	return done, err == nil
}

// finish tells the watchers of acknowledgements that writeLocked
// took whether they went out, and runs their after funcs (accepted
// frames: handled even so).
func finish(done []ackSlot, ok bool) {
	for _, a := range done {
		if a.watcher != nil {
			a.watcher.written(ok)
		}
		if a.after != nil {
			a.after()
		}
	}
}

// encode appends the acknowledgement a, and its answer if it has one, to
// s.out.
func (s *frameServer) encode(a *ackSlot) {
	if a.answer == nil {
		out, err := appendFrame(s.out, &Response{ID: a.id, Error: a.refusal}, false, 0, s.features)
		if err != nil { // text that is not UTF-8: a handler's bug
			out, _ = appendFrame(s.out, &Response{Error: err}, false, 0, s.features)
		}
		s.out = out
		return
	}
	// (s.ackOut, not a new ackWithAnswer: it would escape, an allocation
	// per answer.)
	s.ackOut = ackWithAnswer{id: a.id, answer: a.answer}
	out, err := appendFrame(s.out, &s.ackOut, false, s.cfg.maxFrameSize, s.features)
	s.ackOut = ackWithAnswer{}
	if err != nil { // as Server.respond does
		s.log.WithError(err).WithField("id", a.id).Warn("response cannot be sent; sending an error instead")
		err = fmt.Errorf("%w: the response cannot be sent: %w", ErrInvalidResponse, err)
		if errors.Is(err, ErrFrameTooLarge) {
			err = fmt.Errorf("%w: the response is too large to send", ErrFrameTooLarge)
		}
		out, _ = appendFrame(s.out, &ackWithAnswer{id: a.id, answer: &Response{ID: a.answer.ID, Error: err}}, false, 0, s.features)
	}
	s.out = out
}

// logReadEnd logs why a connection's frames ended, if worth saying.
func logReadEnd(log logrus.FieldLogger, err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.Is(err, os.ErrDeadlineExceeded):
		log.WithError(err).Debug("connection idle or stalled; closing")
	default:
		log.WithError(err).Debug("read frame failed; closing")
	}
}
