// Package ordering is the ordering bounded context's domain: the seed's
// Order aggregate (items, Money, Address) and the PricingService (Price).
// It is plain Go.
//
// Rules: an order has at least one item; quantities are positive; a
// shipping address is required; all prices share one currency; nothing
// about an order changes once it is placed except its status. A Pending
// order ends Confirmed or Cancelled (with a reason). A customer may ask to
// cancel a Pending order; from then on it can no longer be confirmed.
package ordering

import (
	"strconv"
	"strings"
	"time"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/money"
)

// MaxQuantity bounds an order line.
const MaxQuantity = 1_000_000

// MaxItems bounds an order's lines.
const MaxItems = 100

// Status is an order's state.
type Status string

// Statuses.
const (
	StatusNone      Status = ""
	StatusPending   Status = "Pending"
	StatusConfirmed Status = "Confirmed"
	StatusCancelled Status = "Cancelled"
)

// Cancellation reasons.
const (
	ReasonOutOfStock          = "out_of_stock"
	ReasonInsufficientFunds   = "insufficient_funds"
	ReasonShippingFailed      = "shipping_failed"
	ReasonCancelledByCustomer = "cancelled_by_customer"
	ReasonTimeout             = "timeout"
	ReasonPaymentFailed       = "payment_failed"
)

// Item is one line of an order.
type Item struct {
	ProductID string      `json:"product_id"`
	Quantity  int64       `json:"quantity"`
	UnitPrice money.Money `json:"unit_price"`
}

// Address is where an order is shipped.
type Address struct {
	Street  string `json:"street"`
	City    string `json:"city"`
	State   string `json:"state"`
	ZipCode string `json:"zip_code"`
	Country string `json:"country"`
}

// Order is the state of an order aggregate.
type Order struct {
	ID                string      `json:"id"`
	CustomerID        string      `json:"customer_id"`
	Tenant            string      `json:"tenant,omitempty"`
	Items             []Item      `json:"items"`
	Subtotal          money.Money `json:"subtotal"`
	Discount          money.Money `json:"discount"`
	Total             money.Money `json:"total"`
	ShippingAddress   Address     `json:"shipping_address"`
	PaymentAccountID  string      `json:"payment_account_id"`
	MerchantAccountID string      `json:"merchant_account_id"`
	Status            Status      `json:"status"`
	Reason            string      `json:"reason,omitempty"`
	CancelRequested   bool        `json:"cancel_requested,omitempty"`
	CreatedAt         time.Time   `json:"created_at"`
	UpdatedAt         time.Time   `json:"updated_at"`
}

// Errors.
var (
	ErrEmpty            = &errs.Error{Code: errs.Unprocessable, Reason: "empty_order", Message: "an order needs at least one item", Fields: []errs.FieldError{{Field: "items", Message: "must not be empty"}}}
	ErrTooExpensive     = &errs.Error{Code: errs.Unprocessable, Reason: "amount_overflow", Message: "the order's total is out of range"}
	ErrAlreadyPlaced    = errs.Rule("order_exists", "the order was placed already")
	ErrNotFound         = &errs.Error{Code: errs.NotFound, Reason: "order_not_found", Message: "no such order"}
	ErrAlreadyConfirmed = errs.Rule("order_confirmed", "the order is confirmed and can no longer be cancelled")
	ErrCancelled        = errs.Rule("order_cancelled", "the order is cancelled")
)

// Event is an ordering domain event.
type Event interface {
	// EventType is the stored type name.
	EventType() string
}

// OrderPlaced records a new order, priced.
type OrderPlaced struct {
	Order Order `json:"order"`
}

// OrderCancellationRequested records the customer's wish to cancel.
type OrderCancellationRequested struct {
	At time.Time `json:"at"`
}

// OrderConfirmed records that stock, payment and shipment are done.
type OrderConfirmed struct {
	At time.Time `json:"at"`
}

// OrderCancelled records the end of an order that will not ship.
type OrderCancelled struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// EventType implements Event.
func (OrderPlaced) EventType() string { return "ordering.OrderPlaced" }

// EventType implements Event.
func (OrderCancellationRequested) EventType() string { return "ordering.OrderCancellationRequested" }

// EventType implements Event.
func (OrderConfirmed) EventType() string { return "ordering.OrderConfirmed" }

// EventType implements Event.
func (OrderCancelled) EventType() string { return "ordering.OrderCancelled" }

// Evolve returns the order after e.
func Evolve(o Order, e Event) Order {
	switch e := e.(type) {
	case OrderPlaced:
		o = e.Order
	case OrderCancellationRequested:
		o.CancelRequested, o.UpdatedAt = true, e.At
	case OrderConfirmed:
		o.Status, o.UpdatedAt = StatusConfirmed, e.At
	case OrderCancelled:
		o.Status, o.Reason, o.UpdatedAt = StatusCancelled, e.Reason, e.At
	}
	return o
}

