package server

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/postgres"
	"github.com/agora-commerce/agora/eventstore/sqlite"
	"github.com/agora-commerce/agora/internal/gateway/idempotency"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/projection"
	"github.com/agora-commerce/agora/saga"
)

// Each bounded context owns its data: its own event log (with its own
// positions), outbox, inbox, read models, saga instances, Idempotency-Key
// records and migrations.
//
//   - Embedded (SQLite): the directory <data>/<context>/, holding the
//     context's event log (events.db) and its state (readmodels.db: read
//     models, outbox, inbox, checkpoints, sagas' index, keys). Two files,
//     not one, because SQLite has one writer per file: the log's group
//     commit and the projections each keep theirs.
//   - PostgreSQL: the schema <prefix>_<context> (prefix AGORA_POSTGRES_SCHEMA,
//     default "agora") owned by the role agora_<context>, whose privileges
//     are that schema alone. With the shared URL the process provisions
//     role and schema and works as the role (SET ROLE through the startup
//     options); with AGORA_POSTGRES_URL_<CONTEXT> it connects to that URL as
//     whoever it names, which the operator has granted the schema.
//
// What belongs to the platform rather than to a context (the bus's dead
// letters, the operations API's own keys) lives in <data>/platform.db or
// the schema <prefix>_platform.

// DefaultPostgresPrefix prefixes the contexts' schemas when
// Config.PostgresSchema is empty.
const DefaultPostgresPrefix = "agora"

// platformName names the platform's own store beside the contexts'.
const platformName = "platform"

// contextStore is one bounded context's own storage.
type contextStore struct {
	name string
	// store is its event log; db its state (read models and the rest).
	store store
	db    *sql.DB
	// schema is its PostgreSQL schema ("" on SQLite).
	schema string
	// engine drives the saga types its module registers, over its log.
	engine *saga.Engine
	// keys are its Idempotency-Key records.
	keys *idempotency.SQLStore
	// parts are a partitioned context's partitions (its store and engine
	// are then nil), each with its log, state and engine; partition is a
	// partition's number.
	parts     []*contextStore
	partition int
	// runners and relays are what runs over this log (a partition's, to
	// run under its lease).
	runners []*projection.Runner
	relays  []relay
}

// logs are c's event logs, each with its state and engine: c itself,
// or a partitioned context's partitions.
func (c *contextStore) logs() []*contextStore {
	if c.parts != nil {
		return c.parts
	}
	return []*contextStore{c}
}

func (c *contextStore) close() error {
	var errList []error
	for _, p := range c.parts {
		errList = append(errList, p.close())
	}
	if c.db != nil {
		errList = append(errList, c.db.Close())
	}
	if c.store != nil {
		errList = append(errList, c.store.Close())
	}
	return errors.Join(errList...)
}

// PostgresSchemaOf is the schema of context name under prefix (default
// DefaultPostgresPrefix).
func PostgresSchemaOf(prefix, name string) string {
	return cmp.Or(prefix, DefaultPostgresPrefix) + "_" + name
}

// PostgresRoleOf is the role that owns context name's schemas.
func PostgresRoleOf(name string) string { return "agora_" + name }

// PostgresURLEnv is the environment variable that gives context name a
// database URL of its own (AGORA_POSTGRES_URL_PAYMENTS).
func PostgresURLEnv(name string) string { return "AGORA_POSTGRES_URL_" + strings.ToUpper(name) }

// ContextDir is the data directory of context name under dataDir
// (embedded).
func ContextDir(dataDir, name string) string { return filepath.Join(dataDir, name) }

