package ops_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/gateway/registry"
	"github.com/agora-commerce/agora/internal/gateway/resilience"
	"github.com/agora-commerce/agora/internal/ops"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/projection"
	"github.com/agora-commerce/agora/saga"
)

// harness serves an API whose callers are admins of the tenant the
// request's X-Tenant header names (demo by default).
type harness struct {
	t     *testing.T
	api   *ops.API
	srv   *httptest.Server
	store eventstore.Store
	db    *sql.DB
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newHarness(t *testing.T, cfg ops.Config) *harness {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	api := ops.New(cfg)
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant := r.Header.Get("X-Tenant")
		if tenant == "" {
			tenant = auth.DefaultTenant
		}
		c := &auth.Claims{Tenant: tenant, Roles: []string{auth.RoleAdmin}}
		c.Subject = "admin-of-" + tenant
		mux.ServeHTTP(w, r.WithContext(auth.WithClaims(r.Context(), c)))
	}))
	t.Cleanup(srv.Close)
	h := &harness{t: t, api: api, srv: srv}
	if len(cfg.SagaDBs) > 0 {
		h.db = cfg.SagaDBs[0]
	}
	if len(cfg.Logs) > 0 {
		if s, ok := cfg.Logs[0].Store.(eventstore.Store); ok {
			h.store = s
		}
	}
	return h
}

// storeHarness is a harness on a fresh SQLite store and read-model
// database, with cfg's other fields.
func storeHarness(t *testing.T, cfg ops.Config) *harness {
	store, db := testenv.SQLite(t)
	cfg.Logs, cfg.SagaDBs = []ops.Log{{Context: "test", Store: store}}, []*sql.DB{db}
	return newHarness(t, cfg)
}

type answer struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (h *harness) do(method, path, tenant string) answer {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path, nil)
	if tenant != "" {
		req.Header.Set("X-Tenant", tenant)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, header: res.Header, raw: raw}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func (h *harness) get(path, tenant string) answer {
	h.t.Helper()
	a := h.do("GET", path, tenant)
	if a.status != http.StatusOK {
		h.t.Fatalf("GET %s: %d %s", path, a.status, a.raw)
	}
	return a
}

// ev is an event to append: its stream, type, tenant and correlation.
type ev struct{ stream, typ, tenant, corr, tp string }

func (h *harness) append(evs ...ev) {
	h.t.Helper()
	for _, e := range evs {
		if _, err := h.store.Append(context.Background(), e.stream, eventstore.Any, eventstore.EventData{Type: e.typ,
			Data: json.RawMessage(`{"stream": "` + e.stream + `"}`), Metadata: eventstore.Metadata{Tenant: e.tenant,
				CorrelationID: e.corr, TraceParent: e.tp}}); err != nil {
			h.t.Fatal(err)
		}
	}
}

// items returns the items of a, each as "stream/type".
func items(a answer) []string {
	out := []string{}
	list, _ := a.body["items"].([]any)
	for _, it := range list {
		m := it.(map[string]any)
		out = append(out, fmt.Sprint(m["stream_id"], "/", m["type"]))
	}
	return out
}

const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// fixture appends the log the log tests read: demo's events (with and
// without a tenant in their metadata) and acme's.
func fixture(h *harness) {
	h.append(
		ev{"order-1", "ordering.OrderPlaced", "", "c1", tp},     // 1: demo (no tenant)
		ev{"order-x", "ordering.OrderPlaced", "acme", "c9", ""}, // 2: acme
		ev{"account-1", "payments.MoneyDeposited", "demo", "c1", ""},
		ev{"order-1", "ordering.OrderConfirmed", "demo", "c2", ""},
		ev{"order-2", "ordering.OrderPlaced", "demo", "c3", ""},
		ev{"order-x", "ordering.OrderConfirmed", "acme", "c9", ""},
	)
}

