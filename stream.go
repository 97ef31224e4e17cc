package acomm

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// streamBufferSize is the copy buffer of streams: large enough to move
// data at close to the speed of the socket.
const streamBufferSize = 256 << 10

// httpStreamBufferSize is the copy buffer of streams read over HTTP: TCP
// moves data faster in larger reads.
const httpStreamBufferSize = 1 << 20

// streamBufPool and httpStreamBufPool hold stream copy buffers.
var (
	streamBufPool     = sync.Pool{New: func() any { b := make([]byte, streamBufferSize); return &b }}
	httpStreamBufPool = sync.Pool{New: func() any { b := make([]byte, httpStreamBufferSize); return &b }}
)

// streamClient is the HTTP client for Stream: no overall timeout, since a
// stream may be long, but bounded connection set-up and response headers.
var streamClient = &http.Client{
	Transport: &http.Transport{
		DialContext:           dialStreamTCP,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: DefaultHTTPTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
	},
}

// streamDialer dials the connections of streamClient.
var streamDialer = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}

// loopbackStreamRecvBuffer is the socket receive buffer that Stream asks
// for on a loopback TCP connection (the kernel doubles it). Over loopback
// the sender outruns the receive window that the kernel's autotuning
// starts with; a large fixed buffer lets it write with fewer stalls
// (about 10% more throughput through ProxyStreamHandler on the benchmark
// machine).
const loopbackStreamRecvBuffer = 4 << 20

// dialStreamTCP dials like streamDialer. A loopback TCP connection gets
// loopbackStreamRecvBuffer, when the system allows a buffer that large
// (net.core.rmem_max): a fixed buffer turns the kernel's autotuning off,
// so a smaller one, or one on a connection to another machine, whose
// needs autotuning knows better, would do harm.
func dialStreamTCP(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := streamDialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok && largeRecvBufferAllowed() {
		if ra, ok := tc.RemoteAddr().(*net.TCPAddr); ok && ra.IP.IsLoopback() {
			_ = tc.SetReadBuffer(loopbackStreamRecvBuffer)
		}
	}
	return c, nil
}

// largeRecvBufferAllowed reports whether the system allows a socket
// receive buffer of loopbackStreamRecvBuffer bytes.
var largeRecvBufferAllowed = sync.OnceValue(func() bool {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && n >= loopbackStreamRecvBuffer
})

// unixStream is one ad-hoc stream made by NewStreamUnix. It is served
// once: to the first connection to its socket, or, when ProxyStreamHandler
// in this process gets to it first, straight from its source to the HTTP
// client, with no socket in between (see takeLocalStream).
type unixStream struct {
	path      string
	ul        *UnixListener
	src       io.ReadCloser
	closeOnce sync.Once
	taken     atomic.Int32  // streamOpen, then who took it
	closed    atomic.Bool   // close has begun
	proxyDone chan struct{} // closed when the proxy that took it is done

	abortMu sync.Mutex
	abort   func() // cuts the proxy's writes off; set by the proxy
}

// Who took a stream.
const (
	streamOpen    int32 = iota
	streamByConn        // a connection to its socket
	streamByProxy       // ProxyStreamHandler, directly
	streamDropped       // nobody: it expired or the tracker stopped
)

// close stops the stream's listener (closing a connection being served),
// cuts off a proxy serving it, and closes its source.
func (s *unixStream) close() {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.ul.Stop(0)
		s.abortMu.Lock()
		if s.abort != nil {
			s.abort()
		}
		s.abortMu.Unlock()
		_ = s.src.Close()
	})
}

// setAbort registers how to cut the proxy's writes off (nil for no
// longer), and does it at once if the stream is already closing.
func (s *unixStream) setAbort(abort func()) {
	s.abortMu.Lock()
	s.abort = abort
	s.abortMu.Unlock()
	if abort != nil && s.closed.Load() {
		abort()
	}
}

