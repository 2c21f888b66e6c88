package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// Log is the event log a live view follows (eventstore.Store has both
// methods).
type Log interface {
	// Head returns the log's last position.
	Head(ctx context.Context) (uint64, error)
	// WaitForAppend returns once the log may have grown past after.
	WaitForAppend(ctx context.Context, after uint64) error
}

// Follow serves a live view of one resource as Server-Sent Events: read
// answers the resource (and whether it is final); the first answer is
// sent at once as an `event` frame, and each append to log wakes Follow
// to read it again and send it if it changed, until read says it is
// final or the client goes away. An error of the first read is answered
// as a problem (so a missing or forbidden resource is a 404 or 403, not a
// stream); a comment line every KeepAlive keeps an idle stream open. No
// polling: an idle log costs nothing.
func Follow(w http.ResponseWriter, r *http.Request, log Log, event string, read func(ctx context.Context) (v any, final bool, err error)) {
	ctx := r.Context()
	// The head before each read: an append after it wakes the wait.
	head, err := log.Head(ctx)
	if err != nil {
		Error(w, r, err)
		return
	}
	v, final, err := read(ctx)
	if err != nil {
		Error(w, r, err)
		return
	}
	sse := NewSSE(w)
	var last []byte
	for {
		b, err := json.Marshal(v)
		if err != nil {
			return
		}
		if string(b) != string(last) {
			if sse.Send("", event, b) != nil {
				return
			}
			last = b
		}
		if final || !AwaitAppend(ctx, sse, log, head) {
			return
		}
		if head, err = log.Head(ctx); err != nil {
			return
		}
		if v, final, err = read(ctx); err != nil {
			return
		}
	}
}

// AwaitAppend returns once log may have grown past head (true), sending
// sse a keep-alive comment each time KeepAlive passes first; false when
// the client went away or the log failed (the stream ends; an EventSource
// reconnects).
func AwaitAppend(ctx context.Context, sse *SSE, log Log, head uint64) bool {
	return AwaitAppendOr(ctx, log, head, func() bool { return sse.Comment("keep-alive") == nil })
}

// AwaitAppendOr is AwaitAppend calling keepAlive (false: the client went
// away) each time KeepAlive passes first, for a stream that writes its
// own comments (several logs followed into one stream).
func AwaitAppendOr(ctx context.Context, log Log, head uint64, keepAlive func() bool) bool {
	for {
		wctx, cancel := context.WithTimeout(ctx, KeepAlive)
		err := log.WaitForAppend(wctx, head)
		cancel()
		switch {
		case ctx.Err() != nil:
			return false
		case err == nil:
			return true
		case !errors.Is(err, context.DeadlineExceeded):
			return false
		}
		if !keepAlive() {
			return false
		}
	}
}
