// Package split upgrades a data directory written by releases that kept
// every bounded context in one event store (<data>/events.db and
// <data>/readmodels.db) to a store per context (<data>/<context>/, see
// internal/server): agora migrate split.
//
// Each stream moves to the log of the context that owns it, in the old
// log's order, with its event IDs, versions, data, metadata and
// recording times; positions are renumbered per context. The state that
// is not rebuilt from the log moves to its context's database: identity's
// users, tenants and tokens, the catalog's products and outbox, the
// BFF's counters, each outbox relay's checkpoint; Idempotency-Key records
// go to every context (their keys are scoped by context, so each finds
// its own), the bus's dead letters to the platform's database. Read
// models that projections keep (and their checkpoints) are not copied:
// the projections rebuild them from the new logs on the next start, and
// the relays publish each log once more, which the consumers' inboxes
// drop as repeats.
//
// Nothing is written in place: the new layout is built beside the old one
// and put in place at the end, the old files renamed *.pre-split last. A
// run that fails part-way leaves the old layout as it was (the next run
// starts again); a second run after a success refuses.
package split

import (
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
	idaudit "github.com/agora-commerce/agora/internal/identity/audit"
	invapp "github.com/agora-commerce/agora/internal/inventory/app"
	ordapp "github.com/agora-commerce/agora/internal/ordering/app"
	"github.com/agora-commerce/agora/internal/ordering/checkout"
	payapp "github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/server"
	shipapp "github.com/agora-commerce/agora/internal/shipping/app"
	"github.com/agora-commerce/agora/saga"
)

// Report is what a split moved.
type Report struct {
	// Events counts the events moved, by context.
	Events map[string]int `json:"events"`
	// Tables names the tables copied, by context ("platform" for the
	// platform's database).
	Tables map[string][]string `json:"tables"`
	// Rebuilt names the read models left for their projections to rebuild.
	Rebuilt []string `json:"rebuilt"`
}

// Progress receives how many of the old log's events have moved.
type Progress func(done, total int)

// ErrAlreadySplit is returned for a data directory already split.
var ErrAlreadySplit = errors.New("split: the data directory already has a store per context (agora migrate split ran before)")

// owners maps a stream's prefix to the context that owns it.
var owners = []struct{ prefix, context string }{
	{saga.StreamID(checkout.SagaID("")), "ordering"},
	{saga.StreamID(paymentsapi.TransferSagaPrefix), "payments"},
	{payapp.StreamPrefix + "-", "payments"},
	{ordapp.StreamPrefix + "-", "ordering"},
	{invapp.StockPrefix + "-", "inventory"},
	{invapp.ReservationPrefix + "-", "inventory"},
	{shipapp.ShipmentType().StreamID(""), "shipping"},
	{idaudit.StreamPrefix, "identity"},
}

// Owner is the context whose log holds stream id, or "".
func Owner(id string) string {
	for _, o := range owners {
		if strings.HasPrefix(id, o.prefix) {
			return o.context
		}
	}
	return ""
}

const (
	oldEvents  = "events.db"
	oldState   = "readmodels.db"
	staging    = ".split"
	platformDB = "platform.db"
	preSplit   = ".pre-split"
)

// Run splits the single store in dataDir into a store per context.
func Run(ctx context.Context, dataDir string, progress Progress) (rep Report, err error) {
	if progress == nil {
		progress = func(int, int) {}
	}
	contexts := make([]string, 0, len(server.Modules))
	for _, d := range server.Modules {
		contexts = append(contexts, d.Name)
	}
	if _, err := os.Stat(filepath.Join(dataDir, oldEvents)); errors.Is(err, fs.ErrNotExist) {
		for _, c := range contexts {
			if _, err := os.Stat(filepath.Join(server.ContextDir(dataDir, c), oldEvents)); err == nil {
				return rep, ErrAlreadySplit
			}
		}
		return rep, fmt.Errorf("split: %s holds no event store to split", dataDir)
	} else if err != nil {
		return rep, fmt.Errorf("split: %w", err)
	}
	for _, c := range contexts {
		if _, err := os.Stat(filepath.Join(server.ContextDir(dataDir, c), oldEvents)); err == nil {
			return rep, fmt.Errorf("split: %s holds both layouts (events.db and %s/events.db): refusing to guess which is current", dataDir, c)
		}
	}
	// The old store, opened as its server would: its lock keeps a
	// running server (or another split) out.
	old, err := sqlite.Open(ctx, filepath.Join(dataDir, oldEvents), sqlite.Options{})
	if err != nil {
		return rep, fmt.Errorf("split: open the old store (is a server still running on it?): %w", err)
	}
	defer old.Close()
	// Every stream must have an owner before anything is written.
	recs, err := readOld(ctx, old)
	if err != nil {
		return rep, err
	}

	stage := filepath.Join(dataDir, staging)
	if err := os.RemoveAll(stage); err != nil { // a failed run's
		return rep, fmt.Errorf("split: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(stage)
		}
	}()
	rep = Report{Events: map[string]int{}, Tables: map[string][]string{}}
	if err := moveEvents(ctx, stage, contexts, recs, &rep, progress); err != nil {
		return rep, err
	}
	if err := moveState(ctx, filepath.Join(dataDir, oldState), stage, contexts, &rep); err != nil {
		return rep, err
	}
	old.Close()

	// Into place: the contexts' directories and the platform's database,
	// then the old files aside — the commit point.
	for _, c := range contexts {
		if err := os.Rename(filepath.Join(stage, c), server.ContextDir(dataDir, c)); err != nil {
			return rep, fmt.Errorf("split: %w", err)
		}
	}
	if err := os.Rename(filepath.Join(stage, platformDB), filepath.Join(dataDir, platformDB)); err != nil {
		return rep, fmt.Errorf("split: %w", err)
	}
	for _, f := range []string{oldState, oldEvents} {
		if err := os.Rename(filepath.Join(dataDir, f), filepath.Join(dataDir, f+preSplit)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return rep, fmt.Errorf("split: %w", err)
		}
	}
	os.Remove(filepath.Join(dataDir, oldEvents+".lock"))
	return rep, os.RemoveAll(stage)
}

