package app_test

import (
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/shipping"
	"github.com/agora-commerce/agora/internal/shipping/app"
	"github.com/agora-commerce/agora/internal/testenv"
)

// FuzzShipmentEvents decodes arbitrary stored data as each shipment event
// (testenv.FuzzEvents: no panic, folds, round-trips).
func FuzzShipmentEvents(f *testing.F) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	testenv.FuzzEvents(f, app.ShipmentType(),
		[]string{"shipping.ShipmentArranged", "shipping.ShipmentFailed", "shipping.ShipmentCancelled"},
		[]shipping.Event{shipping.ShipmentArranged{OrderID: "o-1", Carrier: "sim", Tracking: "SIM-1", At: at},
			shipping.ShipmentCancelled{OrderID: "o-1", At: at},
			shipping.ShipmentFailed{OrderID: "o-2", Reason: "address_unreachable", At: at}}...)
}
