package acomm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// frameHandler handles one received frame body. It returns the ID to put in
// the acknowledgement, the refusal reason (nil to accept), and a func to run
// after the acknowledgement is written (nil for none). body is only valid
// until the handler returns: it may be the connection's read buffer.
type frameHandler func(body []byte) (id string, refusal error, after func())

// serveFrames reads frame after frame from conn until the peer closes it,
// it idles past cfg.idleTimeout, or a frame cannot be read. Each frame is
// acknowledged with a Response frame whose error is "" when accepted or
// the reason it was refused. The body of a frame that is too large is
// refused unread and then skipped.
func serveFrames(conn net.Conn, cfg *config, log logrus.FieldLogger, handle frameHandler, refused *atomic.Uint64) {
	handle = countingHandler(handle, refused)
	cr := newConnReader(conn, cfg)
	defer cr.release()
	var raw syscall.RawConn
	if sc, ok := conn.(syscall.Conn); ok {
		raw, _ = sc.SyscallConn()
	}
	for {
		if raw != nil {
			if err, done := cr.serveRaw(raw, log, handle); done {
				logReadEnd(log, err)
				return
			}
			// The next frame needs the ordinary path (below).
		}
		body, err := cr.next()
		if err != nil {
			var fse *FrameSizeError
			if errors.As(err, &fse) {
				// Refuse it, then read past its body, so the
				// sender gets the reason (closing with its data
				// unread would reset the connection first) and
				// the connection stays in step for the next frame.
				log.WithError(err).Warn("refused oversized frame")
				refused.Add(1)
				if cr.writeAck("", err) == nil && cr.discard(fse.Size) == nil {
					continue
				}
				return
			}
			logReadEnd(log, err)
			return
		}
		if !cr.serveFrame(body, log, handle) {
			return
		}
	}
}

// logReadEnd logs why a connection's frames ended; nil for no reason
// worth saying.
func logReadEnd(log logrus.FieldLogger, err error) {
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		// The peer is done, or we are stopping.
	case errors.Is(err, os.ErrDeadlineExceeded):
		log.WithError(err).Debug("connection idle or stalled; closing")
	default:
		log.WithError(err).Debug("read frame failed; closing")
	}
}

// serveFrame handles one frame and writes its acknowledgement. It reports
// whether the connection may go on.
func (cr *connReader) serveFrame(body []byte, log logrus.FieldLogger, handle frameHandler) bool {
	id, refusal, after := handle(body)
	if refusal != nil {
		log.WithError(refusal).Debug("refused frame")
	}
	if err := cr.writeAck(id, refusal); err != nil {
		log.WithError(err).Debug("write acknowledgement failed")
		// The frame was accepted: it is handled even if the peer
		// could not read the acknowledgement.
		if after != nil {
			after()
		}
		return false
	}
	if after != nil {
		after()
	}
	return true
}

// serveRaw serves frames inside one RawConn.Read, for as long as they are
// small enough for the buffer. Its point is the read it spares per frame.
// A receiver that has acknowledged a frame has nothing to read until the
// peer sends the next one, so the ordinary loop's read after each
// acknowledgement finds nothing and costs a system call for it, before
// the goroutine waits for the connection to become readable. Inside one
// RawConn.Read, the connection's readiness is reset once, at the start;
// after that, anything that arrives after a read marks the connection
// readable until the goroutine waits. So once a read has returned less
// than it could take (the socket was empty then), serveRaw can wait for
// readiness straight away, without looking first, and lose nothing.
//
// It returns done when the connection is finished (err says why, nil for
// a failed acknowledgement, already logged), and otherwise returns when
// the next frame needs the ordinary path (too large for the buffer, or
// over the limit).
func (cr *connReader) serveRaw(raw syscall.RawConn, log logrus.FieldLogger, handle frameHandler) (err error, done bool) {
	cr.log, cr.handle = log, handle
	cr.rawErr, cr.rawDone, cr.drained = nil, false, false
	if cr.rawStepFn == nil {
		cr.rawStepFn = cr.rawStep
	}
	rerr := raw.Read(cr.rawStepFn)
	cr.log, cr.handle = nil, nil
	switch {
	case cr.rawDone:
		return cr.rawErr, true
	case rerr != nil:
		return rerr, true // a deadline, or the connection closed
	}
	return nil, false
}

