package acomm

import (
	"context"
	"net"
	"path/filepath"
	"testing"
)

// BenchmarkDialUnix compares dialUnix with what it replaced on Linux,
// net.Dialer.DialContext with no deadline; each op dials, closes, and
// has the listener accept and close the connection.
func BenchmarkDialUnix(b *testing.B) {
	path := filepath.Join(b.TempDir(), "d.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	b.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	ctx := context.Background()
	dials := []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"dialUnix", func() (net.Conn, error) { return dialUnix(ctx, path, 0) }},
		{"Dialer.DialContext", func() (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}
	for _, d := range dials {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, err := d.dial()
				if err != nil {
					b.Fatal(err)
				}
				_ = c.Close()
			}
		})
	}
}
