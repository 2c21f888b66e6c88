// Package reshard changes how many partitions payments spreads its
// accounts over (agora payments reshard), offline: it reads every
// partition's log (or the one log payments kept before partitions),
// appends each stream with its history, event IDs, versions and
// recording times to its partition of the new count in a staging
// directory, verifies every account's balance and each currency's total
// against the old layout, and only then swaps the new partitions in and
// records the new count. A failure before the swap leaves the old layout
// as it was, usable.
//
// Relays stay exactly-once across the move: the events the old relays
// had published are appended first, and each new partition's relay
// checkpoint is set past them, so only what had not been published yet
// is published after the move.
package reshard

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/sqlite"
	"github.com/agora-commerce/agora/internal/payments"
	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/internal/split"
	"github.com/agora-commerce/agora/messaging"
)

// Report says what a reshard did.
type Report struct {
	// From and To are the partition counts before and after (From 0:
	// the one log from before partitions).
	From, To int `json:"-"`
	// Events counts the events each new partition took.
	Events map[string]int `json:"events"`
	// Accounts is how many accounts were verified, Totals each
	// currency's total balance (minor units), equal before and after.
	Accounts int              `json:"accounts"`
	Totals   map[string]int64 `json:"totals"`
	// Unrelayed counts the events the old relays had not published yet
	// (the new ones publish them).
	Unrelayed int `json:"unrelayed"`
}

// ErrSame is returned when the store already has the asked count.
var ErrSame = errors.New("reshard: payments already has that many partitions")

const (
	eventsFile = "events.db"
	stateFile  = "readmodels.db"
	staging    = ".reshard"
	retired    = ".reshard-old"
)

// source is one log of the old layout.
type source struct {
	name  string // its relay's log name: "payments" or "payments-p2"
	dir   string
	store eventstore.Store
	// relayed is the old relay's checkpoint: what it had published.
	relayed uint64
}

// Run reshards payments in data directory dataDir to `to` partitions,
// reporting progress as events move.
func Run(ctx context.Context, dataDir string, to int, progress split.Progress) (rep Report, err error) {
	if progress == nil {
		progress = func(int, int) {}
	}
	if err := partition.Check(to); err != nil {
		return rep, err
	}
	rep = Report{To: to, Events: map[string]int{}, Totals: map[string]int64{}}
	dir := server.ContextDir(dataDir, partition.Context)
	for _, leftover := range []string{staging, retired} {
		if _, err := os.Stat(filepath.Join(dir, leftover)); err == nil {
			return rep, fmt.Errorf("reshard: %s holds %s from a reshard that did not finish: remove it, then run again", dir, leftover)
		}
	}
	state, err := openState(ctx, filepath.Join(dir, stateFile))
	if err != nil {
		return rep, err
	}
	defer state.Close()
	if rep.From, err = partition.Recorded(ctx, state); err != nil {
		return rep, err
	}
	if rep.From == to {
		return rep, fmt.Errorf("%w (%d)", ErrSame, to)
	}
	sources, err := openSources(ctx, dir, dataDir, rep.From)
	defer func() {
		for _, s := range sources {
			s.store.Close()
		}
	}()
	if err != nil {
		return rep, err
	}
	before, recs, err := survey(ctx, sources, &rep)
	if err != nil {
		return rep, err
	}

	stage := filepath.Join(dir, staging)
	defer func() {
		if err != nil {
			os.RemoveAll(stage)
		}
	}()
	if err := build(ctx, stage, to, recs, rep.Unrelayed, &rep, progress); err != nil {
		return rep, err
	}
	if err := verify(ctx, stage, to, before, &rep); err != nil {
		return rep, err
	}
	for _, s := range sources {
		if err := s.store.Close(); err != nil {
			return rep, fmt.Errorf("reshard: %s: %w", s.name, err)
		}
	}
	sources = nil
	return rep, swap(ctx, dir, dataDir, rep.From, to, state)
}

// openState opens payments' state database (the partition count, the
// accounts read model).
func openState(ctx context.Context, path string) (*sql.DB, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reshard: no payments store at %s (has agora served this data directory?)", filepath.Dir(path))
	}
	db, err := sql.Open("sqlite", sqlite.DSN(path, false))
	if err != nil {
		return nil, fmt.Errorf("reshard: %w", err)
	}
	db.SetMaxOpenConns(1)
	return db, db.PingContext(ctx)
}

// openSources opens the old layout's logs: the from partitions', or
// (from 0) the one log payments kept before partitions. Opening a log
// takes its lock: a serving process holding it refuses the reshard.
func openSources(ctx context.Context, dir, dataDir string, from int) ([]source, error) {
	var out []source
	add := func(name, d string) error {
		path := filepath.Join(d, eventsFile)
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("reshard: %s: %w", name, err)
		}
		st, err := sqlite.Open(ctx, path, sqlite.Options{})
		if err != nil {
			return fmt.Errorf("reshard: %s (is agora still serving it? reshard runs offline): %w", name, err)
		}
		out = append(out, source{name: name, dir: d, store: st})
		db, err := sql.Open("sqlite", sqlite.DSN(filepath.Join(d, stateFile), false))
		if err != nil {
			return err
		}
		defer db.Close()
		out[len(out)-1].relayed, err = relayCheckpoint(ctx, db, name, false, 0)
		return err
	}
	if from == 0 {
		return out, add(partition.Context, dir)
	}
	for k := range from {
		if err := add(partition.Log(k), server.PartitionDir(dataDir, k)); err != nil {
			return out, err
		}
	}
	return out, nil
}

