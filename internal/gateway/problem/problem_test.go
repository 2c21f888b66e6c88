package problem_test

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/agora-commerce/agora/internal/gateway/problem"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

func TestWrite(t *testing.T) {
	r := httptest.NewRequest("GET", "/api/v1/products", nil)
	w := httptest.NewRecorder()
	w.Header().Set(httpapi.RequestIDHeader, "req-9")
	problem.Write(w, r, 429, "rate_limited", "slow down")
	var p httpapi.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	want := httpapi.Problem{Type: "/problems/rate-limited", Title: "Too Many Requests", Status: 429, Detail: "slow down",
		Instance: "/api/v1/products", Reason: "rate_limited", RequestID: "req-9"}
	if w.Code != 429 || w.Header().Get("Content-Type") != problem.ContentType || p.Type != want.Type || p.Title != want.Title ||
		p.Status != want.Status || p.Detail != want.Detail || p.Instance != want.Instance || p.Reason != want.Reason || p.RequestID != want.RequestID {
		t.Fatalf("got %d %+v", w.Code, p)
	}
}

func TestResponse(t *testing.T) {
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set(httpapi.RequestIDHeader, "req-1")
	resp := problem.Response(r, 503, "", "down", 7)
	body, _ := io.ReadAll(resp.Body)
	var p httpapi.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "7" || resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) ||
		p.Type != "about:blank" || p.Title != "Service Unavailable" || p.Status != 503 || p.RequestID != "req-1" || p.Instance != "/x" {
		t.Fatalf("got %v %s", resp.Header, body)
	}
	if resp := problem.Response(nil, 500, "", "x", 0); resp.Header.Get("Retry-After") != "" {
		t.Fatal("Retry-After without a delay")
	}
}
