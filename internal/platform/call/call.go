// Package call is how one bounded context asks another for something:
// a cross-context call is declared once, in the owning context's
// published language, as a typed request and response with a subject
// and an owner,
//
//	var Reserve = call.Command[ReserveRequest, call.None]("cmd.inventory.reserve", "inventory")
//
// the owner's module answers it,
//
//	inventoryapi.Reserve.Answer(func(ctx context.Context, r ReserveRequest) (call.None, error) { ... })
//
// and a caller binds it to the process's Exchange to get a plain typed
// function:
//
//	reserve := inventoryapi.Reserve.Bind(x)
//	_, err := reserve(ctx, ReserveRequest{...})
//
// The Exchange carries the call in process, without JSON, when this
// process runs the owner's module, and over the bus (NATS request-reply,
// one queue group per owner) when it does not. Either way an *errs.Error
// comes back with its code, reason, message and fields, so errors.Is
// against the owner's sentinel errors works on both transports; any other
// error comes back as a failure to retry.
package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/tracing"
)

// None is the response of a call that answers nothing but its outcome.
type None struct{}

// Call is a cross-context call's declaration: its subject on the bus,
// the context that answers it, and whether it is a query (a client
// waits for it: a shorter timeout, asked twice) or a command (asked once;
// the caller — a saga, a client — retries it, and the owner makes it
// idempotent).
type Call[Req, Resp any] struct {
	// Subject names the call on the bus, e.g. "cmd.inventory.reserve".
	Subject string
	// Owner is the context whose module answers it.
	Owner string
	// Query marks a call a client waits for.
	Query bool
}

// Command declares a command owned by owner.
func Command[Req, Resp any](subject, owner string) Call[Req, Resp] {
	return Call[Req, Resp]{Subject: subject, Owner: owner}
}

// Query declares a query owned by owner.
func Query[Req, Resp any](subject, owner string) Call[Req, Resp] {
	return Call[Req, Resp]{Subject: subject, Owner: owner, Query: true}
}

// Timeouts of one ask over the bus.
const (
	// CommandTimeout bounds a command's round trip; its caller retries.
	CommandTimeout = 5 * time.Second
	// QueryTimeout bounds one attempt of a query, which is asked once
	// more (most likely of another process) before it fails.
	QueryTimeout = 2 * time.Second
)

// Answer is how a module answers one call: in process, and as a bus
// responder.
type Answer struct {
	// Subject and Owner are the call's.
	Subject, Owner string
	// local is the typed function, func(context.Context, Req) (Resp, error).
	local any
	// Respond answers the call's JSON request with its JSON reply.
	Respond func(ctx context.Context, data []byte) []byte
}

// envelope is a request on the bus: the request, and the trace context
// of the call.
type envelope struct {
	TraceParent string          `json:"traceparent,omitempty"`
	Request     json.RawMessage `json:"request"`
}

// Answer returns f as c's answer. Each answer runs in a span of the
// owner's, a child of the caller's.
func (c Call[Req, Resp]) Answer(f func(ctx context.Context, req Req) (Resp, error)) Answer {
	traced := func(ctx context.Context, req Req) (Resp, error) {
		ctx, span := tracer().Start(ctx, c.Subject, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(tracing.ServiceKey.String(c.Owner), attribute.String("agora.call", c.Subject)))
		res, err := f(ctx, req)
		end(span, err)
		return res, err
	}
	return Answer{Subject: c.Subject, Owner: c.Owner, local: traced, Respond: func(ctx context.Context, data []byte) []byte {
		var req Req
		var rp reply
		var env envelope
		err := json.Unmarshal(data, &env)
		if err == nil {
			err = json.Unmarshal(env.Request, &req)
		}
		ctx = tracing.Extract(ctx, env.TraceParent)
		if err != nil {
			rp.Error = &wireError{Message: "bad request: " + err.Error()}
		} else if res, err := traced(ctx, req); err != nil {
			rp.Error = toWire(err)
		} else if rp.Result, err = json.Marshal(res); err != nil {
			rp.Error = &wireError{Message: "bad result: " + err.Error()}
		}
		out, _ := json.Marshal(rp)
		return out
	}}
}

// reply is a call's outcome on the bus: its result or its error.
type reply struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *wireError      `json:"error,omitempty"`
}