// checkLayout refuses a data directory written by a release that kept
// every context in one store.
func checkLayout(dataDir string) error {
	if _, err := os.Stat(filepath.Join(dataDir, "events.db")); err == nil {
		return fmt.Errorf("server: %s holds one event store for every context, as releases before per-context stores wrote it: "+
			"run `agora migrate split --data %s` once to move each context's streams into its own store", dataDir, dataDir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("server: data dir: %w", err)
	}
	return nil
}

// openPlatformDB opens the platform's own database.
func (s *Server) openPlatformDB(ctx context.Context) (*sql.DB, error) {
	if s.cfg.PostgresURL == "" {
		db, err := sql.Open("sqlite", sqlite.DSN(filepath.Join(s.cfg.DataDir, platformName+".db"), false))
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		return db, nil
	}
	schema := PostgresSchemaOf(s.cfg.PostgresSchema, platformName)
	if err := postgres.CreateSchema(ctx, s.cfg.PostgresURL, schema); err != nil {
		return nil, err
	}
	db, err := postgres.OpenDB(s.cfg.PostgresURL, schema)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	return db, nil
}

// openContext opens context name's own storage (see above). A
// partitioned context's (payments') is its state database and its
// partitions, each an event log with a state database of its own: the
// directories <data>/payments/p<k>/, or the schemas <prefix>_payments_p<k>
// (owned by the context's role, at the context's URL).
func (s *Server) openContext(ctx context.Context, name string, partitioned bool) (_ *contextStore, err error) {
	c := &contextStore{name: name}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	u := ""
	if s.cfg.PostgresURL != "" {
		if u, err = ContextURL(ctx, s.cfg, name, s.log); err != nil {
			return nil, err
		}
	}
	if !partitioned {
		if err := s.openLog(ctx, c, u, ContextDir(s.cfg.DataDir, name), PostgresSchemaOf(s.cfg.PostgresSchema, name)); err != nil {
			return nil, fmt.Errorf("server: %s: %w", name, err)
		}
		if c.keys, err = idempotency.NewSQLStore(ctx, c.db, "idempotency_keys", nil); err != nil {
			return nil, err
		}
		return c, nil
	}
	n := cmp.Or(s.cfg.PaymentsPartitions, partition.Default)
	if err := partition.Check(n); err != nil {
		return nil, err
	}
	dir, schema := ContextDir(s.cfg.DataDir, name), PostgresSchemaOf(s.cfg.PostgresSchema, name)
	if u != "" {
		if err := ProvisionSchema(ctx, s.cfg, name, schema); err != nil {
			return nil, err
		}
	}
	if c.db, err = s.openState(ctx, u, dir, schema); err != nil {
		return nil, fmt.Errorf("server: %s: %w", name, err)
	}
	c.schema = schema
	if err := partition.Record(ctx, c.db, n, s.legacyLog(ctx, u, dir, schema)); err != nil {
		return nil, fmt.Errorf("server: %s: %w", name, err)
	}
	if c.keys, err = idempotency.NewSQLStore(ctx, c.db, "idempotency_keys", nil); err != nil {
		return nil, err
	}
	for k := range n {
		part := &contextStore{name: partition.Log(k), partition: k}
		c.parts = append(c.parts, part)
		if u != "" {
			if err := ProvisionSchema(ctx, s.cfg, name, PartitionSchemaOf(s.cfg.PostgresSchema, k)); err != nil {
				return nil, err
			}
		}
		if err := s.openLog(ctx, part, u, PartitionDir(s.cfg.DataDir, k), PartitionSchemaOf(s.cfg.PostgresSchema, k)); err != nil {
			return nil, fmt.Errorf("server: %s: %w", part.name, err)
		}
	}
	return c, nil
}

// PartitionDir is payments' partition k's data directory under dataDir
// (embedded).
func PartitionDir(dataDir string, k int) string {
	return filepath.Join(ContextDir(dataDir, partition.Context), partition.Name(k))
}

// PartitionSchemaOf is payments' partition k's schema under prefix.
func PartitionSchemaOf(prefix string, k int) string {
	return PostgresSchemaOf(prefix, partition.Context) + "_" + partition.Name(k)
}

// legacyLog reports whether a partitioned context's store still holds
// the one event log it had before it was partitioned (the directory's
// events.db, the schema's events table).
func (s *Server) legacyLog(ctx context.Context, u, dir, schema string) func() (bool, error) {
	return func() (bool, error) {
		if u == "" {
			_, err := os.Stat(filepath.Join(dir, "events.db"))
			if errors.Is(err, fs.ErrNotExist) {
				return false, nil
			}
			return err == nil, err
		}
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			return false, err
		}
		defer conn.Close(ctx)
		var found bool
		err = conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, pgx.Identifier{schema, "events"}.Sanitize()).Scan(&found)
		return found, err
	}
}

