// Package products is the ordering context's own model of the catalog's
// products: each product's name, price (integer minor units and a
// currency) and catalog version, in ordering's read-model database
// (table ordering_product_prices), and how far into the catalog's
// positions the model has read (ordering_catalog_feed). Ordering prices
// orders from it and never asks the catalog for a price.
//
// The model is fed by the catalog's integration events (ProductCreated,
// ProductUpdated; the catalog removes no product) through a durable
// consumer of the CATALOG stream that starts at the stream's beginning
// and handles it strictly in order, one message at a time across every
// ordering instance (messaging.Consumer.InFlight 1). Applying an event
// keeps the newer of the product's versions, so a redelivered, repeated
// or older event never moves a price backwards and a replay changes
// nothing: the effect is a maximum, which needs no inbox.
//
// The stream keeps a week of events, not every product's latest, so an
// empty model (a fresh ordering database, or one from before the model
// existed) is first filled from the catalog itself: Seed copies every
// product page by page (catalogapi.Products) as of a catalog position,
// once. That is the only call ordering makes to the catalog.
//
// Staleness. The model's position is the catalog position up to which
// it holds every change: once seeded, the larger of the seed's position
// and the last position its consumer applied (in order, so nothing
// before it is missing), and 0 before. Prices answers the model's
// current prices, which may lag a catalog write by the time its event
// takes to arrive; a client that must see a write sends its
// Agora-Position ("catalog.<n>") as Agora-Min-Position, and the ordering
// API waits (WaitFor, up to httpapi.MaxConsistencyWait, else 504) until
// the model's position reaches n. A product the model does not hold is
// waited for (up to Options.MissingWait, 2 s by default) before it is
// reported missing: a product created a moment ago whose event is still
// on its way.
package products

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/backoff"
	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/sqlmigrate"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/money"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Subjects are the catalog's subjects the model follows.
var Subjects = []string{"catalog.>"}

// ErrNotReady is answered for a product the model does not hold while it
// has not been filled from the catalog yet (Seed): whether the product
// exists cannot be told. A retry may succeed.
var ErrNotReady = &errs.Error{Code: errs.Unavailable, Reason: "prices_not_ready",
	Message: "ordering has not loaded the catalog's prices yet; retry shortly"}

// Pages reads the catalog's products a page at a time
// (catalogapi.Products, bound to the process's exchange).
type Pages func(ctx context.Context, r catalogapi.ProductsRequest) (catalogapi.ProductsPage, error)

// Options configure a Model.
type Options struct {
	// Postgres selects PostgreSQL locking for the migrations (else the
	// database is SQLite).
	Postgres bool
	// Pages fills an empty model from the catalog (nil: Seed fails).
	Pages Pages
	// MissingWait bounds how long Prices waits for a product the model
	// does not hold (default 2 s).
	MissingWait time.Duration
	// Poll is how often a waiter looks at the database for what another
	// process applied (default 250 ms); this process's own applies wake
	// it at once.
	Poll time.Duration
	// Logger receives the seed's progress and failures.
	Logger *slog.Logger
}

// Model is ordering's model of the catalog's products.
type Model struct {
	db    *sql.DB
	opts  Options
	notes eventstore.Notifier // bumped after every change this process commits
	seed  chan struct{}       // one seed at a time
}

