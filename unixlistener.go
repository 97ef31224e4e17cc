package acomm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// maxSocketPath is the longest unix socket path Linux accepts (sun_path is
// 108 bytes including the terminating NUL).
const maxSocketPath = 107

// UnixListener is a wrapper for a unix socket. It handles creation and
// listening for new connections, as well as graceful shutdown.
//
// The socket's directory is created without world access, the socket is
// not world-writable (see WithSocketMode), a stale socket file left by a
// dead process is replaced, and the socket file is removed by Stop. Start
// refuses, with an error matching ErrUnsafeSocketPath, a socket path that
// another user could redirect or replace: one through a world-writable
// directory without the sticky bit, or through a symbolic link owned by
// a user other than root and this process's.
type UnixListener struct {
	socketPath  string
	acceptLimit int
	cfg         config

	mu       sync.Mutex // protects the fields below
	running  bool
	listener *net.UnixListener
	file     os.FileInfo           // the socket file as Start made it (see removeSocketFile)
	conns    map[net.Conn]struct{} // connections handed out, not yet done
	connCh   chan net.Conn         // accepted connections; closed when accepting ends
	done     chan struct{}         // closed when Stop begins
	stopped  chan struct{}         // closed when Stop has finished
	loopDone chan struct{}         // closed when the accept loop returns
	connWG   sync.WaitGroup        // one count per entry of conns
	refused  atomic.Int64          // connections refused by admit
	frames   bool                  // its connections carry frames: see refuseConn
	refusing map[net.Conn]struct{} // connections being refused
	refuseWG sync.WaitGroup        // one count per entry of refusing
}

// NewUnixListener creates and initializes a new UnixListener. AcceptLimit
// controls how many connections it will listen for before stopping; 0 and
// below is unlimited.
func NewUnixListener(socketPath string, acceptLimit int) *UnixListener {
	if socketPath != "" {
		if abs, err := filepath.Abs(socketPath); err == nil {
			socketPath = abs
		}
	}
	return &UnixListener{
		socketPath:  socketPath,
		acceptLimit: acceptLimit,
		cfg:         configFor(forListener),
	}
}

// Configure applies options before Start. These apply to a UnixListener:
// WithLogger, WithSocketMode, WithMaxConns, WithPeerCheck, WithListener
// and WithGracePeriod. Any other option (those about frames, which a
// UnixListener leaves to its user) fails with an error matching
// ErrOptionNotApplicable, and an invalid one with ErrInvalidArgument; on
// error no option is applied. It fails with ErrAlreadyStarted on a running
// listener.
func (ul *UnixListener) Configure(opts ...Option) error {
	ul.mu.Lock()
	defer ul.mu.Unlock()
	if ul.running {
		return ErrAlreadyStarted
	}
	cfg := ul.cfg
	if err := cfg.apply(opts); err != nil {
		return err
	}
	ul.cfg = cfg
	return nil
}

// Addr returns the string representation of the unix address.
func (ul *UnixListener) Addr() string {
	return ul.socketPath
}

// URL returns the URL representation of the unix address.
func (ul *UnixListener) URL() *url.URL {
	return &url.URL{Scheme: "unix", Path: ul.socketPath}
}

// Start prepares the listener and starts listening for new connections.
// Starting a running listener does nothing.
func (ul *UnixListener) Start() error {
	ul.mu.Lock()
	defer ul.mu.Unlock()
	if ul.running {
		return nil
	}
	l, handed, err := ul.listen() // handoff.go
	if err != nil {
		return err
	}
	ul.listener = l
	ul.file = nil // (a handed socket's file is not ours to remove)
	if !handed {
		if fi, err := os.Lstat(ul.socketPath); err == nil {
			ul.file = fi
		}
	}
	ul.conns = make(map[net.Conn]struct{})
	ul.refusing = make(map[net.Conn]struct{})
	ul.connCh = make(chan net.Conn)
	ul.done = make(chan struct{})
	ul.stopped = make(chan struct{})
	ul.loopDone = make(chan struct{})
	ul.running = true
	go ul.acceptLoop(l, ul.connCh, ul.done, ul.loopDone)
	return nil
}

