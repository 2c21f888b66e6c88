// Package httpapi holds the HTTP conventions every Agora API shares:
// strict JSON request decoding, JSON and problem+json (RFC 9457) responses,
// the one table that maps errors to statuses, read-your-writes headers and
// common middleware (request IDs, access logs, panic recovery).
package httpapi

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/tracing"
)

// MaxBodyBytes is the largest request body accepted (1 MiB); larger get 413.
const MaxBodyBytes = 1 << 20

// Header names of the read-your-writes protocol.
const (
	// PositionHeader carries the event-store position a write produced.
	PositionHeader = "Agora-Position"
	// MinPositionHeader asks a read to wait until its read model reached a position.
	MinPositionHeader = "Agora-Min-Position"
	// RequestIDHeader identifies a request; echoed when the client sends one.
	RequestIDHeader = "X-Request-Id"
	// TraceParentHeader carries the W3C trace context (traceparent).
	TraceParentHeader = "Traceparent"
	// TraceIDHeader tells the client the W3C trace its request belongs to.
	TraceIDHeader = "Agora-Trace-Id"
)

// MaxConsistencyWait bounds how long a read waits for Agora-Min-Position.
const MaxConsistencyWait = 5 * time.Second

// statusOf is the one table from error codes to HTTP statuses.
var statusOf = map[errs.Code]int{
	errs.Invalid:          http.StatusBadRequest,
	errs.Unprocessable:    http.StatusUnprocessableEntity,
	errs.Unauthenticated:  http.StatusUnauthorized,
	errs.Forbidden:        http.StatusForbidden,
	errs.NotFound:         http.StatusNotFound,
	errs.Conflict:         http.StatusConflict,
	errs.TooLarge:         http.StatusRequestEntityTooLarge,
	errs.MethodNotAllowed: http.StatusMethodNotAllowed,
	errs.Unsupported:      http.StatusUnsupportedMediaType,
	errs.Timeout:          http.StatusGatewayTimeout,
	errs.Unavailable:      http.StatusServiceUnavailable,
	errs.Internal:         http.StatusInternalServerError,
	errs.TooManyRequests:  http.StatusTooManyRequests,
}

// Problem is an RFC 9457 problem document.
type Problem struct {
	// Type is a URI reference identifying the problem type.
	Type string `json:"type"`
	// Title is a short summary of the problem type.
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail explains this occurrence.
	Detail string `json:"detail,omitempty"`
	// Instance is the request path.
	Instance string `json:"instance,omitempty"`
	// Reason is a stable machine-readable reason, e.g. "insufficient_funds".
	Reason string `json:"reason,omitempty"`
	// Errors lists offending fields of a validation problem.
	Errors []errs.FieldError `json:"errors,omitempty"`
	// RequestID lets support find the request in the logs.
	RequestID string `json:"request_id,omitempty"`
}

// Classify maps any error to a coded *errs.Error, recognising the
// platform's well-known errors.
func Classify(err error) *errs.Error {
	var e *errs.Error
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &tooLarge):
		return &errs.Error{Code: errs.TooLarge, Message: fmt.Sprintf("request body exceeds %d bytes", tooLarge.Limit), Err: err}
	case errors.Is(err, eventstore.ErrConcurrency):
		return &errs.Error{Code: errs.Conflict, Reason: "concurrent_modification", Message: "the resource was changed concurrently; retry", Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &errs.Error{Code: errs.Timeout, Message: "the operation timed out", Err: err}
	case errors.Is(err, eventstore.ErrClosed):
		return &errs.Error{Code: errs.Unavailable, Message: "the service is shutting down", Err: err}
	case unreachable(err):
		return &errs.Error{Code: errs.Unavailable, Reason: "dependency_unavailable",
			Message: "a store this request needs cannot be reached; retry shortly", RetryAfter: time.Second, Err: err}
	default:
		return &errs.Error{Code: errs.Internal, Message: "internal error", Err: err}
	}
}

