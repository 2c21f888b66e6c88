// Package app is the ordering context's application layer: placing and
// ending orders on the event store, the orders read model, and the
// mapping of ordering events to the published language (orderingapi).
package app

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/aggregate"
	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/money"
)

var codec = func() *aggregate.Codec[ordering.Event] {
	c := aggregate.NewCodec[ordering.Event]()
	aggregate.Register[ordering.OrderPlaced](c)
	aggregate.Register[ordering.OrderCancellationRequested](c)
	aggregate.Register[ordering.OrderConfirmed](c)
	aggregate.Register[ordering.OrderCancelled](c)
	return c
}()

// StreamPrefix is the order stream prefix: "order-<id>".
const StreamPrefix = "order"

// OrderType describes the Order aggregate.
func OrderType() aggregate.Type[ordering.Order, ordering.Event] {
	return aggregate.Type[ordering.Order, ordering.Event]{
		Name: StreamPrefix, Initial: func() ordering.Order { return ordering.Order{} },
		Evolve: ordering.Evolve, Encode: codec.Encode, Decode: codec.Decode,
	}
}

// Decode decodes an ordering record.
func Decode(r eventstore.Record) (ordering.Event, error) { return codec.Decode(r) }

// IsOrderStream reports whether stream is an order's, and which.
func IsOrderStream(stream string) (string, bool) { return strings.CutPrefix(stream, StreamPrefix+"-") }

// Catalog is what ordering needs from the catalog: current unit prices.
type Catalog interface {
	// Prices returns the price of each product; a product that does not
	// exist is missing from the map.
	Prices(ctx context.Context, ids []string) (map[string]money.Money, error)
}

// Customers is ordering's own model of a customer: whether they are premium.
type Customers interface {
	Premium(ctx context.Context, customerID string) (bool, error)
}

// Accounts says whose a payments account is (the payments context's open
// host service): an order is paid from its customer's own account.
type Accounts interface {
	Owner(ctx context.Context, accountID string) (tenant, owner string, err error)
}

// Caller is who asks for a use case (auth.Claims is one): to a caller
// who may not see an order, the order does not exist.
type Caller interface {
	CanSee(tenant, owner string) bool
	HasRole(role string) bool
	UserID() string
}

// Service runs ordering commands.
type Service struct {
	repo       *aggregate.Repository[ordering.Order, ordering.Event]
	catalog    Catalog
	customers  Customers
	accounts   Accounts
	promotions map[string]ordering.Promotion
	merchant   string
	placed     func(eventstore.Metadata, ordering.Order)
	abort      func(ctx context.Context, meta eventstore.Metadata, orderID string) error
	ended      func(ordering.Order)
	now        func() time.Time
}

// Options configure a Service.
type Options struct {
	// Catalog prices products (required).
	Catalog Catalog
	// Customers says who is premium (nil: nobody).
	Customers Customers
	// Accounts says whose a payment account is (nil: Place does not check).
	Accounts Accounts
	// Promotions are the codes customers may use.
	Promotions []ordering.Promotion
	// MerchantAccountID receives the payments for orders.
	MerchantAccountID string
	// Placed, if set, is called with each newly placed order once its
	// OrderPlaced event is committed (not for a repeated placement) — to
	// start its checkout at once rather than when a projection sees the
	// event. Place does not wait for what it starts.
	Placed func(meta eventstore.Metadata, o ordering.Order)
	// Abort, if set, stops a Pending order's checkout from going further
	// and compensates what it did (the orchestrated checkout's saga); the
	// checkout then cancels the order. Without it a customer's cancel
	// cancels the order at once, and the contexts react to that.
	Abort func(ctx context.Context, meta eventstore.Metadata, orderID string) error
	// Ended, if set, is called with each order that reached a terminal
	// status (Confirmed or Cancelled) once the event that took it there is
	// committed — once per order, by the call that ended it — for the
	// checkout's metrics. It must be cheap.
	Ended func(o ordering.Order)
}

