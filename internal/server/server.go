// Package server assembles Agora's platform: the event store and read
// models (SQLite files, or PostgreSQL), the bus (NATS JetStream, embedded
// or external) with its relays, the saga engine, the exchange of
// cross-context calls, and the modules (package module) on them — every
// bounded context in one process behind the gateway (embedded mode), or
// one per process (distributed mode, Config.Only). The server chooses
// modules and runs what they return; it knows no context's internals.
package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/redis/go-redis/v9"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/gateway"
	"github.com/agora-commerce/agora/internal/gateway/eventstream"
	"github.com/agora-commerce/agora/internal/gateway/idempotency"
	"github.com/agora-commerce/agora/internal/gateway/registry"
	"github.com/agora-commerce/agora/internal/gateway/routes"
	"github.com/agora-commerce/agora/internal/gateway/traces"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/ops"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/platform/openapi"
	"github.com/agora-commerce/agora/internal/platform/revocation"
	"github.com/agora-commerce/agora/internal/platform/telemetry"
	"github.com/agora-commerce/agora/internal/platform/tlsconf"
	"github.com/agora-commerce/agora/internal/shipping/carrier"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/messaging/natsbus"
	"github.com/agora-commerce/agora/projection"
	"github.com/agora-commerce/agora/web"
)

// Config configures a Server.
type Config struct {
	// Addr is the listen address, e.g. "127.0.0.1:8080" or ":0".
	Addr string
	// DataDir holds the SQLite files; created if missing.
	DataDir string
	// Logger receives the server's logs.
	Logger *slog.Logger

	// PostgresURL, if set, keeps events and read models in PostgreSQL
	// instead of SQLite files (AGORA_POSTGRES_URL).
	PostgresURL string
	// PostgresSchema prefixes each context's schema there:
	// <prefix>_<context> (default "agora": agora_payments).
	PostgresSchema string
	// PostgresURLs gives a context a database URL of its own, by context
	// name (AGORA_POSTGRES_URL_<CONTEXT>); the others use PostgresURL.
	PostgresURLs map[string]string
	// NATSURL, if set, connects to that NATS server instead of starting
	// one inside the process (AGORA_NATS_URL).
	NATSURL string
	// NATSNamespace prefixes every subject and stream (default "agora").
	NATSNamespace string
	// RedisURL, if set, is the shared cache tier (AGORA_REDIS_URL), e.g.
	// redis://127.0.0.1:6379/0.
	RedisURL string
	// CheckoutMode is "orchestration" (default) or "choreography".
	CheckoutMode string
	// CheckoutTimeout bounds each checkout step (orchestration) or the
	// whole checkout (choreography); default 30s.
	CheckoutTimeout time.Duration
	// CarrierFailureRate is the fraction of shipments the simulated
	// carrier refuses; CarrierLatency is how long each call takes.
	CarrierFailureRate float64
	CarrierLatency     time.Duration
	// MerchantAccountID receives order payments; opened on start (USD).
	MerchantAccountID string
	// BootstrapAdmin, "email:password", creates that admin in the demo
	// tenant on start if it does not exist (AGORA_BOOTSTRAP_ADMIN).
	BootstrapAdmin string
	// RateLimits turns on the gateway's rate limits (agora serve: on);
	// with RedisURL set they are shared by every gateway.
	RateLimits bool
	// IdempotencyTTL is how long an Idempotency-Key's answer is kept
	// (default 24h): in the owning context's database, and cached by
	// the gateway.
	IdempotencyTTL time.Duration
	// Routes, if set, is a YAML route table replacing the embedded one.
	Routes string
	// BreakerDelay is how long an open circuit breaker waits before it
	// lets a trial request through (default 10s).
	BreakerDelay time.Duration
	// PaymentsPartitions is how many partitions payments spreads its
	// accounts over, each its own event store (default
	// partition.Default). The count is recorded in the store: a start
	// with another count refuses (`agora payments reshard` changes it).
	PaymentsPartitions int
	// Only, if set, runs one context of the platform in this process —
	// identity, catalog, inventory, ordering, payments, shipping, bff —
	// or the gateway: distributed mode, on PostgreSQL and an external
	// NATS server. The process serves that context's API (or the
	// gateway) on Addr, registers itself in the NATS KV registry, and runs
	// only that context's projections, consumers, relays and daemons.
	// Empty runs everything (embedded mode).
	Only string
	// AdvertiseURL is the URL other processes reach this one at
	// (default URL(): "http://", or "https://" with TLS, and the bound
	// address), in distributed mode.
	AdvertiseURL string
	// JWKSURL, in distributed mode, is where a process other than
	// identity fetches the keys that check access tokens (identity's
	// /.well-known/jwks.json, directly or through the gateway), refreshed
	// periodically and on an unknown key ID. Empty: the key is read from
	// the data directory, which the processes must then share.
	JWKSURL string
	// TLSCert and TLSKey, if set, are the PEM files of the certificate
	// (chain) and private key Addr is served with: HTTPS, HTTP/2 and
	// HTTP/1.1, TLS 1.2 at least (--tls-cert, --tls-key).
	TLSCert, TLSKey string
	// TLSSelfSigned serves Addr over HTTPS with a development
	// certificate, made on first start in DataDir/tls (cert.pem and
	// key.pem) and reused after: ECDSA P-256, self-signed, valid for
	// localhost, 127.0.0.1, ::1 and Addr's host (--tls-self-signed).
	TLSSelfSigned bool
	// TLSPlain says what plain HTTP sent to the TLS port gets:
	// PlainRedirect (the default) or PlainRefuse (--tls-plain).
	TLSPlain string
	// TLSCA, if set, is a PEM bundle of certificate authorities that the
	// calls this process makes to other processes trust besides the
	// system's roots: the gateway's to instances, the BFF's, the fetch of
	// the token-checking keys (--tls-ca; distributed mode).
	TLSCA string
	// SeedDemo fills an empty platform with a demo tenant, a merchant, a
	// customer with a funded account and a small catalog (Seeded says
	// how to log in).
	SeedDemo bool
}

