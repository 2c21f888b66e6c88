package shippingapi

import (
	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/platform/call"
)

// Address is where a shipment goes.
type Address struct {
	Street  string `json:"street"`
	City    string `json:"city"`
	State   string `json:"state"`
	ZipCode string `json:"zip_code"`
	Country string `json:"country"`
}

// ShipmentRequest asks to arrange (to Address) or cancel an order's
// shipment.
type ShipmentRequest struct {
	Meta    eventstore.Metadata `json:"meta"`
	OrderID string              `json:"order_id"`
	Address *Address            `json:"address,omitempty"`
}

// Reasons Arrange refuses with.
const (
	ReasonShippingFailed    = "shipping_failed"
	ReasonShipmentCancelled = "shipment_cancelled"
)

// The calls shipping answers, idempotent per order.
var (
	// Arrange books the order's shipment with the carrier: refused with
	// reason "shipping_failed" (the carrier refused) or
	// "shipment_cancelled".
	Arrange = call.Command[ShipmentRequest, call.None]("cmd.shipping.arrange", "shipping")
	// Cancel calls the order's shipment off.
	Cancel = call.Command[ShipmentRequest, call.None]("cmd.shipping.cancel", "shipping")
)
