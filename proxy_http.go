package acomm

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// ProxyStreamHandler is an HTTP HandlerFunc for simple proxy streaming.
//
// It serves GET and HEAD requests whose "addr" query parameter is the unix
// URL of a stream that a running tracker in this process announced (made
// with NewStreamUnix or passed through ProxyStreamHTTPURL), each once: a
// GET uses the stream up, a HEAD only reports whether it is there. Any
// other address is refused without connecting anywhere: 400 when addr is
// missing or malformed, 403 when it is not a unix URL, 404 when it was not
// announced, was already served, or expired. The body is flushed as it
// arrives, each write is bounded by DefaultHTTPTimeout (so a stream may
// outlast the server's WriteTimeout, but a client that stops reading
// cannot hold it), and the copy stops when the HTTP client goes away.
func ProxyStreamHandler(w http.ResponseWriter, r *http.Request) {
	serveAnnounced(w, r, nil)
}

// ProxyStreamHandler is the package's ProxyStreamHandler limited to the
// streams t announced: a bridge serves its own tracker's streams, and no
// other's.
func (t *Tracker) ProxyStreamHandler(w http.ResponseWriter, r *http.Request) {
	serveAnnounced(w, r, t)
}

// streamWriteTimeout bounds each write of a stream served over HTTP.
const streamWriteTimeout = DefaultHTTPTimeout

