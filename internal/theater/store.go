package theater

import "context"

// UserStore persists users. Implementations return ENOTFOUND for a missing
// user, ECONFLICT for a taken email, EUNAVAILABLE when the database is down
// or busy, and EINTERNAL for anything else.
type UserStore interface {
	// CreateUser stores a new user with the given password hash. n must have
	// passed Validate (or ValidateTrusted); the store checks it again with
	// ValidateTrusted, so its own invariants never rest on the caller. Emails
	// are unique compared case-insensitively: ECONFLICT on field "email".
	CreateUser(ctx context.Context, n NewUser, passwordHash string) (User, error)
	// UserByID returns the user with id, or ENOTFOUND.
	UserByID(ctx context.Context, id string) (User, error)
	// UserByEmail returns the user whose email matches case-insensitively
	// and the stored password hash, or ENOTFOUND.
	UserByEmail(ctx context.Context, email string) (User, string, error)
}

// ScriptStore persists scripts. Errors are classified as for UserStore.
// Authorisation (CanCreateScript, CanEditScript) is the caller's business:
// a store does what it is told.
type ScriptStore interface {
	// CreateScript validates in and stores a script by authorID (ENOTFOUND,
	// field "authorId", when there is no such user).
	CreateScript(ctx context.Context, authorID string, in ScriptInput) (Script, error)
	// ScriptByID returns the script with id, or ENOTFOUND.
	ScriptByID(ctx context.Context, id string) (Script, error)
	// UpdateScript validates in and replaces the writable fields of script
	// id, or returns ENOTFOUND.
	UpdateScript(ctx context.Context, id string, in ScriptInput) (Script, error)
	// DeleteScript removes script id, or returns ENOTFOUND. A script that
	// has licences is not deleted: ECONFLICT, because a licence is a record
	// of a deal that the licensee must still be able to see.
	DeleteScript(ctx context.Context, id string) error
	// ListScripts normalises f and returns one page of matching scripts in
	// f's order (ScriptFilter.Sort), with the total number of matches
	// (exact up to MaxExactTotal) and the cursor of the next page. A cursor
	// that is malformed, forged or from another filter is EINVALID on field
	// "cursor". An author's scripts are the list with f.AuthorID; an unknown
	// author has none (not an error). A query's words are its runs of
	// letters and digits; one with none ("!!!") matches nothing.
	ListScripts(ctx context.Context, f ScriptFilter) (ScriptPage, error)
}

// LicenseStore persists licences.
type LicenseStore interface {
	// CreateLicense validates in against the current time and stores a
	// licence of scriptID for userID: ENOTFOUND (field "scriptId") when the
	// script does not exist, ENOTFOUND (field "userId") when the user
	// does not.
	CreateLicense(ctx context.Context, scriptID, userID string, in LicenseInput) (License, error)
	// LicensesByUser returns userID's licences, newest first.
	LicensesByUser(ctx context.Context, userID string) ([]License, error)
}
