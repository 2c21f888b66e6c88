// Package edge holds the gateway's request body limit and ClientIP, the
// caller's address that anonymous rate limits and idempotency scopes key
// on. (Request IDs and panic recovery are httpapi's, shared with the
// services.)
package edge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/agora-commerce/agora/internal/gateway/problem"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// MaxBodyBytes is the default request body limit (1 MiB).
const MaxBodyBytes = httpapi.MaxBodyBytes

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
			linger(w, r)
		}
		if r.ContentLength > limit {
			tooLarge()
			return
		}
		_, err := Body(w, r, limit)
		var maxErr *http.MaxBytesError
		switch {
		case errors.As(err, &maxErr):
			tooLarge()
			return
		case err != nil:
			problem.Write(w, r, http.StatusBadRequest, "", "the request body could not be read")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// A refused body's rest is read and dropped, up to LingerBytes or for
// LingerTime, whichever comes first, before the connection closes.
const (
	LingerBytes = 16 << 20
	LingerTime  = 10 * time.Second
)

// linger reads and drops the rest of a refused request's body (bounded by
// LingerBytes and LingerTime, like nginx's lingering close), once the
// answer is on its way: a client that sends its whole body before it
// reads — without Expect: 100-continue, as Python's urllib and many SDKs
// do — then gets the answer rather than a connection reset while it
// writes. A client that asked to continue was never told to send, and is
// not waited for.
func linger(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.Header.Get("Expect") != "" {
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	_ = rc.SetReadDeadline(time.Now().Add(LingerTime))
	_, _ = io.CopyN(io.Discard, r.Body, LingerBytes)
}

// Body returns r's whole body, read at most once per request: the first
// call reads it into memory (refusing more than limit bytes with an
// *http.MaxBytesError) and puts back a body that can be read again
// (Body, GetBody); later calls — the validator, idempotency, the order
// check after BodyLimit — get the same bytes without reading or
// copying. The caller must not modify them.
func Body(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if b, ok := r.Body.(*buffered); ok {
		return b.data, nil
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, err
	}
	r.ContentLength = int64(len(data))
	r.Body = newBuffered(data)
	r.GetBody = func() (io.ReadCloser, error) { return newBuffered(data), nil }
	return data, nil
}

// buffered is a body held in memory, which Body recognises.
type buffered struct {
	*bytes.Reader
	data []byte
}

func newBuffered(data []byte) *buffered { return &buffered{Reader: bytes.NewReader(data), data: data} }

// Close implements io.Closer.
func (*buffered) Close() error { return nil }

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
