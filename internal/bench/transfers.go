package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/audit"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/server"
)

// TransfersConfig configures RunTransfers.
type TransfersConfig struct {
	// Partitions are the partition counts measured, each in its own
	// platform, interleaved round by round (default 1, 2, 4).
	Partitions []int
	// Transfers is how many transfers each run submits (default 3000).
	Transfers int
	// Accounts is how many accounts they move money between (default 400).
	Accounts int
	// InFlight caps the transfers submitted and not yet ended (default 128).
	InFlight int
	// Rounds of every partition count (default 3; the median is reported).
	Rounds int
	// Dir is where the platforms' data go (default a temporary directory).
	Dir string
	// Log receives progress lines (nil: none).
	Log func(format string, args ...any)
	// Progress, if set, is told how many of the runs' transfers ended.
	Progress Progress
}

// TransfersRun is one run of one partition count.
type TransfersRun struct {
	Partitions     int     `json:"partitions"`
	Round          int     `json:"round"`
	Transfers      int     `json:"transfers"`
	Completed      int     `json:"completed"`
	Failed         int     `json:"failed"`
	Stuck          int     `json:"stuck"`
	TransfersPerS  float64 `json:"transfers_per_sec"`
	P50Ms          float64 `json:"p50_ms"`
	P99Ms          float64 `json:"p99_ms"`
	CPUMsTransfer  float64 `json:"cpu_ms_per_transfer"`
	AuditOK        bool    `json:"audit_ok"`
	PartitionShare []int   `json:"events_per_partition"`
}

// TransfersResult is what RunTransfers measured: every run, and each
// partition count's median run (by transfers/s).
type TransfersResult struct {
	Runs    []TransfersRun `json:"runs"`
	Medians []TransfersRun `json:"medians"`
}

// WriteJSON writes r as one JSON object.
func (r TransfersResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r's medians as a table, with the speed-up over one
// partition.
func (r TransfersResult) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "partitions\ttransfers/s\tvs 1\tp50 ms\tp99 ms\tCPU ms/transfer\tstuck\taudit\t")
	var base float64
	for _, m := range r.Medians {
		if m.Partitions == 1 {
			base = m.TransfersPerS
		}
	}
	for _, m := range r.Medians {
		vs := "—"
		if base > 0 {
			vs = fmt.Sprintf("%.2f×", m.TransfersPerS/base)
		}
		audited := "clean"
		if !m.AuditOK {
			audited = "VIOLATED"
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%s\t%.0f\t%.0f\t%.2f\t%d\t%s\t\n", m.Partitions, m.TransfersPerS, vs, m.P50Ms, m.P99Ms, m.CPUMsTransfer, m.Stuck, audited)
	}
	return tw.Flush()
}

// RunTransfers measures transfers between accounts through the HTTP API
// (the gateway, as an admin) with payments spread over each partition
// count in turn: embedded, each partition its own SQLite writer. A
// transfer's latency is from its POST to its saga's end (Completed, or
// Compensated when declined), seen in the partitions' logs. Each run ends
// with the platform's audit (money adds up).
func RunTransfers(ctx context.Context, cfg TransfersConfig) (TransfersResult, error) {
	if len(cfg.Partitions) == 0 {
		cfg.Partitions = []int{1, 2, 4}
	}
	cfg.Transfers = cmpOr(cfg.Transfers, 3000)
	cfg.Accounts = cmpOr(cfg.Accounts, 400)
	cfg.InFlight = cmpOr(cfg.InFlight, 128)
	cfg.Rounds = cmpOr(cfg.Rounds, 3)
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "agora-bench-transfers-")
		if err != nil {
			return TransfersResult{}, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	var res TransfersResult
	total := cfg.Rounds * len(cfg.Partitions) * cfg.Transfers
	for round := 1; round <= cfg.Rounds; round++ {
		for _, n := range cfg.Partitions {
			before, what := len(res.Runs)*cfg.Transfers, fmt.Sprintf("round %d, %d partitions", round, n)
			cfg.Progress.report(what+": booting", "transfers", before, total)
			run, err := transfersRun(ctx, cfg, fmt.Sprintf("%s/r%d-p%d", dir, round, n), n, func(ended int) {
				cfg.Progress.report(what, "transfers", before+ended, total)
			})
			if err != nil {
				return res, fmt.Errorf("%d partitions, round %d: %w", n, round, err)
			}
			run.Round = round
			logf("round %d, %d partitions: %.0f transfers/s, p50 %.0f ms, p99 %.0f ms, %d stuck, events per partition %v",
				round, n, run.TransfersPerS, run.P50Ms, run.P99Ms, run.Stuck, run.PartitionShare)
			res.Runs = append(res.Runs, run)
		}
	}
	for _, n := range cfg.Partitions {
		var runs []TransfersRun
		for _, r := range res.Runs {
			if r.Partitions == n {
				runs = append(runs, r)
			}
		}
		slices.SortFunc(runs, func(a, b TransfersRun) int { return cmp.Compare(a.TransfersPerS, b.TransfersPerS) })
		res.Medians = append(res.Medians, runs[len(runs)/2])
	}
	return res, nil
}

