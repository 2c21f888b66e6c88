package bff

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/messaging"
)

// Popularity counts what sells, write-behind: a confirmed order adds its
// quantities to counters in memory, and a flush adds those deltas to the
// table bff_popularity once a second (or sooner when many pile up), in
// one transaction. Reads come from the table, through a copy of the top
// list refreshed at most once a second.
//
// It is loss-tolerant by design: a crash loses at most the last second's
// deltas and a redelivered event counts twice — recommendations only need
// to know roughly what sells, and a counter that cost a database write per
// order would cost the checkout.
type Popularity struct {
	db    *sql.DB
	log   *slog.Logger
	every time.Duration

	mu      sync.Mutex
	deltas  map[string]int64
	lines   map[string][]orderingapi.Line // placed orders awaiting confirmation
	top     []string
	topAt   time.Time
	topN    int
	kick    chan struct{}
	flushMu sync.Mutex
}

// maxPending bounds the placed orders remembered until they are
// confirmed or cancelled; past it the oldest are forgotten (uncounted).
const maxPending = 100_000

// NewPopularity creates the table if needed.
func NewPopularity(ctx context.Context, db *sql.DB, log *slog.Logger) (*Popularity, error) {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS bff_popularity (product_id TEXT PRIMARY KEY, sold BIGINT NOT NULL)`); err != nil {
		return nil, fmt.Errorf("bff: popularity table: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Popularity{db: db, log: log, every: time.Second, deltas: map[string]int64{}, lines: map[string][]orderingapi.Line{},
		kick: make(chan struct{}, 1)}, nil
}

// Subjects are the ordering events the counter follows.
var Subjects = []string{orderingapi.SubjectOrderPlaced, orderingapi.SubjectOrderConfirmed, orderingapi.SubjectOrderCancelled}

// Handle follows the ordering's events: it remembers a placed order's
// lines and counts them when the order is confirmed.
func (p *Popularity) Handle(_ context.Context, d messaging.Delivery) error {
	switch d.Message.Type {
	case orderingapi.TypeOrderPlaced:
		e, err := messaging.Decode[orderingapi.OrderPlaced](d.Message)
		if err != nil {
			return nil // a counter does not stop for a bad event
		}
		p.mu.Lock()
		if len(p.lines) >= maxPending {
			clear(p.lines)
		}
		p.lines[e.OrderID] = e.Lines
		p.mu.Unlock()
	case orderingapi.TypeOrderConfirmed:
		e, err := messaging.Decode[orderingapi.OrderConfirmed](d.Message)
		if err != nil {
			return nil
		}
		p.mu.Lock()
		for _, l := range p.lines[e.OrderID] {
			p.deltas[l.ProductID] += l.Quantity
		}
		delete(p.lines, e.OrderID)
		n := len(p.deltas)
		p.mu.Unlock()
		if n >= 1000 {
			select {
			case p.kick <- struct{}{}:
			default:
			}
		}
	case orderingapi.TypeOrderCancelled:
		e, err := messaging.Decode[orderingapi.OrderCancelled](d.Message)
		if err != nil {
			return nil
		}
		p.mu.Lock()
		delete(p.lines, e.OrderID)
		p.mu.Unlock()
	}
	return nil
}

// Run flushes the counters every second until ctx ends, then once more.
func (p *Popularity) Run(ctx context.Context) error {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := p.Flush(fctx); err != nil {
				p.log.Warn("bff: last popularity flush failed", "err", err)
			}
			return ctx.Err()
		case <-t.C:
		case <-p.kick:
		}
		if err := p.Flush(ctx); err != nil {
			p.log.Warn("bff: popularity flush failed; will retry", "err", err)
		}
	}
}

// Flush adds the counted deltas to the table; on failure they stay to be
// added next time.
func (p *Popularity) Flush(ctx context.Context) error {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	p.mu.Lock()
	deltas := p.deltas
	p.deltas = map[string]int64{}
	p.mu.Unlock()
	if len(deltas) == 0 {
		return nil
	}
	err := p.write(ctx, deltas)
	if err != nil {
		p.mu.Lock()
		for k, v := range deltas {
			p.deltas[k] += v
		}
		p.mu.Unlock()
	}
	return err
}

func (p *Popularity) write(ctx context.Context, deltas map[string]int64) error {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	for id, n := range deltas {
		if _, err := tx.ExecContext(ctx, `INSERT INTO bff_popularity (product_id, sold) VALUES ($1, $2)
			ON CONFLICT (product_id) DO UPDATE SET sold = bff_popularity.sold + excluded.sold`, id, n); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Top implements Popular: the n best sellers, as of the last flush (and
// at most a second old).
func (p *Popularity) Top(ctx context.Context, n int) ([]string, error) {
	p.mu.Lock()
	if time.Since(p.topAt) < p.every && p.topN >= n {
		top := p.top[:min(n, len(p.top))]
		p.mu.Unlock()
		return top, nil
	}
	p.mu.Unlock()
	rows, err := p.db.QueryContext(ctx, `SELECT product_id FROM bff_popularity ORDER BY sold DESC, product_id LIMIT $1`, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var top []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		top = append(top, id)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.top, p.topAt, p.topN = top, time.Now(), n
	p.mu.Unlock()
	return top, nil
}
