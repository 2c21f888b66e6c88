// Package ops serves the operations API an operator's console reads:
// the event log (a page, or live as Server-Sent Events), one stream, the
// saga instances, how far projections, relays and consumers have got
// (and a projection's rebuild), the dead letters of consumers (and their
// redelivery), the upstream clusters as the gateway sees them, and an
// overview. Every route is an admin's (the route table says so), and an
// admin sees only their tenant's events, streams, sagas and dead
// letters: an event's tenant is its metadata's, none meaning
// auth.DefaultTenant.
//
// The package takes what it reads as small interfaces and functions
// (Config), so that it knows nothing of how the server assembles them.
// A process that holds no event store (the gateway of a distributed
// platform) answers the endpoints that need one with 503
// not_in_this_process.
package ops

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/audit"
	"github.com/agora-commerce/agora/internal/gateway/registry"
	"github.com/agora-commerce/agora/internal/gateway/resilience"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/messaging"
)

// Store is what the API reads of the event store.
type Store interface {
	// ReadAll reads the global log after a position.
	ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.Record, error)
	// ReadStream reads one stream.
	ReadStream(ctx context.Context, streamID string, r eventstore.StreamRead) ([]eventstore.Record, error)
	// Head is the log's highest position.
	Head(ctx context.Context) (uint64, error)
	// WaitForAppend returns once the log may have grown past after.
	WaitForAppend(ctx context.Context, after uint64) error
}

// Projection is a projection runner (*projection.Runner).
type Projection interface {
	// Name is the projection's name.
	Name() string
	// Position is its checkpoint: the last position applied.
	Position() uint64
	// Lag is how far its checkpoint is behind its log's head.
	Lag(ctx context.Context) (uint64, error)
	// Rebuild empties its read model and replays the log while the
	// runner runs, returning once it has caught up.
	Rebuild(ctx context.Context, progress func(pos, target uint64)) error
}

// Relay is a relay of a log to the bus.
type Relay struct {
	// Name is the relay's (its checkpoint's) name.
	Name string
	// Position is the last position it published.
	Position func() uint64
	// Head is the highest position of the log it relays.
	Head func(ctx context.Context) (uint64, error)
}

// ConsumerStats is what the broker says of a consumer.
type ConsumerStats struct {
	// Pending counts messages not yet delivered to it.
	Pending uint64
	// AckPending counts messages delivered and not yet acknowledged.
	AckPending uint64
	// Redelivered counts messages delivered more than once, not yet
	// acknowledged.
	Redelivered uint64
}

// Consumer is a consumer of the bus this process runs.
type Consumer struct {
	// Name is the consumer's durable name (the name of its dead letters).
	Name string
	// Stream is the bus stream it consumes.
	Stream string
	// Handle is its handler; a redelivered dead letter goes to it.
	Handle messaging.Handler
	// Stats, if set, asks the broker about it.
	Stats func(ctx context.Context) (ConsumerStats, error)
}

// Breaker is an upstream cluster's resilience policies
// (*resilience.Cluster).
type Breaker interface {
	// State is the circuit breaker's state.
	State() resilience.State
	// InFlight counts the requests holding a bulkhead permit.
	InFlight() int
	// MaxConcurrent is the bulkhead's size.
	MaxConcurrent() int
}

// Ejections is an upstream cluster's balancer (*balance.Balancer).
type Ejections interface {
	// EjectedUntil returns the ejected instances and when each returns.
	EjectedUntil() map[string]time.Time
}

// Upstream is a cluster the gateway routes to.
type Upstream struct {
	// Name is the cluster's name.
	Name string
	// Breaker is its resilience policies.
	Breaker Breaker
	// Balancer is its balancer.
	Balancer Ejections
}

// Mode names how the platform runs.
const (
	// Embedded: every context in one process.
	Embedded = "embedded"
	// Distributed: one context per process.
	Distributed = "distributed"
)

// DefaultScanLimit bounds the events one filtered read of the log scans.
const DefaultScanLimit = 50_000

// Config is what the API reads. Nil fields are things this process does
// not have: the endpoints that need them answer 503 not_in_this_process.
type Config struct {
	// Logs are the event logs of the contexts this process runs, each its
	// own (none: the endpoints that read them answer 503).
	Logs []Log
	// SagaDBs are the databases of the contexts' saga indexes (table
	// saga_instances).
	SagaDBs []*sql.DB
	// DeadLetters keeps the consumers' dead letters (in DB).
	DeadLetters *DeadLetters
	// Projections are the projection runners this process runs.
	Projections []Projection
	// Relays are the relays this process runs.
	Relays []Relay
	// Consumers are the consumers this process runs.
	Consumers []Consumer
	// Registry lists the upstream clusters' instances (nil: no gateway).
	Registry registry.Registry
	// Upstreams lists the gateway's clusters (nil: no gateway).
	Upstreams func() []Upstream
	// Mode is Embedded or Distributed.
	Mode string
	// Services names the platform's services, for the overview.
	Services []string
	// Context bounds background work (rebuilds); default Background.
	Context context.Context
	// Audit, if set, checks the stores' invariants for an admin of a
	// tenant (nil: this process holds no stores to audit).
	Audit func(ctx context.Context, tenant string) (audit.Report, error)
	// Idempotent, if set, wraps the POST endpoints (Idempotency-Key).
	Idempotent func(http.Handler) http.Handler
	// Logger receives failures (default slog.Default()).
	Logger *slog.Logger
}

