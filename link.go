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
	"slices"
	"sync"
	"syscall"
	"time"
)

// A peer that listed "pipeline" gets a link: one kept connection, frames
// written as they come (several to a write under load) without waiting
// for earlier acknowledgements, which match frames in order. Any other
// gets a connection per frame (one acknowledged with "pipeline" is kept).

// linkIdleTimeout (below receivers' DefaultIdleTimeout) bounds idle links.
const linkIdleTimeout = 30 * time.Second

// links holds the link of each socket path that has one.
var links = struct {
	sync.Mutex
	m     map[string]*link
	swept time.Time // see adoptLink
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

	mu       sync.Mutex  // protects the fields below
	out      []byte      // frames not yet written
	spare    []byte      // a buffer for out, while the other is written
	queue    []*exchange // frames awaiting acknowledgement, oldest first
	qmem     []*exchange // queue's memory, from its front
	unsent   int         // how many of the last in queue are in out
	posted   uint64      // how many frames were posted: the last one's seq
	flushing bool        // a sender is writing out
	reading  bool        // someone reads acknowledgements
	rdl, wdl time.Time   // the deadlines set on conn; see lazyDeadline
	dead     bool        // failed or closed: never used again
	used     time.Time   // when a frame was last posted
}

// exchange is a frame awaiting its acknowledgement, whose outcome done gets.
type exchange struct {
	frame    []byte
	seq      uint64 // the link's count of frames posted, this one included
	start    int    // where frame starts in the buffer it was written from
	timeout  time.Duration
	deadline time.Time
	done     chan error
	onAnswer func(*Response) // takes an answer found in the ack; nil: none asked
}

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

// CloseIdleConnections closes the unix connections that Send keeps for
// reuse and on which no acknowledgement is awaited.
func CloseIdleConnections() { closeIdleLinks(0) }

// closeIdleLinks closes the links idle for d or longer.
func closeIdleLinks(d time.Duration) {
	links.Lock()
	all := make([]*link, 0, len(links.m))
	for _, l := range links.m {
		all = append(all, l)
	}
	links.Unlock()
	for _, l := range all {
		l.mu.Lock()
		if len(l.queue) == 0 && time.Since(l.used) >= d {
			l.failLocked(net.ErrClosed)
		}
		l.mu.Unlock()
	}
}

// adoptLink makes l its path's link, unless there is one; it also closes
// idle links now and then.
func adoptLink(l *link) bool {
	links.Lock()
	defer links.Unlock()
	if links.m[l.path] != nil {
		return false
	}
	l.once, links.m[l.path] = false, l
	if time.Since(links.swept) > time.Second {
		links.swept = time.Now()
		go closeIdleLinks(linkIdleTimeout)
	}
	return true
}

// postUnix sends payload to the socket at path, within ctx and cfg's
// settings, and returns a channel that gets the acknowledgement's outcome
// (at once if another sender reads the link's acknowledgements).
func postUnix(ctx context.Context, path string, payload any, cfg *config) (<-chan error, error) {
	l := linkFor(path)
	legacy := cfg.legacyURLs || l == nil || !slices.Contains(l.features, featureStringURLs)
	var onAnswer func(*Response)
	if req, ok := payload.(*Request); ok && req != nil && req.onAnswer != nil && l != nil && slices.Contains(l.features, featureAnswerInAck) {
		payload, onAnswer = answerInAck{req}, req.onAnswer
	}
	frame, err := appendFrame(nil, payload, legacy, cfg.maxFrameSize)
	if err != nil {
		return nil, fmt.Errorf("acomm: send frame: %w", err)
	}
	if l != nil {
		if ex, lead := l.post(ctx, frame, cfg.ioTimeout, onAnswer); ex != nil {
			if lead {
				l.read(ctx, ex)
			}
			return ex.done, nil
		}
	}
	return nil, exchangeOnce(ctx, path, frame, cfg.ioTimeout, onAnswer)
}

