package call_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/catalog"
	"github.com/agora-commerce/agora/internal/catalog/cache"
	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/catalog/catalogmod"
	"github.com/agora-commerce/agora/internal/inventory"
	invapp "github.com/agora-commerce/agora/internal/inventory/app"
	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/inventory/inventorymod"
	"github.com/agora-commerce/agora/internal/ordering"
	ordapp "github.com/agora-commerce/agora/internal/ordering/app"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/ordering/orderingmod"
	"github.com/agora-commerce/agora/internal/payments"
	payapp "github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/payments/paymentsmod"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/shipping"
	shipapp "github.com/agora-commerce/agora/internal/shipping/app"
	"github.com/agora-commerce/agora/internal/shipping/carrier"
	"github.com/agora-commerce/agora/internal/shipping/shippingapi"
	"github.com/agora-commerce/agora/internal/shipping/shippingmod"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/money"
)

// outcome is what a call came to, as far as the contract says it
// crosses every transport: the result, or the error's code and reason,
// and a coded error's message and fields.
type outcome struct {
	Value   any
	Code    errs.Code
	Reason  string
	Message string
	Fields  []errs.FieldError
}

func (o outcome) String() string {
	if o.Code == "" {
		return fmt.Sprintf("%#v", o.Value)
	}
	return fmt.Sprintf("%s/%s %q %v", o.Code, o.Reason, o.Message, o.Fields)
}

func outcomeOf(v any, err error) outcome {
	if err == nil {
		return outcome{Value: v}
	}
	o := outcome{Code: errs.CodeOf(err), Reason: errs.ReasonOf(err)}
	if e, ok := errors.AsType[*errs.Error](err); ok {
		o.Message, o.Fields = e.Message, e.Fields
	}
	return o
}

// is the outcome of a call that answered v.
func is(v any) outcome { return outcome{Value: v} }

// refused is the outcome of a coded error like e (a sentinel).
func refused(e error) outcome { return outcomeOf(nil, e) }

// failed is the outcome of an error without a code.
var failed = outcome{Code: errs.Internal}

// steps records a scenario's outcomes, in order, checking each.
type steps struct {
	t     *testing.T
	names []string
	got   []outcome
}

// check records what step came to (v, err), and fails if it is not
// want: the same result, or the same code and reason, and the same
// message and fields if want has them.
func (s *steps) check(step string, v any, err error, want outcome) {
	s.t.Helper()
	got := outcomeOf(v, err)
	s.names, s.got = append(s.names, step), append(s.got, got)
	same := got.Code == want.Code && got.Reason == want.Reason && reflect.DeepEqual(got.Value, want.Value) &&
		(want.Message == "" || got.Message == want.Message) && (want.Fields == nil || reflect.DeepEqual(got.Fields, want.Fields))
	if !same {
		s.t.Errorf("%s: got %v (%v), want %v", step, got, err, want)
	}
}

// must fails the scenario on a setup error.
func (s *steps) must(what string, err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatalf("%s: %v", what, err)
	}
}

// sameOnBoth runs a scenario on each transport (from a fresh start:
// it builds its owners itself) and checks that both came to the same
// outcome at every step.
func sameOnBoth(t *testing.T, scenario func(t *testing.T, tr transport, s *steps)) {
	t.Helper()
	runs := map[string]*steps{}
	eachTransport(t, func(t *testing.T, tr transport) {
		s := &steps{t: t}
		runs[tr.name] = s
		scenario(t, tr, s)
	})
	a, b := runs[transports[0].name], runs[transports[1].name]
	if t.Failed() || a == nil || b == nil {
		return
	}
	if !reflect.DeepEqual(a.names, b.names) {
		t.Fatalf("the transports ran different steps:\n%q\n%q", a.names, b.names)
	}
	for i := range a.got {
		if !reflect.DeepEqual(a.got[i], b.got[i]) {
			t.Errorf("%s: %s %v, %s %v", a.names[i], transports[0].name, a.got[i], transports[1].name, b.got[i])
		}
	}
}

var customer = eventstore.Metadata{Tenant: "acme", User: "carol", CorrelationID: "req-1"}

