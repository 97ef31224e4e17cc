package main

import (
	"bytes"
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestOneTrace checks that the example's call, the two handlers and the
// nested call make one trace, each span the child of the one before.
func TestOneTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	var out bytes.Buffer
	if err := run(context.Background(), tp, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "hello, user-42\n" {
		t.Fatalf("result %q", got)
	}

	spans := exp.GetSpans()
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	chain := []struct {
		name string
		kind trace.SpanKind
	}{
		{"acomm.call greet", trace.SpanKindClient},
		{"acomm.handle greet", trace.SpanKindServer},
		{"acomm.call names.lookup", trace.SpanKindClient},
		{"acomm.handle names.lookup", trace.SpanKindServer},
	}
	if len(spans) != len(chain) {
		t.Fatalf("%d spans, want %d: %v", len(spans), len(chain), byName)
	}
	var parent trace.SpanContext
	for i, c := range chain {
		s, ok := byName[c.name]
		if !ok {
			t.Fatalf("no span %q", c.name)
		}
		if s.SpanKind != c.kind {
			t.Errorf("span %q is of kind %s, want %s", c.name, s.SpanKind, c.kind)
		}
		if i == 0 {
			if s.Parent.IsValid() {
				t.Errorf("span %q has a parent", c.name)
			}
		} else {
			if s.SpanContext.TraceID() != parent.TraceID() {
				t.Errorf("span %q is in trace %s, want %s", c.name, s.SpanContext.TraceID(), parent.TraceID())
			}
			if s.Parent.SpanID() != parent.SpanID() {
				t.Errorf("span %q has parent %s, want %s", c.name, s.Parent.SpanID(), parent.SpanID())
			}
		}
		parent = s.SpanContext
	}
}
