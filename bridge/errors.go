package bridge

import "errors"

// Sentinel errors of the bridge. Errors returned by this package are one
// of these or of the acomm package's sentinels, or wrap one, so callers can
// match them with errors.Is.
var (
	// ErrHookForbidden reports a response hook that the bridge may not
	// deliver to: refused by its HookPolicy or its CheckHook.
	ErrHookForbidden = errors.New("acomm bridge: response hook forbidden")
	// ErrUnboundResponse reports a response posted to /responses at a
	// URL that is not bound to its request (see acomm.Tracker.BindHook):
	// it comes from someone who was not sent the request.
	ErrUnboundResponse = errors.New("acomm bridge: response not bound to its request")
	// ErrClosed reports a bridge that is shutting down or has shut down.
	ErrClosed = errors.New("acomm bridge: closed")
)
