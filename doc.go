// Package acomm is a library for asynchronous JSON-RPC-like communication
// between services on one machine, over unix sockets, with a bridge to
// HTTP for callers elsewhere.
//
// Like JSON-RPC, requests specify the task to run, arguments for the task,
// and an id. Additionally, they specify a response hook (a unix or http(s)
// URL) where the response should be sent, and success and error handlers
// that run when it arrives. Responses carry the request's id, a result or
// an error, and optionally a stream URL where more data can be read
// directly. Args and results are json.RawMessage, to be unmarshalled into
// whatever the user wants.
//
// A Tracker, embedded in each service, registers outgoing requests with
// timeouts and listens on its own unix socket for their responses. Each
// tracked request's handler runs exactly once: on its response, or on its
// timeout (an error matching ErrTimeout), and never after RemoveRequest.
// Stop waits for outstanding requests, then closes every socket it opened.
// The tracker also proxies requests whose response hook is http(s) through
// its unix socket (ProxyUnix), serves ad-hoc stream sockets
// (NewStreamUnix), and makes them readable over HTTP (ProxyStreamHandler).
//
// UnixListener wraps a unix socket with connection tracking for graceful
// shutdown. On a unix socket every message is a frame, a 4-byte big-endian
// length followed by that much JSON, and every frame is acknowledged by a
// Response frame whose error is empty when the frame was accepted. Send,
// SendConnData and UnmarshalConnData speak this format.
//
// Errors returned by the package are, or wrap, the exported Err sentinels,
// so callers can match them with errors.Is. Background goroutines log
// through a logrus.FieldLogger set with WithLogger; by default nothing is
// logged.
package acomm
