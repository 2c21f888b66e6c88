package api_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/inventory"
	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/ordering/orderingmod"
	"github.com/agora-commerce/agora/internal/payments"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/shipping"
	"github.com/agora-commerce/agora/internal/shipping/shippingapi"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/money"
)

// The ordering module runs alone, its checkout orchestrated, behind the
// route table's guard; the other contexts are fakes (a world) that answer
// its calls and record them. Every check goes through the HTTP API.

// What the fakes answer:
//   - the catalog's products (the seed of ordering's price model): p1
//     10.00, p2 2.50, p-scarce 5.00 USD at catalog position 3; nothing
//     else exists;
//   - account "acct-<user>" is <user>'s in tenant demo, "far-<user>" is
//     <user>'s in tenant elsewhere, "acct-down" cannot be asked about,
//     any other does not exist;
//   - reserving p-scarce is out of stock; paying from "acct-c-poor" is
//     refused for insufficient funds; shipping to the city "Nowhere" fails,
//     and to "Slowtown" waits until the world lets it go (or its context
//     ends).
var prices = map[string]money.Money{
	"p1":       money.New(1000, money.MustCurrency("USD")),
	"p2":       money.New(250, money.MustCurrency("USD")),
	"p-scarce": money.New(500, money.MustCurrency("USD")),
}

// The calls the fakes record. Forward calls are the checkout's steps,
// compensations undo them.
const (
	callReserve  = "reserve"
	callPay      = "pay"
	callArrange  = "arrange"
	callCommit   = "commit"
	callUnship   = "cancel_shipment"
	callRefund   = "refund"
	callRelease  = "release"
	slowCity     = "Slowtown"
	failCity     = "Nowhere"
	poorAccount  = "acct-c-poor"
	downAccount  = "acct-down"
	merchantAcct = "merchant" // moduletest's MerchantAccountID
)

var forwardCalls = []string{callReserve, callPay, callArrange, callCommit}

// world is the fake rest of the platform.
type world struct {
	mu       sync.Mutex
	calls    map[string][]string
	reserved map[string][]inventoryapi.Line
	released map[string][]inventoryapi.Line
	paid     map[string]paymentsapi.PaymentRequest
	shipTo   map[string]shippingapi.Address

	// arranging receives the order of each Arrange that waits; release
	// lets them all go.
	arranging chan string
	release   chan struct{}
	once      sync.Once
}

func newWorld() *world {
	return &world{calls: map[string][]string{}, reserved: map[string][]inventoryapi.Line{}, released: map[string][]inventoryapi.Line{},
		paid: map[string]paymentsapi.PaymentRequest{}, shipTo: map[string]shippingapi.Address{},
		arranging: make(chan string, 16), release: make(chan struct{})}
}

func (w *world) letGo() { w.once.Do(func() { close(w.release) }) }

func (w *world) record(order, c string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls[order] = append(w.calls[order], c)
}

// callsOf returns order's calls, split into the forward ones and the
// compensations, each in the order they were made.
func (w *world) callsOf(order string) (forward, back []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.calls[order] {
		if slices.Contains(forwardCalls, c) {
			forward = append(forward, c)
		} else {
			back = append(back, c)
		}
	}
	return forward, back
}

// orders returns the orders the fakes were asked about.
func (w *world) orders() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for o := range w.calls {
		out = append(out, o)
	}
	return out
}

