package messaging

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/agora-commerce/agora/internal/backoff"
)

// Leader grants one process at a time the right to run something, such
// as a relay of a given name, among processes sharing a database. It
// blocks until the right is granted or ctx ends, and returns a context
// that ends when the right is lost (or ctx ends) and a release to give
// it up.
type Leader func(ctx context.Context) (held context.Context, release func(), err error)

// PostgresLeader is a Leader on a PostgreSQL session advisory lock named
// name, held on a connection of db of its own. Advisory locks belong to
// the database, not a schema: processes sharing a database but not a
// schema must use different names. PostgreSQL frees the lock
// when that session ends, so a process that dies hands the right on
// without waiting for a lease to expire; a standby asks again every
// retry, and the holder checks its connection as often.
func PostgresLeader(db *sql.DB, name string, retry time.Duration, log *slog.Logger) Leader {
	if retry <= 0 {
		retry = time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	h := fnv.New64a()
	h.Write([]byte("agora/" + name))
	key := int64(h.Sum64())
	return func(ctx context.Context) (context.Context, func(), error) {
		for {
			conn, err := db.Conn(ctx)
			if err == nil {
				var got bool
				err = conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got)
				if err == nil && got {
					held, cancel := context.WithCancel(ctx)
					go func() { // lost when the session is
						defer cancel()
						for backoff.Sleep(held, retry) == nil {
							if err := conn.PingContext(held); err != nil {
								if held.Err() == nil {
									log.Warn("messaging: lost the lock", "name", name, "err", err)
								}
								return
							}
						}
					}()
					release := func() {
						cancel()
						unlock, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
						defer done()
						_, _ = conn.ExecContext(unlock, `SELECT pg_advisory_unlock($1)`, key)
						_ = conn.Close()
					}
					return held, release, nil
				}
				_ = conn.Close()
			}
			if err != nil && ctx.Err() == nil {
				log.Warn("messaging: ask for the lock", "name", name, "err", err)
			}
			if err := backoff.Sleep(ctx, retry); err != nil {
				return nil, nil, fmt.Errorf("messaging: lock %s: %w", name, err)
			}
		}
	}
}
