package checkout_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/internal/ordering/app"
	"github.com/agora-commerce/agora/internal/ordering/checkout"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/money"
	"github.com/agora-commerce/agora/saga"
)

// The port operations the fakes record, by name.
const (
	opReserve  = "reserve"
	opRelease  = "release"
	opCommit   = "commit"
	opPay      = "pay"
	opRefund   = "refund"
	opArrange  = "arrange"
	opCancelSh = "cancel_shipment"
)

var usd = money.MustCurrency("USD")

// call is one call of a fake port, with what it was given.
type call struct {
	op      string
	meta    eventstore.Metadata
	orderID string
	lines   []orderingapi.Line
	payment checkout.Payment
	address orderingapi.Address
}

// fakePorts implements checkout.Stock, checkout.Payments and
// checkout.Shipping (their method names do not clash): it records every
// call in order, and can be told, per operation, to reject, to fail
// transiently a number of times, to block until its context ends, or to
// run a hook first.
type fakePorts struct {
	mu     sync.Mutex
	calls  []call
	reject map[string]string
	fails  map[string]int
	block  map[string]bool
	hooks  map[string]func(ctx context.Context) error
}

var (
	_ checkout.Stock    = (*fakePorts)(nil)
	_ checkout.Payments = (*fakePorts)(nil)
	_ checkout.Shipping = (*fakePorts)(nil)
)

var errTransient = errors.New("fake: service unavailable")

func newFakePorts() *fakePorts {
	return &fakePorts{reject: map[string]string{}, fails: map[string]int{}, block: map[string]bool{},
		hooks: map[string]func(context.Context) error{}}
}

// rejectOn makes op refuse with reason (checkout.Reject).
func (f *fakePorts) rejectOn(op, reason string) *fakePorts {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reject[op] = reason
	return f
}

// failOn makes op's next n calls fail with a plain (transient) error.
func (f *fakePorts) failOn(op string, n int) *fakePorts {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fails[op] = n
	return f
}

// blockOn makes op wait until its context ends and return its error.
func (f *fakePorts) blockOn(op string) *fakePorts {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.block[op] = true
	return f
}

// hookOn runs h at the start of each call of op.
func (f *fakePorts) hookOn(op string, h func(ctx context.Context) error) *fakePorts {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hooks[op] = h
	return f
}

func (f *fakePorts) do(ctx context.Context, c call) error {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	reason, rejected := f.reject[c.op]
	failing := f.fails[c.op] > 0
	if failing {
		f.fails[c.op]--
	}
	block, hook := f.block[c.op], f.hooks[c.op]
	f.mu.Unlock()
	if hook != nil {
		if err := hook(ctx); err != nil {
			return err
		}
	}
	switch {
	case block:
		<-ctx.Done()
		return ctx.Err()
	case rejected:
		return checkout.Reject(reason)
	case failing:
		return errTransient
	}
	return nil
}

// recorded returns the calls so far.
func (f *fakePorts) recorded() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// ops returns the operations called so far, in order.
func (f *fakePorts) ops() []string {
	var out []string
	for _, c := range f.recorded() {
		out = append(out, c.op)
	}
	return out
}

