package audit

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/agora-commerce/agora/internal/inventory"
	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/shipping"
	"github.com/agora-commerce/agora/saga"
)

// money checks, per currency, that the read model's balances add up to
// what the streams put in minus what they took out (each account counted
// to its row's version), and that every transfer's money arrived or was
// given back.
func (a *auditor) money(context.Context) (Check, error) {
	c := Check{Name: CheckMoney}
	if a.src.Accounts == nil {
		return a.skipped(CheckMoney, "payments read model"), nil
	}
	type sums struct{ balances, in, out int64 }
	by := map[string]*sums{}
	for _, id := range slices.Sorted(maps.Keys(a.f.accounts)) {
		acc := a.f.accounts[id]
		if !acc.row || !a.mine(a.rows[id].Tenant) {
			continue
		}
		cur := a.rows[id].Balance.Currency.Code()
		s := by[cur]
		if s == nil {
			s = &sums{}
			by[cur] = s
		}
		s.balances += a.rows[id].Balance.Amount
		s.in += acc.in
		s.out += acc.out
		c.Checked++
	}
	for _, cur := range slices.Sorted(maps.Keys(by)) {
		s := by[cur]
		if want := s.in - s.out; s.balances != want {
			c.Violations = append(c.Violations, Violation{Subject: "currency:" + cur,
				Problem: "the accounts' balances do not add up to the money put in minus the money taken out",
				Details: map[string]any{"currency": cur, "balances": s.balances, "put_in": s.in, "taken_out": s.out, "difference": s.balances - want}})
		}
	}
	for _, key := range slices.Sorted(maps.Keys(a.f.transfers)) {
		t := a.f.transfers[key]
		if !slices.ContainsFunc(t.tenants, a.mine) {
			continue
		}
		if t.netOut() == t.netIn() && t.netOut() >= 0 {
			continue
		}
		if !a.settled(t.last) {
			c.InFlight++
			continue
		}
		c.Violations = append(c.Violations, Violation{Subject: "transfer:" + key,
			Problem: "money left one account and neither reached the other nor was given back",
			Details: map[string]any{"reference": t.reference, "currency": t.currency, "debited": t.debited, "refunded": t.refunded,
				"credited": t.credited, "reversed": t.reverse, "accounts": slices.Compact(slices.Sorted(slices.Values(t.accounts))),
				"last_leg_at": t.last}})
	}
	return c, nil
}

// accounts checks each read-model row against its stream's fold at the
// row's version, and that no account is missing or left behind.
func (a *auditor) accounts(context.Context) (Check, error) {
	c := Check{Name: CheckAccounts}
	if a.src.Accounts == nil {
		return a.skipped(CheckAccounts, "payments read model"), nil
	}
	for _, id := range slices.Sorted(maps.Keys(a.f.accounts)) {
		acc := a.f.accounts[id]
		subject := "account:" + id
		if !acc.row {
			if !a.mine(acc.state.Tenant) || !acc.state.Opened() {
				continue
			}
			c.Checked++
			if !a.settled(acc.openedAt) {
				c.InFlight++
				continue
			}
			c.Violations = append(c.Violations, Violation{Subject: subject, Problem: "the account's stream has no row in the read model",
				Details: map[string]any{"stream_version": acc.version, "opened_at": acc.openedAt}})
			continue
		}
		row := a.rows[id]
		if !a.mine(row.Tenant) {
			continue
		}
		c.Checked++
		if !acc.reached {
			c.Violations = append(c.Violations, Violation{Subject: subject, Problem: "the read model is at a version the account's stream does not have",
				Details: map[string]any{"read_model_version": row.Version, "stream_version": acc.version}})
			continue
		}
		want := acc.at
		var diffs []string
		details := map[string]any{"version": row.Version}
		differ := func(field string, got, want any) {
			if got != want {
				diffs = append(diffs, field)
				details[field] = map[string]any{"read_model": got, "stream": want}
			}
		}
		differ("balance", row.Balance.Amount, want.Balance)
		differ("currency", row.Balance.Currency.Code(), want.Currency.Code())
		differ("status", row.Status, want.Status.String())
		differ("transaction_count", row.TransactionCount, int64(want.Transactions))
		differ("owner_id", row.OwnerID, want.OwnerID)
		if len(diffs) > 0 {
			details["fields"] = diffs
			c.Violations = append(c.Violations, Violation{Subject: subject,
				Problem: "the read model's row differs from the fold of the account's stream", Details: details})
			continue
		}
		if acc.version > row.Version {
			if !a.settled(acc.behindAt) {
				c.InFlight++
				continue
			}
			c.Violations = append(c.Violations, Violation{Subject: subject, Problem: "the read model is behind the account's stream",
				Details: map[string]any{"read_model_version": row.Version, "stream_version": acc.version, "behind_since": acc.behindAt}})
		}
	}
	return c, nil
}

