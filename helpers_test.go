package acomm_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/acommgo/acomm/internal/acommtest"
	"github.com/stretchr/testify/require"
)

// Helpers shared with the module's other test packages (internal/acommtest).
var (
	shortDir   = acommtest.ShortDir
	sockPath   = acommtest.SockPath
	newTracker = acommtest.NewTracker
)

// newListener returns a started UnixListener in a short temp dir, stopped
// at cleanup.
func newListener(t testing.TB, acceptLimit int, opts ...acomm.Option) *acomm.UnixListener {
	t.Helper()
	ul := acomm.NewUnixListener(sockPath(t, "l.sock"), acceptLimit)
	require.NoError(t, ul.Configure(opts...))
	require.NoError(t, ul.Start())
	t.Cleanup(func() { ul.Stop(0) })
	return ul
}

// waitFor fails t if nothing arrives on ch within d (acommtest.WaitFor).
func waitFor[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	return acommtest.WaitFor(t, ch, d, what)
}

// unixURL returns the unix URL of a socket path.
func unixURL(path string) *url.URL {
	return &url.URL{Scheme: "unix", Path: path}
}
