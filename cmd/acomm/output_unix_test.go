//go:build unix

package main

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStreamOutputTargets checks what -o writes to: stdout for -, a
// symbolic link's target (the link stays), an existing file with its
// permissions kept, a device or named pipe in place.
func TestStreamOutputTargets(t *testing.T) {
	tr, _ := startServices(t)
	newStream := func(t *testing.T) string {
		u, err := tr.NewStreamUnix("", io.NopCloser(strings.NewReader("streamed content")))
		require.NoError(t, err)
		return u.String()
	}
	dir := shortDir(t)
	tests := []struct {
		name   string
		setup  func(t *testing.T) (out string, check func(t *testing.T, r result))
		stdout string
	}{
		{"stdout", func(t *testing.T) (string, func(*testing.T, result)) {
			return "-", func(*testing.T, result) {}
		}, "streamed content"},
		{"new file", func(t *testing.T) (string, func(*testing.T, result)) {
			out := filepath.Join(dir, "new")
			return out, func(t *testing.T, _ result) {
				fi, err := os.Stat(out)
				require.NoError(t, err)
				assert.Equal(t, 0o666&^os.FileMode(umask()), fi.Mode().Perm())
			}
		}, ""},
		{"existing file keeps its mode", func(t *testing.T) (string, func(*testing.T, result)) {
			out := filepath.Join(dir, "private")
			require.NoError(t, os.WriteFile(out, []byte("old"), 0o600))
			return out, func(t *testing.T, _ result) {
				fi, err := os.Stat(out)
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
				b, _ := os.ReadFile(out)
				assert.Equal(t, "streamed content", string(b))
			}
		}, ""},
		{"symbolic link", func(t *testing.T) (string, func(*testing.T, result)) {
			target := filepath.Join(dir, "target")
			require.NoError(t, os.WriteFile(target, []byte("old"), 0o640))
			link := filepath.Join(dir, "link")
			require.NoError(t, os.Symlink(target, link))
			return link, func(t *testing.T, _ result) {
				fi, err := os.Lstat(link)
				require.NoError(t, err)
				assert.Equal(t, os.ModeSymlink, fi.Mode().Type(), "the link stays a link")
				b, _ := os.ReadFile(target)
				assert.Equal(t, "streamed content", string(b))
				fi, err = os.Stat(target)
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
			}
		}, ""},
		{"device", func(t *testing.T) (string, func(*testing.T, result)) {
			if _, err := os.Stat("/dev/null"); err != nil {
				t.Skip("no /dev/null")
			}
			return "/dev/null", func(t *testing.T, _ result) {
				fi, err := os.Stat("/dev/null")
				require.NoError(t, err)
				assert.Equal(t, os.ModeDevice|os.ModeCharDevice, fi.Mode().Type())
			}
		}, ""},
		{"named pipe", func(t *testing.T) (string, func(*testing.T, result)) {
			fifo := filepath.Join(dir, "fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Skip("no named pipes:", err)
			}
			got := make(chan string, 1)
			go func() {
				f, err := os.Open(fifo)
				if err != nil {
					got <- err.Error()
					return
				}
				defer f.Close()
				b, _ := io.ReadAll(f)
				got <- string(b)
			}()
			return fifo, func(t *testing.T, _ result) {
				assert.Equal(t, "streamed content", <-got)
				fi, err := os.Stat(fifo)
				require.NoError(t, err)
				assert.Equal(t, os.ModeNamedPipe, fi.Mode().Type())
			}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, check := tt.setup(t)
			r := runAcomm(t, "stream", "-o", out, newStream(t))
			require.Equal(t, exitOK, r.code, r.stderr)
			assert.Equal(t, tt.stdout, r.stdout)
			check(t, r)
			leftovers, _ := filepath.Glob(filepath.Join(dir, ".*.acomm-*"))
			assert.Empty(t, leftovers)
		})
	}
	t.Run("a failed stream leaves a link's target alone", func(t *testing.T) {
		target := filepath.Join(dir, "kept")
		require.NoError(t, os.WriteFile(target, []byte("old"), 0o600))
		link := filepath.Join(dir, "kept-link")
		require.NoError(t, os.Symlink(target, link))
		r := runAcomm(t, "stream", "-o", link, "unix://"+filepath.Join(dir, "none.sock"))
		assert.Equal(t, exitNoAnswer, r.code, r.stderr)
		b, _ := os.ReadFile(target)
		assert.Equal(t, "old", string(b))
		leftovers, _ := filepath.Glob(filepath.Join(dir, ".*.acomm-*"))
		assert.Empty(t, leftovers)
	})
}