// of returns the calls of op.
func (f *fakePorts) of(op string) []call {
	var out []call
	for _, c := range f.recorded() {
		if c.op == op {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakePorts) Reserve(ctx context.Context, meta eventstore.Metadata, orderID string, lines []orderingapi.Line) error {
	return f.do(ctx, call{op: opReserve, meta: meta, orderID: orderID, lines: slices.Clone(lines)})
}

func (f *fakePorts) Release(ctx context.Context, meta eventstore.Metadata, orderID string, lines []orderingapi.Line) error {
	return f.do(ctx, call{op: opRelease, meta: meta, orderID: orderID, lines: slices.Clone(lines)})
}

func (f *fakePorts) Commit(ctx context.Context, meta eventstore.Metadata, orderID string) error {
	return f.do(ctx, call{op: opCommit, meta: meta, orderID: orderID})
}

func (f *fakePorts) Pay(ctx context.Context, meta eventstore.Metadata, p checkout.Payment) error {
	return f.do(ctx, call{op: opPay, meta: meta, orderID: p.OrderID, payment: p})
}

func (f *fakePorts) Refund(ctx context.Context, meta eventstore.Metadata, p checkout.Payment) error {
	return f.do(ctx, call{op: opRefund, meta: meta, orderID: p.OrderID, payment: p})
}

func (f *fakePorts) Arrange(ctx context.Context, meta eventstore.Metadata, orderID string, to orderingapi.Address) error {
	return f.do(ctx, call{op: opArrange, meta: meta, orderID: orderID, address: to})
}

func (f *fakePorts) Cancel(ctx context.Context, meta eventstore.Metadata, orderID string) error {
	return f.do(ctx, call{op: opCancelSh, meta: meta, orderID: orderID})
}

// catalogFake prices every product at 12.50 USD.
type catalogFake struct{}

func (catalogFake) Prices(_ context.Context, ids []string) (map[string]money.Money, error) {
	out := make(map[string]money.Money, len(ids))
	for _, id := range ids {
		out[id] = money.New(1250, usd)
	}
	return out, nil
}

// env is a running checkout: the real ordering service and a saga engine
// over one SQLite store, with fake stock, payments and shipping.
type env struct {
	t      *testing.T
	orders *app.Service
	engine *saga.Engine
	fake   *fakePorts
}

const merchant = "acct-merchant"

func newEnv(t *testing.T, fake *fakePorts, stepDeadline time.Duration) *env {
	t.Helper()
	store, db := testenv.SQLite(t)
	orders := app.NewService(store, app.Options{Catalog: catalogFake{}, MerchantAccountID: merchant})
	engine := saga.NewEngine(store, db, saga.Options{Logger: slog.New(slog.DiscardHandler),
		BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, CompensationAttempts: 3})
	saga.Register(engine, checkout.Saga(checkout.Ports{Orders: orders, Stock: fake, Payments: fake, Shipping: fake,
		StepDeadline: stepDeadline}))
	// A saga of no steps, to tell when the engine runs.
	saga.Register(engine, saga.Definition[struct{}]{Type: "probe"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- engine.Run(ctx) }()
	// Registered after testenv's cleanups, so it runs before the store closes.
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("engine: %v", err)
		}
	})
	e := &env{t: t, orders: orders, engine: engine, fake: fake}
	// Checkouts start once the engine runs, so that a step's deadline
	// counts from when the engine can run it.
	if _, err := engine.Start(t.Context(), "probe", "probe", struct{}{}); err != nil {
		t.Fatalf("start probe: %v", err)
	}
	if in := e.waitSaga("probe"); in.Status != saga.Completed {
		t.Fatalf("probe saga %s", in.Status)
	}
	return e
}

var (
	wantLines   = []orderingapi.Line{{ProductID: "p-1", Quantity: 2}, {ProductID: "p-2", Quantity: 1}}
	wantAddress = orderingapi.Address{Street: "1 Main St", City: "Springfield", State: "IL", ZipCode: "62701", Country: "US"}
)

// place places an order of two lines (3 units at 12.50: 37.50 USD) and
// starts its checkout.
func (e *env) place(id string) ordering.Order {
	e.t.Helper()
	ctx := e.t.Context()
	o, _, err := e.orders.Place(ctx, eventstore.Metadata{}, app.PlaceOrder{ID: id, CustomerID: "cust-1",
		Lines:            []app.Line{{ProductID: "p-1", Quantity: 2}, {ProductID: "p-2", Quantity: 1}},
		ShippingAddress:  ordering.Address(wantAddress),
		PaymentAccountID: "acct-cust-1"})
	if err != nil {
		e.t.Fatalf("place %s: %v", id, err)
	}
	if o.Status != ordering.StatusPending || o.Total != money.New(3750, usd) {
		e.t.Fatalf("placed order %+v, want Pending for 37.50 USD", o)
	}
	if _, err := e.engine.Start(ctx, checkout.SagaType, checkout.SagaID(o.ID), checkout.DataOf(o)); err != nil {
		e.t.Fatalf("start checkout of %s: %v", id, err)
	}
	return o
}

