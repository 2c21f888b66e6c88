// Package problem writes the gateway's own error answers as
// application/problem+json (RFC 9457) in the shape every Agora API uses
// (httpapi.Problem): type, title, status, detail, plus instance, reason and
// request_id when known — built and written by httpapi, like every other
// answer. The gateway writes problems by status (429 has no errs code) and
// also as a fallback *http.Response, which httpapi.Error cannot.
package problem

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// ContentType is the media type of a problem document.
const ContentType = "application/problem+json"

// New returns the problem document for status with detail and an optional
// stable reason (e.g. "rate_limited"); a reason also sets the type URI.
func New(r *http.Request, status int, reason, detail string) httpapi.Problem {
	return httpapi.NewProblem(r, status, reason, detail)
}

// Write answers r with a problem document. A request ID already set on the
// response wins over the request's.
func Write(w http.ResponseWriter, r *http.Request, status int, reason, detail string) {
	httpapi.WriteProblem(w, New(r, status, reason, detail))
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
