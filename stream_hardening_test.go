package acomm_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// originalStream serves data once on a unix socket the way the original
// acomm (2016) does: a socket named by ioutil.TempFile (digits), io.Copy
// of the source, then close, without reading what the reader sent. It
// returns the stream's URL.
func originalStream(t *testing.T, data string) *url.URL {
	t.Helper()
	path := filepath.Join(shortDir(t), "4815162342")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(c, strings.NewReader(data))
		_ = c.Close()
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return &url.URL{Scheme: "unix", Path: path}
}

// TestStreamFromOriginalPeer reads streams served by an original acomm
// peer: directly, through the HTTP stream proxy, and through a tracker's
// own handler. Each ends cleanly after its last byte.
func TestStreamFromOriginalPeer(t *testing.T) {
	data := strings.Repeat("original ", 10000)
	t.Run("unix", func(t *testing.T) {
		var buf bytes.Buffer
		require.NoError(t, acomm.Stream(&buf, originalStream(t, data)))
		assert.Equal(t, data, buf.String())
	})
	t.Run("http proxy", func(t *testing.T) {
		_, tr := newProxyTracker(t)
		pu, err := tr.ProxyStreamHTTPURL(originalStream(t, data))
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, acomm.Stream(&buf, pu))
		assert.Equal(t, data, buf.String())
	})
	t.Run("tracker handler", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(nil)
		base, err := url.Parse("http://" + srv.Listener.Addr().String() + "/stream")
		require.NoError(t, err)
		tr := newTracker(t, base, 0)
		srv.Config.Handler = http.HandlerFunc(tr.ProxyStreamHandler)
		srv.Start()
		t.Cleanup(srv.Close)
		pu, err := tr.ProxyStreamHTTPURL(originalStream(t, data))
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, acomm.Stream(&buf, pu))
		assert.Equal(t, data, buf.String())
	})
}

// stallSource yields first, then blocks until released; its Close does
// not interrupt the Read.
type stallSource struct {
	first   string
	sent    bool
	release chan struct{}
	reading chan struct{} // closed when the blocking Read begins
	once    sync.Once
}

func newStallSource(first string) *stallSource {
	return &stallSource{first: first, release: make(chan struct{}), reading: make(chan struct{})}
}

func (s *stallSource) Read(p []byte) (int, error) {
	if !s.sent {
		s.sent = true
		return copy(p, s.first), nil
	}
	s.once.Do(func() { close(s.reading) })
	<-s.release
	return 0, io.EOF
}

func (s *stallSource) Close() error { return nil }

// stallingStream makes a stream of a stallSource on tr, read over unix or
// http; the source is released at cleanup.
func stallingStream(t *testing.T, tr *acomm.Tracker, over string) (*stallSource, *url.URL) {
	t.Helper()
	src := newStallSource("first ")
	t.Cleanup(func() { close(src.release) })
	u, err := tr.NewStreamUnix("", src)
	require.NoError(t, err)
	if over == "http" {
		u, err = tr.ProxyStreamHTTPURL(u)
		require.NoError(t, err)
	}
	return src, u
}

// TestStreamReadTimeout checks that a reader whose producer stalls gets
// ErrStreamBroken after the read timeout, over unix and over HTTP, with
// what came before the stall, and that StreamContext ends with its ctx.
func TestStreamReadTimeout(t *testing.T) {
	_, tr := newProxyTracker(t)
	for _, over := range []string{"unix", "http"} {
		t.Run(over, func(t *testing.T) {
			_, u := stallingStream(t, tr, over)
			var buf bytes.Buffer
			// Long enough for "first " to arrive on a loaded machine.
			err := acomm.StreamContext(context.Background(), &buf, u, acomm.WithStreamReadTimeout(time.Second))
			require.ErrorIs(t, err, acomm.ErrStreamBroken)
			assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
			assert.Equal(t, "first ", buf.String())
		})
		t.Run(over+" context", func(t *testing.T) {
			src, u := stallingStream(t, tr, over)
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				<-src.reading
				cancel()
			}()
			err := acomm.StreamContext(ctx, io.Discard, u)
			assert.ErrorIs(t, err, context.Canceled)
		})
	}
	t.Run("slow but steady is not a stall", func(t *testing.T) {
		pr, pw := io.Pipe()
		u, err := tr.NewStreamUnix("", pr)
		require.NoError(t, err)
		go func() {
			// Longer in all than the timeout, each gap well within it
			// even on a loaded machine.
			for i := 0; i < 8; i++ {
				_, _ = io.WriteString(pw, "tick ")
				<-time.After(100 * time.Millisecond)
			}
			_ = pw.Close()
		}()
		var buf bytes.Buffer
		require.NoError(t, acomm.StreamContext(context.Background(), &buf, u, acomm.WithStreamReadTimeout(500*time.Millisecond)))
		assert.Equal(t, strings.Repeat("tick ", 8), buf.String())
	})
}

// lockedSource is a source whose Close waits for its Read to return, as a
// source that guards both with one lock does.
type lockedSource struct {
	*stallSource
	mu sync.Mutex
}

func (s *lockedSource) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stallSource.Read(p)
}

func (s *lockedSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return nil
}

