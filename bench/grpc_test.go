package bench

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// gRPC over a unix socket, with a service described by hand (no protoc):
// one unary method taking and returning a wrapperspb.BytesValue that holds
// the payload. One *grpc.ClientConn per benchmark, shared by the 64 par64
// goroutines (HTTP/2 streams multiplexed on one connection, as gRPC is
// normally used).
func init() {
	echoSystems = append(echoSystems, echoSystem{name: "grpc", setup: setupGRPC})
}

const grpcEchoMethod = "/acommbench.Echo/Echo"

// grpcEchoer is the service interface grpc checks the implementation
// against (what protoc would generate as EchoServer).
type grpcEchoer interface {
	echo(context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error)
}

type grpcEcho struct{}

func (grpcEcho) echo(_ context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	return in, nil
}

var grpcEchoDesc = grpc.ServiceDesc{
	ServiceName: "acommbench.Echo",
	HandlerType: (*grpcEchoer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, intercept grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			if intercept == nil {
				return srv.(grpcEchoer).echo(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: grpcEchoMethod}
			return intercept(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return srv.(grpcEchoer).echo(ctx, req.(*wrapperspb.BytesValue))
			})
		},
	}},
}

func setupGRPC(tb testing.TB) echoClient {
	l, path := listenUnix(tb)
	srv := grpc.NewServer()
	srv.RegisterService(&grpcEchoDesc, grpcEcho{})
	goServe(tb, func() error { return srv.Serve(l) }, srv.Stop)

	cc, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	ctx := benchContext(tb)
	req := wrapperspb.Bytes(echoPayload)
	return echoClient{call: func() error {
		resp := new(wrapperspb.BytesValue)
		if err := cc.Invoke(ctx, grpcEchoMethod, req, resp); err != nil {
			return err
		}
		return checkEcho(resp.GetValue())
	}}
}
