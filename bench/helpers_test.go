package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// echoPayload is the body every echo benchmark sends and expects back: 100
// bytes of JSON, roughly the size of a small acomm request.
var echoPayload = []byte(`{"id":"7f9c2ba4-e88f-4d6b-9a1c-3e0b5d2f8a61","task":"echo","args":{"msg":"hello, acomm bench!!!!!"}}`)

// ioDeadline bounds every raw socket used by the benchmarks so that a bug
// makes a benchmark fail rather than hang. It is set once per connection,
// so it costs nothing per round trip.
const ioDeadline = 10 * time.Minute

// maxFrame is the largest frame the raw echo server accepts.
const maxFrame = 1 << 20

// socketPath returns the path of a unix socket in a fresh short temporary
// directory (unix socket paths must stay under 108 bytes, so the
// directory is made with the short pattern "ab"). The directory is removed
// when tb's cleanups run, after everything registered later.
func socketPath(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "ab")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

// listenUnix listens on a fresh unix socket and returns the listener and
// its path. The listener is closed at cleanup (closing twice is harmless).
func listenUnix(tb testing.TB) (*net.UnixListener, string) {
	tb.Helper()
	path := socketPath(tb)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l, path
}

// dialUnix dials path and closes the connection at cleanup.
func dialUnix(tb testing.TB, path string) net.Conn {
	tb.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(ioDeadline))
	tb.Cleanup(func() { c.Close() })
	return c
}

// serveConns runs an accept loop on l and calls handle in a new goroutine
// for each accepted connection. handle must return once its connection is
// closed. At cleanup the listener and every connection still open are
// closed, and serveConns waits for the accept loop and every handler to
// return, so no goroutine outlives the benchmark.
func serveConns(tb testing.TB, l net.Listener, handle func(net.Conn)) {
	tb.Helper()
	var (
		mu     sync.Mutex
		conns  = map[net.Conn]struct{}{}
		closed bool
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return // listener closed
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			conns[c] = struct{}{}
			wg.Add(1)
			mu.Unlock()
			c.SetDeadline(time.Now().Add(ioDeadline))
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				handle(c)
			}()
		}
	}()
	tb.Cleanup(func() {
		l.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// goServe runs serve (a blocking Serve call of some RPC server) in a
// goroutine. At cleanup it calls stop and waits for serve to return.
func goServe(tb testing.TB, serve func() error, stop func()) {
	tb.Helper()
	done := make(chan error, 1)
	go func() { done <- serve() }()
	tb.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			tb.Error("server did not stop within 30s")
		}
	})
}

// benchContext returns a context that is cancelled at cleanup, for the RPC
// clients that take one. It is shared by all calls so that no per-call
// timer is paid; the go test -timeout bounds a hang.
func benchContext(tb testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	return ctx
}

// checkEcho reports whether got is the echo payload.
func checkEcho(got []byte) error {
	if !bytes.Equal(got, echoPayload) {
		return fmt.Errorf("bad echo: got %d bytes %q", len(got), got)
	}
	return nil
}

// appendFrame appends a frame (4-byte big-endian length, then body) to dst.
func appendFrame(dst, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

var errFrameTooBig = errors.New("frame too big")
