package server

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/bff"
	"github.com/agora-commerce/agora/internal/catalog"
	catapi "github.com/agora-commerce/agora/internal/catalog/api"
	catcache "github.com/agora-commerce/agora/internal/catalog/cache"
	invapi "github.com/agora-commerce/agora/internal/inventory/api"
	invapp "github.com/agora-commerce/agora/internal/inventory/app"
	"github.com/agora-commerce/agora/internal/ordering"
	ordapi "github.com/agora-commerce/agora/internal/ordering/api"
	ordapp "github.com/agora-commerce/agora/internal/ordering/app"
	"github.com/agora-commerce/agora/internal/ordering/checkout"
	"github.com/agora-commerce/agora/internal/payments"
	payapi "github.com/agora-commerce/agora/internal/payments/api"
	payapp "github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/readmodel"
	shipapi "github.com/agora-commerce/agora/internal/shipping/api"
	shipapp "github.com/agora-commerce/agora/internal/shipping/app"
	"github.com/agora-commerce/agora/internal/shipping/carrier"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/money"
	"github.com/agora-commerce/agora/projection"
	"github.com/agora-commerce/agora/saga"
)

// Streams on the bus: every event-sourced context's integration events,
// and the catalog's.
const (
	eventsStream  = "EVENTS"
	catalogStream = "CATALOG"
)

// Promotions are the promotion codes on offer.
var Promotions = []ordering.Promotion{
	{Code: "WELCOME10", Kind: ordering.Percentage, BasisPoints: 1000},
	{Code: "FIVEOFF", Kind: ordering.FixedAmount, Amount: money.New(500, money.MustCurrency("USD"))},
}

// publish maps any context's record to its integration event.
func publish(r eventstore.Record) (messaging.Message, bool, error) {
	for _, f := range []messaging.Mapper{ordapp.Publish, invapp.Publish, payapp.Publish, shipapp.Publish} {
		if m, ok, err := f(r); ok || err != nil {
			return m, ok, err
		}
	}
	return messaging.Message{}, false, nil
}

func (s *Server) runner(ctx context.Context, owner string, p projection.Projection) (*projection.Runner, error) {
	// On PostgreSQL several instances may share the read models: fence
	// each batch on its checkpoint (see projection.Options.Shared).
	r := projection.NewRunner(s.store, s.rmDB, p, projection.Options{Logger: s.log, Shared: s.cfg.PostgresURL != ""})
	if err := r.Init(ctx); err != nil {
		return nil, err
	}
	s.runners = append(s.runners, r)
	s.runnerOwners = append(s.runnerOwners, owner)
	s.metrics.Projection(r)
	return r, nil
}

