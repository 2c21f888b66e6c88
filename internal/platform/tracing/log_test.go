package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/agora-commerce/agora/internal/platform/tracing"
)

func TestLogLinesNameTheirSpan(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	store := tracing.NewStore(10, 1<<20)
	ctx, span := provider(store).Start(context.Background(), "op")
	log.InfoContext(ctx, "inside", "order_id", "o-1")
	span.End()
	// The line is also the span's event: a trace shows its log lines.
	tr, ok := store.Get(span.SpanContext().TraceID().String())
	if !ok || len(tr.Spans) != 1 || len(tr.Spans[0].Events) != 1 {
		t.Fatalf("stored trace %+v: want its span with one log event", tr)
	}
	if e := tr.Spans[0].Events[0]; e.Name != "log" || e.Attributes["log.message"] != "inside" || e.Attributes["log.severity"] != "INFO" ||
		e.Attributes["order_id"] != "o-1" || e.Attributes["component"] != nil && e.Attributes["component"] != "test" {
		t.Errorf("log event %+v", e)
	}
	log.InfoContext(context.Background(), "outside")
	var in, out map[string]any
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 || json.Unmarshal(lines[0], &in) != nil || json.Unmarshal(lines[1], &out) != nil {
		t.Fatalf("log: %s", buf.Bytes())
	}
	if in["trace_id"] != span.SpanContext().TraceID().String() || in["span_id"] != span.SpanContext().SpanID().String() || in["component"] != "test" {
		t.Errorf("inside a span: %v", in)
	}
	if _, ok := out["trace_id"]; ok {
		t.Errorf("outside any span: %v", out)
	}
}

func TestLogLinesNameTheirRequest(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(&buf, nil)))
	ctx := tracing.WithRequestID(context.Background(), "req-1")
	log.InfoContext(ctx, "implicit")
	log.InfoContext(ctx, "explicit", "request_id", "req-2")
	log.InfoContext(context.Background(), "none")
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 3 {
		t.Fatalf("log: %s", buf.Bytes())
	}
	for i, want := range []string{`"request_id":"req-1"`, `"request_id":"req-2"`, ""} {
		if n := bytes.Count(lines[i], []byte(`"request_id"`)); want == "" && n != 0 || want != "" && (n != 1 || !bytes.Contains(lines[i], []byte(want))) {
			t.Errorf("line %d: %s, want %s once", i, lines[i], want)
		}
	}
}
