package acomm

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Sentinel errors. Errors returned by this package are one of these or wrap
// one of them, so callers can match them with errors.Is.
var (
	// ErrInvalidRequest reports a request that failed validation or could
	// not be decoded.
	ErrInvalidRequest = errors.New("acomm: invalid request")
	// ErrInvalidResponse reports a response that failed validation or could
	// not be decoded.
	ErrInvalidResponse = errors.New("acomm: invalid response")
	// ErrInvalidURL reports a missing, malformed or unusable URL.
	ErrInvalidURL = errors.New("acomm: invalid url")
	// ErrUnsupportedScheme reports a URL whose scheme is not unix, http or
	// https.
	ErrUnsupportedScheme = errors.New("acomm: unsupported url scheme")
	// ErrInvalidArgument reports a nil or otherwise unusable argument.
	ErrInvalidArgument = errors.New("acomm: invalid argument")
	// ErrOptionNotApplicable reports an Option given to the Configure
	// of a component it does not apply to. It also matches
	// ErrInvalidArgument.
	ErrOptionNotApplicable = fmt.Errorf("%w: option not applicable", ErrInvalidArgument)

	// ErrFrameTooLarge reports a frame whose declared length exceeds the
	// maximum frame size. See FrameSizeError.
	ErrFrameTooLarge = errors.New("acomm: frame too large")
	// ErrTruncatedFrame reports a connection that ended in the middle of a
	// frame. It also matches io.ErrUnexpectedEOF.
	ErrTruncatedFrame = fmt.Errorf("acomm: truncated frame: %w", io.ErrUnexpectedEOF)
	// ErrMalformedFrame reports a frame whose body is not the JSON expected.
	ErrMalformedFrame = errors.New("acomm: malformed frame")
	// ErrRefused reports a frame that the receiver acknowledged with an
	// error. The error's text carries the receiver's reason.
	ErrRefused = errors.New("acomm: refused by receiver")
	// ErrHTTPStatus reports an HTTP exchange that ended with a non-2xx
	// status.
	ErrHTTPStatus = errors.New("acomm: unexpected http status")

	// ErrTimeout is the error of the response a tracker hands to a
	// request's ErrorHandler when no response arrived in time. It
	// reports Timeout() == true, like net.Error.
	ErrTimeout error = timeoutError{}
	// ErrNotStarted reports use of a Tracker or UnixListener that is not
	// running (never started, or stopped).
	ErrNotStarted = errors.New("acomm: not started")
	// ErrAlreadyStarted reports configuration of a running component.
	ErrAlreadyStarted = errors.New("acomm: already started")
	// ErrDuplicateID reports a request whose ID is already tracked.
	ErrDuplicateID = errors.New("acomm: request id already tracked")
	// ErrTooManyRequests reports a tracker already tracking as many
	// requests as WithMaxTracked allows.
	ErrTooManyRequests = errors.New("acomm: too many tracked requests")
	// ErrDuplicateName reports a MultiRequest name added twice.
	ErrDuplicateName = errors.New("acomm: request name already added")
	// ErrAddrInUse reports a socket path on which a live listener already
	// accepts connections.
	ErrAddrInUse = errors.New("acomm: socket address in use")
	// ErrSocketPathTooLong reports a unix socket path longer than the
	// kernel accepts (107 bytes on Linux).
	ErrSocketPathTooLong = errors.New("acomm: unix socket path too long")
	// ErrNoHTTPStreamURL reports a tracker created without an HTTP stream
	// URL being asked to build HTTP proxy stream URLs.
	ErrNoHTTPStreamURL = errors.New("acomm: tracker has no http stream url")
	// ErrUnreachable reports a peer that could not be reached: nothing
	// listens on the socket, the connection was refused, the HTTP request
	// could not be made.
	ErrUnreachable = errors.New("acomm: peer unreachable")
	// ErrConnection reports a connection that failed after it was made:
	// a read or write error, or a peer that closed without acknowledging
	// (the frame may or may not have been handled).
	ErrConnection = errors.New("acomm: connection failed")
	// ErrOutcomeUnknown reports a frame that was written whole to the
	// peer but whose acknowledgement never came (the connection failed,
	// or the peer closed it): the peer may have handled it, so sending
	// it again may run a task twice. It comes with ErrConnection.
	ErrOutcomeUnknown = errors.New("acomm: outcome unknown (the peer may have handled the frame)")
	// ErrNotDelivered reports a frame that certainly never reached the
	// peer: the connection failed before it was written whole. It comes
	// with ErrConnection; sending it again is safe.
	ErrNotDelivered = errors.New("acomm: not delivered")
	// ErrListen reports a socket that could not be set up: its directory,
	// the listen call, its mode.
	ErrListen = errors.New("acomm: cannot listen")
	// ErrUnsafeSocketPath reports a socket path that another user could
	// redirect or replace: a directory on it that is world-writable
	// without the sticky bit, a symbolic link on it owned by a user other
	// than root and this process's, or a private directory (a Tracker's
	// temporary one) that is not, or no longer, this process's own.
	// It also matches ErrListen.
	ErrUnsafeSocketPath = fmt.Errorf("%w: unsafe socket path", ErrListen)
	// ErrStreamBroken reports a stream that ended before its source did:
	// the source failed, or the server stopped, midway, or it made no
	// progress for the reader's read timeout. (Streams served by an
	// original acomm process, which cannot signal it, end without it.)
	ErrStreamBroken = errors.New("acomm: stream broken")
	// ErrStreamNotAnnounced reports a stream address that no tracker in
	// this process announced, or that was already served: Stream returns
	// it (with ErrHTTPStatus) for a 404 of our HTTP stream handlers.
	ErrStreamNotAnnounced = errors.New("acomm: stream not announced")
	// ErrTooManyStreams reports a tracker whose streams waiting for their
	// readers are already as many as WithMaxStreams allows.
	ErrTooManyStreams = errors.New("acomm: too many streams waiting")
)

