package ordering

import (
	"fmt"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/money"
)

// PremiumDiscountBP is premium customers' discount in basis points (10%).
const PremiumDiscountBP = 1000

// PromotionKind is how a promotion discounts.
type PromotionKind string

// Promotion kinds.
const (
	// Percentage takes BasisPoints/10000 of the running total.
	Percentage PromotionKind = "percentage"
	// FixedAmount takes Amount off the running total.
	FixedAmount PromotionKind = "fixed_amount"
)

// Promotion is a discount offered by code.
type Promotion struct {
	// Code is what a customer enters, e.g. "WELCOME10".
	Code string `json:"code"`
	// Kind is Percentage or FixedAmount.
	Kind PromotionKind `json:"kind"`
	// BasisPoints is a Percentage promotion's rate (1000 = 10%).
	BasisPoints int64 `json:"basis_points,omitempty"`
	// Amount is a FixedAmount promotion's discount.
	Amount money.Money `json:"amount,omitzero"`
}

// PricedLine is a quantity at a unit price.
type PricedLine struct {
	Quantity  int64
	UnitPrice money.Money
}

// Quote is what an order costs.
type Quote struct {
	// Subtotal is the sum of quantity × unit price.
	Subtotal money.Money `json:"subtotal"`
	// Discount is what premium status and promotions took off.
	Discount money.Money `json:"discount"`
	// Total is Subtotal − Discount, never negative.
	Total money.Money `json:"total"`
}

// ErrMixedCurrencies reports lines priced in different currencies.
var ErrMixedCurrencies = &errs.Error{Code: errs.Unprocessable, Reason: "currency_mismatch", Message: "an order's items must share one currency"}

// Price is the PricingService. The subtotal is Σ quantity × unit price
// (overflow is an error). Then, on the running total and in this order: a
// premium customer gets PremiumDiscountBP off, and each promotion applies
// — a percentage of the running total, or a fixed amount (in the order's
// currency) capped at the running total. Every percentage is rounded half
// to even at the currency's minor unit, once per discount; the total never
// goes below zero.
func Price(lines []PricedLine, premium bool, promos []Promotion) (Quote, error) {
	if len(lines) == 0 {
		return Quote{}, ErrEmpty
	}
	cur := lines[0].UnitPrice.Currency
	sub := money.New(0, cur)
	for _, l := range lines {
		if l.UnitPrice.Currency != cur {
			return Quote{}, ErrMixedCurrencies
		}
		m, err := l.UnitPrice.MulInt(l.Quantity)
		if err != nil {
			return Quote{}, ErrTooExpensive
		}
		if sub, err = sub.Add(m); err != nil {
			return Quote{}, ErrTooExpensive
		}
	}
	total := sub
	take := func(d money.Money) {
		if d.Amount > total.Amount {
			d.Amount = total.Amount
		}
		total.Amount -= d.Amount
	}
	if premium {
		d, _ := total.Percent(PremiumDiscountBP)
		take(d)
	}
	for _, p := range promos {
		switch p.Kind {
		case Percentage:
			d, err := total.Percent(p.BasisPoints)
			if err != nil {
				return Quote{}, fmt.Errorf("ordering: promotion %s: %w", p.Code, err)
			}
			take(d)
		case FixedAmount:
			if p.Amount.Currency != cur {
				return Quote{}, ErrMixedCurrencies
			}
			if p.Amount.Amount < 0 {
				return Quote{}, fmt.Errorf("ordering: promotion %s: negative amount", p.Code)
			}
			take(p.Amount)
		default:
			return Quote{}, fmt.Errorf("ordering: promotion %s: unknown kind %q", p.Code, p.Kind)
		}
	}
	return Quote{Subtotal: sub, Discount: money.New(sub.Amount-total.Amount, cur), Total: total}, nil
}