func (w *world) answers() []call.Answer {
	none := call.None{}
	return []call.Answer{
		// Ordering fills its price model from the catalog once, and
		// never asks the catalog for prices.
		catalogapi.Products.Answer(func(_ context.Context, r catalogapi.ProductsRequest) (catalogapi.ProductsPage, error) {
			page := catalogapi.ProductsPage{Items: []catalogapi.Product{}, Position: 3}
			if r.After != "" {
				return page, nil
			}
			for _, id := range slices.Sorted(maps.Keys(prices)) {
				page.Items = append(page.Items, catalogapi.Product{ID: id, Name: id, Price: prices[id], Version: 1})
			}
			return page, nil
		}),
		catalogapi.Prices.Answer(func(context.Context, catalogapi.PricesRequest) (map[string]money.Money, error) {
			panic("ordering asked the catalog for prices")
		}),
		paymentsapi.AccountOwner.Answer(func(_ context.Context, r paymentsapi.AccountRequest) (call.Owner, error) {
			switch {
			case r.AccountID == downAccount:
				return call.Owner{}, &errs.Error{Code: errs.Unavailable, Reason: "context_unavailable", Message: "payments did not answer"}
			case strings.HasPrefix(r.AccountID, "acct-"):
				return call.Owner{Tenant: "demo", ID: strings.TrimPrefix(r.AccountID, "acct-")}, nil
			case strings.HasPrefix(r.AccountID, "far-"):
				return call.Owner{Tenant: "elsewhere", ID: strings.TrimPrefix(r.AccountID, "far-")}, nil
			}
			return call.Owner{}, payments.ErrNotOpen
		}),
		inventoryapi.Reserve.Answer(func(_ context.Context, r inventoryapi.StockRequest) (call.None, error) {
			w.record(r.OrderID, callReserve)
			w.mu.Lock()
			w.reserved[r.OrderID] = r.Lines
			w.mu.Unlock()
			for _, l := range r.Lines {
				if l.ProductID == "p-scarce" {
					return none, inventory.ErrOutOfStock
				}
			}
			return none, nil
		}),
		inventoryapi.Release.Answer(func(_ context.Context, r inventoryapi.StockRequest) (call.None, error) {
			w.record(r.OrderID, callRelease)
			w.mu.Lock()
			w.released[r.OrderID] = r.Lines
			w.mu.Unlock()
			return none, nil
		}),
		inventoryapi.Commit.Answer(func(_ context.Context, r inventoryapi.StockRequest) (call.None, error) {
			w.record(r.OrderID, callCommit)
			return none, nil
		}),
		paymentsapi.Pay.Answer(func(_ context.Context, r paymentsapi.PaymentRequest) (call.None, error) {
			w.record(r.OrderID, callPay)
			w.mu.Lock()
			w.paid[r.OrderID] = r
			w.mu.Unlock()
			if r.From == poorAccount {
				return none, payments.ErrDeclined(paymentsapi.ReasonInsufficientFunds)
			}
			return none, nil
		}),
		paymentsapi.Refund.Answer(func(_ context.Context, r paymentsapi.PaymentRequest) (call.None, error) {
			w.record(r.OrderID, callRefund)
			return none, nil
		}),
		shippingapi.Arrange.Answer(func(ctx context.Context, r shippingapi.ShipmentRequest) (call.None, error) {
			w.record(r.OrderID, callArrange)
			if r.Address != nil {
				w.mu.Lock()
				w.shipTo[r.OrderID] = *r.Address
				w.mu.Unlock()
				switch r.Address.City {
				case failCity:
					return none, shipping.ErrShippingFailed
				case slowCity:
					w.arranging <- r.OrderID
					select {
					case <-w.release:
					case <-ctx.Done():
						return none, ctx.Err()
					}
				}
			}
			return none, nil
		}),
		shippingapi.Cancel.Answer(func(_ context.Context, r shippingapi.ShipmentRequest) (call.None, error) {
			w.record(r.OrderID, callUnship)
			return none, nil
		}),
	}
}

type line struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

type address struct {
	Street  string `json:"street"`
	City    string `json:"city"`
	State   string `json:"state,omitempty"`
	ZipCode string `json:"zip_code"`
	Country string `json:"country"`
}

type placement struct {
	Items      []line   `json:"items"`
	Address    *address `json:"shipping_address,omitempty"`
	Account    string   `json:"payment_account_id,omitempty"`
	CustomerID string   `json:"customer_id,omitempty"`
}

func to(city string) *address {
	return &address{Street: "1 Main St", City: city, State: "CA", ZipCode: "94000", Country: "US"}
}

// order is a placement paid from account, shipped to city.
func order(account, city string, lines ...line) placement {
	return placement{Items: lines, Address: to(city), Account: account}
}

func (p placement) String() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// place places p as c and checks the 202: its ID, Pending status, saga,
// Location and position. It returns the order's ID and the position.
func place(t *testing.T, c *moduletest.Client, p placement) (string, string) {
	t.Helper()
	r := c.Do("POST", "/api/v1/orders", p.String())
	if r.Status != http.StatusAccepted {
		t.Fatalf("place %s: %d %s", p, r.Status, r.Raw)
	}
	id, _ := r.Body["id"].(string)
	if id == "" || r.Body["status"] != "Pending" || r.Body["saga_id"] != "checkout-"+id ||
		r.Header.Get("Location") != "/api/v1/orders/"+id {
		t.Fatalf("place: %s (Location %q)", r.Raw, r.Header.Get("Location"))
	}
	pos := r.Header.Get("Agora-Position")
	if n, err := strconv.ParseUint(pos, 10, 64); err != nil || n == 0 {
		t.Fatalf("place: Agora-Position %q", pos)
	}
	return id, pos
}

// settle waits until order id (read as c) is no longer Pending, and
// until its checkout saga has ended, and returns the order.
func settle(t *testing.T, h *moduletest.Harness, c *moduletest.Client, id string) map[string]any {
	t.Helper()
	var o map[string]any
	moduletest.Eventually(t, "order "+id, func() (bool, string) {
		r := c.Do("GET", "/api/v1/orders/"+id, "")
		if r.Status != http.StatusOK || r.Body["id"] != id {
			t.Fatalf("GET order %s: %d %s", id, r.Status, r.Raw)
		}
		o = r.Body
		return r.Body["status"] != "Pending", string(r.Raw)
	})
	sagaOf(t, h, id)
	return o
}

