// Package tracectx is trace context as Agora carries it between the
// hops of a request — W3C traceparent strings in event metadata and
// message headers — and the spans of work done in batches for many
// traces at once (a relay's publish, a projection's batch). It uses
// OpenTelemetry's API alone, so that the public packages (eventstore,
// messaging, projection) can use it without the SDK.
package tracectx

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Key is the W3C trace context header, as Agora writes it.
const Key = "traceparent"

// MaxLinks bounds the links a batch's span carries to the traces of its
// items.
const MaxLinks = 32

// Parse returns the remote span context traceparent names: invalid if
// it is not a well-formed version-00 traceparent.
func Parse(traceparent string) trace.SpanContext {
	// 00-<32 hex trace ID>-<16 hex span ID>-<2 hex flags>
	if len(traceparent) < 55 || traceparent[2] != '-' || traceparent[35] != '-' || traceparent[52] != '-' || traceparent[:2] == "ff" {
		return trace.SpanContext{}
	}
	tid, err := trace.TraceIDFromHex(traceparent[3:35])
	if err != nil {
		return trace.SpanContext{}
	}
	sid, err := trace.SpanIDFromHex(traceparent[36:52])
	if err != nil {
		return trace.SpanContext{}
	}
	flags, ok := hexByte(traceparent[53:55])
	if !ok {
		return trace.SpanContext{}
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid,
		TraceFlags: trace.TraceFlags(flags) & trace.FlagsSampled, Remote: true})
}

func hexByte(s string) (byte, bool) {
	var b byte
	for i := 0; i < 2; i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			b = b<<4 | (c - '0')
		case c >= 'a' && c <= 'f':
			b = b<<4 | (c - 'a' + 10)
		default:
			return 0, false
		}
	}
	return b, true
}

const hexDigits = "0123456789abcdef"

// Format returns sc as a traceparent ("" if sc is not valid).
func Format(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	var b [55]byte
	b[0], b[1], b[2] = '0', '0', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	for i, c := range tid {
		b[3+2*i], b[4+2*i] = hexDigits[c>>4], hexDigits[c&0xf]
	}
	b[35] = '-'
	for i, c := range sid {
		b[36+2*i], b[37+2*i] = hexDigits[c>>4], hexDigits[c&0xf]
	}
	b[52] = '-'
	f := byte(sc.TraceFlags())
	b[53], b[54] = hexDigits[f>>4], hexDigits[f&0xf]
	return string(b[:])
}

// Extract returns ctx with the remote span context traceparent names as
// its parent (ctx itself if it names none).
func Extract(ctx context.Context, traceparent string) context.Context {
	if sc := Parse(traceparent); sc.IsValid() {
		return trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return ctx
}

// Of returns the traceparent of ctx's span ("" if it has none).
func Of(ctx context.Context) string { return Format(trace.SpanContextFromContext(ctx)) }

// Header returns the traceparent among headers h, whatever the case of
// its name (NATS keeps the case a publisher wrote: OpenTelemetry's
// carrier writes "Traceparent", Agora's relay "traceparent").
func Header(h map[string]string) string {
	if v, ok := h[Key]; ok {
		return v
	}
	if v, ok := h["Traceparent"]; ok {
		return v
	}
	for k, v := range h {
		if len(k) == len(Key) && strings.EqualFold(k, Key) {
			return v
		}
	}
	return ""
}

// Batch gathers the trace contexts of a batch's items (events,
// messages), for the span of the work done on them all at once: see
// Start. The zero value is empty.
type Batch struct {
	parent trace.SpanContext
	last   string
	links  []trace.Link
	// many is set once the items name more than one trace.
	many bool
}

// Add notes the traceparent of one item ("" or malformed: none). Only
// sampled trace contexts count.
func (b *Batch) Add(traceparent string) {
	if traceparent == "" || traceparent == b.last || b.many && len(b.links) >= MaxLinks {
		return // nothing more to learn from it
	}
	b.last = traceparent
	sc := Parse(traceparent)
	if !sc.IsValid() || !sc.IsSampled() {
		return
	}
	if !b.parent.IsValid() {
		b.parent = sc
	} else if sc.TraceID() != b.parent.TraceID() {
		b.many = true
	}
	if len(b.links) >= MaxLinks {
		return
	}
	for _, l := range b.links {
		if l.SpanContext.Equal(sc) {
			return
		}
	}
	b.links = append(b.links, trace.Link{SpanContext: sc})
}

// Empty reports whether no item named a sampled trace.
func (b *Batch) Empty() bool { return !b.parent.IsValid() }

// Single reports whether every item that named a trace named the same.
func (b *Batch) Single() bool { return b.parent.IsValid() && !b.many }

// Parent is the trace context the batch's span is started in: the first
// item's.
func (b *Batch) Parent() trace.SpanContext { return b.parent }

// Start starts the batch's span with tracer, or returns ctx and a no-op
// span when no item named a sampled trace (a background loop starts no
// root traces of its own). The span is a child of the first item's
// trace context — of the one trace the batch serves, typically, so that
// the work shows in that trace — and links to the trace context of every
// item (at most MaxLinks of them), as OpenTelemetry's messaging
// conventions have a batch do.
func (b *Batch) Start(ctx context.Context, tracer trace.Tracer, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !b.parent.IsValid() {
		return ctx, trace.SpanFromContext(context.Background())
	}
	ctx = trace.ContextWithRemoteSpanContext(ctx, b.parent)
	if len(b.links) > 0 {
		opts = append(opts, trace.WithLinks(b.links...))
	}
	return tracer.Start(ctx, name, opts...)
}

// Fail records err on span as its status (nothing if err is nil).
func Fail(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
	}
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying id, the ID of the request being
// served (or that caused the message or saga step being handled), which
// log lines name as request_id (tracing.LogHandler).
func WithRequestID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request ID ctx carries ("" if none).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