// readAll reads every old log, the events its relay had published first
// and then those it had not (each part in recording order: a stream
// lives in one log, whose relay publishes in order, so each stream's
// events stay in version order), and says how many had not.
func readAll(ctx context.Context, sources []source) ([]eventstore.Record, int, error) {
	var done, pending []eventstore.Record
	for _, s := range sources {
		for after := uint64(0); ; {
			batch, err := s.store.ReadAll(ctx, after, 5000)
			if err != nil {
				return nil, 0, fmt.Errorf("reshard: read %s: %w", s.name, err)
			}
			if len(batch) == 0 {
				break
			}
			for _, r := range batch {
				if r.Position <= s.relayed {
					done = append(done, r)
				} else {
					pending = append(pending, r)
				}
			}
			after = batch[len(batch)-1].Position
		}
	}
	byTime := func(a, b eventstore.Record) int { return a.RecordedAt.Compare(b.RecordedAt) }
	slices.SortStableFunc(done, byTime)
	slices.SortStableFunc(pending, byTime)
	return append(done, pending...), len(pending), nil
}

// survey folds the old layout's accounts (what the reshard must keep)
// and reads its events in the order they move (readAll), counting in rep
// those the old relays had not published.
func survey(ctx context.Context, sources []source, rep *Report) (map[string]balance, []eventstore.Record, error) {
	stores := make([]eventstore.Store, len(sources))
	for i, s := range sources {
		stores[i] = s.store
	}
	before, err := balances(ctx, app.NewService(stores...), stores)
	if err != nil {
		return nil, nil, fmt.Errorf("reshard: the balances before: %w", err)
	}
	recs, unrelayed, err := readAll(ctx, sources)
	if err != nil {
		return nil, nil, err
	}
	rep.Unrelayed = unrelayed
	return before, recs, nil
}

// ownerOf names the new log of a stream, of to partitions.
func ownerOf(to int) func(stream string) string {
	return func(stream string) string { return partition.Log(partition.Of(partition.KeyOf(stream), to)) }
}

// published is, by new log, how many of the moved events the old relays
// had published: the first len(recs)-unrelayed, appended first, so each
// new relay's checkpoint is that count.
func published(recs []eventstore.Record, unrelayed int, owner func(string) string) map[string]uint64 {
	out := map[string]uint64{}
	for _, r := range recs[:len(recs)-unrelayed] {
		out[owner(r.StreamID)]++
	}
	return out
}

// build writes the new partitions under stage: each record appended to
// its new partition's log, the old recording times restored, and each
// relay's checkpoint past the records the old relays had published (all
// but the last unrelayed).
func build(ctx context.Context, stage string, to int, recs []eventstore.Record, unrelayed int, rep *Report, progress split.Progress) error {
	logs := map[string]eventstore.Store{}
	var opened []*sqlite.Store
	defer func() {
		for _, s := range opened {
			s.Close()
		}
	}()
	for k := range to {
		d := filepath.Join(stage, partition.Name(k))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("reshard: %w", err)
		}
		st, err := sqlite.Open(ctx, filepath.Join(d, eventsFile), sqlite.Options{})
		if err != nil {
			return fmt.Errorf("reshard: %w", err)
		}
		opened = append(opened, st)
		logs[partition.Log(k)] = st
	}
	owner := ownerOf(to)
	times, err := split.AppendInOrder(ctx, logs, recs, owner, rep.Events, progress)
	if err != nil {
		return fmt.Errorf("reshard: %w", err)
	}
	done := published(recs, unrelayed, owner)
	for _, s := range opened {
		if err := s.Close(); err != nil {
			return err
		}
	}
	opened = nil
	for k := range to {
		d, log := filepath.Join(stage, partition.Name(k)), partition.Log(k)
		if err := split.RestoreTimes(ctx, filepath.Join(d, eventsFile), times[log]); err != nil {
			return fmt.Errorf("reshard: %s: %w", log, err)
		}
		db, err := sql.Open("sqlite", sqlite.DSN(filepath.Join(d, stateFile), false))
		if err == nil {
			_, err = relayCheckpoint(ctx, db, log, true, done[log])
			db.Close()
		}
		if err != nil {
			return fmt.Errorf("reshard: %s: %w", log, err)
		}
	}
	return nil
}

