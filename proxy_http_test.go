package acomm_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// proxyServer is an httptest server of ProxyStreamHandler that reports
// handler calls that have returned.
type proxyServer struct {
	*httptest.Server
	returned chan struct{} // receives when a handler call returns (up to 16 unread)
}

func newProxyServer(t testing.TB) *proxyServer {
	t.Helper()
	ps := &proxyServer{returned: make(chan struct{}, 16)}
	ps.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { // runs on panic too
			select {
			case ps.returned <- struct{}{}:
			default:
			}
		}()
		acomm.ProxyStreamHandler(w, r)
	}))
	t.Cleanup(ps.Close)
	return ps
}

// newProxyTracker returns a proxy server and a started tracker whose HTTP
// stream URL is that server.
func newProxyTracker(t testing.TB, opts ...acomm.Option) (*proxyServer, *acomm.Tracker) {
	t.Helper()
	ps := newProxyServer(t)
	base, err := url.Parse(ps.URL + "/stream")
	require.NoError(t, err)
	return ps, newTracker(t, base, 0, opts...)
}

// proxyURL makes a stream of src and returns its proxy URL.
func proxyURL(t testing.TB, tr *acomm.Tracker, src io.ReadCloser) (unixURL, httpURL *url.URL) {
	t.Helper()
	u, err := tr.NewStreamUnix("", src)
	require.NoError(t, err)
	pu, err := tr.ProxyStreamHTTPURL(u)
	require.NoError(t, err)
	return u, pu
}

// rawProxyURL is the proxy server's URL with the addr query parameter set
// to addr, unchecked.
func rawProxyURL(ps *proxyServer, addr string) string {
	return ps.URL + "/stream?" + url.Values{"addr": {addr}}.Encode()
}

// requireJSONError checks that resp is an error with status code and a
// JSON body with a non-empty "error" string.
func requireJSONError(t *testing.T, resp *http.Response, code int) {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, code, resp.StatusCode, "body: %s", body)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var e map[string]any
	require.NoError(t, json.Unmarshal(body, &e), "body: %s", body)
	msg, ok := e["error"].(string)
	assert.True(t, ok, "no error string in %s", body)
	assert.NotEmpty(t, msg)
}

func do(t *testing.T, c *http.Client, method, u string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func TestProxyStreamHandlerServesOnce(t *testing.T) {
	ps, tr := newProxyTracker(t)
	data := randomBytes(t, 4<<20)
	src := newCloseRecorder(bytes.NewReader(data))
	u, pu := proxyURL(t, tr, src)
	assert.Equal(t, u.String(), pu.Query().Get("addr"))

	var buf bytes.Buffer
	require.NoError(t, acomm.Stream(&buf, pu))
	assert.True(t, bytes.Equal(data, buf.Bytes()), "got %d bytes, want %d", buf.Len(), len(data))
	waitFor(t, src.closed, 5*time.Second, "source to be closed")
	assert.NoFileExists(t, u.Path)

	// The second read of the same URL finds nothing.
	buf.Reset()
	require.ErrorIs(t, acomm.Stream(&buf, pu), acomm.ErrHTTPStatus)
	assert.Zero(t, buf.Len())
	resp := do(t, ps.Client(), http.MethodGet, pu.String())
	requireJSONError(t, resp, http.StatusNotFound)
}

func TestProxyStreamHandlerHeaders(t *testing.T) {
	ps, tr := newProxyTracker(t)
	src := newCloseRecorder(strings.NewReader("some data"))
	_, pu := proxyURL(t, tr, src)
	resp := do(t, ps.Client(), http.MethodGet, pu.String())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"))
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "some data", string(body))
}

// HEAD tells whether a stream is there without using it up.
func TestProxyStreamHandlerHead(t *testing.T) {
	ps, tr := newProxyTracker(t)
	src := newCloseRecorder(strings.NewReader("still here"))
	u, pu := proxyURL(t, tr, src)

	resp := do(t, ps.Client(), http.MethodHead, pu.String())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"))
	assert.False(t, src.isClosed(), "HEAD must not consume the stream")
	assert.FileExists(t, u.Path)

	var buf bytes.Buffer
	require.NoError(t, acomm.Stream(&buf, pu))
	assert.Equal(t, "still here", buf.String())
	waitFor(t, src.closed, 5*time.Second, "source to be closed")

	resp = do(t, ps.Client(), http.MethodHead, pu.String())
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestProxyStreamHandlerRefusals(t *testing.T) {
	// An HTTP server the proxy must never be made to contact.
	var hits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	t.Cleanup(other.Close)

	ps, _ := newProxyTracker(t)
	tests := []struct {
		name   string
		method string
		rawURL string
		code   int
	}{
		{name: "missing addr", rawURL: ps.URL + "/stream", code: http.StatusBadRequest},
		{name: "empty addr", rawURL: ps.URL + "/stream?addr=", code: http.StatusBadRequest},
		{name: "malformed addr", rawURL: rawProxyURL(ps, ":no-scheme"), code: http.StatusBadRequest},
		{name: "malformed host", rawURL: rawProxyURL(ps, "unix://[::1/x.sock"), code: http.StatusBadRequest},
		{name: "http addr", rawURL: rawProxyURL(ps, other.URL+"/secret"), code: http.StatusForbidden},
		{name: "file addr", rawURL: rawProxyURL(ps, "file:///etc/passwd"), code: http.StatusForbidden},
		{name: "bare path", rawURL: rawProxyURL(ps, "/etc/passwd"), code: http.StatusForbidden},
		{name: "unix without path", rawURL: rawProxyURL(ps, "unix:"), code: http.StatusForbidden},
		{name: "unannounced path", rawURL: rawProxyURL(ps, "unix:///some/other.sock"), code: http.StatusNotFound},
		{name: "POST", method: http.MethodPost, rawURL: rawProxyURL(ps, "unix:///some/other.sock"), code: http.StatusMethodNotAllowed},
		{name: "PUT", method: http.MethodPut, rawURL: rawProxyURL(ps, "unix:///some/other.sock"), code: http.StatusMethodNotAllowed},
		{name: "DELETE", method: http.MethodDelete, rawURL: ps.URL + "/stream", code: http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			resp := do(t, ps.Client(), method, tc.rawURL)
			requireJSONError(t, resp, tc.code)
			if tc.code == http.StatusMethodNotAllowed {
				assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
			}
		})
	}
	assert.Zero(t, hits.Load(), "the proxy contacted an http addr")
}

