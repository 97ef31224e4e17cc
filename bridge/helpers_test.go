package bridge_test

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// shortDir returns a fresh short temp dir (unix socket paths are limited
// to 107 bytes) removed at cleanup.
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ab")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// sockPath returns a socket path named name in a fresh short dir.
func sockPath(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(shortDir(t), name)
}

// newTracker returns a started tracker, stopped at cleanup.
func newTracker(t testing.TB, streamURL *url.URL, timeout time.Duration, opts ...acomm.Option) *acomm.Tracker {
	t.Helper()
	tr, err := acomm.NewTracker(sockPath(t, "t.sock"), streamURL, timeout)
	require.NoError(t, err)
	require.NoError(t, tr.Configure(opts...))
	require.NoError(t, tr.Start())
	t.Cleanup(tr.Stop)
	return tr
}

// waitFor fails t if nothing arrives on ch within d.
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
