package server_test

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/gateway/routes"
	"github.com/agora-commerce/agora/internal/server"
)

// bootEdge boots an embedded server with the test admin bootstrapped and
// edit's changes to its configuration, and returns a client acting as
// that admin.
func bootEdge(t *testing.T, edit func(*server.Config)) (*client, *server.Server) {
	t.Helper()
	cfg := server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), BootstrapAdmin: adminCreds, Logger: testLogger()}
	edit(&cfg)
	srv, stop, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	c := &client{t: t, base: "http://" + srv.Addr()}
	c.token = c.login(adminEmail, adminPassword)
	return c, srv
}

func TestBFFHome(t *testing.T) {
	w := bootWith(t, server.Orchestration, "embedded")
	alice, acct := w.customer("demo", 100_000)
	cheap, best := w.product(100, 100), w.product(200, 100)
	var ids []string
	for i := range 6 {
		p, qty := cheap, 1
		if i%2 == 0 {
			p, qty = best, 3
		}
		r := alice.do("POST", "/api/v1/orders", map[string]any{"payment_account_id": acct,
			"items": []any{map[string]any{"product_id": p, "quantity": qty}}, "shipping_address": address("62701")})
		if r.status != http.StatusAccepted {
			t.Fatalf("order: %d %s", r.status, r.raw)
		}
		ids = append(ids, r.body["id"].(string))
		w.expect(ids[i], "Confirmed", "")
	}

	// The web page: full records; the newest orders first; the best
	// seller (counted behind, flushed within a second) first.
	w.eventually("the best seller recommended first", func() string {
		r := alice.do("GET", "/bff/web/home", nil)
		if r.status != http.StatusOK {
			return string(r.raw)
		}
		recs := r.body["recommendations"].([]any)
		if len(recs) == 0 || recs[0].(map[string]any)["id"] != best || recs[0].(map[string]any)["sku"] == nil {
			return "recommendations: " + string(r.raw)
		}
		// The order list is a projection too: wait for the newest order.
		if o, _ := r.body["recent_orders"].([]any); len(o) == 0 || o[0].(map[string]any)["id"] != ids[5] {
			return "recent orders: " + string(r.raw)
		}
		return ""
	})
	r := alice.do("GET", "/bff/web/home", nil)
	orders := r.body["recent_orders"].([]any)
	if len(orders) != 5 || orders[0].(map[string]any)["id"] != ids[5] || orders[0].(map[string]any)["shipping_address"] == nil {
		t.Fatalf("web recent orders: %s", r.raw)
	}
	if r.body["user"].(map[string]any)["email"] == nil || len(r.body["degraded"].([]any)) != 0 {
		t.Fatalf("web page: %s", r.raw)
	}

	// The mobile page: fewer records, trimmed.
	r = alice.do("GET", "/bff/mobile/home", nil)
	if r.status != http.StatusOK {
		t.Fatalf("mobile: %d %s", r.status, r.raw)
	}
	orders, recs := r.body["recent_orders"].([]any), r.body["recommendations"].([]any)
	if len(orders) != 3 || len(recs) == 0 || len(recs) > 5 {
		t.Fatalf("mobile sizes: %s", r.raw)
	}
	for _, o := range orders {
		for k := range o.(map[string]any) {
			if k != "id" && k != "status" && k != "total" && k != "created_at" {
				t.Fatalf("mobile order field %q: %s", k, r.raw)
			}
		}
	}
	if _, ok := recs[0].(map[string]any)["sku"]; ok {
		t.Fatalf("mobile recommendation not trimmed: %s", r.raw)
	}
	if r := w.as("").do("GET", "/bff/web/home", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("anonymous home: %d %s", r.status, r.raw)
	}

	// One backend down: the page still answers, that section degraded.
	for _, tc := range []struct{ cluster, section string }{{"catalog", "recommendations"}, {"ordering", "recent_orders"}} {
		w.srv.InjectFault(tc.cluster, true)
		r := alice.do("GET", "/bff/web/home", nil)
		w.srv.InjectFault(tc.cluster, false)
		if r.status != http.StatusOK {
			t.Fatalf("%s down: %d %s", tc.cluster, r.status, r.raw)
		}
		d := r.body["degraded"].([]any)
		if len(d) != 1 || d[0] != tc.section || r.body["user"] == nil {
			t.Fatalf("%s down: %s", tc.cluster, r.raw)
		}
	}
}

