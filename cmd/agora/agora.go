package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/agora-commerce/agora/internal/audit"
	"github.com/agora-commerce/agora/internal/bench"
	"github.com/agora-commerce/agora/internal/load"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/platform/tracing"
	"github.com/agora-commerce/agora/internal/server"
)

const usage = `usage: agora <command> [flags]

commands:
  serve        run the whole platform in one process (embedded storage)
  audit        check the stores' invariants (money, stock, checkouts, sagas, relays); exit 1 on a violation
  bench store     measure the event stores (add --json for machine output)
  bench checkout  place orders through the HTTP API as fast as they are taken;
                  --distributed: a process per context on PostgreSQL + NATS (+ Redis)
  bench transfers transfers between accounts with payments over 1, 2 and 4 partitions
  bench gateway   the gateway against a plain reverse proxy (and nginx, Caddy) and the upstream direct
  load URL     drive a running platform with virtual customers (browse, order, transfer…) and report
  projections URL  list the projections and their lag; projections rebuild URL NAME: rebuild one, with progress
  migrate split   upgrade a data directory of one shared store to a store per context (once)
  payments reshard  change how many partitions payments spreads accounts over (offline)

Run 'agora <command> -h' for a command's flags.`

// errUsage asks main to print the usage.
var errUsage = errors.New("usage: agora <command> [flags]")

// Main is the program: ParseFlags reads the command line, Run runs the
// command until ctx ends, Close releases what Run opened. Tests boot it on
// port 0 with a temporary data directory.
type Main struct {
	// Stdout receives command output (tables, JSON).
	Stdout io.Writer
	// Stderr receives logs.
	Stderr io.Writer

	command string
	serve   server.Config
	// splitFrom is the schema `agora migrate split --postgres` splits.
	splitFrom string
	// reshardTo is the partition count `agora payments reshard` (and
	// migrate split) spreads payments over.
	reshardTo int
	level     slog.Level
	bench     bench.Config
	// checkout configures `agora bench checkout`.
	checkout bench.CheckoutConfig
	// transfers configures `agora bench transfers`.
	transfers bench.TransfersConfig
	// gateway configures `agora bench gateway`.
	gateway bench.GatewayConfig
	// audit configures `agora audit`: the stores to read (as serve's)
	// and the audit's options.
	audit     server.Config
	auditOpts audit.Options
	// load configures `agora load`.
	load load.Config
	// projections configures `agora projections [rebuild]`.
	projections projectionsConfig
	// cpuProfile names a CPU profile to write during a benchmark.
	cpuProfile string
	asJSON     bool

	srv *server.Server
	// Ready, if set, is called with the server once it accepts requests.
	Ready func(*server.Server)
}