// wait polls the checkout of order orderID until it is Completed,
// Compensated or Failed, and fails the test if that takes more than 10s.
func (e *env) wait(orderID string) saga.Instance {
	e.t.Helper()
	return e.waitSaga(checkout.SagaID(orderID))
}

// waitSaga polls saga id until it is Completed, Compensated or Failed.
func (e *env) waitSaga(id string) saga.Instance {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		in, err := e.engine.Get(e.t.Context(), id)
		if err != nil && !errors.Is(err, saga.ErrNotFound) {
			e.t.Fatalf("get saga %s: %v", id, err)
		}
		if err == nil && (in.Status.Terminal() || in.Status == saga.Failed) {
			return in
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("saga %s not finished after 10s: status %q, steps %+v, calls %v", id, in.Status, in.Steps, e.fake.ops())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// order loads order id.
func (e *env) order(id string) ordering.Order {
	e.t.Helper()
	o, _, err := e.orders.Get(e.t.Context(), id)
	if err != nil {
		e.t.Fatalf("get order %s: %v", id, err)
	}
	return o
}

// wantOps checks the operations the ports saw, in order.
func (e *env) wantOps(want ...string) {
	e.t.Helper()
	if got := e.fake.ops(); !slices.Equal(got, want) {
		e.t.Fatalf("port calls %v, want %v", got, want)
	}
}

// wantSteps checks the saga's timeline: each step's status, in order.
func wantSteps(t *testing.T, in saga.Instance, want ...string) {
	t.Helper()
	var got []string
	for _, s := range in.Steps {
		got = append(got, s.Name+":"+s.Status)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("saga steps %v, want %v", got, want)
	}
}

// wantCancelled checks that the saga compensated for reason and the
// order ended Cancelled with cancel.
func (e *env) wantCancelled(o ordering.Order, in saga.Instance, reason, cancel string) {
	e.t.Helper()
	if in.Status != saga.Compensated || in.Reason != reason {
		e.t.Fatalf("saga %s (reason %q, error %q), want Compensated (reason %q); calls %v",
			in.Status, in.Reason, in.Error, reason, e.fake.ops())
	}
	if got := e.order(o.ID); got.Status != ordering.StatusCancelled || got.Reason != cancel {
		e.t.Fatalf("order %s %q, want Cancelled %q", got.Status, got.Reason, cancel)
	}
}

// wantMeta checks that every call was about order o, correlated to it,
// and caused by an attempt of the saga's step that made it (the commit of
// the stock, after the order's confirmation, by the saga itself).
func (e *env) wantMeta(o ordering.Order) {
	e.t.Helper()
	step := map[string]string{opReserve: "reserve_stock", opRelease: "reserve_stock", opPay: "capture_payment",
		opRefund: "capture_payment", opArrange: "arrange_shipment", opCancelSh: "arrange_shipment"}
	for _, c := range e.fake.recorded() {
		prefix := checkout.SagaID(o.ID) + "/" + step[c.op] + "/"
		ok := strings.HasPrefix(c.meta.CausationID, prefix)
		if c.op == opCommit {
			prefix = checkout.SagaID(o.ID)
			ok = c.meta.CausationID == prefix
		}
		if c.orderID != o.ID || c.meta.CorrelationID != o.ID || !ok {
			e.t.Errorf("%s: order %q, metadata %+v; want order %q, correlation %q, causation %s<attempt>",
				c.op, c.orderID, c.meta, o.ID, o.ID, prefix)
		}
	}
}

func wantPayment(o ordering.Order) checkout.Payment {
	return checkout.Payment{OrderID: o.ID, From: "acct-cust-1", To: merchant, Amount: money.New(3750, usd)}
}

func TestHappyPath(t *testing.T) {
	e := newEnv(t, newFakePorts(), 0)
	o := e.place("o-happy")
	in := e.wait(o.ID)

	if in.Status != saga.Completed || in.Reason != "" {
		t.Fatalf("saga %s (reason %q, error %q), want Completed; calls %v", in.Status, in.Reason, in.Error, e.fake.ops())
	}
	wantSteps(t, in, "reserve_stock:Completed", "capture_payment:Completed", "arrange_shipment:Completed", "confirm_order:Completed")
	e.wantOps(opReserve, opPay, opArrange, opCommit)
	if got := e.order(o.ID); got.Status != ordering.StatusConfirmed || got.Reason != "" {
		t.Fatalf("order %s %q, want Confirmed", got.Status, got.Reason)
	}
	if c := e.fake.of(opReserve)[0]; !slices.Equal(c.lines, wantLines) {
		t.Errorf("reserved %v, want %v", c.lines, wantLines)
	}
	if c := e.fake.of(opPay)[0]; c.payment != wantPayment(o) {
		t.Errorf("paid %+v, want %+v", c.payment, wantPayment(o))
	}
	if c := e.fake.of(opArrange)[0]; c.address != wantAddress {
		t.Errorf("shipment to %+v, want %+v", c.address, wantAddress)
	}
	e.wantMeta(o)
}

func TestStockRejects(t *testing.T) {
	e := newEnv(t, newFakePorts().rejectOn(opReserve, ordering.ReasonOutOfStock), 0)
	o := e.place("o-no-stock")
	in := e.wait(o.ID)

	e.wantCancelled(o, in, ordering.ReasonOutOfStock, ordering.ReasonOutOfStock)
	// A refused reservation did nothing: nothing to release, nothing paid
	// or shipped.
	e.wantOps(opReserve)
	wantSteps(t, in, "reserve_stock:Failed", "capture_payment:Skipped", "arrange_shipment:Skipped", "confirm_order:Skipped")
	if n := len(e.fake.of(opReserve)); n != 1 {
		t.Errorf("a refusal was retried: %d reservations", n)
	}
	e.wantMeta(o)
}

func TestPaymentRejects(t *testing.T) {
	e := newEnv(t, newFakePorts().rejectOn(opPay, ordering.ReasonInsufficientFunds), 0)
	o := e.place("o-no-funds")
	in := e.wait(o.ID)

	e.wantCancelled(o, in, ordering.ReasonInsufficientFunds, ordering.ReasonInsufficientFunds)
	// The payment was refused (nothing to refund); the stock goes back.
	e.wantOps(opReserve, opPay, opRelease)
	wantSteps(t, in, "reserve_stock:Compensated", "capture_payment:Failed", "arrange_shipment:Skipped", "confirm_order:Skipped")
	if r := e.fake.of(opRelease)[0]; !slices.Equal(r.lines, e.fake.of(opReserve)[0].lines) || !slices.Equal(r.lines, wantLines) {
		t.Errorf("released %v, reserved %v, want both %v", r.lines, e.fake.of(opReserve)[0].lines, wantLines)
	}
	e.wantMeta(o)
}

func TestShippingRejects(t *testing.T) {
	e := newEnv(t, newFakePorts().rejectOn(opArrange, ordering.ReasonShippingFailed), 0)
	o := e.place("o-no-ship")
	in := e.wait(o.ID)

	e.wantCancelled(o, in, ordering.ReasonShippingFailed, ordering.ReasonShippingFailed)
	// Compensations in reverse: refund, then release; no shipment to cancel.
	e.wantOps(opReserve, opPay, opArrange, opRefund, opRelease)
	wantSteps(t, in, "reserve_stock:Compensated", "capture_payment:Compensated", "arrange_shipment:Failed", "confirm_order:Skipped")
	if r := e.fake.of(opRefund)[0]; r.payment != e.fake.of(opPay)[0].payment || r.payment != wantPayment(o) {
		t.Errorf("refunded %+v, paid %+v, want both %+v", r.payment, e.fake.of(opPay)[0].payment, wantPayment(o))
	}
	if r := e.fake.of(opRelease)[0]; !slices.Equal(r.lines, wantLines) {
		t.Errorf("released %v, want %v", r.lines, wantLines)
	}
	e.wantMeta(o)
}

func TestTransientPaymentFailuresAreRetried(t *testing.T) {
	e := newEnv(t, newFakePorts().failOn(opPay, 2), 0)
	o := e.place("o-flaky-pay")
	in := e.wait(o.ID)

	if in.Status != saga.Completed {
		t.Fatalf("saga %s (reason %q, error %q), want Completed; calls %v", in.Status, in.Reason, in.Error, e.fake.ops())
	}
	e.wantOps(opReserve, opPay, opPay, opPay, opArrange, opCommit)
	if got := e.order(o.ID); got.Status != ordering.StatusConfirmed {
		t.Fatalf("order %s %q, want Confirmed", got.Status, got.Reason)
	}
	if got := in.Steps[1]; got.Name != "capture_payment" || got.Attempts != 3 {
		t.Errorf("payment step %+v, want 3 attempts", got)
	}
	// Every attempt is its own cause; all carry the same payment.
	var causes []string
	for _, c := range e.fake.of(opPay) {
		causes = append(causes, c.meta.CausationID)
		if c.payment != wantPayment(o) {
			t.Errorf("paid %+v, want %+v", c.payment, wantPayment(o))
		}
	}
	id := checkout.SagaID(o.ID)
	if want := []string{id + "/capture_payment/1", id + "/capture_payment/2", id + "/capture_payment/3"}; !slices.Equal(causes, want) {
		t.Errorf("payment causes %v, want %v", causes, want)
	}
	e.wantMeta(o)
}

func TestTransientCommitFailureIsRetried(t *testing.T) {
	e := newEnv(t, newFakePorts().failOn(opCommit, 1), 0)
	o := e.place("o-flaky-commit")
	in := e.wait(o.ID)

	if in.Status != saga.Completed {
		t.Fatalf("saga %s (reason %q, error %q), want Completed; calls %v", in.Status, in.Reason, in.Error, e.fake.ops())
	}
	e.wantOps(opReserve, opPay, opArrange, opCommit, opCommit)
	if got := e.order(o.ID); got.Status != ordering.StatusConfirmed {
		t.Fatalf("order %s %q, want Confirmed", got.Status, got.Reason)
	}
}

func TestPaymentRetriesRunOut(t *testing.T) {
	// Payments keeps failing: the step retries until its deadline (not a
	// fixed count: an outage shorter than the deadline only delays the
	// checkout), then the payment's outcome is unknown: it is refunded
	// too, before the stock is released.
	e := newEnv(t, newFakePorts().failOn(opPay, 1<<30), 500*time.Millisecond)
	o := e.place("o-pay-down")
	in := e.wait(o.ID)
	e.wantCancelled(o, in, ordering.ReasonTimeout, ordering.ReasonTimeout)
	ops := e.fake.ops()
	if n := strings.Count(strings.Join(ops, " "), opPay); n < 3 || ops[len(ops)-2] != opRefund || ops[len(ops)-1] != opRelease {
		t.Fatalf("ops %v: want several payment attempts, then the refund and the release", ops)
	}
	e.wantMeta(o)
}

func TestPaymentRecoversWithinTheDeadline(t *testing.T) {
	// Payments fails ten times in a row, then answers: the checkout goes
	// through.
	e := newEnv(t, newFakePorts().failOn(opPay, 10), 0)
	o := e.place("o-pay-flaky")
	e.wait(o.ID)
	if got := e.order(o.ID); got.Status != ordering.StatusConfirmed {
		t.Fatalf("order %s %q, want Confirmed", got.Status, got.Reason)
	}
}

func TestStepDeadline(t *testing.T) {
	e := newEnv(t, newFakePorts().blockOn(opArrange), 500*time.Millisecond)
	o := e.place("o-slow-ship")
	in := e.wait(o.ID)

	// The shipment may have been arranged as the deadline passed: it is
	// cancelled too, then the payment refunded and the stock released.
	e.wantCancelled(o, in, ordering.ReasonTimeout, ordering.ReasonTimeout)
	e.wantOps(opReserve, opPay, opArrange, opCancelSh, opRefund, opRelease)
	e.wantMeta(o)
}

func TestCustomerCancelsDuringCheckout(t *testing.T) {
	fake := newFakePorts()
	e := newEnv(t, fake, 0)
	// The customer asks to cancel while the shipment is being arranged:
	// the order can no longer be confirmed.
	fake.hookOn(opArrange, func(ctx context.Context) error {
		_, _, err := e.orders.RequestCancel(ctx, eventstore.Metadata{}, "o-changed-mind")
		return err
	})
	o := e.place("o-changed-mind")
	in := e.wait(o.ID)

	e.wantCancelled(o, in, ordering.ReasonCancelledByCustomer, ordering.ReasonCancelledByCustomer)
	e.wantOps(opReserve, opPay, opArrange, opCancelSh, opRefund, opRelease)
	wantSteps(t, in, "reserve_stock:Compensated", "capture_payment:Compensated", "arrange_shipment:Compensated", "confirm_order:Failed")
	e.wantMeta(o)
}

// Once the customer asked to cancel, the order is cancelled for that,
// whatever else stopped the checkout.
func TestCustomerAskedBeforeARefusal(t *testing.T) {
	fake := newFakePorts().rejectOn(opArrange, ordering.ReasonShippingFailed)
	e := newEnv(t, fake, 0)
	fake.hookOn(opPay, func(ctx context.Context) error {
		_, _, err := e.orders.RequestCancel(ctx, eventstore.Metadata{}, "o-asked")
		return err
	})
	o := e.place("o-asked")
	in := e.wait(o.ID)

	e.wantCancelled(o, in, ordering.ReasonShippingFailed, ordering.ReasonCancelledByCustomer)
	e.wantOps(opReserve, opPay, opArrange, opRefund, opRelease)
}

// Every reason a port may refuse with, from each port: the refusing
// step's predecessors are compensated in reverse, and the order is
// cancelled with the reason's cancellation reason.
func TestEveryRejection(t *testing.T) {
	cancelReason := map[string]string{
		ordering.ReasonOutOfStock:          ordering.ReasonOutOfStock,
		ordering.ReasonInsufficientFunds:   ordering.ReasonInsufficientFunds,
		ordering.ReasonShippingFailed:      ordering.ReasonShippingFailed,
		ordering.ReasonTimeout:             ordering.ReasonTimeout,
		ordering.ReasonCancelledByCustomer: ordering.ReasonCancelledByCustomer,
		ordering.ReasonPaymentFailed:       ordering.ReasonPaymentFailed,
		"cancelled":                        ordering.ReasonCancelledByCustomer,
		"reservation_closed":               ordering.ReasonCancelledByCustomer,
		"shipment_cancelled":               ordering.ReasonCancelledByCustomer,
		"account_closed":                   ordering.ReasonPaymentFailed,
		"account_not_found":                ordering.ReasonPaymentFailed,
		"currency_mismatch":                ordering.ReasonPaymentFailed,
		"no_idea":                          ordering.ReasonTimeout,
	}
	calls := map[string][]string{
		opReserve: {opReserve},
		opPay:     {opReserve, opPay, opRelease},
		opArrange: {opReserve, opPay, opArrange, opRefund, opRelease},
	}
	for _, op := range []string{opReserve, opPay, opArrange} {
		for reason, cancel := range cancelReason {
			t.Run(op+"/"+reason, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, newFakePorts().rejectOn(op, reason), 0)
				o := e.place(fmt.Sprintf("o-%s-%s", op, reason))
				in := e.wait(o.ID)
				e.wantCancelled(o, in, reason, cancel)
				e.wantMeta(o)
				e.wantOps(calls[op]...)
			})
		}
	}
}

// TestConfirmedIsFinal: once the order is confirmed, a commit of its
// stock that keeps failing (more often than a step's attempts) is retried
// until it succeeds; nothing is compensated, the order stays Confirmed.
func TestConfirmedIsFinal(t *testing.T) {
	e := newEnv(t, newFakePorts().failOn(opCommit, 8), 0)
	o := e.place("o-commit-down")
	in := e.wait(o.ID)
	if in.Status != saga.Completed {
		t.Fatalf("saga %s (reason %q, error %q), want Completed; calls %v", in.Status, in.Reason, in.Error, e.fake.ops())
	}
	e.wantOps(opReserve, opPay, opArrange, opCommit, opCommit, opCommit, opCommit, opCommit, opCommit, opCommit, opCommit, opCommit)
	if got := e.order(o.ID); got.Status != ordering.StatusConfirmed {
		t.Fatalf("order %s, want Confirmed", got.Status)
	}
	e.wantMeta(o)
}
