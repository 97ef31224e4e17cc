package acomm_test

import (
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dialUnix connects to the socket at path, closed at cleanup.
func dialUnix(t testing.TB, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// drainConns finishes every further connection of ul and closes the
// returned channel once NextConn returns nil (the accept loop has ended).
func drainConns(ul *acomm.UnixListener) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := ul.NextConn(); c != nil; c = ul.NextConn() {
			ul.DoneConn(c)
		}
	}()
	return done
}

func TestUnixListenerStartPermissions(t *testing.T) {
	tests := []struct {
		name     string
		opts     []acomm.Option
		wantMode os.FileMode // 0: only check that others cannot write
	}{
		{name: "default"},
		{name: "owner only", opts: []acomm.Option{acomm.WithSocketMode(0o600)}, wantMode: 0o600},
		{name: "group", opts: []acomm.Option{acomm.WithSocketMode(0o660)}, wantMode: 0o660},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := shortDir(t)
			dir := filepath.Join(base, "a", "b")
			path := filepath.Join(dir, "s.sock")
			ul := acomm.NewUnixListener(path, 0)
			require.NoError(t, ul.Configure(tc.opts...))
			require.NoError(t, ul.Start())
			t.Cleanup(func() { ul.Stop(0) })

			for _, d := range []string{filepath.Join(base, "a"), dir} {
				fi, err := os.Stat(d)
				require.NoError(t, err)
				assert.True(t, fi.IsDir())
				assert.Zero(t, fi.Mode().Perm()&0o007, "%s is %v: others must have no access", d, fi.Mode().Perm())
			}
			fi, err := os.Lstat(path)
			require.NoError(t, err)
			assert.NotZero(t, fi.Mode()&os.ModeSocket, "not a socket: %v", fi.Mode())
			assert.Zero(t, fi.Mode().Perm()&0o002, "socket is world-writable: %v", fi.Mode().Perm())
			if tc.wantMode != 0 {
				assert.Equal(t, tc.wantMode, fi.Mode().Perm())
			}
		})
	}
}

func TestUnixListenerConfigure(t *testing.T) {
	ul := acomm.NewUnixListener(sockPath(t, "s.sock"), 0)
	require.ErrorIs(t, ul.Configure(acomm.WithSocketMode(os.ModeSetuid|0o600)), acomm.ErrInvalidArgument)
	require.NoError(t, ul.Configure(nil, acomm.WithSocketMode(0o600)))
	require.NoError(t, ul.Start())
	t.Cleanup(func() { ul.Stop(0) })
	require.ErrorIs(t, ul.Configure(acomm.WithSocketMode(0o666)), acomm.ErrAlreadyStarted)
}

func TestUnixListenerStaleSocket(t *testing.T) {
	path := sockPath(t, "s.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	l.SetUnlinkOnClose(false)
	require.NoError(t, l.Close())
	require.FileExists(t, path, "the stale socket file must outlive its listener")

	ul := acomm.NewUnixListener(path, 0)
	require.NoError(t, ul.Start())
	t.Cleanup(func() { ul.Stop(0) })

	c := dialUnix(t, path)
	conn := ul.NextConn()
	require.NotNil(t, conn)
	ul.DoneConn(conn)
	_ = c.Close()
}

func TestUnixListenerLiveSocket(t *testing.T) {
	first := newListener(t, 0)
	second := acomm.NewUnixListener(first.Addr(), 0)
	err := second.Start()
	require.ErrorIs(t, err, acomm.ErrAddrInUse)
	second.Stop(0) // harmless: it never started

	// The first listener still owns the socket.
	require.FileExists(t, first.Addr())
	_ = dialUnix(t, first.Addr())
}

func TestUnixListenerRegularFileAtPath(t *testing.T) {
	path := sockPath(t, "s.sock")
	require.NoError(t, os.WriteFile(path, []byte("keep me"), 0o600))

	ul := acomm.NewUnixListener(path, 0)
	require.Error(t, ul.Start())
	ul.Stop(0)
	assert.Nil(t, ul.NextConn())

	got, err := os.ReadFile(path)
	require.NoError(t, err, "the regular file must not be removed")
	assert.Equal(t, "keep me", string(got))
}

func TestUnixListenerPathLength(t *testing.T) {
	tests := []struct {
		length  int
		tooLong bool
	}{
		{length: 100},
		{length: 107},
		{length: 108, tooLong: true},
		{length: 200, tooLong: true},
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.length), func(t *testing.T) {
			dir := shortDir(t)
			path := dir + "/" + strings.Repeat("s", tc.length-len(dir)-1)
			require.Len(t, path, tc.length)
			ul := acomm.NewUnixListener(path, 0)
			err := ul.Start()
			t.Cleanup(func() { ul.Stop(0) })
			if tc.tooLong {
				require.ErrorIs(t, err, acomm.ErrSocketPathTooLong)
				assert.NoFileExists(t, path)
				return
			}
			require.NoError(t, err)
			_ = dialUnix(t, path)
		})
	}
}

