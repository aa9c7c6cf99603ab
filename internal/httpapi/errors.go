package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/problem"
	"github.com/theaterscriptpro/tsp/redisx"
)

// statusOf is the one table from domain error codes to HTTP statuses. A code
// it does not know is a bug, hence 500.
func statusOf(code string) int {
	switch code {
	case theater.EINVALID:
		return http.StatusBadRequest
	case theater.ENOTFOUND:
		return http.StatusNotFound
	case theater.ECONFLICT:
		return http.StatusConflict
	case theater.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case theater.EFORBIDDEN:
		return http.StatusForbidden
	case theater.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// classify turns any error a handler meets into a domain error, so that
// exactly one code path decides what a client sees. Redis trouble is a 503
// whose message says nothing about Redis; a client that went away is
// reported as such to the log only.
func classify(err error) error {
	var te *theater.Error
	switch {
	case errors.As(err, &te):
		return err
	case errors.Is(err, redisx.ErrUnavailable), errors.Is(err, redisx.ErrOutOfMemory):
		// A full Redis is as unavailable to the client as a dead one; the
		// log line's error (err's text) says which: "redisx: redis out of
		// memory: OOM …" or "redisx: redis unavailable: …".
		return theater.Wrap(theater.EUNAVAILABLE, "a dependency is unavailable, retry shortly", err)
	case errors.Is(err, context.DeadlineExceeded):
		return theater.Wrap(theater.EUNAVAILABLE, "the request timed out, retry shortly", err)
	default:
		return theater.Wrap(theater.EINTERNAL, "internal error", err)
	}
}

// fail writes err as problem+json. The client gets the domain message (safe
// by construction); the cause goes to the request's log line.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	err = classify(err)
	status := statusOf(theater.ErrorCode(err))
	if info := infoFrom(r.Context()); info != nil && status >= 500 {
		info.err = err
	}
	detail := theater.ErrorMessage(err)
	if status == http.StatusInternalServerError {
		detail = "internal error"
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	problem.Write(w, problem.Details{Status: status, Detail: detail, Field: theater.ErrorField(err)})
}

// notFound is the answer for any unknown or malformed id: the same body
// whether the id is well formed or not, so probing learns nothing.
func notFound(w http.ResponseWriter, what string) {
	problem.Write(w, problem.Details{Status: http.StatusNotFound, Detail: what + " not found"})
}
