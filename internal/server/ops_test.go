package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/platform/openapi"
	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/messaging"
)

// TestOperationsAPI walks the operations console's API through the
// gateway after one order: as an admin, every endpoint answers as the
// document says; as a customer, every one is a 403.
func TestOperationsAPI(t *testing.T) {
	w := bootWith(t, server.Orchestration, "embedded")
	acct := w.account(10_000)
	prod := w.product(300, 10)
	placed := w.place(acct, prod, 1, "62701")
	order, sagaID := placed.body["id"].(string), placed.body["saga_id"].(string)
	w.expect(order, "Confirmed", "")
	ctx := context.Background()

	// get calls path as the admin and checks the answer against the
	// OpenAPI document.
	get := func(method, path string, want int) response {
		t.Helper()
		r := w.do(method, path, nil)
		if r.status != want {
			t.Fatalf("%s %s: %d %s", method, path, r.status, r.raw)
		}
		req, _ := http.NewRequest(method, "http://agora.test"+path, nil)
		if err := openapi.ValidateResponse(ctx, req, r.status, r.header, r.raw); err != nil {
			t.Errorf("%s %s: the answer breaks the document: %v\n%s", method, path, err, r.raw)
		}
		return r
	}

	ov := get("GET", "/api/v1/ops/overview", http.StatusOK)
	if ov.body["tenant"] != "demo" || ov.body["audit_stream"] != "audit-demo" || ov.body["mode"] != "embedded" ||
		ov.body["head"].(float64) < 1 || !strings.Contains(string(ov.raw), `"ordering"`) {
		t.Errorf("overview: %s", ov.raw)
	}

	// The order's events, in the log and in its saga's stream.
	lg := get("GET", "/api/v1/ops/log?type=ordering.&limit=500", http.StatusOK)
	if !strings.Contains(string(lg.raw), `"type":"ordering.OrderPlaced"`) || !strings.Contains(string(lg.raw), order) {
		t.Errorf("log: %s", lg.raw)
	}
	if lg := get("GET", "/api/v1/ops/log?after=0&limit=5&stream=saga-*", http.StatusOK); len(lg.body["items"].([]any)) != 5 || lg.body["next_after"] == nil {
		t.Errorf("log forward: %s", lg.raw)
	}
	st := get("GET", "/api/v1/ops/streams/saga-"+sagaID, http.StatusOK)
	if items := st.body["items"].([]any); len(items) < 3 || items[0].(map[string]any)["type"] != "saga.Started" {
		t.Errorf("saga stream: %s", st.raw)
	}
	au := get("GET", "/api/v1/ops/streams/"+ov.body["audit_stream"].(string), http.StatusOK)
	if !strings.Contains(string(au.raw), "LoginSucceeded") {
		t.Errorf("audit stream: %s", au.raw)
	}
	get("GET", "/api/v1/ops/streams/audit-nobody", http.StatusNotFound)
	get("GET", "/api/v1/ops/log?after=-1", http.StatusBadRequest)

	// The live log: an event appended after the stream opened arrives.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(sctx, "GET", w.base+"/api/v1/ops/log/stream?type=payments.", nil)
	req.Header.Set("Authorization", "Bearer "+w.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("log stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	frames := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "event: ") {
				frames <- line[len("event: "):]
			}
		}
		close(frames)
	}()
	start := time.Now()
	if r := w.do("POST", "/api/v1/accounts/"+acct+"/deposits", map[string]any{"amount": usd(5)}); r.status != http.StatusOK {
		t.Fatalf("deposit: %d %s", r.status, r.raw)
	}
	select {
	case ev := <-frames:
		if ev != "payments.MoneyDeposited" {
			t.Errorf("streamed %s", ev)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("the deposit took %v to stream", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the deposit was not streamed")
	}
	cancel()

	sg := get("GET", "/api/v1/ops/sagas?status=Completed&type=checkout", http.StatusOK)
	if !strings.Contains(string(sg.raw), `"id":"`+sagaID+`"`) {
		t.Errorf("sagas: %s", sg.raw)
	}

	pr := get("GET", "/api/v1/ops/processing", http.StatusOK)
	for _, want := range []string{`"name":"ordering.saga.instances"`, `"name":"payments-p0.saga.instances"`, `"name":"payments.accounts.p3"`, `"name":"events-payments-p2"`, `"name":"events-ordering"`, `"name":"catalog"`, `"name":"bff-popularity"`} {
		if !strings.Contains(string(pr.raw), want) {
			t.Errorf("processing lacks %s: %s", want, pr.raw)
		}
	}
	rb := get("POST", "/api/v1/ops/projections/ordering.saga.instances/rebuild", http.StatusAccepted)
	if rb.body["status"] != "rebuilding" {
		t.Errorf("rebuild: %s", rb.raw)
	}
	get("POST", "/api/v1/ops/projections/no.such/rebuild", http.StatusNotFound)
	// The POSTs take an Idempotency-Key, as the document says.
	for i, want := range []string{"", "true"} {
		r := w.do("POST", "/api/v1/ops/projections/no.such/rebuild", nil, "Idempotency-Key", "ops-rebuild-1")
		if r.status != http.StatusNotFound || r.header.Get("Idempotent-Replayed") != want {
			t.Errorf("keyed rebuild %d: %d, replayed %q", i, r.status, r.header.Get("Idempotent-Replayed"))
		}
	}
	w.eventually("the rebuild to end", func() string {
		pr := w.do("GET", "/api/v1/ops/processing", nil)
		for _, p := range pr.body["projections"].([]any) {
			if p := p.(map[string]any); p["name"] == "ordering.saga.instances" && (p["rebuilding"] != false || p["lag"] != 0.0) {
				return string(pr.raw)
			}
		}
		return ""
	})
	if sg := get("GET", "/api/v1/ops/sagas?status=Completed", http.StatusOK); !strings.Contains(string(sg.raw), sagaID) {
		t.Errorf("sagas after the rebuild: %s", sg.raw)
	}

	// A message the catalog cache cannot read dies there: kept, listed,
	// and its redelivery fails again (the letter stays).
	bad := messaging.Message{ID: "bad-product-1", Subject: catalogapi.SubjectProductCreated, Type: catalogapi.TypeProductCreated,
		Data: json.RawMessage(`"not a product"`), Headers: map[string]string{messaging.HeaderTenant: "demo"}}
	if err := w.srv.Bus().Publish(ctx, bad); err != nil {
		t.Fatal(err)
	}
	var letter string
	w.eventually("the dead letter", func() string {
		dl := w.do("GET", "/api/v1/ops/dead-letters?consumer=catalog-cache", nil)
		items, _ := dl.body["items"].([]any)
		if len(items) != 1 {
			return string(dl.raw)
		}
		letter, _ = items[0].(map[string]any)["id"].(string)
		return ""
	})
	// Ordering's price model cannot read it either: a letter of its own.
	w.eventually("ordering's dead letter", func() string {
		dl := w.do("GET", "/api/v1/ops/dead-letters?consumer=ordering-prices", nil)
		if items, _ := dl.body["items"].([]any); len(items) != 1 {
			return string(dl.raw)
		}
		return ""
	})
	dl := get("GET", "/api/v1/ops/dead-letters", http.StatusOK)
	consumers := map[any]bool{}
	for _, it := range dl.body["items"].([]any) {
		l := it.(map[string]any)
		if l["message_id"] != "bad-product-1" || l["data"] != "not a product" {
			t.Errorf("dead letter: %s", dl.raw)
		}
		consumers[l["consumer"]] = true
	}
	if len(consumers) != 2 || !consumers["catalog-cache"] || !consumers["ordering-prices"] {
		t.Errorf("dead letters of %v, want catalog-cache's and ordering-prices': %s", consumers, dl.raw)
	}
	if r := get("POST", "/api/v1/ops/dead-letters/"+letter+"/redeliver", http.StatusConflict); r.body["reason"] != "redelivery_failed" {
		t.Errorf("redeliver: %s", r.raw)
	}
	get("POST", "/api/v1/ops/dead-letters/no-such-letter/redeliver", http.StatusNotFound)
	if pr := get("GET", "/api/v1/ops/processing", http.StatusOK); !strings.Contains(string(pr.raw), `"name":"catalog-cache","stream":"CATALOG","pending":0,"ack_pending":0,"redelivered":0,"dead":1`) {
		t.Errorf("processing: %s", pr.raw)
	}

	sv := get("GET", "/api/v1/ops/services", http.StatusOK)
	for _, want := range []string{`"name":"ordering","breaker":"closed"`, `"id":"ordering-0"`, `"healthy":true`} {
		if !strings.Contains(string(sv.raw), want) {
			t.Errorf("services lack %s: %s", want, sv.raw)
		}
	}

	// A customer may call none of it.
	customer, _ := w.customer("demo", 0)
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/ops/overview"}, {"GET", "/api/v1/ops/log"}, {"GET", "/api/v1/ops/log/stream"},
		{"GET", "/api/v1/ops/streams/saga-" + sagaID}, {"GET", "/api/v1/ops/sagas"}, {"GET", "/api/v1/ops/processing"},
		{"POST", "/api/v1/ops/projections/ordering.saga.instances/rebuild"}, {"GET", "/api/v1/ops/dead-letters"},
		{"POST", "/api/v1/ops/dead-letters/" + letter + "/redeliver"}, {"GET", "/api/v1/ops/services"},
	} {
		r := customer.do(c.method, c.path, nil)
		testenv.Problem(t, r.status, r.header, r.raw, http.StatusForbidden)
	}
}
