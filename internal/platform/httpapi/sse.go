package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// SSE writes a Server-Sent Events stream (text/event-stream), one frame
// at a time, flushing each; it is safe for concurrent use.
type SSE struct {
	mu sync.Mutex
	w  http.ResponseWriter
	rc *http.ResponseController
}

// KeepAlive is how often a live stream sends a comment line, so that
// idle connections are not closed by proxies on the way.
const KeepAlive = 15 * time.Second

// NewSSE starts an event stream on w: its headers and a 200.
func NewSSE(w http.ResponseWriter) *SSE {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return &SSE{w: w, rc: http.NewResponseController(w)}
}

// Send writes one event frame: its id (omitted if empty), event name
// (omitted if empty) and data, which must hold no newline (compact JSON
// holds none; any newline is split into data lines).
func (s *SSE) Send(id, event string, data []byte) error {
	var b strings.Builder
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	if event != "" {
		b.WriteString("event: " + event + "\n")
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	return s.write(b.String())
}

// Comment writes a comment line (a keep-alive).
func (s *SSE) Comment(text string) error { return s.write(": " + text + "\n\n") }

func (s *SSE) write(frame string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprint(s.w, frame); err != nil {
		return err
	}
	return s.rc.Flush()
}
