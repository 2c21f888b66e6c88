package call_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/inventory"
	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/errs"
)

// requester is a fake bus: each request gets the next of answers (the
// last one again once they run out), and is recorded.
type requester struct {
	mu       sync.Mutex
	answers  []func(ctx context.Context, data []byte) ([]byte, error)
	subjects []string
	bodies   [][]byte
	// left is the time each request had left before its deadline (0:
	// none).
	left []time.Duration
	// routes, if set, answer instead, by subject.
	routes map[string]call.Answer
}

func (r *requester) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	r.mu.Lock()
	n := len(r.subjects)
	r.subjects = append(r.subjects, subject)
	r.bodies = append(r.bodies, data)
	var left time.Duration
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	r.left = append(r.left, left)
	if a, ok := r.routes[subject]; ok {
		r.mu.Unlock()
		return a.Respond(ctx, data), nil
	}
	a := r.answers[min(n, len(r.answers)-1)]
	r.mu.Unlock()
	return a(ctx, data)
}

func (r *requester) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.subjects)
}

var errNoResponders = errors.New("fake bus: no responders")

func refuse(context.Context, []byte) ([]byte, error) { return nil, errNoResponders }

// by answers as a responder running a would.
func by(a call.Answer) func(ctx context.Context, data []byte) ([]byte, error) {
	return func(ctx context.Context, data []byte) ([]byte, error) { return a.Respond(ctx, data), nil }
}

func reply(b string) func(context.Context, []byte) ([]byte, error) {
	return func(context.Context, []byte) ([]byte, error) { return []byte(b), nil }
}

var (
	exists = catalogapi.ProductExists.Answer(func(_ context.Context, r catalogapi.ProductRequest) (bool, error) {
		return r.ProductID == "p-1", nil
	})
	reserved = inventoryapi.Reserve.Answer(func(context.Context, inventoryapi.StockRequest) (call.None, error) {
		return call.None{}, nil
	})
)

