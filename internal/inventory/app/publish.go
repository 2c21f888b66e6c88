package app

import (
	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/inventory"
	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/messaging"
)

// Publish maps an inventory record to its integration event (ok false for
// records of other contexts and internal events).
func Publish(r eventstore.Record) (messaging.Message, bool, error) {
	if !codec.Knows(r.Type) {
		return messaging.Message{}, false, nil
	}
	e, err := codec.Decode(r)
	if err != nil {
		return messaging.Message{}, false, err
	}
	var m messaging.Message
	switch e := e.(type) {
	case inventory.OrderStockReserved:
		m, err = messaging.NewMessage(inventoryapi.SubjectStockReserved, inventoryapi.TypeStockReserved, inventoryapi.OrderStock{OrderID: e.OrderID})
	case inventory.OrderStockRejected:
		m, err = messaging.NewMessage(inventoryapi.SubjectStockRejected, inventoryapi.TypeStockRejected, inventoryapi.StockReservationFailed{OrderID: e.OrderID, Reason: e.Reason})
	case inventory.OrderStockReleased:
		m, err = messaging.NewMessage(inventoryapi.SubjectStockReleased, inventoryapi.TypeStockReleased, inventoryapi.OrderStock{OrderID: e.OrderID})
	case inventory.OrderStockCommitted:
		m, err = messaging.NewMessage(inventoryapi.SubjectStockCommitted, inventoryapi.TypeStockCommitted, inventoryapi.OrderStock{OrderID: e.OrderID})
	case inventory.StockRestocked:
		m, err = messaging.NewMessage(inventoryapi.SubjectStockRestocked, inventoryapi.TypeStockRestocked, inventoryapi.StockRestocked{ProductID: e.ProductID, Quantity: e.Quantity})
	default:
		return messaging.Message{}, false, nil
	}
	return m, err == nil, err
}
