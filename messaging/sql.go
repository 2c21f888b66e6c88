package messaging

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/eventstore"
)

// The SQL here runs on SQLite and PostgreSQL alike ($n placeholders,
// ON CONFLICT).

// SQLCheckpoints keeps relay checkpoints in db's messaging_checkpoints
// table, creating it if needed.
func SQLCheckpoints(ctx context.Context, db *sql.DB) (Checkpoints, error) {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS messaging_checkpoints (
		name     TEXT PRIMARY KEY,
		position BIGINT NOT NULL)`)
	if err != nil {
		return nil, fmt.Errorf("messaging: create checkpoints: %w", err)
	}
	return sqlCheckpoints{db}, nil
}

type sqlCheckpoints struct{ db *sql.DB }

func (c sqlCheckpoints) Load(ctx context.Context, name string) (uint64, error) {
	var pos int64
	err := c.db.QueryRowContext(ctx, `SELECT position FROM messaging_checkpoints WHERE name = $1`, name).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("messaging: load checkpoint %s: %w", name, err)
	}
	return uint64(pos), nil
}

func (c sqlCheckpoints) Save(ctx context.Context, name string, pos uint64) error {
	_, err := c.db.ExecContext(ctx, `INSERT INTO messaging_checkpoints (name, position) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET position = excluded.position`, name, int64(pos))
	if err != nil {
		return fmt.Errorf("messaging: save checkpoint %s: %w", name, err)
	}
	return nil
}

// Inbox records the messages a consumer has handled, in the consumer's own
// database, so that an effect and the record of it commit together.
type Inbox struct {
	db       *sql.DB
	consumer string
}

// NewInbox returns consumer's inbox in db (table messaging_inbox, created
// if needed).
func NewInbox(ctx context.Context, db *sql.DB, consumer string) (*Inbox, error) {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS messaging_inbox (
		consumer   TEXT   NOT NULL,
		message_id TEXT   NOT NULL,
		handled_at BIGINT NOT NULL,
		PRIMARY KEY (consumer, message_id))`)
	if err != nil {
		return nil, fmt.Errorf("messaging: create inbox: %w", err)
	}
	return &Inbox{db: db, consumer: consumer}, nil
}

// Handle runs effect in a transaction that also records msgID, unless
// msgID was handled before; done reports whether effect ran now. If
// effect fails, nothing is recorded and the error is returned.
func (i *Inbox) Handle(ctx context.Context, msgID string, effect func(tx *sql.Tx) error) (done bool, err error) {
	tx, err := i.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("messaging: inbox: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	res, err := tx.ExecContext(ctx, `INSERT INTO messaging_inbox (consumer, message_id, handled_at) VALUES ($1, $2, $3)
		ON CONFLICT (consumer, message_id) DO NOTHING`, i.consumer, msgID, time.Now().UnixNano())
	if err != nil {
		return false, fmt.Errorf("messaging: inbox: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, fmt.Errorf("messaging: inbox: %w", err)
	} else if n == 0 {
		trace.SpanFromContext(ctx).AddEvent("messaging.inbox.duplicate") // handled before: a redelivery
		return false, nil
	}
	if err := effect(tx); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("messaging: inbox: %w", err)
	}
	return true, nil
}

// SQLOutbox is the outbox of a context that keeps plain SQL state: Add
// writes messages in the caller's transaction, and the outbox is the Log a
// Relay publishes from. Rows stay after publishing (the relay's checkpoint
// says how far it got) until Prune removes them.
type SQLOutbox struct {
	db    *sql.DB
	table string
	// notes counts Notify calls; Wait watches it.
	notes eventstore.Notifier
}

// NewSQLOutbox returns the outbox in db's table (created if needed); the
// name is an identifier chosen by the program, never user input.
func NewSQLOutbox(ctx context.Context, db *sql.DB, table string, autoIncrement string) (*SQLOutbox, error) {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
		position `+autoIncrement+`,
		id       TEXT NOT NULL,
		subject  TEXT NOT NULL,
		type     TEXT NOT NULL,
		data     TEXT NOT NULL,
		headers  TEXT NOT NULL)`)
	if err != nil {
		return nil, fmt.Errorf("messaging: create outbox: %w", err)
	}
	return &SQLOutbox{db: db, table: table}, nil
}

