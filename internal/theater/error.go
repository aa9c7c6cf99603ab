package theater

import (
	"errors"
	"fmt"
)

// Error codes. The HTTP layer maps each to one status code in a single table;
// the codes are strings so logs stay readable without that table.
const (
	EINVALID      = "invalid"      // the input breaks a rule; Field names it (400)
	ENOTFOUND     = "not_found"    // no such row, or a malformed id (404)
	ECONFLICT     = "conflict"     // a unique value is taken, or the row is in use (409)
	EUNAUTHORIZED = "unauthorized" // no or bad credentials (401)
	EFORBIDDEN    = "forbidden"    // signed in, but not allowed (403)
	EUNAVAILABLE  = "unavailable"  // a dependency is down, locked or timed out; retry later (503)
	EINTERNAL     = "internal"     // a bug or an unexpected failure (500)
)

// Error is the domain's one error type. Code classifies it, Field names the
// input field at fault (empty when none), and Message is safe to show to a
// client: it never carries SQL, driver or Redis text. Err, when set, is the
// underlying cause, for logs only.
type Error struct {
	Code    string
	Field   string
	Message string
	Err     error
}

// Error returns the code and message, followed by the cause when there is one,
// so that a logged error keeps the detail a client never sees.
func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause, so errors.Is(err, context.DeadlineExceeded) and
// friends work through a domain error.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message. The
// message must be safe to show to a client.
func Errorf(code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error for field. The message is prefixed with
// the field name, so a client reading only the message still knows which
// value to fix: Invalid("title", "must not be empty") reads
// "title: must not be empty".
func Invalid(field, msg string) error {
	return &Error{Code: EINVALID, Field: field, Message: field + ": " + msg}
}

// Wrap returns an *Error with code and a client-safe message whose cause is
// err. Use it at the storage boundary: the driver's text stays in the cause.
func Wrap(code, msg string, err error) error {
	return &Error{Code: code, Message: msg, Err: err}
}

// ErrorCode returns the code of err's *Error, "" for a nil error, and
// EINTERNAL for any other error: an error nobody classified is a bug.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorField returns the field named by err's *Error, or "".
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// ErrorMessage returns the client-safe message of err's *Error, "" for a nil
// error, and "internal error" for any other error, whose text may hold
// details a client must not see.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
