package bench

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/sqlite"
	"github.com/agora-commerce/agora/internal/platform/tracing"
	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/messaging/natsbus"
)

// CheckoutConfig sets what `agora bench checkout` runs.
type CheckoutConfig struct {
	// Orders is how many orders to place.
	Orders int
	// InFlight caps orders submitted but not yet Confirmed or Cancelled.
	InFlight int
	// Clients is the number of concurrent HTTP clients.
	Clients int
	// Products and Customers size the catalog and the customer base.
	Products, Customers int
	// Mode is the checkout mode.
	Mode string
	// RelayEvents is the size of the relay measurement (0 skips it).
	RelayEvents int
	// Dir holds the data (default: a temporary directory).
	Dir string
	// Tracing is "on" (default), "off", or "both": rounds with tracing on
	// and off in turn, each mode's rate reported, and what tracing costs.
	Tracing string
	// Rounds is how many rounds "both" runs (default 2; even is fair).
	Rounds int
	// Duration, if set, places orders for that long (a soak) instead of
	// Orders of them; either way the run is measured by tenths.
	Duration time.Duration
	// MemProfile, if set, names a file to write a heap profile to at the
	// end of the run (after a collection, while the platform still runs):
	// what the platform keeps after the orders placed.
	MemProfile string
	// TenthProfiles, if set, is a path prefix: the CPU profile of each
	// tenth of the run goes to PREFIX.tenth-NN.pprof (tracing on or off
	// only; this process's), to compare what an order costs early and
	// late in a soak.
	TenthProfiles string
	// Distributed, if set, runs the platform as a process per context
	// (two each of ordering and payments) on PostgreSQL and NATS instead
	// of in this process. Tracing "both", MemProfile and the relay
	// measurement are of this process's platform: not with it. Tracing
	// "off" starts the processes with OTEL_TRACES_SAMPLER=always_off.
	Distributed *Distributed
	// Log, if set, receives progress lines.
	Log func(format string, args ...any)
	// Progress, if set, is told how many products and customers the
	// setup made, then how many orders of each round ended.
	Progress Progress
}