// TestPaymentsAnswers: the payments module's answers, on a real
// service, come to the same outcomes on both transports.
func TestPaymentsAnswers(t *testing.T) {
	sameOnBoth(t, func(t *testing.T, tr transport, s *steps) {
		ctx := testCtx(t)
		store, _ := testenv.SQLite(t)
		svc := payapp.NewService(store)
		x := tr.serve(t, paymentsmod.Answers(svc)...)
		pay, refund := paymentsapi.Pay.Bind(x), paymentsapi.Refund.Bind(x)
		open, owner := paymentsapi.OpenAccount.Bind(x), paymentsapi.AccountOwner.Bind(x)
		balance := func(id string) int64 {
			t.Helper()
			a, _, err := svc.Get(ctx, id)
			s.must("balance of "+id, err)
			return a.Balance
		}

		id, err := open(ctx, paymentsapi.OpenAccountRequest{Meta: customer})
		s.check("open account", id, err, is("acct-carol"))
		id, err = open(ctx, paymentsapi.OpenAccountRequest{Meta: customer})
		s.check("open account again", id, err, is("acct-carol"))
		id, err = open(ctx, paymentsapi.OpenAccountRequest{Meta: eventstore.Metadata{Tenant: "acme"}})
		s.check("open account without a user", id, err, outcome{Code: errs.Invalid, Message: "request has invalid fields",
			Fields: []errs.FieldError{{Field: "meta.user", Message: "is required"}}})

		o, err := owner(ctx, paymentsapi.AccountRequest{AccountID: "acct-carol"})
		s.check("owner", o, err, is(call.Owner{Tenant: "acme", ID: "carol"}))
		o, err = owner(ctx, paymentsapi.AccountRequest{AccountID: "acct-nobody"})
		s.check("owner of no account", o, err, refused(payments.ErrNotOpen))
		if !errors.Is(err, payments.ErrNotOpen) {
			t.Errorf("owner of no account: errors.Is(%v, ErrNotOpen) is false", err)
		}

		_, err = svc.Open(ctx, customer, payapp.OpenAccount{ID: "cust", OwnerID: "carol", Initial: money.New(1000, usd)})
		s.must("open cust", err)
		_, err = svc.Open(ctx, eventstore.Metadata{}, payapp.OpenAccount{ID: "merchant", OwnerID: "merchant", Initial: money.New(0, usd)})
		s.must("open merchant", err)
		o, err = owner(ctx, paymentsapi.AccountRequest{AccountID: "merchant"})
		s.check("owner of an account without a tenant", o, err, is(call.Owner{Tenant: auth.DefaultTenant, ID: "merchant"}))

		payment := func(order string, amount money.Money) paymentsapi.PaymentRequest {
			return paymentsapi.PaymentRequest{Meta: customer, OrderID: order, From: "cust", To: "merchant", Amount: amount}
		}
		_, err = pay(ctx, payment("o-1", money.New(5000, usd)))
		s.check("pay more than the balance", nil, err, refused(payments.ErrDeclined(payments.ReasonInsufficientFunds)))
		if !errors.Is(err, payments.ErrDeclined(paymentsapi.ReasonInsufficientFunds)) {
			t.Errorf("pay more than the balance: errors.Is(%v, ErrDeclined(insufficient_funds)) is false", err)
		}
		_, err = pay(ctx, payment("o-1", money.New(5000, usd)))
		s.check("pay more than the balance again", nil, err, refused(payments.ErrDeclined(payments.ReasonInsufficientFunds)))
		s.check("balance after a refusal", balance("cust"), nil, is(int64(1000)))

		_, err = pay(ctx, payment("o-2", money.New(300, usd)))
		s.check("pay", nil, err, is(nil))
		_, err = pay(ctx, payment("o-2", money.New(300, usd)))
		s.check("pay again", nil, err, is(nil))
		s.check("payer's balance after paying twice", balance("cust"), nil, is(int64(700)))
		s.check("payee's balance after paying twice", balance("merchant"), nil, is(int64(300)))

		_, err = pay(ctx, payment("o-3", money.New(100, eur)))
		s.check("pay in another currency", nil, err, refused(payments.ErrCurrencyMismatch))
		_, err = pay(ctx, paymentsapi.PaymentRequest{Meta: customer, OrderID: "o-4", From: "ghost", To: "merchant", Amount: money.New(1, usd)})
		s.check("pay from no account", nil, err, refused(payments.ErrNotOpen))

		_, err = refund(ctx, payment("o-2", money.New(300, usd)))
		s.check("refund", nil, err, is(nil))
		_, err = refund(ctx, payment("o-2", money.New(300, usd)))
		s.check("refund again", nil, err, is(nil))
		s.check("payer's balance after refunding twice", balance("cust"), nil, is(int64(1000)))
		s.check("payee's balance after refunding twice", balance("merchant"), nil, is(int64(0)))
		_, err = pay(ctx, payment("o-2", money.New(300, usd)))
		s.check("pay after the refund", nil, err, refused(payments.ErrDeclined(payments.ReasonCancelled)))

		_, err = refund(ctx, paymentsapi.PaymentRequest{Meta: customer, OrderID: "o-5", From: "ghost", To: "phantom", Amount: money.New(1, usd)})
		s.check("refund between no accounts", nil, err, is(nil))
	})
}

