package resilience

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// traceBreaker records the cluster's breaker state, as the request found
// it, on the request's span (the gateway's).
func (c *Cluster) traceBreaker(ctx context.Context) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("agora.breaker", c.breaker.State().String()))
	}
}

// traceAttempt records that attempt n (from 2: a retry) began on the
// request's span: an event, and the attempts so far.
func traceAttempt(ctx context.Context, n int) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("retry", trace.WithAttributes(attribute.Int("agora.attempt", n)))
		span.SetAttributes(attribute.Int("agora.attempts", n))
	}
}

// traceRejected records on the request's span that the policies refused
// it (an open breaker, a full bulkhead) with reason.
func traceRejected(ctx context.Context, reason string) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("agora.rejected", reason))
	}
}
