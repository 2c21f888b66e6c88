package shipping_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/shipping"
)

const order = "order-1"

// now is in a zone other than UTC so that tests see events recorded in UTC.
var now = time.Date(2025, 3, 4, 10, 30, 0, 0, time.FixedZone("CET", 3600))

var nowUTC = now.UTC()

func replay(events ...shipping.Event) shipping.Shipment {
	var s shipping.Shipment
	for _, e := range events {
		s = shipping.Evolve(s, e)
	}
	return s
}

var (
	arranged  = shipping.ShipmentArranged{OrderID: order, Carrier: "Parcelo", Tracking: "PCL000000000001", At: nowUTC}
	failed    = shipping.ShipmentFailed{OrderID: order, Reason: "undeliverable", At: nowUTC}
	cancelled = shipping.ShipmentCancelled{OrderID: order, At: nowUTC}
)

// decision is a command on a shipment: its events and error.
type decision func(shipping.Shipment) ([]shipping.Event, error)

var (
	arrange = func(s shipping.Shipment) ([]shipping.Event, error) {
		return s.Arranged(order, "Parcelo", "PCL000000000001", now)
	}
	arrangeOther = func(s shipping.Shipment) ([]shipping.Event, error) {
		return s.Arranged(order, "Other", "OTHER-2", now)
	}
	fail = func(s shipping.Shipment) ([]shipping.Event, error) {
		return s.Failed(order, "undeliverable", now)
	}
	cancel = func(s shipping.Shipment) ([]shipping.Event, error) {
		return s.Cancel(order, now)
	}
)

func TestDecisions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		history []shipping.Event
		decide  decision
		want    []shipping.Event
		wantErr error
	}{
		{"arrange new", nil, arrange, []shipping.Event{arranged}, nil},
		{"arrange twice is a no-op", []shipping.Event{arranged}, arrange, nil, nil},
		{"arrange again with another booking is a no-op", []shipping.Event{arranged}, arrangeOther, nil, nil},
		{"arrange after cancel (tombstone) is refused", []shipping.Event{cancelled}, arrange, nil, shipping.ErrCancelled},
		{"arrange after arranged and cancelled is refused", []shipping.Event{arranged, cancelled}, arrange, nil, shipping.ErrCancelled},
		{"arrange after failure is refused", []shipping.Event{failed}, arrange, nil, shipping.ErrShippingFailed},

		{"fail new", nil, fail, []shipping.Event{failed}, nil},
		{"fail twice is a no-op", []shipping.Event{failed}, fail, nil, nil},
		{"fail after arranged is a no-op", []shipping.Event{arranged}, fail, nil, nil},
		{"fail after cancel is a no-op", []shipping.Event{cancelled}, fail, nil, nil},

		{"cancel before arrange leaves a tombstone", nil, cancel, []shipping.Event{cancelled}, nil},
		{"cancel arranged", []shipping.Event{arranged}, cancel, []shipping.Event{cancelled}, nil},
		{"cancel twice is a no-op", []shipping.Event{arranged, cancelled}, cancel, nil, nil},
		{"cancel tombstone again is a no-op", []shipping.Event{cancelled}, cancel, nil, nil},
		{"cancel failed is a no-op", []shipping.Event{failed}, cancel, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := replay(tc.history...)
			got, err := tc.decide(s)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error = %v, want %v", err, tc.wantErr)
				}
				if errs.CodeOf(err) != errs.Conflict {
					t.Errorf("error code = %s, want %s", errs.CodeOf(err), errs.Conflict)
				}
			} else if err != nil {
				t.Fatalf("error = %v, want none", err)
			}
			if (len(got) != 0 || len(tc.want) != 0) && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("events = %#v, want %#v", got, tc.want)
			}
			// Deciding never changes the shipment it was asked of.
			if after := replay(tc.history...); s != after {
				t.Errorf("shipment changed by deciding: %+v → %+v", after, s)
			}
		})
	}
}

func TestEventsAreRecordedInUTC(t *testing.T) {
	var s shipping.Shipment
	for _, d := range []decision{arrange, fail, cancel} {
		events, err := d(s)
		if err != nil || len(events) != 1 {
			t.Fatalf("decision on a new shipment: %v, %v", events, err)
		}
		var at time.Time
		switch e := events[0].(type) {
		case shipping.ShipmentArranged:
			at = e.At
		case shipping.ShipmentFailed:
			at = e.At
		case shipping.ShipmentCancelled:
			at = e.At
		default:
			t.Fatalf("unexpected event %T", e)
		}
		if at.Location() != time.UTC || !at.Equal(now) {
			t.Errorf("%T.At = %v, want %v in UTC", events[0], at, now)
		}
	}
}

