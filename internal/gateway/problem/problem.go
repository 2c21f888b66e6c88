// Package problem writes the gateway's own error answers as
// application/problem+json (RFC 9457) in the shape every Agora API uses
// (httpapi.Problem): type, title, status, detail, plus instance, reason and
// request_id when known. The gateway needs statuses that errs has no code
// for (429) and answers that are not written to a ResponseWriter (a
// fallback *http.Response), so it does not go through httpapi.Error.
package problem

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// ContentType is the media type of a problem document.
const ContentType = "application/problem+json"

// New returns the problem document for status with detail and an optional
// stable reason (e.g. "rate_limited"); a reason also sets the type URI.
func New(r *http.Request, status int, reason, detail string) httpapi.Problem {
	p := httpapi.Problem{
		Type:   "about:blank",
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Reason: reason,
	}
	if r != nil {
		p.Instance = r.URL.Path
		p.RequestID = r.Header.Get(httpapi.RequestIDHeader)
	}
	if reason != "" {
		p.Type = "/problems/" + strings.ReplaceAll(reason, "_", "-")
	}
	return p
}

// Write answers r with a problem document. A request ID already set on the
// response wins over the request's.
func Write(w http.ResponseWriter, r *http.Request, status int, reason, detail string) {
	p := New(r, status, reason, detail)
	if id := w.Header().Get(httpapi.RequestIDHeader); id != "" {
		p.RequestID = id
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// Response builds a complete *http.Response carrying a problem document,
// for code that answers in place of an upstream (a RoundTripper fallback).
// retryAfterSeconds, when positive, sets Retry-After.
func Response(r *http.Request, status int, reason, detail string, retryAfterSeconds int) *http.Response {
	body, _ := json.Marshal(New(r, status, reason, detail))
	body = append(body, '\n')
	h := http.Header{}
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if retryAfterSeconds > 0 {
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}
}
