package natsbus

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/internal/platform/tracectx"
	"github.com/agora-commerce/agora/messaging"
)

var tracer = otel.Tracer("github.com/agora-commerce/agora/messaging/natsbus")

// consumeSpan starts the consumer span of consumer handling delivery d,
// in the trace its traceparent header names — a child of the span that
// produced it (the relay's publish), with a link to it as OpenTelemetry's
// messaging conventions have it — or none if it names no sampled trace.
// The delivery's traceparent becomes the consumer span's, so what the
// handler records (messaging.MetadataOf) is the span's child.
func consumeSpan(ctx context.Context, consumer string, d *messaging.Delivery) (context.Context, trace.Span) {
	sc := tracectx.Parse(tracectx.Header(d.Headers))
	if !sc.IsSampled() {
		return ctx, trace.SpanFromContext(context.Background())
	}
	ctx, span := tracer.Start(trace.ContextWithRemoteSpanContext(ctx, sc), "process "+d.Subject, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(trace.Link{SpanContext: sc}), trace.WithAttributes(
			attribute.String("messaging.system", "nats"), attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", d.Subject), attribute.String("messaging.message.id", d.ID),
			attribute.String("messaging.consumer.group.name", consumer), attribute.Int("messaging.message.delivery_count", d.Attempt),
			attribute.String("agora.message.type", d.Type)))
	if tp := tracectx.Format(span.SpanContext()); tp != "" {
		delete(d.Headers, "Traceparent")
		d.Headers[messaging.HeaderTraceParent] = tp
	}
	return ctx, span
}

// endConsume records a handler's failure on its span (a redelivery
// follows, or the message is dropped) and ends it.
func endConsume(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