// AutoIncrement column types for NewSQLOutbox.
const (
	// SQLiteAutoIncrement is a SQLite position column.
	SQLiteAutoIncrement = "INTEGER PRIMARY KEY AUTOINCREMENT"
	// PostgresAutoIncrement is a PostgreSQL position column.
	PostgresAutoIncrement = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
)

// Add writes msgs to the outbox inside tx; they are published once tx
// commits and Notify is called.
func (o *SQLOutbox) Add(ctx context.Context, tx *sql.Tx, msgs ...Message) error {
	_, err := o.AddReturning(ctx, tx, msgs...)
	return err
}

// AddReturning is Add that also returns the outbox position of the last
// of msgs (0 for none): the position a relay publishes it at (its
// HeaderPosition), for a write's answer to name (read-your-writes).
func (o *SQLOutbox) AddReturning(ctx context.Context, tx *sql.Tx, msgs ...Message) (last uint64, err error) {
	for _, m := range msgs {
		h, err := json.Marshal(m.Headers)
		if err != nil {
			return 0, err
		}
		var pos int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO `+o.table+` (id, subject, type, data, headers) VALUES ($1, $2, $3, $4, $5)
			RETURNING position`, m.ID, m.Subject, m.Type, string(m.Data), string(h)).Scan(&pos); err != nil {
			return 0, fmt.Errorf("messaging: outbox add: %w", err)
		}
		last = uint64(pos)
	}
	return last, nil
}

// Notify wakes the relay after a transaction with Add committed.
func (o *SQLOutbox) Notify() { o.notes.Publish(o.notes.Head() + 1) }

// Read implements Log.
//
// On PostgreSQL, identity values are taken before commit, so a
// transaction that commits late may hold a lower position than one
// already read; callers there must serialise Add (one writer, or a lock
// taken in the transaction), as Agora's catalog does.
func (o *SQLOutbox) Read(ctx context.Context, after uint64, limit int) ([]Entry, error) {
	rows, err := o.db.QueryContext(ctx, `SELECT position, id, subject, type, data, headers FROM `+o.table+`
		WHERE position > $1 ORDER BY position LIMIT $2`, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("messaging: outbox read: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var (
			pos        int64
			m          Message
			data, hdrs string
		)
		if err := rows.Scan(&pos, &m.ID, &m.Subject, &m.Type, &data, &hdrs); err != nil {
			return nil, fmt.Errorf("messaging: outbox read: %w", err)
		}
		m.Data = json.RawMessage(data)
		if err := json.Unmarshal([]byte(hdrs), &m.Headers); err != nil {
			return nil, fmt.Errorf("messaging: outbox read: %w", err)
		}
		out = append(out, Entry{Position: uint64(pos), Message: &m})
	}
	return out, rows.Err()
}

// Wait implements Log: it returns on Notify or after a short poll
// interval (for rows added by other processes).
func (o *SQLOutbox) Wait(ctx context.Context, after uint64) error {
	ch := o.notes.Changed()
	// A row committed after the caller's Read but before ch was taken
	// would otherwise wait for the poll.
	var head sql.NullInt64
	if err := o.db.QueryRowContext(ctx, `SELECT MAX(position) FROM `+o.table).Scan(&head); err != nil {
		return fmt.Errorf("messaging: outbox wait: %w", err)
	}
	if head.Valid && uint64(head.Int64) > after {
		return nil
	}
	t := time.NewTimer(500 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// Prune deletes published rows up to and including position through.
func (o *SQLOutbox) Prune(ctx context.Context, through uint64) error {
	_, err := o.db.ExecContext(ctx, `DELETE FROM `+o.table+` WHERE position <= $1`, int64(through))
	return err
}

// Head returns the outbox's highest position (0 when it is empty): how
// far a relay of it has to go.
func (o *SQLOutbox) Head(ctx context.Context) (uint64, error) {
	var head sql.NullInt64
	if err := o.db.QueryRowContext(ctx, `SELECT MAX(position) FROM `+o.table).Scan(&head); err != nil {
		return 0, fmt.Errorf("messaging: outbox head: %w", err)
	}
	return uint64(max(head.Int64, 0)), nil
}
