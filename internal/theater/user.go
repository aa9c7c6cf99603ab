package theater

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Role is what a user may do. It is stored and sent as its string value.
type Role string

// Roles. Producers license scripts, playwrights publish them, admins may edit
// anything. Admin is never self-assigned: see NewUser.Validate.
const (
	RoleProducer   Role = "producer"
	RolePlaywright Role = "playwright"
	RoleAdmin      Role = "admin"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleProducer, RolePlaywright, RoleAdmin:
		return true
	}
	return false
}

// User is an account as clients see it. It deliberately has no password
// field, so it can be encoded to JSON anywhere without leaking a hash.
type User struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
}

// Limits on user input.
const (
	MaxEmailLen    = 254 // RFC 5321's limit on a forward path, in bytes
	MinPasswordLen = 8   // NIST SP 800-63B, in characters
	MaxPasswordLen = 128 // bounds the hashing work one request can cause
	MaxNameLen     = 100
)

// NewUser is a registration request. Password is the plain text; the caller
// hashes it (package password) after Validate and hands the store the hash.
type NewUser struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
	Role     Role   `json:"role"`
}

// Validate normalises n in place (trims email and name, lower-cases the
// email) and checks it for public registration, where the role may only be
// producer or playwright. The error names the failing field.
func (n *NewUser) Validate() error {
	if err := n.validate(); err != nil {
		return err
	}
	if n.Role != RoleProducer && n.Role != RolePlaywright {
		return Invalid("role", "must be producer or playwright")
	}
	return nil
}

// ValidateTrusted is Validate for operator tooling (seeding, a CLI) that may
// also create admins. Never call it on a request body.
func (n *NewUser) ValidateTrusted() error {
	if err := n.validate(); err != nil {
		return err
	}
	if !n.Role.Valid() {
		return Invalid("role", "must be producer, playwright or admin")
	}
	return nil
}

func (n *NewUser) validate() error {
	n.Email = NormalizeEmail(n.Email)
	if err := checkEmail(n.Email); err != nil {
		return err
	}
	if err := CheckPassword(n.Password); err != nil {
		return err
	}
	n.Name = strings.TrimSpace(n.Name)
	return checkText("name", n.Name, 1, MaxNameLen, false)
}

// NormalizeEmail returns the form of an address used for storage and
// comparison: trimmed and lower-cased. Lower-casing the local part is not
// what RFC 5321 says, but it is what every user expects ("Ann@x.org" and
// "ann@x.org" are one account), and it makes uniqueness one index.
func NormalizeEmail(s string) string {
	return strings.ToLower(strings.TrimSpace(s))
}

// checkEmail is a shape check, not RFC 5322: something@domain.tld, no spaces
// or control characters, one '@'. Whether the address exists is the business
// of a confirmation mail, not a regular expression.
func checkEmail(s string) error {
	if s == "" {
		return Invalid("email", "must not be empty")
	}
	if len(s) > MaxEmailLen {
		return Invalid("email", "must be at most 254 bytes")
	}
	if !utf8.ValidString(s) {
		return Invalid("email", "must be valid UTF-8")
	}
	at := strings.IndexByte(s, '@')
	if at <= 0 || at != strings.LastIndexByte(s, '@') || at > 64 {
		return Invalid("email", "must look like name@example.org")
	}
	domain := s[at+1:]
	if dot := strings.LastIndexByte(domain, '.'); dot <= 0 || dot == len(domain)-1 ||
		strings.HasPrefix(domain, ".") || strings.Contains(domain, "..") {
		return Invalid("email", "must look like name@example.org")
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '\u2028' || r == '\u2029' || r == '<' || r == '>' || r == ',' || r == ';' {
			return Invalid("email", "must look like name@example.org")
		}
	}
	return nil
}

// CheckPassword applies NIST SP 800-63B: 8 to 128 characters counted as
// runes, any characters at all (spaces and emoji included), no composition
// rules. Invalid UTF-8 is refused because its length in characters is
// meaningless. The password is never trimmed: every character counts.
func CheckPassword(p string) error {
	if !utf8.ValidString(p) {
		return Invalid("password", "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(p); n < MinPasswordLen || n > MaxPasswordLen {
		return Invalid("password", "must be 8 to 128 characters")
	}
	return nil
}

// CanCreateScript reports whether u may publish scripts: playwrights and
// admins.
func CanCreateScript(u User) bool {
	return u.Role == RolePlaywright || u.Role == RoleAdmin
}

// CanEditScript reports whether u may update or delete s: its author or an
// admin. An empty user id never matches, so a zero User can edit nothing.
func CanEditScript(u User, s Script) bool {
	if u.ID == "" {
		return false
	}
	return u.Role == RoleAdmin || u.ID == s.AuthorID
}