// sagaOf waits until order id's checkout saga has ended and returns it,
// as the tenant's admin reads it.
func sagaOf(t *testing.T, h *moduletest.Harness, id string) map[string]any {
	t.Helper()
	var s map[string]any
	moduletest.Eventually(t, "saga of "+id, func() (bool, string) {
		r := h.As("admin").Do("GET", "/api/v1/sagas/checkout-"+id, "")
		if r.Status != http.StatusOK {
			t.Fatalf("GET saga of %s: %d %s", id, r.Status, r.Raw)
		}
		s = r.Body
		switch r.Body["status"] {
		case "Completed", "Compensated", "Failed":
			return true, ""
		}
		return false, string(r.Raw)
	})
	return s
}

// steps returns a saga's steps as "name:status".
func steps(s map[string]any) []string {
	var out []string
	for _, st := range s["steps"].([]any) {
		m := st.(map[string]any)
		out = append(out, fmt.Sprint(m["name"], ":", m["status"]))
	}
	return out
}

// inOrder reports whether got lists some of want's elements, each at
// most once, in want's order.
func inOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		for i < len(want) && want[i] != g {
			i++
		}
		if i == len(want) {
			return false
		}
		i++
	}
	return true
}

func cancelled(t *testing.T, o map[string]any, reason string) {
	t.Helper()
	if o["status"] != "Cancelled" || o["reason"] != reason {
		t.Fatalf("order %v %v, want Cancelled %s: %v", o["status"], o["reason"], reason, o)
	}
}

func TestOrderingAPI(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		w := newWorld()
		h := moduletest.Start(t, orderingmod.Module, store, db, &moduletest.Options{Fakes: w.answers(),
			Settings: func(s *module.Settings) { s.CheckoutMode = module.Orchestration }})
		t.Cleanup(w.letGo) // before the module stops: nothing stays blocked
		t.Run("confirmed", func(t *testing.T) { testConfirmed(t, h.On(t), w) })
		t.Run("refusals", func(t *testing.T) { testRefusals(t, h.On(t), w) })
		t.Run("placement", func(t *testing.T) { testPlacement(t, h.On(t), w) })
		t.Run("list", func(t *testing.T) { testList(t, h.On(t)) })
		t.Run("cancel", func(t *testing.T) { testCancel(t, h.On(t), w) })
		t.Run("ids", func(t *testing.T) { testIDs(t, h.On(t)) })
	})
}

