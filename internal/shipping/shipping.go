// Package shipping is the shipping bounded context's domain: one Shipment
// per order, arranged with a carrier or failed, and cancellable. It is
// plain Go; the carrier is reached through an anti-corruption layer in
// shipping/app, with its own model in shipping/carrier.
//
// A cancel that arrives before the shipment is arranged leaves a
// tombstone, so a late arrangement for that order is refused.
package shipping

import (
	"time"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/shipping/shippingapi"
)

// Status is where a shipment stands.
type Status string

// Statuses.
const (
	StatusNone      Status = ""
	StatusArranged  Status = "Arranged"
	StatusFailed    Status = "Failed"
	StatusCancelled Status = "Cancelled"
)

// Address is where a shipment goes.
type Address struct {
	Street  string `json:"street"`
	City    string `json:"city"`
	State   string `json:"state"`
	ZipCode string `json:"zip_code"`
	Country string `json:"country"`
}

// Shipment is the state of one order's shipment.
type Shipment struct {
	OrderID  string `json:"order_id"`
	Status   Status `json:"status"`
	Carrier  string `json:"carrier,omitempty"`
	Tracking string `json:"tracking,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Errors.
var (
	// ErrShippingFailed reports a shipment the carrier refused.
	ErrShippingFailed = errs.Rule(shippingapi.ReasonShippingFailed, "the carrier refused the shipment")
	// ErrCancelled reports arranging a cancelled shipment.
	ErrCancelled = errs.Rule(shippingapi.ReasonShipmentCancelled, "the shipment was cancelled")
	// ErrNotFound reports an order with no shipment.
	ErrNotFound = &errs.Error{Code: errs.NotFound, Reason: "shipment_not_found", Message: "no shipment for this order"}
)

// Event is a shipping domain event.
type Event interface {
	// EventType is the stored type name.
	EventType() string
}

// ShipmentArranged: a carrier will deliver the order.
type ShipmentArranged struct {
	OrderID  string    `json:"order_id"`
	Carrier  string    `json:"carrier"`
	Tracking string    `json:"tracking"`
	At       time.Time `json:"at"`
}

// ShipmentFailed: the carrier refused the order's shipment.
type ShipmentFailed struct {
	OrderID string    `json:"order_id"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
}

// ShipmentCancelled: the shipment is called off (or will be refused).
type ShipmentCancelled struct {
	OrderID string    `json:"order_id"`
	At      time.Time `json:"at"`
}

// EventType implements Event.
func (ShipmentArranged) EventType() string { return "shipping.ShipmentArranged" }

// EventType implements Event.
func (ShipmentFailed) EventType() string { return "shipping.ShipmentFailed" }

// EventType implements Event.
func (ShipmentCancelled) EventType() string { return "shipping.ShipmentCancelled" }

// Evolve returns the shipment after e.
func Evolve(s Shipment, e Event) Shipment {
	switch e := e.(type) {
	case ShipmentArranged:
		s.OrderID, s.Status, s.Carrier, s.Tracking = e.OrderID, StatusArranged, e.Carrier, e.Tracking
	case ShipmentFailed:
		s.OrderID, s.Status, s.Reason = e.OrderID, StatusFailed, e.Reason
	case ShipmentCancelled:
		s.OrderID, s.Status = e.OrderID, StatusCancelled
	}
	return s
}

// Arranged decides recording a carrier's booking (a cancelled shipment
// refuses it; an arranged one ignores it).
func (s Shipment) Arranged(order, carrier, tracking string, now time.Time) ([]Event, error) {
	switch s.Status {
	case StatusArranged:
		return nil, nil
	case StatusCancelled:
		return nil, ErrCancelled
	case StatusFailed:
		return nil, ErrShippingFailed
	}
	return []Event{ShipmentArranged{OrderID: order, Carrier: carrier, Tracking: tracking, At: now.UTC()}}, nil
}

// Failed decides recording the carrier's refusal.
func (s Shipment) Failed(order, reason string, now time.Time) ([]Event, error) {
	if s.Status != StatusNone {
		return nil, nil
	}
	return []Event{ShipmentFailed{OrderID: order, Reason: reason, At: now.UTC()}}, nil
}

// Cancel decides calling the shipment off (idempotent; a tombstone if
// nothing was arranged yet).
func (s Shipment) Cancel(order string, now time.Time) ([]Event, error) {
	if s.Status == StatusCancelled || s.Status == StatusFailed {
		return nil, nil
	}
	return []Event{ShipmentCancelled{OrderID: order, At: now.UTC()}}, nil
}
