// Package app is the shipping context's application layer: arranging and
// cancelling shipments through a carrier, the anti-corruption layer that
// translates to the carrier's model, and the mapping of shipping events
// to the published language (shippingapi).
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/aggregate"
	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/shipping"
	"github.com/agora-commerce/agora/internal/shipping/carrier"
	"github.com/agora-commerce/agora/internal/shipping/shippingapi"
	"github.com/agora-commerce/agora/messaging"
)

// Carrier is what shipping needs from a carrier, in shipping's terms.
type Carrier interface {
	// Book arranges the order's shipment to addr; ErrRefused if the
	// carrier will not take it, any other error is worth retrying.
	Book(ctx context.Context, order string, addr shipping.Address) (carrier, tracking string, err error)
	// Cancel calls a booking off.
	Cancel(ctx context.Context, tracking string) error
}

// ErrRefused reports a carrier's refusal.
var ErrRefused = errors.New("shipping: the carrier refused the shipment")

// Parcelo adapts the simulated Parcelo carrier to Carrier: shipping's
// Address becomes Parcelo's Recipient, its errors become shipping's.
type Parcelo struct{ Sim *carrier.Sim }

// Book implements Carrier.
func (p Parcelo) Book(ctx context.Context, order string, a shipping.Address) (_, _ string, err error) {
	ctx, span := carrierSpan(ctx, "book", attribute.String("agora.order_id", order))
	defer func() { endCarrier(span, err) }()
	b, err := p.Sim.Book(ctx, carrier.BookingRequest{ClientRef: "agora-order-" + order,
		To: carrier.Recipient{Line1: a.Street, Town: a.City, Region: a.State, Postcode: a.ZipCode, CountryCode: a.Country}})
	switch {
	case errors.Is(err, carrier.ErrUndeliverable):
		return "", "", fmt.Errorf("%w: %w", ErrRefused, err)
	case err != nil:
		return "", "", err
	}
	span.SetAttributes(attribute.String("agora.carrier.waybill", b.Waybill))
	return carrier.Name, b.Waybill, nil
}

// Cancel implements Carrier.
func (p Parcelo) Cancel(ctx context.Context, tracking string) (err error) {
	ctx, span := carrierSpan(ctx, "cancel", attribute.String("agora.carrier.waybill", tracking))
	defer func() { endCarrier(span, err) }()
	return p.Sim.Cancel(ctx, tracking)
}

var tracer = otel.Tracer("github.com/agora-commerce/agora/shipping")

// carrierSpan starts the client span of a call to the carrier (none
// outside a sampled trace).
func carrierSpan(ctx context.Context, op string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return ctx, trace.SpanFromContext(context.Background()) // a no-op span
	}
	return tracer.Start(ctx, "carrier "+op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(append(attrs, attribute.String("peer.service", carrier.Name), attribute.String("agora.carrier.operation", op))...))
}

