// Package module is Agora's unit of composition. Each bounded context is a
// module: one constructor (Def.New) that takes what the platform gives it
// — its stores, the saga engine, the cross-context exchange, the
// logger, the registry — and returns what it runs: its HTTP
// routes, projections, consumers, the calls it answers, its daemons and
// the map from its events to its integration events.
//
// The server only chooses modules: all of them in one process (embedded
// mode), or one per process (distributed mode, --only). A module reaches
// other contexts only through their published language: integration
// events on the bus and calls (package call), so a module built alone
// runs the same as one built beside the others.
package module

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/gateway/registry"
	"github.com/agora-commerce/agora/internal/gateway/routes"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/revocation"
	"github.com/agora-commerce/agora/internal/platform/telemetry"
	"github.com/agora-commerce/agora/internal/shipping/carrier"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/projection"
	"github.com/agora-commerce/agora/saga"
)

// The bus's streams: the event-sourced contexts' integration events, and
// the catalog's.
const (
	EventsStream  = "EVENTS"
	CatalogStream = "CATALOG"
)

// Checkout modes.
const (
	Orchestration = "orchestration"
	Choreography  = "choreography"
)

// Def declares a module: its name (the route table's cluster), the
// stream and subjects its integration events go to, and its constructor.
// The declaration is static so that every process knows every stream's
// subjects, whichever modules it builds.
type Def struct {
	// Name is the context's name and its cluster in the route table.
	Name string
	// Stream is the bus stream of the module's integration events, and
	// Subjects the subjects they take (none if it publishes nothing).
	Stream   string
	Subjects []string
	// New builds the module.
	New func(ctx context.Context, p *Platform) (*Module, error)
	// Partitioned says the context spreads its aggregates over partitions,
	// each its own event store (payments' accounts): the platform gives it
	// Platform.Partitions and no Store or Sagas of its own.
	Partitioned bool
	// SagaDeadlines, if set, gives the deadline of each saga type the
	// module registers (saga.Definition.Deadline) under settings s,
	// without building it: what an audit of the platform holds an
	// unfinished instance to. A type without one is held to the audit's
	// default.
	SagaDeadlines func(s Settings) map[string]time.Duration
}

// Settings are the platform's settings that modules read.
type Settings struct {
	// DataDir is the data directory (the signing key lives there).
	DataDir string
	// Postgres says the stores are PostgreSQL (else SQLite).
	Postgres bool
	// CheckoutMode is Orchestration or Choreography; CheckoutTimeout
	// bounds each checkout step (orchestration) or the whole checkout.
	CheckoutMode    string
	CheckoutTimeout time.Duration
	// MerchantAccountID receives order payments.
	MerchantAccountID string
	// BootstrapAdmin, "email:password", is an admin of the demo tenant
	// created on start if missing.
	BootstrapAdmin string
	// Carrier is the simulated carrier shipping books with.
	Carrier *carrier.Sim
}

// Platform is what the platform gives a module.
type Platform struct {
	Settings Settings
	// Store is the event store, DB the read-model database.
	Store eventstore.Store
	DB    *sql.DB
	// Redis is the shared cache tier (nil without one).
	Redis *redis.Client
	// Sagas is the process's saga engine: a module registers its saga
	// definitions there, and the engine drives the types registered.
	Sagas *saga.Engine
	// Calls is the process's exchange of cross-context calls: a module
	// binds the calls it makes to it.
	Calls *call.Exchange
	// Registry lists the instances of every cluster (the BFF calls them).
	Registry registry.Registry
	// Client, if set, carries HTTP calls to other processes (the BFF's),
	// trusting the platform's CA bundle (nil: the module's default).
	Client *http.Client
	// Verifier checks access tokens.
	Verifier *auth.Verifier
	// Revocations is the revoked-token list every verifier consults
	// (identity writes it on logout).
	Revocations *revocation.List
	// Logger receives the module's logs.
	Logger *slog.Logger
	// Metrics is the process's metrics, where a module reports what only
	// it can see (checkouts, its caches); nil in tests, and the methods a
	// module calls are safe on nil.
	Metrics *telemetry.Metrics
	// Project opens a projection runner on the store and DB, for the
	// module to return in Module.Projections.
	Project func(ctx context.Context, p projection.Projection) (*projection.Runner, error)
	// Partitions are a partitioned context's partitions (Def.Partitioned),
	// in order: an aggregate's partition is partition.Of(its key, len).
	Partitions []Partition
}