// DefaultMerchantAccountID is the merchant account opened on first start.
const DefaultMerchantAccountID = "merchant"

// Checkout modes.
const (
	Orchestration = module.Orchestration
	Choreography  = module.Choreography
)

// Server is a running platform: every module (embedded), or one.
type Server struct {
	cfg Config
	log *slog.Logger
	// stores are the contexts' own storage, one per module this process
	// builds (storage.go); platformDB is the platform's own (the bus's
	// dead letters, the operations API's keys).
	stores     []*contextStore
	platformDB *sql.DB
	metrics    *telemetry.Metrics
	// routes is the route table: the gateway's, and each service's own
	// access rules.
	routes *routes.Table
	ln     net.Listener
	http   *http.Server
	// tls is the listener's TLS configuration (nil: plain HTTP); split
	// sorts its connections into TLS and plain HTTP, which plain answers
	// (Config.TLSPlain).
	tls   *tls.Config
	split *tlsconf.Split
	plain *http.Server
	// clientTLS and client carry calls to other processes, trusting
	// Config.TLSCA (nil without it: Go's defaults).
	clientTLS *tls.Config
	client    *http.Client

	bus      *natsbus.Bus
	redis    *redis.Client
	calls    *call.Exchange
	verifier *auth.Verifier
	// mods are the modules this process runs, built.
	mods      []*built
	runners   []*projection.Runner
	relays    []relay
	consumers []module.Consumer
	daemons   []func(context.Context) error
	services  []*service
	gateway   *gateway.Gateway
	// reg is the registry the gateway and the BFF read: static in
	// embedded mode, NATS KV in distributed mode.
	reg registry.Registry
	// leases split a partitioned context's partitions between its
	// instances (distributed mode: leases.go).
	leases []*leases
	// bg lives as long as the server (distributed mode's registry watch
	// and heartbeat, and its remote key set).
	bg         context.Context
	bgCancel   context.CancelFunc
	register   func() error
	deregister func()
	seeded     *Demo
	// dead keeps the messages consumers failed permanently.
	dead *ops.DeadLetters
	// opsKeys are the Idempotency-Key records of the operations API.
	opsKeys *idempotency.SQLStore
	// revoked lists the access tokens logged out before they expire.
	revoked *revocation.List
	// Carrier is the simulated carrier shipping books with, for tests
	// and drills (Set changes its failure rate and latency).
	Carrier *carrier.Sim

	wg     sync.WaitGroup
	cancel context.CancelFunc
	ready  chan struct{}
}