// moveEvents appends each record to its owner's new log under stage, in
// the old log's order, then gives each its old recording time.
func moveEvents(ctx context.Context, stage string, contexts []string, recs []eventstore.Record, rep *Report, progress Progress) error {
	stores := map[string]*sqlite.Store{}
	defer func() {
		for _, s := range stores {
			s.Close()
		}
	}()
	for _, c := range contexts {
		if err := os.MkdirAll(filepath.Join(stage, c), 0o755); err != nil {
			return fmt.Errorf("split: %w", err)
		}
		s, err := sqlite.Open(ctx, filepath.Join(stage, c, oldEvents), sqlite.Options{})
		if err != nil {
			return fmt.Errorf("split: %s: %w", c, err)
		}
		stores[c] = s
	}
	logs := map[string]eventstore.Store{}
	for c, st := range stores {
		logs[c] = st
	}
	times, err := AppendInOrder(ctx, logs, recs, Owner, rep.Events, progress)
	if err != nil {
		return err
	}
	for _, c := range contexts {
		if err := stores[c].Close(); err != nil {
			return err
		}
		delete(stores, c)
		if len(times[c]) == 0 {
			continue
		}
		if err := RestoreTimes(ctx, filepath.Join(stage, c, oldEvents), times[c]); err != nil {
			return fmt.Errorf("split: %s: %w", c, err)
		}
	}
	return nil
}

