package server

import (
	"context"
	"errors"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/ordering/checkout"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/money"
)

// loopback answers a command with the handler of its subject, as the bus
// would carry it to the owning process: through JSON both ways.
type loopback map[string]commandHandler

func (l loopback) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	h, ok := l[subject]
	if !ok {
		return nil, errors.New("no responders")
	}
	return h.respond(ctx, data), nil
}

func TestCommandsCrossTheBusIntact(t *testing.T) {
	var got []command
	outcome := map[string]error{
		cmdReserve: checkout.Reject("out_of_stock"),
		cmdPay:     errors.New("database is locked"),
	}
	l := loopback{}
	for _, subject := range []string{cmdReserve, cmdRelease, cmdCommit, cmdPay, cmdRefund, cmdArrange, cmdCancel} {
		l[subject] = commandHandler{subject: subject, run: step(func(_ context.Context, c command) error {
			got = append(got, c)
			return outcome[subject]
		})}
	}
	r := remote{l}
	ctx := context.Background()
	meta := eventstore.Metadata{Tenant: "demo", CorrelationID: "corr", CausationID: "cause", User: "u1"}
	lines := []orderingapi.Line{{ProductID: "p1", Quantity: 2}}
	amount := money.New(2500, money.MustCurrency("USD"))
	to := orderingapi.Address{Street: "1 Main St", City: "Springfield", ZipCode: "62701", Country: "US"}

	var rej *checkout.Rejection
	if err := r.Reserve(ctx, meta, "o1", lines); !errors.As(err, &rej) || rej.Reason != "out_of_stock" {
		t.Fatalf("a refusal must come back as a refusal: %v", err)
	}
	if err := r.Pay(ctx, meta, checkout.Payment{OrderID: "o1", From: "a", To: "m", Amount: amount}); err == nil || errors.As(err, &rej) {
		t.Fatalf("a failure must come back as a failure to retry: %v", err)
	}
	for _, err := range []error{
		r.Release(ctx, meta, "o1", lines), r.Commit(ctx, meta, "o1"),
		r.Refund(ctx, meta, checkout.Payment{OrderID: "o1", From: "a", To: "m", Amount: amount}),
		r.Arrange(ctx, meta, "o1", to), r.Cancel(ctx, meta, "o1"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 7 {
		t.Fatalf("%d commands ran, want 7", len(got))
	}
	for _, c := range got {
		if c.Meta != meta || c.OrderID != "o1" {
			t.Fatalf("command arrived as %+v", c)
		}
	}
	if len(got[0].Lines) != 1 || got[0].Lines[0] != lines[0] {
		t.Fatalf("lines arrived as %+v", got[0].Lines)
	}
	if p := got[4].payment(); p.From != "a" || p.To != "m" || p.Amount != amount || got[1].payment() != p {
		t.Fatalf("payment arrived as %+v", p)
	}
	if a := got[5].Address; a == nil || *a != to {
		t.Fatalf("address arrived as %+v", a)
	}
	if err := (remote{loopback{}}).Commit(ctx, meta, "o1"); errs.CodeOf(err) != errs.Unavailable {
		t.Fatalf("a command no process answers must fail as unavailable: %v", err)
	}
}

func TestQueriesCrossTheBusIntact(t *testing.T) {
	l := loopback{
		queryOrderOwner: {run: func(_ context.Context, c command) (any, error) {
			if c.OrderID != "o1" {
				return owner{}, &errs.Error{Code: errs.NotFound, Reason: "order_not_found", Message: "no such order"}
			}
			return owner{"demo", "c1"}, nil
		}},
		queryProduct: {run: func(_ context.Context, c command) (any, error) { return c.ProductID == "p1", nil }},
		cmdOpenAccount: {run: func(_ context.Context, c command) (any, error) {
			return "acct-" + c.Meta.Tenant + "-" + c.Meta.User, nil
		}},
	}
	r := remote{l}
	ctx := context.Background()
	if tenant, customer, err := (remoteOrders{r}).Owner(ctx, "o1"); err != nil || tenant != "demo" || customer != "c1" {
		t.Fatalf("owner: %q %q %v", tenant, customer, err)
	}
	// A 404 stays a 404 (the API answers it), with its reason.
	if _, _, err := (remoteOrders{r}).Owner(ctx, "nope"); errs.CodeOf(err) != errs.NotFound || errs.ReasonOf(err) != "order_not_found" {
		t.Fatalf("missing order: %v", err)
	}
	for id, want := range map[string]bool{"p1": true, "p2": false} {
		if ok, err := (remoteProducts{r}).Exists(ctx, id); err != nil || ok != want {
			t.Fatalf("product %s: %v %v", id, ok, err)
		}
	}
	if id, err := (remoteAccounts{r}).OpenFor(ctx, "demo", "u1"); err != nil || id != "acct-demo-u1" {
		t.Fatalf("open account: %q %v", id, err)
	}
}

// flaky fails the first n requests, as a responder killed mid-request would.
type flaky struct {
	next  requester
	fails int
	calls int
}

func (f *flaky) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	f.calls++
	if f.calls <= f.fails {
		return nil, context.DeadlineExceeded
	}
	return f.next.Request(ctx, subject, data)
}

func TestQueriesAskTwiceCommandsOnce(t *testing.T) {
	l := loopback{
		queryProduct: {run: func(context.Context, command) (any, error) { return true, nil }},
		cmdCommit:    {run: step(func(context.Context, command) error { return nil })},
	}
	ctx := context.Background()
	q := &flaky{next: l, fails: 1}
	if ok, err := (remoteProducts{remote{q}}).Exists(ctx, "p1"); err != nil || !ok || q.calls != 2 {
		t.Fatalf("a query whose first ask got no answer: %v %v after %d asks", ok, err, q.calls)
	}
	q = &flaky{next: l, fails: 2}
	if _, err := (remoteProducts{remote{q}}).Exists(ctx, "p1"); errs.CodeOf(err) != errs.Unavailable || q.calls != 2 {
		t.Fatalf("a query no one answers twice: %v after %d asks", err, q.calls)
	}
	c := &flaky{next: l, fails: 1}
	if err := (remote{c}).Commit(ctx, eventstore.Metadata{}, "o1"); errs.CodeOf(err) != errs.Unavailable || c.calls != 1 {
		t.Fatalf("a command is the saga's to retry, not asked again here: %v after %d asks", err, c.calls)
	}
}
