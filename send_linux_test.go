//go:build linux

package acomm_test

import (
	"context"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A service that no longer accepts, whose listen backlog is full, is
// unreachable at once: a unix connect never waits on Linux (see
// dialUnix), so Send must neither hang nor wait out a timeout.
func TestSendToFullBacklogFailsAtOnce(t *testing.T) {
	path := filepath.Join(shortDir(t), "full.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}))
	require.NoError(t, syscall.Listen(fd, 0)) // never accepted
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			_ = c.Close()
		}
	})
	for full := false; !full; {
		require.Less(t, len(held), 64, "the backlog never filled")
		c, err := net.Dial("unix", path)
		if err != nil {
			require.ErrorIs(t, err, syscall.EAGAIN)
			full = true
			continue
		}
		held = append(held, c)
	}
	for _, send := range []struct {
		name string
		ctx  context.Context
	}{{"no deadline", context.Background()}, {"a deadline", ctxWithTimeout(t, time.Minute)}} {
		t.Run(send.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- acomm.SendContext(send.ctx, unixURL(path), &acomm.Response{ID: "x"}) }()
			err := waitFor(t, done, 10*time.Second, "Send to a full backlog")
			require.ErrorIs(t, err, acomm.ErrUnreachable)
			assert.ErrorIs(t, err, syscall.EAGAIN)
		})
	}
}

// ctxWithTimeout returns a context that ends after d, cancelled at cleanup.
func ctxWithTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
