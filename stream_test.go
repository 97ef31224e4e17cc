package acomm_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
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

// closeRecorder is a stream source that reports its Close on closed.
type closeRecorder struct {
	io.Reader
	once   sync.Once
	closed chan struct{}
}

func newCloseRecorder(r io.Reader) *closeRecorder {
	return &closeRecorder{Reader: r, closed: make(chan struct{})}
}

func (c *closeRecorder) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// isClosed reports whether Close has been called, without waiting.
func (c *closeRecorder) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// pattern is the data of patternReader: its length is prime, so that a
// chunk of a stream lost, repeated or reordered shows as a mismatch.
var pattern = func() []byte {
	p := make([]byte, 65521)
	for i := range p {
		p[i] = byte(i*131 + i>>9)
	}
	return p
}()

// patternReader yields n bytes of pattern, repeated, without allocating.
type patternReader struct {
	off, n int64
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	if rem := r.n - r.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	total := 0
	for total < len(p) {
		k := copy(p[total:], pattern[(r.off+int64(total))%int64(len(pattern)):])
		total += k
	}
	r.off += int64(total)
	return total, nil
}

// patternChecker is a writer that checks that what it is given is the
// data of patternReader, without storing it.
type patternChecker struct {
	n        int64
	mismatch int64 // offset of the first mismatch + 1; 0 when none
}

func (c *patternChecker) Write(p []byte) (int, error) {
	for done := 0; done < len(p); {
		o := (c.n + int64(done)) % int64(len(pattern))
		k := min(len(p)-done, len(pattern)-int(o))
		if c.mismatch == 0 && !bytes.Equal(p[done:done+k], pattern[o:int(o)+k]) {
			c.mismatch = c.n + int64(done) + 1
		}
		done += k
	}
	c.n += int64(len(p))
	return len(p), nil
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// TestPatternPlumbing checks the test data generator and checker.
func TestPatternPlumbing(t *testing.T) {
	var c patternChecker
	n, err := io.CopyBuffer(struct{ io.Writer }{&c}, &patternReader{n: 1 << 20}, make([]byte, 1000))
	require.NoError(t, err)
	assert.EqualValues(t, 1<<20, n)
	assert.EqualValues(t, 1<<20, c.n)
	assert.Zero(t, c.mismatch)

	// A lost chunk is noticed.
	var bad patternChecker
	r := &patternReader{n: 3 * int64(len(pattern))}
	buf := make([]byte, 4096)
	_, _ = r.Read(buf)
	_, _ = bad.Write(buf)
	_, _ = r.Read(buf) // lost
	_, _ = r.Read(buf)
	_, _ = bad.Write(buf)
	assert.EqualValues(t, 4097, bad.mismatch)
}

func TestNewStreamUnixServesOnce(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{name: "empty", data: []byte{}},
		{name: "small", data: []byte("hello, stream")},
		{name: "16MiB random", data: randomBytes(t, 16<<20)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker(t, nil, 0)
			src := newCloseRecorder(bytes.NewReader(tc.data))
			u, err := tr.NewStreamUnix("", src)
			require.NoError(t, err)
			require.Equal(t, "unix", u.Scheme)
			assert.Equal(t, filepath.Dir(tr.Addr()), filepath.Dir(u.Path), "default stream dir")
			require.FileExists(t, u.Path)
			assert.False(t, src.isClosed())

			var buf bytes.Buffer
			require.NoError(t, acomm.Stream(&buf, u))
			assert.True(t, bytes.Equal(tc.data, buf.Bytes()), "got %d bytes, want %d", buf.Len(), len(tc.data))

			// The source is closed once served, and by then the socket
			// is gone.
			waitFor(t, src.closed, 5*time.Second, "source to be closed")
			assert.NoFileExists(t, u.Path)

			// A second reader cannot connect.
			buf.Reset()
			require.Error(t, acomm.Stream(&buf, u))
			assert.Zero(t, buf.Len())
		})
	}
}