// listenUnix creates the socket's directory if needed, clears a stale
// socket file, listens, and sets the socket's mode. A directory that
// another user controls is refused (see checkSocketDir).
func listenUnix(path string, mode os.FileMode) (*net.UnixListener, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty socket path", ErrInvalidArgument)
	}
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("%w: %d bytes (max %d): %s", ErrSocketPathTooLong, len(path), maxSocketPath, path)
	}
	dir := filepath.Dir(path)
	if err := checkSocketDir(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("%w: create socket directory: %w", ErrListen, err)
	}
	if err := checkSocketDir(dir); err != nil { // again: it may have changed meanwhile
		return nil, err
	}
	if err := clearStaleSocket(path); err != nil {
		return nil, err
	}
	if l, err := listenPrivately(path, mode); err == nil || !errors.Is(err, errNoPrivateBind) {
		return l, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		if errors.Is(err, errAddrInUse) {
			return nil, fmt.Errorf("%w: %s", ErrAddrInUse, path)
		}
		return nil, fmt.Errorf("%w: listen on %s: %w", ErrListen, path, err)
	}
	// The file is removed by the owner after its last use, not by Close,
	// so that a listener closed early (accept limit) can still be cleaned
	// up in one place.
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(path, mode); err != nil {
		_ = l.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("%w: chmod socket: %w", ErrListen, err)
	}
	return l, nil
}

// removeSocketFile removes the listener's socket file if the path still
// holds the one Start made: by now it may hold another listener's socket
// (ours was removed, and the path reused), or anything else, which are
// not ours to remove. It removes it once at most: the path is not ours
// again after. Its caller holds ul.mu.
func (ul *UnixListener) removeSocketFile() {
	if ul.file == nil {
		return
	}
	if cur, err := os.Lstat(ul.socketPath); err == nil && os.SameFile(ul.file, cur) {
		_ = os.Remove(ul.socketPath)
	}
	ul.file = nil
}

// errNoPrivateBind makes listenUnix bind in place: the private path would
// be too long.
var errNoPrivateBind = errors.New("acomm: no room for a private bind")

// listenPrivately binds the socket in a fresh private (0700) directory
// beside path, gives it its mode there, and only then links it into place,
// so that it is never reachable with the looser mode the umask gives a new
// socket. Linking fails if path exists, so a socket that another process
// bound meanwhile is never replaced.
func listenPrivately(path string, mode os.FileMode) (*net.UnixListener, error) {
	dir := filepath.Dir(path) + string(filepath.Separator)
	if len(dir)+len(".acomm-0123456789/s") > maxSocketPath {
		return nil, errNoPrivateBind
	}
	tmpDir, err := os.MkdirTemp(dir, ".acomm-")
	if err != nil {
		return nil, fmt.Errorf("%w: create private bind directory: %w", ErrListen, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("%w: listen on %s: %w", ErrListen, path, err)
	}
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, mode); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("%w: chmod socket: %w", ErrListen, err)
	}
	if err := os.Link(tmp, path); err != nil {
		_ = l.Close()
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%w: %s", ErrAddrInUse, path)
		}
		return nil, errNoPrivateBind // no hard links here: bind in place
	}
	return l, nil
}

// clearStaleSocket removes a socket file at path that no process listens
// on. A live socket yields ErrAddrInUse, and a file that is not a socket
// is left alone and reported.
func clearStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: stat socket path: %w", ErrListen, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%w: %s exists and is not a socket", ErrAddrInUse, path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = conn.Close()
		return fmt.Errorf("%w: %s", ErrAddrInUse, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// Not provably dead (no permission to connect, a full
		// backlog, a timeout): leave it to its owner.
		return fmt.Errorf("%w: %s may be live: %w", ErrAddrInUse, path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: remove stale socket: %w", ErrListen, err)
	}
	return nil
}

