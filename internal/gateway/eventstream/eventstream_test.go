package eventstream_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/internal/gateway/eventstream"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/messaging"
)

// bus delivers its messages to every subscriber, then waits for the end.
type bus []messaging.Delivery

func (b bus) Subscribe(ctx context.Context, _ messaging.Consumer, h messaging.Handler) error {
	for _, d := range b {
		if err := h(ctx, d); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

func delivery(id, tenant, data string) messaging.Delivery {
	return messaging.Delivery{Message: messaging.Message{ID: id, Type: "t.Happened.v1", Data: []byte(data),
		Headers: map[string]string{messaging.HeaderTenant: tenant}}}
}

func TestStreamsTheCallersTenantOnly(t *testing.T) {
	b := bus{delivery("1", "acme", `{"a": 1}`), delivery("2", "demo", "{\n\"b\": 2}"), delivery("3", "", `{"c":3}`), delivery("4", "demo", `not json`)}
	h := eventstream.Handler(b, "EVENTS")
	c := &auth.Claims{Tenant: "demo", Roles: []string{"admin"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(auth.WithClaims(r.Context(), c)))
	}))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", res.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(res.Body)
	var got []string
	for sc.Scan() && len(got) < 7 {
		if line := sc.Text(); line != "" {
			got = append(got, line)
		}
	}
	want := []string{": agora events of tenant demo", "id: 2", "event: t.Happened.v1", `data: {"b":2}`, "id: 3", "event: t.Happened.v1", `data: {"c":3}`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("stream:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRefusesAnonymousCallers(t *testing.T) {
	rec := httptest.NewRecorder()
	eventstream.Handler(bus{}, "EVENTS").ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("anonymous: %d", rec.Code)
	}
}
