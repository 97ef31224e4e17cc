//go:build !linux

package acomm

import "net"

const peerCredSupported = false

// peerCred is not available on this platform.
func peerCred(*net.UnixConn) (PeerCred, error) {
	return PeerCred{}, ErrPeerCredUnsupported
}
