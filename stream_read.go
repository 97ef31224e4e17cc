package acomm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultStreamReadTimeout is how long Stream waits for a stream's next
// bytes before it gives up on the stream (see WithStreamReadTimeout).
const DefaultStreamReadTimeout = 2 * time.Minute

// StreamOption configures StreamContext.
type StreamOption func(*streamConfig)

// streamConfig holds StreamContext's settings.
type streamConfig struct {
	readTimeout time.Duration
}

// WithStreamReadTimeout sets how long a reader waits without progress: a
// stream whose producer sends nothing for d ends in an error matching
// ErrStreamBroken (and os.ErrDeadlineExceeded). The check runs about every
// d, so a stall is noticed between d and 2d after the last byte. Zero or
// less waits for ever. The default is DefaultStreamReadTimeout.
func WithStreamReadTimeout(d time.Duration) StreamOption {
	return func(c *streamConfig) { c.readTimeout = d }
}

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

// Stream streams data from a URL to a destination writer. Unix URLs are
// read from the socket until the sender closes it; http(s) URLs are
// fetched with GET, and a non-200 status matches ErrHTTPStatus (and, for a
// stream that is not, or no longer, announced, ErrStreamNotAnnounced). A
// stream cut off before its end (its source failed, or its server stopped)
// is an error matching ErrStreamBroken, never a silently short copy, as is
// a stream that makes no progress for DefaultStreamReadTimeout. Errors
// wrap the package's sentinels. Stream is StreamContext without a context
// or options.
func Stream(dest io.Writer, addr *url.URL) error {
	return StreamContext(context.Background(), dest, addr)
}

// StreamContext is Stream bounded by ctx: when ctx ends, the copy stops
// and ctx.Err() is returned. Options change the read timeout.
func StreamContext(ctx context.Context, dest io.Writer, addr *url.URL, opts ...StreamOption) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	if dest == nil {
		return fmt.Errorf("%w: nil destination", ErrInvalidArgument)
	}
	if err := checkURL(addr); err != nil {
		return err
	}
	cfg := streamConfig{readTimeout: DefaultStreamReadTimeout}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if addr.Scheme == "unix" {
		return streamUnix(ctx, dest, unixPath(addr), cfg.readTimeout)
	}
	return streamHTTP(ctx, dest, addr, cfg.readTimeout)
}

// streamUnix copies the stream at the socket path into dest.
func streamUnix(ctx context.Context, dest io.Writer, path string, idle time.Duration) error {
	dctx, cancel := context.WithTimeout(ctx, DefaultIOTimeout)
	sc, err := dialStream(dctx, path)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	defer sc.Close()
	stop := context.AfterFunc(ctx, func() { _ = sc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	_, err = sc.copyTo(ctx, dest, idle)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return sc.end(err)
}

// streamConn is a connection to a unix stream, from dialStream.
type streamConn struct {
	net.Conn
	path     string
	ours     bool  // served by this package: the ready byte was sent
	readyErr error // from writing the ready byte
}

// ourStreamName matches the names of the sockets NewStreamUnix makes. The
// original acomm names its stream sockets with ioutil.TempFile's digits,
// so a stream URL says whose server serves it: only ours read the ready
// byte, and only their streams use the broken-stream signal.
var ourStreamName = regexp.MustCompile(`^stream-[0-9a-f]{16}\.sock$`)

// isOurStream reports whether the stream socket at path was made by
// NewStreamUnix.
func isOurStream(path string) bool {
	return ourStreamName.MatchString(filepath.Base(path))
}

// dialStream connects to the unix stream at path and, when our server
// serves it, writes the ready byte (see finishStream), so that a stream
// cut off midway can be told from one that ended. A stream served by an
// original acomm peer, which closes without reading it, gets none, and
// ends cleanly after its last byte.
func dialStream(ctx context.Context, path string) (*streamConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w: dial stream %s: %w", ErrUnreachable, path, err)
	}
	sc := &streamConn{Conn: conn, path: path, ours: isOurStream(path)}
	if sc.ours {
		_, sc.readyErr = conn.Write([]byte{streamReadyByte})
	}
	return sc, nil
}

// copyTo copies the stream into dst. With idle > 0, a read that waits
// idle without any byte arriving since the last check ends the copy with
// a timeout; the deadline is moved once per idle period, not per read, so
// the fast paths of copyStream (splice) stay in use. ctx's end, which
// moves the deadline into the past, is never taken for a stall.
func (c *streamConn) copyTo(ctx context.Context, dst io.Writer, idle time.Duration) (int64, error) {
	if idle <= 0 {
		return copyStream(dst, c.Conn)
	}
	var total int64
	for {
		if err := c.SetReadDeadline(time.Now().Add(idle)); err != nil {
			return total, err
		}
		if ctx.Err() != nil { // after our move: see ctx's AfterFunc
			return total, ctx.Err()
		}
		n, err := copyStream(dst, c.Conn)
		total += n
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && n > 0 && ctx.Err() == nil {
			continue // bytes came within the period: not a stall
		}
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
			return total, fmt.Errorf("%w: no data for %s", errStreamIdle, idle)
		}
		return total, err
	}
}