// acceptLoop accepts connections and hands them to NextConn until the
// listener is stopped or the accept limit is reached.
func (ul *UnixListener) acceptLoop(l *net.UnixListener, connCh chan net.Conn, done, loopDone chan struct{}) {
	defer close(loopDone)
	defer close(connCh)
	log := ul.cfg.logger.WithField("socket", ul.socketPath)
	accepted := 0
	var backoff time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			select {
			case <-done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporaryAcceptErr(err) {
				backoff = nextBackoff(backoff)
				log.WithError(err).WithField("retry_in", backoff).Warn("accept failed; retrying")
				select {
				case <-time.After(backoff):
					continue
				case <-done:
					return
				}
			}
			log.WithError(err).Error("accept failed; listener stopped accepting")
			return
		}
		backoff = 0
		if !ul.admit(conn, log) {
			continue
		}

		select {
		case connCh <- conn:
			// Let the NextConn that took it run now, rather than once
			// this goroutine has gone back to Accept and parked: go tool
			// trace of BenchmarkEcho/acomm-seed-oneshot showed the taker
			// runnable but waiting 6 us a connection on the critical
			// path, 0.9 us with the yield (the loop's own wait moves off
			// it: no connection is waiting meanwhile, or it is next).
			runtime.Gosched()
		case <-done:
			ul.DoneConn(conn)
			return
		}
		accepted++
		if ul.acceptLimit > 0 && accepted >= ul.acceptLimit {
			// Nobody else can connect: close the socket now. Stop must
			// not remove the path again: by then it may be another
			// listener's socket.
			_ = l.Close()
			ul.mu.Lock()
			ul.removeSocketFile()
			ul.mu.Unlock()
			return
		}
	}
}

// admit applies the peer check and the connection bound to a new
// connection, and registers it when it passes.
func (ul *UnixListener) admit(conn net.Conn, log logrus.FieldLogger) bool {
	if ul.cfg.peerCheck != nil {
		cred, err := checkPeer(conn, ul.cfg.peerCheck)
		if err != nil {
			log.WithError(err).WithFields(logrus.Fields{"pid": cred.PID, "uid": cred.UID, "gid": cred.GID}).
				Warn("refused connection from peer")
			ul.refused.Add(1)
			_ = conn.Close()
			return false
		}
	}
	ul.mu.Lock()
	if ul.cfg.maxConns > 0 && len(ul.conns) >= ul.cfg.maxConns {
		ul.mu.Unlock()
		log.WithField("max_conns", ul.cfg.maxConns).Warn("refused connection: too many open")
		ul.refuseConn(conn)
		return false
	}
	ul.conns[conn] = struct{}{}
	ul.connWG.Add(1)
	ul.mu.Unlock()
	return true
}

// Refused returns how many connections were refused because the peer
// check refused them or the connection bound (WithMaxConns, default
// DefaultMaxConns) was reached.
func (ul *UnixListener) Refused() int64 {
	return ul.refused.Load()
}

// totalRefused is Refused, safe on a nil listener.
func (ul *UnixListener) totalRefused() uint64 {
	if ul == nil {
		return 0
	}
	return uint64(ul.refused.Load())
}

// nextBackoff doubles d between 5ms and 1s.
func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	if d *= 2; d > time.Second {
		d = time.Second
	}
	return d
}

// NextConn blocks and returns the next connection. It will return nil when
// the listener is stopped (or has reached its accept limit, or was never
// started). Connections should be handled in a go routine to take
// advantage of concurrency. When done, the connection MUST be finished with
// a call to DoneConn.
func (ul *UnixListener) NextConn() net.Conn {
	ul.mu.Lock()
	ch := ul.connCh
	ul.mu.Unlock()
	if ch == nil {
		return nil
	}
	return <-ch
}