// unreachable reports whether err is a lost or refused connection to a
// store or broker (the connection, not the request, failed): the
// network's errors, a connection cut mid-answer, a driver's bad
// connection, and errors that say they happened before the request was
// sent (pgconn's SafeToRetry).
func unreachable(err error) bool {
	var netErr net.Error
	var safe interface{ SafeToRetry() bool }
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, driver.ErrBadConn) || errors.As(err, &netErr) ||
		errors.As(err, &safe) && safe.SafeToRetry()
}

// Error writes err as problem+json with the status of its code, logging
// server-side failures.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	e := Classify(err)
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status >= 500 {
		slog.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	p := NewProblem(r, status, e.Reason, e.Message)
	p.Errors = e.Fields
	WriteProblem(w, p)
}

// NewProblem builds the problem of a request answered with status: its
// type from reason ("/problems/<reason>", or about:blank), title, detail
// and instance, and the request's ID.
func NewProblem(r *http.Request, status int, reason, detail string) Problem {
	p := Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Reason: reason}
	if r != nil {
		p.Instance, p.RequestID = r.URL.Path, r.Header.Get(RequestIDHeader)
	}
	if reason != "" {
		p.Type = "/problems/" + strings.ReplaceAll(reason, "_", "-")
	}
	return p
}

// WriteProblem writes p as an application/problem+json answer with its
// status (and the response's request ID, when one is set).
func WriteProblem(w http.ResponseWriter, p Problem) {
	if id := w.Header().Get(RequestIDHeader); id != "" {
		p.RequestID = id
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Del("Content-Length")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// JSON writes v as a JSON response with status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Decode reads r's body as exactly one JSON value into dst, strictly:
// the body must be JSON (by Content-Type, if one is given), at most
// MaxBodyBytes, with no unknown fields, no wrong types and nothing after
// the value. Failures are *errs.Error values ready for Error.
func Decode(w http.ResponseWriter, r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return errs.E(errs.Unsupported, "Content-Type must be application/json, not %q", ct)
		}
	}
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeError(err)
		}
		return errs.E(errs.Invalid, "request body must hold a single JSON value")
	}
	return nil
}

