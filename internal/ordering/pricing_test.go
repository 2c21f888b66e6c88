package ordering_test

import (
	"errors"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/money"
)

var usd = money.MustCurrency("USD")

func TestPrice(t *testing.T) {
	line := func(q, p int64) ordering.PricedLine {
		return ordering.PricedLine{Quantity: q, UnitPrice: money.New(p, usd)}
	}
	pct := func(bp int64) ordering.Promotion {
		return ordering.Promotion{Code: "P", Kind: ordering.Percentage, BasisPoints: bp}
	}
	fixed := func(a int64) ordering.Promotion {
		return ordering.Promotion{Code: "F", Kind: ordering.FixedAmount, Amount: money.New(a, usd)}
	}
	cases := []struct {
		name             string
		lines            []ordering.PricedLine
		premium          bool
		promos           []ordering.Promotion
		sub, disc, total int64
	}{
		{"plain", []ordering.PricedLine{line(2, 1250), line(1, 99)}, false, nil, 2599, 0, 2599},
		{"premium 10%", []ordering.PricedLine{line(1, 1000)}, true, nil, 1000, 100, 900},
		// 10% of 25 is 2.5 → 2 (half to even); of 35 is 3.5 → 4.
		{"half even down", []ordering.PricedLine{line(1, 25)}, true, nil, 25, 2, 23},
		{"half even up", []ordering.PricedLine{line(1, 35)}, true, nil, 35, 4, 31},
		{"below half", []ordering.PricedLine{line(1, 24)}, true, nil, 24, 2, 22},
		{"above half", []ordering.PricedLine{line(1, 26)}, true, nil, 26, 3, 23},
		// Premium first, then the promotion on the running total: 1000 → 900 → 810.
		{"premium then percentage", []ordering.PricedLine{line(1, 1000)}, true, []ordering.Promotion{pct(1000)}, 1000, 190, 810},
		{"fixed amount", []ordering.PricedLine{line(3, 700)}, false, []ordering.Promotion{fixed(500)}, 2100, 500, 1600},
		{"fixed capped at zero", []ordering.PricedLine{line(1, 300)}, false, []ordering.Promotion{fixed(500)}, 300, 300, 0},
		{"12.5% half even", []ordering.PricedLine{line(1, 100)}, false, []ordering.Promotion{pct(1250)}, 100, 12, 88},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, err := ordering.Price(c.lines, c.premium, c.promos)
			if err != nil {
				t.Fatal(err)
			}
			if q.Subtotal.Amount != c.sub || q.Discount.Amount != c.disc || q.Total.Amount != c.total {
				t.Fatalf("quote %+v, want %d − %d = %d", q, c.sub, c.disc, c.total)
			}
			if q.Subtotal.Amount-q.Discount.Amount != q.Total.Amount {
				t.Fatal("subtotal − discount ≠ total")
			}
		})
	}
}

func TestPriceRejects(t *testing.T) {
	eur := money.MustCurrency("EUR")
	if _, err := ordering.Price(nil, false, nil); !errors.Is(err, ordering.ErrEmpty) {
		t.Fatalf("empty: %v", err)
	}
	mixed := []ordering.PricedLine{{Quantity: 1, UnitPrice: money.New(1, usd)}, {Quantity: 1, UnitPrice: money.New(1, eur)}}
	if _, err := ordering.Price(mixed, false, nil); !errors.Is(err, ordering.ErrMixedCurrencies) {
		t.Fatalf("mixed: %v", err)
	}
	huge := []ordering.PricedLine{{Quantity: 1 << 40, UnitPrice: money.New(1<<40, usd)}}
	if _, err := ordering.Price(huge, false, nil); !errors.Is(err, ordering.ErrTooExpensive) {
		t.Fatalf("overflow: %v", err)
	}
	eurOff := []ordering.Promotion{{Code: "E", Kind: ordering.FixedAmount, Amount: money.New(1, eur)}}
	if _, err := ordering.Price([]ordering.PricedLine{{Quantity: 1, UnitPrice: money.New(5, usd)}}, false, eurOff); !errors.Is(err, ordering.ErrMixedCurrencies) {
		t.Fatalf("promotion currency: %v", err)
	}
}

func TestOrderRules(t *testing.T) {
	addr := ordering.Address{Street: "1 Main", City: "X", ZipCode: "1", Country: "US"}
	n := ordering.NewOrder{ID: "o1", Items: []ordering.Item{{ProductID: "p", Quantity: 1, UnitPrice: money.New(100, usd)}},
		ShippingAddress: addr, PaymentAccountID: "a"}
	var o ordering.Order
	evs, err := o.Place(n, t0())
	if err != nil {
		t.Fatal(err)
	}
	o = ordering.Evolve(o, evs[0])
	if _, err := o.Place(n, t0()); !errors.Is(err, ordering.ErrAlreadyPlaced) {
		t.Fatalf("placed twice: %v", err)
	}
	bad := n
	bad.ShippingAddress = ordering.Address{}
	if _, err := (ordering.Order{}).Place(bad, t0()); err == nil {
		t.Fatal("no address accepted")
	}
	bad = n
	bad.Items = []ordering.Item{{ProductID: "p", Quantity: 0, UnitPrice: money.New(1, usd)}}
	if _, err := (ordering.Order{}).Place(bad, t0()); err == nil {
		t.Fatal("zero quantity accepted")
	}
	evs, _ = o.RequestCancel(t0())
	o = ordering.Evolve(o, evs[0])
	if _, err := o.Confirm(t0()); !errors.Is(err, ordering.ErrCancelled) {
		t.Fatalf("confirm after cancel request: %v", err)
	}
	evs, _ = o.Cancel(ordering.ReasonCancelledByCustomer, t0())
	o = ordering.Evolve(o, evs[0])
	if o.Status != ordering.StatusCancelled || o.Reason != ordering.ReasonCancelledByCustomer {
		t.Fatalf("order %+v", o)
	}
	if evs, err := o.Cancel("timeout", t0()); err != nil || len(evs) != 0 {
		t.Fatalf("cancel twice: %v %v", evs, err)
	}
}

func t0() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