// API serves the operations endpoints. Create it with New.
type API struct {
	cfg Config
	// ScanLimit bounds the events one filtered read of the log scans
	// (DefaultScanLimit; tests set it lower).
	ScanLimit int

	mu sync.Mutex
	// rebuilds holds each projection's last rebuild started here.
	rebuilds map[string]*RebuildStatus
}

// New returns the API over cfg.
func New(cfg Config) *API {
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Mode == "" {
		cfg.Mode = Embedded
	}
	return &API{cfg: cfg, ScanLimit: DefaultScanLimit, rebuilds: map[string]*RebuildStatus{}}
}

// Register adds the endpoints to mux.
func (a *API) Register(mux *http.ServeMux) {
	post := func(h http.HandlerFunc) http.Handler {
		if a.cfg.Idempotent != nil {
			return a.cfg.Idempotent(h)
		}
		return h
	}
	mux.HandleFunc("GET /api/v1/ops/overview", a.overview)
	mux.HandleFunc("GET /api/v1/ops/log", a.log)
	mux.HandleFunc("GET /api/v1/ops/log/stream", a.logStream)
	mux.HandleFunc("GET /api/v1/ops/streams/{stream_id}", a.stream)
	mux.HandleFunc("GET /api/v1/ops/sagas", a.sagas)
	mux.HandleFunc("GET /api/v1/ops/processing", a.processing)
	mux.Handle("POST /api/v1/ops/projections/{name}/rebuild", post(a.rebuild))
	mux.HandleFunc("GET /api/v1/ops/dead-letters", a.deadLetters)
	mux.Handle("POST /api/v1/ops/dead-letters/{id}/redeliver", post(a.redeliver))
	mux.HandleFunc("GET /api/v1/ops/services", a.services)
	mux.HandleFunc("GET /api/v1/ops/audit", a.audit)
}

// audit serves GET /api/v1/ops/audit: the invariants agora audit checks,
// of the caller's tenant's accounts, orders and sagas and of the
// platform's relays and consumers. Violations are the report's, so the
// answer is 200 with ok false.
func (a *API) audit(w http.ResponseWriter, r *http.Request) {
	c, ok := begin(w, r)
	if !ok {
		return
	}
	if a.cfg.Audit == nil {
		httpapi.Error(w, r, errNotHere)
		return
	}
	rep, err := a.cfg.Audit(r.Context(), tenantOf(c.Tenant))
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusOK, rep)
}

// errNotHere answers what this process cannot: it holds no event store
// (the gateway of a distributed platform, which runs no context).
var errNotHere = &errs.Error{Code: errs.Unavailable, Reason: "not_in_this_process",
	Message: "this process runs none of the platform's contexts (the gateway of a distributed platform)"}

// tenantOf is the tenant of what was recorded with tenant.
func tenantOf(tenant string) string {
	if tenant == "" {
		return auth.DefaultTenant
	}
	return tenant
}

// tenants are the values of a tenant column that belong to tenant: its
// name, and for the default tenant also none.
func tenants(tenant string) []string {
	if tenant == auth.DefaultTenant {
		return []string{tenant, ""}
	}
	return []string{tenant}
}

// begin checks the query parameters against allowed and returns the
// caller; on failure it has answered.
func begin(w http.ResponseWriter, r *http.Request, allowed ...string) (*auth.Claims, bool) {
	c, err := auth.Caller(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return nil, false
	}
	if err := httpapi.Query(r, allowed...); err != nil {
		httpapi.Error(w, r, err)
		return nil, false
	}
	return c, true
}

// position parses a log position or stream version: an integer of at
// least least, else a 400 naming field.
func position(field, v string, least uint64) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < least || n > 1<<62 {
		return 0, errs.Fields(errs.FieldError{Field: field, Message: "must be an integer of at least " + strconv.FormatUint(least, 10)})
	}
	return n, nil
}

// text checks a free-text parameter: at most most bytes, no control
// characters.
func text(field, v string, most int) error {
	if len(v) > most {
		return errs.Fields(errs.FieldError{Field: field, Message: "is longer than " + strconv.Itoa(most) + " characters"})
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return errs.Fields(errs.FieldError{Field: field, Message: "contains control characters"})
	}
	return nil
}

// timestamp renders t as the API does: RFC 3339 with nanoseconds, UTC.
func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
