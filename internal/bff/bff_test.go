package bff_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/bff"
	"github.com/agora-commerce/agora/internal/gateway/routes"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/testenv"
)

// The fake backends' records.
var (
	me = map[string]any{"id": "u-ann", "email": "ann@example.com", "name": "Ann", "tenant": "demo", "roles": []any{"customer"}}
	// products are p-00 … p-29, with every field the catalog answers.
	products = func() map[string]map[string]any {
		out := map[string]map[string]any{}
		for i := range 30 {
			id := fmt.Sprintf("p-%02d", i)
			out[id] = map[string]any{"id": id, "sku": "SKU-" + id, "name": "Product " + id, "description": "About " + id,
				"price": map[string]any{"amount": float64(100 + i), "currency": "USD"}, "version": float64(1),
				"created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"}
		}
		return out
	}()
	productKeys = []string{"created_at", "description", "id", "name", "price", "sku", "updated_at", "version"}
	orderKeys   = []string{"created_at", "id", "items", "shipping_address", "status", "total", "updated_at"}
)

func order(i int) map[string]any {
	return map[string]any{"id": fmt.Sprintf("o-%d", i), "status": "Confirmed",
		"items":            []any{map[string]any{"product_id": "p-01", "quantity": float64(1)}},
		"total":            map[string]any{"amount": float64(101), "currency": "USD"},
		"shipping_address": map[string]any{"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": "62701", "country": "US"},
		"created_at":       "2025-01-0" + strconv.Itoa(1+i%9) + "T00:00:00Z", "updated_at": "2025-01-10T00:00:00Z"}
}

// popular is a fake best-seller list.
type popular struct {
	ids []string
	err error
}

func (p popular) Top(_ context.Context, n int) ([]string, error) {
	if p.err != nil {
		return nil, p.err
	}
	return p.ids[:min(n, len(p.ids))], nil
}

// backends are fake identity, ordering and catalog services. A cluster
// may be made to fail (500), to hang until its caller gives up, to answer
// garbage, or to be missing from the registry.
type backends struct {
	t    *testing.T
	urls map[string]string

	mu      sync.Mutex
	broken  map[string]string // cluster → "fail", "hang", "garbage", "missing"
	queries map[string][]*http.Request
}

