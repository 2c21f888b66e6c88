package app

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
)

// Orders is the orders read model (table ordering_order_list): every
// order as its stream last told it, listed by tenant, customer and
// status. (It replaced ordering_orders when orders gained a tenant: a new
// name starts from the beginning of the log and fills the new table.)
//
// An order's body is the OrderPlaced event's data as it was recorded,
// never rewritten; what later events change — status, reason, the
// cancellation request, updated_at — lives in columns that a query lays
// over the body. So applying an event is one INSERT or one UPDATE, with
// no read and no re-encoding of the order.
type Orders struct{}

// Name implements projection.Projection.
func (Orders) Name() string { return "ordering.order_list" }

// Setup implements projection.Projection.
func (Orders) Setup(ctx context.Context, db *sql.DB) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS ordering_order_list (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, customer_id TEXT NOT NULL,
			status TEXT NOT NULL, reason TEXT NOT NULL, cancel_requested BOOLEAN NOT NULL,
			created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, placed TEXT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ordering_order_list_status ON ordering_order_list (tenant, status, id)`,
		`CREATE INDEX IF NOT EXISTS ordering_order_list_customer ON ordering_order_list (tenant, customer_id, id)`,
		// The orders still Pending, few at any time (CountPending).
		`CREATE INDEX IF NOT EXISTS ordering_order_list_pending ON ordering_order_list (updated_at) WHERE status = 'Pending'`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("ordering read model: %w", err)
		}
	}
	return nil
}

// Reset implements projection.Projection.
func (Orders) Reset(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM ordering_order_list`)
	return err
}

// Apply implements projection.Projection.
func (Orders) Apply(ctx context.Context, tx *sql.Tx, batch []eventstore.Record) error {
	for _, r := range batch {
		id, ok := IsOrderStream(r.StreamID)
		if !ok || !codec.Knows(r.Type) {
			continue
		}
		e, err := codec.Decode(r)
		if err != nil {
			return err
		}
		switch e := e.(type) {
		case ordering.OrderPlaced:
			o := e.Order
			tenant := o.Tenant
			if tenant == "" {
				tenant = auth.DefaultTenant
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO ordering_order_list
				(id, tenant, customer_id, status, reason, cancel_requested, created_at, updated_at, placed)
				VALUES ($1, $2, $3, $4, '', FALSE, $5, $5, $6) ON CONFLICT (id) DO NOTHING`,
				id, tenant, o.CustomerID, string(o.Status), o.CreatedAt.UnixNano(), string(r.Data))
		case ordering.OrderCancellationRequested:
			_, err = tx.ExecContext(ctx, `UPDATE ordering_order_list SET cancel_requested = TRUE, updated_at = $1 WHERE id = $2`,
				e.At.UnixNano(), id)
		case ordering.OrderConfirmed:
			_, err = tx.ExecContext(ctx, `UPDATE ordering_order_list SET status = $1, updated_at = $2 WHERE id = $3`,
				string(ordering.StatusConfirmed), e.At.UnixNano(), id)
		case ordering.OrderCancelled:
			_, err = tx.ExecContext(ctx, `UPDATE ordering_order_list SET status = $1, reason = $2, updated_at = $3 WHERE id = $4`,
				string(ordering.StatusCancelled), e.Reason, e.At.UnixNano(), id)
		}
		if err != nil {
			return fmt.Errorf("order %s: %w", id, err)
		}
	}
	return nil
}

// OrderQueries reads the orders read model.
type OrderQueries struct{ db *sql.DB }

// NewOrderQueries returns queries on db.
func NewOrderQueries(db *sql.DB) *OrderQueries { return &OrderQueries{db: db} }

// Filter selects orders.
type Filter struct {
	// Tenant keeps that tenant's orders ("" for all: the watchdog).
	Tenant string
	// Status keeps orders in this status ("" for all).
	Status ordering.Status
	// CustomerID keeps one customer's orders ("" for all).
	CustomerID string
	// OlderThan keeps orders last changed before this time (zero: all).
	OlderThan time.Time
	// Limit caps the page (1..500).
	Limit int
	// Cursor continues a previous page.
	Cursor string
	// Newest lists the newest orders first (IDs are UUIDv7: time order).
	Newest bool
}

// Page is a page of orders.
type Page struct {
	Items      []ordering.Order `json:"items"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

// ErrBadCursor reports a cursor this API did not issue.
var ErrBadCursor = errs.Fields(errs.FieldError{Field: "cursor", Message: "is not a cursor from this list"})

// CountPending returns how many orders are Pending, every tenant's: the
// checkouts under way (for metrics).
func (q *OrderQueries) CountPending(ctx context.Context) (int, error) {
	var n int
	// The status is a literal, so that the partial index serves the count.
	if err := q.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM ordering_order_list WHERE status = 'Pending'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("ordering: count pending orders: %w", err)
	}
	return n, nil
}

// List returns a page of orders in ID (time) order.
func (q *OrderQueries) List(ctx context.Context, f Filter) (Page, error) {
	return q.list(ctx, f)
}

// ListFor lists orders for c: a customer sees their own, whatever f's
// CustomerID says; an admin, any of f.Tenant's.
func (q *OrderQueries) ListFor(ctx context.Context, c Caller, f Filter) (Page, error) {
	if !c.HasRole(auth.RoleAdmin) {
		f.CustomerID = c.UserID()
	}
	return q.list(ctx, f)
}

func (q *OrderQueries) list(ctx context.Context, f Filter) (Page, error) {
	after := ""
	if f.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(f.Cursor)
		if err != nil || len(b) == 0 || len(b) > 128 {
			return Page{}, ErrBadCursor
		}
		after = string(b)
	}
	older := int64(1<<63 - 1)
	if !f.OlderThan.IsZero() {
		older = f.OlderThan.UnixNano()
	}
	page, order := `id > $1`, `id`
	if f.Newest {
		page, order = `($1 = '' OR id < $1)`, `id DESC`
	}
	rows, err := q.db.QueryContext(ctx, `SELECT placed, status, reason, cancel_requested, updated_at FROM ordering_order_list
		WHERE `+page+` AND ($2 = '' OR status = $2) AND ($3 = '' OR customer_id = $3) AND updated_at < $4 AND ($6 = '' OR tenant = $6)
		ORDER BY `+order+` LIMIT $5`, after, string(f.Status), f.CustomerID, older, f.Limit+1, f.Tenant)
	if err != nil {
		return Page{}, err
	}
	defer rows.Close()
	p := Page{Items: []ordering.Order{}}
	for rows.Next() {
		var (
			placed, status, reason string
			cancelRequested        bool
			updated                int64
		)
		if err := rows.Scan(&placed, &status, &reason, &cancelRequested, &updated); err != nil {
			return Page{}, err
		}
		var e ordering.OrderPlaced
		if err := json.Unmarshal([]byte(placed), &e); err != nil {
			return Page{}, err
		}
		o := e.Order
		o.Status, o.Reason, o.CancelRequested, o.UpdatedAt = ordering.Status(status), reason, cancelRequested, time.Unix(0, updated).UTC()
		p.Items = append(p.Items, o)
	}
	if err := rows.Err(); err != nil {
		return Page{}, err
	}
	if len(p.Items) > f.Limit {
		p.Items = p.Items[:f.Limit]
		p.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(p.Items[len(p.Items)-1].ID))
	}
	return p, nil
}
