package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRequestIDPlacesTheRequestInATrace(t *testing.T) {
	var seen string
	h := RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.Header.Get(TraceParentHeader) }))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set(TraceParentHeader, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get(TraceIDHeader) != "0af7651916cd43dd8448eb211c80319c" || seen[3:35] != "0af7651916cd43dd8448eb211c80319c" ||
		seen[36:52] == "b7ad6b7169203331" {
		t.Fatalf("trace ID %q, handler saw %q: want the same trace, a span of its own", rec.Header().Get(TraceIDHeader), seen)
	}
	for _, bad := range []string{"garbage", "00-00000000000000000000000000000000-b7ad6b7169203331-01", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set(TraceParentHeader, bad)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if id := rec.Header().Get(TraceIDHeader); len(id) != 32 || strings.Contains(bad, id) || seen[3:35] != id {
			t.Errorf("traceparent %q: trace %q, handler saw %q: want a new trace", bad, id, seen)
		}
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if id := rec.Header().Get(TraceIDHeader); len(id) != 32 || seen[3:35] != id {
		t.Fatalf("new trace: header %q, handler saw %q", id, seen)
	}
}
