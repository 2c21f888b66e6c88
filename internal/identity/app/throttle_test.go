package app_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/identity"
	"github.com/agora-commerce/agora/internal/identity/app"
	"github.com/agora-commerce/agora/internal/identity/audit"
	"github.com/agora-commerce/agora/internal/identity/store"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/testenv"
)

// TestFailedLoginsAreThrottled: after five failures for an email in 15
// minutes, each later attempt waits a doubling delay (429 with the wait),
// even with the right password; an unknown email is treated the same, so
// nobody learns whether an account exists; a success clears the count;
// each throttled attempt is an audit event.
func TestFailedLoginsAreThrottled(t *testing.T) {
	es, db := testenv.SQLite(t)
	repo, err := store.Open(context.Background(), db, false)
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	var mu sync.Mutex
	now := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	svc, err := app.New(app.Config{Repo: repo, Signer: auth.NewSigner(key, auth.Options{}), Audit: audit.New(es), Accounts: &accounts{},
		Hasher: identity.NewHasher(identity.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const pw = "s3cret-Passw0rd"
	if _, err := svc.Register(ctx, "", "ann@example.com", pw, "Ann"); err != nil {
		t.Fatal(err)
	}
	login := func(email, password string) error {
		_, err := svc.Login(ctx, "", email, password)
		return err
	}
	for _, email := range []string{"Ann@example.com", "nobody@example.com"} {
		for i := range app.FreeLoginFailures {
			if err := login(email, "wrong"); !errors.Is(err, identity.ErrBadCredentials) {
				t.Fatalf("%s, failure %d: %v, want bad credentials", email, i+1, err)
			}
		}
		// The sixth failure imposes a wait of 1 s; within it, even the
		// right password is refused unchecked, with the wait.
		if err := login(email, "wrong"); !errors.Is(err, identity.ErrBadCredentials) {
			t.Fatalf("%s, sixth failure: %v", email, err)
		}
		err := login(email, pw)
		var e *errs.Error
		if !errors.As(err, &e) || e.Code != errs.TooManyRequests || e.Reason != "login_throttled" || e.RetryAfter != time.Second {
			t.Fatalf("%s within the wait: %v (%+v), want 429 login_throttled after 1 s", email, err, e)
		}
		// Each further failure doubles the wait.
		advance(time.Second)
		if err := login(email, "wrong"); !errors.Is(err, identity.ErrBadCredentials) {
			t.Fatalf("%s after the wait: %v", email, err)
		}
		if err := login(email, pw); !errors.As(err, &e) || e.RetryAfter != 2*time.Second {
			t.Fatalf("%s: %v, want a 2 s wait", email, err)
		}
		advance(2 * time.Second)
	}
	// Once the wait is over the right password logs in, and clears the count.
	if err := login("ann@example.com", pw); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
	if err := login("ann@example.com", "wrong"); !errors.Is(err, identity.ErrBadCredentials) {
		t.Fatalf("after a success, a failure is free again: %v", err)
	}
	// Failures older than the window are forgotten.
	advance(app.LoginFailureWindow + time.Minute)
	for range app.FreeLoginFailures {
		_ = login("nobody@example.com", "wrong")
	}
	if err := login("nobody@example.com", "wrong"); !errors.Is(err, identity.ErrBadCredentials) {
		t.Fatalf("a new window: %v", err)
	}
	recs, err := es.ReadStream(ctx, audit.Stream("demo"), eventstore.StreamRead{})
	if err != nil {
		t.Fatal(err)
	}
	throttled := 0
	for _, r := range recs {
		if r.Type == identity.AuditLoginThrottled {
			throttled++
			if strings.Contains(string(r.Data), pw) {
				t.Errorf("the audit event holds the password: %s", r.Data)
			}
		}
	}
	if throttled != 4 {
		t.Errorf("%d throttled-login audit events, want 4", throttled)
	}
}
