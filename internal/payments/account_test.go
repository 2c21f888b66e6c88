package payments_test

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/payments"
	"github.com/agora-commerce/agora/money"
)

var (
	t0  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	usd = money.MustCurrency("USD")
	eur = money.MustCurrency("EUR")
)

func opened(balance int64) payments.Event {
	return payments.AccountOpened{AccountID: "a1", OwnerID: "alice", Tenant: "demo", Currency: usd, InitialBalance: balance, At: t0}
}

func given(events ...payments.Event) payments.Account {
	var a payments.Account
	for _, e := range events {
		a = payments.Evolve(a, e)
	}
	return a
}

// TestRules is the seed's rules as given-when-then cases: given past
// events, when a command is decided, then these events or this error.
func TestRules(t *testing.T) {
	deposit := func(n int64) func(payments.Account) ([]payments.Event, error) {
		return func(a payments.Account) ([]payments.Event, error) { return a.Deposit(money.New(n, usd), t0) }
	}
	withdraw := func(n int64) func(payments.Account) ([]payments.Event, error) {
		return func(a payments.Account) ([]payments.Event, error) { return a.Withdraw(money.New(n, usd), t0) }
	}
	closeIt := func(a payments.Account) ([]payments.Event, error) { return a.Close(t0) }
	open := func(n int64) func(payments.Account) ([]payments.Event, error) {
		return func(a payments.Account) ([]payments.Event, error) {
			return a.Open("a1", "alice", "demo", money.New(n, usd), t0)
		}
	}
	closed := payments.AccountClosed{At: t0}
	cases := []struct {
		name  string
		given []payments.Event
		when  func(payments.Account) ([]payments.Event, error)
		then  []payments.Event
		err   error
	}{
		{"open", nil, open(1000), []payments.Event{opened(1000)}, nil},
		{"open with zero", nil, open(0), []payments.Event{opened(0)}, nil},
		{"open only once", []payments.Event{opened(0)}, open(0), nil, payments.ErrAlreadyOpen},
		{"deposit", []payments.Event{opened(0)}, deposit(500), []payments.Event{payments.MoneyDeposited{Amount: money.New(500, usd), At: t0}}, nil},
		{"deposit zero", []payments.Event{opened(0)}, deposit(0), nil, payments.ErrNotPositive},
		{"deposit negative", []payments.Event{opened(0)}, deposit(-1), nil, payments.ErrNotPositive},
		{"deposit overflow", []payments.Event{opened(math.MaxInt64)}, deposit(1), nil, payments.ErrOverflow},
		{"deposit other currency", []payments.Event{opened(0)}, func(a payments.Account) ([]payments.Event, error) {
			return a.Deposit(money.New(1, eur), t0)
		}, nil, payments.ErrCurrencyMismatch},
		{"deposit before open", nil, deposit(1), nil, payments.ErrNotOpen},
		{"deposit when closed", []payments.Event{opened(0), closed}, deposit(1), nil, payments.ErrClosed},
		{"withdraw", []payments.Event{opened(1000)}, withdraw(1000), []payments.Event{payments.MoneyWithdrawn{Amount: money.New(1000, usd), At: t0}}, nil},
		{"withdraw beyond balance", []payments.Event{opened(1000)}, withdraw(1001), nil, payments.ErrInsufficientFunds},
		{"withdraw zero", []payments.Event{opened(1000)}, withdraw(0), nil, payments.ErrNotPositive},
		{"withdraw when closed", []payments.Event{opened(0), closed}, withdraw(1), nil, payments.ErrClosed},
		{"close at zero", []payments.Event{opened(100), payments.MoneyWithdrawn{Amount: money.New(100, usd), At: t0}}, closeIt, []payments.Event{closed}, nil},
		{"close with money", []payments.Event{opened(100)}, closeIt, nil, payments.ErrNonZeroBalance},
		{"close twice", []payments.Event{opened(0), closed}, closeIt, nil, payments.ErrClosed},
		{"close before open", nil, closeIt, nil, payments.ErrNotOpen},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.when(given(c.given...))
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err = %v, want %v", err, c.err)
				}
				if got != nil {
					t.Fatalf("a refused command produced events: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(got, c.then) {
				t.Fatalf("events = %#v, want %#v", got, c.then)
			}
		})
	}
}