// Partition is one partition of a partitioned context: its own event
// store, its state (the saga index, the relay's checkpoint) and the saga
// engine that drives the sagas recorded in its log.
type Partition struct {
	Store eventstore.Store
	DB    *sql.DB
	Sagas *saga.Engine
	// Project opens a runner of a projection over the partition's log
	// that applies to the context's database (Platform.DB): a read model
	// fed by every partition, a checkpoint per partition.
	Project func(ctx context.Context, p projection.Projection) (*projection.Runner, error)
}

// Consumer is a durable consumer of the bus and its handler.
type Consumer struct {
	messaging.Consumer
	Handle messaging.Handler
}

// Outbox is a log of integration events kept beside a module's state (a
// context without event sourcing), relayed to the bus under Name.
type Outbox struct {
	Name string
	Log  messaging.Log
}

// Module is what a module runs.
type Module struct {
	// Routes adds the module's HTTP routes (those the route table gives
	// its cluster) to a mux.
	Routes func(mux *http.ServeMux)
	// Internal are routes the module serves that the table does not
	// route (the gateway calls them itself), with their access rules.
	Internal []*routes.Route
	// Projections are its read models' runners.
	Projections []*projection.Runner
	// Consumers are its consumers of the bus.
	Consumers []Consumer
	// Answers are the cross-context calls it answers.
	Answers []call.Answer
	// Daemons are its background loops, run until their context ends.
	Daemons []func(ctx context.Context) error
	// Publish maps its events in the event log to integration events
	// (nil if it publishes none from there).
	Publish messaging.Mapper
	// Outboxes are its outboxes, relayed to its stream.
	Outboxes []Outbox
	// PartitionKey, for a partitioned context, is the key (an account's
	// or a transfer's ID) whose partition a call's request is about, by
	// the call's subject ("" for a call about no one partition): where
	// instances split the partitions, a call goes to the instance that
	// holds that partition's lease.
	PartitionKey func(subject string, request json.RawMessage) string
	// Service is its application service, for tests and tools that look
	// behind its API.
	Service any
	// SeedDemo, if set, creates the module's part of the demo (identity:
	// the demo tenant's users) once every module is built; the server
	// calls it on an embedded platform asked to seed (Settings.SeedDemo).
	SeedDemo func(ctx context.Context) (Demo, error)
}

// Demo is what the demo seed created or found: who can log in, and how.
type Demo struct {
	// Tenant is the demo tenant.
	Tenant string
	// MerchantEmail/MerchantPassword and CustomerEmail/CustomerPassword
	// log in as the demo merchant and customer (public demo passwords).
	MerchantEmail, MerchantPassword string
	CustomerEmail, CustomerPassword string
	// AdminEmail/AdminPassword log in as the demo tenant's admin, who
	// sees the operations console.
	AdminEmail, AdminPassword string
	// CustomerAccountID is the demo customer's payments account.
	CustomerAccountID string
	// Created reports whether this start created the demo users.
	Created bool
	// CustomerToken and MerchantToken are short-lived access tokens of
	// the demo users, for seeding the rest through the API without a
	// login (never shown).
	CustomerToken, MerchantToken string
}

// Reaction is a consumer of the events stream by which a context reacts
// to others' integration events (the choreographed checkout). A delivery
// in flight when a process dies comes back after AckWait, well inside the
// checkout's timeout; its handler is idempotent (an inbox), so a slow one
// delivered twice does no harm.
func Reaction(name string, subjects []string, h messaging.Handler) Consumer {
	return Consumer{Consumer: messaging.Consumer{Name: name, Stream: EventsStream, Subjects: subjects, Concurrency: 64,
		AckWait: 5 * time.Second}, Handle: h}
}