// CheckoutResult is what `agora bench checkout --json` prints.
type CheckoutResult struct {
	OrdersPerSec float64 `json:"orders_per_sec"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	Confirmed    int     `json:"confirmed"`
	Cancelled    int     `json:"cancelled"`
	Stuck        int     `json:"stuck"`
	// Reasons counts the cancellations by reason.
	Reasons map[string]int `json:"reasons"`
	// RelayMsgsPerSec is the relay's rate from the event store to the
	// embedded broker (lazy fsync + tail rewind, as agora serve runs it).
	RelayMsgsPerSec float64 `json:"relay_msgs_per_sec"`
	Mode            string  `json:"mode"`
	Orders          int     `json:"orders"`
	// Tracing is the run's tracing: on, off or both.
	Tracing string `json:"tracing"`
	// With Tracing "both": the rates of the rounds with tracing on and
	// off, and how much lower the first is, in percent.
	TracingOnOrdersPerSec  float64 `json:"tracing_on_orders_per_sec,omitempty"`
	TracingOffOrdersPerSec float64 `json:"tracing_off_orders_per_sec,omitempty"`
	TracingCostPct         float64 `json:"tracing_cost_pct,omitempty"`
	// The process's CPU time (platform and clients) per order in the
	// rounds with tracing on and off, and how much more the first is, in
	// percent: steadier than the rates on a machine others share.
	TracingOnCPUMsPerOrder  float64 `json:"tracing_on_cpu_ms_per_order,omitempty"`
	TracingOffCPUMsPerOrder float64 `json:"tracing_off_cpu_ms_per_order,omitempty"`
	TracingCPUCostPct       float64 `json:"tracing_cpu_cost_pct,omitempty"`
	// Tenths are the run's tenths, in order (tracing on or off only):
	// whether the cost of an order grows with the orders before it.
	Tenths []Tenth `json:"tenths,omitempty"`
	// Distributed says the platform ran as processes (--distributed).
	Distributed bool `json:"distributed,omitempty"`
	// Processes are the platform's processes, in the order they started,
	// with the CPU each used while the orders were placed (distributed).
	Processes []ProcessCPU `json:"processes,omitempty"`
	// Client is this process's CPU in the same time: the benchmark's
	// clients and its watch of the orders (distributed).
	Client *ProcessCPU `json:"client,omitempty"`
	// CPUNote says why the processes' CPU is missing, when it is (it is
	// read from Linux's /proc).
	CPUNote string `json:"cpu_note,omitempty"`
	// Seconds is how long the orders took, from the first POST to the
	// last order's end (distributed).
	Seconds float64 `json:"seconds,omitempty"`
	// MachineCPUS is the CPU every process on the machine used in that
	// time (distributed, Linux): the platform's and the benchmark's, and
	// whatever else runs there — the database, the broker, other work.
	MachineCPUS float64 `json:"machine_cpu_s,omitempty"`
	// CPUs is how many cores the machine has.
	CPUs int `json:"cpus,omitempty"`
}

// ProcessCPU is the CPU a process used while the orders were placed
// (from the first POST to the last order's end), in seconds and over the
// orders that ended.
type ProcessCPU struct {
	Name          string  `json:"name"`
	PID           int     `json:"pid"`
	CPUS          float64 `json:"cpu_s"`
	CPUMsPerOrder float64 `json:"cpu_ms_per_order"`
}

// Tenth is one tenth of a checkout run: its rate, its orders' p99 from
// submit to terminal, the CPU an order, and the process's resident memory
// at its end (and
// how much of it is the Go heap in use, so that memory outside the heap,
// such as SQLite's page caches, shows as the difference).
type Tenth struct {
	Orders       int     `json:"orders"`
	OrdersPerSec float64 `json:"orders_per_sec"`
	P99Ms        float64 `json:"p99_ms"`
	// RSSMB is the resident memory: the process's, or (distributed)
	// every process's and this one's summed.
	RSSMB float64 `json:"rss_mb"`
	// HeapMB is the Go heap in use (embedded only).
	HeapMB float64 `json:"heap_mb,omitempty"`
	// CPUMsPerOrder is the CPU time (platform and clients: every
	// process's, distributed) in the tenth over its orders: steadier than
	// the rate on a machine others share.
	CPUMsPerOrder float64 `json:"cpu_ms_per_order"`
}

// WriteJSON prints r as one JSON object.
func (r CheckoutResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable prints r for people.
func (r CheckoutResult) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	where := "embedded"
	if r.Distributed {
		where = "distributed"
	}
	fmt.Fprintf(tw, "checkout (%s, %s, %d orders)\t\n", r.Mode, where, r.Orders)
	fmt.Fprintf(tw, "orders/s\t%.0f\n", r.OrdersPerSec)
	fmt.Fprintf(tw, "submit → terminal p50\t%.1f ms\n", r.P50Ms)
	fmt.Fprintf(tw, "submit → terminal p99\t%.1f ms\n", r.P99Ms)
	fmt.Fprintf(tw, "confirmed / cancelled / stuck\t%d / %d / %d\n", r.Confirmed, r.Cancelled, r.Stuck)
	fmt.Fprintf(tw, "cancel reasons\t%v\n", r.Reasons)
	if !r.Distributed {
		fmt.Fprintf(tw, "relay msg/s\t%.0f\n", r.RelayMsgsPerSec)
	}
	fmt.Fprintf(tw, "tracing\t%s\n", r.Tracing)
	if len(r.Tenths) > 0 {
		fmt.Fprintf(tw, "by tenth\torders\torders/s\tp99\tCPU an order\tRSS\tGo heap\n")
		for i, t := range r.Tenths {
			heap := "—"
			if !r.Distributed {
				heap = fmt.Sprintf("%.0f MB", t.HeapMB)
			}
			fmt.Fprintf(tw, "  %d\t%d\t%.0f\t%.0f ms\t%.2f ms\t%.0f MB\t%s\n", i+1, t.Orders, t.OrdersPerSec, t.P99Ms, t.CPUMsPerOrder, t.RSSMB, heap)
		}
	}
	if r.Tracing == "both" {
		fmt.Fprintf(tw, "orders/s, tracing on / off\t%.0f / %.0f (tracing costs %.1f %%)\n", r.TracingOnOrdersPerSec, r.TracingOffOrdersPerSec, r.TracingCostPct)
		fmt.Fprintf(tw, "CPU an order, tracing on / off\t%.2f / %.2f ms (tracing costs %.1f %%)\n", r.TracingOnCPUMsPerOrder, r.TracingOffCPUMsPerOrder, r.TracingCPUCostPct)
	}
	if len(r.Processes) > 0 {
		fmt.Fprintf(tw, "process\tpid\tCPU\tCPU an order\n")
		var total ProcessCPU
		for _, p := range append(r.Processes, *r.Client) {
			if r.CPUNote != "" {
				fmt.Fprintf(tw, "  %s\t%d\t%s\t\n", p.Name, p.PID, r.CPUNote)
				continue
			}
			fmt.Fprintf(tw, "  %s\t%d\t%.1f s\t%.2f ms\n", p.Name, p.PID, p.CPUS, p.CPUMsPerOrder)
			total.CPUS += p.CPUS
			total.CPUMsPerOrder += p.CPUMsPerOrder
		}
		if r.CPUNote == "" {
			fmt.Fprintf(tw, "  total\t\t%.1f s\t%.2f ms\n", total.CPUS, total.CPUMsPerOrder)
		}
		if r.MachineCPUS > 0 {
			fmt.Fprintf(tw, "  the whole machine\t\t%.1f s\t%.2f ms\t(%d cores over %.1f s: %.0f %% busy; beyond the above: the database, the broker, anything else)\n",
				r.MachineCPUS, r.MachineCPUS*1000/float64(max(r.Orders, 1)), r.CPUs, r.Seconds, 100*r.MachineCPUS/(float64(r.CPUs)*r.Seconds))
		}
	}
	return tw.Flush()
}

type benchClient struct {
	base string
	http *http.Client
	// auth, if set, is the session whose token requests carry.
	auth *session
}

// session is a login whose access token is renewed (by logging in again)
// before it expires, so that a soak outlives any one token.
type session struct {
	email, password string

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

// bearer returns the session's token, logging in again first when it is
// due for renewal; "" without a session.
func (c benchClient) bearer(ctx context.Context) (string, error) {
	a := c.auth
	if a == nil {
		return "", nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" && time.Now().Before(a.renewAt) {
		return a.token, nil
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	anon := benchClient{base: c.base, http: c.http}
	if err := anon.post(ctx, "/api/v1/auth/token", map[string]any{"email": a.email, "password": a.password}, &tok); err != nil {
		return "", fmt.Errorf("log in as %s: %w", a.email, err)
	}
	life := time.Duration(tok.ExpiresIn) * time.Second
	if life <= 0 {
		life = 5 * time.Minute
	}
	a.token, a.renewAt = tok.AccessToken, time.Now().Add(life/2)
	return a.token, nil
}

func (c benchClient) post(ctx context.Context, path string, body any, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	tok, err := c.bearer(ctx)
	if err != nil {
		return err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return fmt.Errorf("POST %s: %d %s", path, res.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// RunCheckout runs the platform — in process (embedded storage), or as a
// process per context on PostgreSQL and NATS (cfg.Distributed) — and
// places orders through its gateway's HTTP API as fast as it takes them: a
// mix where about 5% of orders ask for products that are out of stock and
// about 5% come from customers who cannot pay. Latency is from the POST to
// the order's terminal event.
func RunCheckout(ctx context.Context, cfg CheckoutConfig) (CheckoutResult, error) {
	if cfg.Orders <= 0 {
		cfg.Orders = 5000
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 128
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 32
	}
	if cfg.Products <= 0 {
		cfg.Products = 200
	}
	if cfg.Customers <= 0 {
		cfg.Customers = 1000
	}
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if cfg.Distributed != nil {
		// What measures this process's platform only.
		switch {
		case cfg.Tracing == "both":
			return CheckoutResult{}, errors.New("--tracing both switches the tracing of this process's platform: not with --distributed")
		case cfg.MemProfile != "":
			return CheckoutResult{}, errors.New("--memprofile profiles this process's platform: not with --distributed")
		case cfg.Distributed.PostgresURL == "" || cfg.Distributed.NATSURL == "":
			return CheckoutResult{}, ErrDistributedSetup
		}
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "agora-bench-checkout-")
		if err != nil {
			return CheckoutResult{}, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	res := CheckoutResult{Mode: cmp.Or(cfg.Mode, "orchestration"), Orders: cfg.Orders, Reasons: map[string]int{}, Distributed: cfg.Distributed != nil}
	if cfg.RelayEvents > 0 && cfg.Distributed == nil {
		logf("relay: %d events from the event store to the embedded broker", cfg.RelayEvents)
		cfg.Progress.report("relay", "", 0, 0)
		rate, err := relayRate(ctx, dir, cfg.RelayEvents)
		if err != nil {
			return res, fmt.Errorf("relay: %w", err)
		}
		res.RelayMsgsPerSec = rate
	}

	// Everything goes through the gateway as the bootstrapped admin, who
	// places each order on its customer's behalf (the rate limits are
	// off: one client places them all).
	var p checkoutPlatform
	if cfg.Distributed != nil {
		dcfg := *cfg.Distributed
		if cfg.Tracing == "off" {
			dcfg.Env = append(slices.Clip(dcfg.Env), "OTEL_TRACES_SAMPLER=always_off")
		}
		d, err := startDistributed(ctx, dcfg, res.Mode, dir+"/platform", cfg.Clients*2, logf)
		if err != nil {
			return res, err
		}
		p = d
	} else {
		e, err := bootEmbedded(ctx, server.Config{DataDir: dir + "/platform", CheckoutMode: cfg.Mode}, cfg.Clients*2)
		if err != nil {
			return res, err
		}
		p = e
	}
	defer func() {
		if err := p.close(); err != nil {
			logf("stopping the platform: %v", err)
		}
	}()
	c := p.client()

	logf("setup: %d products, %d customers", cfg.Products, cfg.Customers)
	setup := cfg.Progress.of("setup", "products and customers")
	var made atomic.Int64
	products := make([]string, cfg.Products)
	if err := parallel(ctx, len(products), setupWorkers, func(i int) error {
		setup(int(made.Add(1))-1, cfg.Products+cfg.Customers)
		var prod struct{ ID string }
		if err := c.post(ctx, "/api/v1/products", map[string]any{"sku": fmt.Sprintf("BENCH-%d", i), "name": fmt.Sprintf("Product %d", i),
			"price": map[string]any{"amount": 100 + rand.IntN(5000), "currency": "USD"}}, &prod); err != nil {
			return err
		}
		products[i] = prod.ID
		qty := cfg.Orders // plenty
		if i%20 == 0 {
			qty = 1 // these sell out at once: later orders for them are out of stock
		}
		return c.post(ctx, "/api/v1/inventory/"+prod.ID+"/restock", map[string]any{"quantity": qty}, nil)
	}); err != nil {
		return res, err
	}
	customers := make([]string, cfg.Customers)
	if err := parallel(ctx, len(customers), setupWorkers, func(i int) error {
		setup(int(made.Add(1))-1, cfg.Products+cfg.Customers)
		customers[i] = fmt.Sprintf("bench-customer-%d", i)
		bal := int64(1_000_000_000)
		if i%20 == 0 {
			bal = 0 // cannot pay
		}
		return c.post(ctx, "/api/v1/accounts", map[string]any{"id": customers[i], "owner_id": customers[i], "currency": "USD",
			"initial_balance": map[string]any{"amount": bal, "currency": "USD"}}, nil)
	}); err != nil {
		return res, err
	}
	setup(cfg.Products+cfg.Customers, cfg.Products+cfg.Customers)

	var (
		mu        sync.Mutex
		submitted = map[string]time.Time{}
		ended     = map[string]chan struct{}{}
		// The latencies, in histograms of a fixed size: the benchmark
		// keeps the same memory whatever the length of the run (submitted
		// and ended hold the orders in flight only).
		latencies histogram
		last      time.Time
		// The run's tenths, measured as it goes (no pause between them):
		// a tenth closes when tenthSize more orders ended (by count), or
		// on closeTenth's tick (--duration).
		tenthSize  int
		tenthStart time.Time
		tenthCPU   time.Duration
		tenthLat   histogram
		// phase is what the round placing orders is, for the progress:
		// phaseTotal orders (0: until a time), counted from phaseBase
		// ended.
		phase                 string
		phaseBase, phaseTotal int
	)
	closeTenth := func(now time.Time) { // with mu held
		if tenthLat.n == 0 || len(res.Tenths) == 10 {
			return
		}
		cpu, mem := p.cpu(), p.memory()
		t := Tenth{Orders: tenthLat.n, OrdersPerSec: rate(tenthLat.n, now.Sub(tenthStart)), P99Ms: tenthLat.quantile(0.99), RSSMB: mem.RSSMB, HeapMB: mem.HeapMB,
			CPUMsPerOrder: perOrder(cpu-tenthCPU, tenthLat.n)}
		res.Tenths = append(res.Tenths, t)
		if res.Distributed {
			logf("  tenth %d: %d orders, %.0f orders/s, p99 %.0f ms, %.2f ms of CPU an order (every process), RSS %.0f MB (every process)",
				len(res.Tenths), t.Orders, t.OrdersPerSec, t.P99Ms, t.CPUMsPerOrder, t.RSSMB)
		} else {
			logf("  tenth %d: %d orders, %.0f orders/s, p99 %.0f ms, %.2f ms of CPU an order, RSS %.0f MB (Go heap in use %.0f MB, outside Go %.0f MB)",
				len(res.Tenths), t.Orders, t.OrdersPerSec, t.P99Ms, t.CPUMsPerOrder, t.RSSMB, t.HeapMB, mem.OutsideGoMB)
		}
		tenthStart, tenthCPU = now, cpu
		tenthLat.reset()
		if cfg.TenthProfiles != "" {
			stopTenthProfile()
			if len(res.Tenths) < 10 {
				startTenthProfile(cfg.TenthProfiles, len(res.Tenths)+1)
			}
		}
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	// Watch for orders ending. Only the orders this run awaits count (an
	// end seen twice, or of an order whose POST failed, does not).
	if err := p.watch(watchCtx, func(now time.Time, ends []orderEnd) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range ends {
			ch, ok := ended[e.id]
			if !ok {
				continue
			}
			close(ch)
			delete(ended, e.id)
			if e.confirmed {
				res.Confirmed++
			} else {
				res.Cancelled++
				res.Reasons[e.reason]++
			}
			if t, ok := submitted[e.id]; ok {
				latencies.add(now.Sub(t))
				if tenthSize > 0 {
					tenthLat.add(now.Sub(t))
					if tenthLat.n == tenthSize && len(res.Tenths) < 9 {
						closeTenth(now)
					}
				}
				delete(submitted, e.id)
			}
			last = now
		}
		if phase != "" {
			cfg.Progress.report(phase, "orders", res.Confirmed+res.Cancelled-phaseBase, phaseTotal)
		}
	}); err != nil {
		return res, fmt.Errorf("watch the orders: %w", err)
	}
	slot := make(chan struct{}, cfg.InFlight)

	var failed atomic.Int64
	// The first few failures' errors, to say why.
	var failures []string
	// placeUntil places n orders, or as many as it can until until, and
	// waits for them to end (bounded): one round, timed from its first
	// POST to its last order's end. what names it in the progress.
	var placeUntil func(what string, n int, until time.Time) (int, time.Duration, time.Duration)
	// place places n orders (placeUntil with no end).
	place := func(what string, n int) (int, time.Duration, time.Duration) { return placeUntil(what, n, time.Time{}) }
	placeUntil = func(what string, n int, until time.Time) (int, time.Duration, time.Duration) {
		cpu := p.cpu()
		mu.Lock()
		endedBefore := res.Confirmed + res.Cancelled
		last = time.Time{}
		phase, phaseBase, phaseTotal = what, endedBefore, n
		if !until.IsZero() {
			phaseTotal = 0
		}
		cfg.Progress.report(phase, "orders", 0, phaseTotal)
		mu.Unlock()
		var next atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for range cfg.Clients {
			wg.Go(func() {
				for ctx.Err() == nil {
					i := next.Add(1)
					if i > int64(n) || !until.IsZero() && time.Now().After(until) {
						return
					}
					slot <- struct{}{}
					cust := customers[rand.IntN(len(customers))]
					body := map[string]any{"customer_id": cust, "payment_account_id": cust,
						"items":            []any{map[string]any{"product_id": products[rand.IntN(len(products))], "quantity": 1 + rand.IntN(2)}},
						"shipping_address": map[string]any{"street": "1 Bench St", "city": "Loadville", "state": "CA", "zip_code": "90001", "country": "US"}}
					id := uuid.Must(uuid.NewV7()).String()
					body["id"] = id
					ch := make(chan struct{})
					mu.Lock()
					submitted[id], ended[id] = time.Now(), ch
					mu.Unlock()
					if err := c.post(ctx, "/api/v1/orders", body, nil); err != nil {
						failed.Add(1)
						mu.Lock()
						delete(submitted, id)
						delete(ended, id)
						if len(failures) < 3 {
							failures = append(failures, strings.TrimSpace(err.Error()))
						}
						mu.Unlock()
						<-slot
						continue
					}
					go func() {
						select {
						case <-ch:
						case <-time.After(60 * time.Second):
						case <-ctx.Done():
						}
						<-slot
					}()
				}
			})
		}
		wg.Wait()
		// Wait for the stragglers (bounded).
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			n := len(submitted)
			mu.Unlock()
			if n == 0 || ctx.Err() != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		if last.IsZero() {
			return 0, 0, 0
		}
		return res.Confirmed + res.Cancelled - endedBefore, last.Sub(start), p.cpu() - cpu
	}

	var done int
	var took time.Duration
	switch cfg.Tracing {
	case "both":
		// Rounds with tracing on and off in turn (on, off, off, on, …),
		// so that a drift of the machine's speed falls on both alike.
		rounds := max(cfg.Rounds, 2)
		per := max(cfg.Orders/rounds, 1)
		var onN, offN int
		var onT, offT, onCPU, offCPU time.Duration
		// A warm-up round, not counted: the first round would otherwise
		// pay for cold caches.
		logf("warm-up: %d orders", per/2)
		place("warm-up", max(per/2, 1))
		for i := range rounds {
			on := (i+i/2)%2 == 0
			tracing.SetEnabled(on)
			logf("round %d of %d: %d orders (%s, %d clients, at most %d in flight), tracing %s", i+1, rounds, per, cfg.Mode, cfg.Clients, cfg.InFlight, onOff(on))
			n, d, cpu := place(fmt.Sprintf("round %d of %d, tracing %s", i+1, rounds, onOff(on)), per)
			logf("  %.0f orders/s, %.2f ms of CPU an order", rate(n, d), perOrder(cpu, n))
			if on {
				onN, onT, onCPU = onN+n, onT+d, onCPU+cpu
			} else {
				offN, offT, offCPU = offN+n, offT+d, offCPU+cpu
			}
			done, took = done+n, took+d
		}
		tracing.SetEnabled(true)
		res.TracingOnOrdersPerSec, res.TracingOffOrdersPerSec = rate(onN, onT), rate(offN, offT)
		if res.TracingOffOrdersPerSec > 0 {
			res.TracingCostPct = 100 * (1 - res.TracingOnOrdersPerSec/res.TracingOffOrdersPerSec)
		}
		res.TracingOnCPUMsPerOrder, res.TracingOffCPUMsPerOrder = perOrder(onCPU, onN), perOrder(offCPU, offN)
		if res.TracingOffCPUMsPerOrder > 0 {
			res.TracingCPUCostPct = 100 * (res.TracingOnCPUMsPerOrder/res.TracingOffCPUMsPerOrder - 1)
		}
	default:
		on := cfg.Tracing != "off"
		tracing.SetEnabled(on)
		what := fmt.Sprintf("%d orders", cfg.Orders)
		if cfg.Duration > 0 {
			what = "orders for " + cfg.Duration.String()
		}
		logf("placing %s (%s, %d clients, at most %d in flight), tracing %s, by tenths", what, res.Mode, cfg.Clients, cfg.InFlight, onOff(on))
		n, until := cfg.Orders, time.Time{}
		procs, selfCPU := p.processes(), cpuTime()
		machine, machineOK := machineCPU()
		mu.Lock()
		tenthStart, tenthCPU, tenthSize = time.Now(), p.cpu(), max(cfg.Orders/10, 1)
		if cfg.TenthProfiles != "" {
			startTenthProfile(cfg.TenthProfiles, 1)
		}
		mu.Unlock()
		stopTicks := make(chan struct{})
		if cfg.Duration > 0 {
			// Tenths of the time; an order ended after the last tick
			// counts in the last tenth.
			n, until = math.MaxInt, time.Now().Add(cfg.Duration)
			mu.Lock()
			tenthSize = math.MaxInt
			mu.Unlock()
			go func() {
				t := time.NewTicker(cfg.Duration / 10)
				defer t.Stop()
				for range 9 {
					select {
					case now := <-t.C:
						mu.Lock()
						closeTenth(now)
						mu.Unlock()
					case <-stopTicks:
						return
					}
				}
			}()
		}
		done, took, _ = placeUntil("placing "+what, n, until)
		res.Processes, res.Client, res.CPUNote = processesUsed(procs, p.processes(), cpuTime()-selfCPU, done)
		if res.Distributed {
			res.Seconds, res.CPUs = took.Seconds(), numCPU()
			if m, ok := machineCPU(); ok && machineOK {
				res.MachineCPUS = (m - machine).Seconds()
			}
		}
		close(stopTicks)
		mu.Lock()
		closeTenth(cmp.Or(last, time.Now())) // the last, with what ended since, at the last end
		mu.Unlock()
		res.Orders = done
		tracing.SetEnabled(true)
	}
	stopWatch()
	if !res.Distributed {
		logf("memory at the end: %s", memoryBreakdown())
	}
	if cfg.MemProfile != "" {
		if err := writeHeapProfile(cfg.MemProfile); err != nil {
			return res, fmt.Errorf("--memprofile: %w", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	res.Tracing = cmp.Or(cfg.Tracing, "on")
	res.Stuck = len(submitted) + int(failed.Load())
	res.OrdersPerSec = rate(done, took)
	res.P50Ms, res.P99Ms = latencies.quantile(0.50), latencies.quantile(0.99)
	if failed.Load() > 0 {
		logf("%d order submissions failed; the first: %s", failed.Load(), strings.Join(failures, "; "))
	}
	return res, nil
}

// rssMB is the process's resident memory in MB (Linux's /proc), or what
// the Go runtime holds from the system elsewhere.
func rssMB() float64 {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		var size, resident uint64
		if _, err := fmt.Sscan(string(b), &size, &resident); err == nil {
			return float64(resident*uint64(os.Getpagesize())) / (1 << 20)
		}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.Sys) / (1 << 20)
}

// heapMB is the Go heap in use (spans with objects), in MB.
func heapMB() float64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse) / (1 << 20)
}

// goHeldMB is what the Go runtime holds from the system, in MB.
func goHeldMB() float64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return float64(s[0].Value.Uint64()-s[1].Value.Uint64()) / (1 << 20)
}

// memoryBreakdown says where the process's resident memory is: what the
// Go runtime holds from the system (its heap in use, its heap idle and not
// yet returned, stacks, the rest) and what is outside it (SQLite's page
// caches and connections, in modernc's C heap, and mapped files).
func memoryBreakdown() string {
	samples := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	metrics.Read(samples)
	mb := func(i int) float64 { return float64(samples[i].Value.Uint64()) / (1 << 20) }
	held := mb(0) - mb(1)
	rss := rssMB()
	return fmt.Sprintf("RSS %.0f MB; the Go runtime holds %.0f MB (heap objects %.0f, unused in spans %.0f, free and not returned %.0f, stacks %.0f, other %.0f); outside Go %.0f MB",
		rss, held, mb(2), mb(3), mb(4), mb(5), held-mb(2)-mb(3)-mb(4)-mb(5), rss-held)
}

// writeHeapProfile collects the garbage and writes the heap's profile to
// path (`go tool pprof -sample_index=inuse_space`).
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func perOrder(cpu time.Duration, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / 1000 / float64(n)
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// benchAdmin is the admin the benchmark's platform bootstraps.
const benchAdmin = "bench-admin@agora.test:bench-password-1"

// boot opens and runs the platform of cfg in process (on a free loopback
// port, logging nowhere, with benchAdmin bootstrapped) and returns it with
// a client logged in as that admin, keeping up to idle connections, and a
// stop that ends it.
func boot(ctx context.Context, cfg server.Config, idle int) (*server.Server, benchClient, func(), error) {
	cfg.Addr, cfg.BootstrapAdmin = "127.0.0.1:0", benchAdmin
	// Logs are dropped unformatted (the access log is off, as in the nginx
	// target's configuration).
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, stop, err := server.Start(ctx, cfg)
	if err != nil {
		return nil, benchClient{}, nil, err
	}
	c, err := login(ctx, "http://"+srv.Addr(), idle)
	if err != nil {
		stop()
		return nil, benchClient{}, nil, err
	}
	return srv, c, stop, nil
}

// login returns a client of the gateway at base, logged in as benchAdmin
// (and logging in again before each token expires) and keeping up to idle
// connections.
func login(ctx context.Context, base string, idle int) (benchClient, error) {
	email, password, _ := strings.Cut(benchAdmin, ":")
	c := benchClient{base: base, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: idle}},
		auth: &session{email: email, password: password}}
	if _, err := c.bearer(ctx); err != nil {
		return benchClient{}, fmt.Errorf("log in as the bench admin: %w", err)
	}
	return c, nil
}

// relayRate appends n events to a fresh SQLite store and times a relay
// publishing them to an embedded broker.
func relayRate(ctx context.Context, dir string, n int) (float64, error) {
	store, err := sqlite.Open(ctx, dir+"/relay-events.db", sqlite.Options{})
	if err != nil {
		return 0, err
	}
	defer store.Close()
	const batch = 500
	data := json.RawMessage(`{"order_id":"00000000-0000-0000-0000-000000000000","reason":"bench"}`)
	for i := 0; i < n; i += batch {
		evs := make([]eventstore.EventData, min(batch, n-i))
		for j := range evs {
			evs[j] = eventstore.EventData{Type: "bench.Event", Data: data}
		}
		if _, err := store.Append(ctx, fmt.Sprintf("bench-%d", i), eventstore.NoStream, evs...); err != nil {
			return 0, err
		}
	}
	bus, err := natsbus.Open(ctx, natsbus.Options{DataDir: dir + "/relay-nats", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return 0, err
	}
	defer bus.Close()
	if err := bus.EnsureStream(ctx, "BENCH", "bench.>"); err != nil {
		return 0, err
	}
	db, err := sqlOpen(dir + "/relay-cp.db")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	cps, err := messaging.SQLCheckpoints(ctx, db)
	if err != nil {
		return 0, err
	}
	mapper := func(r eventstore.Record) (messaging.Message, bool, error) {
		return messaging.Message{Subject: "bench.event", Type: "bench.Event.v1", Data: r.Data}, true, nil
	}
	relay := messaging.NewRelay(messaging.EventLog(store, mapper), bus, cps, messaging.RelayOptions{Name: "bench", Tail: bus.Tail("BENCH"), BatchSize: 1000})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- relay.Run(rctx) }()
	head, _ := store.Head(ctx)
	if err := relay.WaitFor(ctx, head); err != nil {
		return 0, err
	}
	rate := float64(n) / time.Since(start).Seconds()
	cancel()
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		return 0, err
	}
	return rate, nil
}

func sqlOpen(path string) (*sql.DB, error) { return sql.Open("sqlite", sqlite.DSN(path, false)) }

// setupWorkers is how many requests at once create the benchmark's
// products and accounts.
const setupWorkers = 8

// parallel calls f(0) … f(n-1) from workers goroutines and returns the
// first error (the calls not yet started are then skipped).
func parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	return cmp.Or(first, ctx.Err())
}

// processesUsed is what each process used between before and after (the
// same processes), and this process's self over orders ended orders;
// note says why the processes' CPU is missing, if it is.
func processesUsed(before, after []processCPU, self time.Duration, orders int) (procs []ProcessCPU, client *ProcessCPU, note string) {
	if len(after) == 0 {
		return nil, nil, ""
	}
	for i, a := range after {
		cpu := a.cpu - before[i].cpu
		if !a.ok || !before[i].ok {
			cpu, note = 0, "unavailable: a process's CPU is read from Linux's /proc"
		}
		procs = append(procs, ProcessCPU{Name: a.name, PID: a.pid, CPUS: cpu.Seconds(), CPUMsPerOrder: perOrder(cpu, orders)})
	}
	return procs, &ProcessCPU{Name: "bench (clients)", PID: os.Getpid(), CPUS: self.Seconds(), CPUMsPerOrder: perOrder(self, orders)}, note
}

// tenthProfile is the file of the tenth's CPU profile being written.
var tenthProfile *os.File

// startTenthProfile starts the CPU profile of tenth n into
// prefix.tenth-NN.pprof; a file that cannot be made is said and skipped.
func startTenthProfile(prefix string, n int) {
	f, err := os.Create(fmt.Sprintf("%s.tenth-%02d.pprof", prefix, n))
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			f.Close()
		} else {
			tenthProfile = f
		}
	}
	if err != nil {
		slog.Warn("bench: tenth's CPU profile", "tenth", n, "err", err)
	}
}

// stopTenthProfile ends the tenth's CPU profile and closes its file.
func stopTenthProfile() {
	pprof.StopCPUProfile()
	if tenthProfile != nil {
		tenthProfile.Close()
		tenthProfile = nil
	}
}
