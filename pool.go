package acomm

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// Outgoing unix connections are kept after use and reused for the next
// frame to the same socket, so a round trip costs two frames rather than a
// connect, two frames and a close. Receivers read frame after frame on a
// connection (serveFrames), and a peer that closes after one frame, as the
// original acomm did, is detected and the frame resent on a fresh
// connection only when it provably did not reach the peer.

const (
	// poolMaxIdle bounds the idle connections kept in all.
	poolMaxIdle = 1024
	// poolMaxIdlePerDest bounds the idle connections kept per socket.
	poolMaxIdlePerDest = 64
	// poolIdleTimeout is how long an idle connection is kept; well below
	// the receivers' DefaultIdleTimeout, so we drop it before they do.
	poolIdleTimeout = 30 * time.Second
)

// connPool holds idle connections by socket path.
type connPool struct {
	mu        sync.Mutex // protects the fields below
	idle      map[string][]*poolConn
	total     int       // connections in idle
	lastSweep time.Time // see sweepLocked
}

// poolConn is a unix connection of the pool. It is used by one goroutine
// at a time.
type poolConn struct {
	conn     net.Conn
	raw      syscall.RawConn // conn's, when it has one; see exchange
	deadline time.Time       // the deadline set on conn; zero for none
	used     time.Time       // when it was last put back

	// The state of rawStep, kept here (with rawStepFn, made once) so
	// that an exchange allocates nothing.
	ack       [512]byte // the acknowledgement, normally whole
	frame     []byte    // the frame to write
	wrote     bool      // the write was tried
	written   int       // bytes of frame written
	n         int       // bytes of ack read
	werr      error
	rerr      error
	rawStepFn func(fd uintptr) bool
}

// newPoolConn wraps a freshly dialed connection.
func newPoolConn(conn net.Conn) *poolConn {
	pc := &poolConn{conn: conn}
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			pc.raw = raw
			pc.rawStepFn = pc.rawStep
		}
	}
	return pc
}

// unixPool is the process-wide pool used by Send and the tracker.
var unixPool = &connPool{idle: make(map[string][]*poolConn)}

// CloseIdleConnections closes the unix connections that Send keeps open
// for reuse. Later sends open new ones as needed.
func CloseIdleConnections() {
	unixPool.closeIdle()
}

// get returns an idle connection to path, or nil.
func (p *connPool) get(path string, now time.Time) *poolConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.idle[path]
	for len(list) > 0 {
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		p.total--
		if now.Sub(pc.used) < poolIdleTimeout {
			p.idle[path] = list // an empty list stays, for put to reuse
			return pc
		}
		_ = pc.conn.Close()
	}
	delete(p.idle, path)
	return nil
}

// put returns a healthy connection for reuse; now is about the time.
func (p *connPool) put(path string, pc *poolConn, now time.Time) {
	pc.used = now
	p.mu.Lock()
	expired := p.sweepLocked(now)
	list := p.idle[path]
	if len(list) >= poolMaxIdlePerDest || p.total >= poolMaxIdle {
		p.mu.Unlock()
		closeAll(expired)
		_ = pc.conn.Close()
		return
	}
	p.idle[path] = append(list, pc)
	p.total++
	p.mu.Unlock()
	closeAll(expired)
}

// sweepLocked takes out the connections idle past poolIdleTimeout, at
// most once a second, so that connections to peers never sent to again
// (a caller that came and went, each with its own socket) do not keep
// their descriptors open. p.mu must be held; the caller closes what it
// returns.
func (p *connPool) sweepLocked(now time.Time) []*poolConn {
	if now.Sub(p.lastSweep) < time.Second {
		return nil
	}
	p.lastSweep = now
	var expired []*poolConn
	for path, list := range p.idle {
		kept := list[:0]
		for _, pc := range list {
			if now.Sub(pc.used) < poolIdleTimeout {
				kept = append(kept, pc)
			} else {
				expired = append(expired, pc)
			}
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(p.idle, path)
		} else {
			p.idle[path] = kept
		}
	}
	p.total -= len(expired)
	return expired
}

// closeAll closes the connections in pcs.
func closeAll(pcs []*poolConn) {
	for _, pc := range pcs {
		_ = pc.conn.Close()
	}
}

// closeIdle closes every idle connection.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = make(map[string][]*poolConn)
	p.total = 0
	p.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			_ = pc.conn.Close()
		}
	}
}

// send delivers frame (made by marshalFrame) to the socket at path and
// reads the acknowledgement, reusing an idle connection when there is
// one. A frame is resent on a fresh connection only if the reused one
// failed before the peer could have read it: the write failed, or the peer
// closed the connection with our frame unread (ECONNRESET). It is never
// sent twice otherwise.
func (p *connPool) send(path string, frame []byte, maxFrame int, ioTimeout time.Duration) error {
	now := monoNow()
	if pc := p.get(path, now); pc != nil {
		err := pc.exchange(frame, maxFrame, ioTimeout, now)
		switch {
		case err == nil:
			p.put(path, pc, now)
			return nil
		case errors.Is(err, ErrRefused):
			// The peer answered: the connection is fine.
			p.put(path, pc, now)
			return err
		case errors.Is(err, errNotDelivered):
			_ = pc.conn.Close() // fall through to a fresh connection
		default:
			_ = pc.conn.Close()
			p.forget(path)
			return err
		}
	}
	conn, err := net.DialTimeout("unix", path, ioTimeout)
	if err != nil {
		p.forget(path)
		return fmt.Errorf("%w: dial %s: %w", ErrUnreachable, path, err)
	}
	pc := newPoolConn(conn)
	now = monoNow()
	err = pc.exchange(frame, maxFrame, ioTimeout, now)
	if err == nil || errors.Is(err, ErrRefused) {
		p.put(path, pc, now)
		return err
	}
	_ = conn.Close()
	p.forget(path)
	return err
}

// forget drops the entry of path if it holds no connection, so that the
// paths of peers gone for good do not pile up.
func (p *connPool) forget(path string) {
	p.mu.Lock()
	if list, ok := p.idle[path]; ok && len(list) == 0 {
		delete(p.idle, path)
	}
	p.mu.Unlock()
}

// errNotDelivered marks exchange failures after which the peer cannot have
// read the frame.
var errNotDelivered = errors.New("acomm: frame not delivered")

// notDelivered reports whether err, from writing a frame or reading its
// acknowledgement, proves the peer did not read the frame: the write
// failed with nothing written (EPIPE, ECONNRESET), or the peer closed with
// our data unread, which Linux reports to the reader as ECONNRESET.
func notDelivered(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}
