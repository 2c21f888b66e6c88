package app_test

import (
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/internal/ordering/app"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/money"
)

// FuzzOrderEvents decodes arbitrary stored data as each order event
// (testenv.FuzzEvents: no panic, folds, round-trips).
func FuzzOrderEvents(f *testing.F) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	usd := func(n int64) money.Money { return money.New(n, money.MustCurrency("USD")) }
	o := ordering.Order{ID: "o-1", CustomerID: "c-1", Tenant: "demo",
		Items:    []ordering.Item{{ProductID: "p1", Quantity: 2, UnitPrice: usd(1000)}},
		Subtotal: usd(2000), Discount: usd(200), Total: usd(1800),
		ShippingAddress:  ordering.Address{Street: "1 Main St", City: "Springfield", State: "CA", ZipCode: "94000", Country: "US"},
		PaymentAccountID: "acct-c-1", MerchantAccountID: "merchant", Status: ordering.StatusPending, CreatedAt: at, UpdatedAt: at}
	testenv.FuzzEvents(f, app.OrderType(),
		[]string{"ordering.OrderPlaced", "ordering.OrderCancellationRequested", "ordering.OrderConfirmed", "ordering.OrderCancelled"},
		[]ordering.Event{ordering.OrderPlaced{Order: o}, ordering.OrderCancellationRequested{At: at},
			ordering.OrderConfirmed{At: at}, ordering.OrderCancelled{Reason: "payment_declined", At: at}}...)
}
