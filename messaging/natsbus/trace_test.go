package natsbus_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/platform/tracectx"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/messaging/natsbus"
)

var (
	recorderOnce sync.Once
	recorder     *tracetest.SpanRecorder
)

// spans makes the global tracer provider record (once per test binary:
// the packages' tracers are bound to the first one set).
func spans() *tracetest.SpanRecorder {
	recorderOnce.Do(func() {
		recorder = tracetest.NewSpanRecorder()
		otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder)))
	})
	return recorder
}

func attr(s sdktrace.ReadOnlySpan, k string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// TestATraceCrossesTheBus: an event appended in a trace is relayed in a
// producer span of that trace, and consumed in a consumer span whose
// parent (and link) is the relay's; the handler sees the consumer span
// as its delivery's trace context. An event of no trace is relayed and
// consumed without spans.
func TestATraceCrossesTheBus(t *testing.T) {
	rec := spans()
	buses(t, func(t *testing.T, b *natsbus.Bus) {
		ctx := context.Background()
		before := len(rec.Ended())
		store, db := testenv.SQLite(t)
		if err := b.EnsureStream(ctx, "test", "test.>"); err != nil {
			t.Fatal(err)
		}
		cps, err := messaging.SQLCheckpoints(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		tracer := otel.Tracer("test")
		rctx, root := tracer.Start(ctx, "request")
		if _, err := store.Append(rctx, "order-1", eventstore.NoStream, eventstore.EventData{Type: "Shipped", Data: json.RawMessage(`1`),
			Metadata: eventstore.Metadata{TraceParent: tracectx.Of(rctx)}}); err != nil {
			t.Fatal(err)
		}
		root.End()
		if _, err := store.Append(ctx, "order-2", eventstore.NoStream, eventstore.EventData{Type: "Shipped", Data: json.RawMessage(`2`)}); err != nil {
			t.Fatal(err)
		}
		seen := make(chan messaging.Delivery, 2)
		subscribe(t, b, messaging.Consumer{Name: "traced", Stream: "test"}, func(ctx context.Context, d messaging.Delivery) error {
			if got := tracectx.Header(d.Headers); got != "" && got != tracectx.Of(ctx) {
				t.Errorf("delivery's traceparent %s, the handler's span %s", got, tracectx.Of(ctx))
			}
			seen <- d
			return nil
		})
		startRelay(t, messaging.NewRelay(messaging.EventLog(store, mapper), b, cps, messaging.RelayOptions{Name: "test", Tail: b.Tail("test"), Logger: quiet()}))
		for range 2 {
			select {
			case <-seen:
			case <-time.After(10 * time.Second):
				t.Fatal("not delivered")
			}
		}
		id := root.SpanContext().TraceID()
		var appendSpan, publish, process sdktrace.ReadOnlySpan
		deadline := time.Now().Add(5 * time.Second)
		for (appendSpan == nil || publish == nil || process == nil) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			for _, s := range rec.Ended() {
				if s.SpanContext().TraceID() != id {
					continue
				}
				switch s.Name() {
				case "eventstore append":
					appendSpan = s
				case "relay publish":
					publish = s
				case "process test.shipped":
					process = s
				}
			}
		}
		if appendSpan == nil || publish == nil || process == nil {
			t.Fatalf("spans of the trace: append %v, publish %v, process %v", appendSpan != nil, publish != nil, process != nil)
		}
		if appendSpan.Parent().SpanID() != root.SpanContext().SpanID() || attr(appendSpan, "agora.stream").AsString() != "order-1" ||
			attr(appendSpan, "agora.position").AsInt64() != 1 || attr(appendSpan, "agora.commit.events").AsInt64() < 1 {
			t.Errorf("append span: parent %v, attributes %v", appendSpan.Parent(), appendSpan.Attributes())
		}
		if publish.SpanKind() != trace.SpanKindProducer || publish.Parent().SpanID() != root.SpanContext().SpanID() ||
			attr(publish, "messaging.batch.message_count").AsInt64() != 2 || len(publish.Links()) != 1 {
			t.Errorf("publish span: kind %v, parent %v, attributes %v, links %v", publish.SpanKind(), publish.Parent(), publish.Attributes(), publish.Links())
		}
		if process.SpanKind() != trace.SpanKindConsumer || process.Parent().SpanID() != publish.SpanContext().SpanID() ||
			len(process.Links()) != 1 || process.Links()[0].SpanContext.SpanID() != publish.SpanContext().SpanID() ||
			attr(process, "messaging.consumer.group.name").AsString() != "traced" || attr(process, "messaging.message.delivery_count").AsInt64() != 1 {
			t.Errorf("process span: kind %v, parent %v, links %v, attributes %v", process.SpanKind(), process.Parent(), process.Links(), process.Attributes())
		}
		n := 0
		for _, s := range rec.Ended()[before:] {
			if s.Name() == "process test.shipped" && s.Parent().TraceID() != id {
				n++
			}
		}
		if n != 0 {
			t.Errorf("%d consumer spans outside the trace: a message of no trace started some", n)
		}
	})
}

// TestGatherHearsEveryResponder: every process responding on a subject
// without a queue answers one Gather, which ends when its caller has all
// it wants, or at its deadline.
func TestGatherHearsEveryResponder(t *testing.T) {
	buses(t, func(t *testing.T, b *natsbus.Bus) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for _, name := range []string{"a", "b", "c"} {
			go b.Respond(ctx, "ops.test", "", func(_ context.Context, data []byte) []byte { return []byte(name + string(data)) })
		}
		time.Sleep(100 * time.Millisecond) // the subscriptions reach the server
		got := map[string]bool{}
		start := time.Now()
		err := b.Gather(ctx, "ops.test", []byte("!"), func(a []byte) bool {
			got[string(a)] = true
			return len(got) == 3
		})
		if err != nil || len(got) != 3 || !got["a!"] || !got["b!"] || !got["c!"] || time.Since(start) > time.Second {
			t.Fatalf("gather: %v %v in %v", got, err, time.Since(start))
		}
		short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancelShort()
		n := 0
		if err := b.Gather(short, "ops.test", nil, func([]byte) bool { n++; return false }); err != nil || n != 3 {
			t.Fatalf("gather until the deadline: %d answers, %v", n, err)
		}
	})
}