func TestNewStreamUnixDir(t *testing.T) {
	tr := newTracker(t, nil, 0)
	dir := filepath.Join(shortDir(t), "streams")
	src := newCloseRecorder(bytes.NewReader([]byte("in a dir")))
	u, err := tr.NewStreamUnix(dir, src)
	require.NoError(t, err)
	assert.Equal(t, dir, filepath.Dir(u.Path))
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Zero(t, fi.Mode().Perm()&0o007, "stream dir %v: others must have no access", fi.Mode().Perm())
	fi, err = os.Lstat(u.Path)
	require.NoError(t, err)
	assert.Zero(t, fi.Mode().Perm()&0o002, "stream socket %v is world-writable", fi.Mode().Perm())

	var buf bytes.Buffer
	require.NoError(t, acomm.Stream(&buf, u))
	assert.Equal(t, "in a dir", buf.String())
	waitFor(t, src.closed, 5*time.Second, "source to be closed")
	assert.NoFileExists(t, u.Path)
}

func TestNewStreamUnixIdleTimeout(t *testing.T) {
	tr := newTracker(t, nil, 0, acomm.WithStreamIdleTimeout(50*time.Millisecond))
	src := newCloseRecorder(bytes.NewReader([]byte("nobody reads this")))
	start := time.Now()
	u, err := tr.NewStreamUnix("", src)
	require.NoError(t, err)

	waitFor(t, src.closed, 5*time.Second, "idle stream's source to be closed")
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	assert.NoFileExists(t, u.Path)
	require.Error(t, acomm.Stream(io.Discard, u))
}

func TestNewStreamUnixTrackerStop(t *testing.T) {
	t.Run("unread", func(t *testing.T) {
		tr := newTracker(t, nil, 0)
		var srcs []*closeRecorder
		var urls []*url.URL
		for i := 0; i < 3; i++ {
			src := newCloseRecorder(bytes.NewReader([]byte("unread")))
			u, err := tr.NewStreamUnix("", src)
			require.NoError(t, err)
			srcs, urls = append(srcs, src), append(urls, u)
		}
		tr.Stop()
		for i := range srcs {
			assert.True(t, srcs[i].isClosed(), "stream %d: source not closed by Stop", i)
			assert.NoFileExists(t, urls[i].Path)
		}
	})

	t.Run("being read", func(t *testing.T) {
		tr := newTracker(t, nil, 0)
		pr, pw := io.Pipe()
		t.Cleanup(func() { _ = pw.Close() })
		src := newCloseRecorder(pr)
		u, err := tr.NewStreamUnix("", closerFunc{Reader: pr, close: func() error {
			_ = src.Close()
			return pr.Close() // unblocks the copy's Read
		}})
		require.NoError(t, err)

		got := newNotifyWriter()
		streamDone := make(chan error, 1)
		go func() { streamDone <- acomm.Stream(got, u) }()
		_, err = pw.Write([]byte("first"))
		require.NoError(t, err)
		waitFor(t, got.first, 5*time.Second, "first bytes to arrive")

		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			tr.Stop()
		}()
		waitFor(t, stopped, 5*time.Second, "tracker Stop with a stream being read")
		assert.True(t, src.isClosed())
		assert.NoFileExists(t, u.Path)
		waitFor(t, streamDone, 5*time.Second, "the reader to return")
		assert.Equal(t, "first", got.String())
	})
}

// closerFunc is a ReadCloser made of a Reader and a close func.
type closerFunc struct {
	io.Reader
	close func() error
}

func (c closerFunc) Close() error { return c.close() }

// notifyWriter collects what it is given and closes first on the first
// write.
type notifyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	first chan struct{}
}

func newNotifyWriter() *notifyWriter { return &notifyWriter{first: make(chan struct{})} }

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	w.once.Do(func() { close(w.first) })
	return n, err
}

