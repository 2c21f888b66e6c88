package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/audit"
	"github.com/agora-commerce/agora/internal/payments"
	payapp "github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/readmodel"
	"github.com/agora-commerce/agora/money"
	"github.com/agora-commerce/agora/saga"
)

// memLog is a log in memory.
type memLog []eventstore.Record

func (l memLog) ReadAll(_ context.Context, after uint64, limit int) ([]eventstore.Record, error) {
	var out []eventstore.Record
	for _, r := range l {
		if r.Position > after && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (l memLog) Head(context.Context) (uint64, error) { return uint64(len(l)), nil }

// add appends payments events to account id's stream.
func (l *memLog) add(t *testing.T, id string, at time.Time, evs ...payments.Event) {
	t.Helper()
	var version uint64
	for _, r := range *l {
		if r.StreamID == "account-"+id {
			version = r.Version
		}
	}
	for _, e := range evs {
		d, err := payapp.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		version++
		*l = append(*l, eventstore.Record{Position: uint64(len(*l) + 1), StreamID: "account-" + id, Version: version,
			Type: d.Type, Data: d.Data, RecordedAt: at})
	}
}

// rows is a payments read model in memory.
type rows []readmodel.Summary

func (r rows) EachAccount(_ context.Context, fn func(readmodel.Summary) error) error {
	for _, s := range r {
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

type sagas []saga.Indexed

func (s sagas) EachInstance(_ context.Context, fn func(saga.Indexed) error) error {
	for _, in := range s {
		if err := fn(in); err != nil {
			return err
		}
	}
	return nil
}

func find(t *testing.T, rep audit.Report, name string) audit.Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %s", name)
	return audit.Check{}
}

// TestAuditTransfersAndGrace: a debit that never reached its target is
// in flight within the grace period and a violation after it; the read
// model, at the version it reflects, agrees; a tenant's audit sees only
// its own.
func TestAuditTransfersAndGrace(t *testing.T) {
	ctx := context.Background()
	usd := money.MustCurrency("USD")
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	var log memLog
	leg := payments.TransferLeg{Key: "t1", Reference: "transfer:t1", Amount: money.New(300, usd), At: now.Add(-time.Hour)}
	log.add(t, "a", now.Add(-2*time.Hour), payments.AccountOpened{AccountID: "a", OwnerID: "ann", Tenant: "demo", Currency: usd, InitialBalance: 1000, At: now.Add(-2 * time.Hour)})
	log.add(t, "b", now.Add(-2*time.Hour), payments.AccountOpened{AccountID: "b", OwnerID: "bob", Tenant: "other", Currency: usd, At: now.Add(-2 * time.Hour)})
	log.add(t, "a", now.Add(-time.Hour), payments.TransferDebited(leg))
	// The read model reflects a at version 2, b at version 1.
	rm := rows{
		{ID: "a", OwnerID: "ann", Tenant: "demo", Balance: money.New(700, usd), Status: "Active", TransactionCount: 2, Version: 2},
		{ID: "b", OwnerID: "bob", Tenant: "other", Balance: money.New(0, usd), Status: "Active", TransactionCount: 0, Version: 1},
	}
	src := audit.Sources{Logs: []audit.Log{log}, Accounts: rm, Sagas: sagas{{ID: "s", Type: "transfer", Status: saga.Started, UpdatedAt: now.Add(-time.Minute)}},
		Relays:    []audit.Relay{{Name: "events", Head: log.Head, Position: func(context.Context) (uint64, error) { return 3, nil }}},
		Consumers: []audit.Consumer{{Name: "stuck", Backlog: func(context.Context) (uint64, error) { return 4, nil }}}}
	rep, err := audit.Run(ctx, src, audit.Options{Now: func() time.Time { return now }, Grace: 2 * time.Hour, Settle: -1})
	if err != nil {
		t.Fatal(err)
	}
	money := find(t, rep, audit.CheckMoney)
	if !money.OK || money.Checked != 2 || money.InFlight != 1 {
		t.Errorf("within the grace period: %+v", money)
	}
	if c := find(t, rep, audit.CheckAccounts); !c.OK || c.Checked != 2 {
		t.Errorf("accounts: %+v", c)
	}
	if c := find(t, rep, audit.CheckSagas); !c.OK || c.Checked != 1 {
		t.Errorf("sagas: %+v", c)
	}
	if c := find(t, rep, audit.CheckConsumers); c.OK || c.Violations[0].Subject != "consumer:stuck" {
		t.Errorf("consumers: %+v", c)
	}

	rep, err = audit.Run(ctx, src, audit.Options{Now: func() time.Time { return now }, Grace: time.Minute, Settle: -1, Tenant: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	money = find(t, rep, audit.CheckMoney)
	if money.OK || money.Checked != 1 || money.Violations[0].Subject != "transfer:t1" || money.Violations[0].Details["debited"] != int64(300) {
		t.Errorf("past the grace period: %+v", money)
	}
	if c := find(t, rep, audit.CheckAccounts); !c.OK || c.Checked != 1 {
		t.Errorf("the demo tenant's accounts: %+v", c)
	}
}

// TestAuditSkipsWhatItCannotRead: a check without its source says why.
func TestAuditSkipsWhatItCannotRead(t *testing.T) {
	rep, err := audit.Run(context.Background(), audit.Sources{Logs: []audit.Log{memLog{}},
		Unchecked: map[string]string{audit.CheckConsumers: "no bus"}}, audit.Options{Settle: -1})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("%+v", rep)
	}
	for _, name := range []string{audit.CheckMoney, audit.CheckAccounts, audit.CheckSagas} {
		if c := find(t, rep, name); c.Skipped == "" {
			t.Errorf("%s not skipped: %+v", name, c)
		}
	}
	if c := find(t, rep, audit.CheckConsumers); c.Skipped != "no bus" {
		t.Errorf("consumers: %+v", c)
	}
	if _, err := audit.Run(context.Background(), audit.Sources{}, audit.Options{}); err == nil {
		t.Error("an audit without a log ran")
	}
}