// testConfirmed: a customer's order, paid from their own account, goes
// through every step and ends Confirmed; who may see it and its saga.
func testConfirmed(t *testing.T, h *moduletest.Harness, w *world) {
	c1 := h.AsUser("demo", "c1", "customer")
	id, _ := place(t, c1, order("acct-c1", "Springfield", line{"p1", 2}, line{"p2", 1}))
	o := settle(t, h, c1, id)
	if o["status"] != "Confirmed" || o["reason"] != nil || o["customer_id"] != "c1" {
		t.Fatalf("order: %v", o)
	}
	total, _ := o["total"].(map[string]any)
	if total["amount"] != float64(2250) || total["currency"] != "USD" {
		t.Fatalf("total %v, want 22.50 USD", o["total"])
	}
	items, _ := o["items"].([]any)
	if len(items) != 2 || items[0].(map[string]any)["product_id"] != "p1" || items[0].(map[string]any)["quantity"] != float64(2) ||
		items[0].(map[string]any)["unit_price"].(map[string]any)["amount"] != float64(1000) {
		t.Fatalf("items %v", o["items"])
	}
	if a, _ := o["shipping_address"].(map[string]any); a["city"] != "Springfield" || a["zip_code"] != "94000" {
		t.Fatalf("shipping address %v", o["shipping_address"])
	}
	for _, f := range []string{"created_at", "updated_at"} {
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(o[f])); err != nil {
			t.Fatalf("%s: %v", f, o[f])
		}
	}
	// The fakes were asked in the checkout's order, once each, nothing undone.
	fwd, back := w.callsOf(id)
	if !slices.Equal(fwd, forwardCalls) || len(back) != 0 {
		t.Fatalf("calls %v, compensations %v", fwd, back)
	}
	w.mu.Lock()
	paid, reserved, shipTo := w.paid[id], w.reserved[id], w.shipTo[id]
	w.mu.Unlock()
	if paid.From != "acct-c1" || paid.To != merchantAcct || paid.Amount != money.New(2250, money.MustCurrency("USD")) || paid.Meta.Tenant != "demo" {
		t.Fatalf("payment %+v", paid)
	}
	if !slices.Equal(reserved, []inventoryapi.Line{{ProductID: "p1", Quantity: 2}, {ProductID: "p2", Quantity: 1}}) {
		t.Fatalf("reserved %v", reserved)
	}
	if shipTo.City != "Springfield" || shipTo.Street != "1 Main St" {
		t.Fatalf("shipped to %+v", shipTo)
	}

	// Who sees the order.
	admin := h.AsUser("demo", "admin-1", "admin")
	if r := admin.Do("GET", "/api/v1/orders/"+id, ""); r.Status != http.StatusOK || r.Body["id"] != id {
		t.Fatalf("the tenant's admin reads it: %d %s", r.Status, r.Raw)
	}
	moduletest.Problem(t, h.AsUser("demo", "c2", "customer").Do("GET", "/api/v1/orders/"+id, ""), http.StatusNotFound, "")
	moduletest.Problem(t, h.AsUser("demo", "m1", "merchant").Do("GET", "/api/v1/orders/"+id, ""), http.StatusNotFound, "")
	moduletest.Problem(t, h.AsUser("elsewhere", "admin-2", "admin").Do("GET", "/api/v1/orders/"+id, ""), http.StatusNotFound, "")
	moduletest.Problem(t, h.As("").Do("GET", "/api/v1/orders/"+id, ""), http.StatusUnauthorized, "")
	moduletest.Problem(t, c1.Do("GET", "/api/v1/orders/no-such-order", ""), http.StatusNotFound, "")

	// A confirmed order can no longer be cancelled.
	moduletest.Problem(t, c1.Do("POST", "/api/v1/orders/"+id+"/cancel", ""), http.StatusConflict, "order_confirmed")
	moduletest.Problem(t, admin.Do("POST", "/api/v1/orders/"+id+"/cancel", ""), http.StatusConflict, "order_confirmed")
	moduletest.Problem(t, h.AsUser("demo", "c2", "customer").Do("POST", "/api/v1/orders/"+id+"/cancel", ""), http.StatusNotFound, "")
	if r := c1.Do("GET", "/api/v1/orders/"+id, ""); r.Body["status"] != "Confirmed" {
		t.Fatalf("after refused cancels: %s", r.Raw)
	}

	// Its saga, as the tenant's admin sees it.
	sagaID := "checkout-" + id
	r := admin.Do("GET", "/api/v1/sagas/"+sagaID, "")
	if r.Status != http.StatusOK || r.Body["id"] != sagaID || r.Body["type"] != "checkout" || r.Body["status"] != "Completed" {
		t.Fatalf("saga: %d %s", r.Status, r.Raw)
	}
	want := []string{"reserve_stock:Completed", "capture_payment:Completed", "arrange_shipment:Completed", "confirm_order:Completed"}
	if got := steps(r.Body); !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v", got, want)
	}
	for _, st := range r.Body["steps"].([]any) {
		m := st.(map[string]any)
		if m["attempts"] != float64(1) || m["at"] == nil {
			t.Fatalf("step %v", m)
		}
	}
	moduletest.Problem(t, h.AsUser("elsewhere", "admin-2", "admin").Do("GET", "/api/v1/sagas/"+sagaID, ""), http.StatusNotFound, "")
	moduletest.Problem(t, c1.Do("GET", "/api/v1/sagas/"+sagaID, ""), http.StatusForbidden, "")
	moduletest.Problem(t, admin.Do("GET", "/api/v1/sagas/checkout-no-such-order", ""), http.StatusNotFound, "")
	// Only a Failed saga can be retried.
	moduletest.Problem(t, admin.Do("POST", "/api/v1/sagas/"+sagaID+"/retry", ""), http.StatusConflict, "saga_not_failed")
	moduletest.Problem(t, h.AsUser("elsewhere", "admin-2", "admin").Do("POST", "/api/v1/sagas/"+sagaID+"/retry", ""), http.StatusNotFound, "")
	moduletest.Problem(t, c1.Do("POST", "/api/v1/sagas/"+sagaID+"/retry", ""), http.StatusForbidden, "")
	moduletest.Problem(t, admin.Do("POST", "/api/v1/sagas/checkout-no-such-order/retry", ""), http.StatusNotFound, "")
	if r := admin.Do("GET", "/api/v1/sagas/"+sagaID, ""); r.Body["status"] != "Completed" {
		t.Fatalf("after a refused retry: %s", r.Raw)
	}
}

