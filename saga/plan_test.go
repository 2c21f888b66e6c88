package saga

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// TestUnfinishedQueriesUseTheirIndex: the queries of the sweep, an
// engine's start and the backlog read the partial index of unfinished
// instances (on SQLite; PostgreSQL's planner proves the same condition),
// and find the unfinished instances among the finished ones.
func TestUnfinishedQueriesUseTheirIndex(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := (indexProjection{}).Setup(ctx, db); err != nil {
		t.Fatal(err)
	}
	fillIndex(t, db, 1000, 3)
	old := time.Now().Add(time.Hour)
	for name, q := range map[string]struct {
		query string
		args  []any
	}{
		"unfinished": {`SELECT id FROM saga_instances WHERE ` + isUnfinished + ` AND ` + isRunning + ` AND type IN ($1) ORDER BY updated_at`, []any{"thing"}},
		"stalled":    {`SELECT id FROM saga_instances WHERE ` + isUnfinished + ` AND ` + isRunning + ` AND updated_at < $1 ORDER BY updated_at LIMIT 1000`, []any{old.UnixNano()}},
		"backlog":    {`SELECT type, status, COUNT(*), MIN(updated_at) FROM saga_instances WHERE ` + isUnfinished + ` GROUP BY type, status`, nil},
	} {
		var plan strings.Builder
		rows, err := db.QueryContext(ctx, `EXPLAIN QUERY PLAN `+q.query, q.args...)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan.WriteString(detail + "; ")
		}
		rows.Close()
		if !strings.Contains(plan.String(), "saga_instances_unfinished") {
			t.Errorf("%s: the plan does not use the index of unfinished instances: %s", name, plan.String())
		}
	}
	got, err := unfinished(ctx, db, nil)
	if err != nil || len(got) != 3 {
		t.Fatalf("unfinished: %v, %v; want the 3 started", got, err)
	}
	got, err = stalled(ctx, db, old, []string{"thing"})
	if err != nil || len(got) != 3 {
		t.Fatalf("stalled: %v, %v; want the 3 started", got, err)
	}
}

// fillIndex adds finished instances (Completed, one in ten Compensated)
// and open ones (Started, and as many Failed, waiting for an operator)
// to the index.
func fillIndex(tb testing.TB, db *sql.DB, finished, open int) {
	tx, err := db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	ins, err := tx.Prepare(`INSERT INTO saga_instances (id, type, status, updated_at) VALUES ($1, 'thing', $2, $3)`)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UnixNano()
	for i := range finished {
		status := Completed
		if i%10 == 9 {
			status = Compensated
		}
		if _, err := ins.Exec(fmt.Sprintf("done-%08d", i), string(status), now+int64(i)); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range open {
		for _, st := range []Status{Started, Failed} {
			if _, err := ins.Exec(fmt.Sprintf("open-%s-%d", st, i), string(st), now+int64(i)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkSagaIndexUnfinished lists the instances to resume (what an
// engine's start and sweep ask) among entries finished ones: the cost
// follows the unfinished (here 10 Started and 10 Failed), not the history.
func BenchmarkSagaIndexUnfinished(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("entries=%s", sizeName(n)), func(b *testing.B) {
			db, err := sql.Open("sqlite", filepath.Join(b.TempDir(), "index.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			if err := (indexProjection{}).Setup(ctx, db); err != nil {
				b.Fatal(err)
			}
			fillIndex(b, db, n, 10)
			b.ResetTimer()
			for range b.N {
				if ids, err := unfinished(ctx, db, []string{"thing"}); err != nil || len(ids) != 10 {
					b.Fatal(ids, err)
				}
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	return fmt.Sprintf("%dk", n/1000)
}
