package orderingapi

import "github.com/agora-commerce/agora/internal/platform/call"

// OrderRequest names an order.
type OrderRequest struct {
	OrderID string `json:"order_id"`
}

// OrderOwner, answered by ordering, says whose an order is: its tenant
// and customer (404 if there is no such order).
var OrderOwner = call.Query[OrderRequest, call.Owner]("query.ordering.order-owner", "ordering")
