package telemetry

import (
	"context"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// Reading is the cumulative state of a process's metrics at one moment,
// what a Sampler takes the differences of.
type Reading struct {
	// At is when it was read.
	At time.Time
	// Checkouts counts the checkouts that reached a terminal status.
	Checkouts float64
	// Latency is the histogram of their durations (submit → terminal, in
	// seconds): cumulative buckets by ascending upper bound, the last one
	// +Inf (holding the count of every observation).
	Latency []Bucket
	// Requests counts HTTP requests served, Errors those answered 5xx.
	Requests, Errors float64
	// Lag is the largest lag now: of the projections and relays (in
	// positions) and of the consumers (in messages).
	Lag float64
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	// UpperBound is the bucket's inclusive upper bound (+Inf for the last).
	UpperBound float64
	// Count is the observations at most UpperBound.
	Count float64
}

// Point is one step of the console's charts: rates over the step that
// ended At, and the lag at At.
type Point struct {
	// At is the end of the step.
	At time.Time
	// OrdersPerSec is the checkouts that reached a terminal status per
	// second.
	OrdersPerSec float64
	// P99Ms is the 99th percentile of those checkouts' durations (submit →
	// terminal), in milliseconds, interpolated within the histogram's
	// buckets as Prometheus's histogram_quantile does; 0 with none.
	P99Ms float64
	// RequestsPerSec and ErrorsPerSec are the HTTP requests served, and
	// those answered 5xx, per second.
	RequestsPerSec, ErrorsPerSec float64
	// Lag is the largest lag at At (Reading.Lag).
	Lag float64
}

// Between returns the point of the step from prev to cur. Counters that
// went back (a restart) count from zero.
func Between(prev, cur Reading) Point {
	p := Point{At: cur.At, Lag: cur.Lag}
	secs := cur.At.Sub(prev.At).Seconds()
	if secs <= 0 {
		return p
	}
	rate := func(now, before float64) float64 {
		if now < before {
			before = 0
		}
		return (now - before) / secs
	}
	p.OrdersPerSec = rate(cur.Checkouts, prev.Checkouts)
	p.RequestsPerSec = rate(cur.Requests, prev.Requests)
	p.ErrorsPerSec = rate(cur.Errors, prev.Errors)
	p.P99Ms = quantile(0.99, delta(prev.Latency, cur.Latency)) * 1000
	return p
}

// delta returns the buckets of the observations between two cumulative
// histograms of the same buckets (cur alone if they differ or cur is
// lower: a restart).
func delta(prev, cur []Bucket) []Bucket {
	out := make([]Bucket, len(cur))
	copy(out, cur)
	if len(prev) != len(cur) {
		return out
	}
	for i := range cur {
		if prev[i].UpperBound != cur[i].UpperBound || cur[i].Count < prev[i].Count {
			copy(out, cur)
			return out
		}
		out[i].Count = cur[i].Count - prev[i].Count
	}
	return out
}

// quantile returns the q-quantile of cumulative buckets, interpolating
// linearly within the bucket it falls in (the first bucket's lower bound
// is 0); one falling in the +Inf bucket is the highest finite bound. No
// observation: 0.
func quantile(q float64, buckets []Bucket) float64 {
	if len(buckets) == 0 {
		return 0
	}
	total := buckets[len(buckets)-1].Count
	if total <= 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, b := range buckets {
		if b.Count >= rank {
			if math.IsInf(b.UpperBound, 1) {
				if i == 0 {
					return 0
				}
				return buckets[i-1].UpperBound
			}
			if b.Count == below {
				return b.UpperBound
			}
			return lower + (b.UpperBound-lower)*(rank-below)/(b.Count-below)
		}
		lower, below = b.UpperBound, b.Count
	}
	return lower
}

// Sampler keeps the last points of a process's metrics, one per step, in
// a bounded ring, for the console's charts.
type Sampler struct {
	read func(ctx context.Context) Reading
	step time.Duration

	mu     sync.Mutex
	ring   []Point
	next   int // where the next point goes
	full   bool
	prev   Reading
	primed bool
}

// NewSampler returns a sampler that reads with read every step and keeps
// the last keep points.
func NewSampler(read func(ctx context.Context) Reading, step time.Duration, keep int) *Sampler {
	return &Sampler{read: read, step: step, ring: make([]Point, max(keep, 1))}
}

// Sampler returns the process's sampler (the same one every call):
// every 5 s, for the last 15 minutes (180 points). Run it with Run.
func (m *Metrics) Sampler() *Sampler {
	m.samplerOnce.Do(func() { m.sampler = NewSampler(m.Reading, 5*time.Second, 180) })
	return m.sampler
}

// Step returns the sampler's step.
func (s *Sampler) Step() time.Duration { return s.step }

// Run reads at once and then every step, recording each reading, until
// ctx ends.
func (s *Sampler) Run(ctx context.Context) error {
	t := time.NewTicker(s.step)
	defer t.Stop()
	for {
		s.Record(s.read(ctx))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Record adds the point from the previous reading to r (the first reading
// only sets where the first step starts), dropping the oldest point once
// the ring is full.
func (s *Sampler) Record(r Reading) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.primed {
		s.ring[s.next] = Between(s.prev, r)
		s.next++
		if s.next == len(s.ring) {
			s.next, s.full = 0, true
		}
	}
	s.prev, s.primed = r, true
}

// Points returns the points kept, oldest first.
func (s *Sampler) Points() []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.full {
		return append([]Point(nil), s.ring[:s.next]...)
	}
	out := make([]Point, 0, len(s.ring))
	out = append(out, s.ring[s.next:]...)
	return append(out, s.ring[:s.next]...)
}

// series is the JSON of GET /api/v1/ops/metrics/series.
type series struct {
	StepSeconds float64       `json:"step_seconds"`
	Points      []seriesPoint `json:"points"`
}

type seriesPoint struct {
	At             string  `json:"at"`
	OrdersPerSec   float64 `json:"orders_per_sec"`
	P99Ms          float64 `json:"p99_ms"`
	RequestsPerSec float64 `json:"requests_per_sec"`
	ErrorsPerSec   float64 `json:"errors_per_sec"`
	Lag            float64 `json:"lag"`
}

// Handler serves the points as JSON: {"step_seconds": 5, "points": [{"at":
// RFC 3339 time, "orders_per_sec", "p99_ms", "requests_per_sec",
// "errors_per_sec", "lag"}, ...]}, oldest first.
func (s *Sampler) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pts := s.Points()
		out := series{StepSeconds: s.step.Seconds(), Points: make([]seriesPoint, len(pts))}
		for i, p := range pts {
			out.Points[i] = seriesPoint{At: p.At.UTC().Format(time.RFC3339), OrdersPerSec: round(p.OrdersPerSec), P99Ms: round(p.P99Ms),
				RequestsPerSec: round(p.RequestsPerSec), ErrorsPerSec: round(p.ErrorsPerSec), Lag: p.Lag}
		}
		w.Header().Set("Cache-Control", "no-store")
		httpapi.JSON(w, http.StatusOK, out)
	})
}

