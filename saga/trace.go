package saga

import (
	"context"
	"encoding/json"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/internal/platform/tracectx"
)

var tracer = otel.Tracer("github.com/agora-commerce/agora/saga")

// stepSpan starts the span of one attempt at a step (or, compensating,
// at its compensation) of instance st, in the trace the instance started
// in (its metadata's traceparent), and returns the context for the step:
// the span, and the instance's metadata with the span as its trace
// context. The tracer is OpenTelemetry's global one.
func stepSpan(ctx context.Context, st *state, name string, step, attempt int, compensating bool) (context.Context, trace.Span) {
	if st.meta.TraceParent != "" {
		ctx = tracectx.Extract(ctx, st.meta.TraceParent)
	}
	verb := "saga step "
	if compensating {
		verb = "saga compensation "
	}
	ctx, span := tracer.Start(ctx, verb+st.typ+" "+name,
		trace.WithAttributes(attribute.String("saga.type", st.typ), attribute.String("saga.id", st.id), attribute.String("saga.step", name),
			attribute.Int("saga.step_index", step), attribute.Int("saga.attempt", attempt), attribute.Bool("saga.compensation", compensating)))
	meta := st.meta
	if tp := tracectx.Format(span.SpanContext()); tp != "" {
		meta.TraceParent = tp
	}
	return WithMetadata(withRequest(ctx, st), meta), span
}

// withRequest names in ctx, for the log lines of instance st, the request
// that started it (its correlation ID), unless ctx names one already.
func withRequest(ctx context.Context, st *state) context.Context {
	if tracectx.RequestID(ctx) != "" {
		return ctx
	}
	return tracectx.WithRequestID(ctx, st.meta.CorrelationID)
}

// inTrace returns ctx in the trace instance st started in (its
// metadata's traceparent, as a remote parent), unless ctx has a trace
// context already: what the engine logs for the instance outside its
// steps' spans names that trace. (The engine's own appends are not
// spans: four more spans a checkout would cost more than they tell.)
func inTrace(ctx context.Context, st *state) context.Context {
	ctx = withRequest(ctx, st)
	if st.meta.TraceParent == "" || trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	return tracectx.Extract(ctx, st.meta.TraceParent)
}

// endStep records an attempt's outcome on its span and ends it.
func endStep(span trace.Span, err error) {
	switch reason := ReasonOf(err); {
	case err == nil:
		span.SetAttributes(attribute.String("saga.outcome", "completed"))
	case reason != "":
		span.SetAttributes(attribute.String("saga.outcome", "failed: "+reason))
		span.SetStatus(codes.Error, reason)
	default:
		span.SetAttributes(attribute.String("saga.outcome", "error"))
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// onEnd runs the definition's end hook for st ending with status, in a
// span of the instance's trace.
func (e *Engine) onEnd(ctx context.Context, r runner, st *state, status Status, data json.RawMessage) error {
	reason := ""
	if status != Completed {
		reason = st.reason
	}
	ctx, span := stepSpan(ctx, st, "end: "+string(status), -1, 0, false)
	err := r.onEnd(ctx, st.id, status, reason, data)
	endStep(span, err)
	return err
}
