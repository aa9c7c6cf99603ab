package session

import (
	"encoding/base64"
	"strings"
	"testing"
)

// validSecret is a canonical 43-character base64url secret.
var validSecret = base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func TestParseToken(t *testing.T) {
	t.Parallel()
	good, _ := mintToken("u1")
	// The last character of 32 bytes carries 2 unused bits; flipping one
	// gives a string a loose decoder maps to the same secret.
	nonCanonical := validSecret[:42] + string(b64Alphabet[strings.IndexByte(b64Alphabet, validSecret[42])^1])
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"minted", good, true},
		{"fixed", "user_1-x." + validSecret, true},
		{"longest user id", strings.Repeat("a", MaxUserIDLen) + "." + validSecret, true},
		{"empty", "", false},
		{"dot only", ".", false},
		{"no user", "." + validSecret, false},
		{"no dot", "u1" + validSecret, false},
		{"no secret", "u1.", false},
		{"truncated", good[:len(good)-1], false},
		{"truncated to user", "u1.abc", false},
		{"over-long secret", good + "A", false},
		{"over-long user", strings.Repeat("a", MaxUserIDLen+1) + "." + validSecret, false},
		{"huge", strings.Repeat("a", 1<<16), false},
		{"padding", "u1." + validSecret + "=", false},
		{"padding inside", "u1." + validSecret[:42] + "=", false},
		{"std alphabet plus", "u1." + validSecret[:10] + "+" + validSecret[11:], false},
		{"std alphabet slash", "u1." + validSecret[:10] + "/" + validSecret[11:], false},
		{"newline in secret", "u1." + validSecret[:10] + "\n" + validSecret[11:], false},
		{"cr in secret", "u1." + validSecret[:42] + "\r", false},
		{"space", "u1." + validSecret[:10] + " " + validSecret[11:], false},
		{"two dots", "u.1." + validSecret, false},
		{"user with brace", "u{1}." + validSecret, false},
		{"user with colon", "u:1." + validSecret, false},
		{"user with star", "u*." + validSecret, false},
		{"unicode user", "ü1." + validSecret, false},
		{"nul", "u1\x00." + validSecret, false},
		{"leading space", " u1." + validSecret, false},
		{"trailing space", "u1." + validSecret + " ", false},
		{"non-canonical last char", "u1." + nonCanonical, false},
		{"bearer prefix kept", "Bearer u1." + validSecret, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, hash, ok := parseToken(tt.token)
			if ok != tt.ok {
				t.Fatalf("parseToken(%q): got ok %v, want %v", tt.token, ok, tt.ok)
			}
			if !ok {
				if uid != "" || hash != "" {
					t.Errorf("got %q %q on failure, want empty", uid, hash)
				}
				return
			}
			if len(hash) != 43 || strings.Trim(hash, b64Alphabet) != "" {
				t.Errorf("got hash %q, want 43 base64url characters", hash)
			}
			if !strings.HasPrefix(tt.token, uid+".") {
				t.Errorf("got user %q, want the part before the dot", uid)
			}
		})
	}
}

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func TestMintTokenRoundTrip(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		tok, hash := mintToken("abc")
		uid, h, ok := parseToken(tok)
		if !ok || uid != "abc" || h != hash {
			t.Fatalf("parseToken(mint): got %q %q %v, want abc %q true", uid, h, ok, hash)
		}
		if strings.Contains(hash, tok[4:]) || seen[tok] {
			t.Fatalf("token repeated or hash contains the secret")
		}
		seen[tok] = true
	}
}

func TestNewIDShape(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := newID()
		if !ValidID(id) || seen[id] {
			t.Fatalf("newID: got %q (valid %v, repeated %v)", id, ValidID(id), seen[id])
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "abc", strings.Repeat("a", 17), strings.Repeat("a", 15) + "/", strings.Repeat("a", 15) + ":", strings.Repeat("a", 15) + "="} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q): got true, want false", bad)
		}
	}
}

func TestValidUserID(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		id string
		ok bool
	}{
		{"u1", true}, {"abcdefghijklmnop", true}, {"A-b_9", true}, {strings.Repeat("z", 64), true},
		{"", false}, {strings.Repeat("z", 65), false}, {"a.b", false}, {"a b", false}, {"a{b}", false},
		{"a:b", false}, {"a*", false}, {"é", false}, {"a\n", false}, {"a%41", false},
	} {
		if got := ValidUserID(tt.id); got != tt.ok {
			t.Errorf("ValidUserID(%q): got %v, want %v", tt.id, got, tt.ok)
		}
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	tok, _ := mintToken("u1")
	fp := Fingerprint(tok)
	if len(fp) != 12 || strings.Contains(tok, fp) {
		t.Errorf("Fingerprint: got %q, want 12 hex digits not found in the token", fp)
	}
	if Fingerprint(tok) != fp {
		t.Errorf("Fingerprint is not stable")
	}
}

// FuzzParseToken checks that the parser never panics, accepts exactly the
// canonical form (one spelling per secret) and bounds what it accepts.
func FuzzParseToken(f *testing.F) {
	good, _ := mintToken("u1")
	for _, s := range []string{
		good, "", ".", "u1.", "u1." + validSecret, "u1." + validSecret + "=", "u1." + validSecret[:42],
		"u{1}." + validSecret, strings.Repeat("a", 64) + "." + validSecret, strings.Repeat("a", 65) + "." + validSecret,
		"u1." + validSecret[:10] + "\n" + validSecret[11:], "Bearer " + good, "\x00\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		uid, hash, ok := parseToken(token)
		if !ok {
			if uid != "" || hash != "" {
				t.Fatalf("failure returned data")
			}
			return
		}
		if len(token) > maxTokenLen || !ValidUserID(uid) || len(hash) != 43 {
			t.Fatalf("accepted %q: user %q hash %q", token, uid, hash)
		}
		secret, err := base64.RawURLEncoding.DecodeString(token[len(uid)+1:])
		if err != nil || len(secret) != secretBytes {
			t.Fatalf("accepted a secret that does not decode to %d bytes: %q", secretBytes, token)
		}
		// Canonical: re-encoding the decoded secret gives the token back.
		if again := uid + "." + base64.RawURLEncoding.EncodeToString(secret); again != token {
			t.Fatalf("accepted non-canonical %q (canonical %q)", token, again)
		}
		if u2, h2, ok2 := parseToken(token); !ok2 || u2 != uid || h2 != hash {
			t.Fatalf("parseToken is not deterministic")
		}
	})
}
