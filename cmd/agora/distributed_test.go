package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/agora-commerce/agora/eventstore/postgres"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/messaging/natsbus"
)

// TestDistributedKillUnderLoad runs the platform distributed: one process
// per context on PostgreSQL and the external NATS server, with two
// instances each of ordering and payments, behind a gateway process that
// finds them in the NATS KV registry. Clients place orders through the
// gateway (each with an Idempotency-Key, retrying only what a client may
// safely retry) while one ordering and one payments instance are killed.
// No request fails for good, every acknowledged order ends, and money and
// stock add up.
func TestDistributedKillUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ten processes")
	}
	pg, nats := os.Getenv("AGORA_TEST_POSTGRES_URL"), os.Getenv("AGORA_TEST_NATS_URL")
	if pg == "" || nats == "" {
		t.Skip("AGORA_TEST_POSTGRES_URL or AGORA_TEST_NATS_URL not set; skipping the distributed test (.ci/run sets them)")
	}
	for _, mode := range []string{"choreography", "orchestration"} {
		t.Run(mode, func(t *testing.T) { distributedKill(t, pg, nats, mode) })
	}
}

// startDistributed runs the platform distributed on PostgreSQL pg and
// NATS nats (a schema and a namespace of its own, dropped at the end) in
// checkout mode mode: one process per context, then the extra instances
// (named "<context>-<n>"), then the gateway, whose base URL it returns
// with the processes by name, the admin logged in there.
func startDistributed(t *testing.T, pg, nats, mode string, extra ...string) (base string, procs map[string]*exec.Cmd) {
	base, procs, _ = startDistributedWith(t, pg, nats, mode, nil, extra...)
	return base, procs
}

// platformNames are where a distributed platform keeps its data: its
// PostgreSQL schema and its NATS namespace.
type platformNames struct {
	schema, namespace string
	// respawn starts a process again, on its address, data and flags.
	respawn map[string]func() *exec.Cmd
	// addrs are the processes' addresses.
	addrs map[string]string
}

// startDistributedWith is startDistributed with flags every process
// takes (the TLS flags among them make the URLs https).
func startDistributedWith(t *testing.T, pg, nats, mode string, flags []string, extra ...string) (base string, procs map[string]*exec.Cmd, names platformNames) {
	scheme := "http://"
	if slices.ContainsFunc(flags, func(f string) bool { return strings.HasPrefix(f, "--tls-") }) {
		scheme = "https://"
	}
	id := rand.Uint64()
	schema, ns := fmt.Sprintf("dist_%d", id), fmt.Sprintf("dist%d", id)
	names = platformNames{schema: schema, namespace: ns, respawn: map[string]func() *exec.Cmd{}, addrs: map[string]string{}}
	t.Cleanup(func() {
		if err := postgres.DropSchema(context.Background(), pg, schema); err != nil {
			t.Errorf("drop schema: %v", err)
		}
		// The namespace's streams and buckets on the shared server.
		ctx := context.Background()
		b, err := natsbus.Open(ctx, natsbus.Options{URL: nats, Namespace: ns})
		if err != nil {
			t.Logf("cleanup: the namespace's streams stay: %v", err)
			return
		}
		defer b.Close()
		for _, stream := range []string{"EVENTS", "CATALOG"} {
			_ = b.DeleteStream(ctx, stream)
		}
		for _, bucket := range []string{"_registry", "_revoked"} {
			_ = b.JetStream().DeleteKeyValue(ctx, ns+bucket)
		}
	})
	common := []string{"--postgres", pg, "--postgres-schema", schema, "--nats", nats, "--nats-namespace", ns,
		"--checkout-mode", mode, "--checkout-timeout", "20s"}
	common = append(common, flags...)
	procs = map[string]*exec.Cmd{}
	var order []string
	// Each process has a data directory of its own, as on separate
	// hosts: the ones other than identity check tokens with the keys
	// identity publishes (--jwks-url).
	start := func(name, only string, extra ...string) string {
		addr, dir, args := freeAddr(t), t.TempDir(), append(append([]string{"--only", only}, common...), extra...)
		names.respawn[name] = func() *exec.Cmd { return spawn(t, addr, dir, args...) }
		names.addrs[name] = addr
		procs[name] = spawn(t, addr, dir, args...)
		order = append(order, name)
		return addr
	}
	t.Cleanup(func() {
		for _, name := range order {
			if p := procs[name]; p != nil && p.ProcessState == nil {
				_ = p.Process.Signal(syscall.SIGTERM)
				_ = p.Wait()
			}
		}
	})
	// One at a time: each applies its migrations before the next starts.
	jwks := "--jwks-url=" + scheme + start("identity", "identity") + "/.well-known/jwks.json"
	for _, ctxName := range []string{"catalog", "inventory", "shipping", "payments", "ordering", "bff"} {
		start(ctxName, ctxName, jwks)
	}
	for _, name := range extra {
		ctxName, _, _ := strings.Cut(name, "-")
		start(name, ctxName, jwks)
	}
	base = scheme + start("gateway", "gateway", jwks)
	login(t, base)
	return base, procs, names
}

