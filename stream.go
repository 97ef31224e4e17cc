package acomm

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
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

	// release gives back the serving goroutine's count in the tracker's
	// background group, once: when the goroutine ends, or streamCloseGrace
	// after close, whichever comes first (see close).
	release func()
}

// streamCloseGrace bounds how long the tracker's Stop waits for a stream
// it closed: a source whose Close does not interrupt its Read leaves the
// goroutine copying it blocked until the Read returns, which may be never.
// Stop waits that long for it, then leaves it behind (the socket is closed
// already, so whatever the Read yields goes nowhere).
const streamCloseGrace = time.Second

// Who took a stream.
const (
	streamOpen    int32 = iota
	streamByConn        // a connection to its socket
	streamByProxy       // ProxyStreamHandler, directly
	streamDropped       // nobody: it expired or the tracker stopped
)

// close shuts the stream and bounds the wait for its goroutine by
// streamCloseGrace.
func (s *unixStream) close() {
	s.shut()
	time.AfterFunc(streamCloseGrace, s.release)
}

// shut stops the stream's listener (closing a connection being served),
// cuts off a proxy serving it, and closes its source.
func (s *unixStream) shut() {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.ul.Stop(0)
		s.abortMu.Lock()
		if s.abort != nil {
			s.abort()
		}
		s.abortMu.Unlock()
		closeBounded(s.src)
	})
}

// closeBounded closes src, waiting at most streamCloseGrace: a source
// whose Close waits for its Read (one lock guarding both, say) would
// otherwise hold the tracker's Stop as long as the Read blocks. Past the
// grace the Close goes on in the background, like the Read it waits for.
func closeBounded(src io.Closer) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }() // user code: see copySource
		_ = src.Close()
	}()
	t := time.NewTimer(streamCloseGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
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
//
// Each stream waiting for its reader holds a socket and its source: at
// most WithMaxStreams of them (DefaultMaxStreams) may wait at once, and
// NewStreamUnix fails with an error matching ErrTooManyStreams past that.
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
	if max := t.cfg.maxStreams; max > 0 {
		waiting := 0
		for _, s := range t.streams {
			if s.taken.Load() == streamOpen {
				waiting++
			}
		}
		if waiting >= max {
			return nil, fmt.Errorf("%w: %d streams wait for their readers", ErrTooManyStreams, waiting)
		}
	}
	ul := NewUnixListener(path, 1)
	ul.cfg = t.cfg
	if err := ul.Start(); err != nil {
		return nil, err
	}
	s := &unixStream{path: ul.Addr(), ul: ul, src: src, proxyDone: make(chan struct{})}
	t.streams[s.path] = s
	t.stats.streams.Add(1)
	t.announce(s.path)
	t.bg.Add(1)
	s.release = sync.OnceFunc(t.bg.Done)
	go t.serveStream(s)
	return ul.URL(), nil
}

// serveStream waits for the stream's one reader, copies the source to it,
// and cleans up.
func (t *Tracker) serveStream(s *unixStream) {
	defer s.release()
	defer func() {
		s.shut()
		t.unannounce(s.path)
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
	n, err := copySource(&deadlineWriter{conn: conn, timeout: t.cfg.ioTimeout}, s.src)
	if errors.Is(err, ErrHandlerPanic) {
		log.WithError(err).WithField("bytes", n).Error("stream source panicked; stream broken")
		return
	}
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
		if now := time.Now(); w.set.IsZero() || now.Sub(w.set) > w.timeout/16 {
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

// copySource is copyStream from a stream's source, user code: a panic
// in its Read (or WriteTo) breaks the stream, as a handler's panic fails
// its request (see Server), rather than the process. The error matches
// ErrHandlerPanic.
func copySource(dst io.Writer, src io.Reader) (n int64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: stream source: %v", ErrHandlerPanic, r)
		}
	}()
	return copyStream(dst, src)
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
	t.announce(filepath.Clean(unixPath(addr)))
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
