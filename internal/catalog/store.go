package catalog

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/money"
)

// Store keeps products in SQL (table catalog_products) with an outbox
// (table catalog_outbox) written in the same transaction. A change's
// outbox position is the catalog's position of it: writes return it, the
// API answers it as an Agora-Position token ("catalog.<n>"), and the
// relay publishes the change with it (messaging.HeaderPosition), so that
// a reader of the catalog's events can say how far it has read.
type Store struct {
	db       *sql.DB
	outbox   *messaging.SQLOutbox
	postgres bool
	// mu serialises writes in this process: outbox positions must commit
	// in order (see messaging.SQLOutbox.Read); on PostgreSQL an advisory
	// lock does the same across processes.
	mu  sync.Mutex
	now func() time.Time
}

// OpenStore creates the tables if needed. postgres selects PostgreSQL
// column types and locking; otherwise db is SQLite.
func OpenStore(ctx context.Context, db *sql.DB, postgres bool) (*Store, error) {
	auto := messaging.SQLiteAutoIncrement
	if postgres {
		auto = messaging.PostgresAutoIncrement
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS catalog_products (
		id TEXT PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL, description TEXT NOT NULL,
		price_amount BIGINT NOT NULL, currency TEXT NOT NULL, version BIGINT NOT NULL,
		created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)`); err != nil {
		return nil, fmt.Errorf("catalog: create table: %w", err)
	}
	ob, err := messaging.NewSQLOutbox(ctx, db, "catalog_outbox", auto)
	if err != nil {
		return nil, err
	}
	return &Store{db: db, outbox: ob, postgres: postgres, now: time.Now}, nil
}

// Outbox is the catalog's outbox, for a relay.
func (s *Store) Outbox() *messaging.SQLOutbox { return s.outbox }

const cols = `id, sku, name, description, price_amount, currency, version, created_at, updated_at`

func scan(row interface{ Scan(...any) error }) (Product, error) {
	var p Product
	var amt, ver, created, updated int64
	var cur string
	if err := row.Scan(&p.ID, &p.SKU, &p.Name, &p.Description, &amt, &cur, &ver, &created, &updated); err != nil {
		return Product{}, err
	}
	m, err := money.Parse(amt, cur)
	if err != nil {
		return Product{}, err
	}
	p.Price, p.Version = m, ver
	p.CreatedAt, p.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	return p, nil
}

// Get returns product id.
func (s *Store) Get(ctx context.Context, id string) (Product, error) {
	p, err := scan(s.db.QueryRowContext(ctx, `SELECT `+cols+` FROM catalog_products WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Product{}, ErrNotFound
	}
	return p, err
}