// openLog opens an event log and its state database into c: the
// directory dir's events.db and readmodels.db, or (u set) the schema's
// tables at URL u.
func (s *Server) openLog(ctx context.Context, c *contextStore, u, dir, schema string) (err error) {
	if u == "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		if c.store, err = sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlite.Options{Observer: s.metrics.Store("sqlite")}); err != nil {
			return err
		}
	} else {
		c.schema = schema
		// Embedded on PostgreSQL, the contexts share the server's
		// connections: smaller pools each.
		conns := int32(8)
		if s.cfg.Only == "" {
			conns = 3
		}
		if c.store, err = postgres.Open(ctx, u, postgres.Options{Schema: schema, MaxConns: conns, Observer: s.metrics.Store("postgres"), Logger: s.log}); err != nil {
			return err
		}
	}
	if c.db, err = s.openState(ctx, u, dir, schema); err != nil {
		return err
	}
	// On PostgreSQL, the instances of a service share the saga index.
	sopts := saga.Options{Logger: s.log, Observer: s.metrics.Sagas(), SharedIndex: u != ""}
	if s.cfg.Only != "" {
		// Other instances' engines take over a dead one's sagas.
		sopts.Sweep = 10 * time.Second
	}
	c.engine = saga.NewEngine(c.store, c.db, sopts)
	return nil
}

// openState opens a state database (read models, outbox, inbox,
// checkpoints): dir's readmodels.db, or (u set) schema at URL u.
func (s *Server) openState(ctx context.Context, u, dir, schema string) (*sql.DB, error) {
	if u == "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		db, err := sql.Open("sqlite", sqlite.DSN(filepath.Join(dir, "readmodels.db"), false))
		if err != nil {
			return nil, err
		}
		// SQLite has one writer at a time; more connections would only
		// contend for its lock in the busy handler's sleeps, which starve
		// the unlucky (a projection falling minutes behind). One
		// connection queues everyone in order instead.
		db.SetMaxOpenConns(1)
		return db, nil
	}
	db, err := postgres.OpenDB(u, schema)
	if err != nil {
		return nil, err
	}
	conns := 32
	if s.cfg.Only == "" {
		conns = 6
	}
	db.SetMaxOpenConns(conns)
	return db, nil
}

// ProvisionSchema creates schema, another schema of context name's (a
// partition's), unless it exists: owned by the context's role, created
// by the shared URL's user (a role may not create schemas in the
// database), or at the context's own URL when it has one.
func ProvisionSchema(ctx context.Context, cfg Config, name, schema string) error {
	if u := cfg.PostgresURLs[name]; u != "" {
		return postgres.CreateSchema(ctx, u, schema)
	}
	err := provision(ctx, cfg.PostgresURL, PostgresRoleOf(name), schema)
	if errors.Is(err, errNoRoles) {
		return postgres.CreateSchema(ctx, cfg.PostgresURL, schema)
	}
	if err != nil {
		return fmt.Errorf("server: %s: %w", name, err)
	}
	return nil
}

// ContextURL is the PostgreSQL URL context name connects with under cfg:
// its own (AGORA_POSTGRES_URL_<CONTEXT>), or the shared one working as the
// context's role, which it provisions with the context's schema. A
// shared URL whose user may not create roles is answered as it is, with a
// warning to log: each context still keeps its own schema.
func ContextURL(ctx context.Context, cfg Config, name string, log *slog.Logger) (string, error) {
	if u := cfg.PostgresURLs[name]; u != "" {
		return u, nil
	}
	schema := PostgresSchemaOf(cfg.PostgresSchema, name)
	role := PostgresRoleOf(name)
	err := provision(ctx, cfg.PostgresURL, role, schema)
	if errors.Is(err, errNoRoles) {
		// A user who may not create roles still gets a schema per
		// context; only the database's enforcement is missing.
		log.Warn("postgres: the shared URL's user may not create roles: each context keeps its own schema, but the database does not keep them apart; "+
			"give the user CREATEROLE, or each context its own URL (AGORA_POSTGRES_URL_<CONTEXT>)", "context", name, "schema", schema)
		return cfg.PostgresURL, nil
	}
	if err != nil {
		return "", fmt.Errorf("server: %s: %w", name, err)
	}
	return WithRole(cfg.PostgresURL, role), nil
}

