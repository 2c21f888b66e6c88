package load

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseMix(t *testing.T) {
	m, err := ParseMix(DefaultMix)
	if err != nil {
		t.Fatal(err)
	}
	if m != (Mix{40, 25, 15, 10, 10}) || m.String() != DefaultMix {
		t.Fatalf("default mix: %v %q", m, m.String())
	}
	m, err = ParseMix(" order = 3 , browse=1,")
	if err != nil || m != (Mix{1, 0, 3, 0, 0}) || m.Weight(Order) != 3 || m.Weight("nope") != 0 {
		t.Fatalf("partial mix: %v %v", m, err)
	}
	for in, want := range map[string]string{
		"browse=40,checkout=5": `unknown scenario "checkout" (scenarios: browse, product, order, check, transfer)`,
		"browse=-1,order=2":    "browse: weight -1 is negative",
		"browse=x":             `browse: weight "x" is not a whole number`,
		"browse=1.5":           `browse: weight "1.5" is not a whole number`,
		"browse":               `"browse": want name=weight`,
		"browse=1,browse=2":    `"browse" named twice`,
		"browse=0,order=0":     "no scenario has a positive weight",
		"":                     "no scenario has a positive weight",
		"order=2000000":        "over 1000000",
	} {
		if _, err := ParseMix(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseMix(%q): %v, want %q", in, err, want)
		}
	}
}

// TestPick: the picks follow the weights, a zero weight is never picked,
// and one seed gives one sequence.
func TestPick(t *testing.T) {
	m, _ := ParseMix("browse=40,product=25,order=15,check=20,transfer=0")
	const n = 100_000
	counts := map[string]int{}
	r := newRand(7, 0)
	var first []string
	for i := range n {
		s := m.Pick(r)
		counts[s]++
		if i < 50 {
			first = append(first, s)
		}
	}
	for i, name := range Scenarios {
		want := float64(n) * float64(m[i]) / 100
		if got := float64(counts[name]); got < want*0.95-1 || got > want*1.05+1 {
			t.Errorf("%s: %v picks, want about %v", name, got, want)
		}
	}
	if counts[Transfer] != 0 {
		t.Errorf("a zero weight was picked %d times", counts[Transfer])
	}
	r = newRand(7, 0)
	for i, want := range first {
		if got := m.Pick(r); got != want {
			t.Fatalf("pick %d with the same seed: %s, then %s", i, want, got)
		}
	}
	other := newRand(7, 1)
	same := 0
	for _, want := range first {
		if m.Pick(other) == want {
			same++
		}
	}
	if same == len(first) {
		t.Error("users 0 and 1 pick the same sequence")
	}
}

func TestRetryAfter(t *testing.T) {
	for in, want := range map[string]time.Duration{"": time.Second, "3": 3 * time.Second, "0": 100 * time.Millisecond,
		"junk": time.Second, "3600": maxRetryAfter} {
		if got := retryAfter(in); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestDoHonoursRetryAfter: a 429 is counted apart, waited out and the
// same request (same Idempotency-Key) sent again; an unexpected status is
// an error naming the route and the problem's reason; a refusal asked
// for is counted as one.
func TestDoHonoursRetryAfter(t *testing.T) {
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/limited":
			keys = append(keys, r.Header.Get("Idempotency-Key"))
			if len(keys) < 3 {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			w.Write([]byte(`{"id":"x"}`))
		case "/conflict":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"title":"Conflict","status":409,"reason":"insufficient_funds","detail":"the balance is lower"}`))
		}
	}))
	defer srv.Close()
	st := newStats()
	c := &client{base: srv.URL, http: srv.Client(), st: st}
	var out struct{ ID string }
	a, err := c.do(context.Background(), call{scenario: Order, method: "POST", path: "/limited", route: "POST /limited", idemKey: "k1",
		body: map[string]int{"a": 1}, want: []int{200}, out: &out})
	if err != nil || a.status != 200 || out.ID != "x" || strings.Join(keys, ",") != "k1,k1,k1" {
		t.Fatalf("%v %v %+v %q", a, err, out, keys)
	}
	_, err = c.do(context.Background(), call{scenario: Transfer, method: "POST", path: "/conflict", route: "POST /conflict", want: []int{202}})
	if err == nil || err.Error() != "POST /conflict: 409 insufficient_funds: the balance is lower" {
		t.Fatalf("unexpected 409: %v", err)
	}
	if _, err = c.do(context.Background(), call{scenario: Transfer, method: "POST", path: "/conflict", route: "POST /conflict",
		want: []int{202}, refuse: []int{409}}); err != nil {
		t.Fatalf("expected refusal: %v", err)
	}
	rep := st.report(time.Second)
	o, tr := rep.Scenarios[index(Order)], rep.Scenarios[index(Transfer)]
	if o.Requests != 3 || o.OK != 1 || o.Throttled != 2 || o.Errors != 0 || tr.Requests != 2 || tr.Errors != 1 || tr.ExpectedRefusals != 1 {
		t.Fatalf("counts: order %+v transfer %+v", o, tr)
	}
	if rep.Total.Requests != 5 || len(rep.ErrorSamples) != 1 || rep.ErrorSamples[0].Scenario != Transfer {
		t.Fatalf("total %+v errors %+v", rep.Total, rep.ErrorSamples)
	}
	var table, js bytes.Buffer
	if err := rep.WriteTable(&table); err != nil || !strings.Contains(table.String(), "expected refusals") {
		t.Fatalf("table: %v\n%s", err, table.String())
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Total.Throttled != 2 {
		t.Fatalf("json: %v %s", err, js.String())
	}
}
