package reshard

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/postgres"
	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/internal/split"
)

// RunPostgres reshards payments on PostgreSQL (cfg's URL, schema prefix
// and context URLs) to `to` partitions, as Run does a data directory: the
// new partitions are built in staging schemas (<prefix>_payments_new_p<k>)
// and verified; one transaction then renames the old partitions' schemas
// aside (or the one log's events table, events_pre_partitions), renames
// the staging schemas into place, resets the accounts read model and
// records the new count; the old schemas are dropped after it commits. A
// failure before that commit drops the staging schemas and leaves the
// old layout as it was. Run it with no payments process serving.
func RunPostgres(ctx context.Context, cfg server.Config, to int, progress split.Progress) (rep Report, err error) {
	if progress == nil {
		progress = func(int, int) {}
	}
	if err := partition.Check(to); err != nil {
		return rep, err
	}
	rep = Report{To: to, Events: map[string]int{}, Totals: map[string]int64{}}
	name := partition.Context
	stateSchema := server.PostgresSchemaOf(cfg.PostgresSchema, name)
	u, err := server.ContextURL(ctx, cfg, name, slog.Default())
	if err != nil {
		return rep, err
	}
	admin, err := pgx.Connect(ctx, cfg.PostgresURL)
	if err != nil {
		return rep, fmt.Errorf("reshard: connect: %w", err)
	}
	defer admin.Close(ctx)
	state, err := postgres.OpenDB(u, stateSchema)
	if err != nil {
		return rep, fmt.Errorf("reshard: %w", err)
	}
	defer state.Close()
	if rep.From, err = partition.Recorded(ctx, state); err != nil {
		return rep, err
	}
	if rep.From == to {
		return rep, fmt.Errorf("%w (%d)", ErrSame, to)
	}
	staged := func(k int) string { return stateSchema + "_new_" + partition.Name(k) }
	for k := range to {
		var exists bool
		if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, staged(k)).Scan(&exists); err != nil {
			return rep, err
		}
		if exists {
			return rep, fmt.Errorf("reshard: schema %s is left from a reshard that did not finish: drop it, then run again", staged(k))
		}
	}

	// The old layout's logs and what their relays had published.
	var sources []source
	defer func() {
		for _, s := range sources {
			s.store.Close()
		}
	}()
	add := func(log, schema string) error {
		st, err := postgres.Open(ctx, u, postgres.Options{Schema: schema, MaxConns: 2})
		if err != nil {
			return fmt.Errorf("reshard: %s: %w", log, err)
		}
		sources = append(sources, source{name: log, store: st})
		db, err := postgres.OpenDB(u, schema)
		if err != nil {
			return err
		}
		defer db.Close()
		sources[len(sources)-1].relayed, err = relayCheckpoint(ctx, db, log, false, 0)
		return err
	}
	if rep.From == 0 {
		var found bool
		if err := admin.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, pgx.Identifier{stateSchema, "events"}.Sanitize()).Scan(&found); err != nil {
			return rep, err
		}
		if !found {
			return rep, fmt.Errorf("reshard: schema %s holds no payments log and records no partitions (has agora served it?)", stateSchema)
		}
		if err := add(name, stateSchema); err != nil {
			return rep, err
		}
	}
	for k := range rep.From {
		if err := add(partition.Log(k), server.PartitionSchemaOf(cfg.PostgresSchema, k)); err != nil {
			return rep, err
		}
	}
	before, recs, err := survey(ctx, sources, &rep)
	if err != nil {
		return rep, err
	}

	// The new partitions, in staging schemas; dropped on failure.
	defer func() {
		if err != nil {
			for k := range to {
				admin.Exec(context.WithoutCancel(ctx), `DROP SCHEMA IF EXISTS `+pgx.Identifier{staged(k)}.Sanitize()+` CASCADE`) //nolint:errcheck // best effort: the old layout stands
			}
		}
	}()
	logs := map[string]eventstore.Store{}
	var opened []*postgres.Store
	defer func() {
		for _, s := range opened {
			s.Close()
		}
	}()
	for k := range to {
		if err := server.ProvisionSchema(ctx, cfg, name, staged(k)); err != nil {
			return rep, err
		}
		st, err := postgres.Open(ctx, u, postgres.Options{Schema: staged(k), MaxConns: 2})
		if err != nil {
			return rep, fmt.Errorf("reshard: %w", err)
		}
		opened = append(opened, st)
		logs[partition.Log(k)] = st
	}
	owner := ownerOf(to)
	times, err := split.AppendInOrder(ctx, logs, recs, owner, rep.Events, progress)
	if err != nil {
		return rep, fmt.Errorf("reshard: %w", err)
	}
	done := published(recs, rep.Unrelayed, owner)
	for k := range to {
		log := partition.Log(k)
		if err := split.SetTimesPostgres(ctx, admin, staged(k), times[log]); err != nil {
			return rep, fmt.Errorf("reshard: %s: %w", log, err)
		}
		db, err := postgres.OpenDB(u, staged(k))
		if err != nil {
			return rep, err
		}
		_, err = relayCheckpoint(ctx, db, log, true, done[log])
		db.Close()
		if err != nil {
			return rep, fmt.Errorf("reshard: %s: %w", log, err)
		}
	}
	newStores := make([]eventstore.Store, len(opened))
	for i, s := range opened {
		newStores[i] = s
	}
	after, err := balances(ctx, app.NewService(newStores...), newStores)
	if err != nil {
		return rep, fmt.Errorf("reshard: the balances after: %w", err)
	}
	if err := compare(before, after, &rep); err != nil {
		return rep, err
	}
	for _, s := range opened {
		s.Close()
	}
	for _, s := range sources {
		s.store.Close()
	}
	opened, sources = nil, nil

	// The swap: one transaction.
	retiredOf := func(k int) string { return stateSchema + "_old_" + partition.Name(k) }
	err = pgx.BeginFunc(ctx, admin, func(tx pgx.Tx) error {
		var stmts []string
		if rep.From == 0 {
			stmts = append(stmts, `ALTER TABLE `+pgx.Identifier{stateSchema, "events"}.Sanitize()+` RENAME TO events_pre_partitions`)
		}
		for k := range rep.From {
			stmts = append(stmts, `DROP SCHEMA IF EXISTS `+pgx.Identifier{retiredOf(k)}.Sanitize()+` CASCADE`,
				`ALTER SCHEMA `+pgx.Identifier{server.PartitionSchemaOf(cfg.PostgresSchema, k)}.Sanitize()+` RENAME TO `+pgx.Identifier{retiredOf(k)}.Sanitize())
		}
		for k := range to {
			stmts = append(stmts, `ALTER SCHEMA `+pgx.Identifier{staged(k)}.Sanitize()+` RENAME TO `+pgx.Identifier{server.PartitionSchemaOf(cfg.PostgresSchema, k)}.Sanitize())
		}
		for _, t := range []struct{ table, q string }{
			{"projection_checkpoints", `DELETE FROM ` + pgx.Identifier{stateSchema, "projection_checkpoints"}.Sanitize() + ` WHERE name LIKE 'payments.accounts%'`},
			{"payments_accounts", `DELETE FROM ` + pgx.Identifier{stateSchema, "payments_accounts"}.Sanitize()},
		} {
			var found bool
			if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, pgx.Identifier{stateSchema, t.table}.Sanitize()).Scan(&found); err != nil {
				return err
			}
			if found {
				stmts = append(stmts, t.q)
			}
		}
		// The count, last (Recorded made its table).
		stmts = append(stmts, `INSERT INTO `+pgx.Identifier{stateSchema, "payments_partitioning"}.Sanitize()+` (id, partitions) VALUES (1, `+
			fmt.Sprint(to)+`) ON CONFLICT (id) DO UPDATE SET partitions = excluded.partitions`)
		for _, q := range stmts {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("reshard: swap: %w", err)
	}
	for k := range rep.From {
		if _, err := admin.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{retiredOf(k)}.Sanitize()+` CASCADE`); err != nil {
			return rep, fmt.Errorf("reshard: drop the old partition %d: %w", k, err)
		}
	}
	return rep, nil
}
