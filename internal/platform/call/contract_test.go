package call_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/inventory"
	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/payments"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/shipping"
	"github.com/agora-commerce/agora/internal/shipping/shippingapi"
	"github.com/agora-commerce/agora/money"
)

var (
	usd = money.MustCurrency("USD")
	jpy = money.MustCurrency("JPY")
	eur = money.MustCurrency("EUR")
)

// testCtx bounds a test's calls.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// meta is event metadata with every field set, some to text JSON escapes.
var meta = eventstore.Metadata{
	Tenant:        "acme-ü",
	CorrelationID: "corr-<1>&\"2\"",
	CausationID:   "cause\n3",
	User:          "user-42",
	TraceParent:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
}

// echo is a contract case: a call answered by a fake that records the
// request it got and answers resp.
type echo struct {
	name string
	run  func(t *testing.T, tr transport)
}

func echoCase[Req, Resp any](name string, c call.Call[Req, Resp], req Req, resp Resp) echo {
	return echo{name: name, run: func(t *testing.T, tr transport) {
		var mu sync.Mutex
		var got []Req
		x := tr.serve(t, c.Answer(func(_ context.Context, r Req) (Resp, error) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, r)
			return resp, nil
		}))
		out, err := c.Bind(x)(testCtx(t), req)
		if err != nil {
			t.Fatalf("%s: %v", c.Subject, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 1 {
			t.Fatalf("%s was answered %d times, want once", c.Subject, len(got))
		}
		if !reflect.DeepEqual(got[0], req) {
			t.Errorf("%s: the answer got\n%#v\nwant\n%#v", c.Subject, got[0], req)
		}
		if !reflect.DeepEqual(out, resp) {
			t.Errorf("%s: the caller got\n%#v\nwant\n%#v", c.Subject, out, resp)
		}
	}}
}

// TestValuesCrossIntact sends every published call's request and result
// through a fake answer: each arrives as it was sent, on both transports.
func TestValuesCrossIntact(t *testing.T) {
	addr := &shippingapi.Address{Street: "1 Rue de l'Été", City: "Paris", State: "", ZipCode: "75001", Country: "FR"}
	cases := []echo{
		echoCase("reserve", inventoryapi.Reserve,
			inventoryapi.StockRequest{Meta: meta, OrderID: "o-1", Lines: []inventoryapi.Line{{ProductID: "p-2", Quantity: 3}, {ProductID: "p-1", Quantity: 1_000_000}}},
			call.None{}),
		echoCase("commit without lines", inventoryapi.Commit, inventoryapi.StockRequest{Meta: meta, OrderID: "o-1"}, call.None{}),
		echoCase("release with empty metadata", inventoryapi.Release,
			inventoryapi.StockRequest{OrderID: "o-2", Lines: []inventoryapi.Line{{ProductID: "p", Quantity: -1}}}, call.None{}),
		echoCase("pay", paymentsapi.Pay,
			paymentsapi.PaymentRequest{Meta: meta, OrderID: "o-1", From: "acct-a", To: "merchant", Amount: money.New(1999, usd)}, call.None{}),
		echoCase("refund in yen, negative", paymentsapi.Refund,
			paymentsapi.PaymentRequest{Meta: meta, OrderID: "o-1", From: "a", To: "b", Amount: money.New(-9_007_199_254_740_993, jpy)}, call.None{}),
		echoCase("open account", paymentsapi.OpenAccount, paymentsapi.OpenAccountRequest{Meta: meta}, "acct-user-42"),
		echoCase("open account, empty ID", paymentsapi.OpenAccount, paymentsapi.OpenAccountRequest{}, ""),
		echoCase("account owner", paymentsapi.AccountOwner, paymentsapi.AccountRequest{AccountID: "acct-1"},
			call.Owner{Tenant: "acme", ID: "user-1"}),
		echoCase("account owner, zero", paymentsapi.AccountOwner, paymentsapi.AccountRequest{}, call.Owner{}),
		echoCase("arrange", shippingapi.Arrange, shippingapi.ShipmentRequest{Meta: meta, OrderID: "o-1", Address: addr}, call.None{}),
		echoCase("cancel, nil address", shippingapi.Cancel, shippingapi.ShipmentRequest{Meta: meta, OrderID: "o-1"}, call.None{}),
		echoCase("order owner", orderingapi.OrderOwner, orderingapi.OrderRequest{OrderID: "o-1"}, call.Owner{Tenant: "t", ID: "c"}),
		echoCase("product exists", catalogapi.ProductExists, catalogapi.ProductRequest{ProductID: "p-1"}, true),
		echoCase("product does not exist", catalogapi.ProductExists, catalogapi.ProductRequest{ProductID: "p-2"}, false),
		echoCase("prices", catalogapi.Prices, catalogapi.PricesRequest{ProductIDs: []string{"p-1", "p-2", "p-3"}},
			map[string]money.Money{"p-1": money.New(1999, usd), "p-2": money.New(500, jpy), "p-3": money.New(0, eur)}),
		echoCase("prices, none", catalogapi.Prices, catalogapi.PricesRequest{ProductIDs: []string{}}, map[string]money.Money{}),
		echoCase("prices, nil", catalogapi.Prices, catalogapi.PricesRequest{}, map[string]money.Money(nil)),
	}
	eachTransport(t, func(t *testing.T, tr transport) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) { c.run(t, tr) })
		}
	})
}

