package acomm_test

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/require"
)

// shortDir returns a fresh short temp dir (unix socket paths are limited to
// 107 bytes, and t.TempDir() paths can be long) removed at cleanup.
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "at")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// sockPath returns a socket path named name in a fresh short dir.
func sockPath(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(shortDir(t), name)
}

// newTracker returns a started tracker with its socket in a short temp
// dir, stopped at cleanup.
func newTracker(t testing.TB, streamURL *url.URL, timeout time.Duration, opts ...acomm.Option) *acomm.Tracker {
	t.Helper()
	tr, err := acomm.NewTracker(sockPath(t, "t.sock"), streamURL, timeout)
	require.NoError(t, err)
	require.NoError(t, tr.Configure(opts...))
	require.NoError(t, tr.Start())
	t.Cleanup(tr.Stop)
	return tr
}

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

// waitFor fails t if ch is not closed or sent on within d. It is a bound
// on a channel wait, not a sleep.
func waitFor[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out after %s waiting for %s", d, what)
		var zero T
		return zero
	}
}

// unixURL returns the unix URL of a socket path.
func unixURL(path string) *url.URL {
	return &url.URL{Scheme: "unix", Path: path}
}
