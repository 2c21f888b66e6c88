package api_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/shipping/carrier"
	"github.com/agora-commerce/agora/internal/shipping/shippingapi"
	"github.com/agora-commerce/agora/internal/shipping/shippingmod"
	"github.com/agora-commerce/agora/internal/testenv"
)

// orders is the fake ordering context: whose each order is. "o-down"
// cannot be asked about; others it does not know are not found.
var orders = map[string]call.Owner{
	"o-ann":     {Tenant: "demo", ID: "u-ann"},
	"o-ann-2":   {Tenant: "demo", ID: "u-ann"},
	"o-ann-3":   {Tenant: "demo", ID: "u-ann"},
	"o-bob":     {Tenant: "demo", ID: "u-bob"},
	"o-acme":    {Tenant: "acme", ID: "u-ann"},
	"o-legacy":  {Tenant: "", ID: "u-ann"}, // recorded before tenants
	"o-nowhere": {Tenant: "demo", ID: "u-ann"},
}

var owner = orderingapi.OrderOwner.Answer(func(_ context.Context, r orderingapi.OrderRequest) (call.Owner, error) {
	if r.OrderID == "o-down" {
		return call.Owner{}, &errs.Error{Code: errs.Unavailable, Reason: "context_unavailable", Message: "ordering did not answer"}
	}
	o, ok := orders[r.OrderID]
	if !ok {
		return call.Owner{}, &errs.Error{Code: errs.NotFound, Reason: "order_not_found", Message: "no such order"}
	}
	return o, nil
})

func start(t *testing.T, store eventstore.Store, db *sql.DB) *moduletest.Harness {
	t.Helper()
	return moduletest.Start(t, shippingmod.Module, store, db, &moduletest.Options{Fakes: []call.Answer{owner}})
}

var address = &shippingapi.Address{Street: "1 Main St", City: "Springfield", State: "IL", ZipCode: "62701", Country: "US"}

func arrange(t *testing.T, h *moduletest.Harness, order string, addr *shippingapi.Address) error {
	t.Helper()
	_, err := shippingapi.Arrange.Bind(h.Calls)(context.Background(), shippingapi.ShipmentRequest{
		Meta: eventstore.Metadata{Tenant: "demo", User: "u-ann"}, OrderID: order, Address: addr})
	return err
}

func cancel(t *testing.T, h *moduletest.Harness, order string) error {
	t.Helper()
	_, err := shippingapi.Cancel.Bind(h.Calls)(context.Background(), shippingapi.ShipmentRequest{OrderID: order})
	return err
}

// notFound checks a 404 problem that says no more than "no shipment".
func notFound(t *testing.T, r moduletest.Response) {
	t.Helper()
	p := testenv.Problem(t, r.Status, r.Header, r.Raw, http.StatusNotFound)
	if p.Reason != "shipment_not_found" {
		t.Fatalf("404 reason %q: %s", p.Reason, r.Raw)
	}
}

func TestWhoSeesAShipment(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h := start(t, store, db)
		for _, o := range []string{"o-ann", "o-bob", "o-acme", "o-legacy"} {
			if err := arrange(t, h, o, address); err != nil {
				t.Fatalf("arrange %s: %v", o, err)
			}
		}
		ann := h.AsUser("demo", "u-ann", "customer")
		r := ann.Do("GET", "/api/v1/shipments/o-ann", "")
		if r.Status != http.StatusOK || r.Body["order_id"] != "o-ann" || r.Body["status"] != "Arranged" ||
			r.Body["carrier"] != carrier.Name || !strings.HasPrefix(r.Body["tracking"].(string), "PCL") {
			t.Fatalf("owner: %d %s", r.Status, r.Raw)
		}
		if r := h.AsUser("demo", "u-admin", "admin").Do("GET", "/api/v1/shipments/o-ann", ""); r.Status != http.StatusOK || r.Body["order_id"] != "o-ann" {
			t.Fatalf("admin of the tenant: %d %s", r.Status, r.Raw)
		}
		// Neither another customer nor an admin of another tenant learns
		// that the shipment exists; nor does a merchant who owns nothing.
		for _, c := range []*moduletest.Client{
			h.AsUser("demo", "u-bob", "customer"),
			h.AsUser("acme", "u-admin", "admin"),
			h.AsUser("acme", "u-ann", "customer"), // same user ID, other tenant
			h.AsUser("demo", "u-merchant", "merchant"),
		} {
			notFound(t, c.Do("GET", "/api/v1/shipments/o-ann", ""))
		}
		// Every tenant's admin sees its own tenant's shipments.
		if r := h.AsUser("acme", "u-root", "admin").Do("GET", "/api/v1/shipments/o-acme", ""); r.Status != http.StatusOK {
			t.Fatalf("acme admin on acme's order: %d %s", r.Status, r.Raw)
		}
		notFound(t, ann.Do("GET", "/api/v1/shipments/o-acme", ""))
		// An order recorded without a tenant belongs to the default one.
		if r := ann.Do("GET", "/api/v1/shipments/o-legacy", ""); r.Status != http.StatusOK {
			t.Fatalf("legacy order's owner: %d %s", r.Status, r.Raw)
		}
		notFound(t, h.AsUser("acme", "u-root", "admin").Do("GET", "/api/v1/shipments/o-legacy", ""))

		// Bob sees his own.
		if r := h.AsUser("demo", "u-bob", "customer").Do("GET", "/api/v1/shipments/o-bob", ""); r.Status != http.StatusOK || r.Body["order_id"] != "o-bob" {
			t.Fatalf("bob: %d %s", r.Status, r.Raw)
		}

		// An unknown order, and an order with no shipment: the same 404 as
		// a shipment one may not see.
		notFound(t, ann.Do("GET", "/api/v1/shipments/o-unknown", ""))
		notFound(t, ann.Do("GET", "/api/v1/shipments/o-nowhere", ""))
		notFound(t, h.AsUser("demo", "u-admin", "admin").Do("GET", "/api/v1/shipments/o-unknown", ""))

		// Ordering cannot say whose the order is: 503, to retry, not 404.
		r = ann.Do("GET", "/api/v1/shipments/o-down", "")
		if p := testenv.Problem(t, r.Status, r.Header, r.Raw, http.StatusServiceUnavailable); p.Reason != "context_unavailable" {
			t.Fatalf("503 reason %q", p.Reason)
		}

		// Anonymous callers are challenged.
		r = h.As("").Do("GET", "/api/v1/shipments/o-ann", "")
		testenv.Problem(t, r.Status, r.Header, r.Raw, http.StatusUnauthorized)
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("no challenge: %v", r.Header)
		}
		r = h.As("").Do("GET", "/api/v1/shipments/o-ann", "", "Authorization", "Bearer forged")
		testenv.Problem(t, r.Status, r.Header, r.Raw, http.StatusUnauthorized)
	})
}