// fail answers c with err.
func fail[Req, Resp any](c call.Call[Req, Resp], err error) call.Answer {
	return c.Answer(func(context.Context, Req) (Resp, error) {
		var zero Resp
		return zero, err
	})
}

// coded returns err's *errs.Error, failing t if there is none.
func coded(t *testing.T, err error) *errs.Error {
	t.Helper()
	e, ok := errors.AsType[*errs.Error](err)
	if !ok {
		t.Fatalf("%v (%T) is not an *errs.Error", err, err)
	}
	return e
}

// TestCodedErrorsCrossIntact has fake answers fail with coded errors
// (the owners' sentinels among them): the caller gets the code, reason,
// message and fields, and errors.Is holds against the sentinel, and not
// against another, on both transports.
func TestCodedErrorsCrossIntact(t *testing.T) {
	stockReq := inventoryapi.StockRequest{Meta: meta, OrderID: "o-1", Lines: []inventoryapi.Line{{ProductID: "p", Quantity: 1}}}
	payReq := paymentsapi.PaymentRequest{Meta: meta, OrderID: "o-1", From: "a", To: "b", Amount: money.New(1, usd)}
	shipReq := shippingapi.ShipmentRequest{Meta: meta, OrderID: "o-1", Address: &shippingapi.Address{Street: "s"}}
	invalid := &errs.Error{Code: errs.Invalid, Reason: "bad_shape", Message: "request has invalid fields",
		Fields: []errs.FieldError{{Field: "lines[0].quantity", Message: "must be positive"}, {Field: "meta.user", Message: "is required"}}}
	for _, tc := range []struct {
		name string
		// ask makes a call answered with err.
		ask  func(t *testing.T, tr transport, err error) error
		err  error
		want *errs.Error
		is   error // a sentinel errors.Is must match
		not  error // one it must not
	}{
		{name: "out of stock", ask: answeredWith(inventoryapi.Reserve, stockReq), err: inventory.ErrOutOfStock,
			want: inventory.ErrOutOfStock, is: inventory.ErrOutOfStock, not: inventory.ErrReservationClosed},
		{name: "reservation closed, wrapped", ask: answeredWith(inventoryapi.Reserve, stockReq),
			err:  fmt.Errorf("inventory: reserve o-1: %w", inventory.ErrReservationClosed),
			want: inventory.ErrReservationClosed, is: inventory.ErrReservationClosed, not: inventory.ErrOutOfStock},
		{name: "declined", ask: answeredWith(paymentsapi.Pay, payReq), err: payments.ErrDeclined(payments.ReasonInsufficientFunds),
			want: coded(t, payments.ErrDeclined(payments.ReasonInsufficientFunds)),
			is:   payments.ErrDeclined(paymentsapi.ReasonInsufficientFunds), not: payments.ErrDeclined(payments.ReasonCancelled)},
		{name: "currency mismatch, with fields", ask: answeredWith(paymentsapi.Pay, payReq), err: payments.ErrCurrencyMismatch,
			want: payments.ErrCurrencyMismatch, is: payments.ErrCurrencyMismatch, not: payments.ErrNotPositive},
		{name: "no account, to a query", ask: answeredWith(paymentsapi.AccountOwner, paymentsapi.AccountRequest{AccountID: "x"}),
			err: payments.ErrNotOpen, want: payments.ErrNotOpen, is: payments.ErrNotOpen, not: inventory.ErrOutOfStock},
		{name: "shipping failed", ask: answeredWith(shippingapi.Arrange, shipReq), err: shipping.ErrShippingFailed,
			want: shipping.ErrShippingFailed, is: shipping.ErrShippingFailed, not: shipping.ErrCancelled},
		{name: "fields, no sentinel", ask: answeredWith(inventoryapi.Reserve, stockReq), err: invalid, want: invalid,
			is: &errs.Error{Code: errs.Invalid, Reason: "bad_shape"}, not: &errs.Error{Code: errs.Unprocessable, Reason: "bad_shape"}},
		{name: "with a cause", ask: answeredWith(paymentsapi.Refund, payReq),
			err:  &errs.Error{Code: errs.Unavailable, Reason: "ledger_down", Message: "the ledger is down", Err: io.ErrUnexpectedEOF},
			want: &errs.Error{Code: errs.Unavailable, Reason: "ledger_down", Message: "the ledger is down"},
			is:   &errs.Error{Code: errs.Unavailable, Reason: "ledger_down"}, not: &errs.Error{Code: errs.Unavailable, Reason: "context_unavailable"}},
		{name: "no reason", ask: answeredWith(catalogapi.ProductExists, catalogapi.ProductRequest{ProductID: "p"}),
			err: errs.E(errs.Timeout, "the catalog took too long"), want: errs.E(errs.Timeout, "the catalog took too long"),
			not: errs.E(errs.Timeout, "the catalog took too long")}, // errors.Is needs a reason
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachTransport(t, func(t *testing.T, tr transport) {
				err := tc.ask(t, tr, tc.err)
				e := coded(t, err)
				if e.Code != tc.want.Code || e.Reason != tc.want.Reason || e.Message != tc.want.Message ||
					!reflect.DeepEqual(e.Fields, tc.want.Fields) {
					t.Errorf("got %#v\nwant %#v", e, tc.want)
				}
				if errs.CodeOf(err) != tc.want.Code || errs.ReasonOf(err) != tc.want.Reason {
					t.Errorf("CodeOf, ReasonOf = %q, %q", errs.CodeOf(err), errs.ReasonOf(err))
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("errors.Is(%v, %v) is false", err, tc.is)
				}
				if errors.Is(err, tc.not) {
					t.Errorf("errors.Is(%v, %v) is true", err, tc.not)
				}
			})
		})
	}
}

