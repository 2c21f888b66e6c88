// Package money is Agora's shared-kernel Money value object: an int64
// count of minor units (cents for USD, yen for JPY) and an ISO 4217
// currency. There are no floats anywhere: arithmetic is checked integer
// arithmetic, and mixing currencies is an error.
//
// JSON is {"amount": 1999, "currency": "USD"}, decoded strictly: no
// unknown fields, an integer amount (not 1.5, "10" or 1e3) that fits in
// int64, and a known currency code.
package money

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"golang.org/x/text/currency"
)

// Errors returned by this package; check them with errors.Is.
var (
	// ErrCurrencyMismatch reports arithmetic or comparison across currencies.
	ErrCurrencyMismatch = errors.New("money: currency mismatch")
	// ErrOverflow reports a result that does not fit in int64 minor units.
	ErrOverflow = errors.New("money: overflow")
	// ErrInvalidCurrency reports a code that is not a known ISO 4217 currency.
	ErrInvalidCurrency = errors.New("money: invalid currency")
	// ErrInvalidAmount reports an amount that is not an int64 integer.
	ErrInvalidAmount = errors.New("money: invalid amount")
)

// Currency is an ISO 4217 currency. The zero value is "no currency";
// build others with ParseCurrency.
type Currency struct{ code string }

// ParseCurrency returns the currency with the upper-case ISO 4217 code s.
func ParseCurrency(s string) (Currency, error) {
	if len(s) != 3 || strings.ToUpper(s) != s {
		return Currency{}, fmt.Errorf("%w: %q is not an upper-case 3-letter ISO 4217 code", ErrInvalidCurrency, s)
	}
	u, err := currency.ParseISO(s)
	if err != nil || u.String() != s {
		return Currency{}, fmt.Errorf("%w: %q is not a known ISO 4217 currency", ErrInvalidCurrency, s)
	}
	return Currency{code: s}, nil
}

// MustCurrency is ParseCurrency for constants; it panics on a bad code.
func MustCurrency(s string) Currency {
	c, err := ParseCurrency(s)
	if err != nil {
		panic(err)
	}
	return c
}

// Code returns the ISO 4217 code, or "" for the zero Currency.
func (c Currency) Code() string { return c.code }

// String returns the code.
func (c Currency) String() string { return c.code }

// IsZero reports whether c is the zero Currency.
func (c Currency) IsZero() bool { return c.code == "" }

// Scale returns the number of minor-unit digits (2 for USD, 0 for JPY,
// 3 for BHD), from the ISO 4217 data of golang.org/x/text/currency.
func (c Currency) Scale() int {
	if c.code == "" {
		return 0
	}
	u, err := currency.ParseISO(c.code)
	if err != nil {
		return 0
	}
	scale, _ := currency.Standard.Rounding(u)
	return scale
}

// MarshalText implements encoding.TextMarshaler.
func (c Currency) MarshalText() ([]byte, error) { return []byte(c.code), nil }

