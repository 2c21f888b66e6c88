// Package payments is the payments bounded context's domain: the
// event-sourced Account (open, deposit, withdraw, close) and its events.
// It is plain Go: no database, HTTP or broker imports.
//
// Rules (from the seed): amounts are positive; a withdrawal never takes
// the balance below zero; a closed account takes nothing; an account closes
// only at zero balance; an account opens only once.
package payments

import (
	"time"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/money"
)

// Status is an account's lifecycle state. Its zero value means "not opened".
type Status struct{ s string }

// The statuses.
var (
	// Active accounts take deposits and withdrawals.
	Active = Status{"Active"}
	// Closed accounts take nothing.
	Closed = Status{"Closed"}
)

// String returns "Active", "Closed" or "" for an account not yet opened.
func (s Status) String() string { return s.s }

// ParseStatus parses "Active" or "Closed".
func ParseStatus(v string) (Status, error) {
	switch v {
	case Active.s:
		return Active, nil
	case Closed.s:
		return Closed, nil
	}
	return Status{}, errs.Fields(errs.FieldError{Field: "status", Message: `must be "Active" or "Closed"`})
}

// MarshalText implements encoding.TextMarshaler (for snapshots).
func (s Status) MarshalText() ([]byte, error) { return []byte(s.s), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Status) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*s = Status{}
		return nil
	}
	v, err := ParseStatus(string(b))
	*s = v
	return err
}

// Account is the state of an account aggregate, built by Evolve from its
// events. The zero value is an account that has not been opened.
type Account struct {
	// ID is the account's ID (its stream is "account-" + ID).
	ID string `json:"id"`
	// OwnerID is who owns the account.
	OwnerID string `json:"owner_id"`
	// Tenant is the tenant the account belongs to.
	Tenant string `json:"tenant,omitempty"`
	// Currency is the account's currency; every amount must be in it.
	Currency money.Currency `json:"currency"`
	// Balance is in minor units of Currency; never negative.
	Balance int64 `json:"balance"`
	// Status is Active or Closed (zero before opening).
	Status Status `json:"status"`
	// Transactions counts the account's events (opening included).
	Transactions int `json:"transactions"`
	// OpenedAt is when the account was opened.
	OpenedAt time.Time `json:"opened_at"`
	// LastActivity is the time of the latest event.
	LastActivity time.Time `json:"last_activity"`
	// Legs records every transfer key the account has seen (see Debit).
	Legs Legs `json:"legs,omitzero"`
}

// Opened reports whether the account exists.
func (a Account) Opened() bool { return a.Status != Status{} }

// BalanceMoney returns the balance as Money.
func (a Account) BalanceMoney() money.Money { return money.New(a.Balance, a.Currency) }

// Domain errors: broken rules are Conflicts, bad values are Unprocessable.
var (
	// ErrAlreadyOpen reports an attempt to open an existing account.
	ErrAlreadyOpen = errs.Rule("account_exists", "the account is already open")
	// ErrNotOpen reports a command on an account that does not exist.
	ErrNotOpen = &errs.Error{Code: errs.NotFound, Reason: "account_not_found", Message: "no such account"}
	// ErrClosed reports a command on a closed account.
	ErrClosed = errs.Rule("account_closed", "the account is closed")
	// ErrInsufficientFunds reports a withdrawal larger than the balance.
	ErrInsufficientFunds = errs.Rule("insufficient_funds", "the balance is lower than the amount")
	// ErrNonZeroBalance reports closing an account that still holds money.
	ErrNonZeroBalance = errs.Rule("non_zero_balance", "only an account with a zero balance can be closed")
	// ErrCurrencyMismatch reports an amount in another currency than the account's.
	ErrCurrencyMismatch = &errs.Error{Code: errs.Unprocessable, Reason: "currency_mismatch", Message: "the amount's currency is not the account's",
		Fields: []errs.FieldError{{Field: "amount.currency", Message: "must be the account's currency"}}}
	// ErrNotPositive reports a zero or negative amount.
	ErrNotPositive = &errs.Error{Code: errs.Unprocessable, Reason: "invalid_amount", Message: "the amount must be positive",
		Fields: []errs.FieldError{{Field: "amount.amount", Message: "must be greater than zero"}}}
	// ErrOverflow reports a balance that would not fit in int64 minor units.
	ErrOverflow = &errs.Error{Code: errs.Unprocessable, Reason: "amount_overflow", Message: "the resulting balance is out of range",
		Fields: []errs.FieldError{{Field: "amount.amount", Message: "too large"}}}
)

// Event is a payments domain event.
type Event interface {
	// EventType is the stored type name.
	EventType() string
}

