// Package readmodel holds the payments context's CQRS read side: the
// account summary projection (balance, status, last activity, transaction
// count, version) and the queries on it — one account, accounts by status,
// accounts with a balance of at least N — served from indexed SQL tables
// that the projection keeps up to date from the event log. The SQL runs on
// SQLite and PostgreSQL alike.
package readmodel

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/payments"
	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/money"
)

// Summary is one row of the account summary read model.
type Summary struct {
	// ID is the account's ID.
	ID string `json:"id"`
	// OwnerID is who owns the account.
	OwnerID string `json:"owner_id"`
	// Tenant is the tenant the account belongs to.
	Tenant string `json:"tenant"`
	// Balance is the current balance.
	Balance money.Money `json:"balance"`
	// Status is "Active" or "Closed".
	Status string `json:"status"`
	// LastActivity is the time of the latest event.
	LastActivity time.Time `json:"last_activity"`
	// TransactionCount counts the account's events (opening included).
	TransactionCount int64 `json:"transaction_count"`
	// Version is the account stream's version this row reflects.
	Version uint64 `json:"version"`
	// OpenedAt is when the account was opened.
	OpenedAt time.Time `json:"opened_at"`
}

// Projection maintains the payments_accounts table: the rows of one
// partition's accounts (Partition of Of) from that partition's log. One
// runner per partition feeds the one table, each with its checkpoint.
type Projection struct {
	// Partition is the partition whose log the projection reads, of Of
	// partitions (Of ≤ 1: the only one).
	Partition, Of int
}

// Name implements projection.Projection: "payments.accounts.p2", a
// checkpoint per partition. (The table and the name changed from
// payments_account_summary when accounts gained a tenant, and gained the
// partition when accounts were partitioned: a new name starts from the
// beginning of its log.)
func (p Projection) Name() string { return "payments.accounts." + partition.Name(p.Partition) }