// TestInventoryAnswers: the inventory module's answers, on a real
// service, come to the same outcomes on both transports.
func TestInventoryAnswers(t *testing.T) {
	sameOnBoth(t, func(t *testing.T, tr transport, s *steps) {
		ctx := testCtx(t)
		store, _ := testenv.SQLite(t)
		svc := invapp.NewService(store)
		x := tr.serve(t, inventorymod.Answers(svc)...)
		reserve, release, commit := inventoryapi.Reserve.Bind(x), inventoryapi.Release.Bind(x), inventoryapi.Commit.Bind(x)
		req := func(order string, lines ...inventoryapi.Line) inventoryapi.StockRequest {
			return inventoryapi.StockRequest{Meta: customer, OrderID: order, Lines: lines}
		}
		level := func(id string) invapp.Level {
			t.Helper()
			l, _, err := svc.Get(ctx, id)
			s.must("level of "+id, err)
			return l
		}
		for id, qty := range map[string]int64{"p-1": 5, "p-2": 2} {
			_, _, err := svc.Restock(ctx, customer, id, qty)
			s.must("restock", err)
		}

		_, err := reserve(ctx, req("o-1", inventoryapi.Line{ProductID: "p-1", Quantity: 10}))
		s.check("reserve more than there is", nil, err, refused(inventory.ErrOutOfStock))
		if !errors.Is(err, inventory.ErrOutOfStock) {
			t.Errorf("errors.Is(%v, ErrOutOfStock) is false", err)
		}
		_, err = reserve(ctx, req("o-2", inventoryapi.Line{ProductID: "p-1", Quantity: 1}, inventoryapi.Line{ProductID: "p-2", Quantity: 3}))
		s.check("reserve with one line short", nil, err, refused(inventory.ErrOutOfStock))
		s.check("level after refusals", level("p-1"), nil, is(invapp.Level{ProductID: "p-1", OnHand: 5, Available: 5}))

		_, err = reserve(ctx, req("o-3", inventoryapi.Line{ProductID: "p-1", Quantity: 3}))
		s.check("reserve", nil, err, is(nil))
		_, err = reserve(ctx, req("o-3", inventoryapi.Line{ProductID: "p-1", Quantity: 3}))
		s.check("reserve again", nil, err, is(nil))
		s.check("level after reserving twice", level("p-1"), nil, is(invapp.Level{ProductID: "p-1", OnHand: 5, Reserved: 3, Available: 2}))
		_, err = commit(ctx, req("o-3"))
		s.check("commit", nil, err, is(nil))
		_, err = commit(ctx, req("o-3"))
		s.check("commit again", nil, err, is(nil))
		s.check("level after committing twice", level("p-1"), nil, is(invapp.Level{ProductID: "p-1", OnHand: 2, Available: 2}))
		_, err = release(ctx, req("o-3", inventoryapi.Line{ProductID: "p-1", Quantity: 3}))
		s.check("release a committed order", nil, err, is(nil))
		s.check("level after releasing a committed order", level("p-1"), nil, is(invapp.Level{ProductID: "p-1", OnHand: 2, Available: 2}))

		_, err = reserve(ctx, req("o-4", inventoryapi.Line{ProductID: "p-2", Quantity: 1}))
		s.check("reserve to release", nil, err, is(nil))
		_, err = release(ctx, req("o-4", inventoryapi.Line{ProductID: "p-2", Quantity: 1}))
		s.check("release", nil, err, is(nil))
		_, err = release(ctx, req("o-4", inventoryapi.Line{ProductID: "p-2", Quantity: 1}))
		s.check("release again", nil, err, is(nil))
		s.check("level after releasing twice", level("p-2"), nil, is(invapp.Level{ProductID: "p-2", OnHand: 2, Available: 2}))
		_, err = reserve(ctx, req("o-4", inventoryapi.Line{ProductID: "p-2", Quantity: 1}))
		s.check("reserve after the release", nil, err, refused(inventory.ErrReservationClosed))

		_, err = commit(ctx, req("o-5"))
		s.check("commit with no reservation", nil, err, refused(inventory.ErrNoReservation))
		_, err = reserve(ctx, req("o-6", inventoryapi.Line{ProductID: "p-1", Quantity: 0}))
		s.check("reserve nothing", nil, err, refused(inventory.ErrBadQuantity))

		_, _, err = svc.Restock(ctx, customer, "p-1", 100)
		s.must("restock", err)
		_, err = reserve(ctx, req("o-1", inventoryapi.Line{ProductID: "p-1", Quantity: 10}))
		s.check("reserve a refused order again, with stock now", nil, err, refused(inventory.ErrOutOfStock))
	})
}