// errStreamIdle marks a stream that made no progress for the read
// timeout. It matches os.ErrDeadlineExceeded.
var errStreamIdle = fmt.Errorf("acomm: stream stalled: %w", os.ErrDeadlineExceeded)

// end turns how copying the stream ended into the stream's error: for our
// streams, a reset (the server closed with our ready byte unread), or a
// ready byte the server closed on before reading it, means the stream was
// cut off; for any stream, so does a stall.
func (c *streamConn) end(copyErr error) error {
	switch {
	case copyErr != nil && errors.Is(copyErr, errStreamIdle):
		return fmt.Errorf("%w: %s: %w", ErrStreamBroken, c.path, copyErr)
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
func streamHTTP(ctx context.Context, dest io.Writer, addr *url.URL, idle time.Duration) error {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var watch *idleWatch
	if idle > 0 {
		watch = newIdleWatch(idle, func() { cancel(errStreamIdle) })
		defer watch.stop()
	}
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, addr.String(), nil)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidURL, addr.Redacted(), err)
	}
	resp, err := streamClient.Do(req)
	if err != nil {
		return httpStreamError(ctx, rctx, addr, "get stream", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode == http.StatusNotFound && resp.Header.Get(streamStatusHeader) == "not-announced" {
			return fmt.Errorf("%w: %w: %s from %s: %s", ErrHTTPStatus, ErrStreamNotAnnounced, resp.Status, addr.Redacted(), strings.TrimSpace(string(msg)))
		}
		return fmt.Errorf("%w: %s from %s: %s", ErrHTTPStatus, resp.Status, addr.Redacted(), strings.TrimSpace(string(msg)))
	}
	var body io.Reader = resp.Body
	if watch != nil {
		body = &progressReader{r: resp.Body, w: watch}
	}
	if _, err := copyBuffered(dest, body, &httpStreamBufPool); err != nil {
		return httpStreamError(ctx, rctx, addr, "read stream", err)
	}
	return nil
}

// httpStreamError classifies a failure of an HTTP stream: ctx's end; a
// stall; the server's abort (before its headers, or midway), which is a
// broken stream; or the connection.
func httpStreamError(ctx, rctx context.Context, addr *url.URL, stage string, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(context.Cause(rctx), errStreamIdle):
		return fmt.Errorf("%w: %s: %w", ErrStreamBroken, addr.Redacted(), context.Cause(rctx))
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %s: %w", ErrStreamBroken, addr.Redacted(), err)
	case stage == "get stream":
		return fmt.Errorf("%w: %s %s: %w", ErrUnreachable, stage, addr.Redacted(), err)
	}
	return fmt.Errorf("%w: %s %s: %w", ErrConnection, stage, addr.Redacted(), err)
}

// idleWatch calls fire when touch has not been called for idle. It uses a
// timer, and no goroutine.
type idleWatch struct {
	idle  time.Duration
	last  atomic.Int64 // monotonic nanoseconds since start of the last touch
	start time.Time
	timer *time.Timer
	fire  func()
	mu    sync.Mutex
	done  bool
}

func newIdleWatch(idle time.Duration, fire func()) *idleWatch {
	w := &idleWatch{idle: idle, start: time.Now(), fire: fire}
	w.timer = time.AfterFunc(idle, w.check)
	return w
}

// touch records progress.
func (w *idleWatch) touch() { w.last.Store(int64(time.Since(w.start))) }

// check fires when there was no progress for idle, or waits the rest.
func (w *idleWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	since := time.Since(w.start) - time.Duration(w.last.Load())
	if since >= w.idle {
		w.done = true
		w.fire()
		return
	}
	w.timer.Reset(w.idle - since)
}

// stop ends the watch.
func (w *idleWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	w.timer.Stop()
}

// progressReader touches its watch on every read that brings bytes.
type progressReader struct {
	r io.Reader
	w *idleWatch
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.touch()
	}
	return n, err
}