// Open applies the model's migrations to db and returns the model.
func Open(ctx context.Context, db *sql.DB, opts Options) (*Model, error) {
	lock := ""
	if opts.Postgres {
		lock = "SELECT pg_advisory_xact_lock(7262054)"
	}
	if err := sqlmigrate.Apply(ctx, db, migrations, "migrations", "ordering_migrations", lock); err != nil {
		return nil, fmt.Errorf("ordering products: %w", err)
	}
	if opts.MissingWait <= 0 {
		opts.MissingWait = 2 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = 250 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Model{db: db, opts: opts, seed: make(chan struct{}, 1)}, nil
}

func (m *Model) changed() { m.notes.Publish(m.notes.Head() + 1) }

// Handle is the consumer's handler: it applies a catalog event. An event
// of a type it does not know only moves the model's position; one it
// cannot read is dropped (messaging.ErrPermanent, a dead letter).
func (m *Model) Handle(ctx context.Context, d messaging.Delivery) error {
	pos, _ := strconv.ParseUint(d.Headers[messaging.HeaderPosition], 10, 64) // 0: not relayed from the catalog's outbox
	var p *catalogapi.Product
	switch d.Type {
	case catalogapi.TypeProductCreated, catalogapi.TypeProductUpdated:
		v, err := messaging.Decode[catalogapi.Product](d.Message)
		if err != nil {
			return fmt.Errorf("ordering products: %s %s: %w: %w", d.Type, d.ID, err, messaging.ErrPermanent)
		}
		if v.ID == "" || v.Version <= 0 || v.Price.Currency.IsZero() || v.Price.Amount < 0 {
			return fmt.Errorf("ordering products: %s %s: no product, version or price: %w", d.Type, d.ID, messaging.ErrPermanent)
		}
		p = &v
	}
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ordering products: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	if p != nil {
		if err := upsert(ctx, tx, *p, pos); err != nil {
			return err
		}
	}
	if pos > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE ordering_catalog_feed SET applied = $1 WHERE id = 1 AND applied < $1`, int64(pos)); err != nil {
			return fmt.Errorf("ordering products: feed: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ordering products: %w", err)
	}
	m.changed()
	return nil
}

// upsert keeps p unless the model holds a version of it at least as new.
func upsert(ctx context.Context, tx *sql.Tx, p catalogapi.Product, pos uint64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO ordering_product_prices (product_id, name, amount, currency, version, position, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (product_id) DO UPDATE SET name = excluded.name, amount = excluded.amount, currency = excluded.currency,
			version = excluded.version, position = excluded.position, updated_at = excluded.updated_at
		WHERE ordering_product_prices.version < excluded.version`,
		p.ID, p.Name, p.Price.Amount, p.Price.Currency.Code(), p.Version, int64(pos), p.UpdatedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("ordering products: product %s: %w", p.ID, err)
	}
	return nil
}

// feed is the model's progress.
type feed struct {
	seeded           bool
	seedPos, applied uint64
}

// position is the catalog position up to which the model holds every
// change (0 before the seed).
func (f feed) position() uint64 {
	if !f.seeded {
		return 0
	}
	return max(f.seedPos, f.applied)
}

func (m *Model) feed(ctx context.Context) (feed, error) {
	var f feed
	var seedPos, applied int64
	if err := m.db.QueryRowContext(ctx, `SELECT seeded, seed_position, applied FROM ordering_catalog_feed WHERE id = 1`).
		Scan(&f.seeded, &seedPos, &applied); err != nil {
		return feed{}, fmt.Errorf("ordering products: feed: %w", err)
	}
	f.seedPos, f.applied = uint64(seedPos), uint64(applied)
	return f, nil
}

// Position returns the catalog position up to which the model holds
// every change: the larger of the seed's and the consumer's, once
// seeded; 0 before.
func (m *Model) Position(ctx context.Context) (uint64, error) {
	f, err := m.feed(ctx)
	return f.position(), err
}

// Seeded reports whether the model was filled from the catalog.
func (m *Model) Seeded(ctx context.Context) (bool, error) {
	f, err := m.feed(ctx)
	return f.seeded, err
}