// wire builds every bounded context, the bus plumbing and the checkout.
func (s *Server) wire(ctx context.Context) error {
	cfg := s.cfg
	pg := cfg.PostgresURL != ""
	// Payments.
	s.Payments = payapp.NewService(s.store)
	accounts, err := s.runner(ctx, clusterPayments, readmodel.Projection{})
	if err != nil {
		return err
	}
	if _, err := s.Payments.Open(ctx, eventstore.Metadata{}, payapp.OpenAccount{ID: cfg.MerchantAccountID, OwnerID: "merchant",
		Initial: money.New(0, money.MustCurrency("USD"))}); err != nil && !errors.Is(err, payments.ErrAlreadyOpen) {
		return err
	}
	sopts := saga.Options{Logger: s.log}
	if cfg.Only != "" {
		// Other instances' engines take over a dead one's sagas, and each
		// context's processes drive its own sagas only: checkouts in
		// ordering, transfers in payments.
		sopts.Sweep = 10 * time.Second
		switch cfg.Only {
		case clusterOrdering:
			sopts.Types = []string{checkout.SagaType}
		case clusterPayments:
			sopts.Types = []string{payapp.TransferSagaType}
		}
	}
	s.engine = saga.NewEngine(s.store, s.rmDB, sopts)
	saga.Register(s.engine, payapp.TransferSaga(s.Payments))

	// Catalog, inventory, shipping.
	if s.Catalog, err = catalog.OpenStore(ctx, s.rmDB, pg); err != nil {
		return err
	}
	copts := catcache.Options{}
	if s.redis != nil {
		copts.Redis = s.redis
	}
	if s.Products, err = catcache.New(s.Catalog, copts); err != nil {
		return err
	}
	// Every instance follows the catalog's events to keep its cache fresh.
	s.consumers = append(s.consumers, consumer{messaging.Consumer{Name: "catalog-cache", Stream: catalogStream,
		Subjects: catcache.Subjects, Ephemeral: true}, s.Products.Handle, "*"})
	s.Inventory = invapp.NewService(s.store)
	s.Carrier = carrier.NewSim(cfg.CarrierFailureRate, cfg.CarrierLatency)
	s.Shipping = shipapp.NewService(s.store, shipapp.Parcelo{Sim: s.Carrier})

	// Ordering and the checkout.
	var placed func(eventstore.Metadata, ordering.Order)
	if cfg.CheckoutMode == Orchestration {
		// Start the checkout as soon as the order is placed; the Starter
		// below starts those a crash kept from starting (Start is
		// idempotent).
		placed = func(meta eventstore.Metadata, o ordering.Order) {
			go func() {
				ctx, cancel := context.WithTimeout(saga.WithMetadata(context.Background(), meta), 10*time.Second)
				defer cancel()
				if _, err := s.engine.Start(ctx, checkout.SagaType, checkout.SagaID(o.ID), checkout.DataOf(o)); err != nil {
					s.log.Debug("checkout: early start failed; the starter will start it", "order", o.ID, "err", err)
				}
			}()
		}
	}
	s.Ordering = ordapp.NewService(s.store, ordapp.Options{Catalog: s.Products, Promotions: Promotions, MerchantAccountID: cfg.MerchantAccountID, Placed: placed})
	orders, err := s.runner(ctx, clusterOrdering, ordapp.Orders{})
	if err != nil {
		return err
	}
	queries := ordapp.NewOrderQueries(s.rmDB)
	var cancel ordapi.Canceller
	sagaID := func(string) string { return "" }
	asks := s.asks()
	if cfg.CheckoutMode == Orchestration {
		saga.Register(s.engine, checkout.Saga(checkout.Ports{Orders: s.Ordering, Stock: asks.stock,
			Payments: asks.payments, Shipping: asks.shipping, StepDeadline: cfg.CheckoutTimeout}))
		if _, err := s.runner(ctx, clusterOrdering, checkout.Starter{Engine: s.engine}); err != nil {
			return err
		}
		sagaID = checkout.SagaID
		cancel = func(ctx context.Context, meta eventstore.Metadata, id string) (ordering.Order, uint64, error) {
			o, pos, err := s.Ordering.RequestCancel(ctx, meta, id)
			if err != nil || o.Status != ordering.StatusPending {
				return o, pos, err
			}
			if err := s.engine.Abort(saga.WithMetadata(ctx, meta), checkout.SagaID(id), ordering.ReasonCancelledByCustomer); err != nil &&
				!errors.Is(err, saga.ErrNotRunning) && !errors.Is(err, saga.ErrNotFound) {
				return o, pos, err
			}
			return o, pos, nil
		}
	} else {
		cancel = func(ctx context.Context, meta eventstore.Metadata, id string) (ordering.Order, uint64, error) {
			return s.Ordering.Cancel(ctx, meta, id, ordering.ReasonCancelledByCustomer)
		}
		if err := s.choreography(ctx, queries); err != nil {
			return err
		}
	}

	// The bus: relays from the outboxes.
	if err := s.bus.EnsureStream(ctx, eventsStream, "ordering.>", "inventory.>", "payments.>", "shipping.>"); err != nil {
		return err
	}
	if err := s.bus.EnsureStream(ctx, catalogStream, "catalog.>"); err != nil {
		return err
	}
	for _, c := range s.consumers {
		if err := s.bus.Repair(ctx, c.c); err != nil {
			return err
		}
	}
	cps, err := messaging.SQLCheckpoints(ctx, s.rmDB)
	if err != nil {
		return err
	}
	// The event log's relay runs with ordering (one context had to host
	// it). On PostgreSQL several instances may run a relay; a session
	// lock lets one publish while the others stand by.
	relayOpts := func(name, stream string) messaging.RelayOptions {
		o := messaging.RelayOptions{Name: name, Tail: s.bus.Tail(stream), Logger: s.log}
		if s.cfg.PostgresURL != "" {
			// Advisory locks are the database's; checkpoints, the schema's.
			schema := cmp.Or(s.cfg.PostgresSchema, "public")
			o.Leader = messaging.PostgresLeader(s.rmDB, "relay/"+schema+"/"+name, time.Second, s.log)
		}
		return o
	}
	for owner, r := range map[string]*messaging.Relay{
		clusterOrdering: messaging.NewRelay(messaging.EventLog(s.store, publish), s.bus, cps, relayOpts("events", eventsStream)),
		clusterCatalog:  messaging.NewRelay(s.Catalog.Outbox(), s.bus, cps, relayOpts("catalog", catalogStream)),
	} {
		s.bus.OnReconnect(r.RequestRewind)
		s.relays = append(s.relays, r)
		s.relayOwners = append(s.relayOwners, owner)
	}

	payapi.New(s.Payments, readmodel.NewQueries(s.rmDB), accounts, s.store).WithTransfers(s.engine).Register(s.mux(clusterPayments))
	catapi.New(s.Catalog, s.Products).Register(s.mux(clusterCatalog))
	invapi.New(s.Inventory, asks.products).Register(s.mux(clusterInventory))
	shipapi.New(s.Shipping, asks.orderOwners).Register(s.mux(clusterShipping))
	ordapi.New(s.Ordering, queries, orders, cancel, sagaID, asks.accountOwners).Register(s.mux(clusterOrdering))
	sagasAPI{engine: s.engine, orders: s.Ordering, accounts: asks.accountOwners}.Register(s.mux(clusterOrdering))
	pop, err := bff.NewPopularity(ctx, s.rmDB, s.log)
	if err != nil {
		return err
	}
	s.consumers = append(s.consumers, consumer{messaging.Consumer{Name: "bff-popularity", Stream: eventsStream, Subjects: bff.Subjects}, pop.Handle, clusterBFF})
	s.daemons = append(s.daemons, daemon{clusterBFF, pop.Run})
	bff.New(s.resolve, pop, bff.Options{}).Register(s.mux(clusterBFF))
	return s.wireIdentity(ctx, s.mux(clusterIdentity), asks.accounts)
}