// store is what the server needs of an event store.
type store interface {
	eventstore.Store
	Ping(ctx context.Context) error
	Close() error
}

// Open opens the stores and the bus, applies migrations, builds the
// modules this process runs, binds the listeners and builds the HTTP
// handlers. Run serves.
func Open(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CheckoutMode == "" {
		cfg.CheckoutMode = Orchestration
	}
	if cfg.CheckoutMode != Orchestration && cfg.CheckoutMode != Choreography {
		return nil, fmt.Errorf("server: checkout mode %q: want %q or %q", cfg.CheckoutMode, Orchestration, Choreography)
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = 24 * time.Hour
	}
	if cfg.CheckoutTimeout <= 0 {
		cfg.CheckoutTimeout = 30 * time.Second
	}
	if cfg.MerchantAccountID == "" {
		cfg.MerchantAccountID = DefaultMerchantAccountID
	}
	if cfg.Only != "" {
		if err := checkDistributed(cfg); err != nil {
			return nil, err
		}
	}
	if err := CheckTLS(cfg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("server: data dir: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: telemetry.New(), ready: make(chan struct{}), routes: routes.Default(),
		Carrier: carrier.NewSim(cfg.CarrierFailureRate, cfg.CarrierLatency)}
	s.bg, s.bgCancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.openTLS(); err != nil {
		return nil, err
	}
	if cfg.Routes != "" {
		if s.routes, err = routes.Load(cfg.Routes); err != nil {
			return nil, err
		}
	}
	if cfg.PostgresURL == "" {
		if err := checkLayout(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	if s.platformDB, err = s.openPlatformDB(ctx); err != nil {
		return nil, err
	}
	if err := s.openDeadLetters(ctx); err != nil {
		return nil, err
	}
	if s.opsKeys, err = idempotency.NewSQLStore(ctx, s.platformDB, "idempotency_keys", nil); err != nil {
		return nil, err
	}
	s.bus, err = natsbus.Open(ctx, natsbus.Options{URL: cfg.NATSURL, DataDir: filepath.Join(cfg.DataDir, "nats"),
		Namespace: cfg.NATSNamespace, Logger: s.log, OnDead: s.dead.Record})
	if err != nil {
		return nil, err
	}
	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("redis URL: %w", err)
		}
		s.redis = redis.NewClient(opt)
	}
	if err := s.openVerifier(); err != nil {
		return nil, err
	}
	if cfg.Only != "" {
		return s, s.openDistributed(ctx)
	}
	reg := registry.NewStatic()
	s.reg = reg
	if err := s.build(ctx, Modules); err != nil {
		return nil, err
	}
	if err := s.listenServices(reg); err != nil {
		return nil, err
	}
	if cfg.SeedDemo {
		if err := s.seedDemo(ctx); err != nil {
			return nil, fmt.Errorf("demo seed: %w", err)
		}
	}
	if err := s.buildGateway(); err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	s.http = newHTTPServer(httpapi.AccessLog(s.log, s.metrics.HTTP(s.gateway)), s.log) // the gateway gives IDs and recovers
	return s, nil
}

// ops serves the operational endpoints: health, readiness, metrics, the
// OpenAPI document and (on the gateway) the event stream.
func (s *Server) ops() *http.ServeMux {
	ops := http.NewServeMux()
	ops.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpapi.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	ops.HandleFunc("GET /readyz", s.readyz)
	ops.Handle("GET /metrics", s.metrics.Handler())
	ops.Handle("GET /openapi.json", openapi.Handler())
	ops.Handle("GET /api/v1/events/stream", eventstream.Handler(s.bus, module.EventsStream, module.CatalogStream))
	ops.Handle("GET /api/v1/ops/traces", traces.List(s.traceSource()))
	ops.Handle("GET /api/v1/ops/traces/{trace_id}", traces.Get(s.traceSource()))
	ops.Handle("GET /api/v1/ops/metrics/series", s.metrics.Sampler().Handler())
	s.operations(ops) // the log, streams, sagas, processing, dead letters, services
	// The browser's front end and its sessions (logged in through the
	// gateway itself, so through identity's rules and limits).
	front := web.Handler()
	ops.Handle("GET /{$}", front)
	ops.Handle("GET /assets/", front)
	sessions := web.Sessions(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.gateway.ServeHTTP(w, r) }))
	ops.Handle("/api/v1/auth/session", sessions)
	return ops
}

