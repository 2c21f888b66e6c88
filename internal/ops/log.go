package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// logPage is the answer of GET /api/v1/ops/log.
type logPage struct {
	Items []Event `json:"items"`
	// Head is the log's head when the read began.
	Head uint64 `json:"head"`
	// NextAfter, when set, is the after= of the next page.
	NextAfter uint64 `json:"next_after,omitempty"`
}

// logFilter reads the filter parameters of a log request (and checks
// them); on failure it has answered.
func logFilter(w http.ResponseWriter, r *http.Request, tenant string) (filter, bool) {
	q := r.URL.Query()
	for _, p := range []string{"type", "stream", "correlation_id"} {
		if err := text(p, q.Get(p), 512); err != nil {
			httpapi.Error(w, r, err)
			return filter{}, false
		}
	}
	return newFilter(tenant, q.Get("type"), q.Get("stream"), q.Get("correlation_id")), true
}

// log serves GET /api/v1/ops/log?after=&limit=&type=&stream=&correlation_id=:
// with after, the caller's events after that position that pass the
// filters, oldest first; without, the last limit of them (the tail).
// One request scans at most ScanLimit events; next_after (absent at the
// end of the log) is where the next page starts, also when the bound
// ended the scan before limit events matched.
func (a *API) log(w http.ResponseWriter, r *http.Request) {
	c, ok := begin(w, r, "after", "limit", "type", "stream", "correlation_id")
	if !ok {
		return
	}
	limit, err := httpapi.Limit(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	var after uint64
	tail := true
	if r.URL.Query().Has("after") {
		if after, err = position("after", r.URL.Query().Get("after"), 0); err != nil {
			httpapi.Error(w, r, err)
			return
		}
		tail = false
	}
	f, ok := logFilter(w, r, c.Tenant)
	if !ok {
		return
	}
	if a.cfg.Store == nil {
		httpapi.Error(w, r, errNotHere)
		return
	}
	ctx := r.Context()
	head, err := a.cfg.Store.Head(ctx)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	page := logPage{Head: head}
	if tail {
		page.Items, err = a.tail(ctx, f, head, limit)
	} else {
		page.Items, page.NextAfter, err = a.forward(ctx, f, after, limit, head)
	}
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if page.Items == nil {
		page.Items = []Event{}
	}
	httpapi.JSON(w, http.StatusOK, page)
}

func (a *API) scanLimit() int { return max(a.ScanLimit, 1) }

// chunk is how many events to read at once for a page of limit events,
// with left of the scan's bound left.
func chunk(limit, left int) int { return min(max(2*limit, 256), 2000, left) }

// forward scans the log after after, up to head (the head when the
// read began), for up to limit events f passes, reading at most
// ScanLimit events. next is where the next page starts: the last event
// returned when limit were found, the last one scanned when the bound
// ran out, 0 when the scan reached head.
func (a *API) forward(ctx context.Context, f filter, after uint64, limit int, head uint64) (items []Event, next uint64, err error) {
	bound := a.scanLimit()
	pos, scanned := after, 0
	for scanned < bound && pos < head {
		n := int(min(uint64(chunk(limit, bound-scanned)), head-pos))
		recs, err := a.cfg.Store.ReadAll(ctx, pos, n)
		if err != nil {
			return nil, 0, err
		}
		for _, rec := range recs {
			if rec.Position > head {
				return items, 0, nil // appended since the read began: the next read's
			}
			scanned++
			pos = rec.Position
			if f.match(rec) {
				items = append(items, newEvent(rec))
				if len(items) == limit {
					break
				}
			}
		}
		if len(items) == limit || len(recs) < n {
			break
		}
	}
	if pos >= head {
		return items, 0, nil // the end of the log
	}
	return items, pos, nil
}

// tail scans the log backwards from head for the last limit events f
// passes, reading at most ScanLimit events, and returns them oldest
// first.
func (a *API) tail(ctx context.Context, f filter, head uint64, limit int) ([]Event, error) {
	bound := a.scanLimit()
	var found []Event
	hi, scanned := head, 0
	for hi > 0 && scanned < bound && len(found) < limit {
		n := uint64(chunk(limit, bound-scanned))
		lo := hi - min(n, hi)
		recs, err := a.cfg.Store.ReadAll(ctx, lo, int(hi-lo))
		if err != nil {
			return nil, err
		}
		var got []Event
		for _, rec := range recs {
			if rec.Position > hi {
				break // positions past a gap: the next window's
			}
			if f.match(rec) {
				got = append(got, newEvent(rec))
			}
		}
		found = append(got, found...)
		scanned += int(hi - lo)
		hi = lo
	}
	if len(found) > limit {
		found = found[len(found)-limit:]
	}
	return found, nil
}

// logStream serves GET /api/v1/ops/log/stream?type=&stream=&correlation_id=&after=:
// the caller's events that pass the filters as Server-Sent Events, from
// the head as it is when the stream opens, or after Last-Event-ID (a
// position: a reconnecting EventSource sends the last one it got) or
// ?after=. Each frame is "id: <position>", "event: <type>" and "data:
// <the event as JSON>"; a comment every httpapi.KeepAlive keeps the
// connection open. It follows the store (WaitForAppend), not a timer.
func (a *API) logStream(w http.ResponseWriter, r *http.Request) {
	c, ok := begin(w, r, "after", "type", "stream", "correlation_id")
	if !ok {
		return
	}
	f, ok := logFilter(w, r, c.Tenant)
	if !ok {
		return
	}
	var (
		after   uint64
		err     error
		resumed = true
	)
	switch {
	case r.Header.Get("Last-Event-ID") != "":
		after, err = position("Last-Event-ID", r.Header.Get("Last-Event-ID"), 0)
	case r.URL.Query().Has("after"):
		after, err = position("after", r.URL.Query().Get("after"), 0)
	default:
		resumed = false
	}
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if a.cfg.Store == nil {
		httpapi.Error(w, r, errNotHere)
		return
	}
	ctx := r.Context()
	if !resumed {
		if after, err = a.cfg.Store.Head(ctx); err != nil {
			httpapi.Error(w, r, err)
			return
		}
	}
	sse := httpapi.NewSSE(w)
	if sse.Comment(fmt.Sprintf("agora event log of tenant %s after position %d", c.Tenant, after)) != nil {
		return
	}
	const batch = 500
	busy := time.Now() // since the log last caught up, or a comment was sent
	for {
		recs, err := a.cfg.Store.ReadAll(ctx, after, batch)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, eventstore.ErrClosed) {
				a.cfg.Logger.Warn("ops: log stream: read", "err", err)
			}
			return
		}
		for _, rec := range recs {
			after = rec.Position
			if !f.match(rec) {
				continue
			}
			b, err := json.Marshal(newEvent(rec))
			if err != nil {
				continue
			}
			if sse.Send(strconv.FormatUint(rec.Position, 10), rec.Type, b) != nil {
				return // the client went away
			}
		}
		if len(recs) < batch {
			if !httpapi.AwaitAppend(ctx, sse, a.cfg.Store, after) {
				return
			}
			busy = time.Now()
		} else if time.Since(busy) > httpapi.KeepAlive {
			// A busy log whose events all miss the filters sends no frame:
			// a comment keeps the connection open.
			if sse.Comment("keep-alive") != nil {
				return
			}
			busy = time.Now()
		}
	}
}

// errUnknown is a 404 of reason with message.
func errUnknown(reason, message string) *errs.Error {
	return &errs.Error{Code: errs.NotFound, Reason: reason, Message: message}
}
