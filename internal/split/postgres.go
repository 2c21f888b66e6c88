package split

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/postgres"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/server"
)

// eventStoreTables are the event store's own tables in a schema.
var eventStoreTables = []string{"events", "positions", "snapshots", "eventstore_migrations"}

// RunPostgres splits the single schema old of the database at url (the
// layout of releases before per-context stores, whose default schema was
// "public") into a schema per context under prefix (see
// server.PostgresSchemaOf), as Run does a data directory. Each context's
// schema is provisioned as the server would (its role owns it, or the
// context's own URL in urls is used) and the copied tables are given to
// that role. The old schema's events table is renamed events_pre_split
// last, the commit point; a failure before it drops the schemas this run
// made, leaving the old layout as it was. Payments' streams are spread
// over parts partitions (see package partition).
func RunPostgres(ctx context.Context, url, old, prefix string, parts int, urls map[string]string, progress Progress) (rep Report, err error) {
	if err := partition.Check(parts); err != nil {
		return rep, err
	}
	if progress == nil {
		progress = func(int, int) {}
	}
	contexts := make([]string, 0, len(server.Modules))
	for _, d := range server.Modules {
		contexts = append(contexts, d.Name)
	}
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		return rep, fmt.Errorf("split: connect: %w", err)
	}
	defer admin.Close(ctx)
	has := func(schema, table string) (bool, error) {
		var ok bool
		err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2)`, schema, table).Scan(&ok)
		return ok, err
	}
	if ok, err := has(old, "events"); err != nil {
		return rep, err
	} else if !ok {
		for _, c := range contexts {
			if done, _ := has(server.PostgresSchemaOf(prefix, c), "events"); done {
				return rep, ErrAlreadySplit
			}
		}
		return rep, fmt.Errorf("split: schema %s holds no event store to split", old)
	}
	var made []string // the schemas this run creates, dropped on failure
	for _, c := range append(slices.Clone(contexts), "platform") {
		schema := server.PostgresSchemaOf(prefix, c)
		if schema == old {
			return rep, fmt.Errorf("split: the old schema %s is named as context %s's: choose another prefix", old, c)
		}
		if ok, err := has(schema, "events"); err != nil {
			return rep, err
		} else if ok {
			return rep, fmt.Errorf("split: %s holds both layouts (%s.events and %s.events): refusing to guess which is current", url, old, schema)
		}
		var exists bool
		if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
			return rep, err
		}
		if !exists {
			made = append(made, schema)
		}
	}
	defer func() {
		if err != nil {
			for _, schema := range made {
				admin.Exec(context.WithoutCancel(ctx), `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`) //nolint:errcheck // best effort: the old layout stands
			}
		}
	}()

	src, err := postgres.Open(ctx, url, postgres.Options{Schema: old, MaxConns: 2})
	if err != nil {
		return rep, fmt.Errorf("split: open the old store: %w", err)
	}
	defer src.Close()
	recs, err := readOld(ctx, src)
	if err != nil {
		return rep, err
	}
	// The old state's tables, each with where it goes, checked before
	// anything is written.
	projected := map[string]bool{"projection_checkpoints": true}
	rep = Report{Events: map[string]int{}, Tables: map[string][]string{}}
	if rows, err := admin.Query(ctx, `SELECT name FROM `+pgx.Identifier{old, "projection_checkpoints"}.Sanitize()); err == nil {
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return rep, err
		}
		for _, n := range names {
			projected[strings.ReplaceAll(n, ".", "_")] = true
			rep.Rebuilt = append(rep.Rebuilt, n)
		}
	}
	rows, err := admin.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name`, old)
	if err != nil {
		return rep, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return rep, err
	}
	dests := map[string][]string{}
	for _, t := range tables {
		if slices.Contains(eventStoreTables, t) {
			continue
		}
		ts, err := tableTargets(t, projected, contexts)
		if err != nil {
			return rep, err
		}
		for _, c := range ts {
			dests[c] = append(dests[c], t)
		}
	}

	// The logs, as the server opens them.
	cfg := server.Config{PostgresURL: url, PostgresSchema: prefix, PostgresURLs: urls}
	logs := map[string]eventstore.Store{}
	urlOf := map[string]string{}
	defer func() {
		for _, l := range logs {
			l.(*postgres.Store).Close()
		}
	}()
	// Payments' streams go to its partitions' logs (schemas
	// <prefix>_payments_p<k>, owned by its role), each by its key.
	owner := func(stream string) string {
		c := Owner(stream)
		if c == partition.Context {
			return partition.Log(partition.Of(partition.KeyOf(stream), parts))
		}
		return c
	}
	schemaOf := map[string]string{}
	for _, c := range contexts {
		u, err := server.ContextURL(ctx, cfg, c, slog.Default())
		if err != nil {
			return rep, err
		}
		urlOf[c] = u
		names := map[string]string{c: server.PostgresSchemaOf(prefix, c)}
		if c == partition.Context {
			names = map[string]string{}
			for k := range parts {
				names[partition.Log(k)] = server.PartitionSchemaOf(prefix, k)
			}
		}
		for name, schema := range names {
			if c == partition.Context {
				var exists bool
				if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
					return rep, err
				}
				if !exists {
					made = append(made, schema)
				}
				if err := server.ProvisionSchema(ctx, cfg, c, schema); err != nil {
					return rep, fmt.Errorf("split: %s: %w", name, err)
				}
			}
			st, err := postgres.Open(ctx, u, postgres.Options{Schema: schema, MaxConns: 2})
			if err != nil {
				return rep, fmt.Errorf("split: %s: %w", name, err)
			}
			logs[name], schemaOf[name] = st, schema
		}
	}
	times, err := AppendInOrder(ctx, logs, recs, owner, rep.Events, progress)
	if err != nil {
		return rep, err
	}
	for name, schema := range schemaOf {
		if err := SetTimesPostgres(ctx, admin, schema, times[name]); err != nil {
			return rep, fmt.Errorf("split: %s: recording times: %w", name, err)
		}
	}
	if err := recordPartitions(ctx, urlOf[partition.Context], server.PostgresSchemaOf(prefix, partition.Context), parts); err != nil {
		return rep, err
	}
	// The state, copied by the admin and given to each context's owner.
	if err := postgres.CreateSchema(ctx, url, server.PostgresSchemaOf(prefix, "platform")); err != nil {
		return rep, err
	}
	for _, c := range append(slices.Clone(contexts), "platform") {
		schema := server.PostgresSchemaOf(prefix, c)
		var owner string
		if err := admin.QueryRow(ctx, `SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&owner); err != nil {
			return rep, err
		}
		err := pgx.BeginFunc(ctx, admin, func(tx pgx.Tx) error {
			for _, t := range dests[c] {
				from, to := pgx.Identifier{old, t}.Sanitize(), pgx.Identifier{schema, t}.Sanitize()
				q := `INSERT INTO ` + to + ` OVERRIDING SYSTEM VALUE SELECT * FROM ` + from
				if t == "messaging_checkpoints" {
					q += ` WHERE name = '` + c + `' OR name LIKE '` + c + `-%'`
				}
				for _, stmt := range []string{`CREATE TABLE ` + to + ` (LIKE ` + from + ` INCLUDING ALL)`, q,
					`ALTER TABLE ` + to + ` OWNER TO ` + pgx.Identifier{owner}.Sanitize()} {
					if _, err := tx.Exec(ctx, stmt); err != nil {
						return fmt.Errorf("%s: %w", t, err)
					}
				}
				// An identity column's sequence goes on from the rows'.
				rows, err := tx.Query(ctx, `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND is_identity = 'YES'`, schema, t)
				if err != nil {
					return err
				}
				idents, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					return err
				}
				for _, col := range idents {
					qc := pgx.Identifier{col}.Sanitize()
					if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), GREATEST((SELECT MAX(`+qc+`) FROM `+to+`), 1))`, to, col); err != nil {
						return fmt.Errorf("%s.%s: %w", t, col, err)
					}
				}
				rep.Tables[c] = append(rep.Tables[c], t)
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("split: %s's state: %w", c, err)
		}
	}
	for _, l := range logs {
		l.(*postgres.Store).Close()
	}
	logs = nil
	src.Close()
	// The commit point.
	if _, err := admin.Exec(ctx, `ALTER TABLE `+pgx.Identifier{old, "events"}.Sanitize()+` RENAME TO events_pre_split`); err != nil {
		return rep, fmt.Errorf("split: %w", err)
	}
	return rep, nil
}

