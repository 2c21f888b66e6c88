package idempotency

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// SQLStore is a Store in a SQL database (SQLite or PostgreSQL): the
// durable copy of a context's keys, in the database the context writes
// its own state to, so that a key outlives a restart of the process, of
// Redis or of the machine. A claim is an upsert that only replaces an
// expired row; completing and releasing check the owner in their WHERE
// clause. Expired rows are deleted once a minute, on a claim.
type SQLStore struct {
	db    *sql.DB
	table string
	now   func() time.Time

	mu        sync.Mutex
	lastSweep time.Time
}

// NewSQLStore creates table (if missing) in db and returns a store
// keeping records there; now is its clock (nil: time.Now). The table's
// name is the caller's, not a client's.
func NewSQLStore(ctx context.Context, db *sql.DB, table string, now func() time.Time) (*SQLStore, error) {
	if now == nil {
		now = time.Now
	}
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
		key         TEXT PRIMARY KEY,
		fingerprint TEXT NOT NULL,
		owner       TEXT NOT NULL,
		done        INTEGER NOT NULL,
		answer      TEXT NOT NULL,
		expires_at  BIGINT NOT NULL)`)
	if err != nil {
		return nil, fmt.Errorf("idempotency: create %s: %w", table, err)
	}
	// The sweep deletes by expiry: with this index it reads the expired
	// keys only, not every key the TTL keeps.
	if _, err := db.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS `+table+`_expires ON `+table+` (expires_at)`); err != nil {
		return nil, fmt.Errorf("idempotency: index %s: %w", table, err)
	}
	return &SQLStore{db: db, table: table, now: now, lastSweep: now()}, nil
}

// answer is what a done record keeps besides its fingerprint.
type answer struct {
	Status int         `json:"status"`
	Header http.Header `json:"header,omitempty"`
	Body   []byte      `json:"body,omitempty"`
}

func (s *SQLStore) sweep(ctx context.Context, now time.Time) error {
	s.mu.Lock()
	due := now.Sub(s.lastSweep) >= time.Minute
	if due {
		s.lastSweep = now
	}
	s.mu.Unlock()
	if !due {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM `+s.table+` WHERE expires_at <= $1`, now.UnixMilli()); err != nil {
		return fmt.Errorf("idempotency: sweep: %w", err)
	}
	return nil
}

// Claim implements Store.
func (s *SQLStore) Claim(ctx context.Context, key string, rec Record, ttl time.Duration) (Record, bool, error) {
	if rec.Owner == "" {
		return Record{}, false, errors.New("idempotency: a claim needs an owner")
	}
	now := s.now()
	if err := s.sweep(ctx, now); err != nil {
		return Record{}, false, err
	}
	for range 3 { // the holder may expire between the upsert and the read
		res, err := s.db.ExecContext(ctx, `INSERT INTO `+s.table+` (key, fingerprint, owner, done, answer, expires_at)
			VALUES ($1, $2, $3, 0, '', $4)
			ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, owner = excluded.owner,
				done = 0, answer = '', expires_at = excluded.expires_at
			WHERE `+s.table+`.expires_at <= $5`,
			key, rec.Fingerprint, rec.Owner, now.Add(ttl).UnixMilli(), now.UnixMilli())
		if err != nil {
			return Record{}, false, fmt.Errorf("idempotency: claim: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return Record{}, false, fmt.Errorf("idempotency: claim: %w", err)
		} else if n == 1 {
			return rec, true, nil
		}
		cur, found, err := s.Get(ctx, key)
		if err != nil || found {
			return cur, false, err
		}
	}
	return Record{}, false, errors.New("idempotency: the key's claim keeps changing hands")
}

// Get implements Store.
func (s *SQLStore) Get(ctx context.Context, key string) (Record, bool, error) {
	var (
		rec  Record
		done int
		ans  string
	)
	err := s.db.QueryRowContext(ctx, `SELECT fingerprint, owner, done, answer FROM `+s.table+`
		WHERE key = $1 AND expires_at > $2`, key, s.now().UnixMilli()).Scan(&rec.Fingerprint, &rec.Owner, &done, &ans)
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("idempotency: get: %w", err)
	}
	if rec.Done = done == 1; rec.Done {
		var a answer
		if err := json.Unmarshal([]byte(ans), &a); err != nil {
			return Record{}, false, fmt.Errorf("idempotency: decode answer: %w", err)
		}
		rec.Status, rec.Header, rec.Body = a.Status, a.Header, a.Body
	}
	return rec, true, nil
}

// Complete implements Store.
func (s *SQLStore) Complete(ctx context.Context, key, owner string, rec Record, ttl time.Duration) error {
	ans, err := json.Marshal(answer{Status: rec.Status, Header: rec.Header, Body: rec.Body})
	if err != nil {
		return fmt.Errorf("idempotency: encode answer: %w", err)
	}
	now := s.now()
	res, err := s.db.ExecContext(ctx, `UPDATE `+s.table+` SET done = 1, owner = '', answer = $1, expires_at = $2
		WHERE key = $3 AND owner = $4 AND done = 0 AND expires_at > $5`,
		string(ans), now.Add(ttl).UnixMilli(), key, owner, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("idempotency: complete: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("idempotency: complete: %w", err)
	} else if n == 0 {
		return ErrNotOwner
	}
	return nil
}

// Extend implements Extender.
func (s *SQLStore) Extend(ctx context.Context, key, owner string, ttl time.Duration) error {
	now := s.now()
	res, err := s.db.ExecContext(ctx, `UPDATE `+s.table+` SET expires_at = $1
		WHERE key = $2 AND owner = $3 AND done = 0 AND expires_at > $4`, now.Add(ttl).UnixMilli(), key, owner, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("idempotency: extend: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("idempotency: extend: %w", err)
	} else if n == 0 {
		return ErrNotOwner
	}
	return nil
}

// Release implements Store.
func (s *SQLStore) Release(ctx context.Context, key, owner string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM `+s.table+` WHERE key = $1 AND owner = $2 AND done = 0`, key, owner); err != nil {
		return fmt.Errorf("idempotency: release: %w", err)
	}
	return nil
}

// Len returns the number of unexpired records (for tests and metrics).
func (s *SQLStore) Len(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM `+s.table+` WHERE expires_at > $1`, s.now().UnixMilli()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("idempotency: count: %w", err)
	}
	return n, nil
}
