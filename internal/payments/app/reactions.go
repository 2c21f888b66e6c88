package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/shipping/shippingapi"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/money"
)

// OrderPayment returns the Payment of an order.
func OrderPayment(orderID, from, to string, amount money.Money) Payment {
	return Payment{Key: paymentsapi.OrderReference(orderID), Reference: paymentsapi.OrderReference(orderID), From: from, To: to, Amount: amount}
}

// ReactionSubjects are the integration events payments reacts to in a
// choreographed checkout.
var ReactionSubjects = []string{orderingapi.SubjectOrderPlaced, orderingapi.SubjectOrderCancelled,
	inventoryapi.SubjectStockReserved, shippingapi.SubjectShipmentFailed}

// Reactions is payments' part of a choreographed checkout. It keeps what
// it needs of each placed order in its own table (payments_order_payments,
// written with the inbox in one transaction), captures the payment once
// the stock is reserved (the outcome is published as PaymentCaptured or
// PaymentFailed), and refunds when the order is cancelled or its shipment
// failed. Pay and Unpay are idempotent per order.
func (s *Service) Reactions(ctx context.Context, db *sql.DB) (messaging.Handler, error) {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS payments_order_payments (order_id TEXT PRIMARY KEY,
		from_account TEXT NOT NULL, to_account TEXT NOT NULL, amount BIGINT NOT NULL, currency TEXT NOT NULL)`); err != nil {
		return nil, fmt.Errorf("payments reactions: %w", err)
	}
	inbox, err := messaging.NewInbox(ctx, db, "payments")
	if err != nil {
		return nil, err
	}
	lookup := func(ctx context.Context, order string) (Payment, error) {
		var from, to, cur string
		var amt int64
		err := db.QueryRowContext(ctx, `SELECT from_account, to_account, amount, currency FROM payments_order_payments WHERE order_id = $1`, order).
			Scan(&from, &to, &amt, &cur)
		if errors.Is(err, sql.ErrNoRows) {
			return Payment{}, fmt.Errorf("payments: order %s not seen yet; retry later", order)
		}
		if err != nil {
			return Payment{}, err
		}
		m, err := money.Parse(amt, cur)
		if err != nil {
			return Payment{}, errors.Join(messaging.ErrPermanent, err)
		}
		return OrderPayment(order, from, to, m), nil
	}
	return func(ctx context.Context, d messaging.Delivery) error {
		meta := messaging.MetadataOf(d)
		if d.Type == orderingapi.TypeOrderPlaced {
			p, err := messaging.Decode[orderingapi.OrderPlaced](d.Message)
			if err != nil {
				return errors.Join(messaging.ErrPermanent, err)
			}
			_, err = inbox.Handle(ctx, d.ID, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO payments_order_payments (order_id, from_account, to_account, amount, currency)
					VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id) DO NOTHING`,
					p.OrderID, p.PaymentAccountID, p.MerchantAccountID, p.Total.Amount, p.Total.Currency.Code())
				return err
			})
			return err
		}
		body, err := orderingapi.RefOf(d.Message)
		if err != nil {
			return err
		}
		p, err := lookup(ctx, body.OrderID)
		if err != nil {
			return err
		}
		if d.Type == inventoryapi.TypeStockReserved {
			err := s.Pay(ctx, meta, p)
			switch errs.CodeOf(err) {
			case errs.Conflict:
				return nil // declined: recorded, and published as PaymentFailed
			case errs.NotFound, errs.Unprocessable:
				// No such account or a wrong currency: nothing can record a
				// decline, so the order's watchdog will cancel it.
				return errors.Join(messaging.ErrPermanent, err)
			}
			return err
		}
		return s.Unpay(ctx, meta, p)
	}, nil
}
