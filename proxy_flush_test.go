package acomm_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gatedSource yields its steps one by one, each only once the test has
// sent on gate: a stream that pauses between writes.
type gatedSource struct {
	steps [][]byte
	gate  chan struct{}
	cur   []byte
}

func (g *gatedSource) Read(p []byte) (int, error) {
	if len(g.cur) == 0 {
		if len(g.steps) == 0 {
			return 0, io.EOF
		}
		<-g.gate
		g.cur, g.steps = g.steps[0], g.steps[1:]
	}
	n := copy(p, g.cur)
	g.cur = g.cur[n:]
	return n, nil
}

func (g *gatedSource) Close() error { return nil }

// TestProxyStreamDeliversBeforePause checks that what a stream has
// written reaches the HTTP client while the stream pauses, both small
// writes (flushed at once) and bulk ones (whose flush may be delayed).
func TestProxyStreamDeliversBeforePause(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(acomm.ProxyStreamHandler))
	t.Cleanup(hs.Close)
	base, err := url.Parse(hs.URL + "/stream")
	require.NoError(t, err)
	tr := newTracker(t, base, time.Minute)

	bulk := bytes.Repeat([]byte("0123456789abcdef"), 128<<10/16)
	steps := [][]byte{[]byte("small"), bulk, []byte("tiny"), bulk[:100<<10], []byte("end")}
	src := &gatedSource{steps: steps, gate: make(chan struct{})}
	u, err := tr.NewStreamUnix("", src)
	require.NoError(t, err)
	pu, err := tr.ProxyStreamHTTPURL(u)
	require.NoError(t, err)

	// The response headers go out with the first data: release it.
	go func() { src.gate <- struct{}{} }()
	resp, err := http.Get(pu.String())
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	for i, step := range steps {
		if i > 0 {
			src.gate <- struct{}{} // release one step; the next one waits
		}
		got := make([]byte, len(step))
		done := make(chan error, 1)
		go func() {
			_, err := io.ReadFull(resp.Body, got)
			done <- err
		}()
		require.NoError(t, waitFor(t, done, 5*time.Second, "step delivered while the stream pauses"), "step %d", i)
		assert.Equal(t, step, got, "step %d", i)
	}
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Empty(t, rest)
}
