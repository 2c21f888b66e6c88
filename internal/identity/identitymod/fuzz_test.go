package identitymod_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/agora-commerce/agora/internal/identity/identitymod"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/testenv"
)

// FuzzIdentityWrites sends arbitrary bodies to identity's writes
// (moduletest.FuzzWrites: never a 5xx, refusals are problems, a 2xx only
// for JSON): registering, logging in, refreshing and logging out.
func FuzzIdentityWrites(f *testing.F) {
	store, db := testenv.SQLite(f)
	fake := paymentsapi.OpenAccount.Answer(func(_ context.Context, r paymentsapi.OpenAccountRequest) (string, error) {
		return "acct-" + r.Meta.User, nil
	})
	h := moduletest.Start(f, identitymod.Module, store, db, &moduletest.Options{Fakes: []call.Answer{fake}})
	anon := h.As("")
	r := anon.Do("POST", "/api/v1/customers", `{"email":"fuzz@agora.test","password":"password-123","name":"Fuzz"}`)
	if r.Status != http.StatusCreated {
		f.Fatalf("register: %d %s", r.Status, r.Raw)
	}
	r = anon.Do("POST", "/api/v1/auth/token", `{"email":"fuzz@agora.test","password":"password-123"}`)
	refresh, _ := r.Body["refresh_token"].(string)
	if r.Status != http.StatusOK || refresh == "" {
		f.Fatalf("login: %d %s", r.Status, r.Raw)
	}
	moduletest.FuzzWrites(f, h, []moduletest.Write{
		{Method: "POST", Path: "/api/v1/customers", As: anon},
		{Method: "POST", Path: "/api/v1/auth/token", As: anon},
		{Method: "POST", Path: "/api/v1/auth/refresh", As: anon},
		{Method: "POST", Path: "/api/v1/auth/logout", As: h.As("customer")},
	},
		`{"email":"ann@example.com","password":"correct horse","name":"Ann"}`,
		`{"email":"fuzz@agora.test","password":"password-123","tenant":"demo"}`,
		`{"email":"fuzz@agora.test","password":"wrong"}`,
		`{"refresh_token":"`+refresh+`"}`, `{"refresh_token":"x"}`,
		`{"email":"a@b","password":"`+string(make([]byte, 0))+`"}`,
		`{"email":"\u0000@x.y","password":"long enough","name":"M"}`,
		`{"email":"Ann@Example.com","password":"correct horse","name":"`+"\u202e"+`"}`,
		`["mal@example.com"]`, `{"password":"long enough","name":"M"}`,
		`{}`, `[]`, `null`, ``, `{"email":`,
	)
}