// endCarrier records a call's outcome on its span and ends it: a refusal
// is the carrier's answer, anything else a failure.
func endCarrier(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	switch {
	case errors.Is(err, ErrRefused):
		span.SetAttributes(attribute.Bool("agora.carrier.refused", true))
	case err != nil:
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

var codec = func() *aggregate.Codec[shipping.Event] {
	c := aggregate.NewCodec[shipping.Event]()
	aggregate.Register[shipping.ShipmentArranged](c)
	aggregate.Register[shipping.ShipmentFailed](c)
	aggregate.Register[shipping.ShipmentCancelled](c)
	return c
}()

// ShipmentType describes the Shipment aggregate (stream "shipment-<order>").
func ShipmentType() aggregate.Type[shipping.Shipment, shipping.Event] {
	return aggregate.Type[shipping.Shipment, shipping.Event]{
		Name: "shipment", Initial: func() shipping.Shipment { return shipping.Shipment{} },
		Evolve: shipping.Evolve, Encode: codec.Encode, Decode: codec.Decode,
	}
}

// Service runs shipping commands.
type Service struct {
	repo    *aggregate.Repository[shipping.Shipment, shipping.Event]
	carrier Carrier
	now     func() time.Time
}

// NewService returns a Service on store shipping with c.
func NewService(store eventstore.Store, c Carrier) *Service {
	return &Service{repo: aggregate.NewRepository(store, ShipmentType(), aggregate.WithCache(16384), aggregate.AssumeNew()), carrier: c, now: time.Now}
}

// Carrier is the carrier the service books with (tests and drills look
// at its breaker).
func (s *Service) Carrier() Carrier { return s.carrier }

// Caller is who asks (auth.Claims is one).
type Caller interface {
	CanSee(tenant, owner string) bool
}

// Orders tells whose an order is: shipping keeps no customers of its
// own, so it asks the ordering context (its open host service).
type Orders interface {
	// Owner returns the order's tenant and customer, or an error that
	// maps to 404 if there is no such order.
	Owner(ctx context.Context, orderID string) (tenant, customer string, err error)
}

// ShipmentFor returns order's shipment to c, who must see the order (its
// customer or an admin of its tenant, as orders tells); to anyone else it
// does not exist. An orders that could not say is an error to retry.
func (s *Service) ShipmentFor(ctx context.Context, c Caller, orders Orders, order string) (shipping.Shipment, error) {
	tenant, customer, err := orders.Owner(ctx, order)
	if errs.Transient(err) {
		return shipping.Shipment{}, err
	}
	if err != nil || !c.CanSee(tenant, customer) {
		return shipping.Shipment{}, shipping.ErrNotFound
	}
	return s.Get(ctx, order)
}

// Get returns order's shipment.
func (s *Service) Get(ctx context.Context, order string) (shipping.Shipment, error) {
	l, err := s.repo.Load(ctx, order)
	if err != nil {
		return shipping.Shipment{}, err
	}
	if l.Version == 0 {
		return shipping.Shipment{}, shipping.ErrNotFound
	}
	return l.State, nil
}

// Arrange books order's shipment to addr: nil once arranged,
// shipping.ErrShippingFailed if the carrier refused, shipping.ErrCancelled
// if it was cancelled first; other errors are worth retrying. Idempotent.
func (s *Service) Arrange(ctx context.Context, meta eventstore.Metadata, order string, addr shipping.Address) error {
	l, err := s.repo.Current(ctx, order)
	if err != nil {
		return err
	}
	switch l.State.Status {
	case shipping.StatusArranged:
		return nil
	case shipping.StatusFailed:
		return shipping.ErrShippingFailed
	case shipping.StatusCancelled:
		return shipping.ErrCancelled
	}
	name, tracking, err := s.carrier.Book(ctx, order, addr)
	if errors.Is(err, ErrRefused) {
		_, err := s.repo.Handle(ctx, order, meta, func(l aggregate.Loaded[shipping.Shipment]) ([]shipping.Event, error) {
			return l.State.Failed(order, "shipping_failed", s.now())
		})
		if err != nil {
			return err
		}
		return shipping.ErrShippingFailed
	}
	if err != nil {
		return err
	}
	_, err = s.repo.Handle(ctx, order, meta, func(l aggregate.Loaded[shipping.Shipment]) ([]shipping.Event, error) {
		return l.State.Arranged(order, name, tracking, s.now())
	})
	if errors.Is(err, shipping.ErrCancelled) {
		// Cancelled while we booked: call the booking off too.
		if cerr := s.carrier.Cancel(ctx, tracking); cerr != nil {
			return cerr
		}
	}
	return err
}

// Cancel calls order's shipment off; before it is arranged, it makes a
// later Arrange fail. Idempotent.
func (s *Service) Cancel(ctx context.Context, meta eventstore.Metadata, order string) error {
	var prior shipping.Shipment
	res, err := s.repo.Handle(ctx, order, meta, func(l aggregate.Loaded[shipping.Shipment]) ([]shipping.Event, error) {
		prior = l.State
		return l.State.Cancel(order, s.now())
	})
	if err != nil {
		return err
	}
	if prior.Status == shipping.StatusArranged && len(res.Events) > 0 {
		return s.carrier.Cancel(ctx, prior.Tracking)
	}
	return nil
}

// Publish maps a shipping record to its integration event.
func Publish(r eventstore.Record) (messaging.Message, bool, error) {
	if !codec.Knows(r.Type) {
		return messaging.Message{}, false, nil
	}
	e, err := codec.Decode(r)
	if err != nil {
		return messaging.Message{}, false, err
	}
	var m messaging.Message
	switch e := e.(type) {
	case shipping.ShipmentArranged:
		m, err = messaging.NewMessage(shippingapi.SubjectShipmentArranged, shippingapi.TypeShipmentArranged,
			shippingapi.ShipmentArranged{OrderID: e.OrderID, Carrier: e.Carrier, Tracking: e.Tracking})
	case shipping.ShipmentFailed:
		m, err = messaging.NewMessage(shippingapi.SubjectShipmentFailed, shippingapi.TypeShipmentFailed,
			shippingapi.ShipmentFailed{OrderID: e.OrderID, Reason: e.Reason})
	case shipping.ShipmentCancelled:
		m, err = messaging.NewMessage(shippingapi.SubjectShipmentCancelled, shippingapi.TypeShipmentCancelled,
			shippingapi.ShipmentCancelled{OrderID: e.OrderID})
	}
	return m, err == nil, err
}
