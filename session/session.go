package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Session is one signed-in device of a user, as Redis holds it.
type Session struct {
	// ID is the session's public, random id: it names the session in
	// GET/DELETE /api/sessions. It is neither the token nor derived from it,
	// and it stays the same across Rotate.
	ID string `json:"id"`

	UserID string `json:"userId"`
	Email  string `json:"email,omitempty"`
	Role   string `json:"role,omitempty"`

	CreatedAt time.Time `json:"createdAt"`
	// LastSeenAt is the last activity that was written: lookups within
	// Config.TouchInterval of it do not move it.
	LastSeenAt time.Time `json:"lastSeenAt"`
	// IdleExpiresAt is when the session ends unless used again; it is
	// never after ExpiresAt.
	IdleExpiresAt time.Time `json:"idleExpiresAt"`
	// ExpiresAt is the absolute end, fixed at creation.
	ExpiresAt time.Time `json:"expiresAt"`

	UserAgent string            `json:"userAgent,omitempty"`
	IP        string            `json:"ip,omitempty"`
	Attrs     map[string]string `json:"attrs,omitempty"`

	// version counts Updates, for compare-and-set.
	version string
}

// NewSession is what Create needs: the original guide's
// create(userId, email, role) plus the device's details.
type NewSession struct {
	UserID    string // required; see ValidUserID
	Email     string
	Role      string
	UserAgent string // cut to MaxUserAgent bytes
	IP        string
	Attrs     map[string]string
}

// Limits on what a session may carry, so no client and no bug can make a
// session big: every session costs Redis memory until it expires.
const (
	MaxEmail     = 254
	MaxRole      = 64
	MaxUserAgent = 512
	MaxIP        = 64
	MaxAttrs     = 32
	MaxAttrKey   = 64
	MaxAttrValue = 1024
	MaxAttrBytes = 4096 // keys and values together
)

var (
	// ErrNotFound reports that a token names no live session: malformed,
	// never issued, expired, deleted, rotated or revoked. These are one
	// error on purpose: a caller learns nothing about which.
	ErrNotFound = errors.New("session: not found")

	// ErrInvalid reports a NewSession or an Update that breaks a limit;
	// the message names the field.
	ErrInvalid = errors.New("session: invalid")

	// ErrConflict reports that Update lost the compare-and-set more times
	// than it retries: the session is being changed by many writers.
	ErrConflict = errors.New("session: concurrent update conflict")
)

// record is the part of a session that Create and Update write, as it is
// stored: JSON after the header the scripts read (see scripts.go).
type record struct {
	Email     string            `json:"em,omitempty"`
	Role      string            `json:"ro,omitempty"`
	UserAgent string            `json:"ua,omitempty"`
	IP        string            `json:"ip,omitempty"`
	Attrs     map[string]string `json:"at,omitempty"`
}

// encodeRecord checks the data against the limits (cutting the user
// agent) and returns it cleaned and encoded.
func encodeRecord(email, role, ua, ip string, attrs map[string]string) (record, string, error) {
	bad := func(format string, args ...any) (record, string, error) {
		return record{}, "", fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if len(email) > MaxEmail || !utf8.ValidString(email) || hasControl(email) {
		return bad("Email: at most %d bytes of printable UTF-8", MaxEmail)
	}
	if len(role) > MaxRole || !utf8.ValidString(role) || hasControl(role) {
		return bad("Role: at most %d bytes of printable UTF-8", MaxRole)
	}
	if len(ip) > MaxIP || hasControl(ip) || !utf8.ValidString(ip) {
		return bad("IP: at most %d bytes of printable UTF-8", MaxIP)
	}
	if err := checkAttrs(attrs); err != nil {
		return record{}, "", err
	}
	// The user agent is the client's to choose: cut it down rather than
	// refuse a sign-in over it.
	rec := record{Email: email, Role: role, UserAgent: cleanUserAgent(ua), IP: ip}
	if len(attrs) > 0 {
		rec.Attrs = attrs
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return bad("%v", err)
	}
	return rec, string(b), nil
}

func cleanUserAgent(ua string) string {
	ua = strings.ToValidUTF8(ua, "")
	ua = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, ua)
	if len(ua) > MaxUserAgent {
		ua = ua[:MaxUserAgent]
		for !utf8.ValidString(ua) { // do not cut a character in half
			ua = ua[:len(ua)-1]
		}
	}
	return ua
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// checkAttrs checks attrs against the limits.
func checkAttrs(attrs map[string]string) error {
	if len(attrs) == 0 {
		return nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if len(attrs) > MaxAttrs {
		return bad("Attrs: at most %d entries, got %d", MaxAttrs, len(attrs))
	}
	size := 2
	for k, v := range attrs {
		if k == "" || len(k) > MaxAttrKey || !utf8.ValidString(k) || hasControl(k) {
			return bad("Attrs: keys must be 1 to %d bytes of printable UTF-8", MaxAttrKey)
		}
		if len(v) > MaxAttrValue || !utf8.ValidString(v) {
			return bad("Attrs[%q]: at most %d bytes of UTF-8", k, MaxAttrValue)
		}
		size += len(k) + len(v) + 6 // quotes, colon, comma
	}
	if size > MaxAttrBytes {
		return bad("Attrs: at most %d bytes in all, got about %d", MaxAttrBytes, size)
	}
	return nil
}