var address = shippingapi.Address{Street: "1 Main St", City: "Springfield", State: "IL", ZipCode: "62701", Country: "US"}

// TestShippingAnswers: the shipping module's answers, on a real
// service with a simulated carrier, come to the same outcomes on both
// transports.
func TestShippingAnswers(t *testing.T) {
	t.Run("carrier refuses", func(t *testing.T) {
		sameOnBoth(t, func(t *testing.T, tr transport, s *steps) {
			ctx := testCtx(t)
			store, _ := testenv.SQLite(t)
			svc := shipapp.NewService(store, shipapp.Parcelo{Sim: carrier.NewSim(1, 0)})
			x := tr.serve(t, shippingmod.Answers(svc)...)
			arrange := shippingapi.Arrange.Bind(x)
			addr := address

			_, err := arrange(ctx, shippingapi.ShipmentRequest{Meta: customer, OrderID: "o-1", Address: &addr})
			s.check("arrange", nil, err, refused(shipping.ErrShippingFailed))
			if !errors.Is(err, shipping.ErrShippingFailed) {
				t.Errorf("errors.Is(%v, ErrShippingFailed) is false", err)
			}
			_, err = arrange(ctx, shippingapi.ShipmentRequest{Meta: customer, OrderID: "o-1", Address: &addr})
			s.check("arrange again", nil, err, refused(shipping.ErrShippingFailed))
			sh, err := svc.Get(ctx, "o-1")
			s.check("shipment", sh.Status, err, is(shipping.StatusFailed))

			_, err = arrange(ctx, shippingapi.ShipmentRequest{Meta: customer, OrderID: "o-2"})
			s.check("arrange without an address", nil, err, failed)
			if err == nil || !strings.Contains(err.Error(), "without an address") {
				t.Errorf("arrange without an address: %v", err)
			}
		})
	})
	t.Run("carrier books", func(t *testing.T) {
		sameOnBoth(t, func(t *testing.T, tr transport, s *steps) {
			ctx := testCtx(t)
			store, _ := testenv.SQLite(t)
			svc := shipapp.NewService(store, shipapp.Parcelo{Sim: carrier.NewSim(0, 0)})
			x := tr.serve(t, shippingmod.Answers(svc)...)
			arrange, cancel := shippingapi.Arrange.Bind(x), shippingapi.Cancel.Bind(x)
			addr := address
			req := func(order string, a *shippingapi.Address) shippingapi.ShipmentRequest {
				return shippingapi.ShipmentRequest{Meta: customer, OrderID: order, Address: a}
			}

			_, err := arrange(ctx, req("o-1", &addr))
			s.check("arrange", nil, err, is(nil))
			_, err = arrange(ctx, req("o-1", &addr))
			s.check("arrange again", nil, err, is(nil))
			sh, err := svc.Get(ctx, "o-1")
			s.check("shipment", sh, err, is(shipping.Shipment{OrderID: "o-1", Status: shipping.StatusArranged, Carrier: carrier.Name,
				Tracking: "PCL000000000001"}))
			_, err = cancel(ctx, req("o-1", nil))
			s.check("cancel", nil, err, is(nil))
			_, err = cancel(ctx, req("o-1", nil))
			s.check("cancel again", nil, err, is(nil))
			sh, err = svc.Get(ctx, "o-1")
			s.check("shipment after cancelling", sh.Status, err, is(shipping.StatusCancelled))

			_, err = cancel(ctx, req("o-2", nil))
			s.check("cancel before arranging", nil, err, is(nil))
			_, err = arrange(ctx, req("o-2", &addr))
			s.check("arrange after the cancel", nil, err, refused(shipping.ErrCancelled))

			bad := addr
			bad.ZipCode = carrier.UndeliverablePostcode
			_, err = arrange(ctx, req("o-3", &bad))
			s.check("arrange to an undeliverable address", nil, err, refused(shipping.ErrShippingFailed))
		})
	})
}

// pricesOf is a catalog for ordering: prices asked through an exchange.
type pricesOf func() *call.Exchange

