package telemetry_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/platform/telemetry"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// hist builds cumulative buckets from per-bucket counts over bounds, the
// last count going to +Inf.
func hist(bounds []float64, counts ...float64) []telemetry.Bucket {
	out := make([]telemetry.Bucket, 0, len(bounds)+1)
	sum := 0.0
	for i, b := range bounds {
		sum += counts[i]
		out = append(out, telemetry.Bucket{UpperBound: b, Count: sum})
	}
	sum += counts[len(bounds)]
	return append(out, telemetry.Bucket{UpperBound: math.Inf(1), Count: sum})
}

func TestBetweenRatesAndP99FromBucketDeltas(t *testing.T) {
	bounds := []float64{0.05, 0.1, 0.5, 1}
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	prev := telemetry.Reading{At: t0, Checkouts: 100, Requests: 1000, Errors: 10, Latency: hist(bounds, 100, 0, 0, 0, 0)}
	// 5 s later: 50 more checkouts, 40 under 50 ms, 9 in (50, 100] ms and
	// one in (100, 500] ms; 300 requests, 5 of them 5xx.
	cur := telemetry.Reading{At: t0.Add(5 * time.Second), Checkouts: 150, Requests: 1300, Errors: 15, Lag: 42,
		Latency: hist(bounds, 140, 9, 1, 0, 0)}
	p := telemetry.Between(prev, cur)
	if !p.At.Equal(cur.At) || p.OrdersPerSec != 10 || p.RequestsPerSec != 60 || p.ErrorsPerSec != 1 || p.Lag != 42 {
		t.Fatalf("point %+v", p)
	}
	// Rank 0.99 × 50 = 49.5 falls in (100, 500] ms, which holds the 50th
	// observation alone: 100 + 400 × (49.5 − 49) / 1 = 300 ms.
	if !near(p.P99Ms, 300) {
		t.Errorf("p99 = %v ms, want 300", p.P99Ms)
	}

	// Interpolation within the first bucket starts at 0.
	p = telemetry.Between(telemetry.Reading{At: t0, Latency: hist(bounds, 0, 0, 0, 0, 0)},
		telemetry.Reading{At: t0.Add(time.Second), Latency: hist(bounds, 100, 0, 0, 0, 0)})
	if !near(p.P99Ms, 49.5) {
		t.Errorf("p99 in the first bucket = %v ms, want 49.5", p.P99Ms)
	}
	// Past the last finite bound: that bound.
	p = telemetry.Between(telemetry.Reading{At: t0, Latency: hist(bounds, 0, 0, 0, 0, 0)},
		telemetry.Reading{At: t0.Add(time.Second), Latency: hist(bounds, 1, 0, 0, 0, 9)})
	if !near(p.P99Ms, 1000) {
		t.Errorf("p99 in +Inf = %v ms, want 1000", p.P99Ms)
	}
	// No checkout in the step: no p99, no orders.
	p = telemetry.Between(cur, telemetry.Reading{At: cur.At.Add(5 * time.Second), Checkouts: 150, Latency: cur.Latency, Requests: 1300, Errors: 15})
	if p.P99Ms != 0 || p.OrdersPerSec != 0 || p.RequestsPerSec != 0 {
		t.Errorf("idle point %+v", p)
	}
	// Counters that went back (a restart) count from zero.
	p = telemetry.Between(cur, telemetry.Reading{At: cur.At.Add(5 * time.Second), Checkouts: 5, Requests: 50, Latency: hist(bounds, 5, 0, 0, 0, 0)})
	if p.OrdersPerSec != 1 || p.RequestsPerSec != 10 || !near(p.P99Ms, 49.5) {
		t.Errorf("point after a restart %+v", p)
	}
	// A step of no time is no rate.
	if p := telemetry.Between(cur, cur); p.OrdersPerSec != 0 || p.P99Ms != 0 {
		t.Errorf("zero step %+v", p)
	}
}

func TestSamplerRingIsBoundedAndOldestFirst(t *testing.T) {
	s := telemetry.NewSampler(nil, 5*time.Second, 3)
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	if n := len(s.Points()); n != 0 {
		t.Fatalf("%d points before any reading", n)
	}
	s.Record(telemetry.Reading{At: t0})
	if n := len(s.Points()); n != 0 {
		t.Fatalf("%d points after the first reading, want 0 (it starts the first step)", n)
	}
	for i := 1; i <= 5; i++ {
		s.Record(telemetry.Reading{At: t0.Add(time.Duration(i) * 5 * time.Second), Checkouts: float64(i * 5)})
		if n, want := len(s.Points()), min(i, 3); n != want {
			t.Fatalf("after %d steps: %d points, want %d", i, n, want)
		}
	}
	pts := s.Points()
	for i, p := range pts {
		if want := t0.Add(time.Duration(i+3) * 5 * time.Second); !p.At.Equal(want) || p.OrdersPerSec != 1 {
			t.Errorf("point %d: %+v, want at %v, 1 order/s", i, p, want)
		}
	}
}

func TestSamplerServesJSON(t *testing.T) {
	m := telemetry.New()
	m.Projection(&lagger{name: "orders", lag: 3})
	m.Relay(&lagger{name: "events", lag: 9})
	m.ConsumerPending("reactions", 5)
	s := m.Sampler()
	if s.Step() != 5*time.Second {
		t.Errorf("step %v", s.Step())
	}
	ctx := context.Background()
	s.Record(m.Reading(ctx))
	for range 10 {
		m.CheckoutEnded(true, "", 20*time.Millisecond)
	}
	r := m.Reading(ctx)
	if r.Checkouts != 10 || r.Lag != 9 || len(r.Latency) == 0 || r.Latency[len(r.Latency)-1].Count != 10 {
		t.Fatalf("reading %+v", r)
	}
	s.Record(r)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/ops/metrics/series", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	var body struct {
		StepSeconds float64 `json:"step_seconds"`
		Points      []struct {
			At             string   `json:"at"`
			OrdersPerSec   *float64 `json:"orders_per_sec"`
			P99Ms          *float64 `json:"p99_ms"`
			RequestsPerSec *float64 `json:"requests_per_sec"`
			ErrorsPerSec   *float64 `json:"errors_per_sec"`
			Lag            *float64 `json:"lag"`
		} `json:"points"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	if body.StepSeconds != 5 || len(body.Points) != 1 {
		t.Fatalf("body %s", rec.Body)
	}
	pt := body.Points[0]
	if _, err := time.Parse(time.RFC3339, pt.At); err != nil {
		t.Errorf("at %q: %v", pt.At, err)
	}
	if pt.OrdersPerSec == nil || *pt.OrdersPerSec <= 0 || pt.P99Ms == nil || *pt.P99Ms <= 0 || *pt.P99Ms > 25 ||
		pt.RequestsPerSec == nil || pt.ErrorsPerSec == nil || pt.Lag == nil || *pt.Lag != 9 {
		t.Errorf("point %s", rec.Body)
	}

	// No points yet: an empty list, not null.
	rec = httptest.NewRecorder()
	telemetry.NewSampler(nil, time.Second, 2).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if got := rec.Body.String(); got != `{"step_seconds":1,"points":[]}`+"\n" && got != `{"step_seconds":1,"points":[]}` {
		t.Errorf("empty series %q", got)
	}
}
