package acomm

import (
	"bufio"
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

// Outgoing unix frames. A peer that listed "pipeline" in an
// acknowledgement (our receivers) gets a link: one kept connection for its
// socket, on which frames are written as they come, several to a write
// under load, without waiting for earlier acknowledgements, and one reader
// goroutine hands out the acknowledgements in order, as net/rpc's client
// does with replies. Any other peer (the original acomm, a service written
// with UnixListener and UnmarshalConnData, a peer not heard from yet) gets
// one frame per connection, so no frame waits behind a connection that
// the peer has stopped reading; when its acknowledgement lists "pipeline",
// that connection becomes the socket's link. Frames to a peer not known to
// read string URLs carry them in the object form.

// linkIdleTimeout is how long an idle link is kept; well below the
// receivers' DefaultIdleTimeout, so that we close it before they do.
const linkIdleTimeout = 30 * time.Second

// links holds the live link of each socket path that has one.
var links = struct {
	sync.Mutex
	m     map[string]*link
	swept time.Time // see adoptLink
}{m: make(map[string]*link)}

// link is a kept connection to a pipelining peer. No goroutine is kept
// for it: a sender that finds nobody reading acknowledgements reads them
// itself until its own arrives, and hands the reading to a goroutine only
// if others are still awaited.
type link struct {
	path     string
	conn     net.Conn
	br       *bufio.Reader
	features []string // from the acknowledgement that made the link

	mu       sync.Mutex  // protects the fields below
	out      []byte      // frames not yet written
	spare    []byte      // a buffer for out, while the other is written
	queue    []*exchange // frames awaiting acknowledgement, oldest first
	unsent   int         // how many of the last in queue are in out
	flushing bool        // a sender is writing out
	reading  bool        // someone reads acknowledgements
	dead     bool        // the link failed or was closed: never used again
	used     time.Time   // when a frame was last posted
}

// exchange is a frame sent on a link, awaiting its acknowledgement.
type exchange struct {
	frame    []byte
	timeout  time.Duration
	deadline time.Time  // for its acknowledgement
	done     chan error // gets the outcome, once
}

// peerFeatures returns the features that the peer at the unix socket path
// listed in the acknowledgement that made its link; nil when it has none.
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

// CloseIdleConnections closes the unix connections that Send keeps open
// for reuse and on which no acknowledgement is awaited. Later sends open
// new ones as needed.
func CloseIdleConnections() {
	closeIdleLinks(0)
}

// closeIdleLinks closes the links idle for longer than d.
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

// postUnix sends payload to the unix socket at path within ctx and cfg's
// settings. It returns a channel that gets the acknowledgement's outcome:
// at once when the frame is queued on the peer's link and another sender
// reads the acknowledgements; otherwise once the outcome is in.
func postUnix(ctx context.Context, path string, payload any, cfg *config) (<-chan error, error) {
	l := linkFor(path)
	legacy := cfg.legacyURLs || l == nil || !slices.Contains(l.features, featureStringURLs)
	frame, err := appendFrame(nil, payload, legacy, cfg.maxFrameSize)
	if err != nil {
		return nil, fmt.Errorf("acomm: send frame: %w", err)
	}
	if l != nil {
		if ex, lead := l.post(frame, cfg.ioTimeout); ex != nil {
			if lead {
				l.read(ctx, ex)
			}
			return ex.done, nil
		}
	}
	return nil, exchangeOnce(ctx, path, frame, cfg.ioTimeout)
}

// post queues frame on the link, and writes it unless a sender is
// writing already (that one writes it with its own). It reports whether
// the caller must read the acknowledgements (see read); nil when the link
// is dead.
func (l *link) post(frame []byte, timeout time.Duration) (ex *exchange, lead bool) {
	now := time.Now()
	ex = &exchange{frame: frame, timeout: timeout, deadline: now.Add(timeout), done: make(chan error, 1)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		return nil, false
	}
	l.out = append(l.out, frame...)
	l.queue = append(l.queue, ex)
	l.unsent++
	l.used = now
	lead, l.reading = !l.reading, true
	if !l.flushing {
		l.flushing = true
		l.flushLocked()
		l.flushing = false
	}
	return ex, lead
}

// flushLocked writes out until it is empty, unlocking l.mu while it
// writes. A failed write kills the link: its frames that were not written
// are sent again on a connection of their own.
func (l *link) flushLocked() {
	for len(l.out) > 0 && !l.dead {
		buf, batch := l.out, slices.Clone(l.queue[len(l.queue)-l.unsent:])
		l.out, l.unsent = l.spare[:0], 0
		l.mu.Unlock()
		err := l.conn.SetWriteDeadline(time.Now().Add(batch[0].timeout))
		n := 0
		if err == nil {
			n, err = l.conn.Write(buf)
		}
		l.mu.Lock()
		l.spare = buf[:0]
		if err != nil {
			// Frames of the batch that start past what was written did
			// not reach the peer: resend those.
			for _, ex := range batch {
				if n <= 0 {
					if i := slices.Index(l.queue, ex); i >= 0 {
						l.queue = slices.Delete(l.queue, i, i+1)
					}
					go ex.resend(l.path)
				}
				n -= len(ex.frame)
			}
			l.failLocked(fmt.Errorf("write: %w", err))
		}
	}
}

// resend sends the exchange's frame on a connection of its own.
func (ex *exchange) resend(path string) {
	ex.done <- exchangeOnce(context.Background(), path, ex.frame, ex.timeout)
}

// failLocked kills the link: it is forgotten, its connection closed, and
// every frame awaiting acknowledgement fails with err (frames not yet
// written are resent). l.mu must be held.
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
			continue
		}
		ex.done <- exchangeError("read acknowledgement", err)
	}
	l.queue, l.out, l.unsent = nil, nil, 0
}

