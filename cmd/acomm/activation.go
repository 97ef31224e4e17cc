package main

import (
	"net"

	"github.com/coreos/go-systemd/v22/activation"
)

// bridgeListener returns the listener of acomm bridge: the socket systemd
// passed (socket activation: LISTEN_FDS and LISTEN_PID), or a new one on
// listen. activated reports the former. Exactly one of them must be there.
func bridgeListener(listen string) (ln net.Listener, activated bool, err error) {
	inherited, err := activation.Listeners() // also unsets LISTEN_* for children
	if err != nil {
		return nil, false, usageErr("socket activation: %w", err)
	}
	var sockets []net.Listener
	for _, l := range inherited {
		if l != nil { // not a stream socket
			sockets = append(sockets, l)
		}
	}
	switch {
	case len(sockets) > 1:
		closeAll(sockets)
		return nil, false, usageErr("socket activation passed %d sockets; acomm bridge serves one", len(sockets))
	case len(sockets) == 1 && listen != "":
		closeAll(sockets)
		return nil, false, usageErr("--listen %s: this bridge is socket-activated and serves the socket systemd passed; drop --listen", listen)
	case len(sockets) == 1:
		return sockets[0], true, nil
	case listen == "":
		return nil, false, usageErr("--listen is required, unless systemd passes the socket (socket activation)")
	}
	ln, err = net.Listen("tcp", listen)
	if err != nil {
		return nil, false, usageErr("listen on %s: %w", listen, err)
	}
	return ln, false, nil
}

// closeAll closes every listener of ls.
func closeAll(ls []net.Listener) {
	for _, l := range ls {
		_ = l.Close()
	}
}
