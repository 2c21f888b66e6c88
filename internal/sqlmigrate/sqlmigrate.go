// Package sqlmigrate applies embedded, numbered SQL migrations to a
// database/sql database, once each, recording them in a table.
package sqlmigrate

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// Apply runs, in name order, every "NNNN_name.sql" file of dir in fsys
// whose number is not yet recorded in table. Each migration runs in its own
// transaction together with its record. lock, if not empty, is a statement
// run first inside each transaction to serialise concurrent migrators
// (e.g. "SELECT pg_advisory_xact_lock(42)").
//
// Two files with one number are an error. The record table is created
// under lock too, so that migrators starting together on a new database
// do not race to create it.
func Apply(ctx context.Context, db *sql.DB, fsys fs.FS, dir, table, lock string) error {
	if err := createTable(ctx, db, table, lock); err != nil {
		return err
	}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return fmt.Errorf("sqlmigrate: read %s: %w", dir, err)
	}
	seen := map[int64]string{}
	for _, e := range entries { // fs.ReadDir sorts by name
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		version, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil {
			return fmt.Errorf("sqlmigrate: %s: name must start with a number and '_'", name)
		}
		if other, dup := seen[version]; dup {
			return fmt.Errorf("sqlmigrate: %s and %s have one number", other, name)
		}
		seen[version] = name
		body, err := fs.ReadFile(fsys, dir+"/"+name)
		if err != nil {
			return fmt.Errorf("sqlmigrate: %w", err)
		}
		if err := applyOne(ctx, db, table, lock, version, name, string(body)); err != nil {
			return err
		}
	}
	return nil
}

func createTable(ctx context.Context, db *sql.DB, table, lock string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlmigrate: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	if lock != "" {
		if _, err := tx.ExecContext(ctx, lock); err != nil {
			return fmt.Errorf("sqlmigrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (version BIGINT PRIMARY KEY, name TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("sqlmigrate: create %s: %w", table, err)
	}
	return tx.Commit()
}

func applyOne(ctx context.Context, db *sql.DB, table, lock string, version int64, name, body string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlmigrate: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	if lock != "" {
		if _, err := tx.ExecContext(ctx, lock); err != nil {
			return fmt.Errorf("sqlmigrate: lock: %w", err)
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table+` WHERE version = `+strconv.FormatInt(version, 10)).Scan(&n); err != nil {
		return fmt.Errorf("sqlmigrate: check %s: %w", name, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return fmt.Errorf("sqlmigrate: apply %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (version, name) VALUES (`+strconv.FormatInt(version, 10)+`, '`+strings.ReplaceAll(name, "'", "''")+`')`); err != nil {
		return fmt.Errorf("sqlmigrate: record %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlmigrate: commit %s: %w", name, err)
	}
	return nil
}