// Seed fills the model from the catalog's pages unless it was filled
// before: every product, each kept unless the model holds a version at
// least as new, and the position the first page was read at (positions
// only grow, so every later page is at least as new). A seed cut short
// is done again from the start.
func (m *Model) Seed(ctx context.Context) error {
	select {
	case m.seed <- struct{}{}:
		defer func() { <-m.seed }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if f, err := m.feed(ctx); err != nil || f.seeded {
		return err
	}
	if m.opts.Pages == nil {
		return errors.New("ordering products: no catalog to seed from")
	}
	var (
		after string
		at    uint64
		n     int
	)
	for first := true; ; first = false {
		page, err := m.opts.Pages(ctx, catalogapi.ProductsRequest{After: after, Limit: catalogapi.MaxProductsPage})
		if err != nil {
			return fmt.Errorf("ordering products: seed from the catalog: %w", err)
		}
		if first || page.Position < at {
			at = page.Position
		}
		if err := m.seedPage(ctx, page); err != nil {
			return err
		}
		n += len(page.Items)
		if !page.More || len(page.Items) == 0 {
			break
		}
		after = page.Items[len(page.Items)-1].ID
	}
	if _, err := m.db.ExecContext(ctx, `UPDATE ordering_catalog_feed SET seeded = TRUE, seed_position = $1 WHERE id = 1`, int64(at)); err != nil {
		return fmt.Errorf("ordering products: seed: %w", err)
	}
	m.changed()
	m.opts.Logger.Info("ordering: price model filled from the catalog", "products", n, "catalog_position", at)
	return nil
}

func (m *Model) seedPage(ctx context.Context, page catalogapi.ProductsPage) error {
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ordering products: seed: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	for _, p := range page.Items {
		if p.ID == "" || p.Version <= 0 || p.Price.Currency.IsZero() {
			continue
		}
		if err := upsert(ctx, tx, p, page.Position); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ordering products: seed: %w", err)
	}
	return nil
}

// Run seeds an empty model (retrying, with backoff, while the catalog
// does not answer), then returns once ctx ends: a module's daemon.
func (m *Model) Run(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := m.Seed(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m.opts.Logger.Warn("ordering: could not fill the price model from the catalog yet; retrying", "attempt", attempt, "err", err)
		if err := backoff.Sleep(ctx, backoff.Delay(200*time.Millisecond, 10*time.Second, attempt)); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

// WaitFor returns once the model's position reaches pos (it holds every
// catalog change up to pos), or ctx ends: httpapi.Waiter for a catalog
// Agora-Min-Position.
func (m *Model) WaitFor(ctx context.Context, pos uint64) error {
	for {
		ch := m.notes.Changed()
		p, err := m.Position(ctx)
		if err != nil {
			return err
		}
		if p >= pos {
			return nil
		}
		if err := m.wait(ctx, ch); err != nil {
			return err
		}
	}
}

// wait returns when ch closes, after the poll interval, or with ctx's
// error.
func (m *Model) wait(ctx context.Context, ch <-chan struct{}) error {
	t := time.NewTimer(m.opts.Poll)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// Prices returns the model's current price of each of ids it holds
// (ordering's app.Catalog port). A product it does not hold is waited
// for, up to Options.MissingWait, and then left out of the map (the
// order names a product that does not exist) — or, while the model has
// not been filled from the catalog yet, ErrNotReady. An empty model is
// seeded here too, should the daemon not have done it yet.
func (m *Model) Prices(ctx context.Context, ids []string) (map[string]money.Money, error) {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	wait, cancel := context.WithTimeout(ctx, m.opts.MissingWait)
	defer cancel()
	for {
		ch := m.notes.Changed()
		got, err := m.read(ctx, ids)
		if err != nil {
			return nil, err
		}
		if len(got) == len(want) {
			return got, nil
		}
		f, err := m.feed(ctx)
		if err != nil {
			return nil, err
		}
		if !f.seeded && m.opts.Pages != nil {
			if err := m.Seed(wait); err != nil && wait.Err() == nil {
				m.opts.Logger.Debug("ordering: seeding the price model failed", "err", err)
			} else if err == nil {
				continue // look again at once
			}
		}
		if err := m.wait(wait, ch); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !f.seeded {
				f, err := m.feed(ctx)
				if err != nil {
					return nil, err
				}
				if !f.seeded {
					return nil, ErrNotReady
				}
			}
			return m.read(ctx, ids) // one last look
		}
	}
}

// read returns the prices the model holds of ids.
func (m *Model) read(ctx context.Context, ids []string) (map[string]money.Money, error) {
	out := make(map[string]money.Money, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	ph := make([]string, len(ids))
	args := make([]any, len(ids))
	for i, id := range ids {
		ph[i] = "$" + strconv.Itoa(i+1)
		args[i] = id
	}
	rows, err := m.db.QueryContext(ctx, `SELECT product_id, amount, currency FROM ordering_product_prices WHERE product_id IN (`+
		strings.Join(ph, ",")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("ordering products: prices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, cur string
		var amt int64
		if err := rows.Scan(&id, &amt, &cur); err != nil {
			return nil, fmt.Errorf("ordering products: prices: %w", err)
		}
		p, err := money.Parse(amt, cur)
		if err != nil {
			return nil, fmt.Errorf("ordering products: price of %s: %w", id, err)
		}
		out[id] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ordering products: prices: %w", err)
	}
	return out, nil
}

// Product is a product as the model holds it.
type Product struct {
	ID       string
	Name     string
	Price    money.Money
	Version  int64
	Position uint64
}

// Get returns product id as the model holds it (ok false if it does not).
func (m *Model) Get(ctx context.Context, id string) (p Product, ok bool, err error) {
	var amt, ver, pos int64
	var cur string
	err = m.db.QueryRowContext(ctx, `SELECT product_id, name, amount, currency, version, position FROM ordering_product_prices WHERE product_id = $1`, id).
		Scan(&p.ID, &p.Name, &amt, &cur, &ver, &pos)
	if errors.Is(err, sql.ErrNoRows) {
		return Product{}, false, nil
	}
	if err != nil {
		return Product{}, false, fmt.Errorf("ordering products: product %s: %w", id, err)
	}
	if p.Price, err = money.Parse(amt, cur); err != nil {
		return Product{}, false, fmt.Errorf("ordering products: price of %s: %w", id, err)
	}
	p.Version, p.Position = ver, uint64(pos)
	return p, true, nil
}