// A live socket that no tracker announced is refused without the proxy
// connecting to it.
func TestProxyStreamHandlerUnannouncedLiveSocket(t *testing.T) {
	ps := newProxyServer(t)
	ul := newListener(t, 0)

	conns := make(chan net.Conn)
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for c := ul.NextConn(); c != nil; c = ul.NextConn() {
			conns <- c
		}
	}()

	for _, addr := range []string{
		ul.URL().String(),
		"unix:" + ul.Addr(),
		"unix://" + ul.Addr() + "/../" + ul.Addr()[strings.LastIndex(ul.Addr(), "/")+1:],
	} {
		resp := do(t, ps.Client(), http.MethodGet, rawProxyURL(ps, addr))
		requireJSONError(t, resp, http.StatusNotFound)
	}
	// Had the handler connected, its connection would be queued before
	// this one, which is the first the listener hands out.
	probe := dialUnix(t, ul.Addr())
	_, err := probe.Write([]byte("P"))
	require.NoError(t, err)
	first := waitFor(t, conns, 5*time.Second, "the probe connection")
	buf := make([]byte, 1)
	_, err = io.ReadFull(first, buf)
	require.NoError(t, err, "the first connection is not the probe: the proxy connected")
	assert.Equal(t, "P", string(buf))
	ul.DoneConn(first)

	ul.Stop(0)
	waitFor(t, acceptDone, 5*time.Second, "accept loop to end")
}

// An announced socket that nobody listens on is a 404, and a stream whose
// idle timeout expired is gone.
func TestProxyStreamHandlerNotAvailable(t *testing.T) {
	t.Run("announced, not listening", func(t *testing.T) {
		ps, tr := newProxyTracker(t)
		pu, err := tr.ProxyStreamHTTPURL(&url.URL{Scheme: "unix", Path: sockPath(t, "gone.sock")})
		require.NoError(t, err)
		resp := do(t, ps.Client(), http.MethodGet, pu.String())
		requireJSONError(t, resp, http.StatusNotFound)
	})
	t.Run("expired", func(t *testing.T) {
		ps, tr := newProxyTracker(t, acomm.WithStreamIdleTimeout(50*time.Millisecond))
		src := newCloseRecorder(strings.NewReader("too late"))
		_, pu := proxyURL(t, tr, src)
		waitFor(t, src.closed, 5*time.Second, "idle stream to be cleaned up")
		resp := do(t, ps.Client(), http.MethodGet, pu.String())
		requireJSONError(t, resp, http.StatusNotFound)
	})
	t.Run("tracker stopped", func(t *testing.T) {
		ps, tr := newProxyTracker(t)
		src := newCloseRecorder(strings.NewReader("stopped"))
		_, pu := proxyURL(t, tr, src)
		tr.Stop()
		resp := do(t, ps.Client(), http.MethodGet, pu.String())
		requireJSONError(t, resp, http.StatusNotFound)
	})
}

func TestProxyStreamHandlerLargeStream(t *testing.T) {
	const size = 64 << 20
	_, tr := newProxyTracker(t)
	src := newCloseRecorder(&patternReader{n: size})
	_, pu := proxyURL(t, tr, src)

	var got patternChecker
	require.NoError(t, acomm.Stream(&got, pu))
	assert.EqualValues(t, size, got.n)
	assert.Zero(t, got.mismatch, "first mismatch at byte %d", got.mismatch-1)
	waitFor(t, src.closed, 5*time.Second, "source to be closed")
}

// A client that goes away mid-stream ends the handler, the stream's copy
// and its source.
func TestProxyStreamHandlerClientDisconnect(t *testing.T) {
	ps, tr := newProxyTracker(t)
	src := newCloseRecorder(&patternReader{n: 1 << 40}) // endless in practice
	u, pu := proxyURL(t, tr, src)

	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport}
	resp, err := client.Get(pu.String())
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var got patternChecker
	_, err = io.CopyN(&got, resp.Body, 1<<20)
	require.NoError(t, err)
	assert.Zero(t, got.mismatch)
	require.NoError(t, resp.Body.Close()) // mid-stream: closes the connection

	waitFor(t, ps.returned, 5*time.Second, "the handler to return")
	waitFor(t, src.closed, 5*time.Second, "the source to be closed")
	assert.NoFileExists(t, u.Path)
}
