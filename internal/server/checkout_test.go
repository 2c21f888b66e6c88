package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/postgres"
	"github.com/agora-commerce/agora/internal/inventory"
	invapp "github.com/agora-commerce/agora/internal/inventory/app"
	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	payapp "github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/money"
)

// world is a running platform and what the test put into it: every
// account it funded (to check that balances always sum to the money put
// in) and every product it stocked (to check that nothing stays reserved).
type world struct {
	*client
	t    *testing.T
	srv  *server.Server
	dir  string
	mode string
	// pg and schema are the PostgreSQL URL and schema prefix ("" embedded).
	pg, schema string

	mu       sync.Mutex
	accounts []string
	funded   int64
	products []string
}

// bootWith boots a server in checkout mode on the given storage: "embedded"
// (SQLite + embedded NATS) or "external" (PostgreSQL + external NATS).
func bootWith(t *testing.T, mode, storage string) *world {
	t.Helper()
	var pg, nats, schema, ns string
	if storage == "external" {
		pg, nats = testenv.PostgresURL(t), os.Getenv("AGORA_TEST_NATS_URL")
		if nats == "" {
			t.Skip("AGORA_TEST_NATS_URL not set; skipping the external-NATS mode (.ci/run sets it)")
		}
		id := rand.Uint64()
		schema, ns = fmt.Sprintf("e2e_%d", id), fmt.Sprintf("e2e%d", id)
		t.Cleanup(func() {
			if err := postgres.DropSchema(context.Background(), pg, schema); err != nil {
				t.Errorf("drop schema: %v", err)
			}
		})
	}
	c, srv := bootEdge(t, func(cfg *server.Config) {
		cfg.CheckoutMode, cfg.CheckoutTimeout = mode, 10*time.Second
		cfg.PostgresURL, cfg.PostgresSchema, cfg.NATSURL, cfg.NATSNamespace = pg, schema, nats, ns
	})
	if storage == "external" {
		t.Cleanup(func() { // before the server closes: it needs the bus
			for _, s := range []string{"EVENTS", "CATALOG"} {
				_ = srv.Bus().DeleteStream(context.Background(), s)
			}
		})
	}
	w := &world{client: c, t: t, srv: srv, mode: mode, dir: srv.DataDir(), pg: pg, schema: schema}
	w.accounts = []string{server.DefaultMerchantAccountID}
	return w
}

