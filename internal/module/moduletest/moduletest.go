// Package moduletest runs one module alone, as its own service, for tests
// at the context's boundary: its HTTP API on an httptest server behind
// the route table's guard (as in production), its projections and the
// saga engine running, tokens of any caller signed with a test key, and
// the other contexts replaced by fake answers to their calls.
//
//	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
//		h := moduletest.Start(t, catalogmod.Module, store, db, nil)
//		r := h.As("merchant").Do("POST", "/api/v1/products", `{...}`)
//	})
package moduletest

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/gateway/registry"
	"github.com/agora-commerce/agora/internal/gateway/routes"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/shipping/carrier"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/projection"
	"github.com/agora-commerce/agora/saga"
)

// Harness is a module running alone.
type Harness struct {
	// T is the test (or fuzz target) the harness reports failures to.
	T testing.TB
	// URL is the module's service.
	URL string
	// Module is what the module's constructor returned.
	Module *module.Module
	// Platform is what it was given.
	Platform *module.Platform
	// Calls is the exchange: the module's answers, and the fakes.
	Calls *call.Exchange

	signer *auth.Signer
}

// Options tune Start. The registry is empty: a module that calls other
// services (the BFF) finds none unless the test registers some.
type Options struct {
	// Settings override the defaults (orchestrated checkout, a 10 s
	// checkout timeout, merchant account "merchant", a perfect carrier).
	Settings func(*module.Settings)
	// Fakes answer the calls the module makes of other contexts.
	Fakes []call.Answer
}

// Start builds def on store and db with opts (nil for none) — a
// partitioned context's one partition is store — serves its
// API behind the default route table's guard, and runs its projections
// and the saga engine until the test ends.
func Start(t testing.TB, def module.Def, store eventstore.Store, db *sql.DB, opts *Options) *Harness {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	dir := t.TempDir()
	// The platform's key, in the data directory, as identity signs with it.
	key, err := auth.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key, auth.Options{})
	logger := slog.New(slog.DiscardHandler)
	engine := saga.NewEngine(store, db, saga.Options{Logger: logger, BaseBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	x := call.NewExchange(nil)
	x.Add(opts.Fakes...)
	settings := module.Settings{DataDir: dir, Postgres: strings.Contains(t.Name(), "postgres"),
		CheckoutMode: module.Orchestration, CheckoutTimeout: 10 * time.Second, MerchantAccountID: "merchant",
		Carrier: carrier.NewSim(0, 0)}
	if opts.Settings != nil {
		opts.Settings(&settings)
	}
	p := &module.Platform{Settings: settings, Store: store, DB: db, Sagas: engine, Calls: x, Registry: registry.NewStatic(),
		Verifier: auth.NewVerifier(signer.Keys(), auth.Options{}), Logger: logger,
		Project: func(ctx context.Context, pr projection.Projection) (*projection.Runner, error) {
			r := projection.NewRunner(store, db, pr, projection.Options{Logger: logger, Shared: settings.Postgres})
			return r, r.Init(ctx)
		}}
	if def.Partitioned {
		// One partition, on store and db.
		p.Partitions = []module.Partition{{Store: store, DB: db, Sagas: engine, Project: p.Project}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m, err := def.New(ctx, p)
	if err != nil {
		cancel()
		t.Fatalf("module %s: %v", def.Name, err)
	}
	x.Add(m.Answers...)
	var wg sync.WaitGroup
	run := func(f func(context.Context) error) {
		wg.Go(func() {
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v", def.Name, err)
			}
		})
	}
	for _, r := range m.Projections {
		run(r.Run)
	}
	run(engine.Run)
	mux := http.NewServeMux()
	if m.Routes != nil {
		m.Routes(mux)
	}
	srv := httptest.NewServer(httpapi.Middleware(logger, routes.Default().Guard(def.Name, p.Verifier, mux, m.Internal...)))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		wg.Wait()
	})
	return &Harness{T: t, URL: srv.URL, Module: m, Platform: p, Calls: x, signer: signer}
}

// Token signs an access token for user in tenant with roles.
func (h *Harness) Token(tenant, user string, roles ...string) string {
	h.T.Helper()
	c := auth.Claims{Tenant: tenant, Roles: roles}
	c.Subject = user
	tok, err := h.signer.Issue(c, time.Hour)
	if err != nil {
		h.T.Fatal(err)
	}
	return tok
}

