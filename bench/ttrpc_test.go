package bench

import (
	"context"
	"testing"

	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// containerd/ttrpc over a unix socket, with a service registered by hand
// through ttrpc.ServiceDesc: one method taking and returning a
// wrapperspb.BytesValue that holds the payload. One *ttrpc.Client per
// benchmark, shared by the 64 par64 goroutines (ttrpc multiplexes calls on
// one connection by stream id).
func init() {
	echoSystems = append(echoSystems, echoSystem{name: "ttrpc", setup: setupTTRPC})
}

const (
	ttrpcService = "acommbench.Echo"
	ttrpcMethod  = "Echo"
)

func setupTTRPC(tb testing.TB) echoClient {
	srv, err := ttrpc.NewServer()
	if err != nil {
		tb.Fatal(err)
	}
	srv.RegisterService(ttrpcService, &ttrpc.ServiceDesc{
		Methods: map[string]ttrpc.Method{
			ttrpcMethod: func(_ context.Context, unmarshal func(any) error) (any, error) {
				in := new(wrapperspb.BytesValue)
				if err := unmarshal(in); err != nil {
					return nil, err
				}
				return in, nil
			},
		},
	})
	l, path := listenUnix(tb)
	goServe(tb, func() error { return srv.Serve(context.Background(), l) }, func() { srv.Close() })

	client := ttrpc.NewClient(dialUnix(tb, path))
	tb.Cleanup(func() { client.Close() })
	ctx := benchContext(tb)
	req := wrapperspb.Bytes(echoPayload)
	return echoClient{call: func() error {
		resp := new(wrapperspb.BytesValue)
		if err := client.Call(ctx, ttrpcService, ttrpcMethod, req, resp); err != nil {
			return err
		}
		return checkEcho(resp.GetValue())
	}}
}
