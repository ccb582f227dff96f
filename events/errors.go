package events

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Code is a stable, machine-readable error code. Codes appear on the wire and
// in docs/PROTOCOL.md; they are only ever added, never renamed or reused.
type Code string

// Error codes. Grouped by who can act on them.
const (
	// Bad input: the caller must change the request.
	CodeMalformed        Code = "malformed"          // cannot be decoded (JSON or msgpack)
	CodeInvalidArgument  Code = "invalid_argument"   // decodes, but a field is missing or out of range
	CodeUnknownEventType Code = "unknown_event_type" // the type is not one this ledger knows
	CodeTooLarge         Code = "too_large"          // payload, batch or field over its size limit
	CodeClockSkew        Code = "clock_skew"         // event time too far from the ledger's clock

	// Outcomes of a decision: the request was fine, the answer is no.
	CodeQuotaExceeded Code = "quota_exceeded" // a hard limit would be passed
	CodeRetryLater    Code = "retry_later"    // a retry signal stands for this key
	CodeNotFound      Code = "not_found"      // no such quota, reservation, workflow, project
	CodeConflict      Code = "conflict"       // a concurrent writer won; retry the request
	CodeWorkflowLimit Code = "workflow_limit" // no more workflows may begin in this period
	CodeStepLimit     Code = "step_limit"     // the workflow has used all its steps

	// The ledger could not answer; retry with backoff.
	CodeUnavailable Code = "unavailable"
	CodeInternal    Code = "internal"
)

// Error is the ledger's one typed error. It crosses the wire as JSON or
// msgpack with the same fields, so a client can rebuild it exactly and test it
// with errors.Is against the sentinels below or errors.As for the details.
type Error struct {
	Code       Code           `json:"code" msgpack:"code"`
	Message    string         `json:"message" msgpack:"message"`
	Details    map[string]any `json:"details,omitempty" msgpack:"details,omitempty"`
	RetryAfter int64          `json:"retry_after,omitempty" msgpack:"retry_after,omitempty"` // seconds, rounded up
	Suggestion string         `json:"suggestion,omitempty" msgpack:"suggestion,omitempty"`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Code))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if len(e.Details) > 0 {
		keys := make([]string, 0, len(e.Details))
		for k := range e.Details {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(" (")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s=%v", k, e.Details[k])
		}
		b.WriteString(")")
	}
	return b.String()
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, events.ErrQuotaExceeded) works for any message and details.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code
}

// WithRetryAfter returns a copy of e that tells the caller when to retry.
func (e *Error) WithRetryAfter(d time.Duration) *Error {
	c := *e
	c.RetryAfter = int64((d + time.Second - 1) / time.Second)
	return &c
}

// Sentinels, one per code, for errors.Is.
var (
	ErrMalformed        = &Error{Code: CodeMalformed}
	ErrInvalidArgument  = &Error{Code: CodeInvalidArgument}
	ErrUnknownEventType = &Error{Code: CodeUnknownEventType}
	ErrTooLarge         = &Error{Code: CodeTooLarge}
	ErrClockSkew        = &Error{Code: CodeClockSkew}
	ErrQuotaExceeded    = &Error{Code: CodeQuotaExceeded}
	ErrRetryLater       = &Error{Code: CodeRetryLater}
	ErrNotFound         = &Error{Code: CodeNotFound}
	ErrConflict         = &Error{Code: CodeConflict}
	ErrWorkflowLimit    = &Error{Code: CodeWorkflowLimit}
	ErrStepLimit        = &Error{Code: CodeStepLimit}
	ErrUnavailable      = &Error{Code: CodeUnavailable}
	ErrInternal         = &Error{Code: CodeInternal}
)

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// invalid builds an invalid_argument error naming the offending field.
func invalid(field, format string, args ...any) *Error {
	return &Error{
		Code:    CodeInvalidArgument,
		Message: field + ": " + fmt.Sprintf(format, args...),
		Details: map[string]any{"field": field},
	}
}

// AsError returns err as an *Error, wrapping anything else as internal.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}