// TestAttempts: a query is asked twice before it fails, a command once;
// an answer, even an error, is not asked again; a caller that gave up
// is not asked for again; the failure is Unavailable and keeps the bus's
// error.
func TestAttempts(t *testing.T) {
	product := catalogapi.ProductRequest{ProductID: "p-1"}
	stock := inventoryapi.StockRequest{Meta: meta, OrderID: "o-1", Lines: []inventoryapi.Line{{ProductID: "p-1", Quantity: 2}}}
	query := func(ctx context.Context, x *call.Exchange) (any, error) {
		return catalogapi.ProductExists.Bind(x)(ctx, product)
	}
	cmd := func(ctx context.Context, x *call.Exchange) (any, error) {
		return inventoryapi.Reserve.Bind(x)(ctx, stock)
	}
	cancelled := func(ctx context.Context) context.Context {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		return ctx
	}
	for _, tc := range []struct {
		name     string
		ask      func(context.Context, *call.Exchange) (any, error)
		answers  []func(context.Context, []byte) ([]byte, error)
		ctx      func(context.Context) context.Context
		attempts int
		want     any       // the result, if no error
		code     errs.Code // the error's, if any
		reason   string
	}{
		{name: "query, no responder", ask: query, answers: []func(context.Context, []byte) ([]byte, error){refuse},
			attempts: 2, code: errs.Unavailable, reason: "context_unavailable"},
		{name: "command, no responder", ask: cmd, answers: []func(context.Context, []byte) ([]byte, error){refuse},
			attempts: 1, code: errs.Unavailable, reason: "context_unavailable"},
		{name: "query, answered the second time", ask: query, answers: []func(context.Context, []byte) ([]byte, error){refuse, by(exists)},
			attempts: 2, want: true},
		{name: "query, answered at once", ask: query, answers: []func(context.Context, []byte) ([]byte, error){by(exists)},
			attempts: 1, want: true},
		{name: "query, answered with an error", ask: query,
			answers:  []func(context.Context, []byte) ([]byte, error){by(fail(catalogapi.ProductExists, errs.E(errs.Timeout, "slow")))},
			attempts: 1, code: errs.Timeout},
		{name: "query, caller gone", ask: query, answers: []func(context.Context, []byte) ([]byte, error){refuse},
			ctx: cancelled, attempts: 1, code: errs.Unavailable, reason: "context_unavailable"},
		{name: "command, answered", ask: cmd, answers: []func(context.Context, []byte) ([]byte, error){by(reserved)},
			attempts: 1, want: call.None{}},
		{name: "command, answered with a refusal", ask: cmd,
			answers:  []func(context.Context, []byte) ([]byte, error){by(fail(inventoryapi.Reserve, inventory.ErrOutOfStock))},
			attempts: 1, code: errs.Conflict, reason: inventoryapi.ReasonOutOfStock},
		{name: "command, garbled reply", ask: cmd, answers: []func(context.Context, []byte) ([]byte, error){reply("<html>")},
			attempts: 1, code: errs.Internal},
		{name: "query, result of another type", ask: query,
			answers:  []func(context.Context, []byte) ([]byte, error){reply(`{"result":"yes"}`)},
			attempts: 1, code: errs.Internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &requester{answers: tc.answers}
			ctx := testCtx(t)
			if tc.ctx != nil {
				ctx = tc.ctx(ctx)
			}
			got, err := tc.ask(ctx, call.NewExchange(r))
			if n := r.count(); n != tc.attempts {
				t.Errorf("asked %d times, want %d", n, tc.attempts)
			}
			if tc.code == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %v, %v; want %v", got, err, tc.want)
				}
				return
			}
			if errs.CodeOf(err) != tc.code || errs.ReasonOf(err) != tc.reason {
				t.Fatalf("got %v (code %q, reason %q); want code %q, reason %q", err, errs.CodeOf(err), errs.ReasonOf(err), tc.code, tc.reason)
			}
			if tc.code == errs.Unavailable && !errors.Is(err, errNoResponders) {
				t.Errorf("%v does not keep the bus's error", err)
			}
			if tc.code == errs.Internal {
				if _, ok := errors.AsType[*errs.Error](err); ok {
					t.Errorf("%v is coded", err)
				}
				if s := err.Error(); !strings.Contains(s, "query.") && !strings.Contains(s, "cmd.") {
					t.Errorf("%q does not name the call", s)
				}
			}
		})
	}
}

