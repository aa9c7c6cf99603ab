// Package theater is the domain of Theater Script Pro: users, scripts and
// licences, the rules their input must follow, who may do what, the one
// error type every layer speaks, and the storage interfaces the HTTP layer
// uses. It imports only the standard library, so every other package can
// depend on it and it depends on none of them.
//
// Input is validated by methods that normalise in place and return an *Error
// whose Field names the failing JSON field:
//
//	in := theater.ScriptInput{Title: " Hamlet ", Genre: "Tragedy", CastMin: 8, CastMax: 20, DurationMinutes: 240}
//	if err := in.Validate(); err != nil {
//		// theater.ErrorCode(err) == theater.EINVALID, theater.ErrorField(err) names the field
//	}
//	// in.Title == "Hamlet", in.Genre == "tragedy", in.Language == "en"
//
// Errors carry a code that the HTTP layer maps to a status in one table, a
// message that is safe to show to clients, and (for storage failures) a cause
// that only logs see:
//
//	switch theater.ErrorCode(err) {
//	case theater.ENOTFOUND: // 404
//	case theater.EUNAVAILABLE: // 503
//	}
//
// Every id is made by NewID and checked by ValidID before it reaches a store
// or a cache key. Every timestamp is UTC truncated to milliseconds
// (Timestamp), so a value read back from a store equals the value written.
package theater
