package payments

import (
	"encoding/json"
	"iter"
	"time"

	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/idmap"
	"github.com/agora-commerce/agora/money"
)

// A transfer moves money between two accounts in two legs, each recorded
// on its own account under the transfer's key: the source is debited, the
// target credited. Undoing it is the mirror: the target is reversed, the
// source refunded. Every leg is idempotent by key, and each undo leaves a
// tombstone when its leg has not happened yet, so a leg that arrives after
// its undo (a redelivered command, a late message) is declined instead of
// moving money that is never moved back.
//
// A refused leg is recorded too (TransferDeclined), so that asking again
// gets the same answer and other contexts can be told.

// LegState is where one transfer key stands on one account.
type LegState string

// Leg states.
const (
	// LegDebited: the source paid out.
	LegDebited LegState = "debited"
	// LegCredited: the target received.
	LegCredited LegState = "credited"
	// LegRefunded: a debit was given back.
	LegRefunded LegState = "refunded"
	// LegReversed: a credit was taken back.
	LegReversed LegState = "reversed"
	// LegDeclined: the leg was refused (insufficient funds, closed account).
	LegDeclined LegState = "declined"
	// LegVoided: undone before it happened; the leg will be declined.
	LegVoided LegState = "voided"
)

// Leg is one transfer key's record on an account.
type Leg struct {
	// State is where the leg stands.
	State LegState `json:"state"`
	// Amount is what the leg moved (zero for tombstones).
	Amount int64 `json:"amount,omitempty"`
	// Reason is why a leg was declined.
	Reason string `json:"reason,omitempty"`
}

// TransferLeg is the body of every transfer event on an account.
type TransferLeg struct {
	// Key identifies the transfer (unique across the platform).
	Key string `json:"key"`
	// Reference says what the transfer is for, e.g. "order:<id>".
	Reference string `json:"reference,omitempty"`
	// Amount is what moved (zero for declines and voids).
	Amount money.Money `json:"amount"`
	// Reason is why a leg was declined ("insufficient_funds", "account_closed", "cancelled").
	Reason string `json:"reason,omitempty"`
	// At is when.
	At time.Time `json:"at"`
}

// Transfer events, recorded on the account they touch.
type (
	// TransferDebited: the source paid Amount out.
	TransferDebited TransferLeg
	// TransferCredited: the target received Amount.
	TransferCredited TransferLeg
	// TransferRefunded: a debit was given back to the source.
	TransferRefunded TransferLeg
	// TransferReversed: a credit was taken back from the target.
	TransferReversed TransferLeg
	// TransferDeclined: a leg was refused; nothing moved.
	TransferDeclined TransferLeg
	// TransferVoided: an undo arrived before its leg; nothing moved and the
	// leg will be declined.
	TransferVoided TransferLeg
)

// Transfer event type names, as stored.
const (
	TypeTransferDebited  = "payments.TransferDebited"
	TypeTransferCredited = "payments.TransferCredited"
	TypeTransferRefunded = "payments.TransferRefunded"
	TypeTransferReversed = "payments.TransferReversed"
	TypeTransferDeclined = "payments.TransferDeclined"
	TypeTransferVoided   = "payments.TransferVoided"
)

// EventType implements Event.
func (TransferDebited) EventType() string { return TypeTransferDebited }

// EventType implements Event.
func (TransferCredited) EventType() string { return TypeTransferCredited }

// EventType implements Event.
func (TransferRefunded) EventType() string { return TypeTransferRefunded }

// EventType implements Event.
func (TransferReversed) EventType() string { return TypeTransferReversed }

// EventType implements Event.
func (TransferDeclined) EventType() string { return TypeTransferDeclined }

// EventType implements Event.
func (TransferVoided) EventType() string { return TypeTransferVoided }

// Decline reasons.
const (
	ReasonInsufficientFunds = paymentsapi.ReasonInsufficientFunds
	ReasonAccountClosed     = "account_closed"
	ReasonCancelled         = paymentsapi.ReasonCancelled
)

// ErrDeclined reports a transfer leg that was refused; its Reason is one
// of the decline reasons.
func ErrDeclined(reason string) error {
	return &errs.Error{Code: errs.Conflict, Reason: reason, Message: "the transfer was declined: " + reason}
}

