package acomm_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listenFile returns a unix socket listening at path, as a file to hand
// over, and closes the listener that made it when the test ends.
func listenFile(t *testing.T, path string) *os.File {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	l.SetUnlinkOnClose(false)
	f, err := l.File()
	require.NoError(t, err)
	require.NoError(t, l.Close()) // f holds a duplicate of the socket
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// inherit turns a handed-over socket file into a listener, as a process
// that inherited it does.
func inherit(t testing.TB, f *os.File) *net.UnixListener {
	t.Helper()
	l, err := net.FileListener(f)
	require.NoError(t, err)
	ul, ok := l.(*net.UnixListener)
	require.True(t, ok)
	return ul
}

func TestServerOnHandedListener(t *testing.T) {
	path := sockPath(t, "s.sock")
	f := listenFile(t, path)
	tr := newTracker(t, nil, 5*time.Second)

	srv := acomm.NewServer(path, tr)
	srv.Handle("work", srvEcho)
	require.NoError(t, srv.Configure(acomm.WithListener(inherit(t, f))))
	require.NoError(t, srv.Start())
	resp, err := tr.Call(context.Background(), srv.URL(), "work", "x")
	require.NoError(t, err)
	var s string
	require.NoError(t, resp.UnmarshalResult(&s))
	assert.Equal(t, "x", s)
	srv.Stop()
	_, err = os.Lstat(path)
	assert.NoError(t, err, "the handed socket's file belongs to whoever made it")
}

func TestTrackerOnHandedListener(t *testing.T) {
	path := sockPath(t, "t.sock")
	f := listenFile(t, path)
	tr, err := acomm.NewTracker(path, nil, 5*time.Second)
	require.NoError(t, err)
	require.NoError(t, tr.Configure(acomm.WithListener(inherit(t, f))))
	require.NoError(t, tr.Start())
	srv := srvStart(t, tr)
	srv.Handle("work", srvEcho)
	_, err = tr.Call(context.Background(), srv.URL(), "work", 1)
	require.NoError(t, err)
	tr.Stop()
	err = tr.Start()
	require.ErrorIs(t, err, acomm.ErrListen, "a handed listener serves one run")
}

func TestHandedListenerRefusals(t *testing.T) {
	f := listenFile(t, sockPath(t, "a.sock"))
	srv := acomm.NewServer(sockPath(t, "b.sock"), nil)
	require.NoError(t, srv.Configure(acomm.WithListener(inherit(t, f))))
	require.ErrorIs(t, srv.Start(), acomm.ErrInvalidArgument, "address and path differ")
	require.ErrorIs(t, srv.Configure(acomm.WithListener(nil)), acomm.ErrInvalidArgument)
}

// Environment of a socket-activated process (sd_listen_fds(3)).
const (
	listenPIDEnv = "LISTEN_PID"
	listenFDsEnv = "LISTEN_FDS"
)

// runActivatedServer plays a service started by systemd socket
// activation: it serves a Server on the socket passed as fd 3, the way
// systemd passes it, and echoes until killed.
func runActivatedServer(path string) int {
	if os.Getenv(listenPIDEnv) != strconv.Itoa(os.Getpid()) || os.Getenv(listenFDsEnv) != "1" {
		fmt.Println("error: not socket-activated")
		return 1
	}
	const firstFD = 3 // SD_LISTEN_FDS_START
	l, err := net.FileListener(os.NewFile(firstFD, "activated"))
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	srv := acomm.NewServer(path, nil)
	srv.Handle("work", srvEcho)
	if err := srv.Configure(acomm.WithListener(l.(*net.UnixListener))); err == nil {
		err = srv.Start()
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready")
	select {}
}

// TestServerSocketActivated starts a service the way systemd does: the
// listening socket as fd 3, LISTEN_FDS=1 and LISTEN_PID set to the
// service's own pid (a shell sets it and execs the service, keeping its
// pid).
func TestServerSocketActivated(t *testing.T) {
	path := sockPath(t, "act.sock")
	f := listenFile(t, path)
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperRoleEnv+"=activated-server", helperSockEnv+"="+path, listenFDsEnv+"=1")
	cmd.ExtraFiles = []*os.File{f}
	startHelperCmd(t, cmd)

	tr := newTracker(t, nil, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := tr.Call(ctx, unixURL(path), "work", "activated")
	require.NoError(t, err)
	var s string
	require.NoError(t, resp.UnmarshalResult(&s))
	assert.Equal(t, "activated", s)
	_, err = tr.Call(ctx, unixURL(path), acomm.PingTask, nil)
	require.NoError(t, err)
}
