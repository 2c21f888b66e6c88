package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/agora-commerce/agora/eventstore"
)

// Reader reads the global log of a store file that another process may
// own and be writing: it takes no lock, writes nothing (its connections
// are query-only) and sees every commit the owner has made, as WAL lets
// readers do. It serves tools that inspect a running platform's log,
// such as agora audit. (Streams are not read here: their index is partly
// in the owner's memory; fold the global log instead.)
type Reader struct {
	db *sql.DB
}

// OpenReader opens the store file at path for reading; the file must
// exist (a reader never creates a store).
func OpenReader(path string) (*Reader, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if _, err := os.Stat(abs); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("sqlite: no event store at %s: %w", abs, err)
		}
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	db, err := openDB(abs, true)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(2)
	return &Reader{db: db}, nil
}

// ReadAll returns up to limit events of the global log whose position
// is greater than after, in position order (as eventstore.Store's).
func (r *Reader) ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.Record, error) {
	if limit <= 0 {
		limit = eventstore.DefaultReadLimit
	}
	rows, err := r.db.QueryContext(ctx, `SELECT `+selectCols+` FROM events WHERE position > ? ORDER BY position LIMIT ?`, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read all: %w", err)
	}
	return scanRecords(rows, limit)
}

// Head returns the highest position committed.
func (r *Reader) Head(ctx context.Context) (uint64, error) {
	var head int64
	if err := r.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(position), 0) FROM events`).Scan(&head); err != nil {
		return 0, fmt.Errorf("sqlite: head: %w", err)
	}
	return uint64(head), nil
}

// Close releases the reader's connections.
func (r *Reader) Close() error { return r.db.Close() }
