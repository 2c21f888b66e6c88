package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// logPage is the answer of GET /api/v1/ops/log.
type logPage struct {
	Items []Event `json:"items"`
	// Head is the sum of the contexts' heads when the read began (it
	// moves whenever any context appends); Heads is each one's.
	Head  uint64            `json:"head"`
	Heads map[string]uint64 `json:"heads"`
	// Cursor is where a reader of what follows these items starts (the
	// after= of the next page, or of the live stream).
	Cursor string `json:"cursor"`
	// NextAfter, when set, is the after= of the next page.
	NextAfter string `json:"next_after,omitempty"`
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
// the caller's events of every context's log that pass the filters, in
// the order they were recorded: with after (a cursor), those after it,
// oldest first; without, the last limit of them (the tail). One request
// scans at most ScanLimit events of each log; next_after (absent at the
// end of every log) is where the next page starts, also when the bound
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
	var after Cursor
	if r.URL.Query().Has("after") {
		if after, err = parseLogCursor("after", r.URL.Query().Get("after"), a.cfg.Logs); err != nil {
			httpapi.Error(w, r, err)
			return
		}
	}
	f, ok := logFilter(w, r, c.Tenant)
	if !ok {
		return
	}
	if len(a.cfg.Logs) == 0 {
		httpapi.Error(w, r, errNotHere)
		return
	}
	ctx := r.Context()
	heads, sum, err := a.heads(ctx)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	page := logPage{Head: sum, Heads: heads, Cursor: heads.String()}
	if after == nil {
		page.Items, err = a.tail(ctx, f, heads, limit)
	} else {
		var next Cursor
		page.Items, next, err = a.forward(ctx, f, after, limit, heads)
		if next != nil {
			page.NextAfter = next.String()
		}
		page.Cursor = after.String()
		if len(page.Items) > 0 {
			page.Cursor = next.String()
		}
		if next == nil {
			page.Cursor = heads.String()
		}
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

// forward reads each log after its place in after, up to its head (as
// it was when the read began), for up to limit events f passes, and
// takes the first limit of them all in the order they were recorded.
// next is where the next page starts (nil when every log was read to
// its head and every event found was taken).
func (a *API) forward(ctx context.Context, f filter, after Cursor, limit int, heads Cursor) (items []Event, next Cursor, err error) {
	next = Cursor{}
	more := false
	var all []Event
	ends := Cursor{}
	for _, l := range a.cfg.Logs {
		got, end, err := a.forwardOne(ctx, l, f, after[l.Context], limit, heads[l.Context])
		if err != nil {
			return nil, nil, err
		}
		all = append(all, got...)
		ends[l.Context] = end
		next[l.Context] = after[l.Context]
		if end < heads[l.Context] {
			more = true
		}
	}
	slices.SortFunc(all, byTime)
	dropped := map[string]bool{}
	if len(all) > limit {
		for _, e := range all[limit:] {
			dropped[e.Context] = true
		}
		all, more = all[:limit], true
	}
	for _, l := range a.cfg.Logs {
		if !dropped[l.Context] {
			next[l.Context] = ends[l.Context] // read to its end, or its scan's bound
		}
	}
	for _, e := range all {
		if dropped[e.Context] {
			next[e.Context] = e.Position // the rest of its log is the next page's
		}
	}
	if !more {
		return all, nil, nil
	}
	return all, next, nil
}

// forwardOne scans log l after after, up to head, for up to limit events
// f passes, reading at most ScanLimit events. end is the last position
// scanned.
func (a *API) forwardOne(ctx context.Context, l Log, f filter, after uint64, limit int, head uint64) (items []Event, end uint64, err error) {
	bound := a.scanLimit()
	pos, scanned := after, 0
	for scanned < bound && pos < head {
		n := int(min(uint64(chunk(limit, bound-scanned)), head-pos))
		recs, err := l.Store.ReadAll(ctx, pos, n)
		if err != nil {
			return nil, 0, err
		}
		for _, rec := range recs {
			if rec.Position > head {
				return items, head, nil // appended since the read began: the next read's
			}
			scanned++
			pos = rec.Position
			if f.match(rec) {
				items = append(items, newEvent(l.Context, rec))
				if len(items) == limit {
					return items, pos, nil
				}
			}
		}
		if len(recs) < n {
			break
		}
	}
	return items, pos, nil
}

// tail scans each log backwards from its head for the last limit events
// f passes, reading at most ScanLimit events of each, and returns the
// last limit of them all, oldest first.
func (a *API) tail(ctx context.Context, f filter, heads Cursor, limit int) ([]Event, error) {
	var all []Event
	for _, l := range a.cfg.Logs {
		got, err := a.tailOne(ctx, l, f, heads[l.Context], limit)
		if err != nil {
			return nil, err
		}
		all = append(all, got...)
	}
	slices.SortFunc(all, byTime)
	if len(all) > limit {
		all = all[len(all)-limit:]
	}
	return all, nil
}

func (a *API) tailOne(ctx context.Context, l Log, f filter, head uint64, limit int) ([]Event, error) {
	bound := a.scanLimit()
	var found []Event
	hi, scanned := head, 0
	for hi > 0 && scanned < bound && len(found) < limit {
		n := uint64(chunk(limit, bound-scanned))
		lo := hi - min(n, hi)
		recs, err := l.Store.ReadAll(ctx, lo, int(hi-lo))
		if err != nil {
			return nil, err
		}
		var got []Event
		for _, rec := range recs {
			if rec.Position > hi {
				break // positions past a gap: the next window's
			}
			if f.match(rec) {
				got = append(got, newEvent(l.Context, rec))
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
// the caller's events of every context's log that pass the filters as
// Server-Sent Events, from the heads as they are when the stream opens,
// or after Last-Event-ID (a cursor: a reconnecting EventSource sends the
// last one it got) or ?after=. Each frame is "id: <cursor>", "event:
// <type>" and "data: <the event as JSON>"; a comment every
// httpapi.KeepAlive keeps the connection open. It follows each store
// (WaitForAppend), not a timer.
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
		after Cursor
		err   error
	)
	switch {
	case r.Header.Get("Last-Event-ID") != "":
		after, err = parseLogCursor("Last-Event-ID", r.Header.Get("Last-Event-ID"), a.cfg.Logs)
	case r.URL.Query().Has("after"):
		after, err = parseLogCursor("after", r.URL.Query().Get("after"), a.cfg.Logs)
	}
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if len(a.cfg.Logs) == 0 {
		httpapi.Error(w, r, errNotHere)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if after == nil {
		if after, _, err = a.heads(ctx); err != nil {
			httpapi.Error(w, r, err)
			return
		}
	}
	sse := httpapi.NewSSE(w)
	if sse.Comment(fmt.Sprintf("agora event logs of tenant %s after %s", c.Tenant, after)) != nil {
		return
	}
	// One follower per log; frames go out one at a time, each with the
	// cursor of everything sent so far.
	var (
		mu   sync.Mutex
		sent = maps.Clone(after)
	)
	send := func(l Log, rec eventstore.Record) bool {
		mu.Lock()
		defer mu.Unlock()
		sent[l.Context] = rec.Position
		if !f.match(rec) {
			return true
		}
		b, err := json.Marshal(newEvent(l.Context, rec))
		if err != nil {
			return true
		}
		return sse.Send(sent.String(), rec.Type, b) == nil
	}
	comment := func(text string) bool {
		mu.Lock()
		defer mu.Unlock()
		return sse.Comment(text) == nil
	}
	var wg sync.WaitGroup
	for _, l := range a.cfg.Logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			a.follow(ctx, l, after[l.Context], send, comment)
		}()
	}
	wg.Wait()
}

// follow sends log l's events after after until ctx ends or a send fails.
func (a *API) follow(ctx context.Context, l Log, after uint64, send func(Log, eventstore.Record) bool, comment func(string) bool) {
	const batch = 500
	busy := time.Now() // since the log last caught up, or a comment was sent
	for {
		recs, err := l.Store.ReadAll(ctx, after, batch)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, eventstore.ErrClosed) {
				a.cfg.Logger.Warn("ops: log stream: read", "context", l.Context, "err", err)
			}
			return
		}
		for _, rec := range recs {
			after = rec.Position
			if !send(l, rec) {
				return // the client went away
			}
		}
		if len(recs) < batch {
			if !httpapi.AwaitAppendOr(ctx, l.Store, after, func() bool { return comment("keep-alive") }) {
				return
			}
			busy = time.Now()
		} else if time.Since(busy) > httpapi.KeepAlive {
			// A busy log whose events all miss the filters sends no frame:
			// a comment keeps the connection open.
			if !comment("keep-alive") {
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