// NewService returns a Service on store.
func NewService(store eventstore.Store, opts Options) *Service {
	p := map[string]ordering.Promotion{}
	for _, pr := range opts.Promotions {
		p[pr.Code] = pr
	}
	return &Service{repo: aggregate.NewRepository(store, OrderType(), aggregate.WithCache(16384), aggregate.AssumeNew()), catalog: opts.Catalog, customers: opts.Customers, accounts: opts.Accounts,
		promotions: p, merchant: opts.MerchantAccountID, placed: opts.Placed, abort: opts.Abort, ended: opts.Ended, now: time.Now}
}

// Line is a requested product and quantity.
type Line struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

// PlaceOrder is the command to place an order.
type PlaceOrder struct {
	ID               string
	CustomerID       string
	Lines            []Line
	ShippingAddress  ordering.Address
	PaymentAccountID string
	PromotionCode    string
}

func (cmd PlaceOrder) order() ordering.NewOrder {
	n := ordering.NewOrder{ID: cmd.ID, CustomerID: cmd.CustomerID, ShippingAddress: cmd.ShippingAddress, PaymentAccountID: cmd.PaymentAccountID}
	for _, l := range cmd.Lines {
		n.Items = append(n.Items, ordering.Item{ProductID: l.ProductID, Quantity: l.Quantity})
	}
	return n
}

// Validate checks the order's shape (the rules of ordering.NewOrder) and
// lists every offending field.
func (cmd PlaceOrder) Validate() error { return cmd.order().Validate() }

// ErrNotYourAccount refuses an order paid from another's account.
var ErrNotYourAccount = &errs.Error{Code: errs.Unprocessable, Reason: "payment_account_not_yours", Message: "the payment account is not the customer's",
	Fields: []errs.FieldError{{Field: "payment_account_id", Message: "must be an account of the customer's"}}}

// PlaceFor places cmd for caller c: a customer orders for themself (an
// empty CustomerID is theirs), an admin on a customer's behalf; the
// order is paid from its customer's own account, in c's tenant. It
// returns the order and the position of its event.
func (s *Service) PlaceFor(ctx context.Context, c Caller, meta eventstore.Metadata, cmd PlaceOrder) (ordering.Order, uint64, error) {
	if !c.HasRole(auth.RoleAdmin) {
		if cmd.CustomerID != "" && cmd.CustomerID != c.UserID() {
			return ordering.Order{}, 0, &errs.Error{Code: errs.Forbidden, Reason: "forbidden", Message: "a customer orders only for themself",
				Fields: []errs.FieldError{{Field: "customer_id", Message: "must be yours or absent"}}}
		}
		cmd.CustomerID = c.UserID()
	}
	if s.accounts != nil {
		tenant, owner, err := s.accounts.Owner(ctx, cmd.PaymentAccountID)
		if errs.Transient(err) {
			return ordering.Order{}, 0, err // payments could not say: retry
		}
		if err != nil || owner != cmd.CustomerID || !c.CanSee(tenant, owner) {
			return ordering.Order{}, 0, ErrNotYourAccount
		}
	}
	return s.Place(ctx, meta, cmd)
}

