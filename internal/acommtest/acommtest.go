// Package acommtest holds the test helpers shared by the test packages of
// this module: short socket directories, started trackers and bounded
// channel waits.
package acommtest

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/require"
)

// ShortDir returns a fresh short temp dir (unix socket paths are limited
// to 107 bytes, and t.TempDir() paths can be long), removed at cleanup.
func ShortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "at")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// SockPath returns a socket path named name in a fresh short dir.
func SockPath(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(ShortDir(t), name)
}

// NewTracker returns a started tracker with its socket in a short temp
// dir, configured with opts and stopped at cleanup.
func NewTracker(t testing.TB, streamURL *url.URL, timeout time.Duration, opts ...acomm.Option) *acomm.Tracker {
	t.Helper()
	tr, err := acomm.NewTracker(SockPath(t, "t.sock"), streamURL, timeout)
	require.NoError(t, err)
	require.NoError(t, tr.Configure(opts...))
	require.NoError(t, tr.Start())
	t.Cleanup(tr.Stop)
	return tr
}

// WaitFor fails t if nothing arrives on ch (or it is not closed) within d.
// It is a bound on a channel wait, not a sleep.
func WaitFor[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
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
