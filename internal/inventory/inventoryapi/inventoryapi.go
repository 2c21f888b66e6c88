// Package inventoryapi is the inventory context's published language: the
// integration events it publishes, version 1. Other contexts import this
// package, never the inventory domain.
//
// Every event is JSON on subject "inventory.<...>" with the Agora-Type
// header set to its Type.
package inventoryapi

// Subjects and types of the inventory's integration events.
const (
	SubjectStockReserved  = "inventory.stock.reserved"
	SubjectStockRejected  = "inventory.stock.rejected"
	SubjectStockReleased  = "inventory.stock.released"
	SubjectStockCommitted = "inventory.stock.committed"
	SubjectStockRestocked = "inventory.stock.restocked"

	TypeStockReserved  = "inventory.StockReserved.v1"
	TypeStockRejected  = "inventory.StockReservationFailed.v1"
	TypeStockReleased  = "inventory.StockReleased.v1"
	TypeStockCommitted = "inventory.StockCommitted.v1"
	TypeStockRestocked = "inventory.StockRestocked.v1"
)

// OrderStock is the body of StockReserved, StockReleased and
// StockCommitted: every line of the order is held, given back, or shipped.
type OrderStock struct {
	// OrderID is the order.
	OrderID string `json:"order_id"`
}

// StockReservationFailed says an order could not be held; nothing is.
type StockReservationFailed struct {
	// OrderID is the order.
	OrderID string `json:"order_id"`
	// Reason is "out_of_stock" or "reservation_closed".
	Reason string `json:"reason"`
}

// StockRestocked says units of a product arrived.
type StockRestocked struct {
	// ProductID is the product.
	ProductID string `json:"product_id"`
	// Quantity is how many units arrived.
	Quantity int64 `json:"quantity"`
}

// LevelsPath is inventory's internal route for the gateway's order check
// (not in the gateway's route table): GET with ?product_id=a&product_id=b
// (at most MaxLevels) answers Levels, every product's stock as the
// instance last saw it, from memory — advice, which may lag other
// instances' writes.
const LevelsPath = "/internal/v1/inventory/levels"

// MaxLevels caps the products of one levels request.
const MaxLevels = 100

// Level is one product's stock.
type Level struct {
	ProductID string `json:"product_id"`
	OnHand    int64  `json:"on_hand"`
	Reserved  int64  `json:"reserved"`
	Available int64  `json:"available"`
}

// Levels is the answer of LevelsPath, in the order asked.
type Levels struct {
	Items []Level `json:"items"`
}
