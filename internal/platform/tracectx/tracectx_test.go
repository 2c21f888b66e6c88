package tracectx_test

import (
	"context"
	"fmt"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/internal/platform/tracectx"
)

func tp(trace, span byte, sampled bool) string {
	flags := "00"
	if sampled {
		flags = "01"
	}
	return fmt.Sprintf("00-%032x-%016x-%s", trace, span, flags)
}

func TestParseAndFormat(t *testing.T) {
	s := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sc := tracectx.Parse(s)
	if !sc.IsValid() || !sc.IsRemote() || !sc.IsSampled() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("parse %s: %+v", s, sc)
	}
	if got := tracectx.Format(sc); got != s {
		t.Errorf("format: %s, want %s", got, s)
	}
	if sc := tracectx.Parse(tp(1, 2, false)); !sc.IsValid() || sc.IsSampled() {
		t.Errorf("unsampled: %+v", sc)
	}
	for _, bad := range []string{"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01x",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz"} {
		if tracectx.Parse(bad).IsValid() {
			t.Errorf("%q parsed", bad)
		}
	}
	if tracectx.Format(trace.SpanContext{}) != "" {
		t.Error("an invalid span context formatted")
	}
	ctx := tracectx.Extract(context.Background(), s)
	if tracectx.Of(ctx) != s {
		t.Errorf("extract then of: %s", tracectx.Of(ctx))
	}
	if tracectx.Extract(context.Background(), "junk") != context.Background() {
		t.Error("junk extracted")
	}
}

func TestHeaderIgnoresCase(t *testing.T) {
	for _, h := range []map[string]string{{"traceparent": "a"}, {"Traceparent": "a"}, {"TRACEPARENT": "a"}, {"x": "b", "TraceParent": "a"}} {
		if got := tracectx.Header(h); got != "a" {
			t.Errorf("%v: %q", h, got)
		}
	}
	if got := tracectx.Header(map[string]string{"tracestate": "a"}); got != "" {
		t.Errorf("no traceparent: %q", got)
	}
}

func TestBatchSpanParentsUnderItsTraceAndLinksEach(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")

	var none tracectx.Batch
	none.Add("")
	none.Add(tp(9, 9, false)) // unsampled: not a trace to record in
	if _, span := none.Start(context.Background(), tracer, "none"); span.IsRecording() || !none.Empty() {
		t.Fatal("a batch of no sampled trace started a span")
	}

	var one tracectx.Batch
	for _, s := range []string{tp(1, 1, true), tp(1, 1, true), tp(1, 2, true)} {
		one.Add(s)
	}
	_, span := one.Start(context.Background(), tracer, "one")
	span.End()
	got := rec.Ended()[0]
	if !one.Single() || got.Parent().TraceID() != tracectx.Parse(tp(1, 1, true)).TraceID() || got.Parent().SpanID() != tracectx.Parse(tp(1, 1, true)).SpanID() {
		t.Errorf("one trace: parent %v", got.Parent())
	}
	if len(got.Links()) != 2 {
		t.Errorf("one trace, two spans: %d links", len(got.Links()))
	}

	var many tracectx.Batch
	for i := range 100 {
		many.Add(tp(byte(i+1), 1, true))
	}
	_, span = many.Start(context.Background(), tracer, "many")
	span.End()
	got = rec.Ended()[1]
	if many.Single() || got.SpanContext().TraceID() != tracectx.Parse(tp(1, 1, true)).TraceID() {
		t.Errorf("many traces: in %v", got.SpanContext().TraceID())
	}
	if len(got.Links()) != tracectx.MaxLinks {
		t.Errorf("many traces: %d links, want %d", len(got.Links()), tracectx.MaxLinks)
	}
}