// rawStep is serveRaw's callback: serve what is buffered, then read; it
// returns false to wait for the connection to become readable.
func (cr *connReader) rawStep(fd uintptr) bool {
	for {
		// Serve the frames already buffered.
		for cr.w-cr.r >= frameHeaderSize {
			n := binary.BigEndian.Uint32(cr.buf[cr.r:])
			if uint64(n) > uint64(cr.cfg.maxFrameSize) || int(n) > len(cr.buf)-frameHeaderSize {
				return true // for the ordinary path
			}
			end := cr.r + frameHeaderSize + int(n)
			if end > cr.w {
				break // not all here yet
			}
			body := cr.buf[cr.r+frameHeaderSize : end : end]
			cr.r = end
			cr.frameIO = false
			if !cr.serveFrame(body, cr.log, cr.handle) {
				cr.rawDone = true
				return true
			}
		}
		if cr.r == cr.w {
			cr.r, cr.w = 0, 0
		} else if len(cr.buf)-cr.w < frameHeaderSize || cr.w-cr.r >= frameHeaderSize &&
			cr.r+frameHeaderSize+int(binary.BigEndian.Uint32(cr.buf[cr.r:])) > len(cr.buf) {
			// Make room for the rest of the frame begun.
			cr.w = copy(cr.buf, cr.buf[cr.r:cr.w])
			cr.r = 0
		}
		if cr.drained {
			cr.drained = false
			if err := cr.waitDeadline(); err != nil {
				cr.rawErr, cr.rawDone = err, true
				return true
			}
			return false
		}
		space := len(cr.buf) - cr.w
		k, e := syscall.Read(int(fd), cr.buf[cr.w:])
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			if err := cr.waitDeadline(); err != nil {
				cr.rawErr, cr.rawDone = err, true
				return true
			}
			return false
		case e != nil:
			cr.rawErr, cr.rawDone = os.NewSyscallError("read", e), true
			return true
		case k == 0:
			cr.rawErr, cr.rawDone = io.EOF, true
			if cr.w > cr.r {
				cr.rawErr = truncated(io.EOF, "in a frame")
			}
			return true
		}
		cr.w += k
		cr.drained = k < space
	}
}

// waitDeadline sets the read deadline for a wait: cfg.idleTimeout for the
// next frame to begin, or, once one has begun, cfg.ioTimeout (set once)
// for the rest of it to arrive.
func (cr *connReader) waitDeadline() error {
	if cr.r == cr.w {
		return cr.setReadDeadline(cr.cfg.idleTimeout)
	}
	if cr.frameIO {
		return nil
	}
	cr.frameIO = true
	cr.rdl = monoNow().Add(cr.cfg.ioTimeout)
	return cr.conn.SetReadDeadline(cr.rdl)
}

// connReadBufSize is the read buffer of a served connection: frames that
// fit in it arrive with one read and are decoded in place.
const connReadBufSize = 4 << 10

// connBufPool holds the read buffers of served connections.
var connBufPool = sync.Pool{New: func() any { b := make([]byte, connReadBufSize); return &b }}

// connReader reads frames from a served connection through a buffer, so
// that a small frame costs one read rather than one for its header and one
// for its body. It applies the same timeouts as readFrameConn:
// cfg.idleTimeout for a frame to begin, cfg.ioTimeout for the rest of it.
type connReader struct {
	conn net.Conn
	cfg  *config
	bp   *[]byte
	buf  []byte // buffered bytes are buf[r:w]
	r, w int
	rdl  time.Time // the read deadline set on conn
	wdl  time.Time // the write deadline set on conn

	// serveRaw's state, kept here (with rawStepFn, made once) so that
	// serving allocates nothing.
	log       logrus.FieldLogger
	handle    frameHandler
	rawStepFn func(fd uintptr) bool
	rawErr    error
	rawDone   bool // the connection is finished
	drained   bool // the last read emptied the socket
	frameIO   bool // the I/O deadline of the frame begun is set
}

// Setting a deadline is not free, and a connection sets one for every
// frame it reads and every acknowledgement it writes. So a deadline is
// moved only when it has come 1/16 of its timeout closer than wanted:
// instead of exactly the timeout, an idle connection or a stalled read or
// write is then cut off after between 15/16 of it and all of it.

// setReadDeadline makes the read deadline about d from now.
func (cr *connReader) setReadDeadline(d time.Duration) error {
	now := monoNow()
	if left := cr.rdl.Sub(now); left <= d && left >= d-d/16 {
		return nil
	}
	cr.rdl = now.Add(d)
	return cr.conn.SetReadDeadline(cr.rdl)
}

// writeAck writes the acknowledgement of a frame, within about
// cfg.ioTimeout.
func (cr *connReader) writeAck(id string, refusal error) error {
	d := cr.cfg.ioTimeout
	now := monoNow()
	if left := cr.wdl.Sub(now); left > d || left < d-d/16 {
		cr.wdl = now.Add(d)
		if err := cr.conn.SetWriteDeadline(cr.wdl); err != nil {
			return err
		}
	}
	// Acks are small; the frame limit (which may be set very low) bounds
	// what we accept, not the reasons we give.
	return encodeResponseFrame(cr.conn, &Response{ID: id, Error: refusal}, DefaultMaxFrameSize)
}

