package demo_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/internal/demo"
	"github.com/agora-commerce/agora/internal/module"
)

// fakeAPI records the calls and answers like the platform: tokens named
// after the user, SKUs that exist answer 409.
type fakeAPI struct {
	calls    []string
	existing map[string]bool
}

func (f *fakeAPI) route(r *http.Request) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.calls = append(f.calls, r.Method+" "+r.URL.Path+" "+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/v1/products" && f.existing[body["sku"].(string)]:
			w.WriteHeader(http.StatusConflict)
		case r.URL.Path == "/api/v1/products":
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(map[string]string{"id": "id-" + body["sku"].(string)})
		default:
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`{}`))
		}
	})
}

func TestSeed(t *testing.T) {
	d := module.Demo{CustomerAccountID: "acct-c", Created: true, CustomerToken: "tok-c@x", MerchantToken: "tok-m@x"}
	f := &fakeAPI{existing: map[string]bool{"TEE-1": true}}
	if err := demo.Seed(context.Background(), d, demo.InProcess(f.route)); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(f.calls, "\n")
	for _, want := range []string{"POST /api/v1/accounts/acct-c/deposits tok-c@x", "POST /api/v1/products tok-m@x",
		"POST /api/v1/inventory/id-MUG-1/restock tok-m@x"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "id-TEE-1") {
		t.Errorf("an existing product was restocked:\n%s", got)
	}
	// A second start: nothing is funded again.
	d.Created, f.calls = false, nil
	f.existing = map[string]bool{"MUG-1": true, "TEE-1": true, "CAP-1": true, "BOOK-DDD": true, "STICKER-1": true}
	if err := demo.Seed(context.Background(), d, demo.InProcess(f.route)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, "\n"); strings.Contains(got, "deposits") || strings.Contains(got, "restock") || strings.Contains(got, "auth/token") {
		t.Fatalf("a second seed changed something:\n%s", got)
	}
}

func TestSeedFailsOnAnUnexpectedAnswer(t *testing.T) {
	api := demo.InProcess(func(*http.Request) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	})
	if err := demo.Seed(context.Background(), module.Demo{Created: true}, api); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err %v", err)
	}
	if _, err := demo.InProcess(func(*http.Request) http.Handler { return nil })(context.Background(), "GET", "/x", "", nil, nil, 200); err == nil {
		t.Fatal("no route: no error")
	}
}
