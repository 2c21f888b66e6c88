package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// TestKill9DuringCheckout places orders from several clients, kills the
// process with SIGKILL while orders are in flight (three times), restarts
// it on the same data, and checks that every acknowledged order ends,
// every checkout saga is terminal, no payment was captured twice (each
// customer paid exactly for their confirmed orders, the merchant got
// exactly that), and no stock leaked (nothing stays reserved; on-hand
// fell by exactly what confirmed orders took).
func TestKill9DuringCheckout(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, mode := range []string{"orchestration", "choreography"} {
		t.Run(mode, func(t *testing.T) { crashCheckout(t, mode) })
	}
}

func crashCheckout(t *testing.T, mode string) {
	dir, addr := t.TempDir(), freeAddr(t)
	if d := os.Getenv("AGORA_CRASH_DIR"); d != "" {
		dir = d
	}
	args := []string{"--checkout-mode", mode, "--carrier-latency", "5ms"}
	cmd := startProcess(t, addr, dir, args...)
	base := "http://" + addr

	products := map[string]int64{} // id → units restocked
	for i := range 4 {
		qty := 400
		if i == 3 {
			qty = 5 // sells out: some orders end out_of_stock
		}
		res, p, err := post(base+"/api/v1/products", map[string]any{"sku": fmt.Sprintf("CRASH-%d", i), "name": "Crash test item",
			"price": map[string]any{"amount": 100 * (i + 1), "currency": "USD"}})
		if err != nil || res.StatusCode != 201 {
			t.Fatalf("product: %v %v", res, err)
		}
		id := p["id"].(string)
		products[id] = int64(qty)
		if res, _, err := post(base+"/api/v1/inventory/"+id+"/restock", map[string]any{"quantity": qty}); err != nil || res.StatusCode != 200 {
			t.Fatalf("restock: %v %v", res, err)
		}
	}
	initial := map[string]int64{}
	for i := range 10 {
		id := fmt.Sprintf("crash-customer-%d", i)
		bal := int64(50_000)
		if i == 9 {
			bal = 150 // runs out of money: some orders end insufficient_funds
		}
		if res, _, err := post(base+"/api/v1/accounts", map[string]any{"id": id, "owner_id": id, "currency": "USD",
			"initial_balance": map[string]any{"amount": bal, "currency": "USD"}}); err != nil || res.StatusCode != 201 {
			t.Fatalf("account: %v %v", res, err)
		}
		initial[id] = bal
	}
	ids := make([]string, 0, len(products))
	for id := range products {
		ids = append(ids, id)
	}
	var mu sync.Mutex
	acked := map[string]bool{}
	for round := range 3 {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					cust := fmt.Sprintf("crash-customer-%d", rand.IntN(10))
					res, o, err := post(base+"/api/v1/orders", map[string]any{"customer_id": cust, "payment_account_id": cust,
						"items":            []any{map[string]any{"product_id": ids[rand.IntN(len(ids))], "quantity": 1 + rand.IntN(2)}},
						"shipping_address": map[string]any{"street": "1 Crash Rd", "city": "Kill", "state": "NV", "zip_code": "89001", "country": "US"}})
					if err != nil {
						return // the process died; this order was not acknowledged
					}
					if res.StatusCode == 202 {
						mu.Lock()
						acked[o["id"].(string)] = true
						mu.Unlock()
					}
				}
			})
		}
		target := 40 * (round + 1)
		for {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n >= target {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		close(stop)
		wg.Wait()
		cmd = startProcess(t, addr, dir, args...)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()

	// Every acknowledged order (and any that committed unacknowledged)
	// reaches Confirmed or Cancelled.
	type order struct {
		id, customer, status, reason string
		total                        int64
		lines                        map[string]int64
	}
	var orders []order
	deadline := time.Now().Add(90 * time.Second)
	for {
		orders = orders[:0]
		pending, cursor := 0, ""
		for {
			code, page := getJSON(t, base+"/api/v1/orders?limit=500"+cursor)
			if code != 200 {
				t.Fatalf("list orders: %d %v", code, page)
			}
			for _, it := range page["items"].([]any) {
				o := it.(map[string]any)
				ord := order{id: o["id"].(string), customer: o["payment_account_id"].(string), status: o["status"].(string), lines: map[string]int64{}}
				ord.reason, _ = o["reason"].(string)
				ord.total = int64(o["total"].(map[string]any)["amount"].(float64))
				for _, l := range o["items"].([]any) {
					l := l.(map[string]any)
					ord.lines[l["product_id"].(string)] += int64(l["quantity"].(float64))
				}
				if ord.status == "Pending" {
					pending++
				}
				orders = append(orders, ord)
			}
			nc, ok := page["next_cursor"].(string)
			if !ok {
				break
			}
			cursor = "&cursor=" + nc
		}
		seen := map[string]bool{}
		for _, o := range orders {
			seen[o.id] = true
		}
		missing := 0
		for id := range acked {
			if !seen[id] {
				missing++
			}
		}
		if pending == 0 && missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90s: %d orders pending, %d acknowledged orders not listed", pending, missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for id := range acked {
		if code, o := getJSON(t, base+"/api/v1/orders/"+id); code != 200 || (o["status"] != "Confirmed" && o["status"] != "Cancelled") {
			t.Fatalf("acknowledged order %s: %d %v", id, code, o)
		}
	}

	paid := map[string]int64{}
	sold := map[string]int64{}
	var merchantGot int64
	reasons := map[string]int{}
	for _, o := range orders {
		if o.status == "Confirmed" {
			paid[o.customer] += o.total
			merchantGot += o.total
			for p, q := range o.lines {
				sold[p] += q
			}
		} else {
			reasons[o.reason]++
			// Nobody cancels here and nothing is slow: any other reason
			// (timeout, cancelled_by_customer) means a crash broke a checkout.
			if o.reason != "out_of_stock" && o.reason != "insufficient_funds" {
				t.Errorf("order %s cancelled with reason %q", o.id, o.reason)
			}
		}
		if mode == "orchestration" {
			if code, s := getJSON(t, base+"/api/v1/sagas/checkout-"+o.id); code != 200 || (s["status"] != "Completed" && s["status"] != "Compensated") {
				t.Fatalf("saga of order %s: %d %v", o.id, code, s)
			}
		}
	}
	// Refunds and releases of cancelled orders may still be on their way
	// (choreography compensates after the order ends): wait for them.
	check := func() string {
		for cust, bal := range initial {
			_, a := getJSON(t, base+"/api/v1/accounts/"+cust)
			got := int64(a["balance"].(map[string]any)["amount"].(float64))
			if got != bal-paid[cust] {
				return fmt.Sprintf("customer %s has %d, want %d − %d paid for confirmed orders", cust, got, bal, paid[cust])
			}
		}
		_, m := getJSON(t, base+"/api/v1/accounts/merchant")
		if got := int64(m["balance"].(map[string]any)["amount"].(float64)); got != merchantGot {
			return fmt.Sprintf("merchant has %d, want %d", got, merchantGot)
		}
		for p, restocked := range products {
			_, inv := getJSON(t, base+"/api/v1/inventory/"+p)
			onHand, reserved := int64(inv["on_hand"].(float64)), int64(inv["reserved"].(float64))
			if reserved != 0 || onHand != restocked-sold[p] {
				return fmt.Sprintf("product %s: on hand %d reserved %d, want %d and 0 (%d sold)", p, onHand, reserved, restocked-sold[p], sold[p])
			}
		}
		return ""
	}
	var last string
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if last = check(); last == "" {
			break
		}
	}
	if last != "" {
		t.Fatal(last)
	}
	t.Logf("%s: %d orders after 3 kills (%d acknowledged); %d confirmed, cancelled by reason %v",
		mode, len(orders), len(acked), len(orders)-sumInts(reasons), reasons)
}

func sumInts(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}