func cmpOr(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// transfersRun boots a platform with n partitions in dir and measures
// cfg.Transfers transfers on it, telling progress how many ended.
func transfersRun(ctx context.Context, cfg TransfersConfig, dir string, n int, progress func(ended int)) (TransfersRun, error) {
	run := TransfersRun{Partitions: n, Transfers: cfg.Transfers}
	srv, c, stop, err := boot(ctx, server.Config{DataDir: dir, PaymentsPartitions: n}, cfg.InFlight)
	if err != nil {
		return run, err
	}
	defer stop()
	accounts := make([]string, cfg.Accounts)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("bench-acct-%d", i)
		if err := c.post(ctx, "/api/v1/accounts", map[string]any{"id": accounts[i], "owner_id": accounts[i], "currency": "USD",
			"initial_balance": map[string]any{"amount": 1_000_000, "currency": "USD"}}, nil); err != nil {
			return run, err
		}
	}
	var (
		mu        sync.Mutex
		submitted = map[string]time.Time{}
		latencies []time.Duration
		last      time.Time
		allEnded  = make(chan struct{})
		ended     int
	)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	for k := range n {
		log := srv.StoreOf(partition.Log(k))
		head, err := log.Head(ctx)
		if err != nil {
			return run, err
		}
		go eventstore.Subscribe(watchCtx, log, head, 1000, func(_ context.Context, batch []eventstore.Record) error {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			for _, r := range batch {
				id, ok := strings.CutPrefix(r.StreamID, "saga-transfer-")
				if !ok {
					continue
				}
				switch r.Type {
				case "saga.Completed":
					run.Completed++
				case "saga.Compensated", "saga.Failed":
					run.Failed++
				default:
					continue
				}
				if t, ok := submitted[id]; ok {
					latencies = append(latencies, now.Sub(t))
					delete(submitted, id)
				}
				last = now
				if ended++; ended == cfg.Transfers {
					close(allEnded)
				}
			}
			progress(ended)
			return nil
		})
	}
	cpu := cpuTime()
	start := time.Now()
	// 32 clients post (the gateway's bulkhead keeps a cluster's requests
	// in flight bounded); InFlight bounds the transfers not yet ended.
	slot := make(chan struct{}, min(cfg.InFlight, 32))
	var wg sync.WaitGroup
	var postErr error
	var errOnce sync.Once
	for i := range cfg.Transfers {
		slot <- struct{}{}
		from := rand.IntN(len(accounts))
		to := (from + 1 + rand.IntN(len(accounts)-1)) % len(accounts)
		id := fmt.Sprintf("%08x-0000-4000-8000-%012d", rand.Uint32(), i)
		mu.Lock()
		submitted[id] = time.Now()
		mu.Unlock()
		wg.Go(func() {
			defer func() { <-slot }()
			err := c.post(ctx, "/api/v1/transfers", map[string]any{"id": id, "from_account_id": accounts[from], "to_account_id": accounts[to],
				"amount": map[string]any{"amount": 1 + rand.IntN(100), "currency": "USD"}}, nil)
			if err != nil {
				errOnce.Do(func() { postErr = err })
			}
		})
		// Keep in flight at most InFlight transfers not yet ended.
		for {
			mu.Lock()
			waiting := len(submitted)
			mu.Unlock()
			if waiting < cfg.InFlight || ctx.Err() != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	wg.Wait()
	if postErr != nil {
		return run, postErr
	}
	select {
	case <-allEnded:
	case <-time.After(60 * time.Second):
	case <-ctx.Done():
		return run, ctx.Err()
	}
	cpuUsed := cpuTime() - cpu
	mu.Lock()
	run.Stuck = len(submitted)
	lat := slices.Clone(latencies)
	end := last
	mu.Unlock()
	slices.Sort(lat)
	run.TransfersPerS = rate(len(lat), end.Sub(start))
	run.P50Ms, run.P99Ms = pct(lat, 0.50), pct(lat, 0.99)
	run.CPUMsTransfer = perOrder(cpuUsed, len(lat))
	for k := range n {
		h, err := srv.StoreOf(partition.Log(k)).Head(ctx)
		if err != nil {
			return run, err
		}
		run.PartitionShare = append(run.PartitionShare, int(h))
	}
	rep, err := srv.Audit(ctx, audit.Options{})
	if err != nil {
		return run, err
	}
	run.AuditOK = rep.OK
	return run, nil
}

// ParsePartitions reads a list of partition counts ("1,2,4").
func ParsePartitions(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || partition.Check(n) != nil {
			return nil, fmt.Errorf("%q is not a partition count from 1 to %d", f, partition.Max)
		}
		out = append(out, n)
	}
	return out, nil
}
