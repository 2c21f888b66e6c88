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
