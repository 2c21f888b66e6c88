package traces

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"time"

	"github.com/agora-commerce/agora/internal/platform/tracing"
)

// Subject is the bus subject (in the bus's namespace) on which every
// process of a distributed platform answers trace queries from its own
// store (Respond).
const Subject = "ops.traces"

// DefaultTimeout is how long a Gatherer waits for the processes' answers.
const DefaultTimeout = 2 * time.Second

// query is a trace query on the bus.
type query struct {
	// Op is "list" (the summaries Filter selects), "summaries" (of IDs)
	// or "get" (the spans of trace ID).
	Op      string   `json:"op"`
	OrderID string   `json:"order_id,omitempty"`
	Limit   int      `json:"limit,omitempty"`
	IDs     []string `json:"ids,omitempty"`
	ID      string   `json:"id,omitempty"`
}

// answer is a process's answer to a query.
type answer struct {
	Process   string            `json:"process"`
	Summaries []tracing.Summary `json:"summaries,omitempty"`
	Spans     []tracing.Span    `json:"spans,omitempty"`
}

// Respond answers the trace queries of Gatherers from store s, naming
// this process process: the handler to respond on Subject with, every
// process on its own (no queue).
func Respond(process string, s *tracing.Store) func(ctx context.Context, data []byte) []byte {
	return func(_ context.Context, data []byte) []byte {
		var q query
		a := answer{Process: process}
		if json.Unmarshal(data, &q) == nil {
			switch q.Op {
			case "list":
				a.Summaries = s.List(tracing.Filter{OrderID: q.OrderID, Limit: q.Limit})
			case "summaries":
				a.Summaries = s.Summaries(q.IDs)
			case "get":
				a.Spans = s.Spans(q.ID)
			}
		}
		out, _ := json.Marshal(a)
		return out
	}
}

// Bus is what a Gatherer needs of the bus (natsbus.Bus).
type Bus interface {
	// Gather sends data to subject and hands each process's answer to
	// each until it returns true or ctx ends.
	Gather(ctx context.Context, subject string, data []byte, each func(answer []byte) bool) error
}

// Gatherer is a Source over the trace stores of every process: it asks
// them all on the bus (scatter-gather) and puts their answers together.
// A process that does not answer within the timeout is skipped and named
// as partial.
type Gatherer struct {
	// Bus carries the queries.
	Bus Bus
	// Processes names the processes expected to answer: every one
	// registered, and this one (what Respond names them).
	Processes func() []string
	// Timeout bounds each round of asking (default DefaultTimeout).
	Timeout time.Duration
	// Logger receives undecodable answers (default slog.Default()).
	Logger *slog.Logger
}

var _ Source = (*Gatherer)(nil)

// ask sends q to every process and returns their answers, and the
// expected processes that did not answer in time.
func (g *Gatherer) ask(ctx context.Context, q query) ([]answer, []string, error) {
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var expected []string
	if g.Processes != nil {
		expected = g.Processes()
	}
	waiting := make(map[string]bool, len(expected))
	for _, p := range expected {
		waiting[p] = true
	}
	data, err := json.Marshal(q)
	if err != nil {
		return nil, nil, err
	}
	var answers []answer
	err = g.Bus.Gather(ctx, Subject, data, func(raw []byte) bool {
		var a answer
		if err := json.Unmarshal(raw, &a); err != nil {
			g.logger().Warn("traces: an undecodable answer", "err", err)
			return false
		}
		answers = append(answers, a)
		delete(waiting, a.Process)
		return len(expected) > 0 && len(waiting) == 0
	})
	if err != nil {
		return nil, nil, err
	}
	var partial []string
	for p := range waiting {
		partial = append(partial, p)
	}
	slices.Sort(partial)
	return answers, partial, nil
}

func (g *Gatherer) logger() *slog.Logger {
	if g.Logger != nil {
		return g.Logger
	}
	return slog.Default()
}

// List implements Source: each process lists its traces (of the order,
// if the filter names one), and then summarises its part of every trace
// listed, for the whole traces' summaries the rest of the filter is
// applied to.
func (g *Gatherer) List(ctx context.Context, f tracing.Filter) ([]tracing.Summary, []string, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	answers, partial, err := g.ask(ctx, query{Op: "list", OrderID: f.OrderID, Limit: limit})
	if err != nil {
		return nil, nil, err
	}
	parts := make([][]tracing.Summary, len(answers))
	for i, a := range answers {
		parts[i] = a.Summaries
	}
	listed := tracing.Merge(parts...)
	// The most recent traces; more of them when the rest of the filter
	// may pass over some.
	keep := limit
	if f.Error != nil || f.MinDuration > 0 {
		keep = min(4*limit, 500)
	}
	ids := make([]string, 0, min(keep, len(listed)))
	for _, s := range listed[:min(keep, len(listed))] {
		ids = append(ids, s.TraceID)
	}
	if len(ids) == 0 {
		return nil, partial, nil
	}
	answers, partial2, err := g.ask(ctx, query{Op: "summaries", IDs: ids})
	if err != nil {
		return nil, nil, err
	}
	parts = parts[:0]
	for _, a := range answers {
		parts = append(parts, a.Summaries)
	}
	var out []tracing.Summary
	for _, s := range tracing.Merge(parts...) {
		if len(out) < limit && f.Match(s) {
			out = append(out, s)
		}
	}
	return out, union(partial, partial2), nil
}

// Get implements Source: every process's spans of trace id, assembled.
func (g *Gatherer) Get(ctx context.Context, id string) (tracing.Trace, bool, []string, error) {
	answers, partial, err := g.ask(ctx, query{Op: "get", ID: id})
	if err != nil {
		return tracing.Trace{}, false, nil, err
	}
	var spans []tracing.Span
	for _, a := range answers {
		spans = append(spans, a.Spans...)
	}
	if len(spans) == 0 {
		return tracing.Trace{}, false, partial, nil
	}
	return tracing.Assemble(id, spans), true, partial, nil
}

func union(a, b []string) []string {
	for _, s := range b {
		if !slices.Contains(a, s) {
			a = append(a, s)
		}
	}
	slices.Sort(a)
	return a
}