// wireError is an error on the bus: an *errs.Error's parts, or (without
// a code) another failure's message.
type wireError struct {
	Code    errs.Code         `json:"code,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	Message string            `json:"message"`
	Fields  []errs.FieldError `json:"fields,omitempty"`
}

func toWire(err error) *wireError {
	if e, ok := errors.AsType[*errs.Error](err); ok {
		return &wireError{Code: e.Code, Reason: e.Reason, Message: e.Message, Fields: e.Fields}
	}
	return &wireError{Message: err.Error()}
}

func (w *wireError) err(subject string) error {
	if w.Code != "" {
		return &errs.Error{Code: w.Code, Reason: w.Reason, Message: w.Message, Fields: w.Fields}
	}
	return fmt.Errorf("%s: %s", subject, w.Message)
}

// Requester sends a request on the bus and returns the answer
// (natsbus.Bus).
type Requester interface {
	Request(ctx context.Context, subject string, data []byte) ([]byte, error)
}

// Exchange routes the calls of one process: to the answers of the
// modules it runs, in process, and the others over the bus.
type Exchange struct {
	bus Requester
	mu  sync.RWMutex
	in  map[string]Answer
	// faults are the drills: subjects whose calls fail (Fail).
	faults map[string]error
}

// NewExchange returns an exchange that sends the calls nobody in this
// process answers over bus (none if nil: such calls fail Unavailable).
func NewExchange(bus Requester) *Exchange {
	return &Exchange{bus: bus, in: map[string]Answer{}}
}

// Add registers answers of this process's modules.
func (x *Exchange) Add(answers ...Answer) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, a := range answers {
		x.in[a.Subject] = a
	}
}

// Fail makes every call of subject through x fail with err, until
// Fail(subject, nil): a drill of a context that keeps failing (a
// compensation that cannot complete leaves its saga Failed).
func (x *Exchange) Fail(subject string, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.faults == nil {
		x.faults = map[string]error{}
	}
	if err == nil {
		delete(x.faults, subject)
	} else {
		x.faults[subject] = err
	}
}

// local returns the answer of subject in this process, if any, and the
// drill's error if its calls are made to fail.
func (x *Exchange) local(subject string) (Answer, bool, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	a, ok := x.in[subject]
	return a, ok, x.faults[subject]
}

// Bind returns c as a function over x: answered in process when this
// process runs c's owner (looked up at each call, so the order in which
// modules are built does not matter), else over the bus.
func (c Call[Req, Resp]) Bind(x *Exchange) func(ctx context.Context, req Req) (Resp, error) {
	return func(ctx context.Context, req Req) (res Resp, err error) {
		a, ok, fault := x.local(c.Subject)
		if ok && fault == nil {
			// In process, the owner's span is the caller's child: a
			// client span would only repeat it.
			if f, ok := a.local.(func(context.Context, Req) (Resp, error)); ok {
				return f(ctx, req)
			}
		}
		ctx, span := tracer().Start(ctx, c.Subject, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("agora.call", c.Subject), attribute.String("agora.call.owner", c.Owner)))
		defer func() { end(span, err) }()
		if fault != nil {
			var zero Resp
			return zero, fault
		}
		if ok {
			if f, ok := a.local.(func(context.Context, Req) (Resp, error)); ok {
				return f(ctx, req)
			}
			var zero Resp
			return zero, fmt.Errorf("call: %s is answered with other types", c.Subject)
		}
		return c.remote(ctx, x.bus, req)
	}
}

// remote asks c over bus.
func (c Call[Req, Resp]) remote(ctx context.Context, bus Requester, req Req) (Resp, error) {
	var out Resp
	if bus == nil {
		return out, &errs.Error{Code: errs.Unavailable, Reason: "context_unavailable", RetryAfter: time.Second, Message: "nothing answers " + c.Subject}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return out, fmt.Errorf("%s: encode: %w", c.Subject, err)
	}
	data, err := json.Marshal(envelope{TraceParent: tracing.TraceParent(ctx), Request: body})
	if err != nil {
		return out, fmt.Errorf("%s: encode: %w", c.Subject, err)
	}
	timeout, attempts := CommandTimeout, 1
	if c.Query {
		timeout, attempts = QueryTimeout, 2
	}
	var answer []byte
	for range attempts {
		actx, cancel := context.WithTimeout(ctx, timeout)
		answer, err = bus.Request(actx, c.Subject, data)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		// No process of the owner answered: a 503 to a client, a retry
		// to a saga.
		return out, &errs.Error{Code: errs.Unavailable, Reason: "context_unavailable", RetryAfter: time.Second,
			Message: fmt.Sprintf("no answer to %s; retry shortly", c.Subject), Err: err}
	}
	var rp reply
	if err := json.Unmarshal(answer, &rp); err != nil {
		return out, fmt.Errorf("%s: bad reply: %w", c.Subject, err)
	}
	if rp.Error != nil {
		return out, rp.Error.err(c.Subject)
	}
	if len(rp.Result) > 0 {
		if err := json.Unmarshal(rp.Result, &out); err != nil {
			return out, fmt.Errorf("%s: bad result: %w", c.Subject, err)
		}
	}
	return out, nil
}

var callTracer = otel.Tracer("github.com/agora-commerce/agora/call")

func tracer() trace.Tracer { return callTracer }

// end records err (an error that is not a refusal) on span and ends it.
func end(span trace.Span, err error) {
	if err != nil {
		span.SetAttributes(attribute.String("agora.error", errs.ReasonOf(err)))
		if errs.Transient(err) || errs.CodeOf(err) == errs.Internal {
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

// Owner says whose a resource is: the answer of the owner queries.
type Owner struct {
	// Tenant is the resource's tenant.
	Tenant string `json:"tenant"`
	// ID is the user who owns it.
	ID string `json:"id"`
}

// OwnerFunc adapts an owner query to the Owner(ctx, id) port of the
// contexts that ask it.
type OwnerFunc func(ctx context.Context, id string) (tenant, owner string, err error)

// Owner returns f(ctx, id).
func (f OwnerFunc) Owner(ctx context.Context, id string) (tenant, owner string, err error) {
	return f(ctx, id)
}
