package sqlmigrate_test

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/sqlmigrate"
	"github.com/agora-commerce/agora/internal/testenv"
)

// table records the applied migrations in every test; it must not be
// "eventstore_migrations", which the PostgreSQL store keeps in the same
// schema as the read-model database.
const table = "test_migrations"

// Each migration appends a row to steps whose n is the number of rows
// before it, so steps tells in which order the migrations ran.
func step(name string) string {
	return `INSERT INTO steps (n, name) SELECT COUNT(*), '` + name + `' FROM steps`
}

func file(body string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(body)} }

// baseFS holds three migrations, stored out of name order in the map, a
// non-SQL file that must be ignored, and a file in another directory.
func baseFS() fstest.MapFS {
	return fstest.MapFS{
		"m/0010_third.sql": file(step("third")),
		"m/0002_second.sql": file(`ALTER TABLE steps ADD COLUMN extra TEXT;
` + step("second")),
		"m/0001_first.sql": file(`CREATE TABLE steps (n BIGINT NOT NULL, name TEXT NOT NULL);
` + step("first")),
		"m/README.md":        file("this is not SQL and must not be run"),
		"other/0003_x.sql":   file("THIS IS NOT SQL"),
		"m/0004_notes.sql~":  file("THIS IS NOT SQL EITHER"),
		"m/sub/0005_sub.sql": file("THIS IS NOT SQL EITHER"),
	}
}

type applied struct {
	Version int64
	Name    string
}