func TestEvolve(t *testing.T) {
	t1 := t0.Add(time.Hour)
	a := given(opened(1000),
		payments.MoneyDeposited{Amount: money.New(500, usd), At: t0},
		payments.MoneyWithdrawn{Amount: money.New(250, usd), At: t1})
	want := payments.Account{ID: "a1", OwnerID: "alice", Tenant: "demo", Currency: usd, Balance: 1250, Status: payments.Active,
		Transactions: 3, OpenedAt: t0, LastActivity: t1}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("account = %+v, want %+v", a, want)
	}
	if got := a.BalanceMoney(); got != money.New(1250, usd) {
		t.Fatalf("BalanceMoney = %v", got)
	}
}

// TestNeverOverdrawn decides random commands against the evolving state:
// whatever the order, the balance never goes negative and equals deposits
// minus withdrawals.
func TestNeverOverdrawn(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a := given(opened(0))
	var in, out int64
	for range 10_000 {
		n := rng.Int64N(1000) - 100
		var evs []payments.Event
		var err error
		if rng.IntN(2) == 0 {
			evs, err = a.Deposit(money.New(n, usd), t0)
		} else {
			evs, err = a.Withdraw(money.New(n, usd), t0)
		}
		if err != nil {
			continue
		}
		for _, e := range evs {
			switch e := e.(type) {
			case payments.MoneyDeposited:
				in += e.Amount.Amount
			case payments.MoneyWithdrawn:
				out += e.Amount.Amount
			}
			a = payments.Evolve(a, e)
		}
		if a.Balance < 0 {
			t.Fatalf("overdrawn: %d", a.Balance)
		}
	}
	if a.Balance != in-out {
		t.Fatalf("balance %d != deposits %d - withdrawals %d", a.Balance, in, out)
	}
}

func TestParseStatus(t *testing.T) {
	for _, s := range []payments.Status{payments.Active, payments.Closed} {
		got, err := payments.ParseStatus(s.String())
		if err != nil || got != s {
			t.Fatalf("ParseStatus(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := payments.ParseStatus("active"); err == nil {
		t.Fatal("ParseStatus accepted a lower-case status")
	}
	var s payments.Status
	if err := s.UnmarshalText([]byte("Open")); err == nil {
		t.Fatal("UnmarshalText accepted an unknown status")
	}
}

// TestAccountJSONIsUnchanged: an account's JSON (its snapshots) is what it
// was when legs were a map[string]Leg: old snapshots decode, legs of any
// key, state and reason included, and new ones read the same.
func TestAccountJSONIsUnchanged(t *testing.T) {
	old := `{"id":"m","owner_id":"o","currency":"USD","balance":500,"status":"Active","transactions":4,` +
		`"opened_at":"2026-01-01T00:00:00Z","last_activity":"2026-01-01T00:00:00Z","legs":{` +
		`"manual-7":{"state":"debited","amount":100},` +
		`"order:0190c3e4-5b6a-7c8d-9e0f-a1b2c3d4e5f6":{"state":"credited","amount":600},` +
		`"order:0190c3e4-5b6a-7c8d-9e0f-a1b2c3d4e5f7":{"state":"declined","reason":"insufficient_funds"},` +
		`"order:0190c3e4-5b6a-7c8d-9e0f-a1b2c3d4e5f8":{"state":"declined","reason":"a reason from elsewhere"}}}`
	var a payments.Account
	if err := json.Unmarshal([]byte(old), &a); err != nil {
		t.Fatal(err)
	}
	if l, ok := a.Leg("order:0190c3e4-5b6a-7c8d-9e0f-a1b2c3d4e5f8"); !ok || l.Reason != "a reason from elsewhere" || l.State != payments.LegDeclined {
		t.Fatalf("odd leg: %+v %v", l, ok)
	}
	if l, ok := a.Leg("manual-7"); !ok || l.Amount != 100 || l.State != payments.LegDebited {
		t.Fatalf("manual-7: %+v %v", l, ok)
	}
	if a.Legs.Len() != 4 {
		t.Fatalf("%d legs", a.Legs.Len())
	}
	b, err := json.Marshal(a)
	if err != nil || string(b) != old {
		t.Fatalf("re-encoded:\n%s\nwant\n%s (%v)", b, old, err)
	}
	b, _ = json.Marshal(payments.Account{ID: "x"})
	if strings.Contains(string(b), "legs") {
		t.Errorf("no legs should leave legs out: %s", b)
	}
}