// Place prices and places an order, for the platform (no caller's rules:
// see PlaceFor); it returns the order and the position of its event.
func (s *Service) Place(ctx context.Context, meta eventstore.Metadata, cmd PlaceOrder) (ordering.Order, uint64, error) {
	if cmd.ID == "" {
		cmd.ID = uuid.Must(uuid.NewV7()).String()
	}
	n := cmd.order()
	n.MerchantAccountID, n.Tenant = s.merchant, meta.Tenant
	if err := n.Validate(); err != nil {
		return ordering.Order{}, 0, err
	}
	if cmd.PromotionCode != "" {
		p, ok := s.promotions[cmd.PromotionCode]
		if !ok {
			return ordering.Order{}, 0, &errs.Error{Code: errs.Unprocessable, Reason: "unknown_promotion", Message: "no such promotion code",
				Fields: []errs.FieldError{{Field: "promotion_code", Message: "is not a known code"}}}
		}
		n.Promotions = []ordering.Promotion{p}
	}
	ids := make([]string, len(n.Items))
	for i, it := range n.Items {
		ids[i] = it.ProductID
	}
	prices, err := s.catalog.Prices(ctx, ids)
	if err != nil {
		return ordering.Order{}, 0, err
	}
	var bad []errs.FieldError
	for i := range n.Items {
		p, ok := prices[n.Items[i].ProductID]
		if !ok {
			bad = append(bad, errs.FieldError{Field: "items[" + strconv.Itoa(i) + "].product_id", Message: "is not a product in the catalog"})
			continue
		}
		n.Items[i].UnitPrice = p
	}
	if len(bad) > 0 {
		return ordering.Order{}, 0, &errs.Error{Code: errs.Unprocessable, Reason: "unknown_product", Message: "the order names products that do not exist", Fields: bad}
	}
	if s.customers != nil && cmd.CustomerID != "" {
		if n.Premium, err = s.customers.Premium(ctx, cmd.CustomerID); err != nil {
			return ordering.Order{}, 0, err
		}
	}
	var again *ordering.Order
	res, err := s.repo.Handle(ctx, n.ID, meta, func(l aggregate.Loaded[ordering.Order]) ([]ordering.Event, error) {
		if l.State.Status != ordering.StatusNone && samePlacement(l.State, n) {
			// The same order placed again (a client retrying with its
			// order's ID after losing the answer): the first placement.
			o := l.State
			again = &o
			return nil, nil
		}
		return l.State.Place(n, s.now())
	})
	if err != nil {
		return ordering.Order{}, 0, err
	}
	if again != nil {
		return *again, 0, nil
	}
	if s.placed != nil && len(res.Events) > 0 {
		s.placed(meta, res.State)
	}
	return res.State, res.Append.LastPosition, nil
}

// samePlacement reports whether n asks for order o as it was placed: the
// same customer, payment account, address and lines.
func samePlacement(o ordering.Order, n ordering.NewOrder) bool {
	if o.CustomerID != n.CustomerID || o.PaymentAccountID != n.PaymentAccountID || o.ShippingAddress != n.ShippingAddress ||
		len(o.Items) != len(n.Items) {
		return false
	}
	for i := range o.Items {
		if o.Items[i].ProductID != n.Items[i].ProductID || o.Items[i].Quantity != n.Items[i].Quantity {
			return false
		}
	}
	return true
}

// Get loads order id.
func (s *Service) Get(ctx context.Context, id string) (ordering.Order, uint64, error) {
	l, err := s.repo.Load(ctx, id)
	if err != nil {
		return ordering.Order{}, 0, err
	}
	if l.Version == 0 {
		return ordering.Order{}, 0, ordering.ErrNotFound
	}
	return l.State, l.Version, nil
}

// Order returns order id to c, who must see it: its customer or an admin
// of its tenant.
func (s *Service) Order(ctx context.Context, c Caller, id string) (ordering.Order, uint64, error) {
	o, v, err := s.Get(ctx, id)
	if err == nil && !c.CanSee(o.Tenant, o.CustomerID) {
		return ordering.Order{}, 0, ordering.ErrNotFound
	}
	return o, v, err
}

// handle runs decide on order id: one load, then the append. With a
// caller, it must see the order (else the order does not exist).
func (s *Service) handle(ctx context.Context, c Caller, meta eventstore.Metadata, id string, decide func(ordering.Order, time.Time) ([]ordering.Event, error)) (ordering.Order, uint64, error) {
	res, err := s.repo.Handle(ctx, id, meta, func(l aggregate.Loaded[ordering.Order]) ([]ordering.Event, error) {
		if c != nil && l.Version > 0 && !c.CanSee(l.State.Tenant, l.State.CustomerID) {
			return nil, ordering.ErrNotFound
		}
		return decide(l.State, s.now())
	})
	if err != nil {
		return ordering.Order{}, 0, err
	}
	if s.ended != nil && len(res.Events) > 0 && (res.State.Status == ordering.StatusConfirmed || res.State.Status == ordering.StatusCancelled) {
		s.ended(res.State) // a decision on a terminal order records nothing: this call ended it
	}
	return res.State, res.Append.LastPosition, nil
}

