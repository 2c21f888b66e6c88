package inventoryapi

import (
	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/platform/call"
)

// Line is a product and a quantity of it.
type Line struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

// StockRequest asks to hold, give back or ship an order's stock. Meta is
// the metadata of what asks (the checkout's).
type StockRequest struct {
	Meta    eventstore.Metadata `json:"meta"`
	OrderID string              `json:"order_id"`
	Lines   []Line              `json:"lines,omitempty"`
}

// Reasons Reserve refuses with.
const (
	ReasonOutOfStock        = "out_of_stock"
	ReasonReservationClosed = "reservation_closed"
)

// The calls inventory answers. Each is idempotent per order.
var (
	// Reserve holds every line of an order, or none: refused with
	// reason "out_of_stock", or "reservation_closed" once the order's
	// reservation was released.
	Reserve = call.Command[StockRequest, call.None]("cmd.inventory.reserve", "inventory")
	// Release gives an order's held stock back.
	Release = call.Command[StockRequest, call.None]("cmd.inventory.release", "inventory")
	// Commit ships an order's held stock.
	Commit = call.Command[StockRequest, call.None]("cmd.inventory.commit", "inventory")
)