// AccountOpened records a new account.
type AccountOpened struct {
	// AccountID is the new account's ID.
	AccountID string `json:"account_id"`
	// OwnerID is who owns it.
	OwnerID string `json:"owner_id"`
	// Tenant is the tenant it belongs to (empty in events recorded before
	// tenants: the default tenant).
	Tenant string `json:"tenant,omitempty"`
	// Currency is its currency.
	Currency money.Currency `json:"currency"`
	// InitialBalance is its opening balance in minor units (zero or more).
	InitialBalance int64 `json:"initial_balance"`
	// At is when it was opened.
	At time.Time `json:"at"`
}

// MoneyDeposited records a deposit.
type MoneyDeposited struct {
	// Amount is what was deposited (positive, in the account's currency).
	Amount money.Money `json:"amount"`
	// At is when.
	At time.Time `json:"at"`
}

// MoneyWithdrawn records a withdrawal.
type MoneyWithdrawn struct {
	// Amount is what was withdrawn (positive, at most the balance).
	Amount money.Money `json:"amount"`
	// At is when.
	At time.Time `json:"at"`
}

// AccountClosed records the closing of an account.
type AccountClosed struct {
	// At is when.
	At time.Time `json:"at"`
}

// Event type names, as stored.
const (
	TypeAccountOpened  = "payments.AccountOpened"
	TypeMoneyDeposited = "payments.MoneyDeposited"
	TypeMoneyWithdrawn = "payments.MoneyWithdrawn"
	TypeAccountClosed  = "payments.AccountClosed"
)

// EventType implements Event.
func (AccountOpened) EventType() string { return TypeAccountOpened }

// EventType implements Event.
func (MoneyDeposited) EventType() string { return TypeMoneyDeposited }

// EventType implements Event.
func (MoneyWithdrawn) EventType() string { return TypeMoneyWithdrawn }

// EventType implements Event.
func (AccountClosed) EventType() string { return TypeAccountClosed }

// Evolve returns the account after e.
func Evolve(a Account, e Event) Account {
	switch e := e.(type) {
	case AccountOpened:
		a = Account{ID: e.AccountID, OwnerID: e.OwnerID, Tenant: e.Tenant, Currency: e.Currency, Balance: e.InitialBalance,
			Status: Active, OpenedAt: e.At, LastActivity: e.At}
		if e.InitialBalance > 0 {
			a.Transactions = 1
		}
	case MoneyDeposited:
		a.Balance += e.Amount.Amount
		a.Transactions++
		a.LastActivity = e.At
	case MoneyWithdrawn:
		a.Balance -= e.Amount.Amount
		a.Transactions++
		a.LastActivity = e.At
	case AccountClosed:
		a.Status = Closed
		a.LastActivity = e.At
	default:
		a = a.evolveLeg(e)
	}
	return a
}

// Open decides the opening of account id for owner in currency with an
// initial balance (zero or positive, in the account's currency).
func (a Account) Open(id, owner, tenant string, initial money.Money, now time.Time) ([]Event, error) {
	if a.Opened() {
		return nil, ErrAlreadyOpen
	}
	if initial.IsNegative() {
		return nil, &errs.Error{Code: errs.Unprocessable, Reason: "invalid_amount", Message: "the initial balance must not be negative",
			Fields: []errs.FieldError{{Field: "initial_balance.amount", Message: "must be zero or more"}}}
	}
	return []Event{AccountOpened{AccountID: id, OwnerID: owner, Tenant: tenant, Currency: initial.Currency, InitialBalance: initial.Amount, At: now.UTC()}}, nil
}

func (a Account) checkAmount(amount money.Money) error {
	if !a.Opened() {
		return ErrNotOpen
	}
	if a.Status == Closed {
		return ErrClosed
	}
	if amount.Currency != a.Currency {
		return ErrCurrencyMismatch
	}
	if !amount.IsPositive() {
		return ErrNotPositive
	}
	return nil
}

// Deposit decides a deposit of amount.
func (a Account) Deposit(amount money.Money, now time.Time) ([]Event, error) {
	if err := a.checkAmount(amount); err != nil {
		return nil, err
	}
	if _, err := a.BalanceMoney().Add(amount); err != nil {
		return nil, ErrOverflow
	}
	return []Event{MoneyDeposited{Amount: amount, At: now.UTC()}}, nil
}

// Withdraw decides a withdrawal of amount.
func (a Account) Withdraw(amount money.Money, now time.Time) ([]Event, error) {
	if err := a.checkAmount(amount); err != nil {
		return nil, err
	}
	if amount.Amount > a.Balance {
		return nil, ErrInsufficientFunds
	}
	return []Event{MoneyWithdrawn{Amount: amount, At: now.UTC()}}, nil
}

// Close decides the closing of the account.
func (a Account) Close(now time.Time) ([]Event, error) {
	if !a.Opened() {
		return nil, ErrNotOpen
	}
	if a.Status == Closed {
		return nil, ErrClosed
	}
	if a.Balance != 0 {
		return nil, ErrNonZeroBalance
	}
	return []Event{AccountClosed{At: now.UTC()}}, nil
}