// choreography subscribes each context to the events it reacts to.
func (s *Server) choreography(ctx context.Context, queries *ordapp.OrderQueries) error {
	payH, err := s.Payments.Reactions(ctx, s.rmDB)
	if err != nil {
		return err
	}
	shipH, err := s.Shipping.Reactions(ctx, s.rmDB)
	if err != nil {
		return err
	}
	for _, c := range []consumer{
		{messaging.Consumer{Name: "inventory-checkout", Subjects: invapp.ReactionSubjects}, s.Inventory.Reactions(), clusterInventory},
		{messaging.Consumer{Name: "payments-checkout", Subjects: payapp.ReactionSubjects}, payH, clusterPayments},
		{messaging.Consumer{Name: "shipping-checkout", Subjects: shipapp.ReactionSubjects}, shipH, clusterShipping},
		{messaging.Consumer{Name: "ordering-checkout", Subjects: ordapp.ReactionSubjects}, s.Ordering.Reactions(), clusterOrdering},
	} {
		// A delivery in flight when a process dies comes back after
		// AckWait: keep it well inside the checkout timeout (handlers are
		// idempotent, so a slow one delivered twice does no harm).
		c.c.Stream, c.c.Concurrency, c.c.AckWait = eventsStream, 64, 5*time.Second
		s.consumers = append(s.consumers, c)
	}
	wd := checkout.Watchdog{Orders: s.Ordering, Queries: queries, Timeout: s.cfg.CheckoutTimeout, Logger: s.log}
	s.daemons = append(s.daemons, daemon{clusterOrdering, wd.Run})
	return nil
}