// Client calls the module's API as one caller.
type Client struct {
	h     *Harness
	token string
}

// As returns a client acting as user "u-<role>" of tenant "demo" with
// role ("" for an anonymous client).
func (h *Harness) As(role string) *Client {
	if role == "" {
		return &Client{h: h}
	}
	return &Client{h: h, token: h.Token("demo", "u-"+role, role)}
}

// AsUser returns a client acting as user of tenant with roles.
func (h *Harness) AsUser(tenant, user string, roles ...string) *Client {
	return &Client{h: h, token: h.Token(tenant, user, roles...)}
}

// Response is an answer.
type Response struct {
	Status int
	Header http.Header
	Raw    []byte
	// Body is the JSON object answered (nil if it is not one).
	Body map[string]any
}

// Do sends method path with body (JSON; "" for none) and headers (name,
// value pairs).
func (c *Client) Do(method, path, body string, headers ...string) Response {
	c.h.T.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.h.URL+path, rd)
	if err != nil {
		c.h.T.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.h.T.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := Response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// On returns h acting for t: its clients report failures to t (a
// subtest, or one input of a fuzz target), not to the test that started
// the module.
func (h *Harness) On(t testing.TB) *Harness {
	c := *h
	c.T = t
	return &c
}

// Problem checks that r is a problem+json answer with status and, if
// reason is not empty, that reason.
func Problem(t *testing.T, r Response, status int, reason string) httpapi.Problem {
	t.Helper()
	p := testenv.Problem(t, r.Status, r.Header, r.Raw, status)
	if reason != "" && p.Reason != reason {
		t.Fatalf("problem reason %q, want %q: %s", p.Reason, reason, r.Raw)
	}
	return p
}

// BadField checks that r is a 400 problem that names field.
func BadField(t *testing.T, r Response, field string) {
	t.Helper()
	p := testenv.Problem(t, r.Status, r.Header, r.Raw, http.StatusBadRequest)
	for _, f := range p.Errors {
		if f.Field == field {
			return
		}
	}
	t.Fatalf("problem does not name field %q: %s", field, r.Raw)
}

// Position returns a write's Agora-Position, which must be a token of a
// positive position.
func Position(t *testing.T, r Response) string {
	t.Helper()
	p := r.Header.Get(httpapi.PositionHeader)
	if _, n, ok := httpapi.ParsePosition(p); !ok || n == 0 {
		t.Fatalf("Agora-Position %q: %d %s", p, r.Status, r.Raw)
	}
	return p
}

// Eventually polls f until it reports true, failing t with what f last
// said after 15 s.
func Eventually(t *testing.T, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, last := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s", what, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// All reads every page of the list at path as c, limit items a page,
// once the read model includes pos ("" for no wait), and returns the
// items. It fails c's test on any answer but 200, a page longer than
// limit, a short page before the end, an empty next_cursor, or an item
// (by id) listed twice.
func (c *Client) All(path, pos string, limit int) []map[string]any {
	t := c.h.T
	t.Helper()
	var out []map[string]any
	seen := map[any]bool{}
	cursor := ""
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatalf("%s: more than 100 pages", path)
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		p := path + sep + "limit=" + strconv.Itoa(limit)
		if cursor != "" {
			p += "&cursor=" + cursor
		}
		var headers []string
		if pos != "" {
			headers = []string{httpapi.MinPositionHeader, pos}
		}
		r := c.Do("GET", p, "", headers...)
		if r.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, r.Status, r.Raw)
		}
		items, ok := r.Body["items"].([]any)
		if !ok || len(items) > limit {
			t.Fatalf("GET %s: items %v", p, r.Body["items"])
		}
		for _, it := range items {
			item := it.(map[string]any)
			if id, ok := item["id"]; ok {
				if seen[id] {
					t.Fatalf("GET %s: %v listed twice", p, id)
				}
				seen[id] = true
			}
			out = append(out, item)
		}
		next, _ := r.Body["next_cursor"].(string)
		if next == "" {
			if _, present := r.Body["next_cursor"]; present {
				t.Fatalf("GET %s: next_cursor present but empty: %s", p, r.Raw)
			}
			return out
		}
		if len(items) != limit {
			t.Fatalf("GET %s: a page of %d items before the end", p, len(items))
		}
		cursor = next
	}
}
