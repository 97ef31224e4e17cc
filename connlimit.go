package acomm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// DefaultMaxConns is how many connections a listener (UnixListener, and
// the sockets of a Server or Tracker) keeps open at once unless set with
// WithMaxConns. A sender keeps one connection per Send in flight (and
// pools them afterwards), so a busy peer's burst of concurrent calls can
// open thousands; this leaves room for that, while a flood of idle
// connections (each may stay DefaultIdleTimeout, holding a descriptor, a
// goroutine and its buffer) stays within some tens of MiB and well inside
// the descriptor limit Go raises itself to (the hard limit, usually
// 524288 under systemd).
const DefaultMaxConns = 4096

// Refusing a connection over the bound: a Server or Tracker reads the
// first frame of it and acknowledges it with a refusal matching
// ErrTooManyConns, so the sender learns why (closing a connection with its
// frame unread would only reset it). At most maxRefusers such refusals run
// at once, each within refuseWait; beyond that a connection is closed
// unread. A plain UnixListener, whose connections need not carry frames,
// closes them unread.
const (
	maxRefusers = 16
	refuseWait  = time.Second
)

// refuseFrames acknowledges the first frame on conn with refusal, all
// within refuseWait, and closes conn.
func refuseFrames(conn net.Conn, cfg *config, refusal error) {
	defer conn.Close()
	if conn.SetDeadline(time.Now().Add(min(cfg.ioTimeout, refuseWait))) != nil {
		return
	}
	body, err := readFrame(conn, cfg.maxFrameSize, nil)
	var fse *FrameSizeError
	if err != nil && !errors.As(err, &fse) {
		return
	}
	var id struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &id) // the ack names the frame's ID if it has one
	if ack, err := appendFrame(nil, &Response{ID: id.ID, Error: refusal}, false, 0, baseAckFeatures); err == nil {
		_, _ = conn.Write(ack)
	}
}

// refuseConn closes conn, a connection over the bound; a listener that
// serves frames acknowledges its first frame with ErrTooManyConns first.
func (ul *UnixListener) refuseConn(conn net.Conn) {
	ul.refused.Add(1)
	if !ul.frames {
		_ = conn.Close()
		return
	}
	ul.mu.Lock()
	if len(ul.refusing) >= maxRefusers || !ul.running {
		ul.mu.Unlock()
		_ = conn.Close()
		return
	}
	ul.refusing[conn] = struct{}{}
	ul.refuseWG.Add(1)
	ul.mu.Unlock()
	go func() {
		defer ul.refuseWG.Done()
		refuseFrames(conn, &ul.cfg, fmt.Errorf("%w: %d open", ErrTooManyConns, ul.cfg.maxConns))
		ul.mu.Lock()
		delete(ul.refusing, conn)
		ul.mu.Unlock()
	}()
}

// stopRefusing closes the connections being refused and waits for their
// goroutines.
func (ul *UnixListener) stopRefusing() {
	ul.mu.Lock()
	for c := range ul.refusing {
		_ = c.Close()
	}
	ul.mu.Unlock()
	ul.refuseWG.Wait()
}