func TestUnixListenerEmptyPath(t *testing.T) {
	ul := acomm.NewUnixListener("", 0)
	require.ErrorIs(t, ul.Start(), acomm.ErrInvalidArgument)
}

func TestUnixListenerStartTwice(t *testing.T) {
	ul := newListener(t, 0)
	require.NoError(t, ul.Start())

	c := dialUnix(t, ul.Addr())
	conn := ul.NextConn()
	require.NotNil(t, conn)
	_, err := c.Write([]byte("x"))
	require.NoError(t, err)
	buf := make([]byte, 1)
	_, err = io.ReadFull(conn, buf)
	require.NoError(t, err)
	ul.DoneConn(conn)
}

func TestUnixListenerRestart(t *testing.T) {
	ul := newListener(t, 0)
	ul.Stop(0)
	require.NoFileExists(t, ul.Addr())
	require.Nil(t, ul.NextConn())

	require.NoError(t, ul.Start())
	c := dialUnix(t, ul.Addr())
	conn := ul.NextConn()
	require.NotNil(t, conn)
	ul.DoneConn(conn)
	_ = c.Close()
	ul.Stop(0)
	require.NoFileExists(t, ul.Addr())
}

func TestUnixListenerAcceptLimit(t *testing.T) {
	for _, limit := range []int{1, 3} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			ul := newListener(t, limit)
			for i := 0; i < limit; i++ {
				c := dialUnix(t, ul.Addr())
				conn := ul.NextConn()
				require.NotNil(t, conn, "connection %d", i)
				ul.DoneConn(conn)
				_ = c.Close()
			}
			require.Nil(t, ul.NextConn(), "NextConn after the accept limit")
			require.Nil(t, ul.NextConn(), "NextConn stays nil")
			assert.NoFileExists(t, ul.Addr())
			_, err := net.Dial("unix", ul.Addr())
			require.Error(t, err, "dial after the accept limit")
		})
	}
}

// A listener that reached its accept limit must not remove, at Stop, a
// socket that another listener has since created at the same path.
func TestUnixListenerStopKeepsReplacement(t *testing.T) {
	first := newListener(t, 1)
	c := dialUnix(t, first.Addr())
	conn := first.NextConn()
	require.NotNil(t, conn)
	first.DoneConn(conn)
	_ = c.Close()
	require.Nil(t, first.NextConn())

	second := acomm.NewUnixListener(first.Addr(), 0)
	require.NoError(t, second.Start())
	t.Cleanup(func() { second.Stop(0) })

	first.Stop(0)
	require.FileExists(t, second.Addr(), "Stop removed another listener's socket")
	_ = dialUnix(t, second.Addr())
}

func TestUnixListenerNextConnNotRunning(t *testing.T) {
	t.Run("never started", func(t *testing.T) {
		ul := acomm.NewUnixListener(sockPath(t, "s.sock"), 0)
		assert.Nil(t, ul.NextConn())
	})
	t.Run("stopped", func(t *testing.T) {
		ul := newListener(t, 0)
		ul.Stop(0)
		assert.Nil(t, ul.NextConn())
	})
	t.Run("stopped while waiting", func(t *testing.T) {
		ul := newListener(t, 0)
		got := make(chan net.Conn)
		go func() { got <- ul.NextConn() }()
		ul.Stop(0)
		assert.Nil(t, waitFor(t, got, 2*time.Second, "NextConn to return"))
	})
}

func TestUnixListenerStopWaitsForDoneConn(t *testing.T) {
	ul := newListener(t, 0)
	c := dialUnix(t, ul.Addr())
	conn := ul.NextConn()
	require.NotNil(t, conn)
	acceptDone := drainConns(ul)

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		ul.Stop(10 * time.Second)
	}()
	// Stop closes the accept loop before it waits for connections.
	waitFor(t, acceptDone, 2*time.Second, "accept loop to end")

	// The connection in use stays open while Stop waits.
	_, err := c.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(conn, buf)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(buf))
	select {
	case <-stopped:
		t.Fatal("Stop returned while a connection was in use")
	default:
	}

	start := time.Now()
	ul.DoneConn(conn)
	waitFor(t, stopped, 2*time.Second, "Stop to return after DoneConn")
	assert.Less(t, time.Since(start), time.Second)
	assert.NoFileExists(t, ul.Addr())

	// DoneConn closed the connection: the client sees EOF.
	_, err = c.Read(buf)
	assert.ErrorIs(t, err, io.EOF)

	ul.DoneConn(conn) // twice: harmless
	ul.DoneConn(nil)
	ul.Stop(0) // twice: harmless
}

