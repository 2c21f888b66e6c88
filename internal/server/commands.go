package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/identity"
	invapi "github.com/agora-commerce/agora/internal/inventory/api"
	ordapi "github.com/agora-commerce/agora/internal/ordering/api"
	"github.com/agora-commerce/agora/internal/ordering/checkout"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/platform/errs"
	shipapi "github.com/agora-commerce/agora/internal/shipping/api"
	"github.com/agora-commerce/agora/money"
)

// In distributed mode the contexts ask each other over the bus (NATS
// request-reply, one responder per context's queue) instead of running
// each other's application services in their own process: the
// orchestrated checkout's steps are commands, identity opening a
// customer's account is one, and the owner and product lookups are
// queries, each run by a process of the context that owns the data.
// Commands are idempotent, so a request that fails (no responder yet, a
// responder killed mid-way, the timeout) is simply the caller's to retry:
// the saga retries its steps, a client its request.

// The commands' subjects.
const (
	cmdReserve = "cmd.inventory.reserve"
	cmdRelease = "cmd.inventory.release"
	cmdCommit  = "cmd.inventory.commit"
	cmdPay     = "cmd.payments.pay"
	cmdRefund  = "cmd.payments.refund"
	cmdArrange = "cmd.shipping.arrange"
	cmdCancel  = "cmd.shipping.cancel"

	cmdOpenAccount    = "cmd.payments.open-account"
	queryOrderOwner   = "query.ordering.order-owner"
	queryAccountOwner = "query.payments.account-owner"
	queryProduct      = "query.catalog.product-exists"
)

// commandTimeout bounds one command's round trip; the saga retries after it.
const commandTimeout = 5 * time.Second

// queryTimeout bounds one attempt of a query, which a client waits for:
// a query that gets no answer in time is asked once more (most likely of
// another process) before it fails.
const queryTimeout = 2 * time.Second

// command is one call of a checkout port, as it crosses the bus.
type command struct {
	Meta    eventstore.Metadata  `json:"meta"`
	OrderID string               `json:"order_id"`
	Lines   []orderingapi.Line   `json:"lines,omitempty"`
	From    string               `json:"from,omitempty"`
	To      string               `json:"to,omitempty"`
	Amount  *money.Money         `json:"amount,omitempty"`
	Address *orderingapi.Address `json:"address,omitempty"`
	// AccountID and ProductID are what the queries ask about.
	AccountID string `json:"account_id,omitempty"`
	ProductID string `json:"product_id,omitempty"`
}

func (c command) payment() checkout.Payment {
	p := checkout.Payment{OrderID: c.OrderID, From: c.From, To: c.To}
	if c.Amount != nil {
		p.Amount = *c.Amount
	}
	return p
}