// testRefusals: a step's refusal cancels the order with its reason, and
// the checkout undoes what was done before it.
func testRefusals(t *testing.T, h *moduletest.Harness, w *world) {
	admin := h.As("admin")

	// Out of stock: nothing goes further than the reservation.
	c1 := h.AsUser("demo", "c1", "customer")
	id, _ := place(t, c1, order("acct-c1", "Springfield", line{"p1", 1}, line{"p-scarce", 3}))
	cancelled(t, settle(t, h, c1, id), "out_of_stock")
	fwd, back := w.callsOf(id)
	if !slices.Equal(fwd, []string{callReserve}) || slices.Contains(back, callRelease) ||
		!inOrder(back, []string{callUnship, callRefund}) {
		t.Fatalf("out of stock: calls %v, compensations %v", fwd, back)
	}
	s := sagaOf(t, h, id)
	if s["status"] != "Compensated" || s["reason"] != "out_of_stock" || steps(s)[0] != "reserve_stock:Failed" || steps(s)[3] != "confirm_order:Skipped" {
		t.Fatalf("saga: %v", s)
	}

	// Insufficient funds: the reservation is released with its lines.
	poor := h.AsUser("demo", "c-poor", "customer")
	id, _ = place(t, poor, order(poorAccount, "Springfield", line{"p2", 4}))
	cancelled(t, settle(t, h, poor, id), "insufficient_funds")
	fwd, back = w.callsOf(id)
	if !slices.Equal(fwd, []string{callReserve, callPay}) || !slices.Equal(back, []string{callRelease}) {
		t.Fatalf("insufficient funds: calls %v, compensations %v", fwd, back)
	}
	w.mu.Lock()
	released := w.released[id]
	w.mu.Unlock()
	if !slices.Equal(released, []inventoryapi.Line{{ProductID: "p2", Quantity: 4}}) {
		t.Fatalf("released %v", released)
	}
	s = sagaOf(t, h, id)
	if s["status"] != "Compensated" || s["reason"] != "insufficient_funds" ||
		!slices.Equal(steps(s)[:2], []string{"reserve_stock:Compensated", "capture_payment:Failed"}) {
		t.Fatalf("saga: %v %v", s, steps(s))
	}

	// Shipping fails: the payment is refunded, then the stock released.
	id, _ = place(t, c1, order("acct-c1", failCity, line{"p1", 1}))
	cancelled(t, settle(t, h, c1, id), "shipping_failed")
	fwd, back = w.callsOf(id)
	if !slices.Equal(fwd, []string{callReserve, callPay, callArrange}) || !slices.Equal(back, []string{callRefund, callRelease}) {
		t.Fatalf("shipping failed: calls %v, compensations %v", fwd, back)
	}
	// A cancelled order cannot be retried back to life, nor its saga.
	moduletest.Problem(t, admin.Do("POST", "/api/v1/sagas/checkout-"+id+"/retry", ""), http.StatusConflict, "saga_not_failed")
}

