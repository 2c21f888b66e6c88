package groupcommit

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/eventstore"
)

// Stats describe the commit that carried a request: how many appends
// and events it held, when the writer began it and how long it took. A
// writer fills them in on every request of the commit before it wakes
// the request's caller.
type Stats struct {
	Appends, Events int
	Began           time.Time
	Took            time.Duration
}

// Set records the commit's stats (appends, events, begun at began) in
// st, the writer's side of an append's span.
func (st *Stats) Set(appends, events int, began time.Time, took time.Duration) {
	st.Appends, st.Events, st.Began, st.Took = appends, events, began, took
}

var tracer = otel.Tracer("github.com/agora-commerce/agora/eventstore")

// Span is an append's span; the zero value is none.
type Span struct {
	span   trace.Span
	queued time.Time
}

// StartAppend starts the span of an append of events to stream in a
// store of system ("sqlite", "postgresql"), if ctx is in a sampled
// trace (an append made for no traced request or message costs nothing).
func StartAppend(ctx context.Context, system, stream string, events int) (context.Context, Span) {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return ctx, Span{}
	}
	ctx, span := tracer.Start(ctx, "eventstore append", trace.WithAttributes(
		attribute.String("db.system.name", system), attribute.String("agora.stream", stream), attribute.Int("agora.events", events)))
	return ctx, Span{span: span, queued: time.Now()}
}

// End ends the span with the append's outcome and, if the append reached
// a commit (st not nil), that commit's stats: its size, how long the
// append waited for it to begin and how long it took.
func (s Span) End(res eventstore.AppendResult, err error, st *Stats) {
	if s.span == nil {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	if err == nil {
		attrs = append(attrs, attribute.Int64("agora.position", int64(res.LastPosition)))
	}
	if st != nil && !st.Began.IsZero() {
		attrs = append(attrs, attribute.Int("agora.commit.appends", st.Appends), attribute.Int("agora.commit.events", st.Events),
			attribute.Float64("agora.commit.wait_ms", ms(st.Began.Sub(s.queued))), attribute.Float64("agora.commit.duration_ms", ms(st.Took)))
	}
	switch {
	case err == nil:
	case errors.Is(err, eventstore.ErrConcurrency):
		// An expected outcome of optimistic concurrency: the caller
		// reloads and decides again.
		attrs = append(attrs, attribute.Bool("agora.conflict", true))
	default:
		s.span.SetStatus(codes.Error, err.Error())
	}
	s.span.SetAttributes(attrs...)
	s.span.End()
}

func ms(d time.Duration) float64 { return float64(max(d, 0).Microseconds()) / 1000 }
