package traces_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/internal/gateway/traces"
	"github.com/agora-commerce/agora/internal/platform/tracing"
)

// bus hands a query to every responder in turn, as NATS does to every
// subscriber, and then waits for ctx, as a late process would make it.
type bus struct {
	responders []func(context.Context, []byte) []byte
}

func (b bus) Gather(ctx context.Context, subject string, data []byte, each func([]byte) bool) error {
	if subject != traces.Subject {
		panic(subject)
	}
	for _, r := range b.responders {
		if each(r(ctx, data)) {
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// TestGathererAssemblesATraceFromEveryProcess: the gateway's and a
// service's stores each hold part of a trace; the gatherer's answer is
// the whole trace, and names a registered process that did not answer.
func TestGathererAssemblesATraceFromEveryProcess(t *testing.T) {
	gw, svc := tracing.NewStore(10, 1<<20), tracing.NewStore(10, 1<<20)
	_, root := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(gw)).Tracer("t").Start(context.Background(), "POST /api/v1/orders")
	root.SetAttributes(tracing.ServiceKey.String("gateway"))
	remote := trace.ContextWithRemoteSpanContext(context.Background(), root.SpanContext())
	_, span := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(svc)).Tracer("t").Start(remote, "POST /api/v1/orders")
	span.SetAttributes(tracing.ServiceKey.String("ordering"), tracing.OrderKey.String("o-1"))
	span.End()
	root.End()
	id := root.SpanContext().TraceID().String()

	b := bus{[]func(context.Context, []byte) []byte{traces.Respond("gateway/g1", gw), traces.Respond("ordering/o1", svc)}}
	all := &traces.Gatherer{Bus: b, Processes: func() []string { return []string{"gateway/g1", "ordering/o1"} }, Timeout: time.Second}
	start := time.Now()
	got, ok, partial, err := all.Get(context.Background(), id)
	if err != nil || !ok || len(partial) != 0 || len(got.Spans) != 2 || got.Spans[0].Service != "gateway" || got.Spans[1].Service != "ordering" {
		t.Fatalf("get: %+v %v %v %v", got, ok, partial, err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("every process answered, yet the gatherer waited %v", d)
	}
	l, partial, err := all.List(context.Background(), tracing.Filter{OrderID: "o-1"})
	if err != nil || len(partial) != 0 || len(l) != 1 || l[0].Spans != 2 || l[0].Root != "POST /api/v1/orders" || len(l[0].Services) != 2 {
		t.Fatalf("list: %+v %v %v", l, partial, err)
	}

	// A third process is registered but does not answer.
	some := &traces.Gatherer{Bus: b, Processes: func() []string { return []string{"gateway/g1", "ordering/o1", "payments/p1"} },
		Timeout: 100 * time.Millisecond}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/v1/ops/traces/"+id, nil)
	req.SetPathValue("trace_id", id)
	traces.Get(some).ServeHTTP(rec, req)
	var body struct {
		Spans   []tracing.Span `json:"spans"`
		Partial []string       `json:"partial"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusOK || len(body.Spans) != 2 ||
		len(body.Partial) != 1 || body.Partial[0] != "payments/p1" || rec.Header().Get(traces.PartialHeader) != "payments/p1" {
		t.Fatalf("partial answer: %d %s %v", rec.Code, rec.Body, rec.Header())
	}
	rec = httptest.NewRecorder()
	traces.List(some).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/ops/traces?order_id=o-2", nil))
	if rec.Code != http.StatusOK || rec.Header().Get(traces.PartialHeader) != "payments/p1" {
		t.Fatalf("partial list: %d %s %v", rec.Code, rec.Body, rec.Header())
	}
}
