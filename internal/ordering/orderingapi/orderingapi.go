// Package orderingapi is the ordering context's published language: the
// integration events it publishes, version 1.
package orderingapi

import (
	"errors"

	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/money"
)

// Subjects and types of the ordering's integration events.
const (
	SubjectOrderPlaced    = "ordering.order.placed"
	SubjectOrderConfirmed = "ordering.order.confirmed"
	SubjectOrderCancelled = "ordering.order.cancelled"

	TypeOrderPlaced    = "ordering.OrderPlaced.v1"
	TypeOrderConfirmed = "ordering.OrderConfirmed.v1"
	TypeOrderCancelled = "ordering.OrderCancelled.v1"
)

// Line is a product and quantity of an order.
type Line struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

// Address is where an order ships.
type Address struct {
	Street  string `json:"street"`
	City    string `json:"city"`
	State   string `json:"state"`
	ZipCode string `json:"zip_code"`
	Country string `json:"country"`
}

// OrderPlaced says a customer placed an order: everything the other
// contexts need to do their part of the checkout.
type OrderPlaced struct {
	OrderID           string      `json:"order_id"`
	CustomerID        string      `json:"customer_id"`
	Lines             []Line      `json:"lines"`
	Total             money.Money `json:"total"`
	ShippingAddress   Address     `json:"shipping_address"`
	PaymentAccountID  string      `json:"payment_account_id"`
	MerchantAccountID string      `json:"merchant_account_id"`
}

// OrderConfirmed says an order completed its checkout.
type OrderConfirmed struct {
	OrderID string `json:"order_id"`
}

// OrderCancelled says an order will not ship; whatever was done for it is
// to be undone.
type OrderCancelled struct {
	OrderID string `json:"order_id"`
	// Reason is out_of_stock, insufficient_funds, shipping_failed,
	// cancelled_by_customer, timeout or payment_failed.
	Reason string `json:"reason"`
}

// Ref is what every checkout event of every context carries: the order
// it is about and, for refusals and cancellations, why.
type Ref struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason,omitempty"`
}

// RefOf reads m's Ref; a message without an order_id is a permanent
// failure (wrapping messaging.ErrPermanent): no redelivery can fix it.
func RefOf(m messaging.Message) (Ref, error) {
	r, err := messaging.Decode[Ref](m)
	if err != nil || r.OrderID == "" {
		return Ref{}, errors.Join(messaging.ErrPermanent, errors.New("message has no order_id"), err)
	}
	return r, nil
}
