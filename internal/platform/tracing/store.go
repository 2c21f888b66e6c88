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
	"go.opentelemetry.io/otel/trace"
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
// what lists and filters need. Its ID is written out in hex only when
// read.
type entry struct {
	tid   trace.TraceID
	spans []sdktrace.ReadOnlySpan
	// first holds spans' first few: most traces need no other array.
	first      [4]sdktrace.ReadOnlySpan
	bytes      int
	start, end time.Time
	err        bool
	// root names the trace's earliest span whose parent is not this
	// process's (none, or another process's).
	root      string
	rootStart time.Time
	services  []string
	orders    []string
	elem      *list.Element
}

// Store keeps the spans of recent traces, bounded by a number of traces
// and of bytes. It is an OpenTelemetry span processor: spans reach it as
// they end.
type Store struct {
	maxTraces, maxBytes int
	mu                  sync.Mutex
	byID                map[trace.TraceID]*entry
	lru                 *list.List // front: most recently touched
	bytes               int
}

var _ sdktrace.SpanProcessor = (*Store)(nil)

// NewStore returns a store of at most maxTraces traces and maxBytes bytes.
func NewStore(maxTraces, maxBytes int) *Store {
	return &Store{maxTraces: maxTraces, maxBytes: maxBytes, byID: map[trace.TraceID]*entry{}, lru: list.New()}
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
	id := sc.TraceID()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byID[id]
	if e == nil {
		e = &entry{tid: id, start: ro.StartTime(), end: ro.EndTime()}
		e.spans = e.first[:0]
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
	if p := ro.Parent(); (!p.IsValid() || p.IsRemote()) && (e.root == "" || ro.StartTime().Before(e.rootStart)) {
		e.root, e.rootStart = ro.Name(), ro.StartTime()
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
		delete(s.byID, old.tid)
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
	spans := s.Spans(id)
	if spans == nil {
		return Trace{}, false
	}
	return Assemble(id, spans), true
}

// Spans returns the spans of trace id the store holds, as they ended
// (nil if it holds none): the parts of a trace that Assemble puts
// together, with those of other processes.
func (s *Store) Spans(id string) []Span {
	tid, err := trace.TraceIDFromHex(id)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byID[tid]
	if e == nil {
		return nil
	}
	out := make([]Span, len(e.spans))
	for i, ro := range e.spans {
		out[i] = span(ro)
	}
	return out
}

// Assemble returns trace id made of spans (from one process or several):
// each span once (by span ID), in start order, a span that names no
// service (a call's client side) in its parent's.
func Assemble(id string, spans []Span) Trace {
	t := Trace{TraceID: id, Spans: make([]Span, 0, len(spans))}
	seen := make(map[string]bool, len(spans))
	for _, sp := range spans {
		if !seen[sp.SpanID] {
			seen[sp.SpanID] = true
			t.Spans = append(t.Spans, sp)
		}
	}
	slices.SortStableFunc(t.Spans, func(a, b Span) int { return a.Start.Compare(b.Start) })
	service := make(map[string]string, len(t.Spans))
	for _, sp := range t.Spans {
		service[sp.SpanID] = sp.Service
	}
	// A parent may start after its child only across processes' clocks;
	// inherit until nothing changes.
	for changed := true; changed; {
		changed = false
		for i := range t.Spans {
			if t.Spans[i].Service == "" {
				if p := service[t.Spans[i].ParentSpanID]; p != "" {
					t.Spans[i].Service = p
					service[t.Spans[i].SpanID] = p
					changed = true
				}
			}
		}
	}
	return t
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
		if sum := el.Value.(*entry).summary(); f.Match(sum) {
			out = append(out, sum)
		}
	}
	return out
}

// Summaries returns the summaries of the traces among ids that the store
// holds.
func (s *Store) Summaries(ids []string) []Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Summary
	for _, id := range ids {
		tid, err := trace.TraceIDFromHex(id)
		if err != nil {
			continue
		}
		if e := s.byID[tid]; e != nil {
			out = append(out, e.summary())
		}
	}
	return out
}

func (e *entry) summary() Summary {
	sum := Summary{TraceID: e.tid.String(), Root: e.root, Start: e.start, DurationMS: float64(e.end.Sub(e.start).Microseconds()) / 1000, Spans: len(e.spans),
		Error: e.err, OrderIDs: slices.Clone(e.orders), Services: slices.Sorted(slices.Values(e.services))}
	if sum.Services == nil {
		sum.Services = []string{}
	}
	return sum
}

// Match reports whether f selects the trace sum describes (its limit
// aside).
func (f Filter) Match(sum Summary) bool {
	return (f.OrderID == "" || slices.Contains(sum.OrderIDs, f.OrderID)) &&
		sum.DurationMS*float64(time.Millisecond) >= float64(f.MinDuration) && (f.Error == nil || *f.Error == sum.Error)
}

// Merge puts together the summaries of the same traces from several
// processes (each process's summary of a trace describes its own spans
// of it): one summary per trace, the most recent first. A merged trace
// spans from its earliest start to its latest end, counts every
// process's spans, has an error if any part has one, and its root is
// the earliest part's.
func Merge(parts ...[]Summary) []Summary {
	byID := map[string]*Summary{}
	var ids []string
	for _, part := range parts {
		for _, sum := range part {
			m := byID[sum.TraceID]
			if m == nil {
				c := sum
				c.Services, c.OrderIDs = slices.Clone(sum.Services), slices.Clone(sum.OrderIDs)
				byID[sum.TraceID] = &c
				ids = append(ids, sum.TraceID)
				continue
			}
			end := later(m.Start.Add(ms(m.DurationMS)), sum.Start.Add(ms(sum.DurationMS)))
			if sum.Start.Before(m.Start) {
				m.Start = sum.Start
				if sum.Root != "" {
					m.Root = sum.Root
				}
			}
			if m.Root == "" {
				m.Root = sum.Root
			}
			m.DurationMS = float64(end.Sub(m.Start).Microseconds()) / 1000
			m.Spans += sum.Spans
			m.Error = m.Error || sum.Error
			for _, s := range sum.Services {
				if !slices.Contains(m.Services, s) {
					m.Services = append(m.Services, s)
				}
			}
			for _, o := range sum.OrderIDs {
				if !slices.Contains(m.OrderIDs, o) {
					m.OrderIDs = append(m.OrderIDs, o)
				}
			}
		}
	}
	out := make([]Summary, 0, len(ids))
	for _, id := range ids {
		m := byID[id]
		slices.Sort(m.Services)
		out = append(out, *m)
	}
	slices.SortStableFunc(out, func(a, b Summary) int { return b.Start.Compare(a.Start) })
	return out
}

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
