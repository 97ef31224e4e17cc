package bench

import (
	"context"
	"encoding/json"
	"net"
	"testing"

	"github.com/varlink/go/varlink"
)

// github.com/varlink/go over a unix socket: the closest peer to acomm in
// kind (JSON messages between local services on a unix socket). The
// service implements one interface, written by hand rather than generated
// from an IDL file, whose Echo method replies with its parameters
// unchanged; echoPayload (a JSON object) travels as the call's parameters
// and comes back as the reply's, so the same 100 bytes of JSON cross the
// socket each way, inside varlink's NUL-terminated JSON messages.
//
// A varlink connection carries one call at a time (replies come back in
// order, with no id to match them), so like floor-kept, par64 gives each
// of its 64 goroutines its own varlink.Connection, and so its own server
// goroutine, which is how varlink clients run calls in parallel.
func init() {
	echoSystems = append(echoSystems, echoSystem{name: "varlink", setup: setupVarlink})
}

const (
	varlinkInterface = "org.acommgo.bench"
	varlinkMethod    = varlinkInterface + ".Echo"
)

// varlinkEcho is the service's one interface.
type varlinkEcho struct{}

func (varlinkEcho) VarlinkGetName() string { return varlinkInterface }

func (varlinkEcho) VarlinkGetDescription() string {
	return "interface " + varlinkInterface + "\n\nmethod Echo(msg: object) -> (msg: object)\n"
}

func (varlinkEcho) VarlinkDispatch(ctx context.Context, c varlink.Call, method string) error {
	if method != "Echo" {
		return c.ReplyMethodNotFound(ctx, method)
	}
	if c.In.Parameters == nil {
		return c.ReplyInvalidParameter(ctx, "parameters")
	}
	return c.Reply(ctx, *c.In.Parameters)
}

func setupVarlink(tb testing.TB) echoClient {
	svc, err := varlink.NewService("acommgo", "bench", "1", "https://github.com/acommgo/acomm")
	if err != nil {
		tb.Fatal(err)
	}
	if err := svc.RegisterInterface(varlinkEcho{}); err != nil {
		tb.Fatal(err)
	}
	// serveConns owns the listener and the connections, so that cleanup
	// closes them and waits for every ServeConn to return; the service's
	// own Listen would leave the connections' goroutines to the clients.
	l, path := listenUnix(tb)
	ctx := benchContext(tb)
	serveConns(tb, l, func(c net.Conn) { svc.ServeConn(ctx, c) })

	newConn := func() func() error {
		conn, err := varlink.NewConnection(ctx, "unix:"+path)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { conn.Close() })
		args := json.RawMessage(echoPayload)
		return func() error {
			var reply json.RawMessage
			if err := conn.Call(ctx, varlinkMethod, args, &reply); err != nil {
				return err
			}
			return checkEcho(reply)
		}
	}
	return echoClient{call: newConn(), newWorker: newConn}
}
