// Package partition spreads payments' accounts (and the transfers
// between them) over N partitions, each its own event store, by a jump
// consistent hash of a key: an account's ID, a transfer's ID. Jump hash
// (Lamping and Veach, 2014) needs no table and moves only 1/N of the keys
// when N grows by one; the partition count is recorded in the store, so
// that a process started with another count refuses instead of looking
// for accounts where they are not (`agora payments reshard` moves them).
package partition

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	jump "github.com/dgryski/go-jump"
)

// Default is the partition count of a new store.
const Default = 4

// Max bounds the partition count (each is a store with its own files or
// schema, its writer, its relay and its saga engine).
const Max = 64

// Context is the bounded context that is partitioned.
const Context = "payments"

// Of is key's partition of n (0 ≤ Of < n; 0 when n ≤ 1).
func Of(key string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	return int(jump.Hash(h.Sum64(), n))
}

// Name is partition k's name in its context: "p2".
func Name(k int) string { return "p" + strconv.Itoa(k) }

// Log is partition k's event log as positions name it ("payments-p2"):
// its Agora-Position tokens read "payments-p2.17".
func Log(k int) string { return Context + "-" + Name(k) }

// ParseLog is the partition whose log name is log ("payments-p2" → 2).
func ParseLog(log string) (int, bool) {
	rest, ok := strings.CutPrefix(log, Context+"-p")
	if !ok || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return 0, false
	}
	k, err := strconv.Atoi(rest)
	return k, err == nil && k >= 0 && k < Max
}

// Check validates a partition count.
func Check(n int) error {
	if n < 1 || n > Max {
		return fmt.Errorf("partition: the partition count must be between 1 and %d, not %d", Max, n)
	}
	return nil
}

// ErrCountChanged reports a start with another partition count than the
// store's.
var ErrCountChanged = errors.New("partition: the partition count differs from the store's")

// ErrUnpartitioned reports a store written before accounts were
// partitioned: one event log, which reshard spreads over partitions.
var ErrUnpartitioned = errors.New("partition: the store holds payments' log from before partitions")

const countTable = `CREATE TABLE IF NOT EXISTS payments_partitioning (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	partitions INTEGER NOT NULL
)`

// Recorded is the partition count recorded in db (0: none yet).
func Recorded(ctx context.Context, db *sql.DB) (int, error) {
	if _, err := db.ExecContext(ctx, countTable); err != nil {
		return 0, fmt.Errorf("partition: %w", err)
	}
	var n int
	err := db.QueryRowContext(ctx, `SELECT partitions FROM payments_partitioning WHERE id = 1`).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("partition: %w", err)
	}
	return n, nil
}

// SetRecorded records partition count n in db, replacing what was
// recorded (reshard's last step); db may be a transaction.
func SetRecorded(ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, n int) error {
	if _, err := db.ExecContext(ctx, countTable); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	_, err := db.ExecContext(ctx, `INSERT INTO payments_partitioning (id, partitions) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET partitions = excluded.partitions`, n)
	if err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	return nil
}

// Record checks that db records partition count n, recording it on a
// first start. A store that records another count refuses
// (ErrCountChanged), as does one whose payments log predates partitions
// (legacy reports it: ErrUnpartitioned); both say what to run.
func Record(ctx context.Context, db *sql.DB, n int, legacy func() (bool, error)) error {
	got, err := Recorded(ctx, db)
	if err != nil {
		return err
	}
	if got == 0 {
		old, err := legacy()
		if err != nil {
			return fmt.Errorf("partition: %w", err)
		}
		if old {
			return fmt.Errorf("%w: run `agora payments reshard --to %d` (offline) to spread its accounts over %d partitions", ErrUnpartitioned, n, n)
		}
		// Concurrent first starts race to record: the first one wins and
		// the others compare with it.
		if _, err := db.ExecContext(ctx, `INSERT INTO payments_partitioning (id, partitions) VALUES (1, $1) ON CONFLICT (id) DO NOTHING`, n); err != nil {
			return fmt.Errorf("partition: %w", err)
		}
		if got, err = Recorded(ctx, db); err != nil {
			return err
		}
	}
	if got != n {
		return fmt.Errorf("%w: payments' accounts are spread over %d partitions, and this start asks for %d: "+
			"start with --payments-partitions %d, or move them with `agora payments reshard --to %d` (offline) first", ErrCountChanged, got, n, got, n)
	}
	return nil
}

// Stream prefixes of the streams payments keeps (app.StreamPrefix and
// the transfer saga's stream, saga.StreamID of "transfer-<id>").
const (
	accountStream  = "account-"
	transferStream = "saga-transfer-"
)

// KeyOf is the key that places stream id in a partition: an account's ID
// ("account-<id>"), a transfer's ID ("saga-transfer-<id>"), else the
// stream's ID.
func KeyOf(stream string) string {
	if id, ok := strings.CutPrefix(stream, accountStream); ok {
		return id
	}
	if id, ok := strings.CutPrefix(stream, transferStream); ok {
		return id
	}
	return stream
}
