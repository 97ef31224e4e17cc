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
	// poolMaxIdlePerDest bounds the idle connections kept per socket.
	poolMaxIdlePerDest = 64
	// poolIdleTimeout is how long an idle connection is kept; well below
	// the receivers' DefaultIdleTimeout, so we drop it before they do.
	poolIdleTimeout = 30 * time.Second
)

// connPool holds idle connections by socket path.
type connPool struct {
	mu   sync.Mutex // protects idle
	idle map[string][]pooledConn
}

// pooledConn is an idle connection and when it was last used.
type pooledConn struct {
	conn net.Conn
	used time.Time
}

// unixPool is the process-wide pool used by Send and the tracker.
var unixPool = &connPool{idle: make(map[string][]pooledConn)}

// CloseIdleConnections closes the unix connections that Send keeps open
// for reuse. Later sends open new ones as needed.
func CloseIdleConnections() {
	unixPool.closeIdle()
}

// get returns an idle connection to path, or nil.
func (p *connPool) get(path string) net.Conn {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.idle[path]
	for len(list) > 0 {
		pc := list[len(list)-1]
		list = list[:len(list)-1]
		if now.Sub(pc.used) < poolIdleTimeout {
			p.setList(path, list)
			return pc.conn
		}
		_ = pc.conn.Close()
	}
	p.setList(path, list)
	return nil
}

// setList stores list for path; p.mu must be held.
func (p *connPool) setList(path string, list []pooledConn) {
	if len(list) == 0 {
		delete(p.idle, path)
		return
	}
	p.idle[path] = list
}

// put returns a healthy connection for reuse.
func (p *connPool) put(path string, conn net.Conn) {
	p.mu.Lock()
	list := p.idle[path]
	if len(list) >= poolMaxIdlePerDest {
		p.mu.Unlock()
		_ = conn.Close()
		return
	}
	p.idle[path] = append(list, pooledConn{conn: conn, used: time.Now()})
	p.mu.Unlock()
}

// closeIdle closes every idle connection.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = make(map[string][]pooledConn)
	p.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			_ = pc.conn.Close()
		}
	}
}

// send delivers payload as one frame to the socket at path and reads the
// acknowledgement, reusing an idle connection when there is one. A frame
// is resent on a fresh connection only if the reused one failed before the
// peer could have read it: the write failed, or the peer closed the
// connection with our frame unread (ECONNRESET). It is never sent twice
// otherwise.
func (p *connPool) send(path string, payload any, maxFrame int, ioTimeout time.Duration) error {
	if conn := p.get(path); conn != nil {
		err := exchange(conn, payload, maxFrame, ioTimeout)
		switch {
		case err == nil:
			p.put(path, conn)
			return nil
		case errors.Is(err, ErrRefused):
			// The peer answered: the connection is fine.
			p.put(path, conn)
			return err
		case errors.Is(err, errNotDelivered):
			_ = conn.Close() // fall through to a fresh connection
		default:
			_ = conn.Close()
			return err
		}
	}
	conn, err := net.DialTimeout("unix", path, ioTimeout)
	if err != nil {
		return fmt.Errorf("acomm: dial %s: %w", path, err)
	}
	err = exchange(conn, payload, maxFrame, ioTimeout)
	if err == nil || errors.Is(err, ErrRefused) {
		p.put(path, conn)
		return err
	}
	_ = conn.Close()
	return err
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
