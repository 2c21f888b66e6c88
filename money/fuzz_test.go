package money

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
)

// FuzzMoneyJSON decodes arbitrary JSON as Money: it never panics, a
// refusal is one of the package's errors, and what is accepted has a
// known currency, encodes and decodes back to itself, and formats (String)
// to its own amount.
func FuzzMoneyJSON(f *testing.F) {
	for _, s := range []string{
		`{"amount":1999,"currency":"USD"}`, `{"amount":-5,"currency":"EUR"}`, `{"amount":100,"currency":"JPY"}`,
		`{"amount":1,"currency":"BHD"}`, `{"currency":"USD","amount":0}`, `{"amount":-0,"currency":"USD"}`,
		`{"amount":9223372036854775807,"currency":"USD"}`, `{"amount":-9223372036854775808,"currency":"USD"}`,
		`{"amount":9223372036854775808,"currency":"USD"}`, `{"amount":1.5,"currency":"USD"}`, `{"amount":1e3,"currency":"USD"}`,
		`{"amount":"10","currency":"USD"}`, `{"amount":1,"currency":"usd"}`, `{"amount":1,"currency":"XXQ"}`,
		`{"amount":1,"currency":"XTS"}`, `{"amount":1,"currency":null}`, `{"amount":1}`, `{"currency":"USD"}`,
		`{"amount":1,"currency":"USD","memo":"x"}`, `{"amount":1,"amount":2,"currency":"USD"}`, `null`, `[]`, `0`, `{}`,
		`{"amount": 7 ,"currency":"\u0055SD"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Money
		if err := m.UnmarshalJSON(data); err != nil {
			if !errors.Is(err, ErrInvalidAmount) && !errors.Is(err, ErrInvalidCurrency) && !errors.Is(err, ErrOverflow) {
				t.Fatalf("%q: an error that is none of the package's: %v", data, err)
			}
			return
		}
		if c, err := ParseCurrency(m.Currency.Code()); err != nil || c != m.Currency {
			t.Fatalf("%q: decoded currency %q does not parse: %v", data, m.Currency.Code(), err)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("%q: marshal %v: %v", data, m, err)
		}
		var back Money
		if err := json.Unmarshal(b, &back); err != nil || back != m {
			t.Fatalf("%q: %s decodes to %v (%v), want %v", data, b, back, err, m)
		}
		// String: "<digits>[.<scale digits>] CODE", the digits the amount.
		s := m.String()
		num, code, ok := strings.Cut(s, " ")
		if !ok || code != m.Currency.Code() {
			t.Fatalf("%v: String %q", m, s)
		}
		if sc := m.Currency.Scale(); sc > 0 {
			whole, frac, ok := strings.Cut(num, ".")
			if !ok || len(frac) != sc || whole == "" || whole == "-" {
				t.Fatalf("%v: String %q, want %d decimals", m, s, sc)
			}
			num = whole + frac
		}
		if n, err := strconv.ParseInt(num, 10, 64); err != nil || n != m.Amount {
			t.Fatalf("%v: String %q reads as %d (%v)", m, s, n, err)
		}
	})
}

// FuzzMoneyArithmetic checks Add, Sub, MulInt, Neg, Cmp and Percent
// against math/big: a result is returned exactly when it fits in int64
// (else ErrOverflow), and is then the exact one; nothing panics;
// currencies never mix.
func FuzzMoneyArithmetic(f *testing.F) {
	f.Add(int64(1999), int64(1), int64(3), int64(1000), "USD")
	f.Add(int64(-5), int64(5), int64(-1), int64(5000), "JPY")
	f.Add(int64(math.MaxInt64), int64(1), int64(2), int64(10000), "EUR")
	f.Add(int64(math.MinInt64), int64(-1), int64(-1), int64(0), "USD")
	f.Add(int64(math.MinInt64), int64(math.MaxInt64), int64(math.MinInt64), int64(9999), "BHD")
	f.Add(int64(-1), int64(math.MinInt64), int64(math.MinInt64), int64(-1), "usd")
	f.Add(int64(15), int64(25), int64(1), int64(10001), "XXQ")
	f.Fuzz(func(t *testing.T, a, b, n, bp int64, code string) {
		c, err := ParseCurrency(code)
		if err != nil {
			c = MustCurrency("USD")
		}
		x, y := New(a, c), New(b, c)
		A, B := big.NewInt(a), big.NewInt(b)
		check := func(op string, got Money, err error, want *big.Int) {
			t.Helper()
			if !want.IsInt64() {
				if !errors.Is(err, ErrOverflow) {
					t.Fatalf("%s(%d, %d, %d): %v, %v; want ErrOverflow (%s)", op, a, b, n, got, err, want)
				}
				return
			}
			if err != nil || got.Amount != want.Int64() || got.Currency != c {
				t.Fatalf("%s(%d, %d, %d): %v, %v; want %s %s", op, a, b, n, got, err, want, c)
			}
		}
		s, err := x.Add(y)
		check("Add", s, err, new(big.Int).Add(A, B))
		d, err := x.Sub(y)
		check("Sub", d, err, new(big.Int).Sub(A, B))
		p, err := x.MulInt(n)
		check("MulInt", p, err, new(big.Int).Mul(A, big.NewInt(n)))
		g, err := x.Neg()
		check("Neg", g, err, new(big.Int).Neg(A))
		if cmp, err := x.Cmp(y); err != nil || cmp != A.Cmp(B) {
			t.Fatalf("Cmp(%d, %d) = %d, %v", a, b, cmp, err)
		}

		pc, err := x.Percent(bp)
		if bp < 0 || bp > 10000 {
			if err == nil {
				t.Fatalf("Percent(%d, %d bp) = %v, want an error", a, bp, pc)
			}
		} else {
			// Round half to even, from the exact quotient.
			q := new(big.Rat).SetFrac(new(big.Int).Mul(A, big.NewInt(bp)), big.NewInt(10000))
			fl := new(big.Int).Div(q.Num(), q.Denom()) // floor (Euclidean, positive denominator)
			rest := new(big.Rat).Sub(q, new(big.Rat).SetInt(fl))
			switch rest.Cmp(big.NewRat(1, 2)) {
			case 1:
				fl.Add(fl, big.NewInt(1))
			case 0:
				if fl.Bit(0) == 1 {
					fl.Add(fl, big.NewInt(1))
				}
			}
			check("Percent", pc, err, fl)
			if abs := new(big.Int).Abs(big.NewInt(pc.Amount)); abs.Cmp(new(big.Int).Abs(A)) > 0 {
				t.Fatalf("Percent(%d, %d bp) = %d, larger than the amount", a, bp, pc.Amount)
			}
		}

		other := MustCurrency("JPY")
		if c == other {
			other = MustCurrency("EUR")
		}
		z := New(b, other)
		if _, err := x.Add(z); !errors.Is(err, ErrCurrencyMismatch) {
			t.Fatalf("Add across currencies: %v", err)
		}
		if _, err := x.Sub(z); !errors.Is(err, ErrCurrencyMismatch) {
			t.Fatalf("Sub across currencies: %v", err)
		}
		if _, err := x.Cmp(z); !errors.Is(err, ErrCurrencyMismatch) {
			t.Fatalf("Cmp across currencies: %v", err)
		}
		_ = x.String()
	})
}
