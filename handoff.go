package acomm

import (
	"fmt"
	"net"
	"path/filepath"
	"sync/atomic"
)

// handedListener is a listening socket given to a component with
// WithListener. It is shared by the copies of the config that carries it.
type handedListener struct {
	l    *net.UnixListener
	used atomic.Bool // a listener has served on it (and closed it)
}

// WithListener makes a Server, Tracker or UnixListener serve on l, a unix
// socket that is already listening, instead of creating its socket: one
// handed over by systemd socket activation (LISTEN_FDS; see
// github.com/coreos/go-systemd/v22/activation), or inherited from a
// parent process (net.FileListener). l's address must be the component's
// socket path, so that the URLs it gives out name it. Stop closes l but
// leaves its socket file alone, since it belongs to whoever created it; a
// component stopped once cannot serve on l again (Start fails with
// ErrListen).
func WithListener(l *net.UnixListener) Option {
	return option("WithListener", forAll, func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil listener", ErrInvalidArgument)
		}
		c.handed = &handedListener{l: l}
		return nil
	})
}

// listen returns the listener ul serves on: the one handed to it with
// WithListener, or a new socket at its path. handed reports the former,
// whose socket file ul must not remove.
func (ul *UnixListener) listen() (l *net.UnixListener, handed bool, err error) {
	h := ul.cfg.handed
	if h == nil {
		l, err := listenUnix(ul.socketPath, ul.cfg.socketMode)
		return l, false, err
	}
	addr := h.l.Addr().String()
	if filepath.Clean(addr) != filepath.Clean(ul.socketPath) {
		return nil, false, fmt.Errorf("%w: the handed listener's address %q is not the socket path %q", ErrInvalidArgument, addr, ul.socketPath)
	}
	if !h.used.CompareAndSwap(false, true) {
		return nil, false, fmt.Errorf("%w: the handed listener on %s was closed by an earlier Stop", ErrListen, addr)
	}
	h.l.SetUnlinkOnClose(false)
	return h.l, true, nil
}
