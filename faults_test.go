package acomm_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Process faults, with real processes: the test binary re-executes itself
// in a helper role, and the helper is killed mid-flight.

const (
	helperRoleEnv = "ACOMM_TEST_HELPER_ROLE"
	helperSockEnv = "ACOMM_TEST_HELPER_SOCK"
)

// runHelperProcess plays a helper role and returns the exit status.
func runHelperProcess(role string) int {
	path := os.Getenv(helperSockEnv)
	switch role {
	case "ack-then-die":
		// A service that acknowledges one request and dies before
		// answering it.
		ul := acomm.NewUnixListener(path, 0)
		if err := ul.Start(); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("ready")
		conn := ul.NextConn()
		req := &acomm.Request{}
		if err := acomm.UnmarshalConnData(conn, req); err != nil {
			return 1
		}
		_ = acomm.SendConnData(conn, &acomm.Response{ID: req.ID})
		os.Exit(3) // no Stop, no response: the socket file stays behind
	case "tracker":
		// A tracker that runs until it is killed.
		tr, err := acomm.NewTracker(path, nil, time.Minute)
		if err == nil {
			err = tr.Start()
		}
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("ready")
		select {}
	case "activated-server":
		return runActivatedServer(path) // handoff_test.go
	}
	return 2
}

// startHelper runs the test binary in role with sock, waits until it says
// ready, and returns its command.
func startHelper(t *testing.T, role, sock string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperRoleEnv+"="+role, helperSockEnv+"="+sock)
	return startHelperCmd(t, cmd)
}

// startHelperCmd starts cmd, a helper process, and waits until it says
// ready.
func startHelperCmd(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready", strings.TrimSpace(line))
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return cmd
}

func TestFaultServiceAcksThenDies(t *testing.T) {
	sock := sockPath(t, "svc.sock")
	helper := startHelper(t, "ack-then-die", sock)
	tr := newTracker(t, nil, time.Minute)

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := tr.Call(ctx, unixURL(sock), "work", nil)
	require.Error(t, err, "the call must end, not hang")
	assert.True(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, acomm.ErrTimeout), err)
	assert.Equal(t, 0, tr.NumRequests())

	var ee *exec.ExitError
	require.ErrorAs(t, helper.Wait(), &ee)
	assert.Equal(t, 3, ee.ExitCode())

	t.Run("tracked request times out with the sentinel", func(t *testing.T) {
		sock := sockPath(t, "svc.sock")
		startHelper(t, "ack-then-die", sock)
		ch := make(chan result, 1)
		req := newRequest(t, tr, "work", nil, ch)
		require.NoError(t, tr.TrackRequest(req, 100*time.Millisecond))
		require.NoError(t, acomm.Send(unixURL(sock), req), "acknowledged before dying")
		got := waitFor(t, ch, 5*time.Second, "timeout")
		assert.ErrorIs(t, got.resp.Error, acomm.ErrTimeout)
	})
}

func TestFaultTrackerRestartsOnSamePath(t *testing.T) {
	sock := sockPath(t, "tracker.sock")
	helper := startHelper(t, "tracker", sock)
	require.NoError(t, helper.Process.Kill())
	_ = helper.Wait()
	_, err := os.Stat(sock)
	require.NoError(t, err, "a killed process leaves its socket file")

	tr, err := acomm.NewTracker(sock, nil, time.Minute)
	require.NoError(t, err)
	require.NoError(t, tr.Start(), "start over a stale socket")
	t.Cleanup(tr.Stop)
	svc := newService(t, echo)
	ch := make(chan result, 1)
	req := newRequest(t, tr, "echo", "after restart", ch)
	require.NoError(t, tr.TrackRequest(req, 0))
	require.NoError(t, acomm.Send(svc.ul.URL(), req))
	got := waitFor(t, ch, 5*time.Second, "response after restart")
	require.NoError(t, got.resp.Error)

	t.Run("a live tracker's socket is not taken over", func(t *testing.T) {
		other, err := acomm.NewTracker(sock, nil, 0)
		require.NoError(t, err)
		assert.ErrorIs(t, other.Start(), acomm.ErrAddrInUse)
	})
	t.Run("a live process's socket is not taken over", func(t *testing.T) {
		sock := filepath.Join(shortDir(t), "live.sock")
		startHelper(t, "tracker", sock)
		other, err := acomm.NewTracker(sock, nil, 0)
		require.NoError(t, err)
		assert.ErrorIs(t, other.Start(), acomm.ErrAddrInUse)
	})
}
