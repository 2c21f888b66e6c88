package ops

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/agora-commerce/agora/eventstore"
)

// Event is a stored event as the API shows it.
type Event struct {
	// Context is the bounded context whose log holds it.
	Context string `json:"context"`
	// Position is its place in its context's log.
	Position uint64 `json:"position"`
	// StreamID is its stream.
	StreamID string `json:"stream_id"`
	// Version is its place in its stream.
	Version uint64 `json:"version"`
	// ID is its ID.
	ID string `json:"id"`
	// Type is its type, e.g. "ordering.OrderPlaced".
	Type string `json:"type"`
	// SchemaVersion is the version of its data's shape.
	SchemaVersion int `json:"schema_version"`
	// RecordedAt is when it was stored (RFC 3339, UTC).
	RecordedAt string `json:"recorded_at"`
	// Data is its body.
	Data json.RawMessage `json:"data"`
	// Metadata is what was stored with it (empty fields left out).
	Metadata eventstore.Metadata `json:"metadata"`
	// TraceID is the W3C trace of its traceparent, if it has one.
	TraceID string `json:"trace_id,omitempty"`
	// at is RecordedAt, to order events of several logs.
	at time.Time
}

// newEvent is r, of context's log, as the API shows it.
func newEvent(context string, r eventstore.Record) Event {
	data := r.Data
	if len(data) == 0 || !json.Valid(data) {
		data = json.RawMessage("{}")
	}
	return Event{Context: context, at: r.RecordedAt, Position: r.Position, StreamID: r.StreamID, Version: r.Version, ID: r.ID.String(), Type: r.Type,
		SchemaVersion: r.SchemaVersion, RecordedAt: r.RecordedAt.UTC().Format(time.RFC3339Nano), Data: data,
		Metadata: r.Metadata, TraceID: traceID(r.Metadata.TraceParent)}
}

// traceID is the trace ID of a W3C traceparent
// ("00-<32 hex trace>-<16 hex span>-<2 hex flags>"), or "".
func traceID(tp string) string {
	parts := strings.Split(tp, "-")
	if len(parts) < 4 || len(parts[1]) != 32 {
		return ""
	}
	id := parts[1]
	zero := true
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
		zero = zero && c == '0'
	}
	if zero {
		return ""
	}
	return id
}

// filter selects events of the log.
type filter struct {
	// tenant is the caller's: only its events pass.
	tenant string
	// typ is a type, or a prefix when typPrefix.
	typ       string
	typPrefix bool
	// stream is a stream ID, or a prefix when streamPrefix.
	stream       string
	streamPrefix bool
	// correlation is a correlation ID.
	correlation string
}

// newFilter is the filter of the caller's tenant and the parameters:
// typ is an exact type, or a prefix ending in "." or "*" (the "*"
// dropped); stream an exact stream ID or a prefix ending in "*".
func newFilter(tenant, typ, stream, correlation string) filter {
	f := filter{tenant: tenant, typ: typ, stream: stream, correlation: correlation}
	switch {
	case strings.HasSuffix(typ, "*"):
		f.typ, f.typPrefix = strings.TrimSuffix(typ, "*"), true
	case strings.HasSuffix(typ, "."):
		f.typPrefix = true
	}
	if strings.HasSuffix(stream, "*") {
		f.stream, f.streamPrefix = strings.TrimSuffix(stream, "*"), true
	}
	return f
}

func (f filter) match(r eventstore.Record) bool {
	if tenantOf(r.Metadata.Tenant) != f.tenant {
		return false
	}
	if f.typ != "" || f.typPrefix {
		if f.typPrefix && !strings.HasPrefix(r.Type, f.typ) || !f.typPrefix && r.Type != f.typ {
			return false
		}
	}
	if f.stream != "" || f.streamPrefix {
		if f.streamPrefix && !strings.HasPrefix(r.StreamID, f.stream) || !f.streamPrefix && r.StreamID != f.stream {
			return false
		}
	}
	return f.correlation == "" || r.Metadata.CorrelationID == f.correlation
}
