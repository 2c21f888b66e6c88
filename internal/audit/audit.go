// Package audit checks the invariants of Agora's stores that an operator
// needs to trust after an incident: that money is conserved and the
// payments read model agrees with the accounts' streams, that no stock
// stays held for an ended order, that every ended checkout left what it
// should (a confirmed order paid and shipped, a cancelled one neither),
// that every saga is finished or inside its deadline, and that relays and
// consumers have caught up.
//
// Run reads what it checks through small interfaces (Sources) that the
// contexts' stores satisfy: the event log (eventstore.Store, or
// sqlite.Reader from another process), the payments read model
// (readmodel.Queries), the saga index (saga.Index), and functions for
// relays and consumers. It derives the truth from the event log, folding
// each stream with its context's own domain rules (never a snapshot), and
// compares the read models with it. It writes nothing.
//
// What is in flight is not a violation: an item that does not yet hold
// its invariant but changed less than Options.Grace ago is counted as in
// flight; a relay or consumer behind is given Options.Settle to catch up.
package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/payments/readmodel"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/saga"
)

// Log is the event log (eventstore.Store and sqlite.Reader are ones).
type Log interface {
	// ReadAll returns up to limit events after position after, in order.
	ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.Record, error)
	// Head returns the highest position a reader can see.
	Head(ctx context.Context) (uint64, error)
}

// Accounts is the payments read model (*readmodel.Queries is one).
type Accounts interface {
	// EachAccount calls fn with every account's row.
	EachAccount(ctx context.Context, fn func(readmodel.Summary) error) error
}

// Sagas is the saga engine's index of instances (saga.Index is one).
type Sagas interface {
	// EachInstance calls fn with every instance in the index.
	EachInstance(ctx context.Context, fn func(saga.Indexed) error) error
}

// Relay is a relay from a log (the event log, or an outbox) to the bus.
type Relay struct {
	// Name is the relay's (its checkpoint's) name.
	Name string
	// Position returns the last position it published.
	Position func(ctx context.Context) (uint64, error)
	// Head returns the highest position of the log it relays.
	Head func(ctx context.Context) (uint64, error)
}

// Consumer is a durable consumer of the bus.
type Consumer struct {
	// Name is its durable name.
	Name string
	// Backlog returns how many of its stream's messages it has not
	// handled yet: not delivered, or delivered and not acknowledged.
	Backlog func(ctx context.Context) (uint64, error)
}

// Sources are what Run reads. Log is required; a check whose source is
// missing is reported as skipped (with Unchecked's reason, if given).
type Sources struct {
	// Logs are the contexts' event logs (each its own), the truth every
	// other source is held to.
	Logs []Log
	// Accounts is the payments read model.
	Accounts Accounts
	// Sagas is the saga index.
	Sagas Sagas
	// SagaDeadlines are the saga types' deadlines (saga.Definition's
	// Deadline); a type missing or at 0 is held to
	// Options.SagaDeadline.
	SagaDeadlines map[string]time.Duration
	// Relays are the relays to check.
	Relays []Relay
	// Consumers are the consumers to check.
	Consumers []Consumer
	// Unchecked says, by check name, why a check cannot run on these
	// sources (e.g. CheckConsumers without a reachable bus).
	Unchecked map[string]string
}

// The checks, by name.
const (
	// CheckMoney: per currency, the accounts' balances in the read model
	// add up to the money put in (opening balances, deposits, transfer
	// credits and refunds) minus the money taken out (withdrawals,
	// transfer debits and reversals) that their streams record; and every
	// transfer's debit reached its target or was given back.
	CheckMoney = "payments_money"
	// CheckAccounts: each payments account's read-model row equals the
	// fold of its stream at the row's version, no account is missing
	// from it, and none is left behind its stream.
	CheckAccounts = "payments_read_model"
	// CheckReservations: no stock is held (reserved, not committed or
	// released) for an order that ended, Confirmed or Cancelled.
	CheckReservations = "inventory_reservations"
	// CheckCheckouts: every Confirmed order has its payment captured and
	// its shipment arranged; every Cancelled one has neither (or has them
	// undone: refunded, shipment cancelled).
	CheckCheckouts = "checkout_outcomes"
	// CheckSagas: every saga instance is finished (Completed,
	// Compensated) or inside its type's deadline; a Failed one needs an
	// operator.
	CheckSagas = "sagas"
	// CheckRelays: every relay has published its log up to the head.
	CheckRelays = "relays"
	// CheckConsumers: every consumer has handled its stream's messages.
	CheckConsumers = "consumers"
)

// Defaults of Options.
const (
	// DefaultGrace is how long an item may take to reach its invariant
	// (a checkout's compensations, a projection) before it is a violation.
	DefaultGrace = time.Minute
	// DefaultSettle is how long a relay or consumer behind is given to
	// catch up.
	DefaultSettle = 3 * time.Second
	// DefaultSagaDeadline holds a saga type without a deadline (as the
	// SagaStuckPastDeadline alert does).
	DefaultSagaDeadline = 15 * time.Minute
)

// Options tune Run.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Grace is how recent a change keeps an item in flight rather than in
	// violation (default DefaultGrace; negative: none).
	Grace time.Duration
	// Settle is how long relays and consumers behind are polled before
	// they are violations (default DefaultSettle; negative: not at all).
	Settle time.Duration
	// SagaDeadline holds saga types without a deadline (default
	// DefaultSagaDeadline).
	SagaDeadline time.Duration
	// Tenant, if set, limits the accounts, orders and sagas checked to
	// that tenant's (what was recorded without one is
	// auth.DefaultTenant's); relays and consumers are the platform's.
	Tenant string
}

// Violation is one broken invariant.
type Violation struct {
	// Subject names what broke it: "account:<id>", "currency:<code>",
	// "transfer:<key>", "order:<id>", "saga:<id>", "relay:<name>",
	// "consumer:<name>".
	Subject string `json:"subject"`
	// Problem says what is wrong, in words.
	Problem string `json:"problem"`
	// Details are the facts behind it (amounts in minor units).
	Details map[string]any `json:"details,omitempty"`
}

// Check is the outcome of one check.
type Check struct {
	// Name is the check's name (Check* constants).
	Name string `json:"name"`
	// OK reports that it found no violation (a skipped check is OK).
	OK bool `json:"ok"`
	// Checked counts the items it examined (accounts, orders, sagas…).
	Checked int `json:"checked"`
	// InFlight counts the examined items that do not hold the invariant
	// yet but changed within the grace period.
	InFlight int `json:"in_flight,omitempty"`
	// Violations are what it found.
	Violations []Violation `json:"violations"`
	// Skipped, if set, says why the check did not run.
	Skipped string `json:"skipped,omitempty"`
}

// Report is the outcome of an audit.
type Report struct {
	// CheckedAt is when the audit began.
	CheckedAt time.Time `json:"checked_at"`
	// Head is the sum of the positions the audit read each log up to.
	Head uint64 `json:"head"`
	// Checks are the checks, in a fixed order.
	Checks []Check `json:"checks"`
	// OK reports that no check found a violation.
	OK bool `json:"ok"`
}

// Violations returns every check's violations, each with its check's name.
func (r Report) Violations() []NamedViolation {
	var out []NamedViolation
	for _, c := range r.Checks {
		for _, v := range c.Violations {
			out = append(out, NamedViolation{Check: c.Name, Violation: v})
		}
	}
	return out
}

// NamedViolation is a violation with the name of the check that found it.
type NamedViolation struct {
	// Check is the check's name.
	Check string `json:"check"`
	Violation
}

// auditor is one run: its options and what it folded.
type auditor struct {
	opts Options
	now  time.Time
	src  Sources
	f    *facts
	// rows are the payments read model's rows, by account ID.
	rows map[string]readmodel.Summary
}

// Run audits src and reports every check. An error means a source could
// not be read; violations are in the report.
func Run(ctx context.Context, src Sources, opts Options) (Report, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Grace == 0 {
		opts.Grace = DefaultGrace
	}
	opts.Grace = max(opts.Grace, 0)
	if opts.Settle == 0 {
		opts.Settle = DefaultSettle
	}
	if opts.SagaDeadline <= 0 {
		opts.SagaDeadline = DefaultSagaDeadline
	}
	if len(src.Logs) == 0 {
		return Report{}, fmt.Errorf("audit: no event log to read")
	}
	a := &auditor{opts: opts, now: opts.Now(), src: src}
	rep := Report{CheckedAt: a.now.UTC()}
	// The read model first, the log second: the log then holds every
	// event a row reflects, and each row is compared at its own version.
	rows := map[string]readmodel.Summary{}
	if src.Accounts != nil {
		if err := src.Accounts.EachAccount(ctx, func(s readmodel.Summary) error {
			rows[s.ID] = s
			return nil
		}); err != nil {
			return Report{}, fmt.Errorf("audit: payments read model: %w", err)
		}
	}
	f, err := fold(ctx, src.Logs, rows)
	if err != nil {
		return Report{}, err
	}
	a.f, a.rows, rep.Head = f, rows, f.head
	for _, c := range []func(context.Context) (Check, error){
		a.money, a.accounts, a.reservations, a.checkouts, a.sagas, a.relays, a.consumers,
	} {
		check, err := c(ctx)
		if err != nil {
			return Report{}, err
		}
		if check.Violations == nil {
			check.Violations = []Violation{}
		}
		check.OK = len(check.Violations) == 0
		rep.Checks = append(rep.Checks, check)
	}
	rep.OK = true
	for _, c := range rep.Checks {
		rep.OK = rep.OK && c.OK
	}
	return rep, nil
}

// skipped is check name, not run for want of a source.
func (a *auditor) skipped(name, source string) Check {
	why := a.src.Unchecked[name]
	if why == "" {
		why = "no " + source + " to read here"
	}
	return Check{Name: name, Skipped: why}
}

// mine reports whether what was recorded with tenant is the audit's.
func (a *auditor) mine(tenant string) bool {
	if a.opts.Tenant == "" {
		return true
	}
	if tenant == "" {
		tenant = auth.DefaultTenant
	}
	return tenant == a.opts.Tenant
}

// settled reports whether something last changed at at is past the grace
// period (so not holding its invariant is a violation).
func (a *auditor) settled(at time.Time) bool { return a.now.Sub(at) >= a.opts.Grace }