// NewMain returns a Main writing to the process's stdout and stderr.
func NewMain() *Main { return &Main{Stdout: os.Stdout, Stderr: os.Stderr} }

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// ParseFlags parses the command line (without the program name). Flags
// default to AGORA_* environment variables.
func (m *Main) ParseFlags(args []string) error {
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "serve":
		m.command = "serve"
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(m.Stderr)
		fs.StringVar(&m.serve.Addr, "addr", env("AGORA_ADDR", "127.0.0.1:8080"), "listen address (AGORA_ADDR)")
		fs.StringVar(&m.serve.DataDir, "data", env("AGORA_DATA_DIR", "data"), "data directory (AGORA_DATA_DIR)")
		level := fs.String("log-level", env("AGORA_LOG_LEVEL", "info"), "debug, info, warn or error (AGORA_LOG_LEVEL)")
		fs.StringVar(&m.serve.PostgresURL, "postgres", os.Getenv("AGORA_POSTGRES_URL"), "PostgreSQL URL; empty keeps everything in SQLite files under the data dir (AGORA_POSTGRES_URL)")
		fs.StringVar(&m.serve.PostgresSchema, "postgres-schema", env("AGORA_POSTGRES_SCHEMA", server.DefaultPostgresPrefix), "PostgreSQL schema prefix: each context keeps its data in schema <prefix>_<context>, owned by role agora_<context> (AGORA_POSTGRES_SCHEMA)")
		fs.StringVar(&m.serve.NATSURL, "nats", os.Getenv("AGORA_NATS_URL"), "NATS URL; empty starts an embedded NATS JetStream server (AGORA_NATS_URL)")
		fs.StringVar(&m.serve.NATSNamespace, "nats-namespace", env("AGORA_NATS_NAMESPACE", "agora"), "prefix of every NATS subject and stream (AGORA_NATS_NAMESPACE)")
		fs.StringVar(&m.serve.BootstrapAdmin, "bootstrap-admin", os.Getenv("AGORA_BOOTSTRAP_ADMIN"), "email:password of an admin to create on start if missing (AGORA_BOOTSTRAP_ADMIN)")
		fs.StringVar(&m.serve.Only, "only", os.Getenv("AGORA_ONLY"), "run one context ("+strings.Join(server.Contexts, ", ")+") in this process: distributed mode, with --postgres and --nats (AGORA_ONLY)")
		fs.StringVar(&m.serve.JWKSURL, "jwks-url", os.Getenv("AGORA_JWKS_URL"), "in distributed mode, where processes other than identity fetch the token-checking keys, e.g. http://gateway:8080/.well-known/jwks.json (default: read the key from the shared data dir) (AGORA_JWKS_URL)")
		fs.StringVar(&m.serve.AdvertiseURL, "advertise-url", os.Getenv("AGORA_ADVERTISE_URL"), "the URL other processes reach this one at, in distributed mode (default http://<bound address>) (AGORA_ADVERTISE_URL)")
		fs.BoolVar(&m.serve.RateLimits, "rate-limits", env("AGORA_RATE_LIMITS", "true") == "true", "enforce the gateway's rate limits (AGORA_RATE_LIMITS)")
		fs.StringVar(&m.serve.Routes, "routes", os.Getenv("AGORA_ROUTES"), "a YAML route table replacing the embedded one (AGORA_ROUTES)")
		fs.BoolVar(&m.serve.SeedDemo, "seed-demo", env("AGORA_SEED_DEMO", "true") == "true", "create the demo tenant, users and catalog if missing (AGORA_SEED_DEMO)")
		fs.StringVar(&m.serve.RedisURL, "redis", os.Getenv("AGORA_REDIS_URL"), "Redis URL of the shared cache tier, e.g. redis://127.0.0.1:6379/0 (AGORA_REDIS_URL)")
		fs.StringVar(&m.cpuProfile, "cpuprofile", os.Getenv("AGORA_CPUPROFILE"), "write a CPU profile of the process's run, from start to stop, to this file (AGORA_CPUPROFILE)")
		fs.StringVar(&m.serve.CheckoutMode, "checkout-mode", env("AGORA_CHECKOUT_MODE", "orchestration"), "orchestration or choreography (AGORA_CHECKOUT_MODE)")
		idemTTL := fs.String("idempotency-ttl", env("AGORA_IDEMPOTENCY_TTL", "24h"), "how long an Idempotency-Key's answer is kept (AGORA_IDEMPOTENCY_TTL)")
		timeout := fs.String("checkout-timeout", env("AGORA_CHECKOUT_TIMEOUT", "30s"), "deadline of each checkout step; of the whole checkout in choreography (AGORA_CHECKOUT_TIMEOUT)")
		rate := fs.String("carrier-failure-rate", env("AGORA_CARRIER_FAILURE_RATE", "0"), "fraction 0..1 of shipments the simulated carrier refuses (AGORA_CARRIER_FAILURE_RATE)")
		fs.StringVar(&m.serve.TLSCert, "tls-cert", os.Getenv("AGORA_TLS_CERT"), "PEM certificate (chain) to serve --addr with: HTTPS and HTTP/2, TLS 1.2 at least; with --tls-key (AGORA_TLS_CERT)")
		fs.StringVar(&m.serve.TLSKey, "tls-key", os.Getenv("AGORA_TLS_KEY"), "PEM private key of --tls-cert (AGORA_TLS_KEY)")
		fs.BoolVar(&m.serve.TLSSelfSigned, "tls-self-signed", env("AGORA_TLS_SELF_SIGNED", "false") == "true", "serve HTTPS with a self-signed development certificate, made on first start in <data>/tls and reused (AGORA_TLS_SELF_SIGNED)")
		fs.StringVar(&m.serve.TLSPlain, "tls-plain", env("AGORA_TLS_PLAIN", server.PlainRedirect), "what plain HTTP sent to the TLS port gets: redirect (308 to https) or refuse (400 problem) (AGORA_TLS_PLAIN)")
		fs.StringVar(&m.serve.TLSCA, "tls-ca", os.Getenv("AGORA_TLS_CA"), "PEM bundle of CAs trusted, besides the system's, by calls to other processes in distributed mode (AGORA_TLS_CA)")
		parts := fs.String("payments-partitions", env("AGORA_PAYMENTS_PARTITIONS", strconv.Itoa(partition.Default)),
			"how many partitions payments spreads accounts over, each its own event store; recorded on first start, changed only by `agora payments reshard` (AGORA_PAYMENTS_PARTITIONS)")
		latency := fs.String("carrier-latency", env("AGORA_CARRIER_LATENCY", "0s"), "latency of each simulated carrier call (AGORA_CARRIER_LATENCY)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		var err error
		if m.serve.CheckoutTimeout, err = time.ParseDuration(*timeout); err != nil || m.serve.CheckoutTimeout <= 0 {
			return fmt.Errorf("--checkout-timeout: %q is not a positive duration", *timeout)
		}
		if m.serve.IdempotencyTTL, err = time.ParseDuration(*idemTTL); err != nil || m.serve.IdempotencyTTL <= 0 {
			return fmt.Errorf("--idempotency-ttl: %q is not a positive duration", *idemTTL)
		}
		if m.serve.CarrierLatency, err = time.ParseDuration(*latency); err != nil || m.serve.CarrierLatency < 0 {
			return fmt.Errorf("--carrier-latency: %q is not a duration", *latency)
		}
		if m.serve.CarrierFailureRate, err = strconv.ParseFloat(*rate, 64); err != nil || m.serve.CarrierFailureRate < 0 || m.serve.CarrierFailureRate > 1 {
			return fmt.Errorf("--carrier-failure-rate: %q is not a number from 0 to 1", *rate)
		}
		if m.serve.PaymentsPartitions, err = strconv.Atoi(*parts); err != nil || partition.Check(m.serve.PaymentsPartitions) != nil {
			return fmt.Errorf("--payments-partitions: %q is not a whole number from 1 to %d", *parts, partition.Max)
		}
		if err := m.level.UnmarshalText([]byte(*level)); err != nil {
			return fmt.Errorf("--log-level: %w", err)
		}
		m.serve.PostgresURLs = contextURLs()
		if m.serve.PostgresURL == "" && m.serve.PostgresURLs[m.serve.Only] != "" {
			m.serve.PostgresURL = m.serve.PostgresURLs[m.serve.Only] // the platform's schema beside the context's
		}
		return server.CheckTLS(m.serve)
	case "audit":
		m.command = "audit"
		fs := flag.NewFlagSet("audit", flag.ContinueOnError)
		fs.SetOutput(m.Stderr)
		fs.StringVar(&m.audit.DataDir, "data", env("AGORA_DATA_DIR", "data"), "data directory (AGORA_DATA_DIR)")
		fs.StringVar(&m.audit.PostgresURL, "postgres", os.Getenv("AGORA_POSTGRES_URL"), "PostgreSQL URL; empty reads the SQLite files under the data dir (AGORA_POSTGRES_URL)")
		fs.StringVar(&m.audit.PostgresSchema, "postgres-schema", env("AGORA_POSTGRES_SCHEMA", server.DefaultPostgresPrefix), "PostgreSQL schema prefix: each context keeps its data in schema <prefix>_<context>, owned by role agora_<context> (AGORA_POSTGRES_SCHEMA)")
		fs.StringVar(&m.audit.NATSURL, "nats", os.Getenv("AGORA_NATS_URL"), "NATS URL, to check the consumers; empty skips them (the embedded server is the serving process's) (AGORA_NATS_URL)")
		fs.StringVar(&m.audit.NATSNamespace, "nats-namespace", env("AGORA_NATS_NAMESPACE", "agora"), "prefix of every NATS subject and stream (AGORA_NATS_NAMESPACE)")
		timeout := fs.String("checkout-timeout", env("AGORA_CHECKOUT_TIMEOUT", "30s"), "the serving platform's checkout step deadline, which the checkout saga's deadline is made of (AGORA_CHECKOUT_TIMEOUT)")
		fs.DurationVar(&m.auditOpts.Grace, "grace", audit.DefaultGrace, "how recent a change keeps an order, account or transfer in flight rather than in violation")
		fs.DurationVar(&m.auditOpts.Settle, "settle", audit.DefaultSettle, "how long relays and consumers behind are given to catch up")
		fs.BoolVar(&m.asJSON, "json", false, "print the report as JSON instead of a table")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		m.audit.PostgresURLs = contextURLs()
		if fs.NArg() > 0 {
			return fmt.Errorf("audit: unexpected arguments %q", fs.Args())
		}
		var err error
		if m.audit.CheckoutTimeout, err = time.ParseDuration(*timeout); err != nil || m.audit.CheckoutTimeout <= 0 {
			return fmt.Errorf("--checkout-timeout: %q is not a positive duration", *timeout)
		}
		if m.auditOpts.Grace <= 0 {
			m.auditOpts.Grace = -1 // none
		}
		if m.auditOpts.Settle <= 0 {
			m.auditOpts.Settle = -1
		}
		return nil
	case "bench":
		if len(args) >= 2 && args[1] == "gateway" {
			m.command = "bench gateway"
			fs := flag.NewFlagSet("bench gateway", flag.ContinueOnError)
			fs.SetOutput(m.Stderr)
			fs.BoolVar(&m.asJSON, "json", false, "print one JSON object instead of a table")
			fs.IntVar(&m.gateway.Clients, "clients", 32, "concurrent clients")
			fs.DurationVar(&m.gateway.Duration, "duration", time.Second, "how long each target is driven per round")
			fs.IntVar(&m.gateway.Rounds, "rounds", 10, "rounds of the targets in turn")
			fs.StringVar(&m.gateway.Dir, "dir", "", "data directory (default: a temporary one)")
			fs.StringVar(&m.gateway.Nginx, "nginx", "", "an nginx binary to measure as a plain proxy too (e.g. /usr/sbin/nginx)")
			fs.StringVar(&m.gateway.Caddy, "caddy", "", "a caddy binary to measure as a plain reverse_proxy too (e.g. /usr/bin/caddy)")
			fs.StringVar(&m.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
			return fs.Parse(args[2:])
		}
		if len(args) >= 2 && args[1] == "transfers" {
			m.command = "bench transfers"
			fs := flag.NewFlagSet("bench transfers", flag.ContinueOnError)
			fs.SetOutput(m.Stderr)
			fs.BoolVar(&m.asJSON, "json", false, "print one JSON object instead of a table")
			parts := fs.String("partitions", "1,2,4", "payments partition counts to measure, each in its own platform, interleaved")
			fs.IntVar(&m.transfers.Transfers, "transfers", 3000, "transfers per run")
			fs.IntVar(&m.transfers.Accounts, "accounts", 400, "accounts the transfers move money between")
			fs.IntVar(&m.transfers.InFlight, "in-flight", 128, "most transfers submitted and not yet ended")
			fs.IntVar(&m.transfers.Rounds, "rounds", 3, "rounds of every partition count (the median is reported)")
			fs.StringVar(&m.transfers.Dir, "dir", "", "data directory (default: a temporary one)")
			fs.StringVar(&m.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
			if err := fs.Parse(args[2:]); err != nil {
				return err
			}
			var err error
			if m.transfers.Partitions, err = bench.ParsePartitions(*parts); err != nil {
				return fmt.Errorf("--partitions: %w", err)
			}
			return nil
		}
		if len(args) >= 2 && args[1] == "checkout" {
			m.command = "bench checkout"
			fs := flag.NewFlagSet("bench checkout", flag.ContinueOnError)
			fs.SetOutput(m.Stderr)
			fs.BoolVar(&m.asJSON, "json", false, "print one JSON object instead of a table")
			fs.IntVar(&m.checkout.Orders, "orders", 5000, "orders to place")
			fs.DurationVar(&m.checkout.Duration, "duration", 0, "place orders for this long (a soak, e.g. 30m) instead of --orders; reported by tenths either way")
			fs.IntVar(&m.checkout.InFlight, "in-flight", 128, "most orders submitted and not yet ended")
			fs.IntVar(&m.checkout.Clients, "clients", 32, "concurrent HTTP clients")
			fs.IntVar(&m.checkout.RelayEvents, "relay-events", 100_000, "events for the relay measurement (0 skips it; not with --distributed)")
			fs.StringVar(&m.checkout.Mode, "mode", env("AGORA_CHECKOUT_MODE", "orchestration"), "orchestration or choreography")
			fs.StringVar(&m.checkout.Dir, "dir", "", "data directory (default: a temporary one)")
			fs.StringVar(&m.checkout.Tracing, "tracing", "on", "on, off, or both: rounds with tracing on and off in turn, reporting each one's orders/s and what tracing costs (both: not with --distributed)")
			fs.IntVar(&m.checkout.Rounds, "rounds", 4, "rounds of --tracing both (the orders split among them)")
			fs.StringVar(&m.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (this process: with --distributed, the clients; see --profile-dir)")
			fs.StringVar(&m.checkout.TenthProfiles, "cpuprofile-tenths", "", "write each tenth's CPU profile of this process to PREFIX.tenth-NN.pprof (not with --cpuprofile)")
			fs.StringVar(&m.checkout.MemProfile, "memprofile", "", "write a heap profile to this file at the end of the run, while the platform still runs (not with --distributed)")
			distributed := fs.Bool("distributed", false, "run the platform as processes of this binary — identity, catalog, inventory, shipping, payments ×2, ordering ×2, bff, gateway — on PostgreSQL and NATS (+ Redis), in a fresh schema prefix and NATS namespace removed at the end, and report each process's CPU")
			var d bench.Distributed
			fs.StringVar(&d.PostgresURL, "postgres", os.Getenv("AGORA_POSTGRES_URL"), "with --distributed: PostgreSQL URL (AGORA_POSTGRES_URL)")
			fs.StringVar(&d.NATSURL, "nats", os.Getenv("AGORA_NATS_URL"), "with --distributed: NATS URL (AGORA_NATS_URL)")
			fs.StringVar(&d.RedisURL, "redis", os.Getenv("AGORA_REDIS_URL"), "with --distributed: Redis URL of the shared cache tier; empty runs without (AGORA_REDIS_URL)")
			fs.StringVar(&d.ProfileDir, "profile-dir", "", "with --distributed: each process writes a CPU profile of its run (setup included) to <dir>/<process>.pprof")
			if err := fs.Parse(args[2:]); err != nil {
				return err
			}
			if t := m.checkout.Tracing; t != "on" && t != "off" && t != "both" {
				return fmt.Errorf("--tracing: %q: want on, off or both", t)
			}
			set := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
			if set["cpuprofile"] && set["cpuprofile-tenths"] {
				return errors.New("--cpuprofile-tenths: not with --cpuprofile (one CPU profile at a time)")
			}
			if !*distributed {
				for _, name := range []string{"postgres", "nats", "redis", "profile-dir"} {
					if set[name] {
						return fmt.Errorf("--%s: only with --distributed", name)
					}
				}
				return nil
			}
			for _, name := range []string{"relay-events", "memprofile"} {
				if set[name] {
					return fmt.Errorf("--%s measures this process's platform: not with --distributed", name)
				}
			}
			if m.checkout.Tracing == "both" {
				return errors.New("--tracing both switches this process's tracing: not with --distributed")
			}
			if d.PostgresURL == "" || d.NATSURL == "" {
				return bench.ErrDistributedSetup
			}
			m.checkout.RelayEvents = 0
			m.checkout.Distributed = &d
			return nil
		}
		if len(args) < 2 || args[1] != "store" {
			return errors.New("usage: agora bench store|checkout|transfers|gateway [--json] [flags]")
		}
		m.command = "bench store"
		fs := flag.NewFlagSet("bench store", flag.ContinueOnError)
		fs.SetOutput(m.Stderr)
		fs.BoolVar(&m.asJSON, "json", false, "print one JSON object instead of a table")
		fs.IntVar(&m.bench.Events, "events", 200_000, "events per throughput run")
		fs.IntVar(&m.bench.Writers, "writers", 64, "concurrent appenders")
		fs.StringVar(&m.bench.PostgresURL, "postgres", os.Getenv("AGORA_POSTGRES_URL"), "PostgreSQL URL (AGORA_POSTGRES_URL); empty skips PostgreSQL")
		fs.StringVar(&m.bench.Dir, "dir", "", "directory for the SQLite files (default: a temporary one)")
		return fs.Parse(args[2:])
	case "load":
		m.command = "load"
		return m.parseLoad(args[1:])
	case "projections":
		return m.parseProjections(args[1:])
	case "migrate":
		return m.parseMigrate(args[1:])
	case "payments":
		return m.parsePayments(args[1:])
	case "-h", "--help", "help":
		return errUsage
	}
	return fmt.Errorf("unknown command %q (run 'agora help')", args[0])
}

// Run runs the parsed command.
func (m *Main) Run(ctx context.Context) error {
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(m.Stderr, &slog.HandlerOptions{Level: m.level})))
	slog.SetDefault(log)
	switch m.command {
	case "serve":
		m.serve.Logger = log
		stop, err := m.startCPUProfile()
		if err != nil {
			return err
		}
		defer stop()
		srv, err := server.Open(ctx, m.serve)
		if err != nil {
			return err
		}
		m.srv = srv
		if d, ok := srv.Demo(); ok {
			// Printed, not logged: the demo passwords are public.
			curl := "curl -s"
			if f := srv.DevCertFile(); f != "" {
				curl += " --cacert " + f
			}
			fmt.Fprintf(m.Stdout, "Agora is up: open %s/ in a browser (the shop; the console for admins).\n"+
				"Demo logins (tenant %q): customer %s / %s, merchant %s / %s, admin %s / %s\n"+
				"  %s %s/api/v1/auth/token -H 'Content-Type: application/json' -d '{\"email\":\"%s\",\"password\":\"%s\"}'\n",
				srv.URL(), d.Tenant, d.CustomerEmail, d.CustomerPassword, d.MerchantEmail, d.MerchantPassword, d.AdminEmail, d.AdminPassword,
				curl, srv.URL(), d.CustomerEmail, d.CustomerPassword)
		}
		if m.Ready != nil {
			go func() {
				<-srv.Ready()
				m.Ready(srv)
			}()
		}
		return srv.Run(ctx)
	case "audit":
		m.audit.Logger = log
		return m.runAudit(ctx)
	case "bench checkout":
		return m.report(true, func(log func(string, ...any), p bench.Progress) (result, error) {
			m.checkout.Log, m.checkout.Progress = log, p
			return bench.RunCheckout(ctx, m.checkout)
		})
	case "bench transfers":
		return m.report(true, func(log func(string, ...any), p bench.Progress) (result, error) {
			m.transfers.Log, m.transfers.Progress = log, p
			return bench.RunTransfers(ctx, m.transfers)
		})
	case "bench gateway":
		return m.report(false, func(log func(string, ...any), p bench.Progress) (result, error) {
			m.gateway.Log, m.gateway.Progress = log, p
			return bench.RunGateway(ctx, m.gateway)
		})
	case "load":
		return m.runLoad(ctx)
	case "projections", "projections rebuild":
		return m.runProjections(ctx)
	case "migrate split":
		return m.runSplit(ctx)
	case "payments reshard":
		return m.runReshard(ctx)
	case "bench store":
		return m.report(true, func(log func(string, ...any), p bench.Progress) (result, error) {
			m.bench.Log, m.bench.Progress = log, p
			return bench.Run(ctx, m.bench)
		})
	}
	return errUsage
}

// ErrViolations is what agora audit returns when a check found a
// violation (after printing them): the command exits with status 1.
var ErrViolations = errors.New("the audit found violations")

// runAudit audits the stores and prints the report.
func (m *Main) runAudit(ctx context.Context) error {
	rep, err := server.Audit(ctx, m.audit, m.auditOpts)
	if err != nil {
		return err
	}
	if m.asJSON {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteTable(m.Stdout)
	}
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("%w: %d", ErrViolations, len(rep.Violations()))
	}
	return nil
}

