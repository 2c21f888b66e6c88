package moduletest

import (
	"encoding/json"
	"mime"
	"testing"
)

// Write is a write endpoint of a module, called by a caller.
type Write struct {
	// Method and Path are the request's, e.g. "POST", "/api/v1/products".
	Method, Path string
	// As is the caller.
	As *Client
}

// FuzzWrites is the body of a context's API fuzz target: every input is
// sent as the body of each write, and each answer must be
//   - no 5xx (so no panic either: the harness answers a panic 500);
//   - when it is not a 2xx, an application/problem+json object whose
//     "status" is the answer's status;
//   - a 2xx only for a body that is valid JSON (or empty, for the writes
//     that take none).
//
// seeds are added to the corpus first (realistic bodies and hostile ones).
// Start the harness once, before, with a store in a temporary directory:
// inputs then cost one HTTP round trip per write.
func FuzzWrites(f *testing.F, h *Harness, writes []Write, seeds ...string) {
	f.Helper()
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, w := range writes {
			c := *w.As
			c.h = c.h.On(t)
			r := c.Do(w.Method, w.Path, string(body))
			CheckAnswer(t, w.Method+" "+w.Path, body, r)
		}
	})
}

// CheckAnswer checks one answer to a write of body by FuzzWrites' rules.
func CheckAnswer(t testing.TB, what string, body []byte, r Response) {
	t.Helper()
	switch {
	case r.Status >= 500:
		t.Fatalf("%s with body %q: %d %s", what, body, r.Status, r.Raw)
	case r.Status >= 200 && r.Status < 300:
		if len(body) > 0 && !json.Valid(body) {
			t.Fatalf("%s with body %q, not JSON: %d %s", what, body, r.Status, r.Raw)
		}
	default:
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/problem+json" {
			t.Fatalf("%s with body %q: %d with Content-Type %q, want application/problem+json: %s",
				what, body, r.Status, r.Header.Get("Content-Type"), r.Raw)
		}
		var p struct {
			Status *int `json:"status"`
		}
		if err := json.Unmarshal(r.Raw, &p); err != nil || p.Status == nil || *p.Status != r.Status {
			t.Fatalf("%s with body %q: %d with a problem whose status is not %d: %s",
				what, body, r.Status, r.Status, r.Raw)
		}
	}
}