func decodeError(err error) error {
	var (
		syntax    *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		tooLarge  *http.MaxBytesError
		fieldErr  *errs.Error
		fieldName string
	)
	switch {
	case errors.As(err, &tooLarge):
		return &errs.Error{Code: errs.TooLarge, Message: fmt.Sprintf("request body exceeds %d bytes", tooLarge.Limit), Err: err}
	case errors.Is(err, io.EOF):
		return errs.E(errs.Invalid, "request body is empty; a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errs.E(errs.Invalid, "request body is truncated JSON")
	case errors.As(err, &syntax):
		return errs.E(errs.Invalid, "malformed JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typeErr):
		fieldName = typeErr.Field
		if fieldName == "" {
			return errs.E(errs.Invalid, "request body must be a JSON object")
		}
		return &errs.Error{Code: errs.Invalid, Message: "request has invalid fields",
			Fields: []errs.FieldError{{Field: fieldName, Message: fmt.Sprintf("must be %s, not %s", typeErr.Type, typeErr.Value)}}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &errs.Error{Code: errs.Invalid, Message: "request has unknown fields",
			Fields: []errs.FieldError{{Field: name, Message: "unknown field"}}}
	case errors.As(err, &fieldErr):
		return fieldErr
	default:
		return &errs.Error{Code: errs.Invalid, Message: "invalid request body: " + err.Error(), Err: err}
	}
}

// Positions: each bounded context owns its event log, with its own
// positions, so a position is a token that names its log: "<log>.<n>",
// e.g. "ordering.12" (clients treat it as opaque and send it back as
// Agora-Min-Position). A read waits only for a token of its own log's; a
// token of another context's log asks nothing of it. A bare "<n>", as
// releases before per-context logs wrote it, is a position of the
// reader's own log.

type logKey struct{}

// WithLog names the event log (its context's) whose positions a
// request's answers and waits speak of.
func WithLog(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, logKey{}, name)
}

// LogOf is the log ctx names (WithLog), or "".
func LogOf(ctx context.Context) string {
	name, _ := ctx.Value(logKey{}).(string)
	return name
}

// PositionToken is position pos of log as a token ("ordering.12"; a bare
// "12" when log is "").
func PositionToken(log string, pos uint64) string {
	if log == "" {
		return strconv.FormatUint(pos, 10)
	}
	return log + "." + strconv.FormatUint(pos, 10)
}

// ParsePosition reads a position token: its log ("" for a bare number)
// and position.
func ParsePosition(token string) (log string, pos uint64, ok bool) {
	num := token
	if i := strings.LastIndexByte(token, '.'); i >= 0 {
		log, num = token[:i], token[i+1:]
		if log == "" || len(log) > 64 || log[0] < 'a' || log[0] > 'z' ||
			strings.IndexFunc(log, func(c rune) bool { return (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' }) >= 0 {
			return "", 0, false
		}
	}
	if num == "" || strings.IndexFunc(num, func(c rune) bool { return c < '0' || c > '9' }) >= 0 {
		return "", 0, false
	}
	pos, err := strconv.ParseUint(num, 10, 64)
	return log, pos, err == nil
}

// SetPosition sets the Agora-Position header of a write's response: the
// token of pos in r's log.
func SetPosition(w http.ResponseWriter, r *http.Request, pos uint64) {
	w.Header().Set(PositionHeader, PositionToken(LogOf(r.Context()), pos))
}

// SetPositionIn sets the Agora-Position header of a write's response to
// the token of pos in log, a log of r's context other than its own (a
// partition's).
func SetPositionIn(w http.ResponseWriter, log string, pos uint64) {
	w.Header().Set(PositionHeader, PositionToken(log, pos))
}

// Waiter is a read model that can wait until it includes a position.
type Waiter interface {
	// WaitFor returns once the read model includes pos, or ctx is done.
	WaitFor(ctx context.Context, pos uint64) error
}

// LogWaiter is a read model fed by several logs of its context (a
// partitioned context's, whose tokens name a partition: "payments-p2.17").
type LogWaiter interface {
	Waiter
	// WaiterOf is the waiter for positions of log, or nil if log is not
	// one the read model is fed by.
	WaiterOf(log string) Waiter
}

// Consistent honours Agora-Min-Position: it waits (up to
// MaxConsistencyWait) until rm includes the requested position. It returns
// an Invalid error for a malformed header and a Timeout error (504) when
// the read model does not catch up in time.
func Consistent(r *http.Request, rm Waiter) error {
	log, pos, ok, err := minPosition(r)
	if err != nil || !ok {
		return err
	}
	if log != "" && log != LogOf(r.Context()) {
		lw, ok := rm.(LogWaiter)
		if !ok {
			return nil // another context's write: nothing to wait for here
		}
		if rm = lw.WaiterOf(log); rm == nil {
			return nil
		}
	}
	return waitFor(r, rm, pos)
}

// ConsistentOf honours an Agora-Min-Position that names log, another
// context's event log whose events rm follows (ordering's model of the
// catalog's prices follows "catalog"): it waits, as Consistent does,
// until rm includes that position. A token of any other log, or a bare
// number (a position of the request's own log), asks nothing of rm.
func ConsistentOf(r *http.Request, log string, rm Waiter) error {
	l, pos, ok, err := minPosition(r)
	if err != nil || !ok || l != log {
		return err
	}
	return waitFor(r, rm, pos)
}

// waitFor waits up to MaxConsistencyWait until rm includes pos.
func waitFor(r *http.Request, rm Waiter, pos uint64) error {
	ctx, cancel := context.WithTimeout(r.Context(), MaxConsistencyWait)
	defer cancel()
	if err := rm.WaitFor(ctx, pos); err != nil {
		if r.Context().Err() != nil {
			return r.Context().Err()
		}
		return &errs.Error{Code: errs.Timeout, Reason: "read_model_lagging", Message: fmt.Sprintf("read model did not reach position %d within %v", pos, MaxConsistencyWait), Err: err}
	}
	return nil
}

// minPosition is r's Agora-Min-Position, if it has one: its log ("" for
// a bare position) and position.
func minPosition(r *http.Request) (string, uint64, bool, error) {
	h := r.Header.Get(MinPositionHeader)
	if h == "" {
		return "", 0, false, nil
	}
	log, pos, ok := ParsePosition(strings.TrimSpace(h))
	if !ok {
		return "", 0, false, errs.E(errs.Invalid, "%s must be an Agora-Position token (e.g. ordering.12)", MinPositionHeader)
	}
	return log, pos, true, nil
}

// ValidRequestID reports whether a client's X-Request-Id may be echoed:
// 1 to 128 characters from letters, digits and "-_.:+=/@" (nothing that
// could break a header or a log line).
func ValidRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-_.:+=/@", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Middleware wraps h with request IDs, panic recovery, a JSON access
// log line per request and the refusal of a malformed
// Agora-Min-Position.
func Middleware(log *slog.Logger, h http.Handler) http.Handler {
	return RequestID(AccessLog(log, Recoverer(log, MinPosition(h))))
}

// MinPosition refuses a request whose Agora-Min-Position is not a
// position token (400), whatever its handler does with the header: a
// read that waits for it (Consistent), or one served from an aggregate's
// stream or a context's own tables, which every acknowledged write has
// already reached and so never waits.
func MinPosition(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header[MinPositionHeader]; ok {
			if _, _, _, err := minPosition(r); err != nil {
				Error(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// RequestID gives every request an ID: the client's X-Request-Id when it
// is well-formed (ValidRequestID), else a new UUID. The ID is set on the
// response and on the request's header, so that handlers, upstreams and
// problem answers carry it.
//
// It also runs the request in a server span of its W3C trace: an incoming
// traceparent is continued, else a trace starts. The request's
// Traceparent header becomes this span's, for the events it writes and
// the upstreams it calls, and the response names the trace in
// Agora-Trace-Id.
func RequestID(next http.Handler) http.Handler {
	tracer := tracing.Tracer("http")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The headers are read and written by their canonical keys, as
		// Header.Get, Set and Del would after canonicalizing them.
		var id string
		if v := r.Header[RequestIDHeader]; len(v) > 0 {
			id = v[0]
		}
		if !ValidRequestID(id) {
			id = uuid.NewString()
			r.Header[RequestIDHeader] = []string{id}
		}
		ctx := tracing.Propagator.Extract(r.Context(), headerCarrier(r.Header))
		ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
				attribute.String("agora.request_id", id)))
		defer span.End()
		delete(r.Header, TraceParentHeader)
		tracing.Propagator.Inject(ctx, headerCarrier(r.Header))
		v := []string{id, span.SpanContext().TraceID().String()} // one allocation for both answers
		h := w.Header()
		h[RequestIDHeader], h[TraceIDHeader] = v[0:1:1], v[1:2:2]
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(tracing.WithRequestID(ctx, id)))
		span.SetAttributes(attribute.Int("http.response.status_code", sw.code()))
		if sw.code() >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.code()))
		}
	})
}

