// Package bench measures the event stores for `agora bench store`:
// group-committed throughput and latency against a naive baseline (one
// transaction per one-event append) measured in the same run, catch-up
// read speed, and aggregate load time from a snapshot versus a replay.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/agora-commerce/agora/aggregate"
	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/postgres"
	"github.com/agora-commerce/agora/eventstore/sqlite"
	"github.com/agora-commerce/agora/internal/payments"
	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/money"
)

// Config sets what to measure.
type Config struct {
	// Events is the number of events of each throughput run.
	Events int
	// NaiveEvents is the number of events of each naive run (default Events/10).
	NaiveEvents int
	// Writers is the number of concurrent appenders.
	Writers int
	// PostgresURL, if set, benchmarks PostgreSQL too (in a scratch schema).
	PostgresURL string
	// Dir holds the SQLite files (default: a temporary directory).
	Dir string
	// Log, if set, receives progress lines.
	Log func(format string, args ...any)
	// Progress, if set, is told how many events each phase has appended
	// or read.
	Progress Progress
}

// Throughput is one store's append figures.
type Throughput struct {
	// EventsPerSec is the group-committed append rate.
	EventsPerSec float64 `json:"events_per_sec"`
	// NaiveEventsPerSec is the one-transaction-per-append baseline's rate.
	NaiveEventsPerSec float64 `json:"naive_events_per_sec"`
	// Speedup is EventsPerSec / NaiveEventsPerSec.
	Speedup float64 `json:"speedup"`
	// P50Ms is the median append latency in milliseconds.
	P50Ms float64 `json:"p50_ms"`
	// P99Ms is the 99th-percentile append latency in milliseconds.
	P99Ms float64 `json:"p99_ms"`
	// NaiveP99Ms is the baseline's 99th-percentile latency.
	NaiveP99Ms float64 `json:"naive_p99_ms"`
	// Events is how many events the main run appended.
	Events int `json:"events"`
	// Writers is how many concurrent appenders ran.
	Writers int `json:"writers"`
	// CatchupPerSec is the rate of reading the whole log from position 0.
	CatchupPerSec float64 `json:"catchup_events_per_sec"`
	// Skipped says why the store was not measured, if it was not.
	Skipped string `json:"skipped,omitempty"`
}

// Result is the benchmark's output.
type Result struct {
	// SQLite is the embedded store's figures.
	SQLite Throughput `json:"sqlite"`
	// Postgres is the PostgreSQL store's figures.
	Postgres Throughput `json:"postgres"`
	// CatchupEventsPerSec is the SQLite store's catch-up rate.
	CatchupEventsPerSec float64 `json:"catchup_events_per_sec"`
	// AggregateLoad10kSnapshotMs is the time to load a 10k-event account from its snapshot.
	AggregateLoad10kSnapshotMs float64 `json:"aggregate_load_10k_snapshot_ms"`
	// AggregateLoad10kReplayMs is the time to load it by replaying every event.
	AggregateLoad10kReplayMs float64 `json:"aggregate_load_10k_replay_ms"`
	// CPUs is runtime.NumCPU on the measuring machine.
	CPUs int `json:"cpus"`
}

