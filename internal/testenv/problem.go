package testenv

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// Problem checks that an answer (its status, headers and body) is an RFC
// 9457 problem with status want — the media type, the JSON, and a type,
// title and detail — and returns it for the caller's further checks.
func Problem(t testing.TB, got int, header http.Header, body []byte, want int) httpapi.Problem {
	t.Helper()
	if got != want || header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("answer %d %s, want a %d problem: %s", got, header.Get("Content-Type"), want, body)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem: %v: %s", err, body)
	}
	if p.Status != want || p.Type == "" || p.Title == "" || p.Detail == "" {
		t.Fatalf("problem %+v", p)
	}
	return p
}
