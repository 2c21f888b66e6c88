package call_test

import (
	"context"
	"testing"

	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/platform/tracing"
)

// TestACallIsInItsCallersTrace: on both transports the owner answers in
// a span of the caller's trace: over the bus, a child of the call's
// client span; in process, of the caller's span (a client span would
// only repeat the owner's).
func TestACallIsInItsCallersTrace(t *testing.T) {
	tr := tracing.Tracer("test")
	eachTransport(t, func(t *testing.T, transport transport) {
		x := transport.serve(t, catalogapi.ProductExists.Answer(func(context.Context, catalogapi.ProductRequest) (bool, error) { return true, nil }))
		ctx, root := tr.Start(context.Background(), "caller")
		if _, err := catalogapi.ProductExists.Bind(x)(ctx, catalogapi.ProductRequest{ProductID: "p"}); err != nil {
			t.Fatal(err)
		}
		root.End()
		got, ok := tracing.Recent().Get(root.SpanContext().TraceID().String())
		if !transport.wire {
			if !ok || len(got.Spans) != 2 || got.Spans[1].ParentSpanID != got.Spans[0].SpanID || got.Spans[1].Kind != "server" ||
				got.Spans[1].Service != "catalog" {
				t.Fatalf("trace %+v", got)
			}
			return
		}
		if !ok || len(got.Spans) != 3 {
			t.Fatalf("trace %+v", got)
		}
		client, server := got.Spans[1], got.Spans[2]
		if client.ParentSpanID != got.Spans[0].SpanID || server.ParentSpanID != client.SpanID || server.Service != "catalog" ||
			client.Kind != "client" || server.Kind != "server" {
			t.Fatalf("spans %+v", got.Spans)
		}
	})
}