// relayCheckpoint is the checkpoint of log's relay ("events-<log>") in
// the state database db: loaded, or (save) set to pos.
func relayCheckpoint(ctx context.Context, db *sql.DB, log string, save bool, pos uint64) (uint64, error) {
	cps, err := messaging.SQLCheckpoints(ctx, db)
	if err != nil {
		return 0, err
	}
	if save {
		return pos, cps.Save(ctx, "events-"+log, pos)
	}
	return cps.Load(ctx, "events-"+log)
}

// balance is an account's balance as its events fold.
type balance struct {
	amount   int64
	currency string
}

// balances folds every account of stores (through svc, which spreads
// them as they are spread) to its balance.
func balances(ctx context.Context, svc *app.Service, stores []eventstore.Store) (map[string]balance, error) {
	out := map[string]balance{}
	for _, st := range stores {
		for after := uint64(0); ; {
			batch, err := st.ReadAll(ctx, after, 5000)
			if err != nil {
				return nil, err
			}
			if len(batch) == 0 {
				break
			}
			for _, r := range batch {
				id, ok := app.IsAccountStream(r.StreamID)
				if !ok || r.Version != 1 {
					continue
				}
				a, _, err := svc.Get(ctx, id)
				if errors.Is(err, payments.ErrNotOpen) {
					continue
				}
				if err != nil {
					return nil, fmt.Errorf("account %s: %w", id, err)
				}
				out[id] = balance{a.Balance, a.Currency.String()}
			}
			after = batch[len(batch)-1].Position
		}
	}
	return out, nil
}

// verify folds every account of the staged partitions and compares each
// balance, and each currency's total, with before's.
func verify(ctx context.Context, stage string, to int, before map[string]balance, rep *Report) error {
	var stores []eventstore.Store
	defer func() {
		for _, s := range stores {
			s.Close()
		}
	}()
	for k := range to {
		st, err := sqlite.Open(ctx, filepath.Join(stage, partition.Name(k), eventsFile), sqlite.Options{})
		if err != nil {
			return fmt.Errorf("reshard: verify: %w", err)
		}
		stores = append(stores, st)
	}
	after, err := balances(ctx, app.NewService(stores...), stores)
	if err != nil {
		return fmt.Errorf("reshard: the balances after: %w", err)
	}
	return compare(before, after, rep)
}

// compare checks that every account holds in after what it held in
// before, and each currency's total; it fills rep's totals and count.
func compare(before, after map[string]balance, rep *Report) error {
	totals := map[string]int64{}
	for id, b := range before {
		a, ok := after[id]
		if !ok || a != b {
			return fmt.Errorf("reshard: verify: account %s held %d %s before and %d %s after (found %v): nothing was changed",
				id, b.amount, b.currency, a.amount, a.currency, ok)
		}
		rep.Totals[b.currency] += b.amount
	}
	for id, a := range after {
		if _, ok := before[id]; !ok {
			return fmt.Errorf("reshard: verify: account %s appeared: nothing was changed", id)
		}
		totals[a.currency] += a.amount
	}
	for cur, t := range rep.Totals {
		if totals[cur] != t {
			return fmt.Errorf("reshard: verify: %s totalled %d before and %d after: nothing was changed", cur, t, totals[cur])
		}
	}
	rep.Accounts = len(after)
	return nil
}

// swap retires the old layout, moves the staged partitions in, resets
// the accounts read model (each partition's runner rebuilds its rows
// from its new log) and records the new count: the last step, so that
// an interrupted swap is refused on the next start rather than served.
func swap(ctx context.Context, dir, dataDir string, from, to int, state *sql.DB) error {
	old := filepath.Join(dir, retired)
	if err := os.MkdirAll(old, 0o755); err != nil {
		return fmt.Errorf("reshard: %w", err)
	}
	if from == 0 {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("reshard: %w", err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), eventsFile) {
				if err := os.Rename(filepath.Join(dir, e.Name()), filepath.Join(old, e.Name())); err != nil {
					return fmt.Errorf("reshard: %w", err)
				}
			}
		}
	}
	for k := range from {
		if err := os.Rename(server.PartitionDir(dataDir, k), filepath.Join(old, partition.Name(k))); err != nil {
			return fmt.Errorf("reshard: %w", err)
		}
	}
	for k := range to {
		if err := os.Rename(filepath.Join(dir, staging, partition.Name(k)), server.PartitionDir(dataDir, k)); err != nil {
			return fmt.Errorf("reshard: %w", err)
		}
	}
	tx, err := state.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("reshard: %w", err)
	}
	defer tx.Rollback()
	for table, q := range map[string]string{
		"projection_checkpoints": `DELETE FROM projection_checkpoints WHERE name LIKE 'payments.accounts%'`,
		"payments_accounts":      `DELETE FROM payments_accounts`,
	} {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&n); err != nil {
			return fmt.Errorf("reshard: %w", err)
		}
		if n == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("reshard: reset the accounts read model: %w", err)
		}
	}
	if err := partition.SetRecorded(ctx, tx, to); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("reshard: %w", err)
	}
	return cmp.Or(os.RemoveAll(old), os.RemoveAll(filepath.Join(dir, staging)))
}