// UnmarshalText implements encoding.TextUnmarshaler, validating the code.
func (c *Currency) UnmarshalText(b []byte) error {
	v, err := ParseCurrency(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Money is an amount of minor units of a currency.
type Money struct {
	// Amount is the count of minor units (may be negative).
	Amount int64
	// Currency is the amount's currency.
	Currency Currency
}

// New returns amount minor units of c.
func New(amount int64, c Currency) Money { return Money{Amount: amount, Currency: c} }

// Parse returns amount minor units of the currency with code.
func Parse(amount int64, code string) (Money, error) {
	c, err := ParseCurrency(code)
	if err != nil {
		return Money{}, err
	}
	return New(amount, c), nil
}

func (m Money) same(o Money) error {
	if m.Currency != o.Currency {
		return fmt.Errorf("%w: %s and %s", ErrCurrencyMismatch, m.Currency, o.Currency)
	}
	return nil
}

// Add returns m+o; the currencies must match and the sum must fit.
func (m Money) Add(o Money) (Money, error) {
	if err := m.same(o); err != nil {
		return Money{}, err
	}
	s := m.Amount + o.Amount
	if (o.Amount > 0 && s < m.Amount) || (o.Amount < 0 && s > m.Amount) {
		return Money{}, fmt.Errorf("%w: %d + %d", ErrOverflow, m.Amount, o.Amount)
	}
	return New(s, m.Currency), nil
}

// Sub returns m-o; the currencies must match and the difference must fit.
func (m Money) Sub(o Money) (Money, error) {
	if err := m.same(o); err != nil {
		return Money{}, err
	}
	d := m.Amount - o.Amount
	if (o.Amount < 0 && d < m.Amount) || (o.Amount > 0 && d > m.Amount) {
		return Money{}, fmt.Errorf("%w: %d - %d", ErrOverflow, m.Amount, o.Amount)
	}
	return New(d, m.Currency), nil
}

// Neg returns -m (the most negative amount has no negation).
func (m Money) Neg() (Money, error) {
	if m.Amount == math.MinInt64 {
		return Money{}, fmt.Errorf("%w: -(%d)", ErrOverflow, m.Amount)
	}
	return New(-m.Amount, m.Currency), nil
}

// MulInt returns m*n, checking overflow.
func (m Money) MulInt(n int64) (Money, error) {
	if m.Amount == 0 || n == 0 {
		return New(0, m.Currency), nil
	}
	p := m.Amount * n
	if p/n != m.Amount || (m.Amount == -1 && n == math.MinInt64) || (n == -1 && m.Amount == math.MinInt64) {
		return Money{}, fmt.Errorf("%w: %d * %d", ErrOverflow, m.Amount, n)
	}
	return New(p, m.Currency), nil
}

// Cmp compares m and o (-1, 0, +1); the currencies must match.
func (m Money) Cmp(o Money) (int, error) {
	if err := m.same(o); err != nil {
		return 0, err
	}
	switch {
	case m.Amount < o.Amount:
		return -1, nil
	case m.Amount > o.Amount:
		return 1, nil
	}
	return 0, nil
}

// IsZero reports whether the amount is zero.
func (m Money) IsZero() bool { return m.Amount == 0 }

// IsPositive reports whether the amount is above zero.
func (m Money) IsPositive() bool { return m.Amount > 0 }

// IsNegative reports whether the amount is below zero.
func (m Money) IsNegative() bool { return m.Amount < 0 }

// String formats m with its currency's scale, e.g. "19.99 USD", "-0.05 USD", "100 JPY".
func (m Money) String() string {
	scale := m.Currency.Scale()
	neg := m.Amount < 0
	// Work in uint64 so that MinInt64 has a magnitude.
	mag := uint64(m.Amount)
	if neg {
		mag = -mag
	}
	digits := strconv.FormatUint(mag, 10)
	if scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if neg {
		digits = "-" + digits
	}
	if m.Currency.IsZero() {
		return digits
	}
	return digits + " " + m.Currency.code
}

type jsonMoney struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// MarshalJSON implements json.Marshaler: {"amount": 1999, "currency": "USD"}.
func (m Money) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonMoney{Amount: m.Amount, Currency: m.Currency.code})
}

// UnmarshalJSON implements json.Unmarshaler, strictly: exactly the fields
// amount (an integer that fits in int64) and currency (a known code).
func (m *Money) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || raw == nil {
		return fmt.Errorf("%w: money must be an object {\"amount\": <integer minor units>, \"currency\": \"<ISO 4217>\"}", ErrInvalidAmount)
	}
	for k := range raw {
		if k != "amount" && k != "currency" {
			return fmt.Errorf("%w: unknown field %q in money", ErrInvalidAmount, k)
		}
	}
	a, ok := raw["amount"]
	if !ok {
		return fmt.Errorf("%w: money needs an amount", ErrInvalidAmount)
	}
	a = bytes.TrimSpace(a)
	amount, err := strconv.ParseInt(string(a), 10, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return fmt.Errorf("%w: amount %s does not fit in 64-bit minor units", ErrOverflow, a)
		}
		return fmt.Errorf("%w: amount must be an integer count of minor units, not %s", ErrInvalidAmount, a)
	}
	c, ok := raw["currency"]
	if !ok {
		return fmt.Errorf("%w: money needs a currency", ErrInvalidCurrency)
	}
	var code string
	if err := json.Unmarshal(c, &code); err != nil {
		return fmt.Errorf("%w: currency must be a string", ErrInvalidCurrency)
	}
	cur, err := ParseCurrency(code)
	if err != nil {
		return err
	}
	*m = New(amount, cur)
	return nil
}

// Percent returns basisPoints/10000 of m (10% is 1000), rounded half to
// even at the minor unit, so that rounding errors do not drift one way
// over many amounts. It never overflows: the result's magnitude is at
// most m's when basisPoints is at most 10000.
func (m Money) Percent(basisPoints int64) (Money, error) {
	if basisPoints < 0 || basisPoints > 10000 {
		return Money{}, fmt.Errorf("money: percentage %d bp is outside 0..10000", basisPoints)
	}
	p := new(big.Int).Mul(big.NewInt(m.Amount), big.NewInt(basisPoints))
	q, r := new(big.Int).QuoRem(p, big.NewInt(10000), new(big.Int))
	// Round half to even: compare twice the remainder with the divisor.
	twice := new(big.Int).Abs(r)
	twice.Lsh(twice, 1)
	switch c := twice.Cmp(big.NewInt(10000)); {
	case c > 0, c == 0 && q.Bit(0) == 1:
		if p.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return New(q.Int64(), m.Currency), nil
}