// testPlacement: who may place an order for whom, paid from which
// account, and what a placement must hold; a refused placement places
// nothing.
func testPlacement(t *testing.T, h *moduletest.Harness, w *world) {
	me := h.AsUser("demo", "c-rules", "customer")
	admin := h.AsUser("demo", "admin-1", "admin")
	good := order("acct-c-rules", "Springfield", line{"p1", 1})

	// An admin orders on a customer's behalf, paid from the customer's account.
	onBehalf := good
	onBehalf.CustomerID = "c-rules"
	id, _ := place(t, admin, onBehalf)
	if o := settle(t, h, me, id); o["customer_id"] != "c-rules" || o["status"] != "Confirmed" {
		t.Fatalf("ordered on the customer's behalf: %v", o)
	}
	accepted := []string{id}

	refused := []struct {
		name   string
		caller *moduletest.Client
		body   string
		status int
		reason string
		field  string
	}{
		{"another customer's account", me, order("acct-c1", "Springfield", line{"p1", 1}).String(), http.StatusUnprocessableEntity, "payment_account_not_yours", ""},
		{"own ID in another tenant", me, order("far-c-rules", "Springfield", line{"p1", 1}).String(), http.StatusUnprocessableEntity, "payment_account_not_yours", ""},
		{"no such account", me, order("nope", "Springfield", line{"p1", 1}).String(), http.StatusUnprocessableEntity, "payment_account_not_yours", ""},
		{"payments down", me, order(downAccount, "Springfield", line{"p1", 1}).String(), http.StatusServiceUnavailable, "", ""},
		{"for another customer", me, func() string { p := good; p.CustomerID = "c1"; return p.String() }(), http.StatusForbidden, "", ""},
		{"admin: the account is not the customer's", admin, func() string { p := good; p.CustomerID = "c1"; return p.String() }(), http.StatusUnprocessableEntity, "payment_account_not_yours", ""},
		{"merchant", h.AsUser("demo", "m1", "merchant"), good.String(), http.StatusForbidden, "", ""},
		{"anonymous", h.As(""), good.String(), http.StatusUnauthorized, "", ""},
		{"unknown product", me, order("acct-c-rules", "Springfield", line{"p1", 1}, line{"p-unknown", 1}).String(), http.StatusUnprocessableEntity, "unknown_product", ""},
		{"unknown promotion", me, `{"items":[{"product_id":"p1","quantity":1}],"shipping_address":{"street":"s","city":"c","zip_code":"z","country":"US"},"payment_account_id":"acct-c-rules","promotion_code":"FREE"}`, http.StatusUnprocessableEntity, "unknown_promotion", ""},
		{"negative quantity", me, order("acct-c-rules", "Springfield", line{"p1", -1}).String(), http.StatusBadRequest, "", "items[0].quantity"},
		{"zero quantity", me, order("acct-c-rules", "Springfield", line{"p2", 1}, line{"p1", 0}).String(), http.StatusBadRequest, "", "items[1].quantity"},
		{"too many", me, order("acct-c-rules", "Springfield", line{"p1", 1_000_001}).String(), http.StatusBadRequest, "", "items[0].quantity"},
		{"no product", me, order("acct-c-rules", "Springfield", line{"", 1}).String(), http.StatusBadRequest, "", "items[0].product_id"},
		{"no items", me, order("acct-c-rules", "Springfield").String(), http.StatusBadRequest, "", "items"},
		{"no address", me, placement{Items: []line{{"p1", 1}}, Account: "acct-c-rules"}.String(), http.StatusBadRequest, "", "shipping_address"},
		{"no city", me, order("acct-c-rules", "", line{"p1", 1}).String(), http.StatusBadRequest, "", "shipping_address.city"},
		{"no account", me, order("", "Springfield", line{"p1", 1}).String(), http.StatusBadRequest, "", "payment_account_id"},
		{"unknown field", me, strings.Replace(good.String(), `{"items"`, `{"gift":true,"items"`, 1), http.StatusBadRequest, "", "gift"},
		{"unknown item field", me, strings.Replace(good.String(), `"quantity":1`, `"quantity":1,"color":"red"`, 1), http.StatusBadRequest, "", ""},
		{"unknown address field", me, strings.Replace(good.String(), `"country":"US"`, `"country":"US","planet":"Mars"`, 1), http.StatusBadRequest, "", ""},
		{"quantity as a string", me, strings.Replace(good.String(), `"quantity":1`, `"quantity":"1"`, 1), http.StatusBadRequest, "", ""},
		{"not JSON", me, `{"items":[`, http.StatusBadRequest, "", ""},
		{"two values", me, good.String() + good.String(), http.StatusBadRequest, "", ""},
	}
	for _, c := range refused {
		r := c.caller.Do("POST", "/api/v1/orders", c.body)
		if r.Status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.Status, r.Raw, c.status)
			continue
		}
		if c.field != "" {
			moduletest.BadField(t, r, c.field)
		} else {
			moduletest.Problem(t, r, c.status, c.reason)
		}
		if r.Header.Get("Agora-Position") != "" {
			t.Errorf("%s: a refused placement has a position", c.name)
		}
	}
	// A customer may name themself.
	self := good
	self.CustomerID = "c-rules"
	id, pos := place(t, me, self)
	accepted = append(accepted, id)

	// Nothing else was placed: c-rules has the two orders accepted, and
	// the fakes were asked about no other order of this test's.
	r := me.Do("GET", "/api/v1/orders?limit=500", "", "Agora-Min-Position", pos)
	if r.Status != http.StatusOK {
		t.Fatalf("list: %d %s", r.Status, r.Raw)
	}
	var got []string
	for _, it := range r.Body["items"].([]any) {
		got = append(got, it.(map[string]any)["id"].(string))
	}
	slices.Sort(got)
	slices.Sort(accepted)
	if !slices.Equal(got, accepted) {
		t.Fatalf("c-rules's orders %v, want %v", got, accepted)
	}
	settle(t, h, me, id)
	for _, o := range w.orders() {
		r := admin.Do("GET", "/api/v1/orders/"+o, "")
		if r.Status != http.StatusOK {
			t.Fatalf("the fakes were asked about order %s, which is not there: %d %s", o, r.Status, r.Raw)
		}
		if r.Body["customer_id"] == "c-rules" && !slices.Contains(accepted, o) {
			t.Fatalf("order %s of c-rules was not accepted: %s", o, r.Raw)
		}
	}
}

// listAll reads every page of path as c (moduletest's All) and returns
// the orders' IDs and statuses.
func listAll(t *testing.T, c *moduletest.Client, path, pos string, limit int) (ids []string, status map[string]string) {
	t.Helper()
	status = map[string]string{}
	for _, o := range c.All(path, pos, limit) {
		id := o["id"].(string)
		ids = append(ids, id)
		status[id] = fmt.Sprint(o["status"], "/", o["reason"], "/", o["customer_id"])
	}
	return ids, status
}

