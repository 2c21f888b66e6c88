package projection_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/projection"
)

// TestBatchesAreSpansOfTheirEventsTraces: a batch of one trace's events
// is one span in that trace; a batch of events of many traces is one
// span linked to (at most 32 of) them; events of no trace make no span.
func TestBatchesAreSpansOfTheirEventsTraces(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	store, db := testenv.SQLite(t)
	ctx := context.Background()
	tp := func(trace int) string { return fmt.Sprintf("00-%032x-%016x-01", trace, 1) }
	add := func(n int, trace func(i int) string) uint64 {
		var res eventstore.AppendResult
		for i := range n {
			var err error
			res, err = store.Append(ctx, fmt.Sprintf("s-%d", i), eventstore.Any, eventstore.EventData{Type: "E",
				Data: json.RawMessage(`1`), Metadata: eventstore.Metadata{TraceParent: trace(i)}})
			if err != nil {
				t.Fatal(err)
			}
		}
		return res.LastPosition
	}
	r := projection.NewRunner(store, db, &ledger{}, projection.Options{})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go r.Run(rctx)
	wait := func(pos uint64) {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := r.WaitFor(wctx, pos); err != nil {
			t.Fatal(err)
		}
	}
	wait(add(3, func(int) string { return tp(7) }))
	wait(add(3, func(int) string { return "" }))
	wait(add(100, func(i int) string { return tp(100 + i) }))
	// The runner publishes its position before it ends the batch's span:
	// wait for the last span too.
	count := func(spans []sdktrace.ReadOnlySpan) (events int) {
		for _, s := range spans {
			for _, kv := range s.Attributes() {
				if kv.Key == "agora.events" {
					events += int(kv.Value.AsInt64())
				}
			}
		}
		return events
	}
	for deadline := time.Now().Add(5 * time.Second); count(rec.Ended()) < 103 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	spans := rec.Ended()
	// However the runner cut the log into batches: every event of a
	// trace was applied in a span, the first batch in trace 7.
	if len(spans) == 0 || spans[0].Name() != "projection ledger" || spans[0].Parent().TraceID().String() != fmt.Sprintf("%032x", 7) {
		t.Fatalf("spans %v", spans)
	}
	events := 0
	for _, s := range spans {
		for _, kv := range s.Attributes() {
			if kv.Key == "agora.events" {
				events += int(kv.Value.AsInt64())
			}
		}
		if len(s.Links()) > 32 {
			t.Errorf("span of %d links", len(s.Links()))
		}
	}
	if events < 103 || events > 106 {
		t.Errorf("spans of %d events, want the 103 with a trace (and a few without, sharing a batch)", events)
	}
}