// NewStreamUnix sets up an ad-hoc unix listener to stream data. The socket
// is created in dir (the directory of the tracker's response socket when
// dir is empty). The first connection receives everything src yields; then
// src is closed and the socket removed. A stream nobody connects to within
// the stream idle timeout (WithStreamIdleTimeout) is cleaned up the same
// way, as is every stream still open when the tracker stops. The stream is
// announced to ProxyStreamHandler, so it can be read once over HTTP.
func (t *Tracker) NewStreamUnix(dir string, src io.ReadCloser) (*url.URL, error) {
	if src == nil {
		return nil, fmt.Errorf("%w: nil stream source", ErrInvalidArgument)
	}
	if dir == "" {
		dir = filepath.Dir(t.socketPath)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	path := filepath.Join(dir, "stream-"+hex.EncodeToString(rnd[:])+".sock")

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != stateRunning {
		return nil, fmt.Errorf("%w: cannot create stream", ErrNotStarted)
	}
	ul := NewUnixListener(path, 1)
	ul.cfg = t.cfg
	if err := ul.Start(); err != nil {
		return nil, err
	}
	s := &unixStream{path: ul.Addr(), ul: ul, src: src, proxyDone: make(chan struct{})}
	t.streams[s.path] = s
	t.stats.streams.Add(1)
	announce(s.path, t, t.cfg.streamIdleTimeout)
	t.bg.Add(1)
	go t.serveStream(s)
	return ul.URL(), nil
}

// serveStream waits for the stream's one reader, copies the source to it,
// and cleans up.
func (t *Tracker) serveStream(s *unixStream) {
	defer t.bg.Done()
	defer func() {
		s.close()
		unannounce(s.path, t)
		t.mu.Lock()
		delete(t.streams, s.path)
		t.mu.Unlock()
	}()
	log := t.log().WithField("stream", s.path)

	expiry := time.AfterFunc(t.cfg.streamIdleTimeout, func() { s.ul.Stop(0) })
	conn := s.ul.NextConn()
	expiry.Stop()
	if conn != nil && !s.taken.CompareAndSwap(streamOpen, streamByConn) {
		s.ul.DoneConn(conn) // the proxy got to it first
		conn = nil
	}
	if conn == nil {
		if !s.taken.CompareAndSwap(streamOpen, streamDropped) && s.taken.Load() == streamByProxy {
			<-s.proxyDone // ProxyStreamHandler serves it
			return
		}
		log.Debug("stream closed before anyone read it")
		return
	}
	defer s.ul.DoneConn(conn)
	n, err := copyStream(&deadlineWriter{conn: conn, timeout: t.cfg.ioTimeout}, s.src)
	if err != nil {
		// Closing at once, with the reader's ready byte unread, makes
		// the reader's next read fail (ECONNRESET) once it has the
		// data sent so far: a broken stream, not a short one.
		if !errors.Is(err, net.ErrClosed) {
			log.WithError(err).WithField("bytes", n).Warn("stream copy failed")
		}
		return
	}
	finishStream(conn, t.cfg.ioTimeout)
}

// streamReadyByte is what Stream writes when it connects to a unix
// stream. The server reads it only after sending everything, so a server
// that fails midway closes with it unread, which the kernel reports to the
// reader as a reset instead of a clean end.
const streamReadyByte = 1

// finishStream ends a stream that was sent whole: it shuts down the
// sending side, so the reader sees the end, then reads what the reader
// sent (its ready byte) until the reader closes, so that closing does not
// reset the connection. Both are bounded.
func finishStream(conn net.Conn, timeout time.Duration) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return
	}
	if uc.CloseWrite() != nil || uc.SetReadDeadline(time.Now().Add(timeout)) != nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(uc, 64<<10))
}

// deadlineWriter bounds every write to conn by timeout, so a reader that
// stops reading cannot hold the stream forever. Setting a deadline is not
// free, so it is moved only when it has come 1/16 of timeout closer: each
// write then has between 15/16 of timeout and timeout to finish.
type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
	set     time.Time // when the deadline was last set; zero for never
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		// A source's WriteTo may hand over all it has at once: bound
		// each buffer's worth, not the whole.
		chunk := p[:min(len(p), streamBufferSize)]
		if now := monoNow(); w.set.IsZero() || now.Sub(w.set) > w.timeout/16 {
			if err := w.conn.SetWriteDeadline(now.Add(w.timeout)); err != nil {
				return written, err
			}
			w.set = now
		}
		n, err := w.conn.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// copyStream copies src to dst, taking the fastest path there is:
