package server

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/agora-commerce/agora/eventstore/postgres"
	"github.com/agora-commerce/agora/eventstore/sqlite"
	"github.com/agora-commerce/agora/internal/audit"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/messaging/natsbus"
	"github.com/agora-commerce/agora/saga"
)

// sagaDeadlines are the deadlines of every module's saga types under cfg,
// whichever modules this process builds.
func sagaDeadlines(cfg Config) map[string]time.Duration {
	s := module.Settings{CheckoutMode: cfg.CheckoutMode, CheckoutTimeout: cmp.Or(cfg.CheckoutTimeout, 30*time.Second)}
	out := map[string]time.Duration{}
	for _, d := range Modules {
		if d.SagaDeadlines != nil {
			maps.Copy(out, d.SagaDeadlines(s))
		}
	}
	return out
}

// Audit checks the invariants of this process's stores (package audit):
// the log, the read models, the saga index, and its relays and consumers.
// A distributed process holds only its context's stores, and the
// gateway's none: there it answers errNoStores.
func (s *Server) Audit(ctx context.Context, opts audit.Options) (audit.Report, error) {
	if s.cfg.Only != "" {
		return audit.Report{}, errNoStores
	}
	var src audit.Sources
	var sagas multiSagas
	for _, c := range s.stores {
		if c.name == paymentsName {
			src.Accounts = audit.ReadModels(c.db).Accounts
		}
	}
	for _, c := range s.logs() {
		src.Logs = append(src.Logs, c.store)
		if len(c.engine.Types()) > 0 {
			sagas = append(sagas, saga.ReadIndex(c.db))
		}
	}
	src.Sagas = sagas
	src.SagaDeadlines = sagaDeadlines(s.cfg)
	for _, r := range s.relays {
		src.Relays = append(src.Relays, audit.Relay{Name: r.name, Head: s.relayHead(r.name),
			Position: func(context.Context) (uint64, error) { return r.Position(), nil }})
	}
	for _, c := range s.consumers {
		if c.Ephemeral {
			continue // its name is the broker's, and it holds no backlog worth keeping
		}
		src.Consumers = append(src.Consumers, audit.Consumer{Name: c.Name, Backlog: func(ctx context.Context) (uint64, error) {
			st, err := s.bus.ConsumerStats(ctx, c.Consumer)
			return st.Pending + st.AckPending, err
		}})
	}
	return audit.Run(ctx, src, opts)
}

// errNoStores reports an audit asked of a distributed process.
var errNoStores = errors.New("server: a distributed process holds only part of the platform's stores: audit the embedded platform, or the stores with agora audit")

