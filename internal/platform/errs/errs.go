// Package errs is Agora's coded application error. Domain and application
// code return errors with a Code; the HTTP layer maps codes to statuses in
// one table (package httpapi). It imports nothing but the standard library
// so that domain packages may use it.
package errs

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an error for callers.
type Code string

// The codes.
const (
	// Invalid: the request is malformed or a field is out of range (400).
	Invalid Code = "invalid"
	// Unprocessable: well-formed but semantically wrong input (422).
	Unprocessable Code = "unprocessable"
	// Unauthenticated: no credentials, or bad ones (401).
	Unauthenticated Code = "unauthenticated"
	// Forbidden: authenticated, but without the right role or tenant (403).
	Forbidden Code = "forbidden"
	// NotFound: the addressed resource does not exist (404).
	NotFound Code = "not_found"
	// Conflict: a business rule or concurrent change forbids it (409).
	Conflict Code = "conflict"
	// MethodNotAllowed: the path exists but not with this method (405).
	MethodNotAllowed Code = "method_not_allowed"
	// TooLarge: the request body is too large (413).
	TooLarge Code = "too_large"
	// Unsupported: the request's media type is not accepted (415).
	Unsupported Code = "unsupported_media_type"
	// Timeout: a bounded wait ran out (504).
	Timeout Code = "timeout"
	// Unavailable: a dependency is down (503).
	Unavailable Code = "unavailable"
	// Internal: a bug or an unexpected failure (500).
	Internal Code = "internal"
	// TooManyRequests: the caller must wait before trying again (429,
	// with Retry-After from Error.RetryAfter).
	TooManyRequests Code = "too_many_requests"
)

// FieldError names one offending input field.
type FieldError struct {
	// Field is the JSON name (or path) of the field.
	Field string `json:"field"`
	// Message says what is wrong with it.
	Message string `json:"message"`
}

// Error is a coded error.
type Error struct {
	// Code classifies the error.
	Code Code
	// Reason is a stable machine-readable detail, e.g. "insufficient_funds".
	Reason string
	// Message is safe to show to clients.
	Message string
	// Fields lists offending fields of a validation error.
	Fields []FieldError
	// Err is the underlying cause, if any (not shown to clients).
	Err error
	// RetryAfter, if positive, is how long the caller should wait before
	// trying again (the Retry-After header).
	RetryAfter time.Duration
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error with the same Code and Reason, so that
// sentinel *Errors work with errors.Is.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Reason == e.Reason && t.Reason != ""
}

// E returns an *Error with code and a formatted message.
func E(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Rule returns a sentinel for a broken business rule: a Conflict with a
// reason and message.
func Rule(reason, message string) *Error {
	return &Error{Code: Conflict, Reason: reason, Message: message}
}

// Fields returns an Invalid error listing offending fields.
func Fields(fields ...FieldError) *Error {
	return &Error{Code: Invalid, Message: "request has invalid fields", Fields: fields}
}

// CodeOf returns the Code of the first *Error in err's chain, or Internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// Transient reports whether err is a failure to answer rather than an
// answer: Unavailable, Timeout, or Internal (which any error without a
// code is). A caller that asked another context whether something is so
// must not take such an error for "no".
func Transient(err error) bool {
	if err == nil {
		return false
	}
	switch CodeOf(err) {
	case Unavailable, Timeout, Internal:
		return true
	}
	return false
}

// ReasonOf returns the Reason of the first *Error in err's chain, or "".
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}