//
//   - from a socket into a file or a TCP connection, the kernel moves the
//     data (splice), without a copy through user space;
//   - a source with a WriteTo method writes itself (a bytes.Reader in one
//     write, a generator from its own buffer), except the types whose
//     WriteTo falls back to small buffers;
//   - anything else goes through a large pooled buffer, with dst's
//     ReadFrom hidden for the same reason (io.Discard's, for one, reads
//     8 KiB at a time).
func copyStream(dst io.Writer, src io.Reader) (int64, error) {
	if isStreamSocket(src) {
		switch d := dst.(type) {
		case *os.File:
			return d.ReadFrom(src)
		case *net.TCPConn:
			return d.ReadFrom(src)
		}
	}
	if wt, ok := src.(io.WriterTo); ok && usefulWriterTo(src) {
		return wt.WriteTo(dst)
	}
	return copyBuffered(dst, src, &streamBufPool)
}

// copyBuffered copies src to dst through a buffer from pool, hiding any
// ReadFrom of dst and WriteTo of src.
func copyBuffered(dst io.Writer, src io.Reader, pool *sync.Pool) (int64, error) {
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
}

// isStreamSocket reports whether r is a unix or TCP stream connection, a
// source that splice can read.
func isStreamSocket(r io.Reader) bool {
	switch c := r.(type) {
	case *net.TCPConn:
		return true
	case *net.UnixConn:
		for _, a := range []net.Addr{c.LocalAddr(), c.RemoteAddr()} {
			if ua, ok := a.(*net.UnixAddr); ok && ua != nil {
				return ua.Net == "unix"
			}
		}
	}
	return false
}

// usefulWriterTo reports whether src's WriteTo does better than a copy
// through a large buffer. Files and TCP connections have one, but outside
// their kernel paths it copies through 32 KiB; a bufio.Reader's copies
// through its own (usually 4 KiB) buffer.
func usefulWriterTo(src io.Reader) bool {
	switch src.(type) {
	case *os.File, *net.TCPConn, *bufio.Reader:
		return false
	}
	return true
}

// Stream streams data from a URL to a destination writer. Unix URLs are
// read from the socket until the sender closes it; http(s) URLs are
// fetched with GET, and a non-200 status matches ErrHTTPStatus. A stream
// cut off before its end (its source failed, or its server stopped) is an
// error matching ErrStreamBroken, never a silently short copy.
func Stream(dest io.Writer, addr *url.URL) error {
	if dest == nil {
		return fmt.Errorf("%w: nil destination", ErrInvalidArgument)
	}
	if err := checkURL(addr); err != nil {
		return err
	}
	if addr.Scheme == "unix" {
		return streamUnix(dest, unixPath(addr))
	}
	return streamHTTP(dest, addr)
}

// streamUnix copies the stream at the socket path into dest.
func streamUnix(dest io.Writer, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultIOTimeout)
	sc, err := dialStream(ctx, path)
	cancel()
	if err != nil {
		return err
	}
	defer sc.Close()
	_, err = copyStream(dest, sc.Conn)
	return sc.end(err)
}

// streamConn is a connection to a unix stream, from dialStream.
type streamConn struct {
	net.Conn
	path     string
	readyErr error // from writing the ready byte
}

// dialStream connects to the unix stream at path and writes the ready
// byte (see finishStream), so that a stream cut off midway can be told
// from one that ended.
func dialStream(ctx context.Context, path string) (*streamConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w: dial stream %s: %w", ErrUnreachable, path, err)
	}
	_, werr := conn.Write([]byte{streamReadyByte})
	return &streamConn{Conn: conn, path: path, readyErr: werr}, nil
}

// end turns how copying the stream ended into the stream's error: a reset
// (the server closed with our ready byte unread), or a ready byte the
// server closed on before reading it, means the stream was cut off.
func (c *streamConn) end(copyErr error) error {
	switch {
	case copyErr != nil && errors.Is(copyErr, syscall.ECONNRESET):
		return fmt.Errorf("%w: %s: %w", ErrStreamBroken, c.path, copyErr)
	case copyErr != nil:
		return fmt.Errorf("%w: read stream %s: %w", ErrConnection, c.path, copyErr)
	case c.readyErr != nil:
		return fmt.Errorf("%w: %s: the server closed before the end: %w", ErrStreamBroken, c.path, c.readyErr)
	}
	return nil
}

