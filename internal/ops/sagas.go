package ops

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/saga"
)

// SagaSummary is a saga instance in the list.
type SagaSummary struct {
	// ID is the instance's ID (its stream is saga.StreamID(ID)).
	ID string `json:"id"`
	// Type is its definition's type.
	Type string `json:"type"`
	// Status is a saga.Status.
	Status saga.Status `json:"status"`
	// UpdatedAt is when its status last changed (RFC 3339, UTC).
	UpdatedAt string `json:"updated_at"`
}

type sagaPage struct {
	Items      []SagaSummary `json:"items"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

var statuses = []saga.Status{saga.Started, saga.Completed, saga.Compensating, saga.Compensated, saga.Failed}

// cursor is where a newest-first page of rows ordered by (at, id) goes
// on: after the row at at with ID id.
type cursor struct {
	at int64
	id string
}

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.at, 10) + ":" + c.id))
}

// parseCursor reads ?cursor= (nil when absent, a 400 when malformed).
// paged reads a list's limit and cursor, or answers the problem and
// reports false.
func paged(w http.ResponseWriter, r *http.Request) (int, *cursor, bool) {
	limit, err := httpapi.Limit(r)
	if err == nil {
		var cur *cursor
		if cur, err = parseCursor(r); err == nil {
			return limit, cur, true
		}
	}
	httpapi.Error(w, r, err)
	return 0, nil, false
}

func parseCursor(r *http.Request) (*cursor, error) {
	if !r.URL.Query().Has("cursor") {
		return nil, nil
	}
	bad := errs.Fields(errs.FieldError{Field: "cursor", Message: "is not a cursor this API gave"})
	raw, err := base64.RawURLEncoding.DecodeString(r.URL.Query().Get("cursor"))
	if err != nil {
		return nil, bad
	}
	at, id, ok := strings.Cut(string(raw), ":")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || id == "" {
		return nil, bad
	}
	return &cursor{at: n, id: id}, nil
}

// where builds a query's conditions and arguments ($1-style, which
// SQLite and PostgreSQL both take).
type where struct {
	conds []string
	args  []any
}

func (q *where) arg(v any) string {
	q.args = append(q.args, v)
	return fmt.Sprintf("$%d", len(q.args))
}

func (q *where) in(col string, vals []string) {
	marks := make([]string, len(vals))
	for i, v := range vals {
		marks[i] = q.arg(v)
	}
	q.conds = append(q.conds, col+" IN ("+strings.Join(marks, ", ")+")")
}

func (q *where) eq(col string, v any) { q.conds = append(q.conds, col+" = "+q.arg(v)) }

// before keeps the rows after c in newest-first (at, id) order.
func (q *where) before(atCol, idCol string, c *cursor) {
	if c == nil {
		return
	}
	at, id := q.arg(c.at), q.arg(c.id)
	q.conds = append(q.conds, fmt.Sprintf("(%s < %s OR (%s = %s AND %s < %s))", atCol, at, atCol, at, idCol, id))
}

func (q *where) String() string { return strings.Join(q.conds, " AND ") }

// sagas serves GET /api/v1/ops/sagas?status=&type=&limit=&cursor=: the
// caller's tenant's saga instances (the saga index's, by the tenant of
// what started them), the most recently changed first.
func (a *API) sagas(w http.ResponseWriter, r *http.Request) {
	c, ok := begin(w, r, "status", "type", "limit", "cursor")
	if !ok {
		return
	}
	limit, cur, ok := paged(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	status := saga.Status(q.Get("status"))
	if q.Has("status") && !slices.Contains(statuses, status) {
		httpapi.Error(w, r, errs.Fields(errs.FieldError{Field: "status", Message: "must be one of Started, Completed, Compensating, Compensated, Failed"}))
		return
	}
	if err := text("type", q.Get("type"), 128); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if len(a.cfg.Logs) == 0 || len(a.cfg.SagaDBs) == 0 {
		httpapi.Error(w, r, errNotHere)
		return
	}
	var cond where
	cond.in("tenant", tenants(c.Tenant))
	if status != "" {
		cond.eq("status", string(status))
	}
	if t := q.Get("type"); t != "" {
		cond.eq("type", t)
	}
	cond.before("updated_at", "id", cur)
	// Each context's index gives its first limit+1; together, the first
	// limit+1 of all, in one order.
	type row struct {
		s  SagaSummary
		at int64
	}
	var all []row
	for _, db := range a.cfg.SagaDBs {
		rows, err := db.QueryContext(r.Context(), `SELECT id, type, status, updated_at FROM saga_instances WHERE `+cond.String()+
			` ORDER BY updated_at DESC, id DESC LIMIT `+cond.arg(limit+1), cond.args...)
		if err != nil {
			httpapi.Error(w, r, fmt.Errorf("ops: list sagas: %w", err))
			return
		}
		for rows.Next() {
			var x row
			if err := rows.Scan(&x.s.ID, &x.s.Type, &x.s.Status, &x.at); err != nil {
				rows.Close()
				httpapi.Error(w, r, fmt.Errorf("ops: list sagas: %w", err))
				return
			}
			all = append(all, x)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			httpapi.Error(w, r, fmt.Errorf("ops: list sagas: %w", err))
			return
		}
		cond.args = cond.args[:len(cond.args)-1] // the LIMIT's, added again for the next
	}
	slices.SortFunc(all, func(x, y row) int { return cmp.Or(cmp.Compare(y.at, x.at), strings.Compare(y.s.ID, x.s.ID)) })
	page := sagaPage{Items: []SagaSummary{}}
	for i, x := range all {
		if i == limit {
			last := all[i-1]
			page.NextCursor = cursor{at: last.at, id: last.s.ID}.String()
			break
		}
		x.s.UpdatedAt = timestamp(time.Unix(0, x.at))
		page.Items = append(page.Items, x.s)
	}
	httpapi.JSON(w, http.StatusOK, page)
}