// answeredWith returns an ask of c with req, over a transport where c's
// answer fails with the error given.
func answeredWith[Req, Resp any](c call.Call[Req, Resp], req Req) func(*testing.T, transport, error) error {
	return func(t *testing.T, tr transport, err error) error {
		x := tr.serve(t, fail(c, err))
		_, err = c.Bind(x)(testCtx(t), req)
		return err
	}
}

// TestPlainErrorIsNotCoded: an answer's error without a code comes back
// as a failure — no code (CodeOf says Internal), no reason, transient —
// that keeps its text; over the bus it names the call.
func TestPlainErrorIsNotCoded(t *testing.T) {
	for _, c := range []struct {
		name string
		ask  func(*testing.T, transport, error) error
		sub  string
	}{
		{"command", answeredWith(shippingapi.Arrange, shippingapi.ShipmentRequest{OrderID: "o"}), shippingapi.Arrange.Subject},
		{"query", answeredWith(catalogapi.Prices, catalogapi.PricesRequest{ProductIDs: []string{"p"}}), catalogapi.Prices.Subject},
	} {
		t.Run(c.name, func(t *testing.T) {
			eachTransport(t, func(t *testing.T, tr transport) {
				err := c.ask(t, tr, errors.New("database is on fire"))
				if err == nil {
					t.Fatal("no error")
				}
				if e, ok := errors.AsType[*errs.Error](err); ok {
					t.Fatalf("a plain error came back coded: %#v", e)
				}
				if errs.CodeOf(err) != errs.Internal || errs.ReasonOf(err) != "" || !errs.Transient(err) {
					t.Errorf("CodeOf %q, ReasonOf %q, Transient %v", errs.CodeOf(err), errs.ReasonOf(err), errs.Transient(err))
				}
				if !strings.Contains(err.Error(), "database is on fire") {
					t.Errorf("error %q lost the answer's text", err)
				}
				if tr.wire && !strings.Contains(err.Error(), c.sub) {
					t.Errorf("error %q does not name %s", err, c.sub)
				}
			})
		})
	}
}

// TestNothingAnswers: with no answer in process and none on the bus, a
// call fails Unavailable, reason context_unavailable, naming the call.
func TestNothingAnswers(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		x := tr.serve(t) // no answers
		ctx := testCtx(t)
		for _, ask := range []struct {
			subject string
			call    func() error
		}{
			{inventoryapi.Reserve.Subject, func() error {
				_, err := inventoryapi.Reserve.Bind(x)(ctx, inventoryapi.StockRequest{OrderID: "o"})
				return err
			}},
			{paymentsapi.AccountOwner.Subject, func() error {
				_, err := paymentsapi.AccountOwner.Bind(x)(ctx, paymentsapi.AccountRequest{AccountID: "a"})
				return err
			}},
		} {
			err := ask.call()
			e := coded(t, err)
			if e.Code != errs.Unavailable || e.Reason != "context_unavailable" || !strings.Contains(e.Message, ask.subject) {
				t.Errorf("%s: %#v", ask.subject, e)
			}
			if !errs.Transient(err) {
				t.Errorf("%s: %v is not transient", ask.subject, err)
			}
		}
	})
}

// TestOtherCallsAreNotAnswered: an exchange answers only the subjects
// registered; an answer to one call does not answer another.
func TestOtherCallsAreNotAnswered(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		x := tr.serve(t, inventoryapi.Reserve.Answer(func(context.Context, inventoryapi.StockRequest) (call.None, error) {
			return call.None{}, nil
		}))
		ctx := testCtx(t)
		if _, err := inventoryapi.Reserve.Bind(x)(ctx, inventoryapi.StockRequest{OrderID: "o"}); err != nil {
			t.Fatalf("reserve: %v", err)
		}
		_, err := inventoryapi.Release.Bind(x)(ctx, inventoryapi.StockRequest{OrderID: "o"})
		if errs.CodeOf(err) != errs.Unavailable {
			t.Fatalf("release, which nothing answers: %v", err)
		}
	})
}
