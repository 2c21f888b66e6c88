package tracing

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/internal/platform/tracectx"
)

// LogHandler wraps h so that a record logged with a context that carries
// a span (slog's *Context methods) names its trace and span: trace_id
// and span_id, the keys the ops API and any collector share; and one
// logged with a context that carries a request ID (WithRequestID) names
// it as request_id, unless the record names one itself.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	id := RequestID(ctx)
	if id != "" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "request_id" {
				id = ""
			}
			return id != ""
		})
	}
	if sc.IsValid() || id != "" {
		r = r.Clone()
	}
	if sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		logEvent(ctx, r)
	}
	if id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return l.Handler.Handle(ctx, r)
}

func (l logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{l.Handler.WithAttrs(attrs)}
}

func (l logHandler) WithGroup(name string) slog.Handler { return logHandler{l.Handler.WithGroup(name)} }

// logEvent records r on the span of ctx, if it is recording, as a "log"
// event (its level, message and attributes): a trace shows the log lines
// written while it ran, next to its spans, without a log store.
func logEvent(ctx context.Context, r slog.Record) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 2+r.NumAttrs())
	attrs = append(attrs, attribute.String("log.severity", r.Level.String()), attribute.String("log.message", r.Message))
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "trace_id", "span_id":
		default:
			attrs = append(attrs, attribute.String(a.Key, a.Value.String()))
		}
		return true
	})
	span.AddEvent("log", trace.WithTimestamp(r.Time), trace.WithAttributes(attrs...))
}

// WithRequestID returns ctx carrying id, the ID of the request being
// served (or that caused the message being handled), for LogHandler.
func WithRequestID(ctx context.Context, id string) context.Context {
	return tracectx.WithRequestID(ctx, id)
}

// RequestID returns the request ID ctx carries ("" if none).
func RequestID(ctx context.Context) string { return tracectx.RequestID(ctx) }