func (f pricesOf) Prices(ctx context.Context, ids []string) (map[string]money.Money, error) {
	return catalogapi.Prices.Bind(f())(ctx, catalogapi.PricesRequest{ProductIDs: ids})
}

// TestCatalogAndOrderingAnswers: the catalog's answers on a real store
// and cache, and ordering's on a real service that prices its orders
// through the same transport, come to the same outcomes on both.
func TestCatalogAndOrderingAnswers(t *testing.T) {
	sameOnBoth(t, func(t *testing.T, tr transport, s *steps) {
		ctx := testCtx(t)
		store, db := testenv.SQLite(t)
		products, err := catalog.OpenStore(ctx, db, false)
		s.must("catalog", err)
		for _, p := range []catalog.Product{
			{ID: "p-1", SKU: "W-1", Name: "Widget", Price: money.New(1999, usd)},
			{ID: "p-2", SKU: "G-1", Name: "Gadget", Price: money.New(500, usd)},
		} {
			_, _, err := products.Create(ctx, customer, p)
			s.must("create "+p.ID, err)
		}
		c, err := cache.New(products, cache.Options{})
		s.must("cache", err)
		var x *call.Exchange
		orders := ordapp.NewService(store, ordapp.Options{Catalog: pricesOf(func() *call.Exchange { return x }), MerchantAccountID: "merchant"})
		x = tr.serve(t, append(catalogmod.Answers(c), orderingmod.Answers(orders)...)...)
		exists, prices, owner := catalogapi.ProductExists.Bind(x), catalogapi.Prices.Bind(x), orderingapi.OrderOwner.Bind(x)

		ok, err := exists(ctx, catalogapi.ProductRequest{ProductID: "p-1"})
		s.check("product exists", ok, err, is(true))
		ok, err = exists(ctx, catalogapi.ProductRequest{ProductID: "p-9"})
		s.check("product does not exist", ok, err, is(false))
		m, err := prices(ctx, catalogapi.PricesRequest{ProductIDs: []string{"p-1", "p-9", "p-2"}})
		s.check("prices", m, err, is(map[string]money.Money{"p-1": money.New(1999, usd), "p-2": money.New(500, usd)}))
		m, err = prices(ctx, catalogapi.PricesRequest{})
		s.check("prices of nothing", m, err, is(map[string]money.Money{}))

		addr := ordering.Address{Street: "1 Main St", City: "Springfield", ZipCode: "62701", Country: "US"}
		o, _, err := orders.Place(ctx, customer, ordapp.PlaceOrder{ID: "o-1", CustomerID: "carol", PaymentAccountID: "acct-carol",
			ShippingAddress: addr, Lines: []ordapp.Line{{ProductID: "p-1", Quantity: 2}, {ProductID: "p-2", Quantity: 1}}})
		s.check("place an order priced through the catalog's answer", o.Total, err, is(money.New(4498, usd)))
		_, _, err = orders.Place(ctx, customer, ordapp.PlaceOrder{ID: "o-2", CustomerID: "carol", PaymentAccountID: "acct-carol",
			ShippingAddress: addr, Lines: []ordapp.Line{{ProductID: "p-9", Quantity: 1}}})
		s.check("place an order of no product", nil, err, outcome{Code: errs.Unprocessable, Reason: "unknown_product",
			Fields: []errs.FieldError{{Field: "items[0].product_id", Message: "is not a product in the catalog"}}})

		who, err := owner(ctx, orderingapi.OrderRequest{OrderID: "o-1"})
		s.check("order owner", who, err, is(call.Owner{Tenant: "acme", ID: "carol"}))
		who, err = owner(ctx, orderingapi.OrderRequest{OrderID: "o-2"})
		s.check("owner of no order", who, err, refused(ordering.ErrNotFound))
		if !errors.Is(err, ordering.ErrNotFound) {
			t.Errorf("errors.Is(%v, ordering.ErrNotFound) is false", err)
		}

		// The catalog fails: the queries fail — transiently, never "no".
		s.must("close the catalog's database", db.Close())
		ok, err = exists(ctx, catalogapi.ProductRequest{ProductID: "p-3"})
		s.check("product exists, the catalog down", ok, err, failed)
		_, err = prices(ctx, catalogapi.PricesRequest{ProductIDs: []string{"p-1", "p-3"}})
		s.check("prices, the catalog down", nil, err, failed)
		if !errs.Transient(err) {
			t.Errorf("%v is not transient", err)
		}
		ok, err = exists(ctx, catalogapi.ProductRequest{ProductID: "p-1"})
		s.check("product exists, cached, the catalog down", ok, err, is(true))
	})
}
