package acomm_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind. When the
// test binary is re-executed as a helper process (see faults_test.go), it
// plays that part instead.
func TestMain(m *testing.M) {
	if role := os.Getenv(helperRoleEnv); role != "" {
		os.Exit(runHelperProcess(role))
	}
	goleak.VerifyTestMain(m)
}
