package ops

import (
	"net/http"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// streamPage is the answer of GET /api/v1/ops/streams/{stream_id}.
type streamPage struct {
	StreamID string  `json:"stream_id"`
	Items    []Event `json:"items"`
	// NextFrom, when set, is the from= of the next page.
	NextFrom uint64 `json:"next_from,omitempty"`
}

// errNoStream answers a stream that has no events or is another
// tenant's, alike.
var errNoStream = errUnknown("stream_not_found", "no such stream")

// stream serves GET /api/v1/ops/streams/{stream_id}?from=&limit=: the
// stream's events from version from (default 1), limit at a time. A
// stream belongs to the tenant of its first event; a stream with no
// events or of another tenant is a 404.
func (a *API) stream(w http.ResponseWriter, r *http.Request) {
	c, ok := begin(w, r, "from", "limit")
	if !ok {
		return
	}
	id := r.PathValue("stream_id")
	if err := text("stream_id", id, 512); err != nil || id == "" {
		if err == nil {
			err = errs.Fields(errs.FieldError{Field: "stream_id", Message: "is required"})
		}
		httpapi.Error(w, r, err)
		return
	}
	limit, err := httpapi.Limit(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	from := uint64(1)
	if r.URL.Query().Has("from") {
		if from, err = position("from", r.URL.Query().Get("from"), 1); err != nil {
			httpapi.Error(w, r, err)
			return
		}
	}
	if len(a.cfg.Logs) == 0 {
		httpapi.Error(w, r, errNotHere)
		return
	}
	ctx := r.Context()
	owner, first, found, err := a.logOf(ctx, id)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	var recs []eventstore.Record
	if found {
		if recs, err = owner.Store.ReadStream(ctx, id, eventstore.StreamRead{From: from, Limit: limit + 1}); err != nil {
			httpapi.Error(w, r, err)
			return
		}
	}
	if len(first) == 0 || tenantOf(first[0].Metadata.Tenant) != c.Tenant {
		httpapi.Error(w, r, errNoStream)
		return
	}
	page := streamPage{StreamID: id, Items: []Event{}}
	if len(recs) > limit {
		recs = recs[:limit]
		page.NextFrom = recs[len(recs)-1].Version + 1
	}
	for _, rec := range recs {
		if tenantOf(rec.Metadata.Tenant) == c.Tenant {
			page.Items = append(page.Items, newEvent(owner.Context, rec))
		}
	}
	httpapi.JSON(w, http.StatusOK, page)
}
