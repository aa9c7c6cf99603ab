package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/redisx"
)

// LicensesTTL is how long a user's licence list stays in the cache-aside
// entry licenses:user:{id}; creating a licence deletes it at once.
const LicensesTTL = time.Hour

// licenseRequest is the body of POST /api/scripts/{id}/licenses. Timestamps
// are strings so that a bad one is reported under its own field name.
type licenseRequest struct {
	Type         theater.LicenseType `json:"type"`
	Performances int                 `json:"performances"`
	StartsAt     string              `json:"startsAt"`
	EndsAt       string              `json:"endsAt"`
}

func parseTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, theater.Invalid(field, "must be an RFC 3339 timestamp such as 2030-01-31T19:30:00Z")
	}
	return t, nil
}

func (lr licenseRequest) input() (theater.LicenseInput, error) {
	in := theater.LicenseInput{Type: lr.Type, Performances: lr.Performances}
	var err error
	if in.StartsAt, err = parseTime("startsAt", lr.StartsAt); err != nil {
		return in, err
	}
	if in.EndsAt, err = parseTime("endsAt", lr.EndsAt); err != nil {
		return in, err
	}
	return in, nil
}

// licenseList is the body of GET /api/licenses.
type licenseList struct {
	Items []theater.License `json:"items"`
}

func (s *Server) createLicense(w http.ResponseWriter, r *http.Request) {
	u, ok := s.requireUser(w, r)
	if !ok {
		return
	}
	var body licenseRequest
	if !s.readBody(w, r, &body) {
		return
	}
	in, err := body.input()
	if err == nil {
		err = in.Validate(s.now())
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	l, err := s.deps.Licenses.CreateLicense(r.Context(), r.PathValue("id"), u.ID, in)
	if err != nil {
		if theater.ErrorCode(err) == theater.ENOTFOUND && theater.ErrorField(err) == "scriptId" {
			notFound(w, "script")
			return
		}
		s.fail(w, r, err)
		return
	}
	// The list is dropped before the client hears of the licence, so its
	// next GET /api/licenses cannot be served the list without it.
	// Invalidate (not Delete) also stops a list load that began before the
	// licence existed from storing its result afterwards.
	if err := s.rdb.Invalidate(r.Context(), s.keys.LicensesByUser(u.ID)); err != nil {
		s.fail(w, r, err)
		return
	}
	private(w)
	s.writeJSON(w, r, http.StatusCreated, l)
}

func (s *Server) listLicenses(w http.ResponseWriter, r *http.Request) {
	u, ok := s.requireUser(w, r)
	if !ok {
		return
	}
	items, err := redisx.Cache(r.Context(), s.rdb, s.keys.LicensesByUser(u.ID), LicensesTTL,
		func(ctx context.Context) ([]theater.License, error) {
			ls, err := s.deps.Licenses.LicensesByUser(ctx, u.ID)
			if ls == nil {
				ls = []theater.License{}
			}
			return ls, err
		})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	private(w)
	s.writeJSON(w, r, http.StatusOK, licenseList{Items: items})
}
