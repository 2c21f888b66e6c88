// Package edge holds the gateway's outermost middlewares: request IDs,
// the request body limit and panic recovery, plus ClientIP, the caller's
// address that anonymous rate limits and idempotency scopes key on.
package edge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/internal/gateway/problem"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// RequestIDHeader is the request ID's header.
const RequestIDHeader = httpapi.RequestIDHeader

// MaxBodyBytes is the default request body limit (1 MiB).
const MaxBodyBytes = httpapi.MaxBodyBytes

// RequestID gives every request an ID: the client's X-Request-Id when it
// is well-formed (httpapi.ValidRequestID), else a new UUID. The ID is set on the
// response and on the request's header (so that it is forwarded upstream
// and problem answers carry it); the request is not copied.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !httpapi.ValidRequestID(id) {
			id = uuid.NewString()
			r.Header.Set(RequestIDHeader, id)
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r)
	})
}

// BodyLimit answers 413 problem+json to requests whose body exceeds limit
// bytes (MaxBodyBytes when limit <= 0). It reads the body into memory
// before calling next — a gateway must have it whole anyway to retry a
// request or check its idempotency key — so a chunked body over the limit
// is refused before anything is forwarded.
func BodyLimit(limit int64, next http.Handler) http.Handler {
	if limit <= 0 {
		limit = MaxBodyBytes
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		tooLarge := func() {
			w.Header().Set("Connection", "close")
			problem.Write(w, r, http.StatusRequestEntityTooLarge, "",
				fmt.Sprintf("request body exceeds %d bytes", limit))
		}
		if r.ContentLength > limit {
			tooLarge()
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		var maxErr *http.MaxBytesError
		switch {
		case errors.As(err, &maxErr):
			tooLarge()
			return
		case err != nil:
			problem.Write(w, r, http.StatusBadRequest, "", "the request body could not be read")
			return
		}
		r.ContentLength = int64(len(body))
		if len(body) == 0 {
			r.Body = http.NoBody
		} else {
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		next.ServeHTTP(w, r)
	})
}

// Recoverer answers a panicking handler's request with 500 problem+json
// (when nothing was written yet) and logs the panic with its stack.
// http.ErrAbortHandler is passed on, as net/http expects.
func Recoverer(log *slog.Logger, next http.Handler) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			log.ErrorContext(r.Context(), "gateway: panic serving request", "method", r.Method, "path", r.URL.Path,
				"request_id", w.Header().Get(RequestIDHeader), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if tw.wrote {
				panic(http.ErrAbortHandler) // too late for a clean answer: cut the connection
			}
			problem.Write(w, r, http.StatusInternalServerError, "", "internal error")
		}()
		next.ServeHTTP(tw, r)
	})
}

type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *trackingWriter) WriteHeader(code int) {
	if code >= 200 { // 1xx informational answers do not commit the response
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackingWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *trackingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher when the underlying writer does.
func (w *trackingWriter) Flush() {
	w.wrote = true
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// ClientIP returns the caller's IP address from r.RemoteAddr. Forwarding
// headers are not trusted: a deployment behind a proxy sets RemoteAddr
// from them at its own edge.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