func (w *notifyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestNewStreamUnixErrors(t *testing.T) {
	t.Run("nil source", func(t *testing.T) {
		tr := newTracker(t, nil, 0)
		_, err := tr.NewStreamUnix("", nil)
		require.ErrorIs(t, err, acomm.ErrInvalidArgument)
	})
	t.Run("never started", func(t *testing.T) {
		tr, err := acomm.NewTracker(sockPath(t, "t.sock"), nil, 0)
		require.NoError(t, err)
		_, err = tr.NewStreamUnix("", newCloseRecorder(bytes.NewReader(nil)))
		require.ErrorIs(t, err, acomm.ErrNotStarted)
	})
	t.Run("stopped", func(t *testing.T) {
		tr := newTracker(t, nil, 0)
		tr.Stop()
		dir := filepath.Dir(tr.Addr())
		_, err := tr.NewStreamUnix("", newCloseRecorder(bytes.NewReader(nil)))
		require.ErrorIs(t, err, acomm.ErrNotStarted)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Empty(t, entries, "no socket may be left behind")
	})
	t.Run("socket path too long", func(t *testing.T) {
		tr := newTracker(t, nil, 0)
		dir := shortDir(t)
		long := filepath.Join(dir, string(bytes.Repeat([]byte("d"), 100-len(dir))))
		_, err := tr.NewStreamUnix(long, newCloseRecorder(bytes.NewReader(nil)))
		require.ErrorIs(t, err, acomm.ErrSocketPathTooLong)
	})
}

func TestStreamArgumentErrors(t *testing.T) {
	tests := []struct {
		name string
		dest io.Writer
		addr *url.URL
		want error
	}{
		{name: "nil dest", dest: nil, addr: &url.URL{Scheme: "unix", Path: "/tmp/x.sock"}, want: acomm.ErrInvalidArgument},
		{name: "nil url", dest: io.Discard, addr: nil, want: acomm.ErrInvalidURL},
		{name: "ftp", dest: io.Discard, addr: &url.URL{Scheme: "ftp", Host: "example.com", Path: "/f"}, want: acomm.ErrUnsupportedScheme},
		{name: "no scheme", dest: io.Discard, addr: &url.URL{Path: "/tmp/x.sock"}, want: acomm.ErrUnsupportedScheme},
		{name: "unix without path", dest: io.Discard, addr: &url.URL{Scheme: "unix"}, want: acomm.ErrInvalidURL},
		{name: "http without host", dest: io.Discard, addr: &url.URL{Scheme: "http", Path: "/x"}, want: acomm.ErrInvalidURL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, acomm.Stream(tc.dest, tc.addr), tc.want)
		})
	}

	t.Run("unix socket missing", func(t *testing.T) {
		err := acomm.Stream(io.Discard, &url.URL{Scheme: "unix", Path: sockPath(t, "none.sock")})
		require.Error(t, err)
	})
}

func TestStreamHTTP(t *testing.T) {
	body := randomBytes(t, 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "want GET", http.StatusMethodNotAllowed)
			return
		}
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write(body)
		case "/empty":
		case "/boom":
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		path    string
		want    []byte
		wantErr error
	}{
		{path: "/ok", want: body},
		{path: "/empty", want: []byte{}},
		{path: "/missing", wantErr: acomm.ErrHTTPStatus},
		{path: "/boom", wantErr: acomm.ErrHTTPStatus},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			u, err := url.Parse(srv.URL + tc.path)
			require.NoError(t, err)
			var buf bytes.Buffer
			err = acomm.Stream(&buf, u)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				assert.Zero(t, buf.Len(), "an error body must not reach dest")
				return
			}
			require.NoError(t, err)
			assert.True(t, bytes.Equal(tc.want, buf.Bytes()), "got %d bytes, want %d", buf.Len(), len(tc.want))
		})
	}

	t.Run("server gone", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close())
		require.Error(t, acomm.Stream(io.Discard, &url.URL{Scheme: "http", Host: addr, Path: "/"}))
	})
}