// ErrUnknownKey reports an empty transfer key.
var ErrUnknownKey = errs.E(errs.Invalid, "transfer key is empty")

func (a Account) leg(key string) (Leg, bool) { return a.Legs.Get(key) }

// Legs are an account's transfer legs by key. A merchant's account
// receives a leg for every order paid, and a cached account keeps them
// all, so a leg is kept in about 40 bytes with no pointer for the garbage
// collector to scan (package idmap) when its key ends in a UUID
// ("order:<id>") and its state and reason are among the known ones; any
// other leg is kept as it is. Its JSON is that of a map[string]Leg. Copies
// share the legs, as copies of a map do.
type Legs struct {
	packed idmap.Map[packedLeg]
	odd    idmap.Map[Leg] // legs with a reason packedLeg cannot number
}

// packedLeg is a Leg without pointers: its state and reason as numbers.
type packedLeg struct {
	amount int64
	state  uint8
	reason uint8
}

// legStates and legReasons number the states and the known reasons.
var (
	legStates  = [...]LegState{"", LegDebited, LegCredited, LegRefunded, LegReversed, LegDeclined, LegVoided}
	legReasons = [...]string{"", ReasonInsufficientFunds, ReasonAccountClosed, ReasonCancelled}
)

func packLeg(l Leg) (packedLeg, bool) {
	p := packedLeg{amount: l.Amount}
	st, re := -1, -1
	for i, s := range legStates {
		if s == l.State {
			st = i
		}
	}
	for i, r := range legReasons {
		if r == l.Reason {
			re = i
		}
	}
	if st < 0 || re < 0 {
		return p, false
	}
	p.state, p.reason = uint8(st), uint8(re)
	return p, true
}

func (p packedLeg) leg() Leg {
	return Leg{State: legStates[p.state], Amount: p.amount, Reason: legReasons[p.reason]}
}

// Get returns key's leg.
func (ls Legs) Get(key string) (Leg, bool) {
	if p, ok := ls.packed.Get(key); ok {
		return p.leg(), true
	}
	return ls.odd.Get(key)
}

// Len is the number of legs.
func (ls Legs) Len() int { return ls.packed.Len() + ls.odd.Len() }

// IsZero reports whether there are no legs.
func (ls Legs) IsZero() bool { return ls.Len() == 0 }

// All yields every leg by key, in no particular order.
func (ls Legs) All() iter.Seq2[string, Leg] {
	return func(yield func(string, Leg) bool) {
		for k, p := range ls.packed.All() {
			if !yield(k, p.leg()) {
				return
			}
		}
		for k, l := range ls.odd.All() {
			if !yield(k, l) {
				return
			}
		}
	}
}

// set records key's leg.
func (ls *Legs) set(key string, l Leg) {
	if p, ok := packLeg(l); ok {
		ls.packed.Set(key, p)
		ls.odd.Delete(key)
		return
	}
	ls.odd.Set(key, l)
	ls.packed.Delete(key)
}

// MarshalJSON encodes the legs as a JSON object by key.
func (ls Legs) MarshalJSON() ([]byte, error) {
	all := make(map[string]Leg, ls.Len())
	for k, l := range ls.All() {
		all[k] = l
	}
	return json.Marshal(all)
}

// UnmarshalJSON decodes a JSON object of legs by key.
func (ls *Legs) UnmarshalJSON(b []byte) error {
	var all map[string]Leg
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	*ls = Legs{}
	for k, l := range all {
		ls.set(k, l)
	}
	return nil
}

func (a Account) checkLeg(key string, amount money.Money) error {
	if key == "" {
		return ErrUnknownKey
	}
	if !a.Opened() {
		return ErrNotOpen
	}
	if amount.Currency != a.Currency {
		return ErrCurrencyMismatch
	}
	if !amount.IsPositive() {
		return ErrNotPositive
	}
	return nil
}