// RequestCancel records the customer's wish to cancel Pending order id.
func (s *Service) RequestCancel(ctx context.Context, meta eventstore.Metadata, id string) (ordering.Order, uint64, error) {
	return s.handle(ctx, nil, meta, id, ordering.Order.RequestCancel)
}

// CancelFor is a customer's cancel of Pending order id, asked by c (its
// customer or an admin of its tenant): with a checkout to abort
// (Options.Abort), the wish is recorded and the checkout aborted, which
// compensates and cancels; without, the order is cancelled at once. It
// returns the order and the position written.
func (s *Service) CancelFor(ctx context.Context, c Caller, meta eventstore.Metadata, id string) (ordering.Order, uint64, error) {
	if s.abort == nil {
		return s.handle(ctx, c, meta, id, func(o ordering.Order, now time.Time) ([]ordering.Event, error) {
			return o.Cancel(ordering.ReasonCancelledByCustomer, now)
		})
	}
	o, pos, err := s.handle(ctx, c, meta, id, ordering.Order.RequestCancel)
	if err != nil || o.Status != ordering.StatusPending {
		return o, pos, err
	}
	return o, pos, s.abort(ctx, meta, id)
}

// Confirm confirms order id (ordering.ErrCancelled once cancellation was asked).
func (s *Service) Confirm(ctx context.Context, meta eventstore.Metadata, id string) (ordering.Order, uint64, error) {
	return s.handle(ctx, nil, meta, id, ordering.Order.Confirm)
}

// Cancel cancels Pending order id for reason.
func (s *Service) Cancel(ctx context.Context, meta eventstore.Metadata, id, reason string) (ordering.Order, uint64, error) {
	return s.handle(ctx, nil, meta, id, func(o ordering.Order, now time.Time) ([]ordering.Event, error) { return o.Cancel(reason, now) })
}

// Publish maps an ordering record to its integration event.
func Publish(r eventstore.Record) (messaging.Message, bool, error) {
	if !codec.Knows(r.Type) {
		return messaging.Message{}, false, nil
	}
	id, _ := IsOrderStream(r.StreamID)
	e, err := codec.Decode(r)
	if err != nil {
		return messaging.Message{}, false, err
	}
	var m messaging.Message
	switch e := e.(type) {
	case ordering.OrderPlaced:
		o := e.Order
		p := orderingapi.OrderPlaced{OrderID: o.ID, CustomerID: o.CustomerID, Total: o.Total,
			ShippingAddress:  orderingapi.Address(o.ShippingAddress),
			PaymentAccountID: o.PaymentAccountID, MerchantAccountID: o.MerchantAccountID}
		for _, it := range o.Items {
			p.Lines = append(p.Lines, orderingapi.Line{ProductID: it.ProductID, Quantity: it.Quantity})
		}
		m, err = messaging.NewMessage(orderingapi.SubjectOrderPlaced, orderingapi.TypeOrderPlaced, p)
	case ordering.OrderConfirmed:
		m, err = messaging.NewMessage(orderingapi.SubjectOrderConfirmed, orderingapi.TypeOrderConfirmed, orderingapi.OrderConfirmed{OrderID: id})
	case ordering.OrderCancelled:
		m, err = messaging.NewMessage(orderingapi.SubjectOrderCancelled, orderingapi.TypeOrderCancelled, orderingapi.OrderCancelled{OrderID: id, Reason: e.Reason})
	default:
		return messaging.Message{}, false, nil
	}
	return m, err == nil, err
}
