package call_test

import (
	"errors"
	"testing"

	invapp "github.com/agora-commerce/agora/internal/inventory/app"
	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/inventory/inventorymod"
	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/internal/ordering/checkout"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	payapp "github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/payments/paymentsmod"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/errs"
	shipapp "github.com/agora-commerce/agora/internal/shipping/app"
	"github.com/agora-commerce/agora/internal/shipping/carrier"
	"github.com/agora-commerce/agora/internal/shipping/shippingmod"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/money"
)

// rejection is the checkout's reading of err: a Rejection's reason, ""
// for nil, and "retry" for an error to retry.
func rejection(err error) string {
	if err == nil {
		return ""
	}
	if r, ok := errors.AsType[*checkout.Rejection](err); ok {
		return r.Reason
	}
	return "retry"
}

// TestCheckoutOver: ordering's checkout ports over the real inventory,
// payments and shipping answers map their refusals to the same
// Rejections on both transports, and take every other failure for one
// to retry.
func TestCheckoutOver(t *testing.T) {
	sameOnBoth(t, func(t *testing.T, tr transport, s *steps) {
		ctx := testCtx(t)
		store, _ := testenv.SQLite(t)
		inv := invapp.NewService(store)
		pay := payapp.NewService(store)
		ship := shipapp.NewService(store, shipapp.Parcelo{Sim: carrier.NewSim(0, 0)})
		var answers []call.Answer
		answers = append(answers, inventorymod.Answers(inv)...)
		answers = append(answers, paymentsmod.Answers(pay)...)
		answers = append(answers, shippingmod.Answers(ship)...)
		stock, payments, shipping := checkout.Over(tr.serve(t, answers...))

		_, _, err := inv.Restock(ctx, customer, "p-1", 2)
		s.must("restock", err)
		_, err = pay.Open(ctx, customer, payapp.OpenAccount{ID: "cust", OwnerID: "carol", Initial: money.New(1000, usd)})
		s.must("open cust", err)
		_, err = pay.Open(ctx, customer, payapp.OpenAccount{ID: "merchant", OwnerID: "merchant", Initial: money.New(0, usd)})
		s.must("open merchant", err)
		line := func(q int64) []orderingapi.Line { return []orderingapi.Line{{ProductID: "p-1", Quantity: q}} }
		payment := func(order, from string, amount int64) checkout.Payment {
			return checkout.Payment{OrderID: order, From: from, To: "merchant", Amount: money.New(amount, usd)}
		}
		addr := orderingapi.Address{Street: "1 Main St", City: "Springfield", ZipCode: "62701", Country: "US"}
		undeliverable := addr
		undeliverable.ZipCode = carrier.UndeliverablePostcode

		for _, step := range []struct {
			name string
			do   func() error
			want string
		}{
			{"reserve more than there is", func() error { return stock.Reserve(ctx, customer, "o-1", line(3)) }, ordering.ReasonOutOfStock},
			{"reserve nothing", func() error { return stock.Reserve(ctx, customer, "o-2", line(0)) }, ordering.ReasonOutOfStock},
			{"reserve", func() error { return stock.Reserve(ctx, customer, "o-3", line(1)) }, ""},
			{"release", func() error { return stock.Release(ctx, customer, "o-3", line(1)) }, ""},
			{"reserve after the release", func() error { return stock.Reserve(ctx, customer, "o-3", line(1)) }, ordering.ReasonCancelledByCustomer},
			{"commit with no reservation", func() error { return stock.Commit(ctx, customer, "o-4") }, "retry"},

			{"pay more than the balance", func() error { return payments.Pay(ctx, customer, payment("o-1", "cust", 5000)) }, ordering.ReasonInsufficientFunds},
			{"pay from no account", func() error { return payments.Pay(ctx, customer, payment("o-2", "ghost", 1)) }, ordering.ReasonPaymentFailed},
			{"pay", func() error { return payments.Pay(ctx, customer, payment("o-3", "cust", 100)) }, ""},
			{"refund", func() error { return payments.Refund(ctx, customer, payment("o-3", "cust", 100)) }, ""},
			{"pay after the refund", func() error { return payments.Pay(ctx, customer, payment("o-3", "cust", 100)) }, ordering.ReasonCancelledByCustomer},

			{"arrange to an undeliverable address", func() error { return shipping.Arrange(ctx, customer, "o-1", undeliverable) }, ordering.ReasonShippingFailed},
			{"arrange", func() error { return shipping.Arrange(ctx, customer, "o-2", addr) }, ""},
			{"cancel before arranging", func() error { return shipping.Cancel(ctx, customer, "o-3") }, ""},
			{"arrange after the cancel", func() error { return shipping.Arrange(ctx, customer, "o-3", addr) }, ordering.ReasonCancelledByCustomer},
		} {
			err := step.do()
			s.check(step.name, rejection(err), nil, is(step.want))
		}
	})
}

// TestCheckoutOverFailures: a failure that is not a refusal — an answer's
// plain error, an owner that does not answer — is no Rejection, on
// either transport: the saga retries it.
func TestCheckoutOverFailures(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		ctx := testCtx(t)
		broken := errors.New("disk full")
		stock, payments, shipping := checkout.Over(tr.serve(t,
			fail(inventoryapi.Reserve, broken), fail(paymentsapi.Pay, broken)))
		for _, step := range []struct {
			name string
			err  error
			code errs.Code
		}{
			{"reserve, failing", stock.Reserve(ctx, customer, "o-1", []orderingapi.Line{{ProductID: "p", Quantity: 1}}), errs.Internal},
			{"pay, failing", payments.Pay(ctx, customer, checkout.Payment{OrderID: "o-1", From: "a", To: "b", Amount: money.New(1, usd)}), errs.Internal},
			{"arrange, nobody answers", shipping.Arrange(ctx, customer, "o-1", orderingapi.Address{Street: "s"}), errs.Unavailable},
		} {
			if r := rejection(step.err); r != "retry" {
				t.Errorf("%s: %v is a rejection %q", step.name, step.err, r)
			}
			if errs.CodeOf(step.err) != step.code || !errs.Transient(step.err) {
				t.Errorf("%s: %v: code %q, want %q and transient", step.name, step.err, errs.CodeOf(step.err), step.code)
			}
		}
	})
}