func TestEvolve(t *testing.T) {
	for _, tc := range []struct {
		name    string
		history []shipping.Event
		want    shipping.Shipment
	}{
		{"none", nil, shipping.Shipment{}},
		{"arranged", []shipping.Event{arranged},
			shipping.Shipment{OrderID: order, Status: shipping.StatusArranged, Carrier: "Parcelo", Tracking: "PCL000000000001"}},
		{"failed", []shipping.Event{failed},
			shipping.Shipment{OrderID: order, Status: shipping.StatusFailed, Reason: "undeliverable"}},
		{"tombstone", []shipping.Event{cancelled},
			shipping.Shipment{OrderID: order, Status: shipping.StatusCancelled}},
		// Cancelling keeps the carrier and tracking of what was called off.
		{"arranged then cancelled", []shipping.Event{arranged, cancelled},
			shipping.Shipment{OrderID: order, Status: shipping.StatusCancelled, Carrier: "Parcelo", Tracking: "PCL000000000001"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := replay(tc.history...); got != tc.want {
				t.Errorf("shipment = %+v, want %+v", got, tc.want)
			}
		})
	}
}

type otherEvent struct{}

func (otherEvent) EventType() string { return "shipping.Other" }

func TestEvolveIgnoresUnknownEvents(t *testing.T) {
	s := replay(arranged)
	if got := shipping.Evolve(s, otherEvent{}); got != s {
		t.Errorf("unknown event changed the shipment: %+v → %+v", s, got)
	}
}

// A full life: decisions replayed through Evolve reach the expected state,
// and the tombstone refuses a late arrangement.
func TestDecideEvolveRoundTrip(t *testing.T) {
	var history []shipping.Event
	apply := func(d decision) error {
		events, err := d(replay(history...))
		history = append(history, events...)
		return err
	}
	if err := apply(cancel); err != nil {
		t.Fatal(err)
	}
	if err := apply(arrange); !errors.Is(err, shipping.ErrCancelled) {
		t.Fatalf("late arrangement after a tombstone: %v, want ErrCancelled", err)
	}
	if err := apply(cancel); err != nil {
		t.Fatal(err)
	}
	if err := apply(fail); err != nil {
		t.Fatal(err)
	}
	if len(history) != 1 || history[0] != shipping.Event(cancelled) {
		t.Fatalf("history = %#v, want only the tombstone", history)
	}
	if s := replay(history...); s.Status != shipping.StatusCancelled {
		t.Fatalf("status = %q, want %q", s.Status, shipping.StatusCancelled)
	}
}

func TestEventTypesAndJSON(t *testing.T) {
	for _, tc := range []struct {
		event    shipping.Event
		typ      string
		wantJSON string
	}{
		{arranged, "shipping.ShipmentArranged",
			`{"order_id":"order-1","carrier":"Parcelo","tracking":"PCL000000000001","at":"2025-03-04T09:30:00Z"}`},
		{failed, "shipping.ShipmentFailed",
			`{"order_id":"order-1","reason":"undeliverable","at":"2025-03-04T09:30:00Z"}`},
		{cancelled, "shipping.ShipmentCancelled",
			`{"order_id":"order-1","at":"2025-03-04T09:30:00Z"}`},
	} {
		if got := tc.event.EventType(); got != tc.typ {
			t.Errorf("%T.EventType() = %q, want %q", tc.event, got, tc.typ)
		}
		// Stored events are JSON: their field names are a contract.
		data, err := json.Marshal(tc.event)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != tc.wantJSON {
			t.Errorf("%T JSON = %s, want %s", tc.event, data, tc.wantJSON)
		}
		back := reflect.New(reflect.TypeOf(tc.event))
		if err := json.Unmarshal(data, back.Interface()); err != nil {
			t.Fatal(err)
		}
		if got := back.Elem().Interface(); !reflect.DeepEqual(got, tc.event) {
			t.Errorf("JSON round trip = %#v, want %#v", got, tc.event)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   errs.Code
		reason string
	}{
		{shipping.ErrShippingFailed, errs.Conflict, "shipping_failed"},
		{shipping.ErrCancelled, errs.Conflict, "shipment_cancelled"},
		{shipping.ErrNotFound, errs.NotFound, "shipment_not_found"},
	} {
		var e *errs.Error
		if !errors.As(tc.err, &e) {
			t.Fatalf("%v is not an *errs.Error", tc.err)
		}
		if e.Code != tc.code || e.Reason != tc.reason || e.Message == "" {
			t.Errorf("%v: code %s, reason %q, message %q; want %s, %q and a message", tc.err, e.Code, e.Reason, e.Message, tc.code, tc.reason)
		}
	}
	if errors.Is(shipping.ErrCancelled, shipping.ErrShippingFailed) || errors.Is(shipping.ErrShippingFailed, shipping.ErrCancelled) {
		t.Error("ErrCancelled and ErrShippingFailed match each other")
	}
}
