package acomm

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPoolSweepsIdleConnections checks that connections to peers never
// used again are closed once idle past the timeout, by the next put, and
// that the pool's total stays bounded.
func TestPoolSweepsIdleConnections(t *testing.T) {
	p := &connPool{idle: make(map[string][]*poolConn)}
	start := time.Now()
	var conns []net.Conn
	for i := 0; i < 5; i++ {
		a, b := net.Pipe()
		t.Cleanup(func() { _ = b.Close() })
		conns = append(conns, a)
		p.put(string(rune('a'+i)), &poolConn{conn: a}, start)
	}
	require.Equal(t, 5, p.total)

	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	p.put("fresh", &poolConn{conn: a}, start.Add(poolIdleTimeout+2*time.Second))
	assert.Equal(t, 1, p.total, "the five idle ones were swept")
	assert.Len(t, p.idle, 1)
	for _, c := range conns {
		_, err := c.Write([]byte{1})
		assert.Error(t, err, "swept connections are closed")
	}
	assert.NotNil(t, p.get("fresh", start.Add(poolIdleTimeout+3*time.Second)))
	assert.Equal(t, 0, p.total)
	p.closeIdle()
}
