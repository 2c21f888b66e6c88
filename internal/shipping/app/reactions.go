package app

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/shipping"
	"github.com/agora-commerce/agora/messaging"
)

// ReactionSubjects are the integration events shipping reacts to in a
// choreographed checkout.
var ReactionSubjects = []string{orderingapi.SubjectOrderPlaced, orderingapi.SubjectOrderCancelled, paymentsapi.SubjectPaymentCaptured}

// Reactions is shipping's part of a choreographed checkout: it keeps each
// placed order's address in its own table (shipping_order_addresses,
// written with the inbox in one transaction), arranges the shipment once
// the payment is captured (published as ShipmentArranged or
// ShipmentFailed) and cancels it when the order is cancelled.
func (s *Service) Reactions(ctx context.Context, db *sql.DB) (messaging.Handler, error) {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS shipping_order_addresses (order_id TEXT PRIMARY KEY, address TEXT NOT NULL)`); err != nil {
		return nil, fmt.Errorf("shipping reactions: %w", err)
	}
	inbox, err := messaging.NewInbox(ctx, db, "shipping")
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, d messaging.Delivery) error {
		meta := messaging.MetadataOf(d)
		if d.Type == orderingapi.TypeOrderPlaced {
			p, err := messaging.Decode[orderingapi.OrderPlaced](d.Message)
			if err != nil {
				return errors.Join(messaging.ErrPermanent, err)
			}
			addr, _ := json.Marshal(shipping.Address(p.ShippingAddress))
			_, err = inbox.Handle(ctx, d.ID, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO shipping_order_addresses (order_id, address) VALUES ($1, $2)
					ON CONFLICT (order_id) DO NOTHING`, p.OrderID, string(addr))
				return err
			})
			return err
		}
		body, err := orderingapi.RefOf(d.Message)
		if err != nil {
			return err
		}
		if d.Type == orderingapi.TypeOrderCancelled {
			return s.Cancel(ctx, meta, body.OrderID)
		}
		var raw string
		err = db.QueryRowContext(ctx, `SELECT address FROM shipping_order_addresses WHERE order_id = $1`, body.OrderID).Scan(&raw)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("shipping: order %s not seen yet; retry later", body.OrderID)
		}
		if err != nil {
			return err
		}
		var addr shipping.Address
		if err := json.Unmarshal([]byte(raw), &addr); err != nil {
			return errors.Join(messaging.ErrPermanent, err)
		}
		err = s.Arrange(ctx, meta, body.OrderID, addr)
		if errors.Is(err, shipping.ErrShippingFailed) || errors.Is(err, shipping.ErrCancelled) {
			return nil // recorded (and published) or moot
		}
		return err
	}, nil
}