func TestProxyStreamHTTPURL(t *testing.T) {
	base, err := url.Parse("http://proxy.example:8080/stream?token=abc&addr=old")
	require.NoError(t, err)
	sock := &url.URL{Scheme: "unix", Path: sockPath(t, "s.sock")}

	t.Run("no http stream url", func(t *testing.T) {
		tr := newTracker(t, nil, 0)
		_, err := tr.ProxyStreamHTTPURL(sock)
		require.ErrorIs(t, err, acomm.ErrNoHTTPStreamURL)
	})

	tr := newTracker(t, base, 0)
	tests := []struct {
		name string
		addr *url.URL
		want error
	}{
		{name: "nil", addr: nil, want: acomm.ErrInvalidURL},
		{name: "http", addr: &url.URL{Scheme: "http", Host: "example.com", Path: "/x"}, want: acomm.ErrUnsupportedScheme},
		{name: "file", addr: &url.URL{Scheme: "file", Path: "/etc/passwd"}, want: acomm.ErrUnsupportedScheme},
		{name: "unix without path", addr: &url.URL{Scheme: "unix"}, want: acomm.ErrUnsupportedScheme},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tr.ProxyStreamHTTPURL(tc.addr)
			require.ErrorIs(t, err, tc.want)
		})
	}

	t.Run("success", func(t *testing.T) {
		for i := 0; i < 2; i++ { // the base URL is not modified
			got, err := tr.ProxyStreamHTTPURL(sock)
			require.NoError(t, err)
			assert.Equal(t, "http", got.Scheme)
			assert.Equal(t, "proxy.example:8080", got.Host)
			assert.Equal(t, "/stream", got.Path)
			q := got.Query()
			assert.Equal(t, sock.String(), q.Get("addr"))
			assert.Equal(t, []string{sock.String()}, q["addr"], "addr of the base URL is replaced")
			assert.Equal(t, "abc", q.Get("token"))
			assert.Equal(t, "http://proxy.example:8080/stream?token=abc&addr=old", base.String())
		}
	})
}

func TestNewTrackerHTTPStreamURL(t *testing.T) {
	for _, raw := range []string{"ftp://x/y", "/relative", "http:///nohost"} {
		t.Run(raw, func(t *testing.T) {
			u, err := url.Parse(raw)
			require.NoError(t, err)
			_, err = acomm.NewTracker(sockPath(t, "t.sock"), u, 0)
			require.ErrorIs(t, err, acomm.ErrInvalidURL)
		})
	}
}

// The error of a failed HTTP stream carries the status and the start of
// the body, and no password.
func TestStreamHTTPErrorText(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such stream", http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL + "/s")
	require.NoError(t, err)
	u.User = url.UserPassword("user", "hunter2")
	err = acomm.Stream(io.Discard, u)
	require.ErrorIs(t, err, acomm.ErrHTTPStatus)
	assert.Contains(t, err.Error(), "404")
	assert.Contains(t, err.Error(), "no such stream")
	assert.NotContains(t, err.Error(), "hunter2", "the password must be redacted")
}

// failingSource yields n bytes, then fails.
type failingSource struct{ n int }

func (f *failingSource) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk read error")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	clear(p)
	f.n -= len(p)
	return len(p), nil
}

func (f *failingSource) Close() error { return nil }