// openVerifier sets up how this process checks access tokens: with the
// key in the data directory (which identity signs with), or — a
// distributed process other than identity's, given JWKSURL — with the
// keys identity publishes.
func (s *Server) openVerifier() error {
	// Logged-out tokens, refused by every verifier until they expire.
	revoked, err := revocation.Open(s.bg, s.bus.JetStream(), strings.ReplaceAll(cmp.Or(s.cfg.NATSNamespace, "agora"), ".", "_")+"_revoked",
		auth.DefaultMaxLifetime+time.Minute, s.log)
	if err != nil {
		return err
	}
	s.revoked = revoked
	opts := auth.Options{Revoked: revoked}
	if s.cfg.JWKSURL != "" && s.cfg.Only != "" && s.cfg.Only != "identity" {
		opts.HTTPClient = s.client
		v, err := auth.NewRemoteVerifier(s.bg, s.cfg.JWKSURL, opts)
		if err != nil {
			return fmt.Errorf("server: keys from %s: %w", s.cfg.JWKSURL, err)
		}
		s.verifier = v
		return nil
	}
	key, err := auth.LoadOrCreateKey(s.cfg.DataDir)
	if err != nil {
		return err
	}
	s.verifier = auth.NewVerifier(auth.NewSigner(key, auth.Options{}).Keys(), opts)
	return nil
}

// WaitRelayed waits until the event log's relays have published
// everything appended so far (tests use it to start from a quiet bus).
func (s *Server) WaitRelayed(ctx context.Context) error {
	for _, r := range s.relays {
		if r.log == nil {
			continue
		}
		head, err := r.log.Head(ctx)
		if err != nil {
			return err
		}
		if err := r.WaitFor(ctx, head); err != nil {
			return fmt.Errorf("relay %s: %w", r.name, err)
		}
	}
	return nil
}

// DataDir returns the server's data directory.
func (s *Server) DataDir() string { return s.cfg.DataDir }