// closeReads shuts the reading side of the connections handed out by
// NextConn: their readers see the end of their input (and finish what
// they owe their peers, then call DoneConn).
func (ul *UnixListener) closeReads() {
	ul.mu.Lock()
	defer ul.mu.Unlock()
	for c := range ul.conns {
		if uc, ok := c.(interface{ CloseRead() error }); ok {
			_ = uc.CloseRead()
		} else {
			_ = c.Close()
		}
	}
}

// DoneConn completes the handling of a connection: it closes the
// connection and lets Stop know it is finished. Calling it more than once
// for a connection is harmless.
func (ul *UnixListener) DoneConn(conn net.Conn) {
	if conn == nil {
		return
	}
	ul.mu.Lock()
	_, ok := ul.conns[conn]
	delete(ul.conns, conn)
	ul.mu.Unlock()
	if !ok {
		return
	}
	_ = conn.Close()
	ul.connWG.Done()
}

// Stop stops listening for new connections and removes the socket file.
// It then waits up to timeout for the connections handed out by NextConn
// to be finished with DoneConn, and closes those still open. Stopping a
// listener that is not running does nothing; a Stop called while another
// is under way returns when that one has finished.
func (ul *UnixListener) Stop(timeout time.Duration) {
	if stopped, _ := ul.shutdown(context.Background(), timeout); stopped != nil {
		<-stopped // the stop under way, which has a bound of its own
	}
}

// Shutdown stops listening for new connections and removes the socket
// file, then waits for the connections handed out by NextConn to be
// finished with DoneConn, for the grace period at most (WithGracePeriod,
// default DefaultGracePeriod, as a Server waits for its handlers): it
// then closes those still open, and the stop is done. When ctx ends first,
// it closes them at once and returns ctx.Err(). Shutting down a listener
// that is not running does nothing; a call made while another is under
// way returns when that one has finished or its own ctx ends.
func (ul *UnixListener) Shutdown(ctx context.Context) error {
	_, err := ul.shutdown(ctx, ul.cfg.gracePeriod)
	return err
}

// shutdown is Shutdown, waiting for the connections for grace at most;
// it also returns the channel closed when the stop has finished (nil when
// the listener never ran).
func (ul *UnixListener) shutdown(ctx context.Context, grace time.Duration) (chan struct{}, error) {
	ul.mu.Lock()
	if !ul.running {
		stopped := ul.stopped
		ul.mu.Unlock()
		if stopped == nil {
			return nil, nil
		}
		return stopped, waitStopped(ctx, stopped, func() {})
	}
	ul.running = false
	close(ul.done)
	l, loopDone, stopped := ul.listener, ul.loopDone, ul.stopped
	ul.mu.Unlock()
	defer close(stopped)

	_ = l.Close()
	<-loopDone
	ul.stopRefusing()
	ul.mu.Lock()
	ul.removeSocketFile()
	ul.mu.Unlock()

	idle := make(chan struct{})
	go func() {
		ul.connWG.Wait()
		close(idle)
	}()
	// Out of time: close what is left and count it done, so the stop
	// never depends on a user that forgets DoneConn.
	cut := func() {
		ul.mu.Lock()
		for c := range ul.conns {
			_ = c.Close()
			delete(ul.conns, c)
			ul.connWG.Done()
		}
		ul.mu.Unlock()
	}
	var err error
	if !waitClosed(idle, ctx.Done(), grace) {
		select {
		case <-idle:
		default:
			err = ctx.Err() // nil when the grace period ran out
			cut()
		}
	}
	<-idle
	return stopped, err
}

// errAddrInUse is the errno of listening on a bound address.
var errAddrInUse = syscall.EADDRINUSE

// isTemporaryAcceptErr reports accept errors worth retrying: the process or
// system is out of descriptors or memory, or the peer aborted.
func isTemporaryAcceptErr(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EINTR)
}