func TestArrangeAndCancel(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h := start(t, store, db)
		ann := h.AsUser("demo", "u-ann", "customer")
		get := func(order string) map[string]any {
			t.Helper()
			r := ann.Do("GET", "/api/v1/shipments/"+order, "")
			if r.Status != http.StatusOK {
				t.Fatalf("shipment %s: %d %s", order, r.Status, r.Raw)
			}
			return r.Body
		}

		// Arranged: a carrier and a tracking number; arranging again
		// books nothing new.
		if err := arrange(t, h, "o-ann", address); err != nil {
			t.Fatal(err)
		}
		first := get("o-ann")
		tracking, _ := first["tracking"].(string)
		if first["status"] != "Arranged" || first["carrier"] != carrier.Name || tracking == "" {
			t.Fatalf("arranged: %v", first)
		}
		if err := arrange(t, h, "o-ann", address); err != nil {
			t.Fatalf("arrange again: %v", err)
		}
		if again := get("o-ann"); again["tracking"] != tracking || again["status"] != "Arranged" {
			t.Fatalf("arranged twice: %v then %v", first, again)
		}
		if err := arrange(t, h, "o-ann-2", address); err != nil {
			t.Fatal(err)
		}
		if other := get("o-ann-2"); other["tracking"] == tracking || other["tracking"] == "" {
			t.Fatalf("two orders, tracking %v and %v", tracking, other["tracking"])
		}

		// Cancelled after it was arranged; cancelling is idempotent.
		for range 2 {
			if err := cancel(t, h, "o-ann"); err != nil {
				t.Fatal(err)
			}
			if s := get("o-ann"); s["status"] != "Cancelled" {
				t.Fatalf("cancelled: %v", s)
			}
		}
		// A cancelled shipment is not arranged again.
		err := arrange(t, h, "o-ann", address)
		if !errors.Is(err, &errs.Error{Code: errs.Conflict, Reason: shippingapi.ReasonShipmentCancelled}) {
			t.Fatalf("arrange after cancel: %v", err)
		}
		if s := get("o-ann"); s["status"] != "Cancelled" {
			t.Fatalf("after a refused arrangement: %v", s)
		}

		// A cancel that comes first leaves a tombstone: the late
		// arrangement is refused.
		if err := cancel(t, h, "o-ann-3"); err != nil {
			t.Fatal(err)
		}
		if s := get("o-ann-3"); s["status"] != "Cancelled" || s["tracking"] != nil || s["carrier"] != nil {
			t.Fatalf("cancelled before arranged: %v", s)
		}
		if err := arrange(t, h, "o-ann-3", address); !errors.Is(err, &errs.Error{Code: errs.Conflict, Reason: shippingapi.ReasonShipmentCancelled}) {
			t.Fatalf("arrange after an early cancel: %v", err)
		}

		// The carrier refuses an address: the shipment failed, with a
		// reason and no tracking, and stays failed.
		bad := *address
		bad.ZipCode = carrier.UndeliverablePostcode
		for range 2 {
			err := arrange(t, h, "o-legacy", &bad)
			if !errors.Is(err, &errs.Error{Code: errs.Conflict, Reason: shippingapi.ReasonShippingFailed}) {
				t.Fatalf("undeliverable: %v", err)
			}
		}
		if s := get("o-legacy"); s["status"] != "Failed" || s["reason"] != "shipping_failed" || s["tracking"] != nil {
			t.Fatalf("failed shipment: %v", s)
		}
		if err := arrange(t, h, "o-legacy", address); !errors.Is(err, &errs.Error{Code: errs.Conflict, Reason: shippingapi.ReasonShippingFailed}) {
			t.Fatalf("arrange a failed shipment with a good address: %v", err)
		}
		// Cancelling a failed shipment changes nothing.
		if err := cancel(t, h, "o-legacy"); err != nil {
			t.Fatal(err)
		}
		if s := get("o-legacy"); s["status"] != "Failed" {
			t.Fatalf("failed then cancelled: %v", s)
		}

		// An arrangement needs an address.
		if err := arrange(t, h, "o-nowhere", nil); err == nil {
			t.Fatal("arranged without an address")
		}
		notFound(t, ann.Do("GET", "/api/v1/shipments/o-nowhere", ""))
	})
}
