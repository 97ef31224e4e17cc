package bench

import (
	"encoding/json"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
	"testing"
)

// net/rpc from the standard library, with its two codecs:
//
//   - netrpc-gob: the default gob codec, payload sent as []byte.
//   - netrpc-json: net/rpc/jsonrpc (JSON-RPC 1.0), payload sent as a
//     json.RawMessage, so it travels as JSON and not base64.
//
// One *rpc.Client per benchmark, shared by the 64 par64 goroutines: net/rpc
// multiplexes calls on one connection by sequence number.
func init() {
	echoSystems = append(echoSystems,
		echoSystem{name: "netrpc-gob", setup: func(tb testing.TB) echoClient {
			return setupNetRPC(tb, false)
		}},
		echoSystem{name: "netrpc-json", setup: func(tb testing.TB) echoClient {
			return setupNetRPC(tb, true)
		}},
	)
}

// EchoRPC is the net/rpc service (net/rpc wants exported names).
type EchoRPC struct{}

// Echo echoes args (gob codec).
func (EchoRPC) Echo(args []byte, reply *[]byte) error {
	*reply = args
	return nil
}

// EchoJSON echoes args (JSON codec).
func (EchoRPC) EchoJSON(args json.RawMessage, reply *json.RawMessage) error {
	*reply = args
	return nil
}

func setupNetRPC(tb testing.TB, useJSON bool) echoClient {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Echo", EchoRPC{}); err != nil {
		tb.Fatal(err)
	}
	l, path := listenUnix(tb)
	serveConns(tb, l, func(c net.Conn) {
		if useJSON {
			srv.ServeCodec(jsonrpc.NewServerCodec(c))
		} else {
			srv.ServeConn(c)
		}
	})
	conn := dialUnix(tb, path)
	var client *rpc.Client
	if useJSON {
		client = jsonrpc.NewClient(conn)
	} else {
		client = rpc.NewClient(conn)
	}
	tb.Cleanup(func() { client.Close() })

	if useJSON {
		args := json.RawMessage(echoPayload)
		return echoClient{call: func() error {
			var reply json.RawMessage
			if err := client.Call("Echo.EchoJSON", args, &reply); err != nil {
				return err
			}
			return checkEcho(reply)
		}}
	}
	return echoClient{call: func() error {
		var reply []byte
		if err := client.Call("Echo.Echo", echoPayload, &reply); err != nil {
			return err
		}
		return checkEcho(reply)
	}}
}
