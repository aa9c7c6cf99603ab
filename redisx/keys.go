package redisx

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// MaxKeyPart is the longest id or identifier put into a key as it is. A
// longer one is replaced by its SHA-256, so no caller can make huge keys.
const MaxKeyPart = 200

// Keys builds every key the service writes, under one configurable prefix,
// following the original guide's conventions: namespace:{id}. The toolkit's
// own keys have names here (Session, RateLimit); an application names its
// keys with Tagged and Join (the server's user:{id}, script:{id},
// licenses:user:{id} and views:script:{id} live in internal/httpapi).
//
// The braces are meant literally: the id is the key's Redis Cluster hash
// tag. So every key about one user (their profile, scripts, licences and
// sessions) lives on one slot and a Lua script may touch them together,
// while different users, scripts and clients spread over all masters.
//
// Ids are escaped, never passed through: bytes that could break a key or a
// glob pattern (braces, *?[]\, white space, control bytes, '%', non-ASCII)
// become %XX, and a part longer than MaxKeyPart becomes "%sha256:" and its
// hash; an empty id becomes "%" (Redis ignores an empty hash tag), and in
// suffixes ':' is escaped too. Escaping is injective, so two different ids
// (or lists of suffixes) never share a key, and every key has exactly one
// non-empty hash tag (FuzzKeysEscaping checks all three).
type Keys struct {
	prefix string
}

// NewKeys returns a key builder with the given prefix ("" means "tsp:").
// The prefix must be made of safe characters (see Config.KeyPrefix).
func NewKeys(prefix string) (Keys, error) {
	if prefix == "" {
		prefix = defaultKeyPrefix
	}
	if err := checkKeyPrefix(prefix); err != nil {
		return Keys{}, err
	}
	return Keys{prefix: prefix}, nil
}

// Prefix returns the prefix every key starts with.
func (k Keys) Prefix() string { return k.prefix }

// Session is the key of one session: session:{id}.
func (k Keys) Session(id string) string { return k.Tagged("session", id) }

// RateLimit is the key of one limiter identifier: ratelimit:{identifier},
// then :suffix for each suffix (package ratelimit adds the limiter and
// policy names), all under the identifier's hash tag.
func (k Keys) RateLimit(identifier string, suffixes ...string) string {
	return k.Tagged("ratelimit", identifier, suffixes...)
}

// Tagged builds prefix + namespace + ":{" + tag + "}" and then ":"+suffix for
// each suffix. The tag and suffixes are escaped (suffixes also escape ':',
// so different lists of suffixes never give the same key); an empty tag
// becomes "%", since Redis ignores an empty hash tag "{}". namespace is a
// constant chosen by the program: it panics if namespace holds a byte that
// is not safe in a key (a brace would add a second hash tag).
func (k Keys) Tagged(namespace, tag string, suffixes ...string) string {
	checkNamespace(namespace)
	var b strings.Builder
	n := len(k.prefix) + len(namespace) + len(tag) + 4
	for _, s := range suffixes {
		n += len(s) + 1
	}
	b.Grow(n)
	b.WriteString(k.prefix)
	b.WriteString(namespace)
	b.WriteString(":{")
	if tag == "" {
		b.WriteByte('%')
	} else {
		writeEscaped(&b, tag, false)
	}
	b.WriteByte('}')
	for _, s := range suffixes {
		b.WriteByte(':')
		writeEscaped(&b, s, true)
	}
	return b.String()
}

// Join builds prefix + namespace + ":" + each part escaped (':' included),
// joined by ":", with no hash tag: for keys that are never used beside
// others atomically. It panics on an unsafe namespace, as Tagged does.
func (k Keys) Join(namespace string, parts ...string) string {
	checkNamespace(namespace)
	var b strings.Builder
	b.WriteString(k.prefix)
	b.WriteString(namespace)
	for _, p := range parts {
		b.WriteByte(':')
		writeEscaped(&b, p, true)
	}
	return b.String()
}

// EscapeKeyPart returns s as Keys puts it into a key as its hash tag.
func EscapeKeyPart(s string) string {
	var b strings.Builder
	writeEscaped(&b, s, false)
	return b.String()
}

// checkNamespace panics on a namespace that could break a key: it is
// always a constant in the program, so this is a bug, found by any test
// that builds the key.
func checkNamespace(ns string) {
	for i := 0; i < len(ns); i++ {
		if !safeKeyByte(ns[i]) {
			panic("redisx: key namespace " + strconv.Quote(ns) + " has a byte that is not safe in a key")
		}
	}
}

// safeKeyByte lists what may stand in a key as it is: none of these has a
// meaning in a glob pattern (*?[]\), a hash tag ({}) or the RESP protocol,
// and none is white space, a control byte, '%' (the escape) or non-ASCII.
func safeKeyByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', ':', '/', '@', '+', '=', '&', ',', '!', '~', '#', '$', '(', ')', ';', '<', '>', '|', '^', '`', '\'', '"':
		return true
	}
	return false
}

const hexDigits = "0123456789ABCDEF"

// writeEscaped writes s with every unsafe byte (and ':' when escColon) as
// %XX, or, when s is longer than MaxKeyPart, "%sha256:" and its hash.
// '%' followed by 's' never comes out of escaping (every escaped '%' is
// followed by two hex digits), so a hashed part cannot equal an escaped one.
func writeEscaped(b *strings.Builder, s string, escColon bool) {
	if len(s) > MaxKeyPart {
		sum := sha256.Sum256([]byte(s))
		b.WriteString("%sha256:")
		b.WriteString(hex.EncodeToString(sum[:]))
		return
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if safeKeyByte(c) && !(escColon && c == ':') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
}
