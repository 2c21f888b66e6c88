package split_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/postgres"
	"github.com/agora-commerce/agora/eventstore/sqlite"
	"github.com/agora-commerce/agora/internal/audit"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/reshard"
	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/internal/split"
	"github.com/agora-commerce/agora/internal/testenv"
)

// fixture unpacks a data directory written by the release before
// per-context stores (commit c88276e, `agora serve` with the demo seed):
// the demo customer placed two orders of the mug (both confirmed),
// deposited 500 and transferred 100 to the merchant, leaving a balance of
// 97,900 USD cents.
func fixture(t *testing.T) string {
	t.Helper()
	gz := gunzip(t, "testdata/single-store-c88276e.tgz")
	dir := t.TempDir()
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(h.Name)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// readAll is every record of the log at path.
func readAll(t *testing.T, path string) []eventstore.Record {
	t.Helper()
	r, err := sqlite.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	recs, err := r.ReadAll(context.Background(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestSplitUpgradesASingleStore: a data directory the previous release
// wrote is split into a store per context — every event in its owner's
// log with its ID, stream version, data and recording time, positions
// renumbered per context — and the platform starts on it with the
// orders, balances and users it had, the audit clean; a second run
// refuses.
func TestSplitUpgradesASingleStore(t *testing.T) {
	dir := fixture(t)
	ctx := context.Background()
	old := readAll(t, filepath.Join(dir, "events.db"))
	if len(old) == 0 {
		t.Fatal("the fixture has no events")
	}
	var calls, last int
	rep, err := split.Run(ctx, dir, func(done, total int) {
		calls++
		if done < last || total != len(old) {
			t.Errorf("progress %d of %d after %d", done, total, last)
		}
		last = done
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || last != len(old) {
		t.Errorf("progress: %d calls, last %d of %d", calls, last, len(old))
	}

	// Every event in its owner's log, as it was.
	byID := map[uuid.UUID]eventstore.Record{}
	for _, r := range old {
		byID[r.ID] = r
	}
	moved := 0
	for _, d := range server.Modules {
		path := filepath.Join(server.ContextDir(dir, d.Name), "events.db")
		recs := readAll(t, path)
		if rep.Events[d.Name] != len(recs) {
			t.Errorf("%s: report says %d events, its log holds %d", d.Name, rep.Events[d.Name], len(recs))
		}
		for i, r := range recs {
			o, ok := byID[r.ID]
			switch {
			case !ok:
				t.Errorf("%s: event %s was not in the old log", d.Name, r.ID)
			case r.Position != uint64(i+1):
				t.Errorf("%s: event %d at position %d", d.Name, i+1, r.Position)
			case split.Owner(r.StreamID) != d.Name:
				t.Errorf("%s holds %s, whose owner is %s", d.Name, r.StreamID, split.Owner(r.StreamID))
			case r.StreamID != o.StreamID || r.Version != o.Version || r.Type != o.Type || !bytes.Equal(r.Data, o.Data) ||
				!r.RecordedAt.Equal(o.RecordedAt) || r.Metadata != o.Metadata:
				t.Errorf("%s: event %s changed: %+v, was %+v", d.Name, r.ID, r, o)
			}
			delete(byID, r.ID)
			moved++
		}
	}
	if len(byID) != 0 || moved != len(old) {
		t.Errorf("%d of %d events moved; left behind: %d", moved, len(old), len(byID))
	}
	for _, f := range []string{"events.db.pre-split", "readmodels.db.pre-split", "platform.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("after the split: %v", err)
		}
	}
	if _, err := split.Run(ctx, dir, nil); !errors.Is(err, split.ErrAlreadySplit) {
		t.Errorf("a second run: %v", err)
	}

	// Payments' one log is refused until it is spread over partitions
	// (what `agora migrate split` does next).
	cfg := server.Config{Addr: "127.0.0.1:0", DataDir: dir, SeedDemo: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, _, err := server.Start(ctx, cfg); !errors.Is(err, partition.ErrUnpartitioned) {
		t.Fatalf("start on payments' one log: %v", err)
	}
	rs, err := reshard.Run(ctx, dir, partition.Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Events["payments-p0"]+rs.Events["payments-p1"]+rs.Events["payments-p2"]+rs.Events["payments-p3"] != rep.Events["payments"] || rs.Accounts < 2 {
		t.Errorf("reshard: %+v after a split of %+v", rs, rep.Events)
	}

	// The platform starts on it, with what it had.
	serveFixture(t, cfg)
}

// serveFixture starts the platform on a split fixture and checks what
// the fixture had: the demo customer logs in, has its two orders
// confirmed and a balance of 97,900; the audit is clean.
func serveFixture(t *testing.T, cfg server.Config) {
	t.Helper()
	ctx := context.Background()
	srv, stop, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	token := post(t, srv.URL()+"/api/v1/auth/token", "", `{"email":"customer@demo.agora","password":"customer-demo"}`)["access_token"]
	if token == nil {
		t.Fatal("the demo customer cannot log in after the split")
	}
	me := get(t, srv.URL()+"/api/v1/me", token.(string))
	var orders map[string]any
	deadline := time.Now().Add(15 * time.Second)
	for {
		orders = get(t, srv.URL()+"/api/v1/orders", token.(string))
		items, _ := orders["items"].([]any)
		confirmed := 0
		for _, it := range items {
			if it.(map[string]any)["status"] == "Confirmed" {
				confirmed++
			}
		}
		acct := get(t, srv.URL()+"/api/v1/accounts/"+me["account_id"].(string), token.(string))
		bal, _ := acct["balance"].(map[string]any)
		if confirmed == 2 && len(items) == 2 && bal != nil && bal["amount"] == 97_900.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the split: orders %v, account %v", orders, acct)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var rep2 audit.Report
	for {
		if rep2, err = srv.Audit(ctx, audit.Options{}); err != nil {
			t.Fatal(err)
		}
		if rep2.OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit after the split: %+v", rep2.Violations())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSplitThatFailsLeavesTheOldLayout: a split that cannot finish (a
// table no context owns) writes nothing in place: the old store is as it
// was, and the platform still refuses to start on it until it is split.
func TestSplitThatFailsLeavesTheOldLayout(t *testing.T) {
	dir := fixture(t)
	db, err := sql.Open("sqlite", sqlite.DSN(filepath.Join(dir, "readmodels.db"), false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE mystery_things (id TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := readAll(t, filepath.Join(dir, "events.db"))
	_, err = split.Run(context.Background(), dir, nil)
	if err == nil || !strings.Contains(err.Error(), "mystery_things") {
		t.Fatalf("split with a table of no context: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".pre-split") || e.Name() == "platform.db" {
			t.Errorf("a failed split left %s", e.Name())
		}
	}
	if after := readAll(t, filepath.Join(dir, "events.db")); len(after) != len(before) {
		t.Errorf("the old log went from %d to %d events", len(before), len(after))
	}
}

func post(t *testing.T, url, token, body string) map[string]any {
	t.Helper()
	return do(t, "POST", url, token, body)
}

func get(t *testing.T, url, token string) map[string]any {
	t.Helper()
	return do(t, "GET", url, token, "")
}

func do(t *testing.T, method, url, token, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	json.NewDecoder(res.Body).Decode(&out) //nolint:errcheck // checked by the caller's fields
	return out
}

// TestSplitUpgradesASingleSchema: a PostgreSQL schema the previous
// release wrote (testdata/single-schema-c88276e.sql.gz: pg_dump of
// `agora serve --postgres-schema splitfix` at commit c88276e after the
// same orders, deposit and transfer as the data directory's) is split
// into a schema per context, each owned by its context's role, every
// event moved as it was; the platform serves it as it was, the audit
// clean; a second run refuses.
func TestSplitUpgradesASingleSchema(t *testing.T) {
	pg := testenv.PostgresURL(t)
	ctx := context.Background()
	id := rand.Uint64()
	old, prefix := fmt.Sprintf("splitold_%d", id), fmt.Sprintf("splitnew_%d", id)
	t.Cleanup(func() {
		_ = postgres.DropSchema(context.Background(), pg, old)
		_ = postgres.DropSchema(context.Background(), pg, prefix)
	})
	dump, err := io.ReadAll(gunzip(t, "testdata/single-schema-c88276e.sql.gz"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, strings.ReplaceAll(string(dump), "splitfix", old)); err != nil {
		t.Fatalf("restore the fixture: %v", err)
	}
	src, err := postgres.Open(ctx, pg, postgres.Options{Schema: old, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	before, err := src.ReadAll(ctx, 0, 1<<20)
	src.Close()
	if err != nil || len(before) == 0 {
		t.Fatalf("the fixture's log: %d events, %v", len(before), err)
	}

	rep, err := split.RunPostgres(ctx, pg, old, prefix, partition.Default, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[uuid.UUID]eventstore.Record{}
	for _, r := range before {
		byID[r.ID] = r
	}
	type log struct{ name, context, schema string }
	var logs []log
	for _, d := range server.Modules {
		if d.Name != partition.Context {
			logs = append(logs, log{d.Name, d.Name, server.PostgresSchemaOf(prefix, d.Name)})
			continue
		}
		for k := range partition.Default {
			logs = append(logs, log{partition.Log(k), d.Name, server.PartitionSchemaOf(prefix, k)})
		}
	}
	for _, l := range logs {
		var owner string
		if err := conn.QueryRow(ctx, `SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1`, l.schema).Scan(&owner); err != nil || owner != server.PostgresRoleOf(l.context) {
			t.Errorf("%s: owner %q, %v", l.schema, owner, err)
		}
		st, err := postgres.Open(ctx, pg, postgres.Options{Schema: l.schema, MaxConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := st.ReadAll(ctx, 0, 1<<20)
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != rep.Events[l.name] {
			t.Errorf("%s: %d events, the report says %d", l.name, len(recs), rep.Events[l.name])
		}
		for _, r := range recs {
			o, ok := byID[r.ID]
			if !ok || split.Owner(r.StreamID) != l.context || r.StreamID != o.StreamID || r.Version != o.Version || !bytes.Equal(r.Data, o.Data) ||
				!r.RecordedAt.Equal(o.RecordedAt) {
				t.Errorf("%s: event %s: %+v, was %+v", l.name, r.ID, r, o)
			}
			if l.context == partition.Context && partition.Log(partition.Of(partition.KeyOf(r.StreamID), partition.Default)) != l.name {
				t.Errorf("%s holds %s, whose partition is another", l.name, r.StreamID)
			}
			delete(byID, r.ID)
		}
	}
	if len(byID) != 0 {
		t.Errorf("%d events left behind", len(byID))
	}
	if _, err := split.RunPostgres(ctx, pg, old, prefix, partition.Default, nil, nil); !errors.Is(err, split.ErrAlreadySplit) {
		t.Errorf("a second run: %v", err)
	}
	serveFixture(t, server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), PostgresURL: pg, PostgresSchema: prefix, SeedDemo: true,
		NATSNamespace: fmt.Sprintf("split%d", id), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// gunzip opens the gzipped file at path.
func gunzip(t *testing.T, path string) io.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return gz
}