// Setup implements projection.Projection.
func (Projection) Setup(ctx context.Context, db *sql.DB) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS payments_accounts (
			id                TEXT PRIMARY KEY,
			owner_id          TEXT NOT NULL,
			tenant            TEXT NOT NULL,
			currency          TEXT NOT NULL,
			balance           BIGINT NOT NULL,
			status            TEXT NOT NULL,
			last_activity     BIGINT NOT NULL,
			transaction_count BIGINT NOT NULL,
			version           BIGINT NOT NULL,
			opened_at         BIGINT NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS payments_accounts_status ON payments_accounts (tenant, status, id)`,
		`CREATE INDEX IF NOT EXISTS payments_accounts_balance ON payments_accounts (tenant, balance, id)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// Reset implements projection.Projection: it deletes the rows of the
// partition's accounts, leaving the other partitions' alone.
func (p Projection) Reset(ctx context.Context, tx *sql.Tx) error {
	if p.Of <= 1 {
		_, err := tx.ExecContext(ctx, `DELETE FROM payments_accounts`)
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT id FROM payments_accounts`)
	if err != nil {
		return err
	}
	var mine []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		if partition.Of(id, p.Of) == p.Partition {
			mine = append(mine, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range mine {
		if _, err := tx.ExecContext(ctx, `DELETE FROM payments_accounts WHERE id = $1`, id); err != nil {
			return err
		}
	}
	return nil
}

// Apply implements projection.Projection.
func (Projection) Apply(ctx context.Context, tx *sql.Tx, batch []eventstore.Record) error {
	for _, r := range batch {
		id, ok := app.IsAccountStream(r.StreamID)
		if !ok {
			continue
		}
		e, err := app.Decode(r)
		if err != nil {
			return err
		}
		ver := int64(r.Version)
		switch e := e.(type) {
		case payments.AccountOpened:
			txs := 0
			if e.InitialBalance > 0 {
				txs = 1
			}
			tenant := e.Tenant
			if tenant == "" {
				tenant = auth.DefaultTenant
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO payments_accounts
				(id, owner_id, tenant, currency, balance, status, last_activity, transaction_count, version, opened_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
				id, e.OwnerID, tenant, e.Currency.Code(), e.InitialBalance, payments.Active.String(), e.At.UnixNano(), txs, ver, e.At.UnixNano())
		case payments.MoneyDeposited:
			_, err = tx.ExecContext(ctx, `UPDATE payments_accounts SET balance = balance + $1,
				transaction_count = transaction_count + 1, last_activity = $2, version = $3 WHERE id = $4`,
				e.Amount.Amount, e.At.UnixNano(), ver, id)
		case payments.MoneyWithdrawn:
			_, err = tx.ExecContext(ctx, `UPDATE payments_accounts SET balance = balance - $1,
				transaction_count = transaction_count + 1, last_activity = $2, version = $3 WHERE id = $4`,
				e.Amount.Amount, e.At.UnixNano(), ver, id)
		case payments.TransferDebited:
			err = moveBalance(ctx, tx, id, -e.Amount.Amount, e.At, ver)
		case payments.TransferCredited:
			err = moveBalance(ctx, tx, id, e.Amount.Amount, e.At, ver)
		case payments.TransferRefunded:
			err = moveBalance(ctx, tx, id, e.Amount.Amount, e.At, ver)
		case payments.TransferReversed:
			err = moveBalance(ctx, tx, id, -e.Amount.Amount, e.At, ver)
		case payments.TransferDeclined, payments.TransferVoided:
			_, err = tx.ExecContext(ctx, `UPDATE payments_accounts SET version = $1 WHERE id = $2`, ver, id)
		case payments.AccountClosed:
			_, err = tx.ExecContext(ctx, `UPDATE payments_accounts SET status = $1, last_activity = $2, version = $3 WHERE id = $4`,
				payments.Closed.String(), e.At.UnixNano(), ver, id)
		}
		if err != nil {
			return fmt.Errorf("account %s v%d: %w", id, r.Version, err)
		}
	}
	return nil
}

func moveBalance(ctx context.Context, tx *sql.Tx, id string, delta int64, at time.Time, ver int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE payments_accounts SET balance = balance + $1,
		transaction_count = transaction_count + 1, last_activity = $2, version = $3 WHERE id = $4`,
		delta, at.UnixNano(), ver, id)
	return err
}

// Queries reads the account summary.
type Queries struct{ db *sql.DB }

// NewQueries returns queries on db.
func NewQueries(db *sql.DB) *Queries { return &Queries{db: db} }

const summaryCols = `id, owner_id, tenant, currency, balance, status, last_activity, transaction_count, version, opened_at`

func scanSummary(row interface{ Scan(...any) error }) (Summary, error) {
	var (
		s                    Summary
		cur                  string
		bal, last, cnt, open int64
		ver                  int64
	)
	if err := row.Scan(&s.ID, &s.OwnerID, &s.Tenant, &cur, &bal, &s.Status, &last, &cnt, &ver, &open); err != nil {
		return Summary{}, err
	}
	c, err := money.ParseCurrency(cur)
	if err != nil {
		return Summary{}, err
	}
	s.Balance = money.New(bal, c)
	s.LastActivity = time.Unix(0, last).UTC()
	s.OpenedAt = time.Unix(0, open).UTC()
	s.TransactionCount, s.Version = cnt, uint64(ver)
	return s, nil
}

// Get returns account id's summary.
func (q *Queries) Get(ctx context.Context, id string) (Summary, error) {
	s, err := scanSummary(q.db.QueryRowContext(ctx, `SELECT `+summaryCols+` FROM payments_accounts WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Summary{}, payments.ErrNotOpen
	}
	if err != nil {
		return Summary{}, fmt.Errorf("payments: get summary: %w", err)
	}
	return s, nil
}

// Filter selects accounts for List.
type Filter struct {
	// Tenant keeps that tenant's accounts (required: a list never
	// crosses tenants).
	Tenant string
	// Status, if set, keeps accounts in that status.
	Status *payments.Status
	// MinBalance, if set, keeps accounts whose balance (minor units) is at least it.
	MinBalance *int64
	// Limit caps the page size.
	Limit int
	// Cursor is the opaque cursor of the previous page ("" for the first).
	Cursor string
}

// Page is one page of accounts.
type Page struct {
	// Items are the page's accounts, ordered by ID.
	Items []Summary `json:"items"`
	// NextCursor fetches the next page; empty at the end.
	NextCursor string `json:"next_cursor,omitempty"`
}

type cursor struct {
	After string `json:"a"`
}

// EncodeCursor makes an opaque cursor from the last ID of a page.
func EncodeCursor(after string) string {
	b, _ := json.Marshal(cursor{After: after})
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a cursor made by EncodeCursor.
func DecodeCursor(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c cursor
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.After == "" {
		return "", errs.Fields(errs.FieldError{Field: "cursor", Message: "is not a cursor this API issued"})
	}
	return c.After, nil
}

// List returns a page of accounts matching f, ordered by ID.
func (q *Queries) List(ctx context.Context, f Filter) (Page, error) {
	query := `SELECT ` + summaryCols + ` FROM payments_accounts WHERE tenant = $1`
	args := []any{f.Tenant}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Status != nil {
		query += ` AND status = ` + arg(f.Status.String())
	}
	if f.MinBalance != nil {
		query += ` AND balance >= ` + arg(*f.MinBalance)
	}
	if f.Cursor != "" {
		after, err := DecodeCursor(f.Cursor)
		if err != nil {
			return Page{}, err
		}
		query += ` AND id > ` + arg(after)
	}
	query += ` ORDER BY id LIMIT ` + arg(f.Limit+1)
	rows, err := q.db.QueryContext(ctx, query, args...)
	if err != nil {
		return Page{}, fmt.Errorf("payments: list accounts: %w", err)
	}
	defer rows.Close()
	page := Page{Items: []Summary{}}
	for rows.Next() {
		s, err := scanSummary(rows)
		if err != nil {
			return Page{}, fmt.Errorf("payments: list accounts: %w", err)
		}
		page.Items = append(page.Items, s)
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("payments: list accounts: %w", err)
	}
	if len(page.Items) > f.Limit {
		page.Items = page.Items[:f.Limit]
		page.NextCursor = EncodeCursor(page.Items[f.Limit-1].ID)
	}
	return page, nil
}

// EachAccount calls fn with every account's row, of every tenant, in ID
// order (for audits: package audit compares them with the log).
func (q *Queries) EachAccount(ctx context.Context, fn func(Summary) error) error {
	rows, err := q.db.QueryContext(ctx, `SELECT `+summaryCols+` FROM payments_accounts ORDER BY id`)
	if err != nil {
		return fmt.Errorf("payments: each account: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		s, err := scanSummary(rows)
		if err != nil {
			return fmt.Errorf("payments: each account: %w", err)
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("payments: each account: %w", err)
	}
	return nil
}