// testList: a customer lists their own orders, an admin the tenant's;
// filtered by status and paginated.
func testList(t *testing.T, h *moduletest.Harness) {
	a := h.AsUser("demo", "c-list-a", "customer")
	b := h.AsUser("demo", "c-list-b", "customer")
	admin := h.AsUser("demo", "admin-1", "admin")
	var mine []string
	for _, p := range []placement{
		order("acct-c-list-a", "Springfield", line{"p1", 1}),
		order("acct-c-list-a", "Springfield", line{"p-scarce", 1}),
		order("acct-c-list-a", "Springfield", line{"p2", 2}),
	} {
		id, _ := place(t, a, p)
		mine = append(mine, id)
	}
	theirs, _ := place(t, b, order("acct-c-list-b", "Springfield", line{"p2", 1}))
	for _, id := range mine {
		settle(t, h, a, id)
	}
	settle(t, h, b, theirs)
	// A placement after every order above ended: its position covers
	// their ends too.
	last, pos := place(t, b, order("acct-c-list-b", "Springfield", line{"p1", 3}))

	// The customer's own, oldest first, whatever customer_id says.
	for _, path := range []string{"/api/v1/orders", "/api/v1/orders?customer_id=c-list-b"} {
		for _, limit := range []int{1, 2, 50} {
			if got, _ := listAll(t, a, path, pos, limit); !slices.Equal(got, mine) {
				t.Fatalf("%s in pages of %d: %v, want %v", path, limit, got, mine)
			}
		}
	}
	got, st := listAll(t, a, "/api/v1/orders?order=newest", pos, 2)
	if !slices.Equal(got, []string{mine[2], mine[1], mine[0]}) {
		t.Fatalf("newest first: %v", got)
	}
	if st[mine[0]] != "Confirmed/<nil>/c-list-a" || st[mine[1]] != "Cancelled/out_of_stock/c-list-a" {
		t.Fatalf("statuses %v", st)
	}
	for status, want := range map[string][]string{
		"Confirmed": {mine[0], mine[2]},
		"Cancelled": {mine[1]},
		"Pending":   nil,
	} {
		if got, _ := listAll(t, a, "/api/v1/orders?status="+status, pos, 1); !slices.Equal(got, want) {
			t.Fatalf("status %s: %v, want %v", status, got, want)
		}
	}
	if got, _ := listAll(t, b, "/api/v1/orders", pos, 50); !slices.Equal(got, []string{theirs, last}) {
		t.Fatalf("c-list-b's orders %v", got)
	}

	// The admin lists the tenant's orders: these among them, each once.
	all, st := listAll(t, admin, "/api/v1/orders", pos, 3)
	for _, id := range append(slices.Clone(mine), theirs, last) {
		if !slices.Contains(all, id) {
			t.Fatalf("the admin's list lacks %s", id)
		}
	}
	if !slices.IsSorted(all) {
		t.Fatalf("the admin's list is not in ID order: %v", all)
	}
	if st[mine[1]] != "Cancelled/out_of_stock/c-list-a" || st[theirs] != "Confirmed/<nil>/c-list-b" {
		t.Fatalf("the admin's statuses %v", st)
	}
	cancelledOnes, st := listAll(t, admin, "/api/v1/orders?status=Cancelled", pos, 2)
	if !slices.Contains(cancelledOnes, mine[1]) || slices.Contains(cancelledOnes, mine[0]) {
		t.Fatalf("the admin's cancelled orders %v", cancelledOnes)
	}
	for id, s := range st {
		if !strings.HasPrefix(s, "Cancelled/") {
			t.Fatalf("status=Cancelled lists %s: %s", id, s)
		}
	}
	if got, _ := listAll(t, admin, "/api/v1/orders?customer_id=c-list-b", pos, 50); !slices.Equal(got, []string{theirs, last}) {
		t.Fatalf("the admin's list of c-list-b: %v", got)
	}
	// Another tenant's admin sees none of them.
	if got, _ := listAll(t, h.AsUser("elsewhere", "admin-2", "admin"), "/api/v1/orders", pos, 50); len(got) != 0 {
		t.Fatalf("another tenant's admin lists %v", got)
	}

	moduletest.Problem(t, h.AsUser("demo", "m1", "merchant").Do("GET", "/api/v1/orders", ""), http.StatusForbidden, "")
	moduletest.BadField(t, a.Do("GET", "/api/v1/orders?status=Shipped", ""), "status")
	moduletest.BadField(t, a.Do("GET", "/api/v1/orders?sort=price", ""), "sort")
	moduletest.BadField(t, a.Do("GET", "/api/v1/orders?limit=0", ""), "limit")
	moduletest.BadField(t, a.Do("GET", "/api/v1/orders?limit=501", ""), "limit")
	moduletest.BadField(t, a.Do("GET", "/api/v1/orders?cursor=%21%21", ""), "cursor")
	moduletest.BadField(t, a.Do("GET", "/api/v1/orders?order=random", ""), "order")
	moduletest.Problem(t, a.Do("GET", "/api/v1/orders", "", "Agora-Min-Position", "soon"), http.StatusBadRequest, "")
}