// TestStreamOutputRefusals checks that -o refuses what it cannot write
// as asked (exit 2): a symbolic link that leads nowhere (renaming a file
// over it would replace the link), and a named pipe nobody reads within
// --timeout.
func TestStreamOutputRefusals(t *testing.T) {
	dir := shortDir(t)
	dangling := filepath.Join(dir, "dangling")
	require.NoError(t, os.Symlink(filepath.Join(dir, "nowhere"), dangling))
	loop := filepath.Join(dir, "loop")
	require.NoError(t, os.Symlink(loop, loop))
	for _, link := range []string{dangling, loop} {
		r := runAcomm(t, "stream", "-o", link, "unix://"+filepath.Join(dir, "none.sock"))
		assert.Equal(t, exitUsage, r.code, r.stderr)
		assert.Contains(t, r.stderr, "leads nowhere")
		fi, err := os.Lstat(link)
		require.NoError(t, err)
		assert.Equal(t, os.ModeSymlink, fi.Mode().Type(), "the link stays a link")
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no named pipes:", err)
	}
	r := runAcomm(t, "stream", "--timeout", "100ms", "-o", fifo, "unix://"+filepath.Join(dir, "none.sock"))
	assert.Equal(t, exitUsage, r.code, r.stderr)
	assert.Contains(t, r.stderr, "no reader within 100ms")
}

// TestCreateOutputStdoutByName checks that -o naming the file stdout
// already is (/dev/stdout, or a file stdout appends to) writes to stdout
// as -o - does, rather than replacing that file.
func TestCreateOutputStdoutByName(t *testing.T) {
	dir := shortDir(t)
	logFile := filepath.Join(dir, "app.log")
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	_, err = f.WriteString("precious\n")
	require.NoError(t, err)
	saved := os.Stdout
	os.Stdout = f
	t.Cleanup(func() { os.Stdout = saved })
	link := filepath.Join(dir, "stdout")
	require.NoError(t, os.Symlink(logFile, link))
	for _, path := range []string{logFile, link} {
		o, err := createOutput(context.Background(), path, time.Second)
		require.NoError(t, err)
		assert.True(t, o.direct && o.f == f, "%s is written as stdout", path)
	}
}

// TestNotAStreamSocket checks that an address that is a datagram or
// seqpacket socket, or a named pipe or a device, is bad usage (exit 2),
// said as such.
func TestNotAStreamSocket(t *testing.T) {
	dir := shortDir(t)
	dgram := filepath.Join(dir, "dgram.sock")
	dl, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: dgram, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = dl.Close() })
	packet := filepath.Join(dir, "packet.sock")
	if pl, err := net.Listen("unixpacket", packet); err == nil {
		t.Cleanup(func() { _ = pl.Close() })
	} else {
		packet = ""
	}
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"call a datagram socket", []string{"call", dgram, "t"}, "is not a stream socket"},
		{"call a seqpacket socket", []string{"call", packet, "t"}, "is not a stream socket"},
		{"stream from a datagram socket", []string{"stream", dgram}, "is not a stream socket"},
		{"call a named pipe", []string{"call", fifo, "t"}, "it is a named pipe (FIFO)"},
		{"call a device", []string{"call", "/dev/null", "t"}, "it is a device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.args[1] == "" {
				t.Skip("no seqpacket sockets here")
			}
			r := runAcomm(t, tt.args...)
			require.Equal(t, exitUsage, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.want)
		})
	}
}

// TestInterruptedTwiceExits checks that a command interrupted while it
// cannot wind down (here reading its args from a named pipe nobody
// writes) exits at a second signal, with 128 + that signal's number.
func TestInterruptedTwiceExits(t *testing.T) {
	dir := shortDir(t)
	fifo := filepath.Join(dir, "args")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no named pipes:", err)
	}
	cmd := exec.Command(binary, "call", "unix://"+filepath.Join(dir, "none.sock"), "upper", "@"+fifo)
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	// A writer's non-blocking open succeeds once the command has the pipe
	// open to read, past its signal set-up; held open and silent, it
	// keeps the command reading.
	var w *os.File
	require.Eventually(t, func() bool {
		fd, err := syscall.Open(fifo, syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return false
		}
		w = os.NewFile(uintptr(fd), fifo)
		return true
	}, 10*time.Second, 5*time.Millisecond, "the command opens its args")
	t.Cleanup(func() { _ = w.Close() })
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	// Apart, or the kernel may merge them into one pending signal.
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-done:
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, 130, ee.ExitCode())
	case <-time.After(10 * time.Second):
		t.Fatal("still running after two SIGINTs")
	}
}

func TestNotifyContextSecondSignal(t *testing.T) {
	codes := make(chan int, 1)
	saved := exitNow
	exitNow = func(code int) { codes <- code }
	t.Cleanup(func() { exitNow = saved })
	ctx, stop := notifyContext(context.Background())
	defer stop()
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT))
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the first signal did not end the context")
	}
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	select {
	case code := <-codes:
		assert.Equal(t, 128+int(syscall.SIGTERM), code)
	case <-time.After(5 * time.Second):
		t.Fatal("the second signal did not exit")
	}
}

// TestCallOutputStdout checks that call -o - puts the stream alone on
// stdout, the result going to stderr.
func TestCallOutputStdout(t *testing.T) {
	_, srv := startServices(t)
	r := runAcomm(t, "call", "-o", "-", srv.URL().String(), "text.blob")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, "streamed content", r.stdout)
	assert.Contains(t, r.stderr, `"blob"`)
}