func testLogger() *slog.Logger {
	if os.Getenv("AGORA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (w *world) product(price int64, stock int64) string {
	w.t.Helper()
	r := w.do("POST", "/api/v1/products", map[string]any{"sku": "SKU-" + uuid.NewString()[:8], "name": "Thing",
		"price": map[string]any{"amount": price, "currency": "USD"}})
	if r.status != http.StatusCreated {
		w.t.Fatalf("create product: %d %s", r.status, r.raw)
	}
	id := r.body["id"].(string)
	if stock > 0 {
		if r := w.do("POST", "/api/v1/inventory/"+id+"/restock", map[string]any{"quantity": stock}); r.status != http.StatusOK {
			w.t.Fatalf("restock: %d %s", r.status, r.raw)
		}
	}
	w.mu.Lock()
	w.products = append(w.products, id)
	w.mu.Unlock()
	return id
}

func (w *world) account(balance int64) string {
	w.t.Helper()
	id := "cust-" + uuid.NewString()
	r := w.do("POST", "/api/v1/accounts", map[string]any{"id": id, "owner_id": id, "currency": "USD",
		"initial_balance": map[string]any{"amount": balance, "currency": "USD"}})
	if r.status != http.StatusCreated {
		w.t.Fatalf("open account: %d %s", r.status, r.raw)
	}
	w.mu.Lock()
	w.accounts = append(w.accounts, id)
	w.funded += balance
	w.mu.Unlock()
	return id
}

func address(zip string) map[string]any {
	return map[string]any{"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": zip, "country": "US"}
}

// order places an order of qty × product paid from account and returns its ID.
func (w *world) order(account, product string, qty int64, zip string) string {
	w.t.Helper()
	return w.place(account, product, qty, zip).body["id"].(string)
}

// place places an order, with headers (name, value pairs), and returns
// the gateway's 202.
func (w *world) place(account, product string, qty int64, zip string, headers ...string) response {
	w.t.Helper()
	r := w.do("POST", "/api/v1/orders", map[string]any{"customer_id": account, "payment_account_id": account,
		"items": []any{map[string]any{"product_id": product, "quantity": qty}}, "shipping_address": address(zip)}, headers...)
	if r.status != http.StatusAccepted || r.body["status"] != "Pending" {
		w.t.Fatalf("place order: %d %s", r.status, r.raw)
	}
	return r
}

// settle waits until order id is Confirmed or Cancelled and returns it.
func (w *world) settle(id string) map[string]any {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r := w.do("GET", "/api/v1/orders/"+id, nil)
		if r.status != http.StatusOK {
			w.t.Fatalf("get order: %d %s", r.status, r.raw)
		}
		if r.body["status"] != "Pending" {
			return r.body
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.t.Fatalf("order %s still Pending after 30s", id)
	return nil
}

func (w *world) expect(id, status, reason string) map[string]any {
	w.t.Helper()
	o := w.settle(id)
	if o["status"] != status || (reason != "" && o["reason"] != reason) {
		w.t.Fatalf("order %s: status %v reason %v, want %s %s", id, o["status"], o["reason"], status, reason)
	}
	return o
}

func (w *world) balance(account string) int64 {
	w.t.Helper()
	a, _, err := w.srv.Service("payments").(*payapp.Service).Get(context.Background(), account)
	if err != nil {
		w.t.Fatal(err)
	}
	return a.Balance
}

func (w *world) stock(product string) (onHand, reserved int64) {
	w.t.Helper()
	l, _, err := w.srv.Service("inventory").(*invapp.Service).Get(context.Background(), product)
	if err != nil {
		w.t.Fatal(err)
	}
	return l.OnHand, l.Reserved
}

// eventually retries check until it returns "" or 15s pass.
func (w *world) eventually(what string, check func() string) {
	w.t.Helper()
	var last string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		if last = check(); last == "" {
			return
		}
	}
	w.t.Fatalf("%s: %s", what, last)
}

// invariants: once every order ended, no stock stays reserved and the
// balances of all accounts sum to the money put in (there are no
// withdrawals in these scenarios).
func (w *world) invariants() {
	w.t.Helper()
	w.eventually("no stock stays reserved", func() string {
		for _, p := range w.products {
			if _, res := w.stock(p); res != 0 {
				return fmt.Sprintf("product %s has %d reserved", p, res)
			}
		}
		return ""
	})
	w.eventually("balances sum to deposits − withdrawals", func() string {
		var sum int64
		for _, a := range w.accounts {
			sum += w.balance(a)
		}
		if sum != w.funded {
			return fmt.Sprintf("balances sum to %d, want %d", sum, w.funded)
		}
		return ""
	})
}

func TestCheckoutEndToEnd(t *testing.T) {
	for _, storage := range []string{"embedded", "external"} {
		for _, mode := range []string{server.Orchestration, server.Choreography} {
			t.Run(storage+"/"+mode, func(t *testing.T) {
				w := bootWith(t, mode, storage)
				t.Run("happy path", func(t *testing.T) { w.t = t; happyPath(w) })
				t.Run("out of stock", func(t *testing.T) { w.t = t; outOfStock(w) })
				t.Run("insufficient funds", func(t *testing.T) { w.t = t; insufficientFunds(w) })
				t.Run("shipping failure", func(t *testing.T) { w.t = t; shippingFailure(w) })
				t.Run("cancel while pending", func(t *testing.T) { w.t = t; cancelWhilePending(w) })
				t.Run("race for the last unit", func(t *testing.T) { w.t = t; lastUnit(w) })
				t.Run("redelivery", func(t *testing.T) { w.t = t; redelivery(w) })
				t.Run("transfers", func(t *testing.T) { w.t = t; transfers(w) })
				t.Run("price change", func(t *testing.T) { w.t = t; priceChange(w) })
			})
		}
	}
}

func happyPath(w *world) {
	p := w.product(1250, 5)
	a := w.account(10_000)
	merchant := w.balance(server.DefaultMerchantAccountID)
	id := w.order(a, p, 2, "62701")
	o := w.expect(id, "Confirmed", "")
	if tot := o["total"].(map[string]any)["amount"].(float64); tot != 2500 {
		w.t.Fatalf("total = %v, want 2500", tot)
	}
	if b := w.balance(a); b != 7500 {
		w.t.Fatalf("customer balance = %d, want 7500", b)
	}
	if d := w.balance(server.DefaultMerchantAccountID) - merchant; d != 2500 {
		w.t.Fatalf("merchant received %d, want 2500", d)
	}
	w.eventually("stock committed", func() string {
		if on, res := w.stock(p); on != 3 || res != 0 {
			return fmt.Sprintf("on hand %d reserved %d, want 3 and 0", on, res)
		}
		return ""
	})
	if r := w.do("GET", "/api/v1/shipments/"+id, nil); r.status != http.StatusOK || r.body["status"] != "Arranged" || r.body["tracking"] == "" {
		w.t.Fatalf("shipment: %d %s", r.status, r.raw)
	}
	if w.mode == server.Orchestration {
		w.eventually("saga completed", func() string {
			r := w.do("GET", "/api/v1/sagas/"+o["saga_id"].(string), nil)
			if r.status != http.StatusOK || r.body["status"] != "Completed" || len(r.body["steps"].([]any)) != 4 {
				return fmt.Sprintf("saga: %d %s", r.status, r.raw)
			}
			return ""
		})
	}
	w.invariants()
}

// priceChange reads a product (filling the catalog cache), changes its
// price, and checks that reads see the new price at once, and that an
// order that sends the change's Agora-Position back as
// Agora-Min-Position is priced at it (ordering prices from its own
// model of the catalog's prices, which the catalog's events keep).
func priceChange(w *world) {
	p := w.product(1000, 5)
	if r := w.do("GET", "/api/v1/products/"+p, nil); r.status != http.StatusOK || r.body["price"].(map[string]any)["amount"].(float64) != 1000 {
		w.t.Fatalf("product: %d %s", r.status, r.raw)
	}
	r := w.do("PUT", "/api/v1/products/"+p, map[string]any{"price": map[string]any{"amount": 1500, "currency": "USD"}})
	if r.status != http.StatusOK {
		w.t.Fatalf("update: %d %s", r.status, r.raw)
	}
	pos := r.header.Get(httpapi.PositionHeader)
	if log, n, ok := httpapi.ParsePosition(pos); !ok || log != "catalog" || n == 0 {
		w.t.Fatalf("the update's Agora-Position %q, want catalog.<n>", pos)
	}
	if r := w.do("GET", "/api/v1/products/"+p, nil); r.body["price"].(map[string]any)["amount"].(float64) != 1500 || r.body["version"].(float64) != 2 {
		w.t.Fatalf("after the update: %s", r.raw)
	}
	a := w.account(10_000)
	o := w.expect(w.place(a, p, 1, "62701", httpapi.MinPositionHeader, pos).body["id"].(string), "Confirmed", "")
	if tot := o["total"].(map[string]any)["amount"].(float64); tot != 1500 {
		w.t.Fatalf("total = %v, want the new price 1500", tot)
	}
	w.invariants()
}

func outOfStock(w *world) {
	p := w.product(1000, 1)
	a := w.account(10_000)
	// The gateway's order check warns, and the order is placed anyway.
	r := w.place(a, p, 2, "62701")
	if !strings.Contains(string(r.raw), `"field":"items[0].quantity"`) || !strings.Contains(string(r.raw), "only 1 available") {
		w.t.Fatalf("placement short of stock: no warning in %s", r.raw)
	}
	id := r.body["id"].(string)
	w.expect(id, "Cancelled", "out_of_stock")
	if b := w.balance(a); b != 10_000 {
		w.t.Fatalf("balance = %d, want 10000 untouched", b)
	}
	w.invariants()
	if on, _ := w.stock(p); on != 1 {
		w.t.Fatalf("on hand = %d, want 1", on)
	}
}

func insufficientFunds(w *world) {
	p := w.product(5000, 3)
	a := w.account(4999)
	id := w.order(a, p, 1, "62701")
	w.expect(id, "Cancelled", "insufficient_funds")
	w.invariants()
	if b := w.balance(a); b != 4999 {
		w.t.Fatalf("balance = %d, want 4999", b)
	}
	if on, _ := w.stock(p); on != 3 {
		w.t.Fatalf("on hand = %d, want 3", on)
	}
}

func shippingFailure(w *world) {
	p := w.product(700, 4)
	a := w.account(10_000)
	id := w.order(a, p, 3, "00000") // the simulated carrier refuses this postcode
	w.expect(id, "Cancelled", "shipping_failed")
	w.invariants()
	w.eventually("refunded", func() string {
		if b := w.balance(a); b != 10_000 {
			return fmt.Sprintf("balance %d, want 10000 after the refund", b)
		}
		return ""
	})
	if on, _ := w.stock(p); on != 4 {
		w.t.Fatalf("on hand = %d, want 4 (released)", on)
	}
}

func cancelWhilePending(w *world) {
	p := w.product(900, 2)
	a := w.account(10_000)
	w.srv.Carrier.Set(0, 3*time.Second) // hold the checkout at the shipment step
	defer w.srv.Carrier.Set(0, 0)
	id := w.order(a, p, 1, "62701")
	// Wait until the payment went through, so there is something to undo.
	w.eventually("payment captured", func() string {
		if b := w.balance(a); b != 9100 {
			return fmt.Sprintf("balance %d", b)
		}
		return ""
	})
	r := w.do("POST", "/api/v1/orders/"+id+"/cancel", nil)
	if r.status != http.StatusAccepted {
		w.t.Fatalf("cancel: %d %s", r.status, r.raw)
	}
	w.expect(id, "Cancelled", "cancelled_by_customer")
	w.invariants()
	w.eventually("refunded", func() string {
		if b := w.balance(a); b != 10_000 {
			return fmt.Sprintf("balance %d, want 10000", b)
		}
		return ""
	})
	if on, _ := w.stock(p); on != 2 {
		w.t.Fatalf("on hand = %d, want 2", on)
	}
	// A cancelled order cannot be cancelled into anything else, nor a
	// confirmed one cancelled.
	w.srv.Carrier.Set(0, 0)
	id2 := w.order(a, p, 1, "62701")
	w.expect(id2, "Confirmed", "")
	if r := w.do("POST", "/api/v1/orders/"+id2+"/cancel", nil); r.status != http.StatusConflict {
		w.t.Fatalf("cancel confirmed: %d %s", r.status, r.raw)
	}
	w.invariants()
}

func lastUnit(w *world) {
	p := w.product(100, 1)
	a1, a2 := w.account(1000), w.account(1000)
	ids := make([]string, 2)
	var wg sync.WaitGroup
	for i, a := range []string{a1, a2} {
		wg.Go(func() { ids[i] = w.order(a, p, 1, "62701") })
	}
	wg.Wait()
	var confirmed, cancelled int
	for _, id := range ids {
		o := w.settle(id)
		switch {
		case o["status"] == "Confirmed":
			confirmed++
		case o["status"] == "Cancelled" && o["reason"] == "out_of_stock":
			cancelled++
		default:
			w.t.Fatalf("order %s: %v %v", id, o["status"], o["reason"])
		}
	}
	if confirmed != 1 || cancelled != 1 {
		w.t.Fatalf("confirmed %d cancelled %d, want exactly one winner", confirmed, cancelled)
	}
	w.invariants()
	if on, _ := w.stock(p); on != 0 {
		w.t.Fatalf("on hand = %d, want 0", on)
	}
}

// redelivery repeats, after an order confirmed, the commands and events
// that drove it: nothing changes a second time.
func redelivery(w *world) {
	p := w.product(300, 5)
	a := w.account(10_000)
	id := w.order(a, p, 2, "62701")
	w.expect(id, "Confirmed", "")
	w.invariants()
	before := w.balance(a)
	onBefore, _ := w.stock(p)
	ctx := context.Background()

	// The same commands again, as a retried saga step would send them.
	pay := payapp.OrderPayment(id, a, server.DefaultMerchantAccountID, money.New(600, money.MustCurrency("USD")))
	if err := w.srv.Service("payments").(*payapp.Service).Pay(ctx, eventstore.Metadata{}, pay); err != nil {
		w.t.Fatalf("pay again: %v", err)
	}
	if err := w.srv.Service("inventory").(*invapp.Service).Reserve(ctx, eventstore.Metadata{}, id, []inventory.Line{{ProductID: p, Quantity: 2}}); err != nil {
		w.t.Fatalf("reserve again: %v", err)
	}
	if err := w.srv.Service("inventory").(*invapp.Service).Commit(ctx, eventstore.Metadata{}, id); err != nil {
		w.t.Fatalf("commit again: %v", err)
	}

	// The same events again on the bus, under new message IDs so that the
	// broker's de-duplication cannot hide them: the consumers must.
	placed, _ := messaging.NewMessage(orderingapi.SubjectOrderPlaced, orderingapi.TypeOrderPlaced, orderingapi.OrderPlaced{
		OrderID: id, CustomerID: a, Lines: []orderingapi.Line{{ProductID: p, Quantity: 2}}, Total: pay.Amount,
		ShippingAddress:  orderingapi.Address{Street: "1 Main St", City: "Springfield", ZipCode: "62701", Country: "US"},
		PaymentAccountID: a, MerchantAccountID: server.DefaultMerchantAccountID})
	reserved, _ := messaging.NewMessage(inventoryapi.SubjectStockReserved, inventoryapi.TypeStockReserved, inventoryapi.OrderStock{OrderID: id})
	placed.ID, reserved.ID = uuid.NewString(), uuid.NewString()
	if err := w.srv.Bus().Publish(ctx, placed, reserved); err != nil {
		w.t.Fatal(err)
	}
	time.Sleep(time.Second) // time for the consumers to (not) act
	if b := w.balance(a); b != before {
		w.t.Fatalf("balance %d after redelivery, want %d", b, before)
	}
	if on, res := w.stock(p); on != onBefore || res != 0 {
		w.t.Fatalf("stock on hand %d reserved %d after redelivery, want %d and 0", on, res, onBefore)
	}
	if o := w.settle(id); o["status"] != "Confirmed" {
		w.t.Fatalf("order %v after redelivery", o["status"])
	}
	w.invariants()
}

// transfer posts a transfer and waits for it to end.
func (w *world) transfer(from, to string, amount int64) map[string]any {
	w.t.Helper()
	r := w.do("POST", "/api/v1/transfers", map[string]any{"from_account_id": from, "to_account_id": to,
		"amount": map[string]any{"amount": amount, "currency": "USD"}})
	if r.status != http.StatusAccepted || r.body["status"] != "Pending" {
		w.t.Fatalf("transfer: %d %s", r.status, r.raw)
	}
	id := r.body["id"].(string)
	var out map[string]any
	w.eventually("transfer ends", func() string {
		r := w.do("GET", "/api/v1/transfers/"+id, nil)
		if r.status != http.StatusOK {
			return fmt.Sprintf("get transfer: %d %s", r.status, r.raw)
		}
		out = r.body
		if r.body["status"] == "Pending" {
			return "still Pending"
		}
		return ""
	})
	return out
}

func transfers(w *world) {
	a, b := w.account(1000), w.account(0)
	if t := w.transfer(a, b, 300); t["status"] != "Completed" {
		w.t.Fatalf("transfer: %v", t)
	}
	if w.balance(a) != 700 || w.balance(b) != 300 {
		w.t.Fatalf("balances %d %d, want 700 300", w.balance(a), w.balance(b))
	}
	if t := w.transfer(b, a, 301); t["status"] != "Failed" || t["reason"] != "insufficient_funds" {
		w.t.Fatalf("overdrawing transfer: %v", t)
	}
	// A transfer to a closed account fails and gives the money back.
	c := w.account(0)
	if r := w.do("POST", "/api/v1/accounts/"+c+"/close", nil); r.status != http.StatusOK {
		w.t.Fatalf("close: %d %s", r.status, r.raw)
	}
	if t := w.transfer(a, c, 200); t["status"] != "Failed" || t["reason"] != "account_closed" {
		w.t.Fatalf("transfer to a closed account: %v", t)
	}
	if w.balance(a) != 700 || w.balance(b) != 300 || w.balance(c) != 0 {
		w.t.Fatalf("balances %d %d %d after failed transfers, want 700 300 0", w.balance(a), w.balance(b), w.balance(c))
	}
	w.invariants()
}