// timeoutError is the type of ErrTimeout.
type timeoutError struct{}

// Error returns the timeout's message.
func (timeoutError) Error() string { return "acomm: response timeout" }

// Timeout reports true: this is a timeout, as net.Error means it.
func (timeoutError) Timeout() bool { return true }

// Temporary reports true: trying again may succeed.
func (timeoutError) Temporary() bool { return true }

// FrameSizeError reports a frame larger than the maximum allowed. It
// matches ErrFrameTooLarge with errors.Is.
type FrameSizeError struct {
	Size uint64 // declared or actual size of the frame body
	Max  int    // the limit in force
}

// Error describes the frame's size and the limit.
func (e *FrameSizeError) Error() string {
	return fmt.Sprintf("acomm: frame too large: %d bytes exceeds the maximum of %d", e.Size, e.Max)
}

// Unwrap returns ErrFrameTooLarge.
func (e *FrameSizeError) Unwrap() error { return ErrFrameTooLarge }

// RemoteError is the error of a Response decoded from the wire: the
// message a peer wrote into the response's "error" field. When the
// message begins with the text of one of this package's sentinels that
// travel on the wire (ErrTimeout, ErrRefused, ErrInvalidRequest,
// ErrInvalidResponse, ErrFrameTooLarge, ErrMalformedFrame and the
// sentinels registered with the server), errors.Is matches that sentinel
// too.
type RemoteError struct {
	Message string
}

// Error returns the peer's message.
func (e *RemoteError) Error() string { return e.Message }

// Timeout reports whether the remote error is a timeout (it matches
// ErrTimeout), like net.Error, so a timeout keeps its kind across the wire.
func (e *RemoteError) Timeout() bool { return e.Is(ErrTimeout) }

// Is reports whether target is a wire sentinel whose text begins the
// remote message, as the whole message or followed by ":" (the form
// fmt.Errorf("%w: ...") gives).
func (e *RemoteError) Is(target error) bool {
	for _, s := range wireSentinels {
		if target != s {
			continue
		}
		rest, ok := strings.CutPrefix(e.Message, s.Error())
		return ok && (rest == "" || rest[0] == ':')
	}
	return false
}

// wireSentinels are the sentinels that RemoteError recognises by text.
var wireSentinels = []error{
	ErrTimeout, ErrRefused, ErrInvalidRequest, ErrInvalidResponse,
	ErrFrameTooLarge, ErrMalformedFrame, ErrTruncatedFrame,
	ErrBusy, ErrUnknownTask, ErrServerStopped, ErrHandlerPanic, ErrTooManyConns,
}

// Errors that services report to callers inside responses. They are
// declared here so RemoteError can match them.
var (
	// ErrBusy is the error a Server answers with when it already runs its
	// maximum number of handlers.
	ErrBusy = errors.New("acomm: server busy")
	// ErrTooManyConns is the refusal a Server or Tracker acknowledges a
	// frame with when it arrives on a connection over the listener's
	// bound (see WithMaxConns).
	ErrTooManyConns = errors.New("acomm: too many connections")
	// ErrUnknownTask is the error a Server answers with for a task that no
	// handler is registered for.
	ErrUnknownTask = errors.New("acomm: unknown task")
	// ErrServerStopped is the error a Server answers with for a request
	// whose handler was cancelled by Stop.
	ErrServerStopped = errors.New("acomm: server stopped")
	// ErrHandlerPanic is the error a Server answers with when a handler
	// panics.
	ErrHandlerPanic = errors.New("acomm: task handler panicked")
)
