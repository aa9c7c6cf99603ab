package theater

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// IDLen is the length of every id NewID makes: 10 random bytes (80 bits) in
// base32 are exactly 16 characters, so no padding is ever needed.
const IDLen = 16

// idEncoding is a value, not a package variable, so nothing can swap it.
func idEncoding() *base32.Encoding {
	return base32.StdEncoding.WithPadding(base32.NoPadding)
}

// NewID returns a new opaque id: 16 characters of lowercase base32
// ([a-z2-7]) from 80 bits of crypto/rand. The alphabet has no character that
// means something in a URL path, a Redis key (':'), a Redis glob ('*', '?',
// '[') or a cluster hash tag ('{'), so ids can be put anywhere unescaped.
// 80 bits make a collision negligible (birthday bound ~1e12 ids) and an id
// unguessable enough that enumeration gives nothing away.
func NewID() string {
	var b [10]byte
	// crypto/rand.Read never returns an error since Go 1.24; it crashes the
	// program rather than hand out predictable bytes.
	_, _ = rand.Read(b[:])
	return strings.ToLower(idEncoding().EncodeToString(b[:]))
}

// ValidID reports whether s has the shape of an id NewID makes. Handlers use
// it to answer 404 for a malformed id without touching any store, and so that
// no hostile string ever reaches a cache key.
func ValidID(s string) bool {
	if len(s) != IDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}
