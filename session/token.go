package session

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

const (
	// secretBytes is the token's entropy: 256 bits from crypto/rand, twice
	// what OWASP ASVS v5 7.2.3 asks for.
	secretBytes = 32
	// secretLen is secretBytes in unpadded base64url.
	secretLen = 43
	// MaxUserIDLen is the longest user id a session may belong to.
	MaxUserIDLen = 64
	// maxTokenLen bounds the token before anything else is looked at.
	maxTokenLen = MaxUserIDLen + 1 + secretLen
	// idBytes makes the public session id: 96 random bits, 16 characters.
	idBytes = 12
	idLen   = 16
)

// b64 is strict: of the four spellings of the last character that a loose
// decoder maps to the same bytes, only the canonical one is accepted, so
// one secret has exactly one token.
func b64() *base64.Encoding { return base64.RawURLEncoding.Strict() }

// ValidUserID reports whether id can own sessions: 1 to MaxUserIDLen
// characters of [A-Za-z0-9_-]. Ids are put in tokens and Redis hash tags,
// so nothing else is accepted.
func ValidUserID(id string) bool {
	if len(id) == 0 || len(id) > MaxUserIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !isB64URL(id[i]) {
			return false
		}
	}
	return true
}

// ValidID reports whether id has the shape of a public session id
// (Session.ID). Handlers use it to answer 404 without touching Redis.
func ValidID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !isB64URL(id[i]) {
			return false
		}
	}
	return true
}

func isB64URL(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// mintToken returns a fresh token for userID and the SHA-256 of its
// secret, which is all Redis ever sees.
func mintToken(userID string) (token, hash string) {
	var secret [secretBytes]byte
	// crypto/rand.Read never fails since Go 1.24: it crashes the program
	// rather than return predictable bytes.
	_, _ = rand.Read(secret[:])
	var b strings.Builder
	b.Grow(len(userID) + 1 + secretLen)
	b.WriteString(userID)
	b.WriteByte('.')
	var enc [secretLen]byte
	b64().Encode(enc[:], secret[:])
	b.Write(enc[:])
	return b.String(), hashSecret(&secret)
}

// parseToken checks a token's shape strictly (length, alphabet, canonical
// base64url of exactly 32 bytes) before anything touches Redis, and returns
// the user it claims and the hash of its secret. The claim is checked by
// the lookup: the secret's hash is looked up under that user only.
func parseToken(token string) (userID, hash string, ok bool) {
	if len(token) < 1+1+secretLen || len(token) > maxTokenLen {
		return "", "", false
	}
	dot := len(token) - secretLen - 1
	if token[dot] != '.' {
		return "", "", false
	}
	userID, enc := token[:dot], token[dot+1:]
	if !ValidUserID(userID) {
		return "", "", false
	}
	// The alphabet is checked by hand: the base64 decoder skips \r and \n.
	for i := 0; i < len(enc); i++ {
		if !isB64URL(enc[i]) {
			return "", "", false
		}
	}
	var secret [secretBytes]byte
	n, err := b64().Decode(secret[:], []byte(enc))
	if err != nil || n != secretBytes {
		return "", "", false
	}
	return userID, hashSecret(&secret), true
}

// hashSecret is the SHA-256 of the secret in base64url (43 characters):
// shorter than hex, so the index member "<id>:<hash>" stays within the
// 64 bytes that keep a Redis sorted set in its compact encoding.
func hashSecret(secret *[secretBytes]byte) string {
	sum := sha256.Sum256(secret[:])
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// newID returns a public session id: random, unrelated to the token, so
// showing it (GET /api/sessions) or logging it gives nothing away.
func newID() string {
	var b [idBytes]byte
	_, _ = rand.Read(b[:])
	return b64().EncodeToString(b[:])
}

// Fingerprint returns a short, non-reversible tag of token for logs and
// traces: the first 12 hex digits of its SHA-256. It is the only form in
// which a token may be written anywhere.
func Fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:6])
}
