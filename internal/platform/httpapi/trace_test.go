package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestContinueTrace(t *testing.T) {
	const in = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	got := ContinueTrace(in)
	if len(got) != 55 || got[:36] != in[:36] || got[36:52] == in[36:52] || got[52:] != "-01" {
		t.Fatalf("continued %q as %q: want the same trace and flags, a new span", in, got)
	}
	for _, bad := range []string{"", "garbage", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
		"00-00000000000000000000000000000000-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
		"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"} {
		got := ContinueTrace(bad)
		if _, _, ok := parseTraceParent(got); !ok || strings.Contains(bad, got[3:35]) {
			t.Errorf("ContinueTrace(%q) = %q: want a valid traceparent in a new trace", bad, got)
		}
	}
	// A later version is read by its first four fields.
	if got := ContinueTrace("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-more"); got[3:35] != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("version 01: %q", got)
	}
}

func TestRequestIDPlacesTheRequestInATrace(t *testing.T) {
	var seen string
	h := RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.Header.Get(TraceParentHeader) }))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set(TraceParentHeader, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get(TraceIDHeader) != "0af7651916cd43dd8448eb211c80319c" || seen[3:35] != "0af7651916cd43dd8448eb211c80319c" {
		t.Fatalf("trace ID %q, handler saw %q", rec.Header().Get(TraceIDHeader), seen)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if id := rec.Header().Get(TraceIDHeader); len(id) != 32 || seen[3:35] != id {
		t.Fatalf("new trace: header %q, handler saw %q", id, seen)
	}
}
