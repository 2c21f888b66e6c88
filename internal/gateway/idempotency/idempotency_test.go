package idempotency_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/gateway/idempotency"
	"github.com/agora-commerce/agora/internal/testenv"
)

// storeConformance runs the checks every Store must pass. expire makes
// the store's records of ttl age out.
func storeConformance(t *testing.T, s idempotency.Store, expire func(t *testing.T, key string)) {
	ctx := context.Background()
	claim := idempotency.Record{Fingerprint: "fp1", Owner: "owner-1"}

	rec, ok, err := s.Claim(ctx, "k", claim, time.Minute)
	if err != nil || !ok || rec.Fingerprint != "fp1" {
		t.Fatalf("first claim: %+v %v %v", rec, ok, err)
	}
	rec, ok, err = s.Claim(ctx, "k", idempotency.Record{Fingerprint: "fp2", Owner: "owner-2"}, time.Minute)
	if err != nil || ok || rec.Fingerprint != "fp1" || rec.Done || rec.Owner != "owner-1" {
		t.Fatalf("second claim: %+v %v %v", rec, ok, err)
	}
	if err := s.Complete(ctx, "k", "owner-2", idempotency.Record{Fingerprint: "fp1", Status: 201}, time.Minute); !errors.Is(err, idempotency.ErrNotOwner) {
		t.Fatalf("Complete by another owner: %v", err)
	}
	if err := s.Release(ctx, "k", "owner-2"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s.Get(ctx, "k"); !found {
		t.Fatal("Release by another owner deleted the claim")
	}
	done := idempotency.Record{Fingerprint: "fp1", Status: 201, Header: http.Header{"Location": {"/x/1"}}, Body: []byte(`{"id":"1"}`)}
	if err := s.Complete(ctx, "k", "owner-1", done, time.Minute); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	rec, found, err := s.Get(ctx, "k")
	if err != nil || !found || !rec.Done || rec.Owner != "" || rec.Status != 201 || string(rec.Body) != `{"id":"1"}` || rec.Header.Get("Location") != "/x/1" {
		t.Fatalf("Get after Complete: %+v %v %v", rec, found, err)
	}
	if err := s.Complete(ctx, "k", "owner-1", done, time.Minute); !errors.Is(err, idempotency.ErrNotOwner) {
		t.Fatalf("second Complete: %v", err)
	}
	if err := s.Release(ctx, "k", "owner-1"); err != nil {
		t.Fatal(err)
	}
	if rec, _, _ := s.Get(ctx, "k"); !rec.Done {
		t.Fatal("Release deleted a done record")
	}

	// A released claim frees the key.
	if _, ok, _ := s.Claim(ctx, "k2", claim, time.Minute); !ok {
		t.Fatal("claim k2")
	}
	if err := s.Release(ctx, "k2", "owner-1"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s.Get(ctx, "k2"); found {
		t.Fatal("released claim still there")
	}
	if _, ok, _ := s.Claim(ctx, "k2", claim, time.Minute); !ok {
		t.Fatal("claim after release")
	}

	// Claims expire.
	if _, ok, _ := s.Claim(ctx, "k3", claim, 100*time.Millisecond); !ok {
		t.Fatal("claim k3")
	}
	expire(t, "k3")
	if _, ok, _ := s.Claim(ctx, "k3", idempotency.Record{Fingerprint: "fp3", Owner: "owner-3"}, time.Minute); !ok {
		t.Fatal("an expired claim still holds its key")
	}
	if err := s.Complete(ctx, "k3", "owner-1", done, time.Minute); !errors.Is(err, idempotency.ErrNotOwner) {
		t.Fatalf("Complete of an expired claim: %v", err)
	}
}

func TestMemoryStore(t *testing.T) {
	clk := testenv.NewClock()
	s := idempotency.NewMemoryStore(clk.Now)
	storeConformance(t, s, func(*testing.T, string) { clk.Advance(time.Second) })
	n := s.Len()
	clk.Advance(2 * time.Minute)
	if _, _, err := s.Get(context.Background(), "none"); err != nil || s.Len() != 0 || n == 0 {
		t.Fatalf("expired records kept: %d of %d", s.Len(), n)
	}
}

func TestRedisStore(t *testing.T) {
	testenv.RedisURL(t)
	rdb := testenv.RedisClient(t)
	s := idempotency.NewRedisStore(rdb, testenv.RedisPrefix(t, rdb))
	storeConformance(t, s, func(t *testing.T, key string) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, found, err := s.Get(context.Background(), key); err != nil || !found {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the claim never expired")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// api is a fake upstream counting its calls; a test may make it block.
type api struct {
	calls   atomic.Int64
	status  atomic.Int64
	entered chan struct{}
	release chan struct{}
	panics  atomic.Bool
}

func newAPI() *api {
	a := &api{entered: make(chan struct{}, 10)}
	a.status.Store(http.StatusCreated)
	return a
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := a.calls.Add(1)
	body, _ := io.ReadAll(r.Body)
	a.entered <- struct{}{}
	if a.release != nil {
		<-a.release
	}
	if a.panics.Load() {
		panic("handler bug")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", fmt.Sprintf("/api/v1/orders/%d", n))
	w.Header().Set("Agora-Position", "42")
	w.Header().Set("X-Request-Id", "first-request")
	w.Header().Set("Set-Cookie", "secret=1")
	w.WriteHeader(int(a.status.Load()))
	fmt.Fprintf(w, `{"id":"%d","echo":%q}`, n, body)
}

func handler(store idempotency.Store, a http.Handler, wait time.Duration) http.Handler {
	mw := idempotency.Middleware(idempotency.Options{
		Store:  store,
		Scope:  func(r *http.Request) string { return r.Header.Get("X-Test-Tenant") + "/" + r.Header.Get("X-Test-User") },
		Wait:   wait,
		Logger: slog.New(slog.DiscardHandler),
	})
	return mw(a)
}

type req struct {
	method, path, key, body, user string
}

func send(h http.Handler, q req) *httptest.ResponseRecorder {
	if q.method == "" {
		q.method = "POST"
	}
	if q.path == "" {
		q.path = "/api/v1/orders"
	}
	if q.user == "" {
		q.user = "alice"
	}
	r := httptest.NewRequest(q.method, q.path, strings.NewReader(q.body))
	if q.key != "" {
		r.Header.Set(idempotency.Header, q.key)
	}
	r.Header.Set("X-Test-Tenant", "demo")
	r.Header.Set("X-Test-User", q.user)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestReplay(t *testing.T) {
	a := newAPI()
	h := handler(idempotency.NewMemoryStore(nil), a, 0)
	first := send(h, req{key: "k1", body: `{"n":1}`})
	if first.Code != 201 || first.Header().Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("first: %d %v", first.Code, first.Header())
	}
	for range 3 {
		again := send(h, req{key: "k1", body: `{"n":1}`})
		if again.Code != 201 || again.Body.String() != first.Body.String() {
			t.Fatalf("replay: %d %s, first %s", again.Code, again.Body, first.Body)
		}
		for _, name := range []string{"Location", "Content-Type", "Agora-Position"} {
			if again.Header().Get(name) != first.Header().Get(name) {
				t.Fatalf("replayed %s = %q, first %q", name, again.Header().Get(name), first.Header().Get(name))
			}
		}
		if again.Header().Get(idempotency.ReplayedHeader) != "true" || again.Header().Get("Set-Cookie") != "" || again.Header().Get("X-Request-Id") != "" {
			t.Fatalf("replay headers %v", again.Header())
		}
	}
	if a.calls.Load() != 1 {
		t.Fatalf("the upstream ran %d times", a.calls.Load())
	}
}

func TestKeyReusedForAnotherRequest(t *testing.T) {
	a := newAPI()
	h := handler(idempotency.NewMemoryStore(nil), a, 0)
	send(h, req{key: "k1", body: `{"n":1}`})
	for _, q := range []req{
		{key: "k1", body: `{"n":2}`},
		{key: "k1", body: `{"n":1}`, path: "/api/v1/transfers"},
		{key: "k1", body: `{"n":1}`, path: "/api/v1/orders?x=1"},
	} {
		w := send(h, q)
		assertProblem(t, w, http.StatusUnprocessableEntity, idempotency.ReasonKeyReused)
	}
	if a.calls.Load() != 1 {
		t.Fatalf("the upstream ran %d times", a.calls.Load())
	}
}

func TestKeysAreScopedPerCaller(t *testing.T) {
	a := newAPI()
	h := handler(idempotency.NewMemoryStore(nil), a, 0)
	alice := send(h, req{key: "k1", body: `{}`, user: "alice"})
	bob := send(h, req{key: "k1", body: `{}`, user: "bob"})
	if a.calls.Load() != 2 || alice.Body.String() == bob.Body.String() || bob.Header().Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("bob got alice's answer: %s / %s", alice.Body, bob.Body)
	}
	// And another caller's different body is not a 422 either.
	if w := send(h, req{key: "k1", body: `{"other":1}`, user: "carol"}); w.Code != 201 {
		t.Fatalf("carol: %d", w.Code)
	}
}

// waitingStore signals each claim that finds the key taken.
type waitingStore struct {
	idempotency.Store
	taken chan struct{}
}

func (s waitingStore) Claim(ctx context.Context, key string, rec idempotency.Record, ttl time.Duration) (idempotency.Record, bool, error) {
	cur, ok, err := s.Store.Claim(ctx, key, rec, ttl)
	if err == nil && !ok {
		s.taken <- struct{}{}
	}
	return cur, ok, err
}

func TestConcurrentDuplicateWaits(t *testing.T) {
	a := newAPI()
	a.release = make(chan struct{})
	store := waitingStore{idempotency.NewMemoryStore(nil), make(chan struct{}, 10)}
	h := handler(store, a, time.Minute)
	results := make(chan *httptest.ResponseRecorder, 3)
	go func() { results <- send(h, req{key: "k1", body: `{}`}) }()
	<-a.entered // the first request is running
	for range 2 {
		go func() { results <- send(h, req{key: "k1", body: `{}`}) }()
	}
	<-store.taken // both duplicates found the key in flight
	<-store.taken
	close(a.release)
	var bodies []string
	replays := 0
	for range 3 {
		w := <-results
		if w.Code != 201 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		bodies = append(bodies, w.Body.String())
		if w.Header().Get(idempotency.ReplayedHeader) == "true" {
			replays++
		}
	}
	if a.calls.Load() != 1 || replays != 2 || bodies[0] != bodies[1] || bodies[1] != bodies[2] {
		t.Fatalf("calls %d, replays %d, bodies %v", a.calls.Load(), replays, bodies)
	}
}

func TestConcurrentDuplicateConflict(t *testing.T) {
	a := newAPI()
	a.release = make(chan struct{})
	h := handler(idempotency.NewMemoryStore(nil), a, -1) // no waiting
	first := make(chan *httptest.ResponseRecorder, 1)
	go func() { first <- send(h, req{key: "k1", body: `{}`}) }()
	<-a.entered
	w := send(h, req{key: "k1", body: `{}`})
	assertProblem(t, w, http.StatusConflict, idempotency.ReasonInFlight)
	if w.Header().Get("Retry-After") == "" {
		t.Fatal("409 without Retry-After")
	}
	// A different body is still a 422, in flight or not.
	assertProblem(t, send(h, req{key: "k1", body: `{"x":1}`}), http.StatusUnprocessableEntity, idempotency.ReasonKeyReused)
	close(a.release)
	if w := <-first; w.Code != 201 {
		t.Fatalf("first: %d", w.Code)
	}
	if w := send(h, req{key: "k1", body: `{}`}); w.Header().Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("after the first finished: %d %v", w.Code, w.Header())
	}
	if a.calls.Load() != 1 {
		t.Fatalf("calls %d", a.calls.Load())
	}
}

func TestRetryableAnswersAreNotStored(t *testing.T) {
	for _, status := range []int{500, 502, 503, 504, 429, 401, 403, 408} {
		a := newAPI()
		a.status.Store(int64(status))
		h := handler(idempotency.NewMemoryStore(nil), a, 0)
		if w := send(h, req{key: "k1", body: `{}`}); w.Code != status {
			t.Fatalf("%d: first answered %d", status, w.Code)
		}
		a.status.Store(201)
		if w := send(h, req{key: "k1", body: `{}`}); w.Code != 201 || w.Header().Get(idempotency.ReplayedHeader) != "" {
			t.Fatalf("%d: the retry got %d %v", status, w.Code, w.Header())
		}
		if a.calls.Load() != 2 {
			t.Fatalf("%d: calls %d", status, a.calls.Load())
		}
	}
	// A final client error is replayed like a success.
	a := newAPI()
	a.status.Store(409)
	h := handler(idempotency.NewMemoryStore(nil), a, 0)
	send(h, req{key: "k1", body: `{}`})
	if w := send(h, req{key: "k1", body: `{}`}); w.Code != 409 || a.calls.Load() != 1 {
		t.Fatalf("a 409 was not replayed: %d, calls %d", w.Code, a.calls.Load())
	}
}

func TestPanicReleasesTheKey(t *testing.T) {
	a := newAPI()
	a.panics.Store(true)
	h := handler(idempotency.NewMemoryStore(nil), a, 0)
	func() {
		defer func() {
			if p := recover(); p == nil {
				t.Fatal("the panic was swallowed")
			}
		}()
		send(h, req{key: "k1", body: `{}`})
	}()
	a.panics.Store(false)
	if w := send(h, req{key: "k1", body: `{}`}); w.Code != 201 || a.calls.Load() != 2 {
		t.Fatalf("after a panic: %d, calls %d", w.Code, a.calls.Load())
	}
}

func TestPassThroughAndBadKeys(t *testing.T) {
	a := newAPI()
	store := idempotency.NewMemoryStore(nil)
	h := handler(store, a, 0)
	send(h, req{body: `{}`})                        // POST without a key
	send(h, req{body: `{}`})                        // again: runs again
	send(h, req{method: "PUT", key: "k", body: ``}) // not a POST
	if a.calls.Load() != 3 || store.Len() != 0 {
		t.Fatalf("calls %d, records %d", a.calls.Load(), store.Len())
	}
	for _, key := range []string{strings.Repeat("k", idempotency.MaxKeyLength+1), "tab\there", "é"} {
		assertProblem(t, send(h, req{key: key, body: `{}`}), http.StatusBadRequest, idempotency.ReasonInvalidKey)
	}
	if a.calls.Load() != 3 {
		t.Fatalf("a bad key reached the upstream")
	}
}

type brokenStore struct{ idempotency.Store }

func (brokenStore) Claim(context.Context, string, idempotency.Record, time.Duration) (idempotency.Record, bool, error) {
	return idempotency.Record{}, false, errors.New("redis: connection refused")
}

func TestStoreFailure(t *testing.T) {
	a := newAPI()
	h := handler(brokenStore{idempotency.NewMemoryStore(nil)}, a, 0)
	assertProblem(t, send(h, req{key: "k1", body: `{}`}), http.StatusServiceUnavailable, "idempotency_unavailable")
	if a.calls.Load() != 0 {
		t.Fatal("ran without the store")
	}
}

// TestTwoGatewaysShareRedis: the first request runs through one gateway,
// its repeat through another is replayed.
func TestTwoGatewaysShareRedis(t *testing.T) {
	testenv.RedisURL(t)
	rdb1, rdb2 := testenv.RedisClient(t), testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t, rdb1)
	a := newAPI()
	g1 := handler(idempotency.NewRedisStore(rdb1, prefix), a, time.Minute)
	s2 := waitingStore{idempotency.NewRedisStore(rdb2, prefix), make(chan struct{}, 10)}
	g2 := handler(s2, a, time.Minute)
	first := send(g1, req{key: "k1", body: `{"n":1}`})
	again := send(g2, req{key: "k1", body: `{"n":1}`})
	if first.Code != 201 || again.Code != 201 || again.Body.String() != first.Body.String() || again.Header().Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("first %d %s, again %d %s", first.Code, first.Body, again.Code, again.Body)
	}
	assertProblem(t, send(g2, req{key: "k1", body: `{"n":2}`}), http.StatusUnprocessableEntity, idempotency.ReasonKeyReused)
	<-s2.taken
	<-s2.taken

	// A duplicate on the other gateway waits for the first to finish.
	<-a.entered // the first part's call
	a.release = make(chan struct{})
	results := make(chan *httptest.ResponseRecorder, 2)
	go func() { results <- send(g1, req{key: "k2", body: `{}`}) }()
	<-a.entered
	go func() { results <- send(g2, req{key: "k2", body: `{}`}) }()
	<-s2.taken // it found the key in flight on the other gateway
	close(a.release)
	r1, r2 := <-results, <-results
	if r1.Body.String() != r2.Body.String() || a.calls.Load() != 2 {
		t.Fatalf("bodies %s / %s, calls %d", r1.Body, r2.Body, a.calls.Load())
	}
}

func assertProblem(t *testing.T, w *httptest.ResponseRecorder, status int, reason string) {
	t.Helper()
	if p := testenv.Problem(t, w.Code, w.Header(), w.Body.Bytes(), status); p.Reason != reason {
		t.Fatalf("reason %q, want %q", p.Reason, reason)
	}
}

func TestSQLStore(t *testing.T) {
	for name, open := range map[string]func(testing.TB) (eventstore.Store, *sql.DB){"sqlite": testenv.SQLite, "postgres": testenv.Postgres} {
		t.Run(name, func(t *testing.T) {
			_, db := open(t)
			clk := testenv.NewClock()
			s, err := idempotency.NewSQLStore(context.Background(), db, "idempotency_keys", clk.Now)
			if err != nil {
				t.Fatal(err)
			}
			storeConformance(t, s, func(*testing.T, string) { clk.Advance(time.Second) })
			n, _ := s.Len(context.Background())
			clk.Advance(2 * time.Minute)
			s.Claim(context.Background(), "sweeper", idempotency.Record{Fingerprint: "f", Owner: "o"}, time.Minute)
			var rows int
			if err := db.QueryRow(`SELECT count(*) FROM idempotency_keys`).Scan(&rows); err != nil || n == 0 || rows != 1 {
				t.Fatalf("expired rows kept: %d rows after the sweep (%d live before), %v", rows, n, err)
			}
			// A record survives its store: another one on the same table reads it.
			again, _ := idempotency.NewSQLStore(context.Background(), db, "idempotency_keys", clk.Now)
			if rec, found, err := again.Get(context.Background(), "sweeper"); err != nil || !found || rec.Owner != "o" {
				t.Fatalf("a reopened store lost the claim: %+v %v %v", rec, found, err)
			}
		})
	}
}

// TestClaimsAreRenewedWhileRunning: with a store that renews claims, a
// request that runs past LockTTL keeps its key (a repeat is told it is
// in flight, not run again), and a claim nobody renews — its process
// died — frees the key after LockTTL.
func TestClaimsAreRenewedWhileRunning(t *testing.T) {
	_, db := testenv.SQLite(t)
	store, err := idempotency.NewSQLStore(context.Background(), db, "keys", nil)
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI()
	a.release = make(chan struct{})
	h := idempotency.Middleware(idempotency.Options{Store: store, LockTTL: 300 * time.Millisecond, Wait: -1,
		Scope:  func(r *http.Request) string { return "alice" },
		Logger: slog.New(slog.DiscardHandler)})(a)
	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- send(h, req{key: "slow", body: "{}"}) }()
	<-a.entered
	time.Sleep(time.Second) // three leases
	if w := send(h, req{key: "slow", body: "{}"}); w.Code != http.StatusConflict {
		t.Fatalf("a repeat while the first runs past its lease: %d %s", w.Code, w.Body)
	}
	close(a.release)
	if w := <-first; w.Code != http.StatusCreated || a.calls.Load() != 1 {
		t.Fatalf("first: %d, %d calls", w.Code, a.calls.Load())
	}
	// A claim left by a dead process: nobody renews it.
	if _, ok, err := store.Claim(context.Background(), "dead", idempotency.Record{Fingerprint: "f", Owner: "gone"}, 300*time.Millisecond); err != nil || !ok {
		t.Fatal(ok, err)
	}
	time.Sleep(400 * time.Millisecond)
	if _, ok, err := store.Claim(context.Background(), "dead", idempotency.Record{Fingerprint: "f", Owner: "next"}, time.Second); err != nil || !ok {
		t.Fatalf("a dead claim still holds its key: %v %v", ok, err)
	}
}