// exchangeOnce sends frame on a connection of its own, within ctx and
// timeout; onAnswer takes an answer found in the acknowledgement.
func exchangeOnce(ctx context.Context, path string, frame []byte, timeout time.Duration, onAnswer func(*Response)) error {
	dl := time.Now().Add(timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(dl) {
		dl = cd
	}
	conn, err := (&net.Dialer{Deadline: dl}).DialContext(ctx, "unix", path)
	if err != nil {
		return cmp.Or(ctx.Err(), fmt.Errorf("%w: %w", ErrUnreachable, err)) // err names the path
	}
	l := &link{path: path, conn: conn, br: bufio.NewReaderSize(conn, 512), body: make([]byte, 0, 256), once: true}
	ex, _ := l.post(ctx, frame, timeout, onAnswer)
	l.read(ctx, ex)
	select {
	case err = <-ex.done:
	default:
	}
	err = cmp.Or(ctx.Err(), err) // it ended first
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead || len(l.queue) > 0 || !slices.Contains(l.features, featurePipeline) || !adoptLink(l) {
		l.failLocked(net.ErrClosed)
	}
	return err
}

// post queues frame and writes it, unless a sender is writing (which then
// writes it too); lead says the caller must read acknowledgements (see
// read). ex is nil when the link is dead.
func (l *link) post(ctx context.Context, frame []byte, timeout time.Duration, onAnswer func(*Response)) (ex *exchange, lead bool) {
	now := time.Now()
	ex = &exchange{frame: frame, timeout: timeout, deadline: now.Add(timeout), done: make(chan error, 1), onAnswer: onAnswer}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		return nil, false
	}
	ex.start, l.out = len(l.out), append(l.out, frame...)
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
	l.posted++
	ex.seq = l.posted
	l.used = now
	lead, l.reading = !l.reading, true
	for !l.flushing && len(l.out) > 0 && !l.dead {
		// (Frames posted meanwhile go with the next write; those a failed
		// write did not deliver are resent.)
		buf, first := l.out, l.posted-uint64(l.unsent)+1 // the seqs written: first to l.posted
		last := l.posted
		l.out, l.unsent, l.flushing = l.spare[:0], 0, true
		l.mu.Unlock()
		stop := afterFunc(ctx, func() { _ = l.conn.SetWriteDeadline(time.Unix(1, 0)) })
		err := lazyDeadline(l.conn.SetWriteDeadline, &l.wdl, time.Now().Add(timeout), timeout)
		n := 0
		if err == nil {
			n, err = l.conn.Write(buf)
		}
		if !stop() {
			l.wdl = time.Time{} // ctx ended, and moved the deadline
		}
		l.mu.Lock()
		l.spare, l.flushing = buf[:0], false
		if err != nil {
			if !l.once { // resend the frames of which nothing was written
				l.queue = slices.DeleteFunc(l.queue, func(ex *exchange) bool {
					if ex.seq < first || ex.seq > last || ex.start < n {
						return false
					}
					go ex.resend(l.path)
					return true
				})
			}
			l.failLocked(fmt.Errorf("write: %w", err))
		}
	}
	return ex, lead
}

// resend sends the exchange's frame on a connection of its own.
func (ex *exchange) resend(path string) {
	ex.done <- exchangeOnce(context.Background(), path, ex.frame, ex.timeout, ex.onAnswer)
}

// failLocked closes and forgets the link; the frames awaiting
// acknowledgement fail with err, those not yet written are resent.
func (l *link) failLocked(err error) {
	if l.dead {
		return
	}
	l.dead = true
	links.Lock()
	if links.m[l.path] == l {
		delete(links.m, l.path)
	}
	links.Unlock()
	_ = l.conn.Close()
	for i, ex := range l.queue {
		if i >= len(l.queue)-l.unsent {
			go ex.resend(l.path)
		} else {
			ex.done <- exchangeError("read acknowledgement", err)
		}
	}
	l.queue, l.out, l.unsent = nil, nil, 0
}

// read hands acknowledgements to their frames until mine has its own (nil:
// none is awaited), ctx ends or the link fails, each wait bounded by the
// oldest frame's deadline. Its caller holds l.reading, which it passes on
// to a goroutine if acknowledgements are still awaited.
func (l *link) read(ctx context.Context, mine *exchange) {
	defer afterFunc(ctx, func() { // wake the read
		l.mu.Lock()
		defer l.mu.Unlock()
		l.rdl = time.Unix(1, 0)
		_ = l.conn.SetReadDeadline(l.rdl)
	})()
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
		l.mu.Unlock()
		_, err := l.br.Peek(1)
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
		l.mu.Lock()
		wantAnswer := len(l.queue) > 0 && l.queue[0].onAnswer != nil
		l.mu.Unlock()
		features, answer, ackErr := decodeAck(body, once, wantAnswer)
		l.mu.Lock()
		if err != nil || len(l.queue) == 0 {
			l.failLocked(cmp.Or(err, fmt.Errorf("%w: acknowledgement of nothing sent", ErrMalformedFrame)))
			l.mu.Unlock()
			return
		}
		ex := l.queue[0]
		l.queue[0], l.queue = nil, l.queue[1:]
		if once {
			l.features = features
		}
		l.mu.Unlock()
		if answer != nil && ex.onAnswer != nil {
			ex.onAnswer(answer) // before done: whoever waits on both finds the answer first
		}
		ex.done <- ackErr
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

// afterFunc is context.AfterFunc, spared for a ctx that never ends.
func afterFunc(ctx context.Context, f func()) (stop func() bool) {
	if ctx.Done() == nil {
		return func() bool { return true }
	}
	return context.AfterFunc(ctx, f)
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