// Prices returns the price of each existing product in ids (the ordering
// context's Catalog port).
func (s *Store) Prices(ctx context.Context, ids []string) (map[string]money.Money, error) {
	out := make(map[string]money.Money, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	ph := make([]string, len(ids))
	args := make([]any, len(ids))
	for i, id := range ids {
		ph[i] = fmt.Sprintf("$%d", i+1)
		args[i] = id
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, price_amount, currency FROM catalog_products WHERE id IN (`+strings.Join(ph, ",")+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, cur string
		var amt int64
		if err := rows.Scan(&id, &amt, &cur); err != nil {
			return nil, err
		}
		m, err := money.Parse(amt, cur)
		if err != nil {
			return nil, err
		}
		out[id] = m
	}
	return out, rows.Err()
}

// Page is a page of products.
type Page struct {
	Items      []Product `json:"items"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// ErrBadCursor reports a cursor this API did not issue.
var ErrBadCursor = errs.Fields(errs.FieldError{Field: "cursor", Message: "is not a cursor from this list"})

// List returns up to limit products after cursor, in ID order; a
// non-empty q keeps those whose name, SKU or description holds it
// (case-insensitively).
func (s *Store) List(ctx context.Context, q string, limit int, cursor string) (Page, error) {
	after := ""
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(b) == 0 || len(b) > 128 {
			return Page{}, ErrBadCursor
		}
		after = string(b)
	}
	query, args := `SELECT `+cols+` FROM catalog_products WHERE id > $1`, []any{after}
	if q = strings.TrimSpace(q); q != "" {
		// A case-insensitive substring of the name, SKU or description;
		// LIKE's wildcards in q match themselves.
		like := "%" + likeEscaper.Replace(strings.ToLower(q)) + "%"
		query += ` AND (LOWER(name) LIKE $2 ESCAPE '\' OR LOWER(sku) LIKE $2 ESCAPE '\' OR LOWER(description) LIKE $2 ESCAPE '\')`
		args = append(args, like)
	}
	query += fmt.Sprintf(` ORDER BY id LIMIT %d`, limit+1)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return Page{}, err
	}
	defer rows.Close()
	p := Page{Items: []Product{}}
	for rows.Next() {
		pr, err := scan(rows)
		if err != nil {
			return Page{}, err
		}
		p.Items = append(p.Items, pr)
	}
	if err := rows.Err(); err != nil {
		return Page{}, err
	}
	if len(p.Items) > limit {
		p.Items = p.Items[:limit]
		p.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(p.Items[limit-1].ID))
	}
	return p, nil
}

// likeEscaper escapes LIKE's wildcards and its escape character.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// write runs f in a transaction that also adds f's outbox message, then
// wakes the relay. It returns the message's outbox position: the
// catalog's position of the change (see Store).
func (s *Store) write(ctx context.Context, f func(tx *sql.Tx) (messaging.Message, error)) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if s.postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7261)`); err != nil {
			return 0, err
		}
	}
	m, err := f(tx)
	if err != nil {
		return 0, err
	}
	pos, err := s.outbox.AddReturning(ctx, tx, m)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	s.outbox.Notify()
	return pos, nil
}

// message is the integration event of a change to p, made on the request
// meta describes (its tenant, user, correlation and trace context ride in
// the message's headers).
func message(meta eventstore.Metadata, subject, typ string, p Product) (messaging.Message, error) {
	m, err := messaging.NewMessage(subject, typ, catalogapi.Product{ID: p.ID, SKU: p.SKU, Name: p.Name,
		Description: p.Description, Price: p.Price, Version: p.Version, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt})
	m.ID = uuid.Must(uuid.NewV7()).String()
	if m.Headers == nil {
		m.Headers = map[string]string{}
	}
	messaging.SetMetadata(m.Headers, meta)
	return m, err
}

// Create adds product p, on the request meta describes, (a new UUIDv7 ID
// if empty) and publishes ProductCreated. It returns the product and the
// catalog position of the change.
func (s *Store) Create(ctx context.Context, meta eventstore.Metadata, p Product) (Product, uint64, error) {
	if p.ID == "" {
		p.ID = uuid.Must(uuid.NewV7()).String()
	}
	if err := p.Validate(); err != nil {
		return Product{}, 0, err
	}
	now := s.now().UTC()
	p.Version, p.CreatedAt, p.UpdatedAt = 1, now, now
	pos, err := s.write(ctx, func(tx *sql.Tx) (messaging.Message, error) {
		var skus, ids int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FILTER (WHERE sku = $1), COUNT(*) FILTER (WHERE id = $2) FROM catalog_products WHERE sku = $1 OR id = $2`,
			p.SKU, p.ID).Scan(&skus, &ids); err != nil {
			return messaging.Message{}, err
		}
		switch {
		case ids > 0:
			return messaging.Message{}, ErrIDTaken
		case skus > 0:
			return messaging.Message{}, ErrSKUTaken
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO catalog_products (`+cols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			p.ID, p.SKU, p.Name, p.Description, p.Price.Amount, p.Price.Currency.Code(), p.Version, now.UnixNano(), now.UnixNano())
		if err != nil {
			return messaging.Message{}, err
		}
		return message(meta, catalogapi.SubjectProductCreated, catalogapi.TypeProductCreated, p)
	})
	if err != nil {
		return Product{}, 0, err
	}
	return p, pos, nil
}

// Update changes product id, on the request meta describes, and publishes
// ProductUpdated. It returns the product and the catalog position of the
// change.
func (s *Store) Update(ctx context.Context, meta eventstore.Metadata, id string, u Update) (Product, uint64, error) {
	var out Product
	pos, err := s.write(ctx, func(tx *sql.Tx) (messaging.Message, error) {
		p, err := scan(tx.QueryRowContext(ctx, `SELECT `+cols+` FROM catalog_products WHERE id = $1`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return messaging.Message{}, ErrNotFound
		}
		if err != nil {
			return messaging.Message{}, err
		}
		if out, err = p.Apply(u, s.now()); err != nil {
			return messaging.Message{}, err
		}
		_, err = tx.ExecContext(ctx, `UPDATE catalog_products SET name = $1, description = $2, price_amount = $3, currency = $4,
			version = $5, updated_at = $6 WHERE id = $7`,
			out.Name, out.Description, out.Price.Amount, out.Price.Currency.Code(), out.Version, out.UpdatedAt.UnixNano(), id)
		if err != nil {
			return messaging.Message{}, err
		}
		return message(meta, catalogapi.SubjectProductUpdated, catalogapi.TypeProductUpdated, out)
	})
	if err != nil {
		return Product{}, 0, err
	}
	return out, pos, nil
}

// Snapshot returns up to limit products with IDs after after, in ID
// order, each as it is at catalog position pos or later, and whether
// more follow: a page of the catalog for another context to fill its
// own model of it from (catalogapi.Products). pos is the outbox's head,
// read before the products: every change at or before it committed
// before the page was read (writes commit in position order, see write).
func (s *Store) Snapshot(ctx context.Context, after string, limit int) (items []Product, pos uint64, more bool, err error) {
	if pos, err = s.outbox.Head(ctx); err != nil {
		return nil, 0, false, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+cols+` FROM catalog_products WHERE id > $1 ORDER BY id LIMIT $2`, after, limit+1)
	if err != nil {
		return nil, 0, false, fmt.Errorf("catalog: snapshot: %w", err)
	}
	defer rows.Close()
	items = []Product{}
	for rows.Next() {
		p, err := scan(rows)
		if err != nil {
			return nil, 0, false, fmt.Errorf("catalog: snapshot: %w", err)
		}
		items = append(items, p)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, fmt.Errorf("catalog: snapshot: %w", err)
	}
	if len(items) > limit {
		items, more = items[:limit], true
	}
	return items, pos, more, nil
}
