// Package shippingapi is the shipping context's published language: the
// integration events it publishes, version 1.
package shippingapi

// Subjects and types of the shipping's integration events.
const (
	SubjectShipmentArranged  = "shipping.shipment.arranged"
	SubjectShipmentFailed    = "shipping.shipment.failed"
	SubjectShipmentCancelled = "shipping.shipment.cancelled"

	TypeShipmentArranged  = "shipping.ShipmentArranged.v1"
	TypeShipmentFailed    = "shipping.ShipmentFailed.v1"
	TypeShipmentCancelled = "shipping.ShipmentCancelled.v1"
)

// ShipmentArranged says a carrier will deliver the order.
type ShipmentArranged struct {
	OrderID  string `json:"order_id"`
	Carrier  string `json:"carrier"`
	Tracking string `json:"tracking"`
}

// ShipmentFailed says the carrier refused the order's shipment.
type ShipmentFailed struct {
	OrderID string `json:"order_id"`
	// Reason is "shipping_failed".
	Reason string `json:"reason"`
}

// ShipmentCancelled says the order's shipment is called off.
type ShipmentCancelled struct {
	OrderID string `json:"order_id"`
}
