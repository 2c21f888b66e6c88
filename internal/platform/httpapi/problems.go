package httpapi

import (
	"fmt"
	"net/http"

	"github.com/agora-commerce/agora/internal/platform/errs"
)

// Problems serves mux, answering requests no pattern matches (404, or
// 405 with Allow) with problem+json instead of ServeMux's plain text.
func Problems(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", probe.header.Get("Allow"))
			Error(w, r, &errs.Error{Code: errs.MethodNotAllowed, Message: fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)})
		case http.StatusNotFound:
			NotFound(w, r)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

type statusProbe struct {
	header http.Header
	status int
}

// statusProbe records what a mux's own 404 or 405 handler would answer.
func (p *statusProbe) Header() http.Header { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}
func (p *statusProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