// ended reports whether an order has ended, and when.
func ended(o ordering.Order) (time.Time, bool) {
	return o.UpdatedAt, o.Status == ordering.StatusConfirmed || o.Status == ordering.StatusCancelled
}

// reservations checks that no stock stays held for an ended order.
func (a *auditor) reservations(context.Context) (Check, error) {
	c := Check{Name: CheckReservations}
	// The holds still reserved, by order.
	held := map[string][]map[string]any{}
	for _, product := range slices.Sorted(maps.Keys(a.f.stock)) {
		for order, h := range a.f.stock[product].Holds.All() {
			if h.State == inventory.HoldReserved {
				held[order] = append(held[order], map[string]any{"product_id": product, "quantity": h.Quantity, "reserved_at": h.At})
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(a.f.orders)) {
		o := a.f.orders[id]
		at, done := ended(o)
		if !done || !a.mine(o.Tenant) {
			continue
		}
		c.Checked++
		res := a.f.reserved[id].Status
		open := res == inventory.ReservationReserved || res == inventory.ReservationPending
		if len(held[id]) == 0 && !open {
			continue
		}
		if !a.settled(at) {
			c.InFlight++
			continue
		}
		d := map[string]any{"order_status": o.Status, "ended_at": at, "reservation_status": cmp.Or(string(res), "none")}
		if len(held[id]) > 0 {
			d["held"] = held[id]
		}
		c.Violations = append(c.Violations, Violation{Subject: "order:" + id, Problem: "stock is still reserved for an order that ended", Details: d})
	}
	return c, nil
}

// checkouts checks what each ended order left behind: a Confirmed one is
// paid (its total moved from the payer to the merchant) and shipped; a
// Cancelled one moved no money and has no shipment arranged.
func (a *auditor) checkouts(context.Context) (Check, error) {
	c := Check{Name: CheckCheckouts}
	for _, id := range slices.Sorted(maps.Keys(a.f.orders)) {
		o := a.f.orders[id]
		at, done := ended(o)
		if !done || !a.mine(o.Tenant) {
			continue
		}
		c.Checked++
		var problems []string
		pay := a.f.transfers[paymentsapi.OrderReference(id)]
		if pay == nil {
			pay = &transfer{}
		}
		ship := a.f.shipments[id].Status
		if o.Status == ordering.StatusConfirmed {
			if o.Total.Amount > 0 && (pay.netOut() != o.Total.Amount || pay.netIn() != o.Total.Amount) {
				problems = append(problems, "the confirmed order's payment is not captured")
			}
			if ship != shipping.StatusArranged {
				problems = append(problems, "the confirmed order's shipment is not arranged")
			}
		} else {
			if pay.netOut() != 0 || pay.netIn() != 0 {
				problems = append(problems, "the cancelled order's payment is not refunded")
			}
			if ship == shipping.StatusArranged {
				problems = append(problems, "the cancelled order's shipment is still arranged")
			}
		}
		if len(problems) == 0 {
			continue
		}
		if !a.settled(at) {
			c.InFlight++
			continue
		}
		for _, p := range problems {
			c.Violations = append(c.Violations, Violation{Subject: "order:" + id, Problem: p, Details: map[string]any{
				"order_status": o.Status, "reason": o.Reason, "ended_at": at, "total": o.Total,
				"payment":         map[string]any{"debited": pay.debited, "refunded": pay.refunded, "credited": pay.credited, "reversed": pay.reverse},
				"shipment_status": cmp.Or(string(ship), "none")}})
		}
	}
	return c, nil
}

// sagas checks that every saga instance is finished or inside its
// type's deadline.
func (a *auditor) sagas(ctx context.Context) (Check, error) {
	c := Check{Name: CheckSagas}
	if a.src.Sagas == nil {
		return a.skipped(CheckSagas, "saga index"), nil
	}
	err := a.src.Sagas.EachInstance(ctx, func(in saga.Indexed) error {
		if !a.mine(in.Tenant) {
			return nil
		}
		c.Checked++
		subject := "saga:" + in.ID
		switch in.Status {
		case saga.Completed, saga.Compensated:
		case saga.Failed:
			c.Violations = append(c.Violations, Violation{Subject: subject,
				Problem: "the saga failed: its compensation ran out of attempts and it needs an operator (POST /api/v1/sagas/{id}/retry)",
				Details: map[string]any{"type": in.Type, "status": in.Status, "since": in.UpdatedAt}})
		default:
			deadline := a.src.SagaDeadlines[in.Type]
			if deadline <= 0 {
				deadline = a.opts.SagaDeadline
			}
			if age := a.now.Sub(in.UpdatedAt); age > deadline {
				c.Violations = append(c.Violations, Violation{Subject: subject, Problem: "the saga is unfinished past its deadline",
					Details: map[string]any{"type": in.Type, "status": in.Status, "since": in.UpdatedAt,
						"deadline_seconds": deadline.Seconds(), "age_seconds": age.Round(time.Second).Seconds()}})
			}
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("audit: saga index: %w", err)
	}
	return c, nil
}

// relays checks that every relay has published up to its log's head,
// giving those behind Settle to catch up.
func (a *auditor) relays(ctx context.Context) (Check, error) {
	if len(a.src.Relays) == 0 && a.src.Unchecked[CheckRelays] != "" {
		return a.skipped(CheckRelays, "relay"), nil
	}
	c := Check{Name: CheckRelays, Checked: len(a.src.Relays)}
	type behind struct {
		r         Relay
		pos, head uint64
	}
	var lagging []behind
	for _, r := range a.src.Relays {
		head, err := r.Head(ctx)
		if err != nil {
			return c, fmt.Errorf("audit: relay %s: head: %w", r.Name, err)
		}
		pos, err := r.Position(ctx)
		if err != nil {
			return c, fmt.Errorf("audit: relay %s: checkpoint: %w", r.Name, err)
		}
		if pos < head {
			lagging = append(lagging, behind{r, pos, head})
		}
	}
	err := a.poll(ctx, func() (bool, error) {
		still := lagging[:0]
		for _, b := range lagging {
			pos, err := b.r.Position(ctx)
			if err != nil {
				return false, fmt.Errorf("audit: relay %s: checkpoint: %w", b.r.Name, err)
			}
			if b.pos = pos; pos < b.head {
				still = append(still, b)
			}
		}
		lagging = still
		return len(lagging) == 0, nil
	})
	if err != nil {
		return c, err
	}
	for _, b := range lagging {
		c.Violations = append(c.Violations, Violation{Subject: "relay:" + b.r.Name, Problem: "the relay has not published its log up to the head",
			Details: map[string]any{"checkpoint": b.pos, "head": b.head, "lag": b.head - b.pos}})
	}
	return c, nil
}

// consumers checks that every consumer has handled its stream, giving
// those with a backlog Settle to work it off.
func (a *auditor) consumers(ctx context.Context) (Check, error) {
	if len(a.src.Consumers) == 0 && a.src.Unchecked[CheckConsumers] != "" {
		return a.skipped(CheckConsumers, "bus"), nil
	}
	c := Check{Name: CheckConsumers, Checked: len(a.src.Consumers)}
	backlog := map[string]uint64{}
	pending := slices.Clone(a.src.Consumers)
	err := a.poll(ctx, func() (bool, error) {
		still := pending[:0]
		for _, cons := range pending {
			n, err := cons.Backlog(ctx)
			if err != nil {
				return false, fmt.Errorf("audit: consumer %s: %w", cons.Name, err)
			}
			if backlog[cons.Name] = n; n > 0 {
				still = append(still, cons)
			}
		}
		pending = still
		return len(pending) == 0, nil
	})
	if err != nil {
		return c, err
	}
	for _, cons := range pending {
		c.Violations = append(c.Violations, Violation{Subject: "consumer:" + cons.Name, Problem: "the consumer has messages it has not handled",
			Details: map[string]any{"backlog": backlog[cons.Name]}})
	}
	return c, nil
}

// poll calls done until it reports true or Settle passes (at least once).
func (a *auditor) poll(ctx context.Context, done func() (bool, error)) error {
	deadline := time.Now().Add(a.opts.Settle)
	for {
		ok, err := done()
		if err != nil || ok || !time.Now().Before(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("audit: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
