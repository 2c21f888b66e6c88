package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/money"
)

// fuzzRequest has the shapes the APIs' request bodies have: strings,
// integers, money, a list of objects, an optional nested object.
type fuzzRequest struct {
	ID    string       `json:"id"`
	Price *money.Money `json:"price"`
	Items []struct {
		ProductID string `json:"product_id"`
		Quantity  int64  `json:"quantity"`
	} `json:"items"`
	Address *struct {
		City string `json:"city"`
	} `json:"address"`
	Version *uint64 `json:"version"`
	Active  bool    `json:"active"`
}

// FuzzDecode decodes arbitrary bodies with arbitrary Content-Types: a
// refusal is a 400, 413 or 415 problem+json whose status is the
// answer's; a body is accepted only if it is one valid JSON value and its
// Content-Type (if any) is JSON.
func FuzzDecode(f *testing.F) {
	for _, s := range []struct{ ct, body string }{
		{"application/json", `{"id":"o-1","items":[{"product_id":"p1","quantity":2}],"address":{"city":"Springfield"}}`},
		{"application/json; charset=utf-8", `{"price":{"amount":1999,"currency":"USD"},"version":3,"active":true}`},
		{"application/merge-patch+json", `{}`}, {"", `{"id":"x"}`}, {"text/plain", `{}`}, {"application/json;;", `{}`},
		{"application/json", ``}, {"application/json", ` `}, {"application/json", `null`}, {"application/json", `[]`},
		{"application/json", `{"id":"a"}{"id":"b"}`}, {"application/json", `{"id":"a"} x`}, {"application/json", `{"id":`},
		{"application/json", `{"unknown":1}`}, {"application/json", `{"items":{}}`}, {"application/json", `{"version":-1}`},
		{"application/json", `{"price":{"amount":1.5,"currency":"USD"}}`}, {"application/json", `{"price":{"amount":1,"currency":"ABC"}}`},
		{"application/json", `{"items":[{"quantity":9223372036854775808}]}`}, {"application/json", "{\"id\":\"\xff\"}"},
		{"application/json", `{"ID":"case"}`}, {"application/json", "\ufeff{}"}, {"application/json", `{"id":"a","id":"b"}`},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		r := httptest.NewRequest("POST", "/api/v1/things", bytes.NewReader(body))
		if ct != "" {
			r.Header["Content-Type"] = []string{ct}
		}
		var dst fuzzRequest
		err := httpapi.Decode(httptest.NewRecorder(), r, &dst)
		if err == nil {
			if !json.Valid(body) {
				t.Fatalf("Content-Type %q, body %q: accepted, but it is not JSON", ct, body)
			}
			if mt, _, perr := mime.ParseMediaType(ct); ct != "" && (perr != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json"))) {
				t.Fatalf("Content-Type %q accepted", ct)
			}
			return
		}
		switch code := errs.CodeOf(err); code {
		case errs.Invalid, errs.TooLarge, errs.Unsupported:
		default:
			t.Fatalf("Content-Type %q, body %q: refused with %s: %v", ct, body, code, err)
		}
		w := httptest.NewRecorder()
		httpapi.Error(w, r, err)
		var p httpapi.Problem
		if w.Code < 400 || w.Code >= 500 || w.Header().Get("Content-Type") != "application/problem+json" ||
			json.Unmarshal(w.Body.Bytes(), &p) != nil || p.Status != w.Code {
			t.Fatalf("Content-Type %q, body %q: answered %d %q %s", ct, body, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	})
}

// recordingWaiter records the position it is asked to wait for; it fails for
// positions that are 3 modulo 7, as a lagging read model would.
type recordingWaiter struct {
	called bool
	pos    uint64
}

func (w *recordingWaiter) WaitFor(_ context.Context, pos uint64) error {
	w.called, w.pos = true, pos
	if pos%7 == 3 {
		return context.DeadlineExceeded
	}
	return nil
}

// FuzzMinPosition parses arbitrary Agora-Min-Position values: a decimal
// integer that fits in 64 bits (spaces around it allowed) is waited for,
// exactly; the same after another log's name and a dot ("ordering.12"
// asked of a request of no log) waits for nothing and is no error;
// anything else is a 400 and waits for nothing.
func FuzzMinPosition(f *testing.F) {
	for _, s := range []string{
		"", "0", "1", "42", " 17 ", "0042", "18446744073709551615", "18446744073709551616", "-1", "+1", "1e3",
		"0x10", "1_000", "1.0", "１２", "3", "99999999999999999999999", "\t5\t", "5\x00", "\u00a05", "5,6",
		"ordering.12", "payments.0", ".5", "Ordering.5", "a.b.5", "x.", "in_ventory-x.7", "payments-p2.17", "2p.5", "-p.5",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest("GET", "/api/v1/orders", nil)
		if h != "" {
			r.Header[httpapi.MinPositionHeader] = []string{h}
		}
		var w recordingWaiter
		err := httpapi.Consistent(r, &w)
		if h == "" {
			if err != nil || w.called {
				t.Fatalf("no header: %v, waited %v", err, w.called)
			}
			return
		}
		// The reference: digits only, once trimmed, and at most 2^64-1,
		// after an optional log name ([a-z][a-z0-9_-]{0,63}) and a dot.
		s := strings.TrimSpace(h)
		other := false
		if i := strings.LastIndexByte(s, '.'); i >= 0 {
			name := s[:i]
			other = name != "" && len(name) <= 64 && name[0] >= 'a' && name[0] <= 'z' &&
				strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == ""
			if !other {
				s = "!" // not a token
			} else {
				s = s[i+1:]
			}
		}
		valid := s != "" && strings.Trim(s, "0123456789") == ""
		digits := strings.TrimLeft(s, "0")
		if digits == "" {
			digits = "0"
		}
		valid = valid && (len(digits) < 20 || len(digits) == 20 && digits <= "18446744073709551615")
		switch {
		case !valid:
			if errs.CodeOf(err) != errs.Invalid || w.called {
				t.Fatalf("%q: %v (waited %v), want a 400 without waiting", h, err, w.called)
			}
		case other:
			if err != nil || w.called {
				t.Fatalf("%q: another log's token: %v (waited %v), want nothing", h, err, w.called)
			}
		case !w.called || strconv.FormatUint(w.pos, 10) != digits:
			t.Fatalf("%q: waited %v for %d, want %s", h, w.called, w.pos, digits)
		case w.pos%7 == 3:
			if errs.CodeOf(err) != errs.Timeout || errs.ReasonOf(err) != "read_model_lagging" || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%q: the read model lagged, got %v", h, err)
			}
		case err != nil:
			t.Fatalf("%q: %v", h, err)
		}
	})
}
