package httpapi

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
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

// TestHeaderCarrier: headerCarrier reads and writes what
// propagation.HeaderCarrier does, whatever the case of the key asked for;
// a tracestate travels with its traceparent.
func TestHeaderCarrier(t *testing.T) {
	h := http.Header{}
	h.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	h.Set("Tracestate", "vendor=1")
	h.Set("Baggage", "k=v")
	c, std := headerCarrier(h), propagation.HeaderCarrier(h)
	for _, k := range []string{"traceparent", "tracestate", "baggage", "TRACEPARENT", "x-missing"} {
		if c.Get(k) != std.Get(k) {
			t.Errorf("Get(%q) = %q, want %q", k, c.Get(k), std.Get(k))
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(c.Keys())), slices.Sorted(slices.Values(std.Keys()))) {
		t.Errorf("Keys %v, want %v", c.Keys(), std.Keys())
	}
	got, want := http.Header{}, http.Header{}
	for _, k := range []string{"traceparent", "tracestate", "baggage"} {
		headerCarrier(got).Set(k, "v-"+k)
		propagation.HeaderCarrier(want).Set(k, "v-"+k)
	}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("Set wrote %v, want %v", got, want)
	}

	var seen http.Header
	rt := RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.Header.Clone() }))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header = h.Clone()
	rt.ServeHTTP(httptest.NewRecorder(), req)
	if seen.Get("Tracestate") != "vendor=1" || seen.Get("Traceparent")[3:35] != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("the handler saw %v", seen)
	}
}
