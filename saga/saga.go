// Package saga is Agora's orchestration engine: a long-running process of
// ordered steps, each an action and a compensation, that either completes
// every step or undoes the completed ones in reverse order.
//
// A saga instance is event-sourced: its stream ("saga-<id>") records every
// step started, completed, failed and compensated, so an engine that
// crashes resumes each instance at the step it was on, and the stream is
// the instance's timeline (Get). Appends use the stream's version, so two
// engines can never both advance one instance.
//
// Failures come in two kinds. An action that returns an error made with
// Fail (insufficient funds, out of stock) is a business failure: the saga
// compensates at once. Any other error is transient: the step is retried
// with exponential backoff and jitter, up to Step.MaxAttempts, and then
// treated as a business failure. A step whose Deadline passes fails with
// reason "timeout". A compensation that keeps failing leaves the saga
// Failed, visible, and resumable with Retry.
//
// Actions and compensations may run more than once (a crash between the
// effect and the record of it, a retry after a timeout), so they must be
// idempotent: Exec.CommandID is the same for every attempt of one step of
// one saga, and Exec.AttemptID names one attempt.
package saga

import (
	"github.com/agora-commerce/agora/eventstore"

	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// Status is an instance's state.
type Status string

// The statuses.
const (
	// Started: running its steps forward.
	Started Status = "Started"
	// Completed: every step succeeded.
	Completed Status = "Completed"
	// Compensating: undoing the completed steps after a failure.
	Compensating Status = "Compensating"
	// Compensated: every completed step was undone.
	Compensated Status = "Compensated"
	// Failed: a compensation kept failing; an operator must Retry.
	Failed Status = "Failed"
)

// Terminal reports whether s is final (Failed is not: it can be retried).
func (s Status) Terminal() bool { return s == Completed || s == Compensated }

// Exec is what a step's action or compensation gets.
type Exec[D any] struct {
	// SagaID is the instance's ID.
	SagaID string
	// Step is the step's name.
	Step string
	// Attempt counts attempts of this action (or compensation), from 1.
	Attempt int
	// Data is the instance's data; an action may change it, and the change
	// is recorded with the step's completion.
	Data *D
	// Reason is, in a compensation, why the saga is compensating.
	Reason string
}

// CommandID is the same for every attempt of this step of this saga: the
// idempotency key of what the step asks another context to do.
func (x *Exec[D]) CommandID() string { return x.SagaID + "/" + x.Step }

// AttemptID names this attempt: CommandID plus the attempt number.
func (x *Exec[D]) AttemptID() string { return x.CommandID() + "/" + strconv.Itoa(x.Attempt) }

// Step is one step of a definition.
type Step[D any] struct {
	// Name identifies the step in the timeline.
	Name string
	// Action does the step. Return Fail(reason) for a business failure;
	// any other error is retried.
	Action func(ctx context.Context, x *Exec[D]) error
	// Compensate undoes a completed step (nil: nothing to undo).
	Compensate func(ctx context.Context, x *Exec[D]) error
	// Deadline bounds the step over all its attempts (0: no deadline).
	Deadline time.Duration
	// MaxAttempts caps the action's attempts (default 5).
	MaxAttempts int
}

// Definition is a saga type: its ordered steps over data D.
type Definition[D any] struct {
	// Type names the definition, e.g. "checkout".
	Type string
	// Steps run in order; compensations in reverse.
	Steps []Step[D]
	// Overlap lets a step's action start while the previous step's
	// completion is still being written, which saves one append's wait
	// per step. It applies to steps with a Compensate (a step without one
	// always waits for the record before it). The price: after a crash,
	// the step after the last one recorded as started may have run
	// without a record, so if the saga then compensates, that step's
	// compensation runs too. Set it only when every compensation is safe
	// for an action that never ran (it changes nothing, or leaves a
	// tombstone that refuses the action if it comes late).
	Overlap bool
	// OnEnd, if set, runs when an instance reaches Completed or
	// Compensated (it must be idempotent: a crash may repeat it).
	OnEnd func(ctx context.Context, id string, status Status, reason string, data D) error
}

// Deadline is the definition's deadline: the sum of its steps' deadlines
// (a step without one adds nothing); 0 when none has one. An unfinished
// instance older than it is stuck (Backlog reports the same sum).
func (d Definition[D]) Deadline() time.Duration {
	var sum time.Duration
	for _, s := range d.Steps {
		sum += s.Deadline
	}
	return sum
}

// BusinessError is a failure that retrying cannot fix.
type BusinessError struct {
	// Reason is a stable machine-readable reason, e.g. "out_of_stock".
	Reason string
	// Err is the cause, if any.
	Err error
}

func (e *BusinessError) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

// Unwrap returns the cause.
func (e *BusinessError) Unwrap() error { return e.Err }

// Fail returns a business failure with reason.
func Fail(reason string) error { return &BusinessError{Reason: reason} }

// Failf returns a business failure with reason and a cause.
func Failf(reason string, err error) error { return &BusinessError{Reason: reason, Err: err} }

// ReasonOf returns a business failure's reason ("" for any other error).
func ReasonOf(err error) string {
	var b *BusinessError
	if errors.As(err, &b) {
		return b.Reason
	}
	return ""
}

// ErrNotFound reports an unknown saga instance.
var ErrNotFound = errors.New("saga: no such instance")

// ErrNotFailed reports a Retry of an instance that is not Failed.
var ErrNotFailed = errors.New("saga: only a Failed saga can be retried")

// StepView is one step in an instance's timeline.
type StepView struct {
	// Name is the step's name.
	Name string `json:"name"`
	// Status is Pending, Running, Completed, Failed, Compensating,
	// Compensated or Skipped (a step with nothing to undo).
	Status string `json:"status"`
	// Attempts counts the action's (or compensation's) attempts.
	Attempts int `json:"attempts"`
	// At is when the step last changed.
	At *time.Time `json:"at,omitempty"`
	// Error is the last failure of the step, if any.
	Error string `json:"error,omitempty"`
}

// Instance is a saga instance as its stream tells it.
type Instance struct {
	// ID is the instance's ID.
	ID string `json:"id"`
	// Type is its definition's type.
	Type string `json:"type"`
	// Status is where it stands.
	Status Status `json:"status"`
	// Reason is why it compensated (or failed), if it did.
	Reason string `json:"reason,omitempty"`
	// Error is the last error that stopped it, for a Failed saga.
	Error string `json:"error,omitempty"`
	// Steps is the timeline, in definition order.
	Steps []StepView `json:"steps"`
	// Data is the instance's current data.
	Data json.RawMessage `json:"data,omitempty"`
	// Version is the instance stream's version.
	Version uint64 `json:"version"`
	// StartedAt and UpdatedAt bound the timeline.
	StartedAt, UpdatedAt time.Time `json:"-"`
	// Metadata is what the instance started with (WithMetadata): whose
	// request started it, in which tenant and trace.
	Metadata eventstore.Metadata `json:"-"`
}

// Event types of an instance stream.
const (
	evStarted           = "saga.Started"
	evStepStarted       = "saga.StepStarted"
	evStepCompleted     = "saga.StepCompleted"
	evStepFailed        = "saga.StepFailed"
	evCompensating      = "saga.Compensating"
	evStepCompensating  = "saga.StepCompensating"
	evStepCompensated   = "saga.StepCompensated"
	evCompensationError = "saga.CompensationFailed"
	evCompleted         = "saga.Completed"
	evCompensated       = "saga.Compensated"
	evFailed            = "saga.Failed"
	evRetried           = "saga.Retried"
)

// event is the body of every instance event (fields used per type).
type event struct {
	Type    string          `json:"type,omitempty"`
	Steps   []string        `json:"steps,omitempty"`
	Step    int             `json:"step,omitempty"`
	Attempt int             `json:"attempt,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	Error   string          `json:"error,omitempty"`
	// Uncertain marks a step failure whose effect is unknown (a timeout,
	// retries exhausted): the step is compensated too.
	Uncertain bool `json:"uncertain,omitempty"`
}