// errNoRoles is provision's answer to a user who may not create or grant
// roles.
var errNoRoles = errors.New("postgres: not allowed to create roles")

// provision creates role (NOLOGIN) and schema, owned by role, unless they
// exist, and lets the connecting user work as role. Concurrent
// provisioners may race to create either: losing the race is fine.
func provision(ctx context.Context, u, role, schema string) error {
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(ctx)
	r, sc := pgx.Identifier{role}.Sanitize(), pgx.Identifier{schema}.Sanitize()
	for _, q := range []string{
		`SELECT pg_advisory_lock(7262052)`, // roles are the cluster's: one provisioner at a time
		`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ` + quote(role) + `) THEN CREATE ROLE ` + r + ` NOLOGIN; END IF; END $$`,
		`DO $$ BEGIN IF NOT pg_has_role(current_user, ` + quote(role) + `, 'MEMBER') THEN EXECUTE 'GRANT ` + r + ` TO ' || quote_ident(current_user); END IF; END $$`,
		`CREATE SCHEMA IF NOT EXISTS ` + sc + ` AUTHORIZATION ` + r,
		`SELECT pg_advisory_unlock(7262052)`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
				return fmt.Errorf("%w: %w", errNoRoles, err)
			}
			return fmt.Errorf("postgres: provision %s and schema %s: %w", role, schema, err)
		}
	}
	return nil
}

// quote is s as an SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// WithRole returns PostgreSQL URL u whose sessions work as role (SET ROLE
// through the startup options).
func WithRole(u, role string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "options=" + strings.ReplaceAll(url.QueryEscape("-c role="+role), "+", "%20")
}

// ContextStore is a context's event log as tests and tools see it.
type ContextStore struct {
	// Name is the context's.
	Name string
	// Store is its event log, DB its state.
	Store eventstore.Store
	DB    *sql.DB
}

// logs are the event logs of the contexts this process runs, in the
// platform's order, a partitioned context's partitions in theirs.
func (s *Server) logs() []*contextStore {
	var out []*contextStore
	for _, c := range s.stores {
		out = append(out, c.logs()...)
	}
	return out
}

// Stores returns the event logs of the contexts this process runs, in
// the platform's order; a partitioned context's are its partitions'
// (named "payments-p0" and on), each with its own state database.
func (s *Server) Stores() []ContextStore {
	logs := s.logs()
	out := make([]ContextStore, 0, len(logs))
	for _, c := range logs {
		out = append(out, ContextStore{Name: c.name, Store: c.store, DB: c.db})
	}
	return out
}

// StoreOf returns the event log named name — a context's, or a
// partition's ("payments-p2") — (nil if this process does not run it).
func (s *Server) StoreOf(name string) eventstore.Store {
	for _, c := range s.logs() {
		if c.name == name {
			return c.store
		}
	}
	return nil
}

// DBOf returns context name's state database (nil if this process does
// not run it).
func (s *Server) DBOf(name string) *sql.DB {
	if c := s.storeOf(name); c != nil {
		return c.db
	}
	return nil
}

func (s *Server) storeOf(name string) *contextStore {
	for _, c := range s.stores {
		if c.name == name {
			return c
		}
	}
	return nil
}

// Heads returns the sum of the logs' heads: it moves when any context
// appends (tests check that refused requests write nothing).
func (s *Server) Heads(ctx context.Context) (uint64, error) {
	var sum uint64
	for _, c := range s.logs() {
		h, err := c.store.Head(ctx)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", c.name, err)
		}
		sum += h
	}
	return sum, nil
}
