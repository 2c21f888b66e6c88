// Package traces serves the process's recent traces to operators: the
// ops endpoints over the in-process trace store (tracing.Recent).
package traces

import (
	"net/http"
	"strconv"
	"time"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/platform/tracing"
)

// ListHandler serves GET /api/v1/ops/traces: the recent traces of s,
// newest first, filtered by ?order_id=, ?min_duration_ms=, ?error= and
// ?limit= (default 50, at most 500). The route table lets admins in.
func ListHandler(s *tracing.Store) http.HandlerFunc {
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
		httpapi.JSON(w, http.StatusOK, map[string]any{"items": orEmpty(s.List(f))})
	}
}

func orEmpty(s []tracing.Summary) []tracing.Summary {
	if s == nil {
		return []tracing.Summary{}
	}
	return s
}

// GetHandler serves GET /api/v1/ops/traces/{trace_id}: one trace of s
// with its spans, or 404.
func GetHandler(s *tracing.Store) http.HandlerFunc {
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
		t, ok := s.Get(id)
		if !ok {
			httpapi.Error(w, r, &errs.Error{Code: errs.NotFound, Reason: "trace_not_found", Message: "no such trace among the recent ones"})
			return
		}
		httpapi.JSON(w, http.StatusOK, t)
	}
}