// TestRequestOnTheBus: what the bus is asked — the call's own subject,
// the request as JSON, a deadline of the call's kind — and that a
// caller's shorter deadline is kept.
func TestRequestOnTheBus(t *testing.T) {
	stock := inventoryapi.StockRequest{Meta: meta, OrderID: "o-1", Lines: []inventoryapi.Line{{ProductID: "p-1", Quantity: 2}}}
	committed := inventoryapi.Commit.Answer(func(context.Context, inventoryapi.StockRequest) (call.None, error) {
		return call.None{}, nil
	})
	r := &requester{routes: map[string]call.Answer{reserved.Subject: reserved, exists.Subject: exists, committed.Subject: committed}}
	x := call.NewExchange(r)
	ctx := testCtx(t)
	if _, err := inventoryapi.Reserve.Bind(x)(context.Background(), stock); err != nil {
		t.Fatal(err)
	}
	if _, err := catalogapi.ProductExists.Bind(x)(ctx, catalogapi.ProductRequest{ProductID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := inventoryapi.Commit.Bind(x)(short, stock); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	want := []string{inventoryapi.Reserve.Subject, catalogapi.ProductExists.Subject, inventoryapi.Commit.Subject}
	if strings.Join(r.subjects, " ") != strings.Join(want, " ") {
		t.Errorf("subjects %q, want %q", r.subjects, want)
	}
	// On the bus a request travels in an envelope with the call's trace
	// context.
	var env struct {
		Request json.RawMessage `json:"request"`
	}
	var sent inventoryapi.StockRequest
	if err := json.Unmarshal(r.bodies[0], &env); err != nil || json.Unmarshal(env.Request, &sent) != nil {
		t.Fatalf("the request is not an enveloped JSON request: %v: %s", err, r.bodies[0])
	}
	if sent.Meta != stock.Meta || sent.OrderID != stock.OrderID || len(sent.Lines) != 1 || sent.Lines[0] != stock.Lines[0] {
		t.Errorf("sent %+v, want %+v", sent, stock)
	}
	for i, limit := range []time.Duration{call.CommandTimeout, call.QueryTimeout, time.Second} {
		if l := r.left[i]; l <= 0 || l > limit {
			t.Errorf("request %d (%s) had %v left, want a deadline within %v", i, r.subjects[i], l, limit)
		}
	}
	if r.left[0] <= call.QueryTimeout {
		t.Errorf("a command had %v left: not the command timeout (%v)", r.left[0], call.CommandTimeout)
	}
}

// TestExchangeLocal: an exchange answers in process what was added to
// it, even after the call was bound, without asking its bus; a call
// whose local answer has other types fails rather than going elsewhere;
// an exchange with no bus fails the others Unavailable.
func TestExchangeLocal(t *testing.T) {
	ctx := testCtx(t)
	r := &requester{answers: []func(context.Context, []byte) ([]byte, error){refuse}}
	x := call.NewExchange(r)
	exists := catalogapi.ProductExists.Bind(x) // bound before the answer is added
	x.Add(catalogapi.ProductExists.Answer(func(_ context.Context, req catalogapi.ProductRequest) (bool, error) {
		return req.ProductID == "here", nil
	}))
	if ok, err := exists(ctx, catalogapi.ProductRequest{ProductID: "here"}); !ok || err != nil {
		t.Fatalf("local answer: %v, %v", ok, err)
	}
	if n := r.count(); n != 0 {
		t.Fatalf("the bus was asked %d times for a call answered in process", n)
	}

	// Same subject, other types.
	impostor := call.Query[string, int](catalogapi.ProductExists.Subject, "catalog")
	x.Add(impostor.Answer(func(context.Context, string) (int, error) { return 1, nil }))
	_, err := exists(ctx, catalogapi.ProductRequest{ProductID: "here"})
	if err == nil || !strings.Contains(err.Error(), catalogapi.ProductExists.Subject) {
		t.Fatalf("answered with other types: %v", err)
	}
	if n := r.count(); n != 0 {
		t.Fatalf("the bus was asked %d times", n)
	}

	// No bus.
	none := call.NewExchange(nil)
	_, err = inventoryapi.Reserve.Bind(none)(ctx, inventoryapi.StockRequest{OrderID: "o"})
	if e := coded(t, err); e.Code != errs.Unavailable || e.Reason != "context_unavailable" ||
		!strings.Contains(e.Message, inventoryapi.Reserve.Subject) {
		t.Fatalf("no bus: %#v", e)
	}
}

// TestUndecodableRequest: a request the owner cannot decode (a caller
// of another version, say) is answered with a failure, not a refusal,
// and the answer is not run.
func TestUndecodableRequest(t *testing.T) {
	ran := false
	a := inventoryapi.Reserve.Answer(func(context.Context, inventoryapi.StockRequest) (call.None, error) {
		ran = true
		return call.None{}, nil
	})
	garble := func(ctx context.Context, _ []byte) ([]byte, error) {
		return a.Respond(ctx, []byte(`{"order_id": 42}`)), nil
	}
	x := call.NewExchange(&requester{answers: []func(context.Context, []byte) ([]byte, error){garble}})
	_, err := inventoryapi.Reserve.Bind(x)(testCtx(t), inventoryapi.StockRequest{OrderID: "o"})
	if err == nil || errs.CodeOf(err) != errs.Internal || !errs.Transient(err) ||
		!strings.Contains(err.Error(), inventoryapi.Reserve.Subject) || !strings.Contains(err.Error(), "bad request") {
		t.Fatalf("undecodable request: %v", err)
	}
	if ran {
		t.Fatal("the answer ran on a request it could not decode")
	}
}