func eq(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func TestLogFiltersAndTenants(t *testing.T) {
	h := storeHarness(t, ops.Config{})
	fixture(h)
	all := []string{"order-1/ordering.OrderPlaced", "account-1/payments.MoneyDeposited", "order-1/ordering.OrderConfirmed", "order-2/ordering.OrderPlaced"}

	a := h.get("/api/v1/ops/log", "")
	eq(t, "demo's tail", items(a), all)
	if a.body["head"] != 6.0 || a.body["next_after"] != nil {
		t.Errorf("tail: head %v next_after %v", a.body["head"], a.body["next_after"])
	}
	first := a.body["items"].([]any)[0].(map[string]any)
	meta := first["metadata"].(map[string]any)
	if first["position"] != 1.0 || first["version"] != 1.0 || first["schema_version"] != 1.0 || first["id"] == "" ||
		first["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || meta["correlation_id"] != "c1" || meta["traceparent"] != tp ||
		meta["tenant"] != nil || first["data"].(map[string]any)["stream"] != "order-1" {
		t.Errorf("first event: %s", a.raw)
	}
	if _, err := time.Parse(time.RFC3339Nano, first["recorded_at"].(string)); err != nil || !strings.HasSuffix(first["recorded_at"].(string), "Z") {
		t.Errorf("recorded_at %v", first["recorded_at"])
	}
	if second := a.body["items"].([]any)[1].(map[string]any); second["trace_id"] != nil {
		t.Errorf("an event without a traceparent has trace_id %v", second["trace_id"])
	}
	eq(t, "acme's tail", items(h.get("/api/v1/ops/log", "acme")), []string{"order-x/ordering.OrderPlaced", "order-x/ordering.OrderConfirmed"})
	eq(t, "tail of 2", items(h.get("/api/v1/ops/log?limit=2", "")), all[2:])

	ordering := []string{all[0], all[2], all[3]}
	eq(t, "type prefix", items(h.get("/api/v1/ops/log?type=ordering.", "")), ordering)
	eq(t, "type *", items(h.get("/api/v1/ops/log?type=ordering.*", "")), ordering)
	eq(t, "type *, forward", items(h.get("/api/v1/ops/log?after=0&type=ordering.*", "")), ordering)
	eq(t, "exact type", items(h.get("/api/v1/ops/log?type=ordering.OrderPlaced", "")), []string{all[0], all[3]})
	eq(t, "a prefix is not a type", items(h.get("/api/v1/ops/log?type=ordering", "")), []string{})
	eq(t, "stream prefix", items(h.get("/api/v1/ops/log?stream=order-*", "")), ordering)
	eq(t, "exact stream", items(h.get("/api/v1/ops/log?stream=order-1", "")), []string{all[0], all[2]})
	eq(t, "correlation", items(h.get("/api/v1/ops/log?correlation_id=c1", "")), all[:2])
	eq(t, "another tenant's correlation", items(h.get("/api/v1/ops/log?correlation_id=c9", "")), []string{})
	eq(t, "type and stream", items(h.get("/api/v1/ops/log?type=ordering.OrderPlaced&stream=order-2", "")), all[3:])

	// Forward, page by page.
	p := h.get("/api/v1/ops/log?after=0&limit=3", "")
	eq(t, "page 1", items(p), all[:3])
	if p.body["next_after"] != "test.4" {
		t.Fatalf("page 1: next_after %v", p.body["next_after"])
	}
	if p := h.get("/api/v1/ops/log?after=test.4&limit=1", ""); p.body["next_after"] != "test.5" {
		t.Errorf("a full page before the head: next_after %v", p.body["next_after"])
	}
	p = h.get("/api/v1/ops/log?after=test.4&limit=3", "")
	eq(t, "page 2", items(p), all[3:])
	if p.body["next_after"] != nil {
		t.Errorf("the last page has next_after %v", p.body["next_after"])
	}
	if p := h.get("/api/v1/ops/log?after=6", ""); len(items(p)) != 0 || p.body["next_after"] != nil {
		t.Errorf("after the head: %s", p.raw)
	}
}

// TestLogScanBound: a filtered read scans at most ScanLimit events and
// says where to go on.
func TestLogScanBound(t *testing.T) {
	h := storeHarness(t, ops.Config{})
	h.api.ScanLimit = 10
	for i := 1; i <= 30; i++ {
		typ := "noise.Happened"
		if i == 25 {
			typ = "rare.Happened"
		}
		h.append(ev{fmt.Sprintf("s-%d", i), typ, "", "", ""})
	}
	var got []string
	after, pages := "0", 0
	for {
		p := h.get("/api/v1/ops/log?type=rare.&after="+after, "")
		pages++
		got = append(got, items(p)...)
		next, ok := p.body["next_after"].(string)
		if !ok {
			break
		}
		after = next
		if pages > 10 {
			t.Fatal("no end")
		}
	}
	eq(t, "found across pages", got, []string{"s-25/rare.Happened"})
	if pages != 3 { // 1-10, 11-20, 21-30: the end of the log
		t.Errorf("%d pages, want 3", pages)
	}
	if p := h.get("/api/v1/ops/log?type=rare.&after=0", ""); p.body["next_after"] != "test.10" || len(items(p)) != 0 || p.body["head"] != 30.0 {
		t.Errorf("first bounded page: %s", p.raw)
	}
	// The tail scans back at most ScanLimit events too: position 25 is
	// 6 from the head, so it is found; a bound of 5 misses it.
	eq(t, "tail within the bound", items(h.get("/api/v1/ops/log?type=rare.", "")), []string{"s-25/rare.Happened"})
	h.api.ScanLimit = 5
	eq(t, "tail past the bound", items(h.get("/api/v1/ops/log?type=rare.", "")), []string{})
	// Without a filter the limit ends the page first.
	h.api.ScanLimit = 10
	if p := h.get("/api/v1/ops/log?after=0&limit=4", ""); len(items(p)) != 4 || p.body["next_after"] != "test.4" {
		t.Errorf("unfiltered page: %s", p.raw)
	}
}

func TestBadParametersAre400(t *testing.T) {
	h := storeHarness(t, ops.Config{DeadLetters: nil})
	for path, field := range map[string]string{
		"/api/v1/ops/log?after=-1":                                        "after",
		"/api/v1/ops/log?after=x":                                         "after",
		"/api/v1/ops/log?after=":                                          "after",
		"/api/v1/ops/log?limit=0":                                         "limit",
		"/api/v1/ops/log?limit=501":                                       "limit",
		"/api/v1/ops/log?color=red":                                       "color",
		"/api/v1/ops/log?type=a%00b":                                      "type",
		"/api/v1/ops/log?stream=" + strings.Repeat("s", 513):              "stream",
		"/api/v1/ops/log/stream?after=x":                                  "after",
		"/api/v1/ops/log/stream?limit=5":                                  "limit",
		"/api/v1/ops/streams/s-1?from=0":                                  "from",
		"/api/v1/ops/streams/s-1?from=x":                                  "from",
		"/api/v1/ops/streams/s-1?limit=x":                                 "limit",
		"/api/v1/ops/sagas?status=Bogus":                                  "status",
		"/api/v1/ops/sagas?cursor=%21%21":                                 "cursor",
		"/api/v1/ops/sagas?cursor=" + url.QueryEscape("bm90IGEgY3Vyc29y"): "cursor",
		"/api/v1/ops/sagas?limit=-3":                                      "limit",
		"/api/v1/ops/dead-letters?cursor=zzz":                             "cursor",
		"/api/v1/ops/dead-letters?limit=1000":                             "limit",
		"/api/v1/ops/processing?x=1":                                      "x",
	} {
		a := h.do("GET", path, "")
		p := testenv.Problem(t, a.status, a.header, a.raw, http.StatusBadRequest)
		if len(p.Errors) != 1 || p.Errors[0].Field != field {
			t.Errorf("GET %s: %+v, want a 400 naming %s", path, p, field)
		}
	}
	req, _ := http.NewRequest("GET", h.srv.URL+"/api/v1/ops/log/stream", nil)
	req.Header.Set("Last-Event-ID", "not-a-position")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if p := testenv.Problem(t, res.StatusCode, res.Header, raw, http.StatusBadRequest); p.Errors[0].Field != "Last-Event-ID" {
		t.Errorf("bad Last-Event-ID: %+v", p)
	}
}

func TestStream(t *testing.T) {
	h := storeHarness(t, ops.Config{})
	for i := 0; i < 5; i++ {
		h.append(ev{"audit-demo", fmt.Sprintf("identity.Thing%d", i), "demo", "", ""})
	}
	h.append(ev{"audit-acme", "identity.LoginSucceeded", "acme", "", ""})
	a := h.get("/api/v1/ops/streams/audit-demo?limit=2", "")
	if a.body["stream_id"] != "audit-demo" || a.body["next_from"] != 3.0 {
		t.Fatalf("page 1: %s", a.raw)
	}
	eq(t, "page 1", items(a), []string{"audit-demo/identity.Thing0", "audit-demo/identity.Thing1"})
	a = h.get("/api/v1/ops/streams/audit-demo?from=3&limit=2", "")
	eq(t, "page 2", items(a), []string{"audit-demo/identity.Thing2", "audit-demo/identity.Thing3"})
	a = h.get("/api/v1/ops/streams/audit-demo?from=5", "")
	if eq(t, "last page", items(a), []string{"audit-demo/identity.Thing4"}); a.body["next_from"] != nil {
		t.Errorf("the last page has next_from %v", a.body["next_from"])
	}
	if a := h.get("/api/v1/ops/streams/audit-demo?from=9", ""); len(items(a)) != 0 {
		t.Errorf("past the end: %s", a.raw)
	}
	eq(t, "acme's own", items(h.get("/api/v1/ops/streams/audit-acme", "acme")), []string{"audit-acme/identity.LoginSucceeded"})
	for _, c := range []struct{ path, tenant string }{
		{"/api/v1/ops/streams/audit-acme", ""},        // another tenant's
		{"/api/v1/ops/streams/audit-demo", "acme"},    // another tenant's
		{"/api/v1/ops/streams/audit-acme?from=2", ""}, // from past its end: still another tenant's
		{"/api/v1/ops/streams/nothing-here", ""},
	} {
		a := h.do("GET", c.path, c.tenant)
		if p := testenv.Problem(t, a.status, a.header, a.raw, http.StatusNotFound); p.Reason != "stream_not_found" {
			t.Errorf("%s as %q: %+v", c.path, c.tenant, p)
		}
	}
}

// sse reads Server-Sent Events frames.
type sse struct {
	t    *testing.T
	res  *http.Response
	rd   *bufio.Reader
	stop context.CancelFunc
}

func (h *harness) openStream(query string, header ...string) *sse {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/api/v1/ops/log/stream"+query, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		h.t.Fatalf("stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	s := &sse{t: h.t, res: res, rd: bufio.NewReader(res.Body), stop: cancel}
	h.t.Cleanup(func() { cancel(); res.Body.Close() })
	return s
}

// frame is one event: its id, event and data lines.
type frame struct{ id, event, data string }

// next returns the next event frame (skipping comments), failing the
// test after timeout.
func (s *sse) next(timeout time.Duration) frame {
	s.t.Helper()
	type got struct {
		f   frame
		err error
	}
	ch := make(chan got, 1)
	go func() {
		var f frame
		for {
			line, err := s.rd.ReadString('\n')
			if err != nil {
				ch <- got{err: err}
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if f.data != "" {
					ch <- got{f: f}
					return
				}
			case strings.HasPrefix(line, ":"):
			case strings.HasPrefix(line, "id: "):
				f.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				f.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				f.data = line[6:]
			}
		}
	}()
	select {
	case g := <-ch:
		if g.err != nil {
			s.t.Fatalf("stream: %v", g.err)
		}
		return g.f
	case <-time.After(timeout):
		s.t.Fatalf("no event within %v", timeout)
		return frame{}
	}
}

func TestLogStreamDeliversNewEvents(t *testing.T) {
	h := storeHarness(t, ops.Config{})
	fixture(h) // before the stream opens: not sent
	s := h.openStream("?type=ordering.")
	time.Sleep(50 * time.Millisecond)                                // the stream waits for an append
	h.append(ev{"order-y", "ordering.OrderPlaced", "acme", "", ""})  // 7: another tenant's
	h.append(ev{"account-2", "payments.MoneyDeposited", "", "", ""}) // 8: filtered out
	start := time.Now()
	h.append(ev{"order-3", "ordering.OrderPlaced", "", "c7", tp}) // 9
	f := s.next(2 * time.Second)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("the event took %v to arrive", d)
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(f.data), &e); err != nil {
		t.Fatalf("data %q: %v", f.data, err)
	}
	if f.id != "test.9" || f.event != "ordering.OrderPlaced" || e["position"] != 9.0 || e["stream_id"] != "order-3" ||
		e["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || strings.Contains(f.data, "\n") {
		t.Errorf("frame %+v", f)
	}

	// A reconnecting client resumes after its Last-Event-ID (or ?after=).
	r := h.openStream("?stream=order-*", "Last-Event-ID", "3")
	for _, want := range []string{"test.4", "test.5", "test.9"} {
		if f := r.next(2 * time.Second); f.id != want {
			t.Errorf("resumed: id %s, want %s", f.id, want)
		}
	}
	a := h.openStream("?after=6", "X-Tenant", "acme")
	if f := a.next(2 * time.Second); f.id != "test.7" {
		t.Errorf("acme after 6: id %s, want 7", f.id)
	}
}

// TestSagas lists instances of the caller's tenant from the saga index.
func TestSagas(t *testing.T) {
	store, db := testenv.SQLite(t)
	ctx, cancel := context.WithCancel(context.Background())
	e := saga.NewEngine(store, db, saga.Options{Logger: quiet(), BaseBackoff: time.Millisecond})
	type data struct{ Fail bool }
	saga.Register(e, saga.Definition[data]{Type: "thing", Steps: []saga.Step[data]{
		{Name: "one", Action: func(context.Context, *saga.Exec[data]) error { return nil },
			Compensate: func(context.Context, *saga.Exec[data]) error { return nil }},
		{Name: "two", Action: func(_ context.Context, x *saga.Exec[data]) error {
			if x.Data.Fail {
				return saga.Fail("no")
			}
			return nil
		}},
	}})
	done := make(chan struct{})
	go func() { defer close(done); _ = e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	start := func(tenant, id string, fail bool) {
		sctx := saga.WithMetadata(ctx, eventstore.Metadata{Tenant: tenant})
		if _, err := e.Start(sctx, "thing", id, data{Fail: fail}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Wait(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	start("", "d1", false)
	start("demo", "d2", true)
	start("acme", "a1", false)
	start("demo", "d3", false)
	head, _ := store.Head(ctx)
	if err := e.Index().WaitFor(ctx, head); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, ops.Config{Logs: []ops.Log{{Context: "test", Store: store}}, SagaDBs: []*sql.DB{db}})
	ids := func(a answer) []string {
		var out []string
		for _, it := range a.body["items"].([]any) {
			m := it.(map[string]any)
			out = append(out, fmt.Sprint(m["id"], ":", m["status"]))
		}
		return out
	}
	a := h.get("/api/v1/ops/sagas", "")
	eq(t, "demo's, newest first", ids(a), []string{"d3:Completed", "d2:Compensated", "d1:Completed"})
	it := a.body["items"].([]any)[0].(map[string]any)
	if it["type"] != "thing" || a.body["next_cursor"] != nil {
		t.Errorf("list: %s", a.raw)
	}
	if _, err := time.Parse(time.RFC3339Nano, it["updated_at"].(string)); err != nil {
		t.Errorf("updated_at: %v", err)
	}
	eq(t, "acme's", ids(h.get("/api/v1/ops/sagas", "acme")), []string{"a1:Completed"})
	eq(t, "by status", ids(h.get("/api/v1/ops/sagas?status=Compensated", "")), []string{"d2:Compensated"})
	eq(t, "by type", ids(h.get("/api/v1/ops/sagas?type=other", "")), nil)
	// Page by page.
	var all []string
	next := ""
	for i := 0; ; i++ {
		a := h.get("/api/v1/ops/sagas?limit=1"+next, "")
		all = append(all, ids(a)...)
		c, ok := a.body["next_cursor"].(string)
		if !ok || i > 5 {
			break
		}
		next = "&cursor=" + url.QueryEscape(c)
	}
	eq(t, "paged", all, []string{"d3:Completed", "d2:Compensated", "d1:Completed"})
}

// counter is a projection counting events in a table.
type counter struct{}

func (counter) Name() string { return "test.counter" }
func (counter) Setup(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS counted (n INTEGER NOT NULL)`)
	if err == nil {
		_, err = db.ExecContext(ctx, `INSERT INTO counted (n) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM counted)`)
	}
	return err
}
func (counter) Apply(ctx context.Context, tx *sql.Tx, batch []eventstore.Record) error {
	_, err := tx.ExecContext(ctx, `UPDATE counted SET n = n + $1`, len(batch))
	return err
}
func (counter) Reset(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `UPDATE counted SET n = 0`)
	return err
}

// stuck is a projection whose rebuild lasts until release is closed.
type stuck struct {
	release chan struct{}
	calls   int
	mu      sync.Mutex
}

func (s *stuck) Name() string                        { return "test.stuck" }
func (s *stuck) Position() uint64                    { return 3 }
func (s *stuck) Lag(context.Context) (uint64, error) { return 17, nil }
func (s *stuck) Rebuild(ctx context.Context, _ func(pos, target uint64)) error {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	return nil
}

func TestRebuild(t *testing.T) {
	store, db := testenv.SQLite(t)
	ctx, cancel := context.WithCancel(context.Background())
	runner := projection.NewRunner(store, db, counter{}, projection.Options{Logger: quiet()})
	done := make(chan struct{})
	go func() { defer close(done); _ = runner.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	st := &stuck{release: make(chan struct{})}
	h := newHarness(t, ops.Config{Logs: []ops.Log{{Context: "test", Store: store}}, SagaDBs: []*sql.DB{db}, Projections: []ops.Projection{runner, st}, Context: ctx})
	for i := 0; i < 20; i++ {
		h.append(ev{"s", "t.E", "", "", ""})
	}
	if err := runner.WaitFor(ctx, 20); err != nil {
		t.Fatal(err)
	}

	a := h.do("POST", "/api/v1/ops/projections/test.counter/rebuild", "")
	if a.status != http.StatusAccepted || a.body["name"] != "test.counter" || a.body["status"] != "rebuilding" {
		t.Fatalf("rebuild: %d %s", a.status, a.raw)
	}
	// The runner replays the log: the count comes back to 20, and the
	// rebuild is over.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		_ = db.QueryRow(`SELECT n FROM counted`).Scan(&n)
		p := h.get("/api/v1/ops/processing", "")
		proj := p.body["projections"].([]any)[0].(map[string]any)
		if n == 20 && proj["rebuilding"] == false && proj["checkpoint"] == 20.0 && proj["lag"] == 0.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the rebuild: n=%d, %s", n, p.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if a := h.do("POST", "/api/v1/ops/projections/test.stuck/rebuild", ""); a.status != http.StatusAccepted {
		t.Fatalf("rebuild stuck: %d %s", a.status, a.raw)
	}
	a = h.do("POST", "/api/v1/ops/projections/test.stuck/rebuild", "")
	if p := testenv.Problem(t, a.status, a.header, a.raw, http.StatusConflict); p.Reason != "rebuild_running" {
		t.Errorf("a second rebuild: %+v", p)
	}
	p := h.get("/api/v1/ops/processing", "")
	if proj := p.body["projections"].([]any)[1].(map[string]any); proj["rebuilding"] != true || proj["lag"] != 17.0 {
		t.Errorf("while rebuilding: %s", p.raw)
	}
	close(st.release)
	deadline = time.Now().Add(5 * time.Second)
	for h.do("POST", "/api/v1/ops/projections/test.stuck/rebuild", "").status != http.StatusAccepted {
		if time.Now().After(deadline) {
			t.Fatal("the finished rebuild still blocks another")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a = h.do("POST", "/api/v1/ops/projections/nothing/rebuild", "")
	if p := testenv.Problem(t, a.status, a.header, a.raw, http.StatusNotFound); p.Reason != "projection_not_found" {
		t.Errorf("unknown projection: %+v", p)
	}
}

func TestProcessing(t *testing.T) {
	store, db := testenv.SQLite(t)
	dead := ops.NewDeadLetters(db)
	if err := dead.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, ops.Config{Logs: []ops.Log{{Context: "test", Store: store}}, SagaDBs: []*sql.DB{db}, DeadLetters: dead,
		Relays: []ops.Relay{{Name: "events", Position: func() uint64 { return 2 }, Head: store.Head}},
		Consumers: []ops.Consumer{{Name: "c1", Stream: "EVENTS", Stats: func(context.Context) (ops.ConsumerStats, error) {
			return ops.ConsumerStats{Pending: 4, AckPending: 2, Redelivered: 1}, nil
		}}, {Name: "c2", Stream: "CATALOG", Stats: func(context.Context) (ops.ConsumerStats, error) {
			return ops.ConsumerStats{}, errors.New("broker away")
		}}}})
	fixture(h)
	for _, tenant := range []string{"demo", "", "acme"} {
		d := messaging.Delivery{Message: messaging.Message{ID: "m-" + tenant, Subject: "s", Data: []byte(`{}`),
			Headers: map[string]string{messaging.HeaderTenant: tenant}}, Attempt: 1}
		if err := dead.Record(context.Background(), "c1", d, messaging.ErrPermanent); err != nil {
			t.Fatal(err)
		}
	}
	a := h.get("/api/v1/ops/processing", "")
	want := `{"head":6,"heads":{"test":6},"projections":[],"relays":[{"name":"events","checkpoint":2,"head":6,"lag":4}],` +
		`"consumers":[{"name":"c1","stream":"EVENTS","pending":4,"ack_pending":2,"redelivered":1,"dead":2},` +
		`{"name":"c2","stream":"CATALOG","pending":0,"ack_pending":0,"redelivered":0,"dead":0}]}`
	if strings.TrimSpace(string(a.raw)) != want {
		t.Errorf("processing:\n got %s\nwant %s", a.raw, want)
	}
	if a := h.get("/api/v1/ops/processing", "acme"); !strings.Contains(string(a.raw), `"redelivered":1,"dead":1}`) {
		t.Errorf("acme's dead letters: %s", a.raw)
	}
}

// TestDeadLetters: a letter kept, listed (to its tenant only),
// redelivered to a handler that fails (it stays) and then succeeds (it
// is gone), on both engines.
func TestDeadLetters(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		ctx := context.Background()
		dead := ops.NewDeadLetters(db)
		if err := dead.Setup(ctx); err != nil {
			t.Fatal(err)
		}
		if err := dead.Setup(ctx); err != nil { // again, as every start does
			t.Fatal(err)
		}
		var (
			mu     sync.Mutex
			fail   = true
			handed []messaging.Delivery
		)
		handle := func(_ context.Context, d messaging.Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			handed = append(handed, d)
			if fail {
				return errors.New("still broken")
			}
			return nil
		}
		h := newHarness(t, ops.Config{Logs: []ops.Log{{Context: "test", Store: store}}, SagaDBs: []*sql.DB{db}, DeadLetters: dead,
			Consumers: []ops.Consumer{{Name: "payments.reactions", Stream: "EVENTS", Handle: handle}}})
		d := messaging.Delivery{Message: messaging.Message{ID: "evt-1", Subject: "ordering.order.placed", Type: "ordering.OrderPlaced.v1",
			Data: []byte(`{"order_id": "o-1"}`), Headers: map[string]string{messaging.HeaderTenant: "demo", messaging.HeaderCorrelation: "r-1"}}, Attempt: 3}
		cause := fmt.Errorf("no such account: %w", messaging.ErrPermanent)
		if err := dead.Record(ctx, "payments.reactions", d, cause); err != nil {
			t.Fatal(err)
		}
		if err := dead.Record(ctx, "payments.reactions", d, cause); err != nil { // died again: one letter
			t.Fatal(err)
		}
		other := d
		other.ID, other.Headers = "evt-2", map[string]string{messaging.HeaderTenant: "acme"}
		if err := dead.Record(ctx, "shipping.reactions", other, cause); err != nil {
			t.Fatal(err)
		}
		bin := d
		bin.ID, bin.Data = "evt-3", []byte{0xff, 0, 1}
		if err := dead.Record(ctx, "payments.reactions", bin, cause); err != nil {
			t.Fatal(err)
		}

		a := h.get("/api/v1/ops/dead-letters?consumer=payments.reactions", "")
		list := a.body["items"].([]any)
		if len(list) != 2 {
			t.Fatalf("demo's letters: %s", a.raw)
		}
		l := list[1].(map[string]any) // the oldest: evt-1
		id, _ := l["id"].(string)
		hdrs, _ := l["headers"].(map[string]any)
		if l["consumer"] != "payments.reactions" || l["message_id"] != "evt-1" || l["subject"] != "ordering.order.placed" ||
			l["type"] != "ordering.OrderPlaced.v1" || l["error"] != cause.Error() || l["attempts"] != 3.0 || id == "" ||
			l["data"].(map[string]any)["order_id"] != "o-1" || hdrs[messaging.HeaderCorrelation] != "r-1" {
			t.Errorf("letter: %s", a.raw)
		}
		if _, err := time.Parse(time.RFC3339Nano, l["at"].(string)); err != nil {
			t.Errorf("at: %v", err)
		}
		if b := list[0].(map[string]any); b["data"] != "/wAB" {
			t.Errorf("bytes are kept in base64: %v", b["data"])
		}
		// Page by page, and acme's alone.
		if p := h.get("/api/v1/ops/dead-letters?limit=1", ""); len(p.body["items"].([]any)) != 1 || p.body["next_cursor"] == nil {
			t.Errorf("page 1: %s", p.raw)
		} else if p2 := h.get("/api/v1/ops/dead-letters?limit=1&cursor="+url.QueryEscape(p.body["next_cursor"].(string)), ""); len(p2.body["items"].([]any)) != 1 ||
			p2.body["next_cursor"] != nil || p2.body["items"].([]any)[0].(map[string]any)["message_id"] != "evt-1" {
			t.Errorf("page 2: %s", p2.raw)
		}
		acme := h.get("/api/v1/ops/dead-letters", "acme")
		if list := acme.body["items"].([]any); len(list) != 1 || list[0].(map[string]any)["message_id"] != "evt-2" {
			t.Errorf("acme's letters: %s", acme.raw)
		}
		acmeID := acme.body["items"].([]any)[0].(map[string]any)["id"].(string)

		// Another tenant's letter does not exist for demo's admin.
		a = h.do("POST", "/api/v1/ops/dead-letters/"+acmeID+"/redeliver", "")
		if p := testenv.Problem(t, a.status, a.header, a.raw, http.StatusNotFound); p.Reason != "dead_letter_not_found" {
			t.Errorf("another tenant's letter: %+v", p)
		}
		// Its consumer does not run here.
		a = h.do("POST", "/api/v1/ops/dead-letters/"+acmeID+"/redeliver", "acme")
		if p := testenv.Problem(t, a.status, a.header, a.raw, http.StatusConflict); p.Reason != "consumer_not_here" {
			t.Errorf("a consumer not here: %+v", p)
		}
		// The handler fails again: 409 with its error, the letter stays.
		a = h.do("POST", "/api/v1/ops/dead-letters/"+id+"/redeliver", "")
		if p := testenv.Problem(t, a.status, a.header, a.raw, http.StatusConflict); p.Reason != "redelivery_failed" || !strings.Contains(p.Detail, "still broken") {
			t.Errorf("failed redelivery: %+v", p)
		}
		mu.Lock()
		if len(handed) != 1 || handed[0].ID != "evt-1" || handed[0].Attempt != 4 || string(handed[0].Data) != `{"order_id": "o-1"}` ||
			handed[0].Type != "ordering.OrderPlaced.v1" || handed[0].Subject != "ordering.order.placed" || handed[0].Headers[messaging.HeaderTenant] != "demo" {
			t.Errorf("handed: %+v", handed)
		}
		fail = false
		mu.Unlock()
		l = h.get("/api/v1/ops/dead-letters", "").body["items"].([]any)[1].(map[string]any)
		if l["id"] != id || l["error"] != "still broken" || l["attempts"] != 4.0 {
			t.Errorf("after a failed redelivery: %v", l)
		}
		// Now it succeeds: 200, and the letter is gone.
		a = h.do("POST", "/api/v1/ops/dead-letters/"+id+"/redeliver", "")
		if a.status != http.StatusOK || a.body["id"] != id || a.body["status"] != "redelivered" {
			t.Fatalf("redeliver: %d %s", a.status, a.raw)
		}
		if list := h.get("/api/v1/ops/dead-letters", "").body["items"].([]any); len(list) != 1 || list[0].(map[string]any)["message_id"] != "evt-3" {
			t.Errorf("after the redelivery: %v", list)
		}
		a = h.do("POST", "/api/v1/ops/dead-letters/"+id+"/redeliver", "")
		if p := testenv.Problem(t, a.status, a.header, a.raw, http.StatusNotFound); p.Reason != "dead_letter_not_found" {
			t.Errorf("redelivered twice: %+v", p)
		}
		mu.Lock()
		if len(handed) != 2 || string(handed[1].Data) != `{"order_id": "o-1"}` {
			t.Errorf("handed: %+v", handed)
		}
		mu.Unlock()
	})
}

type breaker struct{ state resilience.State }

func (b breaker) State() resilience.State { return b.state }
func (b breaker) InFlight() int           { return 3 }
func (b breaker) MaxConcurrent() int      { return 256 }

type ejections map[string]time.Time

func (e ejections) EjectedUntil() map[string]time.Time { return e }

func TestServicesAndOverview(t *testing.T) {
	reg := registry.NewStatic()
	_ = reg.Register("ordering", registry.Instance{ID: "o-1", URL: "http://127.0.0.1:1", Weight: 1})
	_ = reg.Register("ordering", registry.Instance{ID: "o-2", URL: "http://127.0.0.1:2", Weight: 5, Canary: true})
	until := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	h := storeHarness(t, ops.Config{Registry: reg, Services: []string{"identity", "ordering"}, Upstreams: func() []ops.Upstream {
		return []ops.Upstream{
			{Name: "catalog", Breaker: breaker{resilience.Closed}, Balancer: ejections{}},
			{Name: "ordering", Breaker: breaker{resilience.HalfOpen}, Balancer: ejections{"o-2": until}},
		}
	}})
	a := h.get("/api/v1/ops/services", "")
	want := `{"clusters":[{"name":"catalog","breaker":"closed","in_flight":3,"max_concurrent":256,"instances":[]},` +
		`{"name":"ordering","breaker":"half-open","in_flight":3,"max_concurrent":256,"instances":[` +
		`{"id":"o-1","url":"http://127.0.0.1:1","weight":1,"canary":false,"healthy":true,"ejected":false},` +
		`{"id":"o-2","url":"http://127.0.0.1:2","weight":5,"canary":true,"healthy":false,"ejected":true,"ejected_until":"2030-01-02T03:04:05Z"}]}]}`
	if strings.TrimSpace(string(a.raw)) != want {
		t.Errorf("services:\n got %s\nwant %s", a.raw, want)
	}
	fixture(h)
	a = h.get("/api/v1/ops/overview", "acme")
	if strings.TrimSpace(string(a.raw)) != `{"tenant":"acme","audit_stream":"audit-acme","head":6,"mode":"embedded","services":["identity","ordering"]}` {
		t.Errorf("overview: %s", a.raw)
	}
}

// TestNotInThisProcess: a process without a store (a distributed
// gateway) answers what needs one with 503 not_in_this_process.
func TestNotInThisProcess(t *testing.T) {
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(quiet()) // httpapi logs 5xx answers
	h := newHarness(t, ops.Config{Mode: ops.Distributed, Services: []string{"catalog"}})
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/ops/log"}, {"GET", "/api/v1/ops/log/stream"}, {"GET", "/api/v1/ops/streams/x"},
		{"GET", "/api/v1/ops/sagas"}, {"GET", "/api/v1/ops/processing"}, {"POST", "/api/v1/ops/projections/x/rebuild"},
		{"GET", "/api/v1/ops/dead-letters"}, {"POST", "/api/v1/ops/dead-letters/x/redeliver"}, {"GET", "/api/v1/ops/services"},
	} {
		a := h.do(c.method, c.path, "")
		if p := testenv.Problem(t, a.status, a.header, a.raw, http.StatusServiceUnavailable); p.Reason != "not_in_this_process" {
			t.Errorf("%s %s: %+v", c.method, c.path, p)
		}
	}
	if a := h.get("/api/v1/ops/overview", ""); strings.TrimSpace(string(a.raw)) != `{"tenant":"demo","audit_stream":"audit-demo","mode":"distributed","services":["catalog"]}` {
		t.Errorf("overview: %s", a.raw)
	}
}

// TestLogsOfEveryContext: with a log per context, the log reads all of
// them in the order their events were recorded, each event naming its
// context; pages go on with a cursor over every log, each event exactly
// once; the live tail resumes from such a cursor.
func TestLogsOfEveryContext(t *testing.T) {
	a, _ := testenv.SQLite(t)
	b, _ := testenv.SQLite(t)
	h := newHarness(t, ops.Config{Logs: []ops.Log{{Context: "alpha", Store: a}, {Context: "beta", Store: b}}})
	ctx := context.Background()
	put := func(s eventstore.Store, stream string) {
		t.Helper()
		if _, err := s.Append(ctx, stream, eventstore.Any, eventstore.EventData{Type: "test.Happened", Data: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	// Recorded in this order: alpha 1, beta 1, beta 2, alpha 2, beta 3, alpha 3.
	order := []string{"a-1", "b-1", "b-2", "a-2", "b-3", "a-3"}
	for _, s := range order {
		if s[0] == 'a' {
			put(a, s)
		} else {
			put(b, s)
		}
		time.Sleep(2 * time.Millisecond)
	}
	want := make([]string, len(order))
	for i, s := range order {
		want[i] = s + "/test.Happened"
	}
	tail := h.get("/api/v1/ops/log?limit=50", "")
	eq(t, "the tail, in recording order", items(tail), want)
	if tail.body["head"] != 6.0 || tail.body["cursor"] != "alpha.3,beta.3" {
		t.Errorf("tail: head %v, cursor %v", tail.body["head"], tail.body["cursor"])
	}
	for _, it := range tail.body["items"].([]any) {
		m := it.(map[string]any)
		if want := map[byte]string{'a': "alpha", 'b': "beta"}[m["stream_id"].(string)[0]]; m["context"] != want {
			t.Errorf("%v: context %v, want %s", m["stream_id"], m["context"], want)
		}
	}
	var got []string
	after, pages := "0", 0
	for {
		p := h.get("/api/v1/ops/log?limit=2&after="+after, "")
		got = append(got, items(p)...)
		pages++
		next, ok := p.body["next_after"].(string)
		if !ok || pages > 10 {
			break
		}
		after = next
	}
	eq(t, "pages of 2 over both logs", got, want)
	if pages != 3 {
		t.Errorf("%d pages, want 3", pages)
	}
	if r := h.do("GET", "/api/v1/ops/log?after=gamma.3", ""); r.status != http.StatusBadRequest {
		t.Errorf("a cursor of an unknown log: %d", r.status)
	}

	// The live tail after alpha.2 and beta.3: alpha's third, then what comes.
	s := h.openStream("", "Last-Event-ID", "alpha.2,beta.3")
	if f := s.next(2 * time.Second); f.id != "alpha.3,beta.3" {
		t.Errorf("resumed: frame %+v", f)
	}
	put(b, "b-4")
	if f := s.next(2 * time.Second); f.id != "alpha.3,beta.4" {
		t.Errorf("a new event of beta: frame %+v", f)
	}
}