// WriteJSON prints r as one JSON object.
func (r Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable prints r as a readable table.
func (r Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "store\tevents/s\tnaive events/s\tspeedup\tp50 ms\tp99 ms\tnaive p99 ms\tcatch-up events/s\t")
	for _, t := range []struct {
		name string
		t    Throughput
	}{{"sqlite", r.SQLite}, {"postgres", r.Postgres}} {
		if t.t.Skipped != "" {
			fmt.Fprintf(tw, "%s\tskipped: %s\t\t\t\t\t\t\t\n", t.name, t.t.Skipped)
			continue
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.1fx\t%.2f\t%.2f\t%.2f\t%.0f\t\n", t.name, t.t.EventsPerSec, t.t.NaiveEventsPerSec, t.t.Speedup, t.t.P50Ms, t.t.P99Ms, t.t.NaiveP99Ms, t.t.CatchupPerSec)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d concurrent appenders, one event per append, durable (fsync) commits; naive = one transaction per append, no batching.\n", r.SQLite.Writers)
	fmt.Fprintf(w, "aggregate load, 10k events (sqlite): %.3f ms from a snapshot, %.1f ms by replay\n", r.AggregateLoad10kSnapshotMs, r.AggregateLoad10kReplayMs)
	return nil
}

func (c *Config) defaults() {
	if c.Events <= 0 {
		c.Events = 200_000
	}
	if c.NaiveEvents <= 0 {
		c.NaiveEvents = max(c.Events/10, 1000)
	}
	if c.Writers <= 0 {
		c.Writers = 64
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
}

// Run measures and returns the figures.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg.defaults()
	res := Result{CPUs: numCPU()}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "agora-bench-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	var err error
	res.SQLite, err = storeRun(ctx, cfg, "sqlite", func(ctx context.Context, name string, maxBatch int) (eventstore.Store, func(), error) {
		s, err := sqlite.Open(ctx, filepath.Join(dir, name+".db"), sqlite.Options{MaxBatch: maxBatch})
		return s, func() { s.Close() }, err
	})
	if err != nil {
		return res, err
	}
	res.CatchupEventsPerSec = res.SQLite.CatchupPerSec
	if cfg.PostgresURL == "" {
		res.Postgres.Skipped = "AGORA_POSTGRES_URL is not set"
		cfg.Log("postgres: skipped (AGORA_POSTGRES_URL is not set)")
	} else {
		res.Postgres, err = storeRun(ctx, cfg, "postgres", func(ctx context.Context, name string, maxBatch int) (eventstore.Store, func(), error) {
			schema := fmt.Sprintf("agora_bench_%s_%d", name, rand.Uint32())
			s, err := postgres.Open(ctx, cfg.PostgresURL, postgres.Options{Schema: schema, MaxBatch: maxBatch})
			return s, func() {
				if s != nil {
					s.Close()
				}
				postgres.DropSchema(context.Background(), cfg.PostgresURL, schema) //nolint:errcheck // best effort
			}, err
		})
		if err != nil {
			return res, err
		}
	}
	cfg.Log("aggregate load: 10k events, from a snapshot and by replay...")
	cfg.Progress.report("aggregate load", "", 0, 0)
	res.AggregateLoad10kSnapshotMs, res.AggregateLoad10kReplayMs, err = aggregateLoad(ctx, dir)
	return res, err
}

// Progress is told how far a benchmark has got: done of total units
// (events, orders, ...; total <= 0: no known end) of what it is doing now.
// The CLI shows it as a bar on a terminal, a plain line now and then
// elsewhere.
type Progress func(what, unit string, done, total int)

// report calls p, if set.
func (p Progress) report(what, unit string, done, total int) {
	if p != nil {
		p(what, unit, done, total)
	}
}

// of is p's report of what, counted in unit (doing nothing if p is not
// set).
func (p Progress) of(what, unit string) func(done, total int) {
	return func(done, total int) { p.report(what, unit, done, total) }
}

type opener func(ctx context.Context, name string, maxBatch int) (eventstore.Store, func(), error)

func storeRun(ctx context.Context, cfg Config, name string, open opener) (Throughput, error) {
	t := Throughput{Events: cfg.Events, Writers: cfg.Writers}
	// The naive baseline first, then the real thing, each on a fresh store.
	cfg.Log("%s: naive baseline, %d events by %d writers...", name, cfg.NaiveEvents, cfg.Writers)
	naive, closeNaive, err := open(ctx, "naive", 1)
	if err != nil {
		return t, fmt.Errorf("%s: %w", name, err)
	}
	rate, lat, err := appendLoad(ctx, naive, cfg.NaiveEvents, cfg.Writers, cfg.Progress.of(name+": naive baseline", "events"))
	closeNaive()
	if err != nil {
		return t, fmt.Errorf("%s naive: %w", name, err)
	}
	t.NaiveEventsPerSec, t.NaiveP99Ms = rate, pct(lat, 0.99)

	cfg.Log("%s: group commit, %d events by %d writers...", name, cfg.Events, cfg.Writers)
	s, closeS, err := open(ctx, "batched", 0)
	if err != nil {
		return t, fmt.Errorf("%s: %w", name, err)
	}
	defer closeS()
	rate, lat, err = appendLoad(ctx, s, cfg.Events, cfg.Writers, cfg.Progress.of(name+": group commit", "events"))
	if err != nil {
		return t, fmt.Errorf("%s: %w", name, err)
	}
	t.EventsPerSec, t.P50Ms, t.P99Ms = rate, pct(lat, 0.50), pct(lat, 0.99)
	t.Speedup = t.EventsPerSec / t.NaiveEventsPerSec

	cfg.Log("%s: catch-up read of %d events...", name, cfg.Events)
	t.CatchupPerSec, err = catchup(ctx, s, cfg.Progress.of(name+": catch-up read", "events"))
	return t, err
}

// appendLoad appends total one-event appends from writers goroutines and
// returns events/s and every append's latency; progress is told of every
// 500th append.
func appendLoad(ctx context.Context, s eventstore.Store, total, writers int, progress func(done, total int)) (float64, []time.Duration, error) {
	var next atomic.Int64
	lats := make([][]time.Duration, writers)
	errc := make(chan error, writers)
	var wg sync.WaitGroup
	data := json.RawMessage(`{"amount":{"amount":1999,"currency":"USD"},"note":"benchmark deposit"}`)
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				n := next.Add(1)
				if n > int64(total) {
					return
				}
				if n%500 == 0 {
					progress(int(n), total)
				}
				stream := fmt.Sprintf("bench-%d-%d", w, i%16)
				t0 := time.Now()
				if _, err := s.Append(ctx, stream, eventstore.Any, eventstore.EventData{Type: "bench.Deposited", Data: data}); err != nil {
					errc <- err
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errc)
	if err := <-errc; err != nil {
		return 0, nil, err
	}
	progress(total, total)
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return float64(total) / elapsed.Seconds(), all, nil
}

func pct(lat []time.Duration, p float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	i := min(int(float64(len(lat))*p), len(lat)-1)
	return float64(lat[i].Microseconds()) / 1000
}

// catchup reads the whole log from the start, as a new subscriber would,
// telling progress of every batch.
func catchup(ctx context.Context, s eventstore.Store, progress func(done, total int)) (float64, error) {
	head, err := s.Head(ctx)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	n := 0
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = eventstore.Subscribe(ctx, s, 0, 5000, func(_ context.Context, b []eventstore.Record) error {
		n += len(b)
		progress(n, int(head))
		if b[len(b)-1].Position >= head {
			cancel()
		}
		return nil
	})
	if n < int(head) {
		return 0, fmt.Errorf("catch-up read %d of %d events: %w", n, head, err)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// aggregateLoad builds a payments account with 10,000 events and times
// loading it from a snapshot and by full replay.
func aggregateLoad(ctx context.Context, dir string) (snapMs, replayMs float64, err error) {
	s, err := sqlite.Open(ctx, filepath.Join(dir, "aggregate.db"), sqlite.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	usd := money.MustCurrency("USD")
	now := time.Now()
	evs := []eventstore.EventData{}
	add := func(e payments.Event) error {
		d, err := app.Encode(e)
		evs = append(evs, d)
		return err
	}
	if err := add(payments.AccountOpened{AccountID: "bench", OwnerID: "bench", Currency: usd, At: now}); err != nil {
		return 0, 0, err
	}
	for i := 1; i < 10_000; i++ {
		if err := add(payments.MoneyDeposited{Amount: money.New(100, usd), At: now}); err != nil {
			return 0, 0, err
		}
	}
	typ := app.AccountType()
	if _, err := s.Append(ctx, typ.StreamID("bench"), eventstore.NoStream, evs...); err != nil {
		return 0, 0, err
	}
	withSnap := aggregate.NewRepository(s, typ)
	l, err := withSnap.Load(ctx, "bench")
	if err != nil {
		return 0, 0, err
	}
	if l.Version != 10_000 || l.State.Balance != 100*9_999 {
		return 0, 0, fmt.Errorf("aggregate load: got version %d balance %d", l.Version, l.State.Balance)
	}
	if err := withSnap.SaveSnapshot(ctx, l); err != nil {
		return 0, 0, err
	}
	typ.SnapshotEvery = 0
	replay := aggregate.NewRepository(s, typ)
	timeIt := func(r *aggregate.Repository[payments.Account, payments.Event], n int) (float64, error) {
		start := time.Now()
		for i := 0; i < n; i++ {
			got, err := r.Load(ctx, "bench")
			if err != nil {
				return 0, err
			}
			if got.Version != 10_000 {
				return 0, fmt.Errorf("loaded version %d", got.Version)
			}
		}
		return float64(time.Since(start).Microseconds()) / 1000 / float64(n), nil
	}
	if snapMs, err = timeIt(withSnap, 1000); err != nil {
		return 0, 0, err
	}
	replayMs, err = timeIt(replay, 10)
	return snapMs, replayMs, err
}
