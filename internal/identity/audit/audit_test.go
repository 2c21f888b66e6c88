package audit_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/identity"
	"github.com/agora-commerce/agora/internal/identity/audit"
	"github.com/agora-commerce/agora/internal/testenv"
)

var when = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func readStream(t *testing.T, store eventstore.Store, stream string) []eventstore.Record {
	t.Helper()
	recs, err := store.ReadStream(context.Background(), stream, eventstore.StreamRead{})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestStream(t *testing.T) {
	if got := audit.Stream("acme"); got != "audit-acme" {
		t.Errorf("Stream(acme) = %q, want audit-acme", got)
	}
	if got := audit.Stream(identity.UnknownTenant); got != audit.StreamPrefix+identity.UnknownTenant {
		t.Errorf("Stream(%s) = %q", identity.UnknownTenant, got)
	}
}

func TestRecordAppendsToTheTenantsStream(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, _ *sql.DB) {
		log := audit.New(store)
		ctx := identity.WithOrigin(context.Background(), identity.Origin{
			Addr: "203.0.113.7:4242", UserAgent: "curl/8", RequestID: "req-1", Actor: "user-admin",
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
		// Who is someone else than the actor so that the metadata shows
		// which of them is the user.
		created := identity.AuditEvent{
			Type: identity.AuditUserCreated, Who: "user-acting-for-admin", What: "created a user", When: when,
			From: "203.0.113.7", UserAgent: "curl/8", Subject: "user-42", Roles: []string{"customer", "staff"},
		}
		if err := log.Record(ctx, "acme", created); err != nil {
			t.Fatal(err)
		}
		failed := identity.AuditEvent{
			Type: identity.AuditLoginFailed, Who: "mallory@example.com", What: "login refused", When: when.Add(time.Second),
			Reason: identity.ReasonWrongPassword,
		}
		if err := log.Record(context.Background(), "acme", failed); err != nil {
			t.Fatal(err)
		}
		other := identity.AuditEvent{Type: identity.AuditTenantCreated, Who: "root", What: "created tenant", When: when}
		if err := log.Record(ctx, "globex", other); err != nil {
			t.Fatal(err)
		}

		recs := readStream(t, store, "audit-acme")
		if len(recs) != 2 {
			t.Fatalf("audit-acme has %d events, want 2: %+v", len(recs), recs)
		}
		r := recs[0]
		if r.StreamID != "audit-acme" || r.Version != 1 || r.Type != identity.AuditUserCreated {
			t.Errorf("first record: stream %q version %d type %q; want audit-acme, 1, %s", r.StreamID, r.Version, r.Type, identity.AuditUserCreated)
		}
		wantMeta := eventstore.Metadata{Tenant: "acme", CorrelationID: "req-1", User: "user-admin",
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
		if r.Metadata != wantMeta {
			t.Errorf("first record metadata = %+v, want %+v", r.Metadata, wantMeta)
		}
		var data map[string]any
		if err := json.Unmarshal(r.Data, &data); err != nil {
			t.Fatalf("data %s: %v", r.Data, err)
		}
		wantData := map[string]any{
			"who": "user-acting-for-admin", "what": "created a user", "when": "2025-01-02T03:04:05Z",
			"from": "203.0.113.7", "user_agent": "curl/8", "subject": "user-42",
			"roles": []any{"customer", "staff"},
		}
		if !reflect.DeepEqual(data, wantData) {
			t.Errorf("first record data = %v, want %v (the type is the record's, not the data's)", data, wantData)
		}
		var back identity.AuditEvent
		if err := json.Unmarshal(r.Data, &back); err != nil {
			t.Fatal(err)
		}
		back.Type = r.Type
		if !reflect.DeepEqual(back, created) {
			t.Errorf("decoded event = %+v, want %+v", back, created)
		}

		// Without an origin in the context (a login has no authenticated
		// caller), a refusal's user is anonymous (its Who is only what the
		// client typed), there is no correlation or trace, and empty fields
		// are left out of the data.
		r = recs[1]
		if r.Version != 2 || r.Type != identity.AuditLoginFailed {
			t.Errorf("second record: version %d type %q; want 2, %s", r.Version, r.Type, identity.AuditLoginFailed)
		}
		if want := (eventstore.Metadata{Tenant: "acme", User: audit.Anonymous}); r.Metadata != want {
			t.Errorf("second record metadata = %+v, want %+v", r.Metadata, want)
		}
		data = nil
		if err := json.Unmarshal(r.Data, &data); err != nil {
			t.Fatal(err)
		}
		wantData = map[string]any{"who": "mallory@example.com", "what": "login refused", "when": "2025-01-02T03:04:06Z", "reason": "wrong_password"}
		if !reflect.DeepEqual(data, wantData) {
			t.Errorf("second record data = %v, want %v", data, wantData)
		}

		recs = readStream(t, store, "audit-globex")
		if len(recs) != 1 || recs[0].Type != identity.AuditTenantCreated || recs[0].Metadata.Tenant != "globex" {
			t.Fatalf("audit-globex = %+v, want one TenantCreated of tenant globex", recs)
		}

		// The log holds exactly these three events, and nothing else was
		// appended anywhere.
		all, err := store.ReadAll(context.Background(), 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var streams []string
		for _, r := range all {
			streams = append(streams, r.StreamID)
		}
		if want := []string{"audit-acme", "audit-acme", "audit-globex"}; !reflect.DeepEqual(streams, want) {
			t.Errorf("streams of the global log = %q, want %q", streams, want)
		}
	})
}

func TestRecordTakesOnlyCorrelationAndActorFromTheOrigin(t *testing.T) {
	store, _ := testenv.SQLite(t)
	ctx := identity.WithOrigin(context.Background(), identity.Origin{Addr: "198.51.100.1", UserAgent: "agent/1", RequestID: "req-9"})
	if err := audit.New(store).Record(ctx, "acme", identity.AuditEvent{Type: identity.AuditLoginSucceeded, Who: "u-1", What: "logged in", When: when}); err != nil {
		t.Fatal(err)
	}
	recs := readStream(t, store, "audit-acme")
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	// The origin's address and agent are the caller's to copy into the
	// event; Record takes only the request ID, trace and actor from it.
	if strings.Contains(string(recs[0].Data), "198.51.100.1") || strings.Contains(string(recs[0].Data), "agent/1") {
		t.Errorf("Record copied the origin into the data: %s", recs[0].Data)
	}
	// No authenticated actor: the user is who acted.
	if want := (eventstore.Metadata{Tenant: "acme", CorrelationID: "req-9", User: "u-1"}); recs[0].Metadata != want {
		t.Errorf("metadata = %+v, want %+v", recs[0].Metadata, want)
	}
}

func TestRecordReportsAppendFailures(t *testing.T) {
	store, _ := testenv.SQLite(t)
	log := audit.New(store)

	// An event without a type is invalid for the store.
	err := log.Record(context.Background(), "acme", identity.AuditEvent{Who: "u-1", What: "nothing", When: when})
	if !errors.Is(err, eventstore.ErrInvalidEvent) {
		t.Errorf("Record without a type: %v, want ErrInvalidEvent", err)
	}
	if err == nil || !strings.HasPrefix(err.Error(), "audit: append") {
		t.Errorf("Record without a type: error %q does not say the append failed", err)
	}
	if recs := readStream(t, store, "audit-acme"); len(recs) != 0 {
		t.Errorf("an invalid event was stored: %+v", recs)
	}

	// A closed store refuses the append and Record says so.
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	err = log.Record(context.Background(), "acme", identity.AuditEvent{Type: identity.AuditLoginSucceeded, Who: "u-1", When: when})
	if err == nil {
		t.Fatal("Record on a closed store succeeded")
	}
	if !strings.Contains(err.Error(), identity.AuditLoginSucceeded) {
		t.Errorf("error %q does not name the event type", err)
	}
}