func TestStreamSourceFailsMidway(t *testing.T) {
	for _, size := range []int{0, 10, 1 << 20} {
		t.Run(fmt.Sprint("unix after ", size, " bytes"), func(t *testing.T) {
			tr := newTracker(t, nil, time.Minute)
			u, err := tr.NewStreamUnix("", &failingSource{n: size})
			require.NoError(t, err)
			var buf bytes.Buffer
			err = acomm.Stream(&buf, u)
			require.ErrorIs(t, err, acomm.ErrStreamBroken, "a broken stream is an error, not a short copy")
			assert.LessOrEqual(t, buf.Len(), size)
		})
	}
	t.Run("through the http proxy", func(t *testing.T) {
		hs := httptest.NewServer(http.HandlerFunc(acomm.ProxyStreamHandler))
		t.Cleanup(hs.Close)
		base, _ := url.Parse(hs.URL + "/stream")
		tr := newTracker(t, base, time.Minute)
		u, err := tr.NewStreamUnix("", &failingSource{n: 1 << 20})
		require.NoError(t, err)
		pu, err := tr.ProxyStreamHTTPURL(u)
		require.NoError(t, err)
		err = acomm.Stream(io.Discard, pu)
		assert.ErrorIs(t, err, acomm.ErrStreamBroken)
	})
	t.Run("complete streams are not broken", func(t *testing.T) {
		tr := newTracker(t, nil, time.Minute)
		for i := 0; i < 50; i++ {
			u, err := tr.NewStreamUnix("", io.NopCloser(strings.NewReader(strings.Repeat("x", i*1000))))
			require.NoError(t, err)
			var buf bytes.Buffer
			require.NoError(t, acomm.Stream(&buf, u))
			require.Equal(t, i*1000, buf.Len())
		}
	})
}

func TestStreamSourceFailsMidwayThroughBridgeAndProxy(t *testing.T) {
	// Streams of another tracker (as of another process) are read through
	// their socket, not served in-process.
	producer := newTracker(t, nil, time.Minute)
	t.Run("proxy", func(t *testing.T) {
		hs := httptest.NewServer(http.HandlerFunc(acomm.ProxyStreamHandler))
		t.Cleanup(hs.Close)
		base, _ := url.Parse(hs.URL + "/stream")
		front := newTracker(t, base, time.Minute)
		u, err := producer.NewStreamUnix("", &failingSource{n: 1 << 20})
		require.NoError(t, err)
		pu, err := front.ProxyStreamHTTPURL(u)
		require.NoError(t, err)
		assert.ErrorIs(t, acomm.Stream(io.Discard, pu), acomm.ErrStreamBroken)

		u, err = producer.NewStreamUnix("", io.NopCloser(strings.NewReader("whole")))
		require.NoError(t, err)
		pu, err = front.ProxyStreamHTTPURL(u)
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, acomm.Stream(&buf, pu))
		assert.Equal(t, "whole", buf.String())
	})
}

// panickingSource is a stream source whose Read and Close panic.
type panickingSource struct{}

func (panickingSource) Read([]byte) (int, error) { panic("stream source read panicked") }
func (panickingSource) Close() error             { panic("stream source close panicked") }

// A stream source is user code, like a handler: its panic breaks the
// stream (the reader gets ErrStreamBroken), never the process.
func TestStreamSourcePanics(t *testing.T) {
	t.Run("unix", func(t *testing.T) {
		tr := newTracker(t, nil, time.Minute)
		u, err := tr.NewStreamUnix("", panickingSource{})
		require.NoError(t, err)
		require.ErrorIs(t, acomm.Stream(io.Discard, u), acomm.ErrStreamBroken)
	})
	t.Run("through the http proxy", func(t *testing.T) {
		hs := httptest.NewServer(http.HandlerFunc(acomm.ProxyStreamHandler))
		t.Cleanup(hs.Close)
		base, _ := url.Parse(hs.URL + "/stream")
		tr := newTracker(t, base, time.Minute)
		u, err := tr.NewStreamUnix("", panickingSource{})
		require.NoError(t, err)
		pu, err := tr.ProxyStreamHTTPURL(u)
		require.NoError(t, err)
		assert.ErrorIs(t, acomm.Stream(io.Discard, pu), acomm.ErrStreamBroken)
	})
}