// A Stop called while another Stop waits for a connection returns only
// when the first one has finished.
func TestUnixListenerConcurrentStop(t *testing.T) {
	ul := newListener(t, 0)
	_ = dialUnix(t, ul.Addr())
	conn := ul.NextConn()
	require.NotNil(t, conn)
	acceptDone := drainConns(ul)

	firstDone := make(chan struct{})
	go func() {
		defer close(firstDone)
		ul.Stop(10 * time.Second)
	}()
	waitFor(t, acceptDone, 2*time.Second, "accept loop to end")

	var connDone atomic.Bool
	secondDone := make(chan bool)
	go func() {
		ul.Stop(0)
		secondDone <- connDone.Load()
	}()
	select {
	case <-secondDone:
		t.Fatal("second Stop returned while the first waits for a connection")
	case <-firstDone:
		t.Fatal("first Stop returned while a connection was in use")
	default:
	}
	connDone.Store(true)
	ul.DoneConn(conn)
	assert.True(t, waitFor(t, secondDone, 2*time.Second, "second Stop"), "second Stop returned before the connection was done")
	waitFor(t, firstDone, 2*time.Second, "first Stop")
	assert.NoFileExists(t, ul.Addr())
}

func TestUnixListenerStopTimeout(t *testing.T) {
	ul := newListener(t, 0)
	_ = dialUnix(t, ul.Addr())
	conn := ul.NextConn()
	require.NotNil(t, conn)

	readErr := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 1))
		readErr <- err // the handler never calls DoneConn
	}()

	const timeout = 100 * time.Millisecond
	start := time.Now()
	ul.Stop(timeout)
	elapsed := time.Since(start)
	assert.GreaterOrEqual(t, elapsed, timeout)
	assert.Less(t, elapsed, timeout+time.Second)

	err := waitFor(t, readErr, 2*time.Second, "the handler's Read to fail")
	require.ErrorIs(t, err, net.ErrClosed)
	assert.NoFileExists(t, ul.Addr())
	ul.DoneConn(conn) // late DoneConn: harmless
}

func TestUnixListenerStopNotStarted(t *testing.T) {
	ul := acomm.NewUnixListener(sockPath(t, "s.sock"), 0)
	ul.Stop(time.Second)
	ul.Stop(0)
	ul.DoneConn(nil)
	assert.Nil(t, ul.NextConn())
}

func TestUnixListenerStopRemovesSocket(t *testing.T) {
	ul := newListener(t, 0)
	require.FileExists(t, ul.Addr())
	ul.Stop(0)
	assert.NoFileExists(t, ul.Addr())
	_, err := net.Dial("unix", ul.Addr())
	assert.Error(t, err)
}

func TestUnixListenerAddrURL(t *testing.T) {
	abs := sockPath(t, "s.sock")
	rel := "rel.sock"
	relAbs, err := filepath.Abs(rel)
	require.NoError(t, err)

	tests := []struct {
		name, path, want string
	}{
		{name: "absolute", path: abs, want: abs},
		{name: "relative", path: rel, want: relAbs},
		{name: "unclean", path: filepath.Dir(abs) + "/./x/../s.sock", want: abs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ul := acomm.NewUnixListener(tc.path, 0)
			assert.Equal(t, tc.want, ul.Addr())
			assert.Equal(t, &url.URL{Scheme: "unix", Path: tc.want}, ul.URL())
			assert.Equal(t, "unix://"+tc.want, ul.URL().String())
		})
	}
}

// Stop removes the socket file Start made, and nothing else: once that
// file was removed (an operator, a cleaner) and the path reused, what is
// there now is not the listener's.
func TestUnixListenerStopRemovesOnlyItsOwnFile(t *testing.T) {
	tests := []struct {
		name  string
		place func(t *testing.T, path string)
	}{
		{"another listener's socket", func(t *testing.T, path string) {
			other := acomm.NewUnixListener(path, 0)
			require.NoError(t, other.Start())
			t.Cleanup(func() { other.Stop(0) })
		}},
		{"a regular file", func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, []byte("precious"), 0o600))
		}},
		{"a directory", func(t *testing.T, path string) {
			require.NoError(t, os.Mkdir(path, 0o700))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ul := newListener(t, 0)
			require.NoError(t, os.Remove(ul.Addr()))
			tt.place(t, ul.Addr())
			ul.Stop(0)
			_, err := os.Lstat(ul.Addr())
			assert.NoError(t, err, "Stop removed what is at its path now")
		})
	}
	t.Run("its own file", func(t *testing.T) {
		ul := newListener(t, 0)
		ul.Stop(0)
		assert.NoFileExists(t, ul.Addr())
	})
}