// testCancel: a customer cancels an order whose checkout is under way:
// 202, and the checkout undoes every step and cancels it.
func testCancel(t *testing.T, h *moduletest.Harness, w *world) {
	c := h.AsUser("demo", "c-cancel", "customer")
	id, _ := place(t, c, order("acct-c-cancel", slowCity, line{"p1", 1}, line{"p2", 2}))
	// Wait until the checkout is arranging the shipment, which waits.
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	select {
	case got := <-w.arranging:
		if got != id {
			t.Fatalf("arranging %s, want %s", got, id)
		}
	case <-deadline.C:
		fwd, _ := w.callsOf(id)
		t.Fatalf("the checkout never arranged the shipment: calls %v", fwd)
	}
	// Others may not cancel it.
	moduletest.Problem(t, h.AsUser("demo", "c1", "customer").Do("POST", "/api/v1/orders/"+id+"/cancel", ""), http.StatusNotFound, "")
	moduletest.Problem(t, h.AsUser("elsewhere", "admin-2", "admin").Do("POST", "/api/v1/orders/"+id+"/cancel", ""), http.StatusNotFound, "")
	moduletest.BadField(t, c.Do("POST", "/api/v1/orders/"+id+"/cancel", `{"why":"changed my mind"}`), "why")

	r := c.Do("POST", "/api/v1/orders/"+id+"/cancel", "")
	if r.Status != http.StatusAccepted || r.Body["id"] != id || r.Body["status"] != "Pending" || r.Body["cancel_requested"] != true {
		t.Fatalf("cancel: %d %s", r.Status, r.Raw)
	}
	if n, err := strconv.ParseUint(r.Header.Get("Agora-Position"), 10, 64); err != nil || n == 0 {
		t.Fatalf("cancel: Agora-Position %q", r.Header.Get("Agora-Position"))
	}
	// The shipment is booked after all; the checkout must undo it.
	w.letGo()
	cancelled(t, settle(t, h, c, id), "cancelled_by_customer")
	fwd, back := w.callsOf(id)
	if !slices.Equal(fwd, []string{callReserve, callPay, callArrange}) || !slices.Equal(back, []string{callUnship, callRefund, callRelease}) {
		t.Fatalf("calls %v, compensations %v", fwd, back)
	}
	s := sagaOf(t, h, id)
	if s["status"] != "Compensated" || s["reason"] != "cancelled_by_customer" {
		t.Fatalf("saga %v", s)
	}
	want := []string{"reserve_stock:Compensated", "capture_payment:Compensated", "arrange_shipment:Compensated", "confirm_order:Skipped"}
	if got := steps(s); !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v", got, want)
	}
	// Cancelled, it stays so; a repeated cancel changes nothing.
	if r := c.Do("POST", "/api/v1/orders/"+id+"/cancel", ""); r.Status >= 500 {
		t.Fatalf("cancel again: %d %s", r.Status, r.Raw)
	}
	if o := settle(t, h, c, id); o["status"] != "Cancelled" || o["reason"] != "cancelled_by_customer" {
		t.Fatalf("after a repeated cancel: %v", o)
	}
	if _, back := w.callsOf(id); len(back) != 3 {
		t.Fatalf("compensations after a repeated cancel: %v", back)
	}
}

// testIDs: an ID with control characters is a bad request wherever it
// appears in a path.
func testIDs(t *testing.T, h *moduletest.Harness) {
	admin := h.As("admin")
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/orders/%01"},
		{"GET", "/api/v1/orders/a%7Fb"},
		{"POST", "/api/v1/orders/%0A/cancel"},
		{"GET", "/api/v1/sagas/checkout-%01"},
		{"POST", "/api/v1/sagas/%1F/retry"},
	} {
		moduletest.BadField(t, admin.Do(c.method, c.path, ""), "id")
	}
	moduletest.BadField(t, admin.Do("GET", "/api/v1/orders/"+strings.Repeat("x", 129), ""), "id")
	moduletest.BadField(t, h.AsUser("demo", "c1", "customer").Do("POST", "/api/v1/orders",
		order("acct-c1", "Springfield", line{"p\u0001", 1}).String()), "items[0].product_id")
}
