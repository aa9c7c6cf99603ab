package redisx_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/theaterscriptpro/tsp/redisx"
)

func mustKeys(tb testing.TB, prefix string) redisx.Keys {
	tb.Helper()
	k, err := redisx.NewKeys(prefix)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestKeysBuilders(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, "")
	long := strings.Repeat("x", 201)
	tests := []struct {
		name, got, want string
	}{
		{"Tagged", k.Tagged("script", "abc-DEF_1.2"), "tsp:script:{abc-DEF_1.2}"},
		{"Session", k.Session("tok"), "tsp:session:{tok}"},
		{"RateLimit", k.RateLimit("ip:203.0.113.9"), "tsp:ratelimit:{ip:203.0.113.9}"},
		{"Tagged with suffixes", k.Tagged("sessions", "u1", "index", "a:b", ""), "tsp:sessions:{u1}:index:a%3Ab:"},
		{"Join", k.Join("lock", "a:b", "c"), "tsp:lock:a%3Ab:c"},
		{"custom prefix", mustKeys(t, "prod:").Tagged("user", "1"), "prod:user:{1}"},

		{"glob star", k.Tagged("script", "a*b"), "tsp:script:{a%2Ab}"},
		{"glob question", k.Tagged("script", "?"), "tsp:script:{%3F}"},
		{"glob class", k.Tagged("script", "[a-z]"), "tsp:script:{%5Ba-z%5D}"},
		{"backslash", k.Tagged("script", `a\b`), "tsp:script:{a%5Cb}"},
		{"braces", k.Tagged("user", "{x}"), "tsp:user:{%7Bx%7D}"},
		{"lone closing brace", k.Tagged("user", "a}b"), "tsp:user:{a%7Db}"},
		{"space", k.Tagged("script", "a b"), "tsp:script:{a%20b}"},
		{"tab and newline", k.Tagged("script", "a\tb\r\n"), "tsp:script:{a%09b%0D%0A}"},
		{"NUL", k.Tagged("script", "a\x00"), "tsp:script:{a%00}"},
		{"DEL", k.Tagged("script", "\x7f"), "tsp:script:{%7F}"},
		{"percent", k.Tagged("script", "100%"), "tsp:script:{100%25}"},
		{"already escaped", k.Tagged("script", "%2A"), "tsp:script:{%252A}"},
		{"non-ASCII", k.Tagged("script", "é"), "tsp:script:{%C3%A9}"},
		{"invalid UTF-8", k.Tagged("script", "\xff"), "tsp:script:{%FF}"},
		{"empty id", k.Tagged("user", ""), "tsp:user:{%}"},
		{"200 bytes kept", k.Tagged("script", strings.Repeat("y", 200)), "tsp:script:{" + strings.Repeat("y", 200) + "}"},
		{"over 200 bytes hashed", k.Tagged("script", long), "tsp:script:{%sha256:" + sha256hex(long) + "}"},
		{"EscapeKeyPart", redisx.EscapeKeyPart("a b:{c}"), "a%20b:%7Bc%7D"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q; want %q", tt.got, tt.want)
			}
		})
	}
}

func TestNewKeysRejectsUnsafePrefixes(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"a{b", "a}", "t*", "a b", "a\x00", "é:", "%", strings.Repeat("p", 65)} {
		if _, err := redisx.NewKeys(p); err == nil {
			t.Errorf("NewKeys(%q) = nil error; want it refused", p)
		}
	}
	if k := mustKeys(t, ""); k.Prefix() != "tsp:" {
		t.Errorf("default prefix = %q; want tsp:", k.Prefix())
	}
}

func TestKeysPanicOnUnsafeNamespace(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, "")
	for _, ns := range []string{"a{b}", "x*", "a b", "x\n"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Tagged(%q, ...) did not panic; an unsafe namespace must never make a key", ns)
				}
			}()
			k.Tagged(ns, "id")
		}()
	}
}

// keyByteOK is the alphabet of a key: what Keys lets through, plus '%' of
// its escapes and the braces of the one hash tag.
func keyByteOK(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("-_.:/@+=&,!~#$();<>|^`'\"%{}", c) >= 0
}

// checkKey reports what is wrong with key: a byte outside the alphabet, or
// not exactly one non-empty hash tag.
func checkKey(key string) string {
	for i := 0; i < len(key); i++ {
		if !keyByteOK(key[i]) {
			return "unsafe byte " + string(rune(key[i]))
		}
	}
	open, close := strings.Count(key, "{"), strings.Count(key, "}")
	if open != 1 || close != 1 {
		return "not exactly one hash tag"
	}
	if i, j := strings.IndexByte(key, '{'), strings.IndexByte(key, '}'); j <= i+1 {
		return "empty or reversed hash tag (Redis would hash the whole key)"
	}
	return ""
}

// FuzzKeysEscaping: whatever the ids, every builder's key has only safe
// bytes and exactly one non-empty hash tag, and different ids (or
// different suffix lists) never give the same key.
func FuzzKeysEscaping(f *testing.F) {
	for _, s := range []string{"", "42", "a*b", "{x}", "}{", "%", "%25", "a:b", " ", "\x00", "é", "\xff", strings.Repeat("z", 201), "%sha256:00"} {
		f.Add(s, "other")
	}
	f.Add("a", "a%")
	f.Add("a:b", "a")
	k := mustKeys(f, "fz:")
	builders := map[string]func(string) string{
		"Session": k.Session, "RateLimit": func(s string) string { return k.RateLimit(s) },
		"RateLimit suffix": func(s string) string { return k.RateLimit("id", "name", s) },
		"Tagged":           func(s string) string { return k.Tagged("ns", s) },
		"Tagged tag":       func(s string) string { return k.Tagged("ns", s, "sfx") },
		"Tagged suffix":    func(s string) string { return k.Tagged("ns", "tag", s) },
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for name, build := range builders {
			ka := build(a)
			if p := checkKey(ka); p != "" {
				t.Fatalf("%s(%q) = %q: %s", name, a, ka, p)
			}
			if a != b && ka == build(b) {
				t.Fatalf("%s(%q) and %s(%q) are both %q; want different keys", name, a, name, b, ka)
			}
		}
		// Suffix lists: [a, b] never collides with the one suffix a+":"+b.
		two, one := k.Tagged("ns", "t", a, b), k.Tagged("ns", "t", a+":"+b)
		if two == one {
			t.Fatalf("Tagged suffixes [%q %q] and [%q] give the same key %q", a, b, a+":"+b, one)
		}
		if p := checkKey(two); p != "" {
			t.Fatalf("Tagged(ns, t, %q, %q) = %q: %s", a, b, two, p)
		}
	})
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