// headerCarrier is propagation.HeaderCarrier knowing the W3C trace
// context's canonical keys, which it would otherwise canonicalize on
// every request.
type headerCarrier http.Header

func (c headerCarrier) key(k string) string {
	switch k {
	case "traceparent":
		return TraceParentHeader
	case "tracestate":
		return "Tracestate"
	}
	return http.CanonicalHeaderKey(k)
}

// Get implements propagation.TextMapCarrier.
func (c headerCarrier) Get(key string) string {
	if v := c[c.key(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set implements propagation.TextMapCarrier.
func (c headerCarrier) Set(key, value string) { c[c.key(key)] = []string{value} }

// Keys implements propagation.TextMapCarrier.
func (c headerCarrier) Keys() []string { return propagation.HeaderCarrier(c).Keys() }

// Recoverer answers a panicking handler's request with a 500 problem
// (when nothing was written yet; else it cuts the connection) and logs
// the panic with its stack. http.ErrAbortHandler is passed on, as
// net/http expects.
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
			log.ErrorContext(r.Context(), "panic serving request", "method", r.Method, "path", r.URL.Path,
				"request_id", w.Header().Get(RequestIDHeader), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if tw.wrote {
				panic(http.ErrAbortHandler) // too late for a clean answer
			}
			Error(w, r, fmt.Errorf("panic: %v", p))
		}()
		next.ServeHTTP(tw, r)
	})
}