func newBackends(t *testing.T) *backends {
	b := &backends{t: t, urls: map[string]string{}, broken: map[string]string{}, queries: map[string][]*http.Request{}}
	release := make(chan struct{})
	for cluster, h := range map[string]http.HandlerFunc{
		"identity": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/v1/me" {
				http.NotFound(w, r)
				return
			}
			answer(w, me)
		},
		"ordering": func(w http.ResponseWriter, r *http.Request) {
			n, err := strconv.Atoi(r.URL.Query().Get("limit"))
			if r.URL.Path != "/api/v1/orders" || err != nil || n < 1 {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			items := []any{}
			for i := range n { // the customer has 20 orders; a page holds limit
				items = append(items, order(i))
			}
			answer(w, map[string]any{"items": items, "next_cursor": "more"})
		},
		"catalog": func(w http.ResponseWriter, r *http.Request) {
			if id, ok := strings.CutPrefix(r.URL.Path, "/api/v1/products/"); ok {
				if p, ok := products[id]; ok {
					answer(w, p)
					return
				}
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, `{"status":404}`)
				return
			}
			n, err := strconv.Atoi(r.URL.Query().Get("limit"))
			if r.URL.Path != "/api/v1/products" || err != nil {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			items := []any{}
			for _, id := range slices.Sorted(maps.Keys(products))[:min(n, len(products))] {
				items = append(items, products[id])
			}
			answer(w, map[string]any{"items": items})
		},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.mu.Lock()
			b.queries[cluster] = append(b.queries[cluster], r.Clone(context.Background()))
			mode := b.broken[cluster]
			b.mu.Unlock()
			switch mode {
			case "fail":
				http.Error(w, "boom", http.StatusInternalServerError)
			case "hang":
				select {
				case <-r.Context().Done():
				case <-release:
				}
			case "garbage":
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"items": [`)
			default:
				h(w, r)
			}
		}))
		t.Cleanup(srv.Close)
		b.urls[cluster] = srv.URL
	}
	t.Cleanup(func() { close(release) }) // runs before the servers close
	return b
}

func answer(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (b *backends) resolve(cluster string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.broken[cluster] == "missing" {
		return "", fmt.Errorf("no instance of %s", cluster)
	}
	u, ok := b.urls[cluster]
	if !ok {
		return "", fmt.Errorf("no cluster %s", cluster)
	}
	return u, nil
}

func (b *backends) breakCluster(cluster, how string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.broken[cluster] = how
}

// asked returns the requests cluster received.
func (b *backends) asked(cluster string) []*http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.queries[cluster])
}

// bffServer serves the BFF pages as the bff cluster does: behind the
// route table's guard, with tokens signed by its own key.
type bffServer struct {
	t         *testing.T
	url       string
	signer    *auth.Signer
	lastToken string
}

func serve(t *testing.T, b *backends, pop bff.Popular, timeout time.Duration) *bffServer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key, auth.Options{})
	mux := http.NewServeMux()
	bff.New(b.resolve, pop, bff.Options{SectionTimeout: timeout}).Register(mux)
	logger := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(httpapi.Middleware(logger, routes.Default().Guard("bff", auth.NewVerifier(signer.Keys(), auth.Options{}), mux)))
	t.Cleanup(srv.Close)
	return &bffServer{t: t, url: srv.URL, signer: signer}
}

func (s *bffServer) token(user string, roles ...string) string {
	c := auth.Claims{Tenant: "demo", Roles: roles}
	c.Subject = user
	tok, err := s.signer.Issue(c, time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// page is a home page as the client reads it.
type page struct {
	User            map[string]any   `json:"user"`
	Recommendations []map[string]any `json:"recommendations"`
	RecentOrders    []map[string]any `json:"recent_orders"`
	Degraded        []string         `json:"degraded"`
}

func get(t *testing.T, url, authz string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, raw
}

// home fetches a home page as user u-ann and checks it is a 200 page
// whose lists are lists (never null).
func (s *bffServer) home(client string) (page, []byte) {
	s.t.Helper()
	s.lastToken = s.token("u-ann", "customer")
	status, header, raw := get(s.t, s.url+"/bff/"+client+"/home", "Bearer "+s.lastToken)
	if status != http.StatusOK || header.Get("Content-Type") != "application/json" {
		s.t.Fatalf("%s home: %d %s", client, status, raw)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		s.t.Fatalf("%s home: %v: %s", client, err, raw)
	}
	for _, k := range []string{"recommendations", "recent_orders", "degraded"} {
		if v := strings.TrimSpace(string(fields[k])); !strings.HasPrefix(v, "[") {
			s.t.Fatalf("%s home: %s is %s, want a list: %s", client, k, v, raw)
		}
	}
	if _, ok := fields["user"]; !ok || len(fields) != 4 {
		s.t.Fatalf("%s home: fields %v", client, slices.Sorted(maps.Keys(fields)))
	}
	var p page
	if err := json.Unmarshal(raw, &p); err != nil {
		s.t.Fatal(err)
	}
	return p, raw
}

func ids(items []map[string]any) []string {
	var out []string
	for _, it := range items {
		out = append(out, it["id"].(string))
	}
	return out
}

func keys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// best are the best sellers, best first: more than a page shows.
var best = []string{"p-17", "p-03", "p-25", "p-08", "p-11", "p-00", "p-29", "p-14", "p-06", "p-21", "p-02", "p-19"}

func TestWebHome(t *testing.T) {
	b := newBackends(t)
	s := serve(t, b, popular{ids: best}, 5*time.Second)
	p, raw := s.home("web")
	if len(p.Degraded) != 0 {
		t.Fatalf("degraded %v: %s", p.Degraded, raw)
	}
	if !slices.Equal(keys(p.User), keys(me)) || p.User["email"] != "ann@example.com" {
		t.Fatalf("web user %v", p.User)
	}
	if got := ids(p.Recommendations); !slices.Equal(got, best[:10]) {
		t.Fatalf("web recommendations %v, want the 10 best sellers in order %v", got, best[:10])
	}
	for _, r := range p.Recommendations {
		if !slices.Equal(keys(r), productKeys) || r["name"] != products[r["id"].(string)]["name"] {
			t.Fatalf("web recommendation %v: want every catalog field", r)
		}
	}
	if got := ids(p.RecentOrders); !slices.Equal(got, []string{"o-0", "o-1", "o-2", "o-3", "o-4"}) {
		t.Fatalf("web recent orders %v", got)
	}
	for _, o := range p.RecentOrders {
		if !slices.Equal(keys(o), orderKeys) {
			t.Fatalf("web order %v: want every field", o)
		}
	}

	// Identity and ordering were asked once each, as the caller (for
	// the caller's newest 5 orders).
	for _, c := range []string{"identity", "ordering"} {
		q := b.asked(c)
		if len(q) != 1 || q[0].Header.Get("Authorization") != "Bearer "+s.lastToken {
			t.Fatalf("%s asked %d times: %v", c, len(q), q)
		}
	}
	oq := b.asked("ordering")[0].URL.Query()
	if oq.Get("limit") != "5" || oq.Get("order") != "newest" {
		t.Fatalf("ordering asked %s", b.asked("ordering")[0].URL)
	}
}

func TestMobileHome(t *testing.T) {
	b := newBackends(t)
	s := serve(t, b, popular{ids: best}, 5*time.Second)
	p, raw := s.home("mobile")
	if len(p.Degraded) != 0 {
		t.Fatalf("degraded %v: %s", p.Degraded, raw)
	}
	if !slices.Equal(keys(p.User), []string{"id", "name"}) || p.User["id"] != "u-ann" || p.User["name"] != "Ann" {
		t.Fatalf("mobile user %v", p.User)
	}
	if got := ids(p.Recommendations); !slices.Equal(got, best[:5]) {
		t.Fatalf("mobile recommendations %v, want %v", got, best[:5])
	}
	for _, r := range p.Recommendations {
		want := products[r["id"].(string)]
		if !slices.Equal(keys(r), []string{"id", "name", "price"}) || r["name"] != want["name"] ||
			r["price"].(map[string]any)["amount"] != want["price"].(map[string]any)["amount"] {
			t.Fatalf("mobile recommendation %v", r)
		}
	}
	if got := ids(p.RecentOrders); !slices.Equal(got, []string{"o-0", "o-1", "o-2"}) {
		t.Fatalf("mobile recent orders %v", got)
	}
	for _, o := range p.RecentOrders {
		if !slices.Equal(keys(o), []string{"created_at", "id", "status", "total"}) {
			t.Fatalf("mobile order %v", o)
		}
	}
	if q := b.asked("ordering"); len(q) != 1 || q[0].URL.Query().Get("limit") != "3" {
		t.Fatalf("ordering asked %v", q)
	}
	// The mobile page is smaller than the web page.
	_, web := s.home("web")
	if len(raw) >= len(web) {
		t.Fatalf("mobile page %d bytes, web page %d", len(raw), len(web))
	}
}

// TestRecommendationsFillIn: while fewer products sold than a page shows,
// the catalog's first products fill the page, each once; a best seller
// the catalog no longer has is skipped.
func TestRecommendationsFillIn(t *testing.T) {
	for _, c := range []struct {
		name   string
		best   []string
		client string
		want   []string
	}{
		{"nothing sold", nil, "web", []string{"p-00", "p-01", "p-02", "p-03", "p-04", "p-05", "p-06", "p-07", "p-08", "p-09"}},
		{"few sold", []string{"p-07", "p-02"}, "web", []string{"p-07", "p-02", "p-00", "p-01", "p-03", "p-04", "p-05", "p-06", "p-08", "p-09"}},
		{"a removed best seller", []string{"p-12", "gone", "p-00"}, "mobile", []string{"p-12", "p-00", "p-01", "p-02", "p-03"}},
		{"all removed", []string{"gone", "gone-too"}, "mobile", []string{"p-00", "p-01", "p-02", "p-03", "p-04"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := serve(t, newBackends(t), popular{ids: c.best}, 5*time.Second)
			p, raw := s.home(c.client)
			if got := ids(p.Recommendations); !slices.Equal(got, c.want) || len(p.Degraded) != 0 {
				t.Fatalf("recommendations %v, want %v: %s", got, c.want, raw)
			}
		})
	}
}

// TestDegraded: a backend that fails, hangs, answers garbage or cannot be
// found blanks its section, which the page names; the rest of the page
// is whole and it still answers 200.
func TestDegraded(t *testing.T) {
	down := errors.New("popularity store down")
	for _, c := range []struct {
		name    string
		broken  map[string]string
		popular popular
		want    []string
	}{
		{"identity fails", map[string]string{"identity": "fail"}, popular{ids: best}, []string{"user"}},
		{"identity missing", map[string]string{"identity": "missing"}, popular{ids: best}, []string{"user"}},
		{"ordering fails", map[string]string{"ordering": "fail"}, popular{ids: best}, []string{"recent_orders"}},
		{"ordering hangs", map[string]string{"ordering": "hang"}, popular{ids: best}, []string{"recent_orders"}},
		{"ordering answers garbage", map[string]string{"ordering": "garbage"}, popular{ids: best}, []string{"recent_orders"}},
		{"catalog fails", map[string]string{"catalog": "fail"}, popular{ids: best}, []string{"recommendations"}},
		{"catalog fails, nothing sold", map[string]string{"catalog": "fail"}, popular{}, []string{"recommendations"}},
		{"catalog hangs", map[string]string{"catalog": "hang"}, popular{ids: best}, []string{"recommendations"}},
		{"popularity fails", nil, popular{err: down}, []string{"recommendations"}},
		{"everything fails", map[string]string{"identity": "hang", "ordering": "fail", "catalog": "missing"}, popular{ids: best},
			[]string{"recent_orders", "recommendations", "user"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := newBackends(t)
			// A section that hangs is given up after its timeout: short
			// where a backend hangs, long enough elsewhere that no
			// healthy section is given up on a busy machine.
			timeout := 10 * time.Second
			for cluster, how := range c.broken {
				b.breakCluster(cluster, how)
				if how == "hang" {
					timeout = time.Second
				}
			}
			s := serve(t, b, c.popular, timeout)
			for _, client := range []string{"web", "mobile"} {
				p, raw := s.home(client)
				if !slices.Equal(p.Degraded, c.want) {
					t.Fatalf("%s: degraded %v, want %v: %s", client, p.Degraded, c.want, raw)
				}
				recs, orders := 10, 5
				if client == "mobile" {
					recs, orders = 5, 3
				}
				if slices.Contains(c.want, "user") != (p.User == nil) {
					t.Fatalf("%s: user %v with degraded %v", client, p.User, p.Degraded)
				}
				if n := len(p.Recommendations); (n == 0) != slices.Contains(c.want, "recommendations") || (n != 0 && n != recs) {
					t.Fatalf("%s: %d recommendations with degraded %v", client, n, p.Degraded)
				}
				if n := len(p.RecentOrders); (n == 0) != slices.Contains(c.want, "recent_orders") || (n != 0 && n != orders) {
					t.Fatalf("%s: %d recent orders with degraded %v", client, n, p.Degraded)
				}
			}
		})
	}
}

func TestHomeNeedsACaller(t *testing.T) {
	b := newBackends(t)
	s := serve(t, b, popular{ids: best}, 5*time.Second)
	for _, client := range []string{"web", "mobile"} {
		for _, authz := range []string{"", "Bearer not.a.token", "Basic dTpw"} {
			status, header, raw := get(t, s.url+"/bff/"+client+"/home", authz)
			testenv.Problem(t, status, header, raw, http.StatusUnauthorized)
			if !strings.HasPrefix(header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("%s %q: no challenge", client, authz)
			}
		}
	}
	// The handler refuses an anonymous request by itself too, behind a
	// gateway or a mux that forgot the rule.
	mux := http.NewServeMux()
	bff.New(b.resolve, popular{ids: best}, bff.Options{}).Register(mux)
	bare := httptest.NewServer(mux)
	defer bare.Close()
	status, header, raw := get(t, bare.URL+"/bff/web/home", "")
	testenv.Problem(t, status, header, raw, http.StatusUnauthorized)
	for _, c := range []string{"identity", "ordering", "catalog"} {
		if n := len(b.asked(c)); n != 0 {
			t.Fatalf("anonymous pages asked %s %d times", c, n)
		}
	}
}