// readOld reads every record of the old log, checking each has an owner.
func readOld(ctx context.Context, src eventstore.Store) ([]eventstore.Record, error) {
	head, err := src.Head(ctx)
	if err != nil {
		return nil, err
	}
	var recs []eventstore.Record
	for after := uint64(0); after < head; {
		batch, err := src.ReadAll(ctx, after, 4096)
		if err != nil {
			return nil, err
		}
		if len(batch) == 0 {
			break
		}
		for _, r := range batch {
			if Owner(r.StreamID) == "" {
				return nil, fmt.Errorf("split: stream %s (event %d, %s) belongs to no context this release knows", r.StreamID, r.Position, r.Type)
			}
		}
		recs = append(recs, batch...)
		after = batch[len(batch)-1].Position
	}
	return recs, nil
}

// SetTimesPostgres gives the events of schema's log their old recording times.
func SetTimesPostgres(ctx context.Context, conn *pgx.Conn, schema string, ws []When) error {
	if len(ws) == 0 {
		return nil
	}
	var col string
	if err := conn.QueryRow(ctx, `SELECT data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'events' AND column_name = 'recorded_at'`, schema).Scan(&col); err != nil {
		return err
	}
	q := `UPDATE ` + pgx.Identifier{schema, "events"}.Sanitize() + ` SET recorded_at = `
	if strings.HasPrefix(col, "timestamp") {
		q += `to_timestamp($1::float8 / 1e9)`
	} else {
		q += `$1`
	}
	q += ` WHERE position = $2`
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, w := range ws {
			if _, err := tx.Exec(ctx, q, w.At, int64(w.Pos)); err != nil {
				return err
			}
		}
		return nil
	})
}

// recordPartitions records payments' partition count in its schema.
func recordPartitions(ctx context.Context, u, schema string, parts int) error {
	db, err := postgres.OpenDB(u, schema)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := partition.SetRecorded(ctx, db, parts); err != nil {
		return fmt.Errorf("split: %w", err)
	}
	return nil
}