func newConnReader(conn net.Conn, cfg *config) *connReader {
	bp := connBufPool.Get().(*[]byte)
	return &connReader{conn: conn, cfg: cfg, bp: bp, buf: *bp}
}

// release gives the buffer back; cr must not be used afterwards.
func (cr *connReader) release() {
	connBufPool.Put(cr.bp)
	cr.bp, cr.buf = nil, nil
}

// next reads the next frame and returns its body, which is valid until
// the next call. Errors are those of readFrameConn.
func (cr *connReader) next() ([]byte, error) {
	if cr.r == cr.w {
		cr.r, cr.w = 0, 0
		if err := cr.setReadDeadline(cr.cfg.idleTimeout); err != nil {
			return nil, err
		}
		for cr.w == 0 {
			n, err := cr.conn.Read(cr.buf)
			cr.w = n
			if n == 0 && err != nil {
				return nil, err
			}
		}
	}
	ioSet := false
	if err := cr.fill(frameHeaderSize, &ioSet); err != nil {
		return nil, truncated(err, "in header")
	}
	n := binary.BigEndian.Uint32(cr.buf[cr.r:])
	cr.r += frameHeaderSize
	if uint64(n) > uint64(cr.cfg.maxFrameSize) {
		return nil, &FrameSizeError{Size: uint64(n), Max: cr.cfg.maxFrameSize}
	}
	if int(n) <= len(cr.buf)-frameHeaderSize {
		if err := cr.fill(int(n), &ioSet); err != nil {
			return nil, truncated(err, fmt.Sprintf("want %d body bytes", n))
		}
		body := cr.buf[cr.r : cr.r+int(n) : cr.r+int(n)]
		cr.r += int(n)
		return body, nil
	}
	// Larger than the buffer: a body of its own.
	body := make([]byte, n)
	k := copy(body, cr.buf[cr.r:cr.w])
	cr.r, cr.w = 0, 0
	if !ioSet {
		if err := cr.setReadDeadline(cr.cfg.ioTimeout); err != nil {
			return nil, err
		}
	}
	if _, err := io.ReadFull(cr.conn, body[k:]); err != nil {
		return nil, truncated(err, fmt.Sprintf("want %d body bytes", n))
	}
	return body, nil
}

// fill reads until n bytes are buffered (n <= len(cr.buf)), setting the
// I/O deadline before the first read it makes.
func (cr *connReader) fill(n int, ioSet *bool) error {
	if cr.w-cr.r >= n {
		return nil
	}
	if len(cr.buf)-cr.r < n {
		cr.w = copy(cr.buf, cr.buf[cr.r:cr.w])
		cr.r = 0
	}
	if !*ioSet {
		*ioSet = true
		if err := cr.setReadDeadline(cr.cfg.ioTimeout); err != nil {
			return err
		}
	}
	for cr.w-cr.r < n {
		k, err := cr.conn.Read(cr.buf[cr.w:])
		cr.w += k
		if err != nil {
			if cr.w-cr.r >= n {
				return nil
			}
			if errors.Is(err, io.EOF) && cr.w > cr.r {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// discard drops the n-byte body of a refused frame: what is buffered, then
// the rest from the connection within cfg.ioTimeout.
func (cr *connReader) discard(n uint64) error {
	k := min(n, uint64(cr.w-cr.r))
	cr.r += int(k)
	if n -= k; n == 0 {
		return nil
	}
	cr.rdl = time.Time{} // discard sets its own
	return discard(cr.conn, cr.cfg, n)
}

// discard reads and drops n bytes from conn within cfg.ioTimeout.
func discard(conn net.Conn, cfg *config, n uint64) error {
	if err := conn.SetReadDeadline(time.Now().Add(cfg.ioTimeout)); err != nil {
		return err
	}
	_, err := io.CopyN(io.Discard, conn, int64(n))
	return err
}

// readFrameConn reads one frame from conn, allowing cfg.idleTimeout for it
// to begin and cfg.ioTimeout for the rest of it to arrive.
func readFrameConn(conn net.Conn, cfg *config) ([]byte, error) {
	if err := conn.SetReadDeadline(time.Now().Add(cfg.idleTimeout)); err != nil {
		return nil, err
	}
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(conn, hdr[:1]); err != nil {
		return nil, err
	}
	if err := conn.SetReadDeadline(time.Now().Add(cfg.ioTimeout)); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(conn, hdr[1:]); err != nil {
		return nil, truncated(err, "in header")
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(cfg.maxFrameSize) {
		return nil, &FrameSizeError{Size: uint64(n), Max: cfg.maxFrameSize}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, truncated(err, fmt.Sprintf("want %d body bytes", n))
	}
	return body, nil
}

// truncated turns an EOF inside a frame into ErrTruncatedFrame.
func truncated(err error, where string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s", ErrTruncatedFrame, where)
	}
	return err
}
