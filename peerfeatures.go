package acomm

import (
	"net/url"
	"slices"
)

// PeerFeatures returns the features (see the README's wire format) that
// the receiver at dest listed in the acknowledgement this process last
// took account of: for a unix socket, the one that made the connection
// kept to it, so nil for a peer that is sent each frame on a connection
// of its own (such as the original acomm) or that nothing was sent to
// yet; for an http(s) receiver, such as an acomm bridge, its latest. It
// lets tools show what a peer and this process agreed on.
func PeerFeatures(dest *url.URL) []string {
	if dest == nil {
		return nil
	}
	return slices.Clone(featuresOf(dest))
}

// featuresOf returns the features that the receiver at dest listed (see
// PeerFeatures), not to be modified.
func featuresOf(dest *url.URL) []string {
	if dest.Scheme == "unix" {
		return peerFeatures(unixPath(dest))
	}
	httpFeatures.Lock()
	defer httpFeatures.Unlock()
	return httpFeatures.m[httpPeerKey(dest)]
}