// streamHTTP copies the body of a GET of addr into dest.
func streamHTTP(dest io.Writer, addr *url.URL) error {
	resp, err := streamClient.Get(addr.String())
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			// The server aborted before its headers: the source
			// failed before the first flush.
			return fmt.Errorf("%w: %s: %w", ErrStreamBroken, addr.Redacted(), err)
		}
		return fmt.Errorf("acomm: get stream %s: %w", addr.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%w: %s from %s: %s", ErrHTTPStatus, resp.Status, addr.Redacted(), msg)
	}
	if _, err := copyBuffered(dest, resp.Body, &httpStreamBufPool); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) { // the proxy aborted it
			return fmt.Errorf("%w: %s: %w", ErrStreamBroken, addr.Redacted(), err)
		}
		return fmt.Errorf("acomm: read stream %s: %w", addr.Redacted(), err)
	}
	return nil
}

// ProxyStreamHTTPURL generates the url for proxying streaming data from a
// unix socket: the tracker's HTTP stream URL with the socket's URL in the
// "addr" query parameter. It also announces the socket to
// ProxyStreamHandler, which serves it once.
func (t *Tracker) ProxyStreamHTTPURL(addr *url.URL) (*url.URL, error) {
	if t.httpStreamURL == nil {
		return nil, ErrNoHTTPStreamURL
	}
	if addr == nil {
		return nil, fmt.Errorf("%w: missing addr", ErrInvalidURL)
	}
	if addr.Scheme != "unix" || unixPath(addr) == "" {
		return nil, fmt.Errorf("%w: stream addr %q must be a unix socket url", ErrUnsupportedScheme, addr.String())
	}
	announce(filepath.Clean(unixPath(addr)), t, t.cfg.streamIdleTimeout)
	u := *t.httpStreamURL
	q := u.Query()
	q.Set("addr", addr.String())
	u.RawQuery = q.Encode()
	return &u, nil
}

// takeLocalStream takes the stream at path for ProxyStreamHandler, if t
// made it with NewStreamUnix and nobody has read it yet. The stream's
// socket is closed: the proxy serves the source itself, then closes
// s.proxyDone.
func (t *Tracker) takeLocalStream(path string) *unixStream {
	t.mu.Lock()
	s := t.streams[path]
	t.mu.Unlock()
	if s == nil || !s.taken.CompareAndSwap(streamOpen, streamByProxy) {
		return nil
	}
	s.ul.Stop(0)
	return s
}

// The registry of announced streams: socket paths that ProxyStreamHandler
// may serve, each once. Entries expire after their tracker's stream idle
// timeout and are dropped when their tracker stops.
var (
	announcedMu sync.Mutex
	announced   = map[string]announcement{}
)

// announcement records who announced a stream and until when it is valid.
type announcement struct {
	tracker *Tracker
	expires time.Time
}

// announce allows ProxyStreamHandler to serve the socket at path once.
func announce(path string, t *Tracker, ttl time.Duration) {
	now := time.Now()
	announcedMu.Lock()
	defer announcedMu.Unlock()
	for p, a := range announced {
		if now.After(a.expires) {
			delete(announced, p)
		}
	}
	announced[path] = announcement{tracker: t, expires: now.Add(ttl)}
}

// unannounce withdraws path if t announced it.
func unannounce(path string, t *Tracker) {
	announcedMu.Lock()
	defer announcedMu.Unlock()
	if a, ok := announced[path]; ok && a.tracker == t {
		delete(announced, path)
	}
}

// unannounceAll withdraws every stream t announced.
func unannounceAll(t *Tracker) {
	announcedMu.Lock()
	defer announcedMu.Unlock()
	for p, a := range announced {
		if a.tracker == t {
			delete(announced, p)
		}
	}
}

// findAnnounced looks path up in the registry: announced, not expired,
// and (when by is not nil) announced by the tracker by. With claim, a
// path found is also withdrawn, so it is served once; a path announced by
// another tracker is neither claimed nor withdrawn. It returns the tracker
// that announced it.
func findAnnounced(path string, by *Tracker, claim bool) (*Tracker, bool) {
	announcedMu.Lock()
	defer announcedMu.Unlock()
	a, ok := announced[path]
	if !ok || by != nil && a.tracker != by {
		return nil, false
	}
	if claim {
		delete(announced, path)
	}
	return a.tracker, time.Now().Before(a.expires)
}

// announcedOK keeps findAnnounced's verdict.
func announcedOK(_ *Tracker, ok bool) bool { return ok }
