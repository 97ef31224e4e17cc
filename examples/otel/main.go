// Command otel shows acomm traced with OpenTelemetry: one trace spans a
// Call, the handler of the service it reaches, and a Call that handler
// makes to a second service, and is printed to stdout by the OpenTelemetry
// stdout exporter.
//
//	cd examples/otel && go run .
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/acommgo/acomm"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func main() {
	exp, err := stdouttrace.New(stdouttrace.WithPrettyPrint(), stdouttrace.WithWriter(os.Stdout))
	if err == nil {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		err = run(context.Background(), tp, os.Stderr)
		if serr := tp.Shutdown(context.Background()); err == nil {
			err = serr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "otel example:", err)
		os.Exit(1)
	}
}

// run starts two services and makes one call, traced by tp; it prints
// the call's result to out.
func run(ctx context.Context, tp trace.TracerProvider, out io.Writer) error {
	prop := propagation.TraceContext{}

	dir, err := os.MkdirTemp("", "acomm-otel")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// One tracker serves every caller here: the program's own Call and
	// the greeter's nested one. Its Calls are traced.
	tracker, err := acomm.NewTracker(filepath.Join(dir, "tracker.sock"), nil, 5*time.Second)
	if err != nil {
		return err
	}
	if err := tracker.Configure(acomm.WithCallMiddleware(callMiddleware(tp, prop))); err != nil {
		return err
	}
	if err := tracker.Start(); err != nil {
		return err
	}
	defer tracker.Stop()

	names := acomm.NewServer(filepath.Join(dir, "names.sock"), tracker)
	names.Use(serverMiddleware(tp, prop))
	names.Handle("names.lookup", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		var id int
		if err := req.UnmarshalArgs(&id); err != nil {
			return nil, nil, err
		}
		return fmt.Sprintf("user-%d", id), nil, nil
	})
	if err := names.Start(); err != nil {
		return err
	}
	defer names.Stop()

	greeter := acomm.NewServer(filepath.Join(dir, "greeter.sock"), tracker)
	greeter.Use(serverMiddleware(tp, prop))
	greeter.Handle("greet", func(ctx context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		// ctx is inside the handler's span: this Call is its child.
		resp, err := tracker.Call(ctx, names.URL(), "names.lookup", req.Args)
		if err != nil {
			return nil, nil, err
		}
		var name string
		if err := resp.UnmarshalResult(&name); err != nil {
			return nil, nil, err
		}
		return "hello, " + name, nil, nil
	})
	if err := greeter.Start(); err != nil {
		return err
	}
	defer greeter.Stop()

	resp, err := tracker.Call(ctx, greeter.URL(), "greet", 42)
	if err != nil {
		return err
	}
	var greeting string
	if err := resp.UnmarshalResult(&greeting); err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, greeting)
	return err
}
