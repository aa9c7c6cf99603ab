package theater

import "time"

// LicenseType says what a licence allows.
type LicenseType string

// Licence types: perusal is reading the script (no performances needed);
// performance is staging it a number of times within a period.
const (
	LicensePerusal     LicenseType = "perusal"
	LicensePerformance LicenseType = "performance"
)

// License grants a user (usually a producer) a right to a script.
type License struct {
	ID           string      `json:"id"`
	ScriptID     string      `json:"scriptId"`
	UserID       string      `json:"userId"`
	Type         LicenseType `json:"type"`
	Performances int         `json:"performances"`
	StartsAt     time.Time   `json:"startsAt"`
	EndsAt       time.Time   `json:"endsAt"`
	CreatedAt    time.Time   `json:"createdAt"`
}

// Licence limits.
const (
	MaxPerformances = 10000
	// PerusalPeriod is how long a perusal licence lasts when the request
	// gives no endsAt: long enough to read and decide, short enough that
	// "perusal forever" is an explicit choice.
	PerusalPeriod = 90 * 24 * time.Hour
	// MaxLicensePeriod bounds endsAt-startsAt, and keeps every timestamp
	// well inside the years RFC 3339 (and JSON encoding of time.Time) can
	// represent.
	MaxLicensePeriod = 10 * 366 * 24 * time.Hour
)

// LicenseInput is a licence request.
type LicenseInput struct {
	Type         LicenseType `json:"type"`
	Performances int         `json:"performances"`
	StartsAt     time.Time   `json:"startsAt"`
	EndsAt       time.Time   `json:"endsAt"`
}

// Validate normalises in in place and checks it against now, which is a
// parameter so tests need no clock. A zero StartsAt means now; a perusal
// licence with a zero EndsAt lasts PerusalPeriod. A performance licence needs
// at least one performance and an EndsAt that is in the future and after
// StartsAt; a perusal licence may have 0 performances. Times are converted to
// UTC and truncated to milliseconds, the precision every store keeps.
func (in *LicenseInput) Validate(now time.Time) error {
	now = Timestamp(now)
	switch in.Type {
	case LicensePerusal, LicensePerformance:
	default:
		return Invalid("type", "must be perusal or performance")
	}
	if in.Performances < 0 || in.Performances > MaxPerformances {
		return Invalid("performances", "must be 0 to 10000")
	}
	if in.Type == LicensePerformance && in.Performances < 1 {
		return Invalid("performances", "must be at least 1 for a performance licence")
	}
	if in.StartsAt.IsZero() {
		in.StartsAt = now
	}
	in.StartsAt = Timestamp(in.StartsAt)
	if d := in.StartsAt.Sub(now); d > MaxLicensePeriod || d < -MaxLicensePeriod {
		return Invalid("startsAt", "must be within 10 years of now")
	}
	if in.EndsAt.IsZero() {
		if in.Type == LicensePerformance {
			return Invalid("endsAt", "is required for a performance licence")
		}
		in.EndsAt = in.StartsAt.Add(PerusalPeriod)
	}
	in.EndsAt = Timestamp(in.EndsAt)
	if !in.EndsAt.After(in.StartsAt) {
		return Invalid("endsAt", "must be after startsAt")
	}
	if !in.EndsAt.After(now) {
		return Invalid("endsAt", "must be in the future")
	}
	if in.EndsAt.Sub(in.StartsAt) > MaxLicensePeriod {
		return Invalid("endsAt", "must be at most 10 years after startsAt")
	}
	return nil
}

// Timestamp returns t in UTC truncated to milliseconds: the form in which every
// timestamp of the domain is created, so that a value read back from any
// store equals the value written (PostgreSQL keeps microseconds, SQLite what
// we format, JSON what RFC 3339 carries).
func Timestamp(t time.Time) time.Time {
	return t.UTC().Truncate(time.Millisecond)
}
