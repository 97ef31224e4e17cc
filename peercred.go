package acomm

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
)

// Who may connect. A listening socket is first guarded by its file mode
// (DefaultSocketMode: owner and group) and its directory's. WithPeerCheck
// adds a check of the connecting process's credentials, read from the
// kernel (SO_PEERCRED on Linux) before a byte of the connection is read;
// refused connections are logged and closed.
//
// The check is off by default: the file mode already decides who can
// connect, and a credential check on by default would refuse peers that
// the mode admits through a supplementary group (SO_PEERCRED reports only
// the primary group), breaking the common set-up of services that run as
// different users sharing a group. Turn it on with SameUser (or AllowUIDs
// and AllowGIDs) where the set of peers is known.

// PeerCred is the identity of the process at the other end of a unix
// connection, as the kernel recorded it when it connected.
type PeerCred struct {
	PID int32
	UID uint32
	GID uint32
}

// ErrPeerRefused is the error a peer check returns to refuse a peer.
var ErrPeerRefused = errors.New("acomm: peer refused")

// ErrPeerCredUnsupported reports a peer check on a platform where the
// kernel does not report peer credentials.
var ErrPeerCredUnsupported = errors.New("acomm: peer credentials not supported on this platform")

// PeerCheck decides whether a peer may use a connection; a non-nil error
// refuses it.
type PeerCheck func(PeerCred) error

// WithPeerCheck makes listeners (UnixListener, Tracker, Server) accept only
// peers that check admits. See SameUser, AllowUIDs and AllowGIDs.
func WithPeerCheck(check PeerCheck) Option {
	return option("WithPeerCheck", forAll, func(c *config) error {
		if check == nil {
			return fmt.Errorf("%w: nil peer check", ErrInvalidArgument)
		}
		if !peerCredSupported {
			return ErrPeerCredUnsupported
		}
		c.peerCheck = check
		return nil
	})
}

// SameUser admits peers running as this process's user, and root.
func SameUser() PeerCheck {
	return AllowUIDs(uint32(os.Getuid()), 0)
}

// AllowUIDs admits peers running as one of uids.
func AllowUIDs(uids ...uint32) PeerCheck {
	uids = slices.Clone(uids)
	return func(c PeerCred) error {
		if slices.Contains(uids, c.UID) {
			return nil
		}
		return fmt.Errorf("%w: uid %d not allowed", ErrPeerRefused, c.UID)
	}
}

// AllowGIDs admits peers whose primary group is one of gids.
func AllowGIDs(gids ...uint32) PeerCheck {
	gids = slices.Clone(gids)
	return func(c PeerCred) error {
		if slices.Contains(gids, c.GID) {
			return nil
		}
		return fmt.Errorf("%w: gid %d not allowed", ErrPeerRefused, c.GID)
	}
}

// AnyOf admits a peer that any of checks admits.
func AnyOf(checks ...PeerCheck) PeerCheck {
	return func(c PeerCred) error {
		err := fmt.Errorf("%w: no check admitted uid %d gid %d", ErrPeerRefused, c.UID, c.GID)
		for _, check := range checks {
			if check(c) == nil {
				return nil
			}
		}
		return err
	}
}

// checkPeer applies the configured check to conn.
func checkPeer(conn net.Conn, check PeerCheck) (PeerCred, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return PeerCred{}, fmt.Errorf("%w: not a unix connection", ErrPeerRefused)
	}
	cred, err := peerCred(uc)
	if err != nil {
		return PeerCred{}, fmt.Errorf("%w: read credentials: %w", ErrPeerRefused, err)
	}
	return cred, check(cred)
}
