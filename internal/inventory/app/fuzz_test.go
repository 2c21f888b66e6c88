package app_test

import (
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/inventory"
	"github.com/agora-commerce/agora/internal/inventory/app"
	"github.com/agora-commerce/agora/internal/testenv"
)

var inventoryEventTypes = []string{
	"inventory.StockRestocked", "inventory.StockReserved", "inventory.StockReleased", "inventory.StockCommitted",
	"inventory.ReservationRequested", "inventory.OrderStockReserved", "inventory.OrderStockRejected",
	"inventory.OrderStockReleased", "inventory.OrderStockCommitted",
}

// FuzzStockEvents decodes arbitrary stored data as each inventory event
// and folds it into a product's stock (testenv.FuzzEvents).
func FuzzStockEvents(f *testing.F) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	testenv.FuzzEvents(f, app.StockType(), inventoryEventTypes,
		[]inventory.Event{inventory.StockRestocked{ProductID: "p1", Quantity: 10, At: at},
			inventory.StockReserved{ProductID: "p1", OrderID: "o-1", Quantity: 3, At: at},
			inventory.StockReserved{ProductID: "p1", OrderID: "o-2", Quantity: 2, At: at},
			inventory.StockReleased{ProductID: "p1", OrderID: "o-2", Quantity: 2, At: at},
			inventory.StockCommitted{ProductID: "p1", OrderID: "o-1", Quantity: 3, At: at}}...)
}

// FuzzReservationEvents decodes arbitrary stored data as each inventory
// event and folds it into an order's reservation (testenv.FuzzEvents).
func FuzzReservationEvents(f *testing.F) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	lines := []inventory.Line{{ProductID: "p1", Quantity: 2}, {ProductID: "p2", Quantity: 1}}
	testenv.FuzzEvents(f, app.ReservationType(), inventoryEventTypes,
		[]inventory.Event{inventory.ReservationRequested{OrderID: "o-1", Lines: lines, At: at},
			inventory.OrderStockReserved{OrderID: "o-1", Lines: lines, At: at},
			inventory.OrderStockReleased{OrderID: "o-1", Lines: lines, At: at},
			inventory.OrderStockRejected{OrderID: "o-1", Lines: lines, Reason: "out_of_stock", At: at},
			inventory.OrderStockCommitted{OrderID: "o-1", At: at}}...)
}
