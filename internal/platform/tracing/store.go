package tracing

import (
	"container/list"
	"context"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The in-process store's bounds: the most recent traces it keeps, and
// the bytes their spans may take (estimated); the least recently touched
// trace goes first when either is passed.
const (
	DefaultMaxTraces = 2_000
	DefaultMaxBytes  = 32 << 20
)

// OrderKey is the attribute naming the order a span works for, by which
// traces are found (?order_id=).
const OrderKey = attribute.Key("agora.order_id")

// Span is a finished span as the ops API shows it.
type Span struct {
	SpanID       string         `json:"span_id"`
	ParentSpanID string         `json:"parent_span_id,omitempty"`
	Name         string         `json:"name"`
	Service      string         `json:"service"`
	Kind         string         `json:"kind"`
	Start        time.Time      `json:"start"`
	End          time.Time      `json:"end"`
	Status       string         `json:"status"`
	StatusText   string         `json:"status_message,omitempty"`
	Attributes   map[string]any `json:"attributes"`
	Events       []Event        `json:"events"`
	Links        []Link         `json:"links"`
}

// Event is a span's event.
type Event struct {
	Name       string         `json:"name"`
	Time       time.Time      `json:"time"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// Link is a span's link to another span.
type Link struct {
	TraceID string `json:"trace_id"`
	SpanID  string `json:"span_id"`
}

// Trace is a trace's spans, in start order.
type Trace struct {
	TraceID string `json:"trace_id"`
	Spans   []Span `json:"spans"`
}

// Summary describes a trace in a list.
type Summary struct {
	TraceID    string    `json:"trace_id"`
	Root       string    `json:"root"`
	Start      time.Time `json:"start"`
	DurationMS float64   `json:"duration_ms"`
	Spans      int       `json:"spans"`
	Error      bool      `json:"error"`
	Services   []string  `json:"services"`
	OrderIDs   []string  `json:"order_ids,omitempty"`
}

// entry is a trace as the store keeps it: its spans as the SDK handed
// them over (turned into Spans only when read, off the hot path), and
// what lists and filters need.
type entry struct {
	id         string
	spans      []sdktrace.ReadOnlySpan
	bytes      int
	start, end time.Time
	err        bool
	root       string
	services   []string
	orders     []string
	elem       *list.Element
}

// Store keeps the spans of recent traces, bounded by a number of traces
// and of bytes. It is an OpenTelemetry span processor: spans reach it as
// they end.
type Store struct {
	maxTraces, maxBytes int
	mu                  sync.Mutex
	byID                map[string]*entry
	lru                 *list.List // front: most recently touched
	bytes               int
}

var _ sdktrace.SpanProcessor = (*Store)(nil)

// NewStore returns a store of at most maxTraces traces and maxBytes bytes.
func NewStore(maxTraces, maxBytes int) *Store {
	return &Store{maxTraces: maxTraces, maxBytes: maxBytes, byID: map[string]*entry{}, lru: list.New()}
}

// OnStart implements sdktrace.SpanProcessor.
func (s *Store) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// Shutdown implements sdktrace.SpanProcessor.
func (s *Store) Shutdown(context.Context) error { return nil }

// ForceFlush implements sdktrace.SpanProcessor.
func (s *Store) ForceFlush(context.Context) error { return nil }

func attrs(kvs []attribute.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.AsInterface()
	}
	return m
}

// OnEnd implements sdktrace.SpanProcessor: it keeps the span.
func (s *Store) OnEnd(ro sdktrace.ReadOnlySpan) {
	sc := ro.SpanContext()
	if !sc.IsSampled() {
		return
	}
	size := 256 + len(ro.Name()) + 64*(len(ro.Events())+len(ro.Links()))
	var service, order string
	for _, kv := range ro.Attributes() {
		size += len(kv.Key) + 16
		switch kv.Key {
		case ServiceKey:
			service = kv.Value.AsString()
		case OrderKey:
			order = kv.Value.AsString()
		}
		if kv.Value.Type() == attribute.STRING {
			size += len(kv.Value.AsString())
		}
	}
	id := sc.TraceID().String()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byID[id]
	if e == nil {
		e = &entry{id: id, start: ro.StartTime(), end: ro.EndTime()}
		e.elem = s.lru.PushFront(e)
		s.byID[id] = e
	} else {
		s.lru.MoveToFront(e.elem)
	}
	e.spans = append(e.spans, ro)
	e.bytes += size
	s.bytes += size
	if ro.StartTime().Before(e.start) {
		e.start = ro.StartTime()
	}
	if ro.EndTime().After(e.end) {
		e.end = ro.EndTime()
	}
	e.err = e.err || ro.Status().Code == codes.Error
	if p := ro.Parent(); !p.IsValid() || p.IsRemote() {
		e.root = ro.Name()
	}
	if service != "" && !slices.Contains(e.services, service) {
		e.services = append(e.services, service)
	}
	if order != "" && !slices.Contains(e.orders, order) {
		e.orders = append(e.orders, order)
	}
	for len(s.byID) > s.maxTraces || s.bytes > s.maxBytes {
		last := s.lru.Back()
		if last == nil || last == e.elem && len(s.byID) == 1 {
			break
		}
		old := s.lru.Remove(last).(*entry)
		delete(s.byID, old.id)
		s.bytes -= old.bytes
	}
}

// span turns a span the SDK handed over into the API's.
func span(ro sdktrace.ReadOnlySpan) Span {
	sc := ro.SpanContext()
	sp := Span{SpanID: sc.SpanID().String(), Name: ro.Name(), Kind: ro.SpanKind().String(), Start: ro.StartTime(), End: ro.EndTime(),
		Status: "Unset", Attributes: attrs(ro.Attributes()), Events: []Event{}, Links: []Link{}}
	if p := ro.Parent(); p.IsValid() {
		sp.ParentSpanID = p.SpanID().String()
	}
	switch st := ro.Status(); st.Code {
	case codes.Error:
		sp.Status, sp.StatusText = "Error", st.Description
	case codes.Ok:
		sp.Status = "Ok"
	}
	if v, ok := sp.Attributes[string(ServiceKey)].(string); ok {
		sp.Service = v
	}
	for _, e := range ro.Events() {
		sp.Events = append(sp.Events, Event{Name: e.Name, Time: e.Time, Attributes: attrs(e.Attributes)})
	}
	for _, l := range ro.Links() {
		sp.Links = append(sp.Links, Link{TraceID: l.SpanContext.TraceID().String(), SpanID: l.SpanContext.SpanID().String()})
	}
	return sp
}

// Size returns how many traces and bytes the store holds.
func (s *Store) Size() (traces, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID), s.bytes
}

// Get returns trace id, or false if the store does not hold it.
func (s *Store) Get(id string) (Trace, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byID[id]
	if e == nil {
		return Trace{}, false
	}
	t := Trace{TraceID: id, Spans: make([]Span, len(e.spans))}
	for i, ro := range e.spans {
		t.Spans[i] = span(ro)
	}
	slices.SortStableFunc(t.Spans, func(a, b Span) int { return a.Start.Compare(b.Start) })
	// A span that names no service (a call's client side) ran in its
	// parent's.
	service := make(map[string]string, len(t.Spans))
	for _, sp := range t.Spans {
		service[sp.SpanID] = sp.Service
	}
	for i := range t.Spans {
		if t.Spans[i].Service == "" {
			t.Spans[i].Service = service[t.Spans[i].ParentSpanID]
			service[t.Spans[i].SpanID] = t.Spans[i].Service
		}
	}
	return t, true
}

// Filter selects traces: of an order, at least a duration, with an error.
type Filter struct {
	OrderID     string
	MinDuration time.Duration
	// Error, if not nil, selects traces with (true) or without an error.
	Error *bool
	Limit int
}

// List returns the traces f selects, the most recent first.
func (s *Store) List(f Filter) []Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Summary
	for el := s.lru.Front(); el != nil && (f.Limit <= 0 || len(out) < f.Limit); el = el.Next() {
		e := el.Value.(*entry)
		d := e.end.Sub(e.start)
		if (f.OrderID != "" && !slices.Contains(e.orders, f.OrderID)) || d < f.MinDuration || (f.Error != nil && *f.Error != e.err) {
			continue
		}
		sum := Summary{TraceID: e.id, Root: e.root, Start: e.start, DurationMS: float64(d.Microseconds()) / 1000, Spans: len(e.spans),
			Error: e.err, OrderIDs: slices.Clone(e.orders), Services: slices.Sorted(slices.Values(e.services))}
		if sum.Services == nil {
			sum.Services = []string{}
		}
		out = append(out, sum)
	}
	return out
}