func recorded(t *testing.T, db *sql.DB) []applied {
	t.Helper()
	rows, err := db.Query(`SELECT version, name FROM ` + table + ` ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []applied
	for rows.Next() {
		var a applied
		if err := rows.Scan(&a.Version, &a.Name); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// steps returns the names in steps ordered by n, the order they ran in.
func steps(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT n, name FROM steps ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for i := 0; rows.Next(); i++ {
		var n int
		var name string
		if err := rows.Scan(&n, &name); err != nil {
			t.Fatal(err)
		}
		if n != i {
			t.Errorf("steps: row %d has n=%d (a migration ran twice or concurrently)", i, n)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func tableExists(db *sql.DB, name string) bool {
	var n int
	return db.QueryRow(`SELECT COUNT(*) FROM `+name).Scan(&n) == nil
}

func TestApplyRunsEachMigrationOnceInNameOrder(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, _ eventstore.Store, db *sql.DB) {
		ctx := context.Background()
		fsys := baseFS()
		if err := sqlmigrate.Apply(ctx, db, fsys, "m", table, ""); err != nil {
			t.Fatalf("first Apply: %v", err)
		}
		wantSteps := []string{"first", "second", "third"}
		if got := steps(t, db); !reflect.DeepEqual(got, wantSteps) {
			t.Fatalf("steps after first Apply = %q, want %q", got, wantSteps)
		}
		wantRecorded := []applied{{1, "0001_first.sql"}, {2, "0002_second.sql"}, {10, "0010_third.sql"}}
		if got := recorded(t, db); !reflect.DeepEqual(got, wantRecorded) {
			t.Fatalf("recorded = %+v, want %+v", got, wantRecorded)
		}

		// Re-running is a no-op: no migration runs again (0001 would
		// fail, creating steps twice; 0003 would add a row).
		for range 2 {
			if err := sqlmigrate.Apply(ctx, db, fsys, "m", table, ""); err != nil {
				t.Fatalf("re-Apply: %v", err)
			}
		}
		if got := steps(t, db); !reflect.DeepEqual(got, wantSteps) {
			t.Fatalf("steps after re-Apply = %q, want %q", got, wantSteps)
		}
		if got := recorded(t, db); !reflect.DeepEqual(got, wantRecorded) {
			t.Fatalf("recorded after re-Apply = %+v, want %+v", got, wantRecorded)
		}

		// A new migration, even numbered between applied ones, runs alone.
		fsys["m/0011_fourth.sql"] = file(step("fourth"))
		fsys["m/0005_late.sql"] = file(step("late"))
		if err := sqlmigrate.Apply(ctx, db, fsys, "m", table, ""); err != nil {
			t.Fatalf("Apply with new migrations: %v", err)
		}
		wantSteps = append(wantSteps, "late", "fourth")
		if got := steps(t, db); !reflect.DeepEqual(got, wantSteps) {
			t.Fatalf("steps after new migrations = %q, want %q", got, wantSteps)
		}
		wantRecorded = []applied{{1, "0001_first.sql"}, {2, "0002_second.sql"}, {5, "0005_late.sql"}, {10, "0010_third.sql"}, {11, "0011_fourth.sql"}}
		if got := recorded(t, db); !reflect.DeepEqual(got, wantRecorded) {
			t.Fatalf("recorded after new migrations = %+v, want %+v", got, wantRecorded)
		}
	})
}

func TestApplyFailingMigrationRollsBackAndIsNamed(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, _ eventstore.Store, db *sql.DB) {
		ctx := context.Background()
		fsys := fstest.MapFS{
			"m/0001_first.sql": file(`CREATE TABLE steps (n BIGINT NOT NULL, name TEXT NOT NULL);
` + step("first")),
			// Its first two statements succeed, then one fails: the
			// whole migration must be rolled back.
			"m/0002_broken.sql": file(`CREATE TABLE half (x INTEGER);
` + step("broken") + `;
INSERT INTO no_such_table (x) VALUES (1)`),
			"m/0003_after.sql": file(step("after")),
		}
		err := sqlmigrate.Apply(ctx, db, fsys, "m", table, "")
		if err == nil {
			t.Fatal("Apply with a broken migration succeeded")
		}
		if !strings.Contains(err.Error(), "0002_broken.sql") {
			t.Errorf("error %q does not name the failing migration", err)
		}
		if strings.Contains(err.Error(), "0001_first.sql") || strings.Contains(err.Error(), "0003_after.sql") {
			t.Errorf("error %q names another migration", err)
		}
		if got, want := recorded(t, db), []applied{{1, "0001_first.sql"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("recorded after failure = %+v, want %+v", got, want)
		}
		if got, want := steps(t, db), []string{"first"}; !reflect.DeepEqual(got, want) {
			t.Errorf("steps after failure = %q, want %q (the broken migration's insert or a later migration survived)", got, want)
		}
		if tableExists(db, "half") {
			t.Error("table created by the failed migration survived its rollback")
		}

		// Once fixed, the failed migration and the ones after it run.
		fsys["m/0002_broken.sql"] = file(`CREATE TABLE half (x INTEGER);
` + step("fixed"))
		if err := sqlmigrate.Apply(ctx, db, fsys, "m", table, ""); err != nil {
			t.Fatalf("Apply after fix: %v", err)
		}
		if got, want := steps(t, db), []string{"first", "fixed", "after"}; !reflect.DeepEqual(got, want) {
			t.Errorf("steps after fix = %q, want %q", got, want)
		}
		if !tableExists(db, "half") {
			t.Error("table of the fixed migration missing")
		}
	})
}

func TestApplyFailingLockAppliesNothing(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, _ eventstore.Store, db *sql.DB) {
		err := sqlmigrate.Apply(context.Background(), db, baseFS(), "m", table, "SELECT * FROM no_such_lock_table")
		if err == nil {
			t.Fatal("Apply with a failing lock statement succeeded")
		}
		if !strings.Contains(err.Error(), "lock") {
			t.Errorf("error %q does not say the lock failed", err)
		}
		if tableExists(db, table) || tableExists(db, "steps") {
			t.Error("a table was created although the lock statement failed")
		}
	})
}

func TestApplyRejectsBadInput(t *testing.T) {
	_, db := testenv.SQLite(t)
	for _, tc := range []struct {
		name string
		fsys fstest.MapFS
		dir  string
		want string // in the error
	}{
		{"no number", fstest.MapFS{"m/first.sql": file("SELECT 1")}, "m", "first.sql"},
		{"no underscore", fstest.MapFS{"m/0001.sql": file("SELECT 1")}, "m", "0001.sql"},
		{"number not at start", fstest.MapFS{"m/v1_first.sql": file("SELECT 1")}, "m", "v1_first.sql"},
		{"missing directory", fstest.MapFS{"m/0001_first.sql": file("SELECT 1")}, "nope", "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sqlmigrate.Apply(context.Background(), db, tc.fsys, tc.dir, table, "")
			if err == nil {
				t.Fatal("Apply succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if got := recorded(t, db); len(got) != 0 {
				t.Errorf("recorded = %+v, want nothing", got)
			}
		})
	}
}

func TestApplyCancelledContext(t *testing.T) {
	_, db := testenv.SQLite(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sqlmigrate.Apply(ctx, db, baseFS(), "m", table, ""); err == nil {
		t.Fatal("Apply with a cancelled context succeeded")
	}
	if tableExists(db, "steps") {
		t.Error("a migration ran with a cancelled context")
	}
}

// Several migrators racing on one PostgreSQL database, serialised by an
// advisory lock, apply each migration exactly once and all succeed.
func TestApplyConcurrentMigratorsPostgres(t *testing.T) {
	_, db := testenv.Postgres(t)
	ctx := context.Background()
	const lock = "SELECT pg_advisory_xact_lock(918273645)"
	// A first deployment created the record table and steps.
	fsys := fstest.MapFS{"m/0001_first.sql": file(`CREATE TABLE steps (n BIGINT NOT NULL, name TEXT NOT NULL);
` + step("first"))}
	if err := sqlmigrate.Apply(ctx, db, fsys, "m", table, lock); err != nil {
		t.Fatal(err)
	}
	want := []string{"first"}
	for i := 2; i <= 8; i++ {
		name := fmt.Sprintf("step%d", i)
		// The sleep widens the window in which unserialised migrators
		// would run a migration at the same time; it is no threshold.
		fsys[fmt.Sprintf("m/%04d_%s.sql", i, name)] = file("SELECT pg_sleep(0.02);\n" + step(name))
		want = append(want, name)
	}
	const migrators = 6
	var wg sync.WaitGroup
	errs := make([]error, migrators)
	for i := range migrators {
		wg.Go(func() { errs[i] = sqlmigrate.Apply(ctx, db, fsys, "m", table, lock) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}
	if got := steps(t, db); !reflect.DeepEqual(got, want) {
		t.Errorf("steps = %q, want %q", got, want)
	}
	if got := recorded(t, db); len(got) != len(want) {
		t.Errorf("recorded %d migrations, want %d: %+v", len(got), len(want), got)
	}
}

// Migrators starting together on a new database all succeed: the record
// table is created under the lock.
func TestApplyConcurrentMigratorsOnANewDatabasePostgres(t *testing.T) {
	_, db := testenv.Postgres(t)
	ctx := context.Background()
	const lock = "SELECT pg_advisory_xact_lock(918273646)"
	fsys := fstest.MapFS{"m/0001_first.sql": file(`CREATE TABLE steps (n BIGINT NOT NULL, name TEXT NOT NULL);
` + step("first"))}
	const migrators = 8
	var wg sync.WaitGroup
	errs := make([]error, migrators)
	for i := range migrators {
		wg.Go(func() { errs[i] = sqlmigrate.Apply(ctx, db, fsys, "m", "fresh_migrations", lock) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}
	if got := steps(t, db); !reflect.DeepEqual(got, []string{"first"}) {
		t.Errorf("steps = %q", got)
	}
}

// Two migrations with one number are refused, naming both.
func TestApplyRefusesDuplicateNumbers(t *testing.T) {
	_, db := testenv.SQLite(t)
	fsys := fstest.MapFS{"m/0001_a.sql": file("SELECT 1;"), "m/0001_b.sql": file("SELECT 2;")}
	err := sqlmigrate.Apply(context.Background(), db, fsys, "m", table, "")
	if err == nil || !strings.Contains(err.Error(), "0001_a.sql") || !strings.Contains(err.Error(), "0001_b.sql") {
		t.Fatalf("err %v", err)
	}
}
