package tracing_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/internal/platform/tracing"
)

func provider(s *tracing.Store) trace.Tracer {
	return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(s)).Tracer("test")
}

// TestStoreKeepsTracesWithTheirSpans: a trace's spans, parent first, with
// the services they ran in (a span naming none takes its parent's), the
// order they worked for and their errors.
func TestStoreKeepsTracesWithTheirSpans(t *testing.T) {
	s := tracing.NewStore(10, 1<<20)
	tr := provider(s)
	ctx, root := tr.Start(context.Background(), "POST /api/v1/orders")
	root.SetAttributes(tracing.ServiceKey.String("gateway"), tracing.OrderKey.String("o-1"))
	cctx, client := tr.Start(ctx, "cmd.payments.pay", trace.WithSpanKind(trace.SpanKindClient))
	_, server := tr.Start(cctx, "cmd.payments.pay", trace.WithSpanKind(trace.SpanKindServer))
	server.SetAttributes(tracing.ServiceKey.String("payments"))
	server.RecordError(errors.New("declined"))
	server.SetStatus(codes.Error, "declined")
	server.End()
	client.End()
	root.End()

	id := root.SpanContext().TraceID().String()
	got, ok := s.Get(id)
	if !ok || len(got.Spans) != 3 || got.Spans[0].Name != "POST /api/v1/orders" || got.Spans[0].ParentSpanID != "" {
		t.Fatalf("trace %+v", got)
	}
	if got.Spans[1].Service != "gateway" || got.Spans[2].Service != "payments" || got.Spans[2].Status != "Error" ||
		got.Spans[2].Kind != "server" || len(got.Spans[2].Events) != 1 {
		t.Fatalf("spans %+v", got.Spans)
	}
	yes, no := true, false
	for _, c := range []struct {
		f    tracing.Filter
		want int
	}{{tracing.Filter{}, 1}, {tracing.Filter{OrderID: "o-1"}, 1}, {tracing.Filter{OrderID: "o-2"}, 0},
		{tracing.Filter{Error: &yes}, 1}, {tracing.Filter{Error: &no}, 0}, {tracing.Filter{MinDuration: 1 << 40}, 0}} {
		if l := s.List(c.f); len(l) != c.want {
			t.Errorf("List(%+v): %d traces, want %d", c.f, len(l), c.want)
		}
	}
	if l := s.List(tracing.Filter{}); l[0].Root != "POST /api/v1/orders" || l[0].Spans != 3 || !l[0].Error || len(l[0].Services) != 2 {
		t.Errorf("summary %+v", l[0])
	}
}

// TestStoreIsBounded: filled past its bounds, the store keeps the most
// recent traces within both.
func TestStoreIsBounded(t *testing.T) {
	s := tracing.NewStore(50, 1<<30)
	tr := provider(s)
	var last string
	for i := range 500 {
		_, sp := tr.Start(context.Background(), fmt.Sprint("op-", i))
		sp.End()
		last = sp.SpanContext().TraceID().String()
	}
	if n, _ := s.Size(); n != 50 {
		t.Fatalf("%d traces, want the bound of 50", n)
	}
	if _, ok := s.Get(last); !ok {
		t.Fatal("the newest trace is gone")
	}
	if l := s.List(tracing.Filter{Limit: 3}); len(l) != 3 || l[0].TraceID != last {
		t.Fatalf("list: %+v", l)
	}

	s = tracing.NewStore(1_000_000, 64<<10)
	tr = provider(s)
	for i := range 2_000 {
		_, sp := tr.Start(context.Background(), fmt.Sprint("op-", i))
		sp.End()
	}
	if n, bytes := s.Size(); bytes > 64<<10 || n == 0 || n >= 2_000 {
		t.Fatalf("%d traces in %d bytes, want fewer than 2,000 within 64 KiB", n, bytes)
	}
}

// TestPartsOfATraceFromSeveralProcessesMerge: two processes' stores each
// hold part of one trace; their spans assemble into the one trace (a
// span repeated once, services inherited across the parts) and their
// summaries into one (the earliest root, every span, any error).
func TestPartsOfATraceFromSeveralProcessesMerge(t *testing.T) {
	gw, svc := tracing.NewStore(10, 1<<20), tracing.NewStore(10, 1<<20)
	_, root := provider(gw).Start(context.Background(), "POST /api/v1/orders")
	root.SetAttributes(tracing.ServiceKey.String("gateway"))
	// The service continues the trace in another process.
	remote := trace.ContextWithRemoteSpanContext(context.Background(), root.SpanContext())
	sctx, server := provider(svc).Start(remote, "POST /api/v1/orders", trace.WithSpanKind(trace.SpanKindServer))
	server.SetAttributes(tracing.ServiceKey.String("ordering"), tracing.OrderKey.String("o-1"))
	_, appendSpan := provider(svc).Start(sctx, "eventstore append")
	appendSpan.SetStatus(codes.Error, "disk full")
	appendSpan.End()
	server.End()
	root.End()

	id := root.SpanContext().TraceID().String()
	spans := append(gw.Spans(id), svc.Spans(id)...)
	spans = append(spans, svc.Spans(id)[0]) // an answer repeated
	got := tracing.Assemble(id, spans)
	if len(got.Spans) != 3 || got.Spans[0].Service != "gateway" || got.Spans[0].ParentSpanID != "" {
		t.Fatalf("assembled %+v", got.Spans)
	}
	for _, sp := range got.Spans[1:] {
		if sp.Service != "ordering" {
			t.Errorf("span %s of %q, want ordering", sp.Name, sp.Service)
		}
	}
	if tracing.Assemble(id, nil).Spans == nil {
		t.Error("no spans: nil, want empty")
	}

	parts := [][]tracing.Summary{svc.Summaries([]string{id, "unknown"}), gw.List(tracing.Filter{})}
	if len(parts[0]) != 1 {
		t.Fatalf("summaries of one known trace: %+v", parts[0])
	}
	if parts[0][0].Root != "POST /api/v1/orders" {
		t.Errorf("the service's part has root %q (its span with a remote parent)", parts[0][0].Root)
	}
	m := tracing.Merge(parts...)
	if len(m) != 1 || m[0].Spans != 3 || !m[0].Error || len(m[0].Services) != 2 || m[0].Services[0] != "gateway" ||
		len(m[0].OrderIDs) != 1 || !m[0].Start.Equal(gw.List(tracing.Filter{})[0].Start) {
		t.Fatalf("merged %+v", m)
	}
	if !(tracing.Filter{OrderID: "o-1"}).Match(m[0]) || (tracing.Filter{OrderID: "o-2"}).Match(m[0]) {
		t.Error("order filter")
	}
}

// TestSwitchedOffTracingRecordsNothing: SetEnabled(false) leaves every
// span unsampled, children included; on again, spans record.
func TestSwitchedOffTracingRecordsNothing(t *testing.T) {
	tr := tracing.Tracer("test")
	tracing.SetEnabled(false)
	defer tracing.SetEnabled(true)
	ctx, span := tr.Start(context.Background(), "off")
	_, child := tr.Start(ctx, "child")
	if span.IsRecording() || child.IsRecording() || span.SpanContext().IsSampled() || tracing.Enabled() {
		t.Fatal("recording with tracing off")
	}
	tracing.SetEnabled(true)
	if _, span := tr.Start(context.Background(), "on"); !span.IsRecording() {
		t.Fatal("not recording with tracing on")
	}
}