// round keeps three decimals: the charts need no more.
func round(f float64) float64 { return math.Round(f*1000) / 1000 }

// Reading reads the process's metrics for the sampler: the checkouts
// ended and their durations, the HTTP requests and 5xx answers, and the
// largest lag of the projections, relays and consumers.
func (m *Metrics) Reading(ctx context.Context) Reading {
	r := Reading{At: time.Now()}
	families, _ := m.sampled.Gather() // a partial gathering still helps
	for _, f := range families {
		switch f.GetName() {
		case "agora_checkouts_ended_total":
			for _, s := range f.GetMetric() {
				r.Checkouts += s.GetCounter().GetValue()
			}
		case "agora_checkout_duration_seconds":
			// The histograms of every status share their bounds: add
			// them up.
			byBound, total := map[float64]float64{}, 0.0
			for _, s := range f.GetMetric() {
				h := s.GetHistogram()
				for _, b := range h.GetBucket() {
					byBound[b.GetUpperBound()] += float64(b.GetCumulativeCount())
				}
				total += float64(h.GetSampleCount())
			}
			r.Latency = buckets(byBound, total)
		case "agora_http_requests_total":
			for _, s := range f.GetMetric() {
				v := s.GetCounter().GetValue()
				r.Requests += v
				for _, l := range s.GetLabel() {
					if l.GetName() == "code" && strings.HasPrefix(l.GetValue(), "5") {
						r.Errors += v
					}
				}
			}
		}
	}
	r.Lag = m.maxLag(ctx)
	return r
}

// buckets returns cumulative counts by upper bound as ascending buckets
// ending with +Inf, which holds total.
func buckets(byBound map[float64]float64, total float64) []Bucket {
	out := make([]Bucket, 0, len(byBound)+1)
	for ub, n := range byBound {
		if !math.IsInf(ub, 1) {
			out = append(out, Bucket{UpperBound: ub, Count: n})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UpperBound < out[j].UpperBound })
	return append(out, Bucket{UpperBound: math.Inf(1), Count: total})
}

// maxLag is the largest lag of the projections and relays (asked now) and
// of the consumers (as last polled).
func (m *Metrics) maxLag(ctx context.Context) float64 {
	m.lagMu.Lock()
	lags := append([]Lagger(nil), m.lags...)
	most := 0.0
	for _, n := range m.pending {
		most = max(most, float64(n))
	}
	m.lagMu.Unlock()
	for _, l := range lags {
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		n, err := l.Lag(lctx)
		cancel()
		if err == nil {
			most = max(most, float64(n))
		}
	}
	return most
}
