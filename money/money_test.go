package money

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func TestParseCurrency(t *testing.T) {
	for code, scale := range map[string]int{"USD": 2, "EUR": 2, "JPY": 0, "BHD": 3} {
		c, err := ParseCurrency(code)
		if err != nil || c.Code() != code || c.Scale() != scale {
			t.Errorf("%s: %v scale %d, want %d", code, err, c.Scale(), scale)
		}
	}
	for _, bad := range []string{"", "usd", " USD", "US", "USDX", "ZZZ", "123"} {
		if _, err := ParseCurrency(bad); !errors.Is(err, ErrInvalidCurrency) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

func TestArithmetic(t *testing.T) {
	usd, eur := MustCurrency("USD"), MustCurrency("EUR")
	a, b := New(150, usd), New(50, usd)
	if s, err := a.Add(b); err != nil || s != New(200, usd) {
		t.Fatalf("add: %v %v", s, err)
	}
	if d, err := b.Sub(a); err != nil || d != New(-100, usd) {
		t.Fatalf("sub: %v %v", d, err)
	}
	if _, err := a.Add(New(1, eur)); !errors.Is(err, ErrCurrencyMismatch) {
		t.Fatalf("mixed add: %v", err)
	}
	if _, err := a.Cmp(New(1, eur)); !errors.Is(err, ErrCurrencyMismatch) {
		t.Fatalf("mixed cmp: %v", err)
	}
	if c, _ := a.Cmp(b); c != 1 {
		t.Fatalf("cmp = %d", c)
	}
	overflows := []func() (Money, error){
		func() (Money, error) { return New(math.MaxInt64, usd).Add(New(1, usd)) },
		func() (Money, error) { return New(math.MinInt64, usd).Add(New(-1, usd)) },
		func() (Money, error) { return New(math.MinInt64, usd).Sub(New(1, usd)) },
		func() (Money, error) { return New(math.MaxInt64, usd).Sub(New(-1, usd)) },
		func() (Money, error) { return New(math.MinInt64, usd).Neg() },
		func() (Money, error) { return New(math.MaxInt64/2+1, usd).MulInt(2) },
		func() (Money, error) { return New(math.MinInt64, usd).MulInt(-1) },
		func() (Money, error) { return New(-1, usd).MulInt(math.MinInt64) },
	}
	for i, f := range overflows {
		if m, err := f(); !errors.Is(err, ErrOverflow) {
			t.Errorf("case %d: %v, %v; want overflow", i, m, err)
		}
	}
	if m, err := New(math.MaxInt64-1, usd).Add(New(1, usd)); err != nil || m.Amount != math.MaxInt64 {
		t.Fatalf("edge add: %v %v", m, err)
	}
	if m, err := New(-7, usd).MulInt(3); err != nil || m.Amount != -21 {
		t.Fatalf("mul: %v %v", m, err)
	}
}

func TestString(t *testing.T) {
	cases := map[string]Money{
		"19.99 USD":                 New(1999, MustCurrency("USD")),
		"-0.05 USD":                 New(-5, MustCurrency("USD")),
		"0.00 USD":                  New(0, MustCurrency("USD")),
		"100 JPY":                   New(100, MustCurrency("JPY")),
		"1.234 BHD":                 New(1234, MustCurrency("BHD")),
		"-92233720368547758.08 USD": New(math.MinInt64, MustCurrency("USD")),
	}
	for want, m := range cases {
		if got := m.String(); got != want {
			t.Errorf("String = %q, want %q", got, want)
		}
	}
}

func TestJSON(t *testing.T) {
	m := New(1999, MustCurrency("USD"))
	b, err := json.Marshal(m)
	if err != nil || string(b) != `{"amount":1999,"currency":"USD"}` {
		t.Fatalf("marshal: %s %v", b, err)
	}
	var back Money
	if err := json.Unmarshal(b, &back); err != nil || back != m {
		t.Fatalf("round trip: %v %v", back, err)
	}
	bad := map[string]error{
		`{"amount":1.5,"currency":"USD"}`:                  ErrInvalidAmount,
		`{"amount":"10","currency":"USD"}`:                 ErrInvalidAmount,
		`{"amount":1e3,"currency":"USD"}`:                  ErrInvalidAmount,
		`{"amount":1.0,"currency":"USD"}`:                  ErrInvalidAmount,
		`{"amount":99999999999999999999,"currency":"USD"}`: ErrOverflow,
		`{"amount":10,"currency":"XYZ"}`:                   ErrInvalidCurrency,
		`{"amount":10,"currency":"usd"}`:                   ErrInvalidCurrency,
		`{"amount":10,"currency":7}`:                       ErrInvalidCurrency,
		`{"amount":10}`:                                    ErrInvalidCurrency,
		`{"currency":"USD"}`:                               ErrInvalidAmount,
		`{"amount":10,"currency":"USD","x":1}`:             ErrInvalidAmount,
		`null`:                                             ErrInvalidAmount,
		`[1]`:                                              ErrInvalidAmount,
		`{"amount":null,"currency":"USD"}`:                 ErrInvalidAmount,
	}
	for in, want := range bad {
		var m Money
		if err := json.Unmarshal([]byte(in), &m); !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", in, err, want)
		}
	}
	var c Currency
	if err := json.Unmarshal([]byte(`"EUR"`), &c); err != nil || c.Code() != "EUR" {
		t.Fatalf("currency json: %v %v", c, err)
	}
}
