package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/ordering/checkout"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/money"
)

// In distributed mode the orchestrated checkout drives the other contexts
// with commands over the bus (NATS request-reply, one responder per
// context's queue) instead of calling their application services in its
// own process: each command runs in a process of the context that owns
// it. Commands are idempotent, so a request that fails (no responder yet,
// a responder killed mid-way, the timeout) is simply the saga's to retry.

// The commands' subjects.
const (
	cmdReserve = "cmd.inventory.reserve"
	cmdRelease = "cmd.inventory.release"
	cmdCommit  = "cmd.inventory.commit"
	cmdPay     = "cmd.payments.pay"
	cmdRefund  = "cmd.payments.refund"
	cmdArrange = "cmd.shipping.arrange"
	cmdCancel  = "cmd.shipping.cancel"
)

// commandTimeout bounds one command's round trip; the saga retries after it.
const commandTimeout = 5 * time.Second

// command is one call of a checkout port, as it crosses the bus.
type command struct {
	Meta    eventstore.Metadata  `json:"meta"`
	OrderID string               `json:"order_id"`
	Lines   []orderingapi.Line   `json:"lines,omitempty"`
	From    string               `json:"from,omitempty"`
	To      string               `json:"to,omitempty"`
	Amount  *money.Money         `json:"amount,omitempty"`
	Address *orderingapi.Address `json:"address,omitempty"`
}

func (c command) payment() checkout.Payment {
	p := checkout.Payment{OrderID: c.OrderID, From: c.From, To: c.To}
	if c.Amount != nil {
		p.Amount = *c.Amount
	}
	return p
}

// reply is a command's outcome: nothing, a refusal the saga compensates
// (checkout.Rejection's reason), or a failure it retries.
type reply struct {
	Reject string `json:"reject,omitempty"`
	Error  string `json:"error,omitempty"`
}

// requester sends commands over the bus.
type requester interface {
	Request(ctx context.Context, subject string, data []byte) ([]byte, error)
}

// remote are the checkout's ports as commands to the contexts' processes.
type remote struct{ bus requester }

func (r remote) send(ctx context.Context, subject string, c command) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	answer, err := r.bus.Request(ctx, subject, data)
	if err != nil {
		return err
	}
	var rp reply
	if err := json.Unmarshal(answer, &rp); err != nil {
		return fmt.Errorf("%s: bad reply: %w", subject, err)
	}
	switch {
	case rp.Reject != "":
		return checkout.Reject(rp.Reject)
	case rp.Error != "":
		return fmt.Errorf("%s: %s", subject, rp.Error)
	}
	return nil
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

// commandHandler runs one command in the process of the context that owns it.
type commandHandler struct {
	owner, subject string
	run            func(ctx context.Context, c command) error
}

// commandHandlers are the checkout's commands, run by the in-process ports.
func (s *Server) commandHandlers() []commandHandler {
	stock, pay, ship := stockPort{s.Inventory}, paymentsPort{s.Payments}, shippingPort{s.Shipping}
	return []commandHandler{
		{clusterInventory, cmdReserve, func(ctx context.Context, c command) error { return stock.Reserve(ctx, c.Meta, c.OrderID, c.Lines) }},
		{clusterInventory, cmdRelease, func(ctx context.Context, c command) error { return stock.Release(ctx, c.Meta, c.OrderID, c.Lines) }},
		{clusterInventory, cmdCommit, func(ctx context.Context, c command) error { return stock.Commit(ctx, c.Meta, c.OrderID) }},
		{clusterPayments, cmdPay, func(ctx context.Context, c command) error { return pay.Pay(ctx, c.Meta, c.payment()) }},
		{clusterPayments, cmdRefund, func(ctx context.Context, c command) error { return pay.Refund(ctx, c.Meta, c.payment()) }},
		{clusterShipping, cmdArrange, func(ctx context.Context, c command) error {
			if c.Address == nil {
				return errors.New("no address")
			}
			return ship.Arrange(ctx, c.Meta, c.OrderID, *c.Address)
		}},
		{clusterShipping, cmdCancel, func(ctx context.Context, c command) error { return ship.Cancel(ctx, c.Meta, c.OrderID) }},
	}
}

// respond is a command handler as a bus responder: the reply says how the
// command ended.
func (h commandHandler) respond(ctx context.Context, data []byte) []byte {
	var c command
	var rp reply
	if err := json.Unmarshal(data, &c); err != nil {
		rp.Error = "bad command: " + err.Error()
	} else if err := h.run(ctx, c); err != nil {
		var rej *checkout.Rejection
		if errors.As(err, &rej) {
			rp.Reject = rej.Reason
		} else {
			rp.Error = err.Error()
		}
	}
	out, _ := json.Marshal(rp)
	return out
}
