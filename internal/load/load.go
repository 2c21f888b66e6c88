// Package load drives an Agora platform through its public HTTP API the
// way a shop's customers would, and measures what they get: `agora load`.
//
// Run registers its own customers (POST /api/v1/customers), logs them in,
// funds each one's account with a deposit of its own, and, as an admin or
// merchant of the tenant, opens each a second account (transfers go
// between the two) and restocks the catalog so that it does not sell out.
// Then Config.Users virtual users each pick scenarios in a loop with the
// odds of Config.Mix — browse, view a product, place an order and follow
// it to its end, check their orders and balance, transfer money — until
// Config.Duration has passed or Config.Requests requests were sent.
//
// Every HTTP request is counted in its scenario's row: answered as the
// scenario wanted (ok), refused as it asked for (a fraction
// Config.Refusals of orders and transfers is made larger than the paying
// account's balance: their refusal is expected, not an error), throttled
// (a 429: the user waits for its Retry-After and sends the request
// again), or an error. Latencies are kept per scenario in vegeta's
// Metrics. The virtual users are a closed model (each waits for its
// answer before its next request), which is why vegeta's attacker — an
// open model sending a fixed rate of independent requests — does not
// drive them: a scenario's requests depend on the answers before them.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures Run. URL is required, and one of Duration and
// Requests.
type Config struct {
	// URL is the platform's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// Users is the number of virtual users, each a customer of its own
	// (default 8).
	Users int
	// Duration is how long the users start scenarios (when Requests is 0).
	Duration time.Duration
	// Requests, if positive, ends the run once that many requests were
	// sent (the scenarios under way finish, so a few more are).
	Requests int
	// Mix weighs the scenarios (zero value: DefaultMix).
	Mix Mix
	// Seed seeds each user's picks (user i draws from PCG(Seed, i)).
	Seed uint64
	// Tenant is the tenant the customers register in (default "demo").
	Tenant string
	// AdminEmail and AdminPassword log in an admin or merchant of the
	// tenant, who opens the second accounts and restocks. Needed when
	// the transfer scenario has a weight.
	AdminEmail, AdminPassword string
	// Restock tops each product's stock up to RestockTo before the run
	// (with the admin's token), so that orders do not all sell out.
	Restock bool
	// MaxErrors: Run returns ErrTooManyErrors (with its report) when
	// the run had more errors; negative: no limit.
	MaxErrors int
	// Refusals is the fraction (0..1) of orders and transfers made over
	// the paying account's balance, whose refusal is expected.
	Refusals float64
	// Grace is how long, after the end, the scenarios under way may take
	// to finish (following their orders to the end); default 30 s.
	Grace time.Duration
	// Progress receives the live progress (nil: none).
	Progress io.Writer
	// Terminal: Progress is a terminal, so a live progress bar; otherwise
	// a plain line every Interval.
	Terminal bool
	// Interval is how often a plain progress line is written (default 5 s).
	Interval time.Duration
	// Log receives setup's messages (nil: none).
	Log func(format string, args ...any)
	// Client sends the requests (default: one with keep-alive
	// connections for every user).
	Client *http.Client
}

// Funds is what each customer deposits into its account before the run:
// $10,000,000.00 in minor units, enough for every order of a long run.
const Funds int64 = 1_000_000_000

// RestockTo is the available stock Config.Restock tops each product up to.
const RestockTo = 100_000

// ErrTooManyErrors is returned by Run, with the run's report, when the
// run had more errors than Config.MaxErrors.
var ErrTooManyErrors = errors.New("too many errors")

// Run sets the platform up and drives it until the end of cfg's run or
// ctx's (Ctrl-C: the report says Interrupted). It returns the report
// whenever the load phase ran; an error before it (the platform
// unreachable, a registration or the funding refused) comes with an
// empty report.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.defaults(); err != nil {
		return Report{}, err
	}
	st := newStats()
	c := &client{base: strings.TrimRight(cfg.URL, "/"), http: cfg.Client, st: st}
	setupStart := time.Now()
	users, cat, err := setup(ctx, cfg, c)
	if err != nil {
		return Report{}, err
	}
	setupTook := time.Since(setupStart)
	if ctx.Err() != nil {
		return Report{}, ctx.Err()
	}

	// stopping: no scenario starts any more. hard: the requests under
	// way end (Grace after stopping, or at once on ctx's end).
	hard, cancelHard := context.WithCancel(ctx)
	defer cancelHard()
	var stopping atomic.Bool
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			stopping.Store(true)
			time.AfterFunc(cfg.Grace, cancelHard)
		})
	}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				stop()
				return
			case <-t.C:
				if (cfg.Requests > 0 && st.requests() >= uint64(cfg.Requests)) ||
					(cfg.Requests == 0 && time.Since(start) >= cfg.Duration) {
					stop()
				}
			}
		}
	}()
	stopProgress := showProgress(cfg, st, start)
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Go(func() {
			for !stopping.Load() && hard.Err() == nil {
				if cfg.Requests > 0 && st.requests() >= uint64(cfg.Requests) {
					stop()
					return
				}
				u.run(hard, cfg, c, cat, cfg.Mix.Pick(u.rng))
			}
		})
	}
	wg.Wait()
	close(done)
	elapsed := time.Since(start)
	stopProgress()

	rep := st.report(elapsed)
	rep.URL, rep.Users, rep.Seed, rep.MaxErrors = cfg.URL, len(users), cfg.Seed, cfg.MaxErrors
	rep.Mix = map[string]int{}
	for i, name := range Scenarios {
		rep.Mix[name] = cfg.Mix[i]
	}
	rep.SetupSec, rep.DurationSec = round1(setupTook.Seconds()), round1(elapsed.Seconds())
	rep.Interrupted = ctx.Err() != nil
	if cfg.MaxErrors >= 0 && rep.Total.Errors > uint64(cfg.MaxErrors) {
		return rep, fmt.Errorf("%w: %d, more than --max-errors %d", ErrTooManyErrors, rep.Total.Errors, cfg.MaxErrors)
	}
	return rep, nil
}

func (cfg *Config) defaults() error {
	if cfg.URL == "" {
		return errors.New("load: no URL")
	}
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		return fmt.Errorf("load: %q: the URL must start with http:// or https://", cfg.URL)
	}
	if cfg.Users == 0 {
		cfg.Users = 8
	}
	if cfg.Users < 0 {
		return fmt.Errorf("load: --users %d: want at least 1", cfg.Users)
	}
	if cfg.Requests < 0 {
		return fmt.Errorf("load: --requests %d: want at least 1", cfg.Requests)
	}
	if cfg.Requests == 0 && cfg.Duration <= 0 {
		return errors.New("load: give --duration or --requests")
	}
	if cfg.Mix.total() == 0 {
		cfg.Mix, _ = ParseMix(DefaultMix)
	}
	if cfg.Refusals < 0 || cfg.Refusals > 1 {
		return fmt.Errorf("load: --refusals %v: want a fraction from 0 to 1", cfg.Refusals)
	}
	if cfg.Tenant == "" {
		cfg.Tenant = "demo"
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 30 * time.Second
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConns:        4 * cfg.Users,
			MaxIdleConnsPerHost: 4 * cfg.Users,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		}}
	}
	return nil
}

// newRand is user i's source of picks.
func newRand(seed uint64, i int) *rand.Rand { return rand.New(rand.NewPCG(seed, uint64(i))) }