// Audit checks the invariants of the stores cfg names, without a server
// and alongside one that serves them (agora audit): the event log and
// the read models are opened read-only — the SQLite files under
// cfg.DataDir (WAL lets a reader in beside the serving process, and no
// lock is taken), or PostgreSQL (cfg.PostgresURL, cfg.PostgresSchema) —
// and the relays' checkpoints read from the read models. Consumers are
// checked on an external NATS server (cfg.NATSURL); the embedded one
// belongs to the serving process, so without one they are skipped.
func Audit(ctx context.Context, cfg Config, opts audit.Options) (audit.Report, error) {
	var (
		src   audit.Sources
		sagas multiSagas
		close []func() error
	)
	defer func() {
		for _, c := range slices.Backward(close) {
			c()
		}
	}()
	addLog := func(log auditLog, db *sql.DB) error {
		close = append(close, log.Close, db.Close)
		src.Logs = append(src.Logs, log)
		if hasTable(ctx, db, "saga_instances") {
			sagas = append(sagas, saga.ReadIndex(db))
		}
		relays, err := storedRelays(ctx, db, log)
		if err != nil {
			return err
		}
		src.Relays = append(src.Relays, relays...)
		return nil
	}
	for _, d := range Modules {
		if d.Partitioned {
			db, parts, err := openPartitionsForAudit(ctx, cfg, d.Name)
			if err != nil {
				return audit.Report{}, err
			}
			if db == nil {
				continue
			}
			close = append(close, db.Close)
			src.Accounts = audit.ReadModels(db).Accounts
			for _, p := range parts {
				if err := addLog(p.log, p.db); err != nil {
					return audit.Report{}, err
				}
			}
			continue
		}
		log, db, err := openForAudit(ctx, cfg, d.Name, ContextDir(cfg.DataDir, d.Name), PostgresSchemaOf(cfg.PostgresSchema, d.Name))
		if err != nil {
			return audit.Report{}, err
		}
		if log == nil {
			continue // a context that keeps nothing (the BFF's popularity aside)
		}
		if err := addLog(log, db); err != nil {
			return audit.Report{}, err
		}
	}
	src.Sagas = sagas
	if len(src.Logs) == 0 {
		return audit.Report{}, fmt.Errorf("server: audit: %s holds no event store (no <context>/events.db)", cfg.DataDir)
	}
	src.SagaDeadlines = sagaDeadlines(cfg)
	src.Unchecked = map[string]string{}
	if cfg.NATSURL == "" {
		src.Unchecked[audit.CheckConsumers] = "the embedded bus belongs to the serving process: audit with --nats on an external NATS server, or ask GET /api/v1/ops/audit"
	} else {
		bus, err := natsbus.Open(ctx, natsbus.Options{URL: cfg.NATSURL, Namespace: cfg.NATSNamespace, Logger: cfg.Logger})
		if err != nil {
			return audit.Report{}, fmt.Errorf("server: audit: %w", err)
		}
		close = append(close, bus.Close)
		if src.Consumers, err = busConsumers(ctx, bus); err != nil {
			return audit.Report{}, err
		}
	}
	return audit.Run(ctx, src, opts)
}

