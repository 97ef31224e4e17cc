package bridge_test

import (
	"testing"
	"time"

	"github.com/acommgo/acomm/internal/acommtest"
	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Helpers shared with the module's other test packages (internal/acommtest).
var (
	shortDir   = acommtest.ShortDir
	sockPath   = acommtest.SockPath
	newTracker = acommtest.NewTracker
)

// waitFor fails t if nothing arrives on ch within d (acommtest.WaitFor).
func waitFor[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	return acommtest.WaitFor(t, ch, d, what)
}