// NewOrder is what placing an order needs; prices come from the catalog.
type NewOrder struct {
	ID                string
	CustomerID        string
	Tenant            string
	Items             []Item
	ShippingAddress   Address
	PaymentAccountID  string
	MerchantAccountID string
	Premium           bool
	Promotions        []Promotion
}

// Validate checks n's shape and lists every offending field.
func (n NewOrder) Validate() error {
	var bad []errs.FieldError
	if len(n.Items) == 0 {
		bad = append(bad, errs.FieldError{Field: "items", Message: "must not be empty"})
	}
	if len(n.Items) > MaxItems {
		bad = append(bad, errs.FieldError{Field: "items", Message: "has more than 100 lines"})
	}
	for i, it := range n.Items {
		if strings.TrimSpace(it.ProductID) == "" {
			bad = append(bad, errs.FieldError{Field: itemField(i, "product_id"), Message: "is required"})
		}
		if it.Quantity <= 0 || it.Quantity > MaxQuantity {
			bad = append(bad, errs.FieldError{Field: itemField(i, "quantity"), Message: "must be between 1 and 1000000"})
		}
	}
	a := n.ShippingAddress
	for _, f := range []struct{ name, v string }{{"street", a.Street}, {"city", a.City}, {"zip_code", a.ZipCode}, {"country", a.Country}} {
		if strings.TrimSpace(f.v) == "" {
			bad = append(bad, errs.FieldError{Field: "shipping_address." + f.name, Message: "is required"})
		} else if len(f.v) > 200 {
			bad = append(bad, errs.FieldError{Field: "shipping_address." + f.name, Message: "is longer than 200 characters"})
		}
	}
	if len(a.State) > 200 {
		bad = append(bad, errs.FieldError{Field: "shipping_address.state", Message: "is longer than 200 characters"})
	}
	if n.PaymentAccountID == "" {
		bad = append(bad, errs.FieldError{Field: "payment_account_id", Message: "is required"})
	}
	if len(bad) > 0 {
		return errs.Fields(bad...)
	}
	return nil
}

func itemField(i int, f string) string { return "items[" + strconv.Itoa(i) + "]." + f }

// Place decides placing n, priced by Price.
func (o Order) Place(n NewOrder, now time.Time) ([]Event, error) {
	if o.Status != StatusNone {
		return nil, ErrAlreadyPlaced
	}
	if err := n.Validate(); err != nil {
		return nil, err
	}
	lines := make([]PricedLine, len(n.Items))
	for i, it := range n.Items {
		lines[i] = PricedLine{Quantity: it.Quantity, UnitPrice: it.UnitPrice}
	}
	q, err := Price(lines, n.Premium, n.Promotions)
	if err != nil {
		return nil, err
	}
	now = now.UTC()
	return []Event{OrderPlaced{Order: Order{ID: n.ID, CustomerID: n.CustomerID, Tenant: n.Tenant, Items: n.Items, Subtotal: q.Subtotal,
		Discount: q.Discount, Total: q.Total, ShippingAddress: n.ShippingAddress, PaymentAccountID: n.PaymentAccountID,
		MerchantAccountID: n.MerchantAccountID, Status: StatusPending, CreatedAt: now, UpdatedAt: now}}}, nil
}

// RequestCancel decides the customer's cancellation of a Pending order.
func (o Order) RequestCancel(now time.Time) ([]Event, error) {
	switch {
	case o.Status == StatusNone:
		return nil, ErrNotFound
	case o.Status == StatusConfirmed:
		return nil, ErrAlreadyConfirmed
	case o.Status == StatusCancelled || o.CancelRequested:
		return nil, nil
	}
	return []Event{OrderCancellationRequested{At: now.UTC()}}, nil
}

// Confirm decides confirming a Pending order (not once cancellation was asked).
func (o Order) Confirm(now time.Time) ([]Event, error) {
	switch {
	case o.Status == StatusNone:
		return nil, ErrNotFound
	case o.Status == StatusConfirmed:
		return nil, nil
	case o.Status == StatusCancelled || o.CancelRequested:
		return nil, ErrCancelled
	}
	return []Event{OrderConfirmed{At: now.UTC()}}, nil
}

// Cancel decides cancelling a Pending order for reason.
func (o Order) Cancel(reason string, now time.Time) ([]Event, error) {
	switch o.Status {
	case StatusNone:
		return nil, ErrNotFound
	case StatusConfirmed:
		return nil, ErrAlreadyConfirmed
	case StatusCancelled:
		return nil, nil
	}
	return []Event{OrderCancelled{Reason: reason, At: now.UTC()}}, nil
}