// reply is a command's outcome: its result, a refusal the saga
// compensates (checkout.Rejection's reason), an *errs.Error (its code,
// reason and message, so that a 404 stays a 404), or another failure,
// to retry.
type reply struct {
	Result  json.RawMessage `json:"result,omitempty"`
	Reject  string          `json:"reject,omitempty"`
	Error   string          `json:"error,omitempty"`
	Code    errs.Code       `json:"code,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	Message string          `json:"message,omitempty"`
}

// err is the reply's failure as the caller's error.
func (rp reply) err(subject string) error {
	switch {
	case rp.Reject != "":
		return checkout.Reject(rp.Reject)
	case rp.Code != "":
		return &errs.Error{Code: rp.Code, Reason: rp.Reason, Message: rp.Message}
	case rp.Error != "":
		return fmt.Errorf("%s: %s", subject, rp.Error)
	}
	return nil
}

// requester sends commands over the bus.
type requester interface {
	Request(ctx context.Context, subject string, data []byte) ([]byte, error)
}

// remote are the checkout's ports as commands to the contexts' processes.
type remote struct{ bus requester }

func (r remote) send(ctx context.Context, subject string, c command) error {
	_, err := r.ask(ctx, subject, c)
	return err
}

// ask sends c and returns the reply's result.
func (r remote) ask(ctx context.Context, subject string, c command) (json.RawMessage, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	timeout, attempts := commandTimeout, 1
	if strings.HasPrefix(subject, "query.") {
		timeout, attempts = queryTimeout, 2
	}
	var answer []byte
	for range attempts {
		actx, cancel := context.WithTimeout(ctx, timeout)
		answer, err = r.bus.Request(actx, subject, data)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		// No process of the context answered: a 503 to a client, a
		// retry to a saga.
		return nil, &errs.Error{Code: errs.Unavailable, Reason: "context_unavailable",
			Message: fmt.Sprintf("no answer to %s; retry shortly", subject), Err: err}
	}
	var rp reply
	if err := json.Unmarshal(answer, &rp); err != nil {
		return nil, fmt.Errorf("%s: bad reply: %w", subject, err)
	}
	return rp.Result, rp.err(subject)
}

// askFor sends c and decodes the reply's result as a T.
func askFor[T any](ctx context.Context, r remote, subject string, c command) (T, error) {
	var out T
	res, err := r.ask(ctx, subject, c)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(res, &out); err != nil {
		return out, fmt.Errorf("%s: bad result: %w", subject, err)
	}
	return out, nil
}

// owner is the answer to the owner queries.
type owner struct {
	Tenant string `json:"tenant"`
	ID     string `json:"id"`
}

// remoteOrders tells shipping whose an order is, asking ordering.
type remoteOrders struct{ remote }

func (r remoteOrders) Owner(ctx context.Context, orderID string) (tenant, customer string, err error) {
	o, err := askFor[owner](ctx, r.remote, queryOrderOwner, command{OrderID: orderID})
	return o.Tenant, o.ID, err
}

// remoteAccountOwners tells ordering whose an account is, asking payments.
type remoteAccountOwners struct{ remote }

func (r remoteAccountOwners) Owner(ctx context.Context, accountID string) (tenant, id string, err error) {
	o, err := askFor[owner](ctx, r.remote, queryAccountOwner, command{AccountID: accountID})
	return o.Tenant, o.ID, err
}

// remoteProducts tells inventory whether a product exists, asking the catalog.
type remoteProducts struct{ remote }

func (r remoteProducts) Exists(ctx context.Context, id string) (bool, error) {
	return askFor[bool](ctx, r.remote, queryProduct, command{ProductID: id})
}

// remoteAccounts opens a customer's account for identity, in payments.
type remoteAccounts struct{ remote }

func (r remoteAccounts) OpenFor(ctx context.Context, tenant, userID string) (string, error) {
	return askFor[string](ctx, r.remote, cmdOpenAccount, command{Meta: openMeta(ctx, tenant, userID)})
}

func (r remote) Reserve(ctx context.Context, meta eventstore.Metadata, order string, lines []orderingapi.Line) error {
	return r.send(ctx, cmdReserve, command{Meta: meta, OrderID: order, Lines: lines})
}

func (r remote) Release(ctx context.Context, meta eventstore.Metadata, order string, lines []orderingapi.Line) error {
	return r.send(ctx, cmdRelease, command{Meta: meta, OrderID: order, Lines: lines})
}

func (r remote) Commit(ctx context.Context, meta eventstore.Metadata, order string) error {
	return r.send(ctx, cmdCommit, command{Meta: meta, OrderID: order})
}

func (r remote) payment(ctx context.Context, subject string, meta eventstore.Metadata, p checkout.Payment) error {
	return r.send(ctx, subject, command{Meta: meta, OrderID: p.OrderID, From: p.From, To: p.To, Amount: &p.Amount})
}

func (r remote) Pay(ctx context.Context, meta eventstore.Metadata, p checkout.Payment) error {
	return r.payment(ctx, cmdPay, meta, p)
}

func (r remote) Refund(ctx context.Context, meta eventstore.Metadata, p checkout.Payment) error {
	return r.payment(ctx, cmdRefund, meta, p)
}

func (r remote) Arrange(ctx context.Context, meta eventstore.Metadata, order string, to orderingapi.Address) error {
	return r.send(ctx, cmdArrange, command{Meta: meta, OrderID: order, Address: &to})
}

func (r remote) Cancel(ctx context.Context, meta eventstore.Metadata, order string) error {
	return r.send(ctx, cmdCancel, command{Meta: meta, OrderID: order})
}

// asking is what one context asks of another.
type asking struct {
	stock         checkout.Stock
	payments      checkout.Payments
	shipping      checkout.Shipping
	products      invapi.Products
	orderOwners   shipapi.Orders
	accountOwners ordapi.Accounts
	accounts      identity.Accounts
}

// asks returns how the contexts ask each other: in process when embedded;
// over the bus when distributed, where this process also answers what is
// asked of its own context.
func (s *Server) asks() asking {
	if s.cfg.Only == "" {
		return asking{stockPort{s.Inventory}, paymentsPort{s.Payments}, shippingPort{s.Shipping},
			productsPort{s.Products}, ordersPort{s.Ordering}, accountOwnersPort{s.Payments}, accountsPort{s.Payments}}
	}
	for _, h := range s.commandHandlers() {
		s.daemons = append(s.daemons, daemon{h.owner, func(ctx context.Context) error {
			return s.bus.Respond(ctx, h.subject, h.owner, h.respond)
		}})
	}
	r := remote{s.bus}
	return asking{r, r, r, remoteProducts{r}, remoteOrders{r}, remoteAccountOwners{r}, remoteAccounts{r}}
}

// commandHandler runs one command in the process of the context that owns it.
type commandHandler struct {
	owner, subject string
	run            func(ctx context.Context, c command) (any, error)
}

// step is a handler without a result.
func step(f func(ctx context.Context, c command) error) func(ctx context.Context, c command) (any, error) {
	return func(ctx context.Context, c command) (any, error) { return nil, f(ctx, c) }
}

// commandHandlers are the commands and queries, run by the in-process ports.
func (s *Server) commandHandlers() []commandHandler {
	stock, pay, ship := stockPort{s.Inventory}, paymentsPort{s.Payments}, shippingPort{s.Shipping}
	return []commandHandler{
		{clusterInventory, cmdReserve, step(func(ctx context.Context, c command) error { return stock.Reserve(ctx, c.Meta, c.OrderID, c.Lines) })},
		{clusterInventory, cmdRelease, step(func(ctx context.Context, c command) error { return stock.Release(ctx, c.Meta, c.OrderID, c.Lines) })},
		{clusterInventory, cmdCommit, step(func(ctx context.Context, c command) error { return stock.Commit(ctx, c.Meta, c.OrderID) })},
		{clusterPayments, cmdPay, step(func(ctx context.Context, c command) error { return pay.Pay(ctx, c.Meta, c.payment()) })},
		{clusterPayments, cmdRefund, step(func(ctx context.Context, c command) error { return pay.Refund(ctx, c.Meta, c.payment()) })},
		{clusterShipping, cmdArrange, step(func(ctx context.Context, c command) error {
			if c.Address == nil {
				return errors.New("no address")
			}
			return ship.Arrange(ctx, c.Meta, c.OrderID, *c.Address)
		})},
		{clusterShipping, cmdCancel, step(func(ctx context.Context, c command) error { return ship.Cancel(ctx, c.Meta, c.OrderID) })},
		{clusterPayments, cmdOpenAccount, func(ctx context.Context, c command) (any, error) {
			return accountsPort{s.Payments}.open(ctx, c.Meta)
		}},
		{clusterOrdering, queryOrderOwner, func(ctx context.Context, c command) (any, error) {
			t, id, err := ordersPort{s.Ordering}.Owner(ctx, c.OrderID)
			return owner{t, id}, err
		}},
		{clusterPayments, queryAccountOwner, func(ctx context.Context, c command) (any, error) {
			t, id, err := accountOwnersPort{s.Payments}.Owner(ctx, c.AccountID)
			return owner{t, id}, err
		}},
		{clusterCatalog, queryProduct, func(ctx context.Context, c command) (any, error) {
			return productsPort{s.Products}.Exists(ctx, c.ProductID)
		}},
	}
}

// respond is a command handler as a bus responder: the reply says how the
// command ended.
func (h commandHandler) respond(ctx context.Context, data []byte) []byte {
	var c command
	var rp reply
	if err := json.Unmarshal(data, &c); err != nil {
		rp.Error = "bad command: " + err.Error()
	} else if res, err := h.run(ctx, c); err != nil {
		var rej *checkout.Rejection
		var e *errs.Error
		switch {
		case errors.As(err, &rej):
			rp.Reject = rej.Reason
		case errors.As(err, &e):
			rp.Code, rp.Reason, rp.Message = e.Code, e.Reason, e.Message
		default:
			rp.Error = err.Error()
		}
	} else if res != nil {
		rp.Result, err = json.Marshal(res)
		if err != nil {
			rp.Error = "bad result: " + err.Error()
		}
	}
	out, _ := json.Marshal(rp)
	return out
}