// TestStopWithStuckSource checks that a stream whose source's Close does
// not interrupt its Read, or waits for it, holds the tracker's Stop only
// for a bounded time.
func TestStopWithStuckSource(t *testing.T) {
	for name, newSource := range map[string]func() (io.ReadCloser, *stallSource){
		"Close does not interrupt Read": func() (io.ReadCloser, *stallSource) {
			s := newStallSource("x")
			return s, s
		},
		"Close waits for Read": func() (io.ReadCloser, *stallSource) {
			s := newStallSource("x")
			return &lockedSource{stallSource: s}, s
		},
	} {
		t.Run(name, func(t *testing.T) {
			tr, err := acomm.NewTracker(sockPath(t, "t.sock"), nil, 0)
			require.NoError(t, err)
			require.NoError(t, tr.Start())
			src, stall := newSource()
			t.Cleanup(func() { close(stall.release) })
			u, err := tr.NewStreamUnix("", src)
			require.NoError(t, err)
			conn, err := net.Dial("unix", u.Path)
			require.NoError(t, err)
			t.Cleanup(func() { _ = conn.Close() })
			waitFor(t, stall.reading, 5*time.Second, "the source's blocking read")

			stopped := make(chan struct{})
			go func() {
				tr.Stop()
				close(stopped)
			}()
			waitFor(t, stopped, 10*time.Second, "Stop with a stuck source")
		})
	}
}

// TestMaxStreams checks the bound on streams waiting for their readers.
func TestMaxStreams(t *testing.T) {
	assert.Equal(t, 128, acomm.DefaultMaxStreams)
	tr := newTracker(t, nil, 0, acomm.WithMaxStreams(2))
	var urls []*url.URL
	for i := 0; i < 2; i++ {
		u, err := tr.NewStreamUnix("", io.NopCloser(strings.NewReader("s")))
		require.NoError(t, err)
		urls = append(urls, u)
	}
	src := newCloseRecorder(strings.NewReader("refused"))
	_, err := tr.NewStreamUnix("", src)
	require.ErrorIs(t, err, acomm.ErrTooManyStreams)
	var buf bytes.Buffer
	require.NoError(t, acomm.Stream(&buf, urls[0]))
	_, err = tr.NewStreamUnix("", io.NopCloser(strings.NewReader("s")))
	assert.NoError(t, err, "a stream read no longer counts")
	assert.ErrorIs(t, acomm.NewUnixListener("x", 0).Configure(acomm.WithMaxStreams(-1)), acomm.ErrInvalidArgument)
}

// TestStreamHTTPErrorsWrapSentinels checks the errors of Stream over HTTP.
func TestStreamHTTPErrorsWrapSentinels(t *testing.T) {
	ps, tr := newProxyTracker(t)
	_, pu := proxyURL(t, tr, io.NopCloser(strings.NewReader("once")))
	require.NoError(t, acomm.Stream(io.Discard, pu))
	err := acomm.Stream(io.Discard, pu)
	assert.ErrorIs(t, err, acomm.ErrHTTPStatus)
	assert.ErrorIs(t, err, acomm.ErrStreamNotAnnounced, "served already")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + ln.Addr().String() + "/stream"
	require.NoError(t, ln.Close())
	u, _ := url.Parse(dead)
	assert.ErrorIs(t, acomm.Stream(io.Discard, u), acomm.ErrUnreachable)

	other := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(other.Close)
	u, _ = url.Parse(other.URL)
	err = acomm.Stream(io.Discard, u)
	assert.ErrorIs(t, err, acomm.ErrHTTPStatus)
	assert.NotErrorIs(t, err, acomm.ErrStreamNotAnnounced, "any 404 is not ours")
	_ = ps
}

// TestProxyStreamHandlerOutlivesWriteTimeout serves a stream through the
// package's handler for longer than the server's write timeout: each
// write is bounded instead, as the bridge's were.
func TestProxyStreamHandlerOutlivesWriteTimeout(t *testing.T) {
	const serverTimeout = 30 * time.Millisecond
	srv := httptest.NewUnstartedServer(http.HandlerFunc(acomm.ProxyStreamHandler))
	srv.Config.WriteTimeout = serverTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	base, err := url.Parse(srv.URL + "/stream")
	require.NoError(t, err)
	tr := newTracker(t, base, 0)
	pr, pw := io.Pipe()
	t.Cleanup(func() { _ = pw.Close() })
	_, pu := proxyURL(t, tr, pr)
	go func() {
		_, _ = io.WriteString(pw, "first ")
		<-time.After(5 * serverTimeout)
		_, _ = io.WriteString(pw, "second")
		_ = pw.Close()
	}()
	var buf bytes.Buffer
	require.NoError(t, acomm.Stream(&buf, pu))
	assert.Equal(t, "first second", buf.String())
}

// TestAnnouncementsPerTracker checks that each tracker owns its
// announcements: another tracker announcing the same socket takes nothing
// from the first, and a stopped tracker's announcements go with it.
func TestAnnouncementsPerTracker(t *testing.T) {
	producer := newTracker(t, nil, 0)
	u, err := producer.NewStreamUnix("", io.NopCloser(strings.NewReader("shared")))
	require.NoError(t, err)
	base, _ := url.Parse("http://example.invalid/stream")
	a := newTracker(t, base, 0)
	b := newTracker(t, base, 0)
	pa, err := a.ProxyStreamHTTPURL(u)
	require.NoError(t, err)
	_, err = b.ProxyStreamHTTPURL(u)
	require.NoError(t, err)

	head := func(tr *acomm.Tracker) int {
		rec := httptest.NewRecorder()
		tr.ProxyStreamHandler(rec, httptest.NewRequest(http.MethodHead, pa.RequestURI(), nil))
		return rec.Code
	}
	assert.Equal(t, http.StatusOK, head(a), "b's announcement did not replace a's")
	assert.Equal(t, http.StatusOK, head(b))
	assert.Equal(t, http.StatusNotFound, head(newTracker(t, base, 0)), "not announced by a third")

	b.Stop()
	assert.Equal(t, http.StatusNotFound, head(b), "gone with its tracker")
	rec := httptest.NewRecorder()
	a.ProxyStreamHandler(rec, httptest.NewRequest(http.MethodGet, pa.RequestURI(), nil))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "shared", rec.Body.String())
}