// read reads acknowledgements and hands each to its frame, in order, until
// mine has its own (all are in, for a nil mine), ctx ends or the link
// fails, each read bounded by the oldest frame's deadline. The caller
// holds the reading role (l.reading); read passes it on to a new
// goroutine if acknowledgements are still awaited, and releases it
// otherwise.
func (l *link) read(ctx context.Context, mine *exchange) {
	if ctx.Done() != nil {
		// Wake the read when ctx ends; a reader after us re-arms it.
		defer context.AfterFunc(ctx, func() { _ = l.conn.SetReadDeadline(time.Unix(1, 0)) })()
	}
	for {
		if cd, ok := ctx.Deadline(); ok && !time.Now().Before(cd) {
			<-ctx.Done() // a moment later than our clock
		}
		l.mu.Lock()
		if l.dead {
			l.mu.Unlock()
			return
		}
		if len(l.queue) == 0 || mine == nil && ctx.Err() != nil {
			l.reading = false
			l.mu.Unlock()
			return
		}
		if ctx.Err() != nil {
			go l.read(context.Background(), nil)
			l.mu.Unlock()
			return
		}
		dl := l.queue[0].deadline
		if cd, ok := ctx.Deadline(); ok && cd.Before(dl) {
			dl = cd
		}
		_ = l.conn.SetReadDeadline(dl)
		l.mu.Unlock()

		_, err := l.br.Peek(1)
		if errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(l.queue0Deadline()) {
			continue // ctx ended, or a stale wake-up: nothing was read
		}
		var body []byte
		if err == nil {
			body, err = readFrame(l.br, DefaultMaxFrameSize)
		}
		l.mu.Lock()
		if err == nil && len(l.queue) == 0 {
			err = fmt.Errorf("%w: acknowledgement of nothing sent", ErrMalformedFrame)
		}
		if err != nil {
			l.failLocked(err)
			l.mu.Unlock()
			return
		}
		ex := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		if ex == mine {
			if l.reading = len(l.queue) > 0; l.reading {
				go l.read(context.Background(), nil)
			}
		}
		l.mu.Unlock()
		_, ackErr := ackOutcome(body)
		ex.done <- ackErr
		if ex == mine {
			return
		}
	}
}

// queue0Deadline returns the deadline of the oldest frame awaiting its
// acknowledgement; the zero time when there is none.
func (l *link) queue0Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) == 0 || l.dead {
		return time.Time{}
	}
	return l.queue[0].deadline
}

// adoptLink makes conn, just acknowledged by a peer that listed features
// including "pipeline", the link of path, unless path has one. It closes
// the links idle past linkIdleTimeout, at most once a second.
func adoptLink(path string, conn net.Conn, br *bufio.Reader, features []string) bool {
	links.Lock()
	defer links.Unlock()
	if links.m[path] != nil || conn.SetDeadline(time.Time{}) != nil {
		return false
	}
	links.m[path] = &link{path: path, conn: conn, br: br, features: features, used: time.Now()}
	if time.Since(links.swept) > time.Second {
		links.swept = time.Now()
		go closeIdleLinks(linkIdleTimeout)
	}
	return true
}

// exchangeOnce sends frame on a connection of its own and reads the
// acknowledgement, all within ctx and timeout. The connection becomes the
// link of path when the peer lists "pipeline"; otherwise it is closed.
func exchangeOnce(ctx context.Context, path string, frame []byte, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	dl, ctxBound := ctx.Deadline()
	if ctxBound = ctxBound && dl.Before(deadline); ctxBound {
		deadline = dl
	}
	conn, err := (&net.Dialer{Deadline: deadline}).DialContext(ctx, "unix", path)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: dial %s: %w", ErrUnreachable, path, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	br := bufio.NewReaderSize(conn, 512)
	var body []byte
	if err = conn.SetDeadline(deadline); err == nil {
		_, err = conn.Write(frame)
	}
	if err != nil {
		err = exchangeError("send frame", err)
	} else if body, err = readFrame(br, DefaultMaxFrameSize); err != nil {
		err = exchangeError("read acknowledgement", err)
	}
	if ctxBound && errors.Is(err, os.ErrDeadlineExceeded) {
		<-ctx.Done() // ctx's deadline, which ctx reports a moment later
	}
	if !stop() || ctx.Err() != nil {
		_ = conn.Close()
		return ctx.Err()
	}
	if err != nil {
		_ = conn.Close()
		return err
	}
	features, err := ackOutcome(body)
	if !slices.Contains(features, featurePipeline) || br.Buffered() > 0 || !adoptLink(path, conn, br, features) {
		_ = conn.Close()
	}
	return err
}

// ackOutcome decodes an acknowledgement: the features it lists, and nil
// when it accepts the frame, an error matching ErrRefused (and, through
// RemoteError, the receiver's sentinel) when it refuses it, one matching
// ErrMalformedFrame when it is no acknowledgement.
func ackOutcome(body []byte) ([]string, error) {
	var ack Response
	features, err := decodeResponse(body, &ack)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: acknowledgement: %w", ErrMalformedFrame, err)
	case ack.Error != nil:
		return features, fmt.Errorf("%w: %w", ErrRefused, ack.Error)
	}
	return features, nil
}

// exchangeError wraps an error of a frame's exchange: io.EOF becomes a
// peer that closed without acknowledging; errors of the connection match
// ErrConnection.
func exchangeError(stage string, err error) error {
	switch {
	case isWireError(err):
		return fmt.Errorf("acomm: %s: %w", stage, err)
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		// The frame may or may not have been handled.
		return fmt.Errorf("%w: %s: peer closed without acknowledging: %w", ErrConnection, stage, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("%w: %s: %w", ErrConnection, stage, err)
}
