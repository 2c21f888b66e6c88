package load

import (
	"sort"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Outcome is how one HTTP request ended.
type Outcome int

const (
	// OK: the answer the scenario wanted.
	OK Outcome = iota
	// Refused: a refusal the scenario asked for (an order or a transfer
	// over the balance), counted apart from errors.
	Refused
	// Failed: anything else — a transport error, a 5xx, an unexpected
	// status or body. These are the errors --max-errors counts.
	Failed
	// Throttled: a 429; the request is retried after its Retry-After.
	Throttled
)

// tally is one scenario's counts and latencies. vegeta's Metrics keeps
// the latencies in a t-digest (compression 100), whose tail quantiles are
// within a fraction of a percent of the exact ones.
type tally struct {
	requests, ok, refused, errors, throttled uint64
	metrics                                  vegeta.Metrics
}

func (t *tally) add(o Outcome, r *vegeta.Result) {
	t.requests++
	switch o {
	case OK:
		t.ok++
	case Refused:
		t.refused++
	case Failed:
		t.errors++
	case Throttled:
		// A 429 is answered at once, before any work: its latency
		// would only flatter the percentiles, so it is counted and no
		// more.
		t.throttled++
		return
	}
	if r.Latency > 0 { // not an error found without a request (a follow's deadline)
		t.metrics.Add(r)
	}
}

// stats gathers every scenario's tally, the total, the errors seen and
// the orders' and transfers' outcomes. Safe for concurrent use.
type stats struct {
	mu        sync.Mutex
	scenarios [len(Mix{})]tally
	total     tally
	errs      map[errKey]int

	ordersPlaced, ordersConfirmed, ordersUnfinished uint64
	ordersCancelled                                 map[string]uint64
	checkout                                        vegeta.LatencyMetrics
	transfersStarted, transfersCompleted            uint64
	transfersFailed, transfersUnfinished            uint64
}

type errKey struct{ scenario, msg string }

func newStats() *stats {
	return &stats{errs: map[errKey]int{}, ordersCancelled: map[string]uint64{}}
}

// record counts one request of scenario.
func (s *stats) record(scenario string, o Outcome, code int, started time.Time, latency time.Duration, errMsg string) {
	r := &vegeta.Result{Code: uint16(code), Timestamp: started, Latency: latency, Error: errMsg}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scenarios[index(scenario)].add(o, r)
	s.total.add(o, r)
	if o == Failed {
		s.errs[errKey{scenario, errMsg}]++
	}
}

// snapshot is what the progress display shows.
type snapshot struct {
	requests, errors, throttled uint64
	p50, p99                    time.Duration
}

func (s *stats) snapshot() snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.total.metrics.Latencies
	snap := snapshot{requests: s.total.requests, errors: s.total.errors, throttled: s.total.throttled}
	if s.total.requests > s.total.throttled {
		snap.p50, snap.p99 = l.Quantile(0.5), l.Quantile(0.99)
	}
	return snap
}

func (s *stats) requests() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total.requests
}

func (s *stats) orderPlaced() {
	s.mu.Lock()
	s.ordersPlaced++
	s.mu.Unlock()
}

// orderEnded records an order's terminal status ("" if it was not seen
// to end) and how long it took from submit.
func (s *stats) orderEnded(status, reason string, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch status {
	case "Confirmed":
		s.ordersConfirmed++
	case "Cancelled":
		if reason == "" {
			reason = "unknown"
		}
		s.ordersCancelled[reason]++
	default:
		s.ordersUnfinished++
		return
	}
	s.checkout.Add(took)
}

func (s *stats) transferStarted() {
	s.mu.Lock()
	s.transfersStarted++
	s.mu.Unlock()
}

// transferEnded records a transfer's terminal status ("" if unseen).
func (s *stats) transferEnded(status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch status {
	case "Completed":
		s.transfersCompleted++
	case "Failed":
		s.transfersFailed++
	default:
		s.transfersUnfinished++
	}
}

// report builds the Report of a run that lasted elapsed.
func (s *stats) report(elapsed time.Duration) Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	row := func(name string, t *tally) ScenarioReport {
		l := &t.metrics.Latencies
		r := ScenarioReport{Name: name, Requests: t.requests, OK: t.ok, ExpectedRefusals: t.refused,
			Errors: t.errors, Throttled: t.throttled}
		if t.requests > t.throttled {
			r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs = ms(l.Quantile(0.5)), ms(l.Quantile(0.9)), ms(l.Quantile(0.99)), ms(l.Max)
		}
		if secs := elapsed.Seconds(); secs > 0 {
			r.RequestsPerSec = round1(float64(t.requests) / secs)
		}
		return r
	}
	var rep Report
	for i, name := range Scenarios {
		rep.Scenarios = append(rep.Scenarios, row(name, &s.scenarios[i]))
	}
	rep.Total = row("total", &s.total)
	rep.Orders = OrdersReport{Placed: s.ordersPlaced, Confirmed: s.ordersConfirmed, Unfinished: s.ordersUnfinished,
		Cancelled: map[string]uint64{}}
	for k, v := range s.ordersCancelled {
		rep.Orders.Cancelled[k] = v
	}
	if n := s.ordersConfirmed + sum(s.ordersCancelled); n > 0 {
		rep.Orders.P50Ms, rep.Orders.P99Ms = ms(s.checkout.Quantile(0.5)), ms(s.checkout.Quantile(0.99))
	}
	rep.Transfers = TransfersReport{Started: s.transfersStarted, Completed: s.transfersCompleted,
		Failed: s.transfersFailed, Unfinished: s.transfersUnfinished}
	rep.ErrorSamples = []ErrorSample{}
	for k, n := range s.errs {
		rep.ErrorSamples = append(rep.ErrorSamples, ErrorSample{Scenario: k.scenario, Error: k.msg, Count: n})
	}
	sort.Slice(rep.ErrorSamples, func(i, j int) bool {
		a, b := rep.ErrorSamples[i], rep.ErrorSamples[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Scenario+a.Error < b.Scenario+b.Error
	})
	if len(rep.ErrorSamples) > 10 {
		rep.ErrorSamples = rep.ErrorSamples[:10]
	}
	return rep
}

func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