// Debit decides the source leg of transfer key: pay amount out, or record
// why not. Repeating it returns no events; the leg's state says the outcome.
func (a Account) Debit(key, ref string, amount money.Money, now time.Time) ([]Event, error) {
	if err := a.checkLeg(key, amount); err != nil {
		return nil, err
	}
	if _, ok := a.leg(key); ok {
		return nil, nil
	}
	body := TransferLeg{Key: key, Reference: ref, Amount: amount, At: now.UTC()}
	switch {
	case a.Status == Closed:
		body.Reason, body.Amount = ReasonAccountClosed, money.New(0, a.Currency)
		return []Event{TransferDeclined(body)}, nil
	case amount.Amount > a.Balance:
		body.Reason, body.Amount = ReasonInsufficientFunds, money.New(0, a.Currency)
		return []Event{TransferDeclined(body)}, nil
	}
	return []Event{TransferDebited(body)}, nil
}

// Credit decides the target leg of transfer key: receive amount, or
// record why not.
func (a Account) Credit(key, ref string, amount money.Money, now time.Time) ([]Event, error) {
	if err := a.checkLeg(key, amount); err != nil {
		return nil, err
	}
	if _, ok := a.leg(key); ok {
		return nil, nil
	}
	body := TransferLeg{Key: key, Reference: ref, Amount: amount, At: now.UTC()}
	if a.Status == Closed {
		body.Reason, body.Amount = ReasonAccountClosed, money.New(0, a.Currency)
		return []Event{TransferDeclined(body)}, nil
	}
	if _, err := a.BalanceMoney().Add(amount); err != nil {
		return nil, ErrOverflow
	}
	return []Event{TransferCredited(body)}, nil
}

// Refund undoes the source leg of transfer key: a debit is given back
// (even to a closed account: the money was its own); a leg not yet seen is
// voided so it will be declined.
func (a Account) Refund(key, ref string, now time.Time) ([]Event, error) {
	return a.undo(key, ref, LegDebited, now)
}

// Reverse undoes the target leg of transfer key: a credit is taken back
// (which needs the money still to be there); a leg not yet seen is voided.
func (a Account) Reverse(key, ref string, now time.Time) ([]Event, error) {
	return a.undo(key, ref, LegCredited, now)
}

// undo undoes the leg of key that is in state done (LegDebited: give it
// back; LegCredited: take it back), voids a leg not seen yet, and ignores
// a leg already undone or declined.
func (a Account) undo(key, ref string, done LegState, now time.Time) ([]Event, error) {
	if key == "" {
		return nil, ErrUnknownKey
	}
	if !a.Opened() {
		return nil, ErrNotOpen
	}
	l, ok := a.leg(key)
	body := TransferLeg{Key: key, Reference: ref, Amount: money.New(0, a.Currency), At: now.UTC()}
	switch {
	case !ok:
		body.Reason = ReasonCancelled
		return []Event{TransferVoided(body)}, nil
	case l.State != done:
		return nil, nil
	case done == LegCredited && l.Amount > a.Balance:
		return nil, ErrInsufficientFunds
	}
	body.Amount = money.New(l.Amount, a.Currency)
	if done == LegDebited {
		return []Event{TransferRefunded(body)}, nil
	}
	return []Event{TransferReversed(body)}, nil
}

// Leg returns transfer key's record on the account.
func (a Account) Leg(key string) (Leg, bool) { return a.leg(key) }

func (a Account) evolveLeg(e Event) Account {
	// Legs is updated in place: a state is owned by whoever folds it.
	set := a.Legs.set
	switch e := e.(type) {
	case TransferDebited:
		a.Balance -= e.Amount.Amount
		set(e.Key, Leg{State: LegDebited, Amount: e.Amount.Amount})
		a.Transactions++
		a.LastActivity = e.At
	case TransferCredited:
		a.Balance += e.Amount.Amount
		set(e.Key, Leg{State: LegCredited, Amount: e.Amount.Amount})
		a.Transactions++
		a.LastActivity = e.At
	case TransferRefunded:
		a.Balance += e.Amount.Amount
		set(e.Key, Leg{State: LegRefunded, Amount: e.Amount.Amount})
		a.Transactions++
		a.LastActivity = e.At
	case TransferReversed:
		a.Balance -= e.Amount.Amount
		set(e.Key, Leg{State: LegReversed, Amount: e.Amount.Amount})
		a.Transactions++
		a.LastActivity = e.At
	case TransferDeclined:
		set(e.Key, Leg{State: LegDeclined, Reason: e.Reason})
	case TransferVoided:
		set(e.Key, Leg{State: LegVoided, Reason: e.Reason})
	}
	return a
}
