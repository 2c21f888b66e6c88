package ops

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/platform/errs"
)

// Log is a bounded context's event log: each context owns one, with its
// own positions.
type Log struct {
	// Context is the context's name.
	Context string
	// Store is its event log.
	Store Store
}

// Cursor is a place in every context's log at once: by context, the last
// position read. Its text form, "identity.3,payments.17" (contexts
// sorted, those at 0 left out), is opaque to clients: they send back
// what they were given. A bare integer n is every context after n (0:
// from the start).
type Cursor map[string]uint64

// String is c's text form.
func (c Cursor) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c)) {
		if c[k] > 0 {
			parts = append(parts, k+"."+strconv.FormatUint(c[k], 10))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ",")
}

// parseLogCursor reads a cursor given as field over logs; a bare integer is
// every context after it.
func parseLogCursor(field, v string, logs []Log) (Cursor, error) {
	bad := errs.Fields(errs.FieldError{Field: field, Message: "must be a cursor this API gave (e.g. ordering.12,payments.40) or a non-negative integer"})
	c := Cursor{}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		if n > 1<<62 {
			return nil, bad
		}
		for _, l := range logs {
			c[l.Context] = n
		}
		return c, nil
	}
	if v == "" || len(v) > 4096 {
		return nil, bad
	}
	for _, part := range strings.Split(v, ",") {
		name, num, ok := strings.Cut(part, ".")
		if !ok || name == "" {
			return nil, bad
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil || n > 1<<62 {
			return nil, bad
		}
		if _, dup := c[name]; dup {
			return nil, bad
		}
		c[name] = n
	}
	for name := range c {
		if !slices.ContainsFunc(logs, func(l Log) bool { return l.Context == name }) {
			return nil, errs.Fields(errs.FieldError{Field: field, Message: fmt.Sprintf("names context %q, whose log this process does not hold", name)})
		}
	}
	return c, nil
}

// heads returns each log's head and their sum.
func (a *API) heads(ctx context.Context) (Cursor, uint64, error) {
	c := Cursor{}
	var sum uint64
	for _, l := range a.cfg.Logs {
		h, err := l.Store.Head(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", l.Context, err)
		}
		c[l.Context], sum = h, sum+h
	}
	return c, sum, nil
}

// logOf finds the log that holds stream id (a stream belongs to one
// context) and its first event; ok is false when no log holds it.
func (a *API) logOf(ctx context.Context, id string) (l Log, first []eventstore.Record, ok bool, err error) {
	for _, l := range a.cfg.Logs {
		recs, err := l.Store.ReadStream(ctx, id, eventstore.StreamRead{From: 1, Limit: 1})
		if err != nil {
			return Log{}, nil, false, fmt.Errorf("%s: %w", l.Context, err)
		}
		if len(recs) > 0 {
			return l, recs, true, nil
		}
	}
	return Log{}, nil, false, nil
}

// byTime orders events of several logs: by when they were recorded, then
// by context and position (a total order, the same on every read).
func byTime(a, b Event) int {
	return cmp.Or(a.at.Compare(b.at), strings.Compare(a.Context, b.Context), cmp.Compare(a.Position, b.Position))
}