// RestoreTimes gives the events of the SQLite log at path the recording
// times they had before they moved (AppendInOrder's answer).
func RestoreTimes(ctx context.Context, path string, times []When) error {
	if len(times) == 0 {
		return nil
	}
	db, err := sql.Open("sqlite", sqlite.DSN(path, false))
	if err != nil {
		return err
	}
	defer db.Close()
	err = inTx(ctx, db, func(tx *sql.Tx) error {
		for _, w := range times {
			if _, err := tx.ExecContext(ctx, `UPDATE events SET recorded_at = ? WHERE position = ?`, w.At, w.Pos); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording times: %w", err)
	}
	return nil
}

// When is the recording time (Unix nanoseconds) an event had, at its
// new position.
type When struct {
	Pos uint64
	At  int64
}

// AppendInOrder appends each record to its owner's log in logs (owner
// names it, by stream ID), in recs' order (a run of one stream's events
// in one append, with its event IDs and the versions it had), counts the
// events each log took in counts, and answers the old recording time of
// each new position, by log.
func AppendInOrder(ctx context.Context, logs map[string]eventstore.Store, recs []eventstore.Record, owner func(stream string) string,
	counts map[string]int, progress Progress) (map[string][]When, error) {
	times := map[string][]When{}
	for i := 0; i < len(recs); {
		j := i + 1
		for j < len(recs) && recs[j].StreamID == recs[i].StreamID && j-i < 512 {
			j++
		}
		owner := owner(recs[i].StreamID)
		evs := make([]eventstore.EventData, 0, j-i)
		for _, r := range recs[i:j] {
			evs = append(evs, eventstore.EventData{ID: r.ID, Type: r.Type, SchemaVersion: r.SchemaVersion, Data: r.Data, Metadata: r.Metadata})
		}
		res, err := logs[owner].Append(ctx, recs[i].StreamID, eventstore.Exact(recs[i].Version-1), evs...)
		if err != nil {
			return nil, fmt.Errorf("split: %s v%d into %s: %w", recs[i].StreamID, recs[i].Version, owner, err)
		}
		first := res.LastPosition - uint64(j-i) + 1
		for k, r := range recs[i:j] {
			times[owner] = append(times[owner], When{first + uint64(k), r.RecordedAt.UnixNano()})
		}
		counts[owner] += j - i
		i = j
		progress(i, len(recs))
	}
	progress(len(recs), len(recs))
	return times, nil
}

// moveState copies the old state database's tables to their contexts'
// new databases (and the platform's) under stage.
func moveState(ctx context.Context, path, stage string, contexts []string, rep *Report) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil // a store whose state was never written
	}
	src, err := sql.Open("sqlite", sqlite.DSN(path, true))
	if err != nil {
		return err
	}
	defer src.Close()
	type object struct{ name, table, kind, sql string }
	rows, err := src.QueryContext(ctx, `SELECT name, tbl_name, type, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type DESC, name`)
	if err != nil {
		return fmt.Errorf("split: read %s: %w", path, err)
	}
	var objs []object
	for rows.Next() {
		var o object
		if err := rows.Scan(&o.name, &o.table, &o.kind, &o.sql); err != nil {
			rows.Close()
			return err
		}
		objs = append(objs, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// The projections' read models, which they rebuild.
	projected := map[string]bool{"projection_checkpoints": true}
	if prow, err := src.QueryContext(ctx, `SELECT name FROM projection_checkpoints`); err == nil {
		for prow.Next() {
			var name string
			if prow.Scan(&name) == nil {
				projected[strings.ReplaceAll(name, ".", "_")] = true
				rep.Rebuilt = append(rep.Rebuilt, name)
			}
		}
		prow.Close()
	}
	targets := func(table string) ([]string, error) { return tableTargets(table, projected, contexts) }
	dests := map[string][]object{}
	for _, o := range objs {
		ts, err := targets(o.table)
		if err != nil {
			return err
		}
		for _, t := range ts {
			dests[t] = append(dests[t], o)
		}
	}
	for _, t := range append(slices.Clone(contexts), "platform") {
		file := filepath.Join(stage, t, oldState)
		if t == "platform" {
			file = filepath.Join(stage, platformDB)
		}
		db, err := sql.Open("sqlite", sqlite.DSN(file, false))
		if err != nil {
			return err
		}
		db.SetMaxOpenConns(1) // ATTACH is the connection's
		if _, err := db.ExecContext(ctx, `ATTACH DATABASE ? AS old`, "file:"+path+"?mode=ro"); err != nil {
			db.Close()
			return fmt.Errorf("split: attach %s: %w", path, err)
		}
		err = inTx(ctx, db, func(tx *sql.Tx) error {
			for _, o := range dests[t] {
				if _, err := tx.ExecContext(ctx, o.sql); err != nil {
					return fmt.Errorf("%s: %w", o.name, err)
				}
				if o.kind != "table" {
					continue
				}
				q := `INSERT INTO main.` + quote(o.name) + ` SELECT * FROM old.` + quote(o.name)
				if o.name == "messaging_checkpoints" {
					// An outbox relay's checkpoint is its context's; the
					// shared log's relay ("events") starts afresh per context.
					q += ` WHERE name = '` + t + `' OR name LIKE '` + t + `-%'`
				}
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("%s: %w", o.name, err)
				}
				rep.Tables[t] = append(rep.Tables[t], o.name)
			}
			return nil
		})
		if err == nil {
			_, err = db.ExecContext(ctx, `DETACH DATABASE old`)
		}
		db.Close()
		if err != nil {
			return fmt.Errorf("split: %s's state: %w", t, err)
		}
	}
	return nil
}

// tableTargets is where a table of the old state goes: the contexts (or
// "platform") it is copied to; none for a projection's read model, which
// its projection rebuilds.
func tableTargets(table string, projected map[string]bool, contexts []string) ([]string, error) {
	switch {
	case projected[table]:
		return nil, nil
	case table == "messaging_checkpoints":
		return contexts, nil // each takes its own outboxes' rows
	case table == "idempotency_keys":
		return append(slices.Clone(contexts), "platform"), nil
	case table == "dead_letters":
		return []string{"platform"}, nil
	}
	for _, c := range contexts {
		if strings.HasPrefix(table, c+"_") {
			return []string{c}, nil
		}
	}
	return nil, fmt.Errorf("split: table %s belongs to no context this release knows", table)
}

// inTx runs f in a transaction on db.
func inTx(ctx context.Context, db *sql.DB, f func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// quote is an SQL identifier.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }
