package app

import (
	"context"
	"time"

	"github.com/agora-commerce/agora/aggregate"
	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/payments"
	"github.com/agora-commerce/agora/money"
)

// LegResult is the outcome of one transfer leg on one account.
type LegResult struct {
	// Leg is the key's record on the account after the command.
	Leg payments.Leg
	// Position is the global position of the event the command appended
	// (0 if it appended none: the leg had been decided before).
	Position uint64
}

// leg runs a transfer-leg command and reports the key's record, read
// while the command still owns the account's state.
func (s *Service) leg(ctx context.Context, meta eventstore.Metadata, id, key string, decide func(payments.Account, time.Time) ([]payments.Event, error)) (LegResult, error) {
	var out LegResult
	res, err := s.repo(id).Handle(ctx, id, meta, func(l aggregate.Loaded[payments.Account]) ([]payments.Event, error) {
		evs, err := decide(l.State, s.now())
		if err != nil {
			return nil, err
		}
		out.Leg, _ = l.State.Leg(key)
		for _, e := range evs { // the leg as it will be after evs
			out.Leg, _ = payments.Evolve(payments.Account{Currency: l.State.Currency}, e).Legs.Get(key)
		}
		return evs, nil
	})
	if err != nil {
		return LegResult{}, err
	}
	out.Position = res.Append.LastPosition
	return out, nil
}

// Debit runs the source leg of transfer key on account id.
func (s *Service) Debit(ctx context.Context, meta eventstore.Metadata, id, key, ref string, amount money.Money) (LegResult, error) {
	return s.leg(ctx, meta, id, key, func(a payments.Account, now time.Time) ([]payments.Event, error) {
		return a.Debit(key, ref, amount, now)
	})
}

// Credit runs the target leg of transfer key on account id.
func (s *Service) Credit(ctx context.Context, meta eventstore.Metadata, id, key, ref string, amount money.Money) (LegResult, error) {
	return s.leg(ctx, meta, id, key, func(a payments.Account, now time.Time) ([]payments.Event, error) {
		return a.Credit(key, ref, amount, now)
	})
}

// Refund undoes the source leg of transfer key on account id.
func (s *Service) Refund(ctx context.Context, meta eventstore.Metadata, id, key, ref string) (LegResult, error) {
	return s.leg(ctx, meta, id, key, func(a payments.Account, now time.Time) ([]payments.Event, error) {
		return a.Refund(key, ref, now)
	})
}

// Reverse undoes the target leg of transfer key on account id.
func (s *Service) Reverse(ctx context.Context, meta eventstore.Metadata, id, key, ref string) (LegResult, error) {
	return s.leg(ctx, meta, id, key, func(a payments.Account, now time.Time) ([]payments.Event, error) {
		return a.Reverse(key, ref, now)
	})
}

// Payment is a two-leg transfer run in one call: Pay and Unpay.
type Payment struct {
	// Key identifies the payment (the checkout uses "order:<id>").
	Key string
	// Reference says what it is for.
	Reference string
	// From pays, To receives.
	From, To string
	// Amount is what moves.
	Amount money.Money
}

// Pay moves p.Amount from p.From to p.To, or nothing. It returns
// payments.ErrDeclined(reason) when a leg was declined (after giving back a
// debit whose credit was declined). It is idempotent: paying again
// returns the first outcome.
func (s *Service) Pay(ctx context.Context, meta eventstore.Metadata, p Payment) error {
	d, err := s.Debit(ctx, meta, p.From, p.Key, p.Reference, p.Amount)
	if err != nil {
		return err
	}
	switch d.Leg.State {
	case payments.LegDebited:
	case payments.LegDeclined:
		return payments.ErrDeclined(d.Leg.Reason)
	default: // voided, refunded: the payment was undone
		return payments.ErrDeclined(payments.ReasonCancelled)
	}
	c, err := s.Credit(ctx, meta, p.To, p.Key, p.Reference, p.Amount)
	if err != nil {
		return err
	}
	if c.Leg.State == payments.LegCredited {
		return nil
	}
	reason := c.Leg.Reason
	if c.Leg.State != payments.LegDeclined {
		reason = payments.ReasonCancelled
	}
	if _, err := s.Refund(ctx, meta, p.From, p.Key, p.Reference); err != nil {
		return err
	}
	return payments.ErrDeclined(reason)
}

// Unpay undoes payment p: the credit is taken back, then the debit given
// back; legs not yet run are voided so they will be declined. It is
// idempotent.
func (s *Service) Unpay(ctx context.Context, meta eventstore.Metadata, p Payment) error {
	if _, err := s.Reverse(ctx, meta, p.To, p.Key, p.Reference); err != nil {
		return err
	}
	_, err := s.Refund(ctx, meta, p.From, p.Key, p.Reference)
	return err
}