// serveAnnounced serves an announced stream: one announced by by, or by
// any tracker when by is nil.
func serveAnnounced(w http.ResponseWriter, r *http.Request, by *Tracker) {
	path, ok := streamRequestPath(w, r)
	if !ok {
		return
	}
	// HEAD is safe: it must not use up the stream's one read.
	claim := r.Method != http.MethodHead
	t, ok := by, false
	if by != nil {
		ok = by.findAnnounced(path, claim)
	} else {
		t, ok = findAnyAnnounced(path, claim)
	}
	if !ok {
		streamNotFound(w)
		return
	}
	if !claim {
		setStreamHeaders(w)
		w.WriteHeader(http.StatusOK)
		return
	}
	if s := t.takeLocalStream(path); s != nil {
		serveLocalStream(w, r, s)
		return
	}
	conn, err := dialStream(r.Context(), path)
	if err != nil {
		httpError(w, http.StatusNotFound, "stream not available")
		return
	}
	defer conn.Close()
	// A client that goes away ends the copy.
	stop := context.AfterFunc(r.Context(), func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	fw := startStreamBody(w, nil)
	defer fw.finish()
	_, err = conn.copyTo(r.Context(), fw, DefaultStreamReadTimeout)
	if conn.end(err) != nil || r.Context().Err() != nil {
		// Headers are gone: abort so the client sees a broken stream
		// rather than a short one.
		panic(http.ErrAbortHandler)
	}
}

// streamNotFound answers 404 for a stream that is not (or no longer)
// announced; the header lets Stream report ErrStreamNotAnnounced.
func streamNotFound(w http.ResponseWriter) {
	w.Header().Set(streamStatusHeader, "not-announced")
	httpError(w, http.StatusNotFound, "stream not found")
}

// streamStatusHeader tells a reader why a stream is not served.
const streamStatusHeader = "Acomm-Stream"

// startStreamBody sends a stream answer's headers at once, so the client
// learns that the stream is there, and returns the body's writer: each
// write is bounded by streamWriteTimeout instead of the server's
// WriteTimeout, and stop, when not nil, makes writes fail.
func startStreamBody(w http.ResponseWriter, stop *atomic.Bool) *flushWriter {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	setStreamHeaders(w)
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	return &flushWriter{w: w, rc: rc, stop: stop, timeout: streamWriteTimeout}
}

// serveLocalStream serves a stream that a tracker of this process made
// with NewStreamUnix from its source, rather than through its socket:
// that saves a copy into the socket and one out of it, which is most of
// the cost. It ends as a stream served through the socket would: the
// source is closed afterwards (by the tracker's serveStream, once
// s.proxyDone is closed), a client that goes away ends it, and so does the
// tracker's Stop.
func serveLocalStream(w http.ResponseWriter, r *http.Request, s *unixStream) {
	defer close(s.proxyDone)
	rc := http.NewResponseController(w)
	s.setAbort(func() { _ = rc.SetWriteDeadline(time.Unix(1, 0)) })
	// Once this returns, the connection may carry the client's next
	// request: the stream must no longer touch it.
	defer s.setAbort(nil)
	stop := context.AfterFunc(r.Context(), s.close) // the stream is lost with its client
	defer stop()

	fw := startStreamBody(w, &s.closed)
	defer fw.finish()
	if _, err := copySource(fw, s.src); err != nil || s.closed.Load() {
		panic(http.ErrAbortHandler) // a broken stream, not a short one
	}
}

// setStreamHeaders sets the headers of a stream body.
func setStreamHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

// flushWriter writes a stream body so that the client gets the data as it
// comes, without a flush (a system call, and a packet of its own) after
// every buffer:
//
//   - a small write (under bulkWriteSize) is flushed at once: a stream
//     that trickles reaches the client write by write;
//   - after a bulk write the flush waits up to flushDelay, and the writes
//     of that time share it. A bulk write reaches the connection as it is
//     written (net/http copies only its first few KiB through its buffer,
//     and sends them before the rest), so all the delay holds back is the
//     end of the chunk, which a client needs for nothing but the next one;
//     the delayed flush is the bound in case that ever changes. (On the
//     benchmark machine a 1 ms delay cost a fifth of the throughput of
//     BenchmarkStream/acomm-http-proxy; 50 ms costs nothing measurable.)
//
// The delayed flush runs on a timer's goroutine, so the writer's methods
// hold mu; finish must be called before the handler returns, after which
// the writer no longer touches the response.
type flushWriter struct {
	w    io.Writer
	rc   *http.ResponseController
	stop *atomic.Bool // when set, writes fail; may be nil

	// timeout, when set, gives every write its own deadline, for
	// streams longer than the server's WriteTimeout.
	timeout time.Duration

	mu    sync.Mutex
	timer *time.Timer // the delayed flush; nil until the first bulk write
	dirty bool        // written since the last flush
	done  bool        // finish was called
}

const (
	// bulkWriteSize is the smallest write whose flush may wait.
	bulkWriteSize = 64 << 10
	// flushDelay is how long a flush may wait after a bulk write.
	flushDelay = 50 * time.Millisecond
)

func (f *flushWriter) Write(p []byte) (int, error) {
	if f.stop != nil && f.stop.Load() {
		return 0, net.ErrClosed
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return 0, net.ErrClosed
	}
	if f.timeout > 0 {
		_ = f.rc.SetWriteDeadline(time.Now().Add(f.timeout))
		// stop is set before the stream's abort moves the deadline
		// into the past: checked after our move, either it is seen
		// here or the abort's move comes after ours.
		if f.stop != nil && f.stop.Load() {
			return 0, net.ErrClosed
		}
	}
	n, err := f.w.Write(p)
	if err != nil {
		return n, err
	}
	switch {
	case len(p) < bulkWriteSize:
		f.dirty = false
		_ = f.rc.Flush()
	case !f.dirty:
		f.dirty = true
		if f.timer == nil {
			f.timer = time.AfterFunc(flushDelay, f.delayedFlush)
		} else {
			f.timer.Reset(flushDelay)
		}
	}
	return n, nil
}

// delayedFlush flushes what bulk writes left behind.
func (f *flushWriter) delayedFlush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dirty && !f.done {
		f.dirty = false
		_ = f.rc.Flush()
	}
}

// finish stops the delayed flush; the response is flushed when the
// handler returns.
func (f *flushWriter) finish() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = true
	if f.timer != nil {
		f.timer.Stop()
	}
}

// httpError writes a JSON error body with status code.
func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, `{"error":`+quoteJSON(msg)+"}\n")
}

// quoteJSON returns s as a JSON string.
func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// streamRequestPath checks a stream request's method and its addr
// parameter, and returns the socket path it names. It answers the refusal
// itself: 405 for a method other than GET or HEAD, 400 for a missing or
// malformed addr, 403 for one that is not a unix URL.
func streamRequestPath(w http.ResponseWriter, r *http.Request) (string, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "method not allowed")
		return "", false
	}
	raw := r.URL.Query().Get("addr")
	if raw == "" {
		httpError(w, http.StatusBadRequest, "missing addr")
		return "", false
	}
	addr, err := url.Parse(raw)
	if err != nil {
		httpError(w, http.StatusBadRequest, "invalid addr")
		return "", false
	}
	if addr.Scheme != "unix" || unixPath(addr) == "" {
		httpError(w, http.StatusForbidden, "only announced unix streams are served")
		return "", false
	}
	return filepath.Clean(unixPath(addr)), true
}
