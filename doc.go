// Package acomm is a library for asynchronous JSON-RPC-like communication
// between services on one machine, over unix sockets, with a bridge to
// HTTP for callers elsewhere.
//
// # Where to start
//
// To offer tasks, create a Server with NewServer, register a TaskHandler
// per task with Server.Handle (and, optionally, a description with
// Server.Describe), then Server.Start. To call them, create a Tracker with
// NewTracker, Tracker.Start it, and use Tracker.Call. The runnable
// examples (Example, ExampleServer) show both; the acomm command
// (cmd/acomm) calls, pings and introspects services from a shell.
//
// # How it works
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
// A Server is the service side in one value: it listens on a unix socket,
// acknowledges and validates each request, dispatches it by task to a
// TaskHandler with a bounded number running at once (ErrBusy above it),
// contains panics, turns returned streams into stream URLs, and stops
// gracefully. Every Server also answers two reserved tasks, InfoTask
// (what it offers) and PingTask (whether it is alive), unless configured
// WithoutIntrospection. Tracker.Call is the synchronous call on top of the
// asynchronous core: send, wait for the answer or the context.
//
// As gRPC does, a request carries its caller's deadline (Request.Deadline,
// the handler's context deadline) and metadata beside its args
// (Request.Meta, ContextWithMeta), and a caller that gives up tells the
// service, whose handler's context is then cancelled (CancelTask; only
// the request's owner, the sender of a notice carrying the request's own
// response hook, may cancel it).
// Server.Use and WithCallMiddleware wrap every handler and every Call, for
// logging, metrics, authorization or tracing in one place.
//
// Package github.com/acommgo/acomm/bridge puts HTTP in front of local
// services for callers on other machines, on this package's exported API:
// it routes POSTed requests by task to unix services, delivers their
// answers to the callers' HTTP hooks, serves announced streams once, and
// receives responses over HTTP for a tracker. The acomm command
// (cmd/acomm) wraps it as a daemon, with call, stream and demo
// subcommands.
//
// UnixListener wraps a unix socket with connection tracking for graceful
// shutdown. A Server, Tracker or UnixListener can also serve a socket it
// is handed instead of creating one (WithListener): one passed by systemd
// socket activation, or inherited from a parent process. On a unix socket every message is a frame, a 4-byte big-endian
// length followed by that much JSON, and every frame is acknowledged by a
// Response frame whose error is empty when the frame was accepted. Send,
// SendConnData and UnmarshalConnData speak this format.
//
// Tracker, Server and UnixListener share one Option type, passed to their
// Configure before Start (an option that does not apply to the component
// is refused with ErrOptionNotApplicable), and one way to stop:
// Shutdown(ctx), which returns ctx.Err() as soon as ctx ends; the seed
// API's Stop is Shutdown without a deadline.
//
// Errors returned by the package are, or wrap, the exported Err sentinels,
// so callers can match them with errors.Is. Background goroutines log
// through a logrus.FieldLogger set with WithLogger; by default nothing is
// logged.
package acomm