func distributedKill(t *testing.T, pg, nats, mode string) {
	id := rand.Uint64()
	base, procs, names := startDistributedWith(t, pg, nats, mode, nil, "payments-2", "ordering-2")
	// Payments' four partitions are split between its two instances
	// (leases), and the survivor takes the killed one's.
	owners := leaseOwners(t, pg, names.schema)
	balanced := waitOwners(t, owners, 30*time.Second, func(by map[int]int) bool {
		return len(by) == 2 && by[procs["payments"].Process.Pid] == 2 && by[procs["payments-2"].Process.Pid] == 2
	})
	t.Logf("payments' partitions split between its instances: %v", balanced)

	// The world: a product with plenty of stock, customers with money.
	waitOK := func(what string, f func() (*http.Response, map[string]any, error)) map[string]any {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			res, body, err := f()
			if err == nil && res.StatusCode < 300 {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v %v %v", what, res, body, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	prod := waitOK("product", func() (*http.Response, map[string]any, error) {
		return post(base+"/api/v1/products", map[string]any{"sku": "DIST-" + uuid.NewString()[:8], "name": "D", "price": map[string]any{"amount": 300, "currency": "USD"}})
	})["id"].(string)
	waitOK("restock", func() (*http.Response, map[string]any, error) {
		return post(base+"/api/v1/inventory/"+prod+"/restock", map[string]any{"quantity": 10_000})
	})
	type customer struct{ token, account string }
	var customers []customer
	for i := range 6 {
		email := fmt.Sprintf("d%d-%d@agora.test", i, id)
		reg := waitOK("register", func() (*http.Response, map[string]any, error) {
			return post(base+"/api/v1/customers", map[string]any{"email": email, "password": "password-123", "name": "D"})
		})
		tok := waitOK("login", func() (*http.Response, map[string]any, error) {
			return post(base+"/api/v1/auth/token", map[string]any{"email": email, "password": "password-123"})
		})["access_token"].(string)
		acct := reg["account_id"].(string)
		waitOK("fund", func() (*http.Response, map[string]any, error) {
			return post(base+"/api/v1/accounts/"+acct+"/deposits", map[string]any{"amount": map[string]any{"amount": 100_000, "currency": "USD"}})
		})
		customers = append(customers, customer{tok, acct})
	}

	// A request about an account sent to the payments instance that does
	// not hold its partition's lease is served by the one that does.
	for _, c := range customers {
		schema := fmt.Sprintf("%s_payments_p%d", names.schema, partition.Of(c.account, 4))
		for _, name := range []string{"payments", "payments-2"} {
			if procs[name].Process.Pid == balanced[schema] {
				continue // the owner
			}
			owner := map[string]string{"payments": "payments-2", "payments-2": "payments"}[name]
			req, _ := http.NewRequest("GET", "http://"+names.addrs[name]+"/api/v1/accounts/"+c.account, nil)
			req.Header.Set("Authorization", "Bearer "+c.token)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			want := strings.NewReplacer(":", "-", ".", "-").Replace(names.addrs[owner])
			if got := res.Header.Get(server.ForwardedHeader); res.StatusCode != 200 || !strings.HasSuffix(got, want) {
				t.Errorf("account %s (%s) asked of %s: %d, forwarded to %q, want the owner %s", c.account, schema, name, res.StatusCode, got, want)
			}
		}
	}

	// Load: each client places orders, retrying a failed one with the
	// same key; a request the client may not retry (4xx) fails the test.
	const perClient = 15
	var acked sync.Map // order ID → quantity
	var ackedN, retried atomic.Int64
	var bad atomic.Value
	place := func(c customer, qty int) {
		// The client names its order (id) as well as its request
		// (Idempotency-Key): a retry after an instance died with the
		// order placed but unanswered finds that order, not a second one.
		key, orderID := uuid.NewString(), uuid.Must(uuid.NewV7()).String()
		body, _ := json.Marshal(map[string]any{"id": orderID, "payment_account_id": c.account, "items": []any{map[string]any{"product_id": prod, "quantity": qty}},
			"shipping_address": map[string]any{"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": "62701", "country": "US"}})
		last := ""
		giveUp := time.Now().Add(45 * time.Second)
		for time.Now().Before(giveUp) {
			req, _ := http.NewRequest("POST", base+"/api/v1/orders", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+c.token)
			req.Header.Set("Idempotency-Key", key)
			res, err := http.DefaultTransport.RoundTrip(req)
			if err == nil {
				raw, _ := io.ReadAll(res.Body)
				res.Body.Close()
				last = fmt.Sprintf("%d %s", res.StatusCode, raw)
				switch {
				case res.StatusCode == http.StatusAccepted:
					var o map[string]any
					_ = json.Unmarshal(raw, &o)
					acked.Store(o["id"].(string), qty)
					ackedN.Add(1)
					return
				case res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusConflict:
					// Safe to retry with the same key (409: the first is still in flight).
				default:
					bad.Store(fmt.Sprintf("order answered %d %s", res.StatusCode, raw))
					return
				}
			}
			if err != nil {
				last = err.Error()
			}
			retried.Add(1)
			time.Sleep(time.Duration(100+rand.IntN(200)) * time.Millisecond)
		}
		bad.Store("an order was never acknowledged in 45 s; the last answer: " + last)
	}
	var wg sync.WaitGroup
	for _, c := range customers {
		wg.Go(func() {
			for range perClient {
				place(c, 1+rand.IntN(3))
			}
		})
	}
	// Kill one ordering and one payments instance while orders flow.
	for ackedN.Load() < 20 {
		time.Sleep(10 * time.Millisecond)
	}
	killedAt := ackedN.Load()
	// The payments instances passed calls (and requests) about the other's
	// partitions to it.
	forwarded := map[string]float64{}
	for _, name := range []string{"payments", "payments-2"} {
		for kind, n := range forwardedCounts(t, "http://"+names.addrs[name]+"/metrics") {
			forwarded[kind] += n
		}
	}
	if forwarded["call"] == 0 || forwarded["http"] == 0 {
		t.Errorf("forwarded to the partitions' holders: %v; want calls and requests", forwarded)
	}
	t.Logf("forwarded to the partitions' holders before the kill: %v", forwarded)
	for _, name := range []string{"ordering-2", "payments"} {
		if err := procs[name].Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = procs[name].Wait()
	}
	killed := time.Now()
	survivor := procs["payments-2"].Process.Pid
	waitOwners(t, owners, 10*time.Second, func(by map[int]int) bool { return len(by) == 1 && by[survivor] == 4 })
	t.Logf("the killed payments instance's partitions moved to the survivor in %v", time.Since(killed).Round(10*time.Millisecond))
	wg.Wait()
	if b := bad.Load(); b != nil {
		t.Fatal(b)
	}
	total := int(ackedN.Load())
	if total != len(customers)*perClient {
		t.Fatalf("%d orders acknowledged of %d", total, len(customers)*perClient)
	}

	// Every acknowledged order ends; what was sold is what was paid.
	sold, confirmed, cancelled := 0, 0, 0
	shipped := ""
	acked.Range(func(k, v any) bool {
		deadline := time.Now().Add(60 * time.Second)
		for {
			req, _ := http.NewRequest("GET", base+"/api/v1/orders/"+k.(string), nil)
			res, err := http.DefaultClient.Do(req)
			var o map[string]any
			if err == nil {
				_ = json.NewDecoder(res.Body).Decode(&o)
				res.Body.Close()
			}
			if err == nil && res.StatusCode == 200 && o["status"] != "Pending" {
				if o["status"] == "Confirmed" {
					confirmed++
					sold += v.(int)
					shipped = k.(string)
				} else {
					cancelled++
				}
				return true
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s did not end: %v %v", k, err, o)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, inv, err := getJSONTry(base + "/api/v1/inventory/" + prod)
		if err == nil && inv["on_hand"] == float64(10_000-sold) && inv["reserved"] == float64(0) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stock: %v %v (sold %d)", inv, err, sold)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Money: what the customers lost, the merchant gained; nothing else moved.
	var sum float64
	deadline = time.Now().Add(30 * time.Second)
	for {
		sum = 0
		for _, c := range customers {
			_, acc, err := getJSONTry(base + "/api/v1/accounts/" + c.account)
			if err != nil || acc["balance"] == nil {
				t.Fatalf("account %s: %v %v", c.account, acc, err)
			}
			sum += acc["balance"].(map[string]any)["amount"].(float64)
		}
		_, m, _ := getJSONTry(base + "/api/v1/accounts/merchant")
		if m["balance"] != nil && sum == float64(len(customers)*100_000-sold*300) &&
			m["balance"].(map[string]any)["amount"].(float64) == float64(sold*300) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("money: customers hold %v, merchant %v; %d units sold at 300", sum, m["balance"], sold)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Shipping answers for an order it asks ordering about (over the bus).
	if code, sh, err := getJSONTry(base + "/api/v1/shipments/" + shipped); err != nil || code != 200 || sh["status"] != "Arranged" {
		t.Fatalf("shipment of %s: %d %v %v", shipped, code, sh, err)
	}
	t.Logf("%d orders through a gateway and 9 context processes; one ordering and one payments instance killed after %d: %d confirmed, %d cancelled, %d requests retried by clients",
		total, killedAt, confirmed, cancelled, retried.Load())
	if cancelled != 0 {
		t.Fatalf("%d orders cancelled; every customer could pay and stock was plenty", cancelled)
	}
}

// leaseOwners answers, when called, which process (pid) holds each of
// the payments partitions' leases of the platform in schema prefix (the
// lease sessions' application_name: "agora-lease <schema> <pid>").
func leaseOwners(t *testing.T, pg, prefix string) func() map[string]int {
	return func() map[string]int {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, pg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, `SELECT application_name FROM pg_stat_activity WHERE starts_with(application_name, $1)`, "agora-lease "+prefix+"_payments_p")
		if err != nil {
			t.Fatal(err)
		}
		apps, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, a := range apps {
			var schema string
			var pid int
			if _, err := fmt.Sscanf(a, "agora-lease %s %d", &schema, &pid); err == nil {
				out[schema] = pid
			}
		}
		return out
	}
}

// waitOwners waits up to within until every one of the 4 partitions is
// held and ok holds of how many each process holds; it answers the
// holders by partition schema.
func waitOwners(t *testing.T, owners func() map[string]int, within time.Duration, ok func(byPid map[int]int) bool) map[string]int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		o := owners()
		by := map[int]int{}
		for _, pid := range o {
			by[pid]++
		}
		if len(o) == 4 && ok(by) {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("payments' partition leases after %v: %v", within, o)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// forwardedCounts reads agora_partition_forwarded_total by kind from a
// process's /metrics.
func forwardedCounts(t *testing.T, url string) map[string]float64 {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		rest, ok := strings.CutPrefix(line, `agora_partition_forwarded_total{kind="`)
		if !ok {
			continue
		}
		kind, num, _ := strings.Cut(rest, `"} `)
		var n float64
		fmt.Sscan(num, &n)
		out[kind] = n
	}
	return out
}

func getJSONTry(url string) (int, map[string]any, error) {
	res, err := http.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	var out map[string]any
	err = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out, err
}

// TestDistributedOneCheckoutIsOneTrace places an order through the
// gateway of a distributed platform (one process per context), in each
// checkout mode, and reads its trace (the POST's Agora-Trace-Id) from the
// gateway's ops API, which gathers it from every process over the bus:
// one trace with a single root, the gateway's, holding spans of the
// gateway, ordering, inventory, payments and shipping — the appends,
// the relays, the consumers, the order read model's update and the
// carrier's call among them — and no process missing from the answer.
func TestDistributedOneCheckoutIsOneTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts eight processes")
	}
	pg, nats := os.Getenv("AGORA_TEST_POSTGRES_URL"), os.Getenv("AGORA_TEST_NATS_URL")
	if pg == "" || nats == "" {
		t.Skip("AGORA_TEST_POSTGRES_URL or AGORA_TEST_NATS_URL not set; skipping the distributed test (.ci/run sets them)")
	}
	for _, mode := range []string{"orchestration", "choreography"} {
		t.Run(mode, func(t *testing.T) { distributedTrace(t, pg, nats, mode) })
	}
}

func distributedTrace(t *testing.T, pg, nats, mode string) {
	base, _ := startDistributed(t, pg, nats, mode)
	// The gateway process serves the web pages too.
	if res, err := http.Get(base + "/"); err != nil || res.StatusCode != http.StatusOK ||
		!strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || res.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET / from the gateway process: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	waitOK := func(what string, f func() (*http.Response, map[string]any, error)) (*http.Response, map[string]any) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			res, body, err := f()
			if err == nil && res.StatusCode < 300 {
				return res, body
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v %v %v", what, res, body, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	_, p := waitOK("product", func() (*http.Response, map[string]any, error) {
		return post(base+"/api/v1/products", map[string]any{"sku": "TRACE-" + uuid.NewString()[:8], "name": "T", "price": map[string]any{"amount": 300, "currency": "USD"}})
	})
	prod := p["id"].(string)
	waitOK("restock", func() (*http.Response, map[string]any, error) {
		return post(base+"/api/v1/inventory/"+prod+"/restock", map[string]any{"quantity": 10})
	})
	acct := "cust-" + uuid.NewString()
	waitOK("account", func() (*http.Response, map[string]any, error) {
		return post(base+"/api/v1/accounts", map[string]any{"id": acct, "owner_id": acct, "currency": "USD",
			"initial_balance": map[string]any{"amount": 10_000, "currency": "USD"}})
	})
	res, o := waitOK("order", func() (*http.Response, map[string]any, error) {
		return post(base+"/api/v1/orders", map[string]any{"customer_id": acct, "payment_account_id": acct,
			"items":            []any{map[string]any{"product_id": prod, "quantity": 1}},
			"shipping_address": map[string]any{"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": "62701", "country": "US"}})
	})
	orderID, traceID := o["id"].(string), res.Header.Get("Agora-Trace-Id")
	if len(traceID) != 32 {
		t.Fatalf("the order's answer names no trace: %v", res.Header)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, o, err := getJSONTry(base + "/api/v1/orders/" + orderID)
		if err == nil && o["status"] == "Confirmed" {
			break
		}
		if time.Now().After(deadline) || o["status"] == "Cancelled" {
			t.Fatalf("order %s: %v %v", orderID, o, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	want := []string{"POST /api/v1/orders", "eventstore append", "relay publish", "process ordering.order.placed",
		"projection ordering.order_list", "carrier book"}
	var last string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("trace %s: %s", traceID, last)
		}
		code, tr, err := getJSONTry(base + "/api/v1/ops/traces/" + traceID)
		if err != nil || code != http.StatusOK {
			last = fmt.Sprintf("%d %v %v", code, tr, err)
			continue
		}
		if p, ok := tr["partial"]; ok {
			last = fmt.Sprintf("processes did not answer: %v", p)
			continue
		}
		spans := tr["spans"].([]any)
		services, ids := map[string]bool{}, map[string]bool{}
		var names []string
		for _, s := range spans {
			sp := s.(map[string]any)
			services[sp["service"].(string)] = true
			ids[sp["span_id"].(string)] = true
			names = append(names, sp["name"].(string))
		}
		var roots []string
		for _, s := range spans {
			sp := s.(map[string]any)
			if p, _ := sp["parent_span_id"].(string); p == "" || !ids[p] {
				roots = append(roots, sp["service"].(string)+": "+sp["name"].(string))
			}
		}
		missing := ""
		for _, s := range []string{"gateway", "ordering", "inventory", "payments", "shipping"} {
			if !services[s] {
				missing += " service " + s
			}
		}
		for _, w := range want {
			if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, w) }) {
				missing += " span " + w
			}
		}
		switch {
		case missing != "":
			last = "missing" + missing
		case len(roots) != 1 || roots[0] != "gateway: POST /api/v1/orders":
			last = fmt.Sprintf("roots %v, want the gateway's POST alone", roots)
		default:
			var lines []string
			for _, s := range spans {
				sp := s.(map[string]any)
				lines = append(lines, sp["service"].(string)+": "+sp["name"].(string))
			}
			slices.Sort(lines)
			t.Logf("one distributed checkout (%s), %d spans:\n%s", mode, len(spans), strings.Join(slices.Compact(lines), "\n"))
			return
		}
	}
}