// result is a benchmark's result.
type result interface {
	WriteJSON(io.Writer) error
	WriteTable(io.Writer) error
}

// parseInterleaved parses fs's flags from args, which may come before,
// between and after the positional arguments, and returns those.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// logf prints a benchmark's progress line on stderr.
func (m *Main) logf(format string, args ...any) { fmt.Fprintf(m.Stderr, format+"\n", args...) }

// report runs a benchmark (under the CPU profiler if --cpuprofile) and
// prints its result. The benchmark's log lines and progress (its counts'
// rates if rate) go to stderr through one progress display: a bar on a
// terminal, lines otherwise.
func (m *Main) report(rate bool, run func(log func(string, ...any), p bench.Progress) (result, error)) error {
	stop, err := m.startCPUProfile()
	if err != nil {
		return err
	}
	defer stop()
	bar := m.progress("", rate)
	res, err := run(bar.Logf, func(what, unit string, done, total int) {
		bar.SetUnit(unit)
		bar.Describe(what)
		bar.Set(done, total)
	})
	bar.Finish()
	if err != nil {
		return err
	}
	if m.asJSON {
		return res.WriteJSON(m.Stdout)
	}
	return res.WriteTable(m.Stdout)
}

// startCPUProfile starts the CPU profile --cpuprofile asks for, if any,
// and returns what stops it and writes it out.
func (m *Main) startCPUProfile() (stop func(), err error) {
	if m.cpuProfile == "" {
		return func() {}, nil
	}
	f, err := os.Create(m.cpuProfile)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			slog.Error("--cpuprofile", "err", err)
		}
	}, nil
}

// Close releases what Run opened.
func (m *Main) Close() error {
	if m.srv != nil {
		return m.srv.Close()
	}
	return nil
}

// contextURLs reads the contexts' own database URLs from the environment
// (AGORA_POSTGRES_URL_<CONTEXT>).
func contextURLs() map[string]string {
	out := map[string]string{}
	for _, c := range server.Contexts {
		if u := os.Getenv(server.PostgresURLEnv(c)); u != "" {
			out[c] = u
		}
	}
	return out
}
