package balance

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// traceInstance names the instance an attempt goes to on the request's
// span (the gateway's): the last attempt's, when there are several.
func traceInstance(ctx context.Context, id string) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("agora.instance", id))
	}
}
