package app

import (
	"context"
	"errors"

	"github.com/agora-commerce/agora/internal/inventory"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/shipping/shippingapi"
	"github.com/agora-commerce/agora/messaging"
)

// ReactionSubjects are the integration events inventory reacts to in a
// choreographed checkout.
var ReactionSubjects = []string{orderingapi.SubjectOrderPlaced, orderingapi.SubjectOrderCancelled, orderingapi.SubjectOrderConfirmed,
	paymentsapi.SubjectPaymentFailed, shippingapi.SubjectShipmentFailed}

// Reactions is inventory's part of a choreographed checkout: reserve on
// OrderPlaced (the outcome is published as StockReserved or
// StockReservationFailed), release when the order is cancelled or its
// payment or shipment failed, commit when it is confirmed. Every command
// is idempotent per order, so a redelivery changes nothing.
func (s *Service) Reactions() messaging.Handler {
	return func(ctx context.Context, d messaging.Delivery) error {
		meta := messaging.MetadataOf(d)
		ref, err := orderingapi.RefOf(d.Message)
		if err != nil {
			return err
		}
		order := ref.OrderID
		switch d.Type {
		case orderingapi.TypeOrderPlaced:
			p, err := messaging.Decode[orderingapi.OrderPlaced](d.Message)
			if err != nil {
				return errors.Join(messaging.ErrPermanent, err)
			}
			lines := make([]inventory.Line, len(p.Lines))
			for i, l := range p.Lines {
				lines[i] = inventory.Line{ProductID: l.ProductID, Quantity: l.Quantity}
			}
			err = s.Reserve(ctx, meta, order, lines)
			if errs.CodeOf(err) == errs.Conflict || errs.CodeOf(err) == errs.Unprocessable {
				return nil // a refusal: recorded and published as StockReservationFailed
			}
			return err
		case orderingapi.TypeOrderConfirmed:
			return s.Commit(ctx, meta, order)
		default: // cancelled, payment failed, shipment failed
			return s.Release(ctx, meta, order, nil) // the reservation knows its lines
		}
	}
}