// Addr returns the bound listen address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Ready is closed once the server accepts requests.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run starts the projections and serves HTTP until ctx ends, then shuts
// down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ctx, s.cancel = context.WithCancel(ctx)
	start := func(what string, f func(context.Context) error) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				s.log.Error("stopped", "what", what, "err", err)
			}
		}()
	}
	// Distributed on PostgreSQL, a partitioned context's instances split
	// its partitions (leases.go): a partition's projections and relay run
	// under its lease, not here. Its saga engine runs on every instance
	// (an instance drives the sagas it starts at once; the others' sweeps
	// take over a dead one's).
	leased := map[any]bool{}
	for _, l := range s.leases {
		for _, part := range l.c.parts {
			for _, r := range part.runners {
				leased[r] = true
			}
			for _, r := range part.relays {
				leased[r.Relay] = true
			}
		}
		start("leases "+l.c.name, l.Run)
	}
	for _, r := range s.runners {
		if !leased[r] {
			start("projection "+r.Name(), r.Run)
		}
	}
	for _, r := range s.relays {
		if !leased[r.Relay] {
			start("relay "+r.name, r.Run)
		}
	}
	for _, c := range s.logs() {
		start("saga engine "+c.name, c.engine.Run)
	}
	for _, c := range s.consumers {
		start("consumer "+c.Name, func(ctx context.Context) error { return messaging.Keep(ctx, s.bus, c.Consumer, c.Handle, s.log) })
	}
	for i, d := range s.daemons {
		start(fmt.Sprintf("daemon %d", i), d)
	}
	s.serveServices(ctx)
	errc := make(chan error, 2)
	s.serve(errc)
	if s.register != nil {
		if err := s.register(); err != nil {
			s.cancel()
			s.wg.Wait()
			return err
		}
	}
	close(s.ready)
	s.log.Info("agora serving", "addr", s.URL(), "data_dir", s.cfg.DataDir)
	select {
	case err := <-errc:
		s.cancel()
		s.wg.Wait()
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.http.Shutdown(shutdown)
	if s.plain != nil {
		err = errors.Join(err, s.plain.Shutdown(shutdown))
	}
	s.wg.Wait()
	return err
}

// Start opens a server with cfg and runs it in the background until
// stop is called; it returns once the server accepts requests (or Run
// failed first). stop ends Run, waits for it and closes the server.
func Start(ctx context.Context, cfg Config) (_ *Server, stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	srv, err := Open(ctx, cfg)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		srv.Close()
		return nil, nil, fmt.Errorf("server: run: %w", err)
	}
	return srv, func() { cancel(); <-done; srv.Close() }, nil
}

// Close releases the stores. Call it after Run returns.
func (s *Server) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.deregister != nil {
		s.deregister()
	}
	if s.bgCancel != nil {
		s.bgCancel()
	}
	var errList []error
	if s.ln != nil {
		s.ln.Close()
	}
	for _, svc := range s.services {
		if svc.ln != nil {
			svc.ln.Close()
		}
	}
	if s.bus != nil {
		errList = append(errList, s.bus.Close())
	}
	if s.redis != nil {
		errList = append(errList, s.redis.Close())
	}
	for _, c := range s.stores {
		errList = append(errList, c.close())
	}
	if s.platformDB != nil {
		errList = append(errList, s.platformDB.Close())
	}
	return errors.Join(errList...)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"eventstore": "ok", "readmodels": "ok", "bus": "ok"}
	status := http.StatusOK
	for _, c := range s.logs() {
		if err := c.store.Ping(ctx); err != nil {
			checks["eventstore"], status = c.name+": "+err.Error(), http.StatusServiceUnavailable
		}
	}
	for _, c := range append(slices.Clone(s.stores), s.logs()...) {
		if err := c.db.PingContext(ctx); err != nil {
			checks["readmodels"], status = c.name+": "+err.Error(), http.StatusServiceUnavailable
		}
	}
	if err := s.platformDB.PingContext(ctx); err != nil {
		checks["readmodels"], status = platformName+": "+err.Error(), http.StatusServiceUnavailable
	}
	if err := s.bus.Ping(ctx); err != nil {
		checks["bus"], status = err.Error(), http.StatusServiceUnavailable
	}
	httpapi.JSON(w, status, map[string]any{"status": http.StatusText(status), "checks": checks})
}

// Bus returns the server's message bus.
func (s *Server) Bus() *natsbus.Bus { return s.bus }
