// Package traces serves recent traces to operators: the ops endpoints
// over the in-process trace store (tracing.Recent), or, in distributed
// mode, over the stores of every process, gathered over the bus.
package traces

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/platform/tracing"
)

// PartialHeader names, on an answer gathered from several processes,
// the processes that did not answer in time (comma-separated); the body
// names them in "partial" too.
const PartialHeader = "Agora-Trace-Partial"

// Source is where the ops endpoints find traces: this process's store
// (Local) or every process's (Gatherer).
type Source interface {
	// List returns the traces f selects, the most recent first, and the
	// processes that did not answer.
	List(ctx context.Context, f tracing.Filter) (items []tracing.Summary, partial []string, err error)
	// Get returns trace id (ok false if no process holds it) and the
	// processes that did not answer.
	Get(ctx context.Context, id string) (t tracing.Trace, ok bool, partial []string, err error)
}

// Local is the traces of this process's store s.
func Local(s *tracing.Store) Source { return local{s} }

type local struct{ s *tracing.Store }

func (l local) List(_ context.Context, f tracing.Filter) ([]tracing.Summary, []string, error) {
	return l.s.List(f), nil, nil
}

func (l local) Get(_ context.Context, id string) (tracing.Trace, bool, []string, error) {
	t, ok := l.s.Get(id)
	return t, ok, nil, nil
}

// ListHandler serves GET /api/v1/ops/traces from store s (List).
func ListHandler(s *tracing.Store) http.HandlerFunc { return List(Local(s)) }

// GetHandler serves GET /api/v1/ops/traces/{trace_id} from store s (Get).
func GetHandler(s *tracing.Store) http.HandlerFunc { return Get(Local(s)) }

// List serves GET /api/v1/ops/traces: the recent traces of src, newest
// first, filtered by ?order_id=, ?min_duration_ms=, ?error= and ?limit=
// (default 50, at most 500). The route table lets admins in.
func List(src Source) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := httpapi.Query(r, "order_id", "min_duration_ms", "error", "limit"); err != nil {
			httpapi.Error(w, r, err)
			return
		}
		limit, err := httpapi.Limit(r)
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		q := r.URL.Query()
		f := tracing.Filter{OrderID: q.Get("order_id"), Limit: limit}
		if v := q.Get("min_duration_ms"); v != "" {
			ms, err := strconv.ParseFloat(v, 64)
			if err != nil || ms < 0 {
				httpapi.Error(w, r, errs.Fields(errs.FieldError{Field: "min_duration_ms", Message: "must be a number of milliseconds, at least 0"}))
				return
			}
			f.MinDuration = time.Duration(ms * float64(time.Millisecond))
		}
		if v := q.Get("error"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				httpapi.Error(w, r, errs.Fields(errs.FieldError{Field: "error", Message: `must be "true" or "false"`}))
				return
			}
			f.Error = &b
		}
		items, partial, err := src.List(r.Context(), f)
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		if items == nil {
			items = []tracing.Summary{}
		}
		markPartial(w, partial)
		httpapi.JSON(w, http.StatusOK, struct {
			Items   []tracing.Summary `json:"items"`
			Partial []string          `json:"partial,omitempty"`
		}{items, partial})
	}
}

// Get serves GET /api/v1/ops/traces/{trace_id}: one trace of src with
// its spans, or 404.
func Get(src Source) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("trace_id")
		if len(id) != 32 {
			httpapi.Error(w, r, errs.Fields(errs.FieldError{Field: "trace_id", Message: "must be 32 lowercase hex digits"}))
			return
		}
		for i := 0; i < len(id); i++ {
			if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				httpapi.Error(w, r, errs.Fields(errs.FieldError{Field: "trace_id", Message: "must be 32 lowercase hex digits"}))
				return
			}
		}
		t, ok, partial, err := src.Get(r.Context(), id)
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		markPartial(w, partial)
		if !ok {
			httpapi.Error(w, r, &errs.Error{Code: errs.NotFound, Reason: "trace_not_found", Message: "no such trace among the recent ones"})
			return
		}
		httpapi.JSON(w, http.StatusOK, struct {
			tracing.Trace
			Partial []string `json:"partial,omitempty"`
		}{t, partial})
	}
}

func markPartial(w http.ResponseWriter, partial []string) {
	if len(partial) > 0 {
		w.Header().Set(PartialHeader, strings.Join(partial, ", "))
	}
}
