package main

import (
	"context"
	"io"
	"net/url"

	"github.com/acommgo/acomm"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The two middlewares below are all it takes to trace acomm: the call
// middleware starts a client span around every Tracker.Call and puts its
// W3C trace context (traceparent, tracestate) into the request's Meta;
// the server middleware continues that trace in a server span around
// every handler, and hands the handler a context inside it, so that a
// Call the handler makes is a child of it.

// instrumentation is the name the spans are recorded under.
const instrumentation = "github.com/acommgo/acomm/examples/otel"

// callMiddleware traces every Call of a tracker (see
// acomm.WithCallMiddleware).
func callMiddleware(tp trace.TracerProvider, prop propagation.TextMapPropagator) func(acomm.CallFunc) acomm.CallFunc {
	tracer := tp.Tracer(instrumentation)
	return func(next acomm.CallFunc) acomm.CallFunc {
		return func(ctx context.Context, dest *url.URL, task string, args any) (*acomm.Response, error) {
			ctx, span := tracer.Start(ctx, "acomm.call "+task,
				trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(
					attribute.String("rpc.system", "acomm"),
					attribute.String("rpc.method", task),
					attribute.String("server.address", dest.Redacted()),
				))
			defer span.End()
			carrier := propagation.MapCarrier{}
			prop.Inject(ctx, carrier)
			resp, err := next(acomm.ContextWithMeta(ctx, carrier), dest, task, args)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			return resp, err
		}
	}
}

// serverMiddleware traces every handler of a server (see
// acomm.Server.Use), as a child of the caller's span when the request
// carries its trace context.
func serverMiddleware(tp trace.TracerProvider, prop propagation.TextMapPropagator) func(acomm.TaskHandler) acomm.TaskHandler {
	tracer := tp.Tracer(instrumentation)
	return func(next acomm.TaskHandler) acomm.TaskHandler {
		return func(ctx context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
			ctx = prop.Extract(ctx, propagation.MapCarrier(req.Meta))
			ctx, span := tracer.Start(ctx, "acomm.handle "+req.Task,
				trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(
					attribute.String("rpc.system", "acomm"),
					attribute.String("rpc.method", req.Task),
					attribute.String("acomm.request_id", req.ID),
				))
			defer span.End()
			result, stream, err := next(ctx, req)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			return result, stream, err
		}
	}
}