// storedRelays are the relays whose checkpoints the read models keep:
// those of the event log ("events", or "events-<context>" when
// distributed), whose head is the log's, and the outboxes', each relay
// named for its module's outbox table "<name>_outbox" (the catalog's).
func storedRelays(ctx context.Context, db *sql.DB, log audit.Log) ([]audit.Relay, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM messaging_checkpoints ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("server: audit: relay checkpoints: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("server: audit: relay checkpoints: %w", err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("server: audit: relay checkpoints: %w", err)
	}
	var out []audit.Relay
	for _, name := range names {
		r := audit.Relay{Name: name, Head: log.Head, Position: func(ctx context.Context) (uint64, error) {
			var pos int64
			err := db.QueryRowContext(ctx, `SELECT position FROM messaging_checkpoints WHERE name = $1`, name).Scan(&pos)
			return uint64(pos), err
		}}
		if name != "events" && !strings.HasPrefix(name, "events-") {
			// Only a name the platform gave its checkpoint reaches the query.
			table := name + "_outbox"
			r.Head = func(ctx context.Context) (uint64, error) {
				var head sql.NullInt64
				err := db.QueryRowContext(ctx, `SELECT MAX(position) FROM `+table).Scan(&head)
				return uint64(max(head.Int64, 0)), err
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// busConsumers are the durable consumers the broker holds on every
// module's stream.
func busConsumers(ctx context.Context, bus *natsbus.Bus) ([]audit.Consumer, error) {
	streams := map[string]bool{}
	for _, d := range Modules {
		if d.Stream != "" {
			streams[d.Stream] = true
		}
	}
	var out []audit.Consumer
	for _, stream := range slices.Sorted(maps.Keys(streams)) {
		all, err := bus.StreamConsumers(ctx, stream)
		if err != nil {
			return nil, fmt.Errorf("server: audit: %w", err)
		}
		for _, name := range slices.Sorted(maps.Keys(all)) {
			out = append(out, audit.Consumer{Name: name, Backlog: func(ctx context.Context) (uint64, error) {
				now, err := bus.StreamConsumers(ctx, stream)
				st := now[name]
				return st.Pending + st.AckPending, err
			}})
		}
	}
	return out, nil
}

// paymentsName is the payments context's name (its read model is the
// accounts' the audit checks).
const paymentsName = "payments"

// auditLog is a context's event log opened for an audit.
type auditLog interface {
	audit.Log
	Close() error
}

// auditPart is a partition's log and state, opened for an audit.
type auditPart struct {
	log auditLog
	db  *sql.DB
}

// openPartitionsForAudit opens partitioned context name's state database
// and its partitions' logs (as many as the state records), read-only;
// a nil database when the context has none yet.
func openPartitionsForAudit(ctx context.Context, cfg Config, name string) (_ *sql.DB, parts []auditPart, err error) {
	defer func() {
		if err != nil {
			for _, p := range parts {
				p.log.Close()
				p.db.Close()
			}
		}
	}()
	var db *sql.DB
	if cfg.PostgresURL == "" {
		path := filepath.Join(ContextDir(cfg.DataDir, name), "readmodels.db")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, checkLayout(cfg.DataDir)
		}
		if db, err = sql.Open("sqlite", sqlite.DSN(path, true)); err != nil {
			return nil, nil, fmt.Errorf("server: audit %s: %w", name, err)
		}
	} else if db, err = postgres.OpenDB(cmp.Or(cfg.PostgresURLs[name], cfg.PostgresURL), PostgresSchemaOf(cfg.PostgresSchema, name)); err != nil {
		return nil, nil, fmt.Errorf("server: audit %s: %w", name, err)
	}
	n, err := partition.Recorded(ctx, db)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("server: audit %s: %w", name, err)
	}
	for k := range n {
		log, pdb, err := openForAudit(ctx, cfg, name, PartitionDir(cfg.DataDir, k), PartitionSchemaOf(cfg.PostgresSchema, k))
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		if log == nil {
			db.Close()
			return nil, nil, fmt.Errorf("server: audit %s: partition %d of %d has no log", name, k, n)
		}
		parts = append(parts, auditPart{log, pdb})
	}
	return db, parts, nil
}

// openForAudit opens context name's log and database — the directory
// dir's or the schema's — read-only (SQLite: WAL lets a reader in beside
// the serving process) or on PostgreSQL; nil when there is no log yet.
func openForAudit(ctx context.Context, cfg Config, name, dir, schema string) (auditLog, *sql.DB, error) {
	if cfg.PostgresURL == "" {
		if _, err := os.Stat(filepath.Join(dir, "events.db")); errors.Is(err, fs.ErrNotExist) {
			if err := checkLayout(cfg.DataDir); err != nil {
				return nil, nil, err
			}
			return nil, nil, nil
		}
		r, err := sqlite.OpenReader(filepath.Join(dir, "events.db"))
		if err != nil {
			return nil, nil, fmt.Errorf("server: audit %s: %w", name, err)
		}
		path := filepath.Join(dir, "readmodels.db")
		if _, err := os.Stat(path); err != nil {
			r.Close()
			return nil, nil, fmt.Errorf("server: audit %s: no read models at %s: %w", name, path, err)
		}
		db, err := sql.Open("sqlite", sqlite.DSN(path, true))
		if err != nil {
			r.Close()
			return nil, nil, fmt.Errorf("server: audit %s: %w", name, err)
		}
		return r, db, nil
	}
	u := cmp.Or(cfg.PostgresURLs[name], cfg.PostgresURL)
	st, err := postgres.Open(ctx, u, postgres.Options{Schema: schema, MaxConns: 2, Logger: cfg.Logger})
	if err != nil {
		return nil, nil, fmt.Errorf("server: audit %s: %w", name, err)
	}
	db, err := postgres.OpenDB(u, schema)
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("server: audit %s: %w", name, err)
	}
	return st, db, nil
}

// hasTable reports whether db has table name (in its search path).
func hasTable(ctx context.Context, db *sql.DB, name string) bool {
	_, err := db.ExecContext(ctx, `SELECT 1 FROM `+name+` WHERE 1 = 0`)
	return err == nil
}

// multiSagas is the saga indexes of several contexts, as one.
type multiSagas []saga.Index

// EachInstance implements audit.Sagas.
func (m multiSagas) EachInstance(ctx context.Context, fn func(saga.Indexed) error) error {
	for _, ix := range m {
		if err := ix.EachInstance(ctx, fn); err != nil {
			return err
		}
	}
	return nil
}