// trackingWriter notes whether the answer has begun.
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

// AccessLog wraps h with the access log line alone (Middleware adds it
// inside RequestID and Recoverer; the gateway has them in its own chain):
// the line's request_id is the one the answer carries.
func AccessLog(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !log.Enabled(r.Context(), slog.LevelInfo) {
			h.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		h.ServeHTTP(sw, r)
		logRequest(log, r, sw.status, start, w.Header().Get(RequestIDHeader))
	})
}

// logRequest writes a request's access log line, if log takes Info.
func logRequest(log *slog.Logger, r *http.Request, status int, start time.Time, id string) {
	if log.Enabled(r.Context(), slog.LevelInfo) {
		log.InfoContext(r.Context(), "http", "method", r.Method, "path", r.URL.Path, "status", status,
			"duration_ms", float64(time.Since(start).Microseconds())/1000, "request_id", id)
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// code is the status answered (200 if the handler only wrote).
func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// NotFound answers unknown routes with problem+json.
func NotFound(w http.ResponseWriter, r *http.Request) {
	Error(w, r, errs.E(errs.NotFound, "no route for %s %s", r.Method, r.URL.Path))
}

// Limit parses ?limit= (default 50, at most 500).
func Limit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 50, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 500 {
		return 0, errs.Fields(errs.FieldError{Field: "limit", Message: "must be an integer from 1 to 500"})
	}
	return n, nil
}

// Query rejects query parameters other than allowed.
func Query(r *http.Request, allowed ...string) error {
	for k := range r.URL.Query() {
		if !slices.Contains(allowed, k) {
			return errs.Fields(errs.FieldError{Field: k, Message: "unknown query parameter"})
		}
	}
	return nil
}

// ID checks an identifier from a path or body: present, at most 128
// bytes, no control characters.
func ID(field, v string) *errs.FieldError {
	switch {
	case v == "":
		return &errs.FieldError{Field: field, Message: "is required"}
	case len(v) > 128:
		return &errs.FieldError{Field: field, Message: "is longer than 128 characters"}
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return &errs.FieldError{Field: field, Message: "contains control characters"}
	}
	return nil
}

// NewID checks an identifier a client chooses for a resource it creates:
// ID's rules, and only letters, digits and "-_.:" (nothing a path or a
// Location header would read otherwise), not "." or "..".
func NewID(field, v string) *errs.FieldError {
	if fe := ID(field, v); fe != nil {
		return fe
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && !strings.ContainsRune("-_.:", rune(c)) {
			return &errs.FieldError{Field: field, Message: `may hold only letters, digits and "-_.:"`}
		}
	}
	if v == "." || v == ".." {
		return &errs.FieldError{Field: field, Message: "is not an identifier"}
	}
	return nil
}

// PathID returns the path value name, checked by ID.
func PathID(r *http.Request, name string) (string, error) {
	v := r.PathValue(name)
	if fe := ID(name, v); fe != nil {
		return "", errs.Fields(*fe)
	}
	return v, nil
}

// EmptyBody accepts no body, an empty one, or an empty JSON object.
func EmptyBody(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength == 0 {
		return nil
	}
	var empty struct{}
	return Decode(w, r, &empty)
}