// A failing upstream opens its breaker: the gateway answers 503 at once
// without calling it; once the upstream is well, the breaker closes on
// its own.
func TestBreakerOpensAndRecovers(t *testing.T) {
	c, srv := bootEdge(t, func(cfg *server.Config) { cfg.BreakerDelay = 300 * time.Millisecond })
	r := c.do("POST", "/api/v1/products", map[string]any{"sku": "B-1", "name": "B", "price": usd(100)})
	if r.status != http.StatusCreated {
		t.Fatalf("product: %d %s", r.status, r.raw)
	}
	path := "/api/v1/products/" + r.body["id"].(string)
	srv.InjectFault("catalog", true)
	reasons := map[string]int{}
	for range 20 {
		r := c.do("GET", path, nil)
		if r.status != http.StatusServiceUnavailable || !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") {
			t.Fatalf("failing upstream: %d %s", r.status, r.raw)
		}
		reasons[r.body["reason"].(string)]++
	}
	if reasons["circuit_open"] == 0 || srv.Breakers()["catalog"] != "open" {
		t.Fatalf("the breaker did not open: answers by reason %v, breakers %v", reasons, srv.Breakers())
	}
	if m := c.do("GET", "/metrics", nil); !strings.Contains(string(m.raw), `agora_gateway_breaker_state{cluster="catalog"} 2`) {
		t.Fatalf("the open breaker is not in the metrics")
	}
	// Other clusters are not affected.
	if r := c.do("GET", "/api/v1/accounts", nil); r.status != http.StatusOK {
		t.Fatalf("payments while catalog is open: %d %s", r.status, r.raw)
	}
	srv.InjectFault("catalog", false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r := c.do("GET", path, nil); r.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the breaker did not recover: %v", srv.Breakers())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := srv.Breakers()["catalog"]; st != "closed" {
		t.Fatalf("breaker %s after recovery", st)
	}
}

// Past its client limit a caller gets 429 with Retry-After, and every
// answer carries the RateLimit-* headers.
func TestRateLimits(t *testing.T) {
	yaml := strings.Replace(string(routes.DefaultYAML()), "public:\n    client: {rate: 1200, period: 1m, burst: 200}",
		"public:\n    client: {rate: 60, period: 1m, burst: 3}", 1)
	if !strings.Contains(yaml, "burst: 3}") {
		t.Fatal("the default table's public class changed; update this test")
	}
	file := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := bootEdge(t, func(cfg *server.Config) { cfg.RateLimits, cfg.Routes = true, file })
	anon := c.as("")
	var last response
	for i := range 4 {
		last = anon.do("GET", "/api/v1/products", nil)
		if last.header.Get("RateLimit-Limit") == "" || last.header.Get("RateLimit-Remaining") == "" || last.header.Get("RateLimit-Reset") == "" {
			t.Fatalf("request %d: no RateLimit headers: %v", i, last.header)
		}
		if i < 3 && last.status != http.StatusOK {
			t.Fatalf("request %d within the burst: %d %s", i, last.status, last.raw)
		}
	}
	if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" ||
		!strings.HasPrefix(last.header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("past the limit: %d %v %s", last.status, last.header, last.raw)
	}
	// Another class is counted apart: the admin's own reads still pass.
	if r := c.do("GET", "/api/v1/accounts", nil); r.status != http.StatusOK {
		t.Fatalf("another class: %d %s", r.status, r.raw)
	}
}

// An admin's event stream carries the tenant's integration events as
// Server-Sent Events; a customer may not open it.
func TestEventStream(t *testing.T) {
	w := bootWith(t, server.Orchestration, "embedded")
	alice, _ := w.customer("demo", 0)
	if r := alice.do("GET", "/api/v1/events/stream", nil); r.status != http.StatusForbidden {
		t.Fatalf("a customer's stream: %d %s", r.status, r.raw)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", w.base+"/api/v1/events/stream", nil)
	req.Header.Set("Authorization", "Bearer "+w.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %v", res.StatusCode, res.Header)
	}
	events := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				events <- line
			}
		}
		close(events)
	}()
	// The stream starts at "now": add products until one shows up.
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("the stream ended")
			}
			if e == "catalog.ProductCreated.v1" {
				return
			}
		case <-tick.C:
			w.product(100, 0)
		case <-deadline:
			t.Fatal("no catalog event on the stream after 20s")
		}
	}
}
