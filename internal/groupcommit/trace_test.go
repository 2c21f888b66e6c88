package groupcommit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/groupcommit"
)

// TestAppendSpans: an append in a sampled trace is a span naming its
// stream, events, positions and commit; a conflict is no error; an
// append in no trace is no span.
func TestAppendSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	ctx, root := otel.Tracer("test").Start(context.Background(), "request")
	defer root.End()

	_, span := groupcommit.StartAppend(context.Background(), "sqlite", "s-0", 1)
	span.End(eventstore.AppendResult{}, nil, nil)
	_, span = groupcommit.StartAppend(ctx, "sqlite", "s-1", 2)
	st := groupcommit.Stats{}
	st.Set(3, 7, time.Now(), time.Millisecond)
	span.End(eventstore.AppendResult{FirstPosition: 4, LastPosition: 5, NextExpectedVersion: 2}, nil, &st)
	_, span = groupcommit.StartAppend(ctx, "sqlite", "s-2", 1)
	span.End(eventstore.AppendResult{}, &eventstore.ConcurrencyError{StreamID: "s-2"}, &st)
	_, span = groupcommit.StartAppend(ctx, "sqlite", "s-3", 1)
	span.End(eventstore.AppendResult{}, errors.New("disk full"), nil)

	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3 (none outside a trace)", len(spans))
	}
	got := map[string]any{}
	for _, kv := range spans[0].Attributes() {
		got[string(kv.Key)] = kv.Value.AsInterface()
	}
	for k, v := range map[string]any{"agora.stream": "s-1", "agora.events": int64(2), "agora.position": int64(5),
		"agora.commit.appends": int64(3), "agora.commit.events": int64(7), "agora.commit.duration_ms": 1.0} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if spans[1].Status().Code == codes.Error || spans[2].Status().Code != codes.Error {
		t.Errorf("statuses: conflict %v, failure %v", spans[1].Status(), spans[2].Status())
	}
}
