package app

import (
	"context"
	"errors"

	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/shipping/shippingapi"
	"github.com/agora-commerce/agora/messaging"
)

// ReactionSubjects are the integration events ordering reacts to in a
// choreographed checkout.
var ReactionSubjects = []string{inventoryapi.SubjectStockRejected, paymentsapi.SubjectPaymentFailed,
	shippingapi.SubjectShipmentFailed, shippingapi.SubjectShipmentArranged}

// Reactions is ordering's part of a choreographed checkout: an arranged
// shipment confirms the order; a refused reservation, payment or shipment
// cancels it with the matching reason (and OrderCancelled then drives the
// other contexts' compensations). An order that already ended ignores them.
func (s *Service) Reactions() messaging.Handler {
	return func(ctx context.Context, d messaging.Delivery) error {
		meta := messaging.MetadataOf(d)
		body, err := orderingapi.RefOf(d.Message)
		if err != nil {
			return err
		}
		var reason string
		switch d.Type {
		case shippingapi.TypeShipmentArranged:
			_, _, err := s.Confirm(ctx, meta, body.OrderID)
			if errors.Is(err, ordering.ErrCancelled) {
				return nil // cancelled meanwhile: OrderCancelled has the shipment cancelled
			}
			return err
		case inventoryapi.TypeStockRejected:
			reason = ordering.ReasonOutOfStock
			if body.Reason != ordering.ReasonOutOfStock {
				reason = ordering.ReasonCancelledByCustomer
			}
		case paymentsapi.TypePaymentFailed:
			reason = ordering.ReasonPaymentFailed
			switch body.Reason {
			case ordering.ReasonInsufficientFunds:
				reason = body.Reason
			case "cancelled":
				reason = ordering.ReasonCancelledByCustomer
			}
		case shippingapi.TypeShipmentFailed:
			reason = ordering.ReasonShippingFailed
		default:
			return nil
		}
		_, _, err = s.Cancel(ctx, meta, body.OrderID, reason)
		if errors.Is(err, ordering.ErrAlreadyConfirmed) {
			return nil
		}
		return err
	}
}
