package httpcache

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// computeETag returns a strong entity-tag for a stored representation: a
// hash of the body and of the metadata that changes its bytes' meaning
// (Content-Type, Content-Encoding), so two representations that differ in
// any of them never share a validator. It is computed once, when stored.
func computeETag(contentType, contentEncoding string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(contentType))
	h.Write([]byte{0})
	h.Write([]byte(contentEncoding))
	h.Write([]byte{0})
	h.Write(body)
	var sum [sha256.Size]byte
	// 128 bits keep accidental collisions out of reach; the rest only
	// lengthens every response.
	return `"` + base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0])[:16]) + `"`
}

// validETag reports whether s is an entity-tag (RFC 9110 8.8.3):
// [W/] DQUOTE *etagc DQUOTE.
func validETag(s string) bool {
	s = strings.TrimPrefix(s, "W/")
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if !isETagChar(s[i]) {
			return false
		}
	}
	return true
}

// isETagChar: etagc = %x21 / %x23-7E / obs-text.
func isETagChar(c byte) bool { return c == 0x21 || 0x23 <= c && c <= 0x7e || c >= 0x80 }

// noneMatch reports whether the If-None-Match field values match etag, by
// the weak comparison RFC 9110 13.1.2 prescribes for If-None-Match: "*"
// matches any current representation, and a listed entity-tag matches when
// its opaque part equals etag's, W/ or not. A malformed list matches only
// as far as it parsed, so a broken header never turns into a 304 by accident.
func noneMatch(fields []string, etag string) bool {
	want := strings.TrimPrefix(etag, "W/")
	for _, f := range fields {
		for f != "" {
			f = strings.TrimLeft(f, " \t,")
			if f == "" {
				break
			}
			if f[0] == '*' {
				if rest := strings.TrimLeft(f[1:], " \t"); rest == "" || rest[0] == ',' {
					return true
				}
				return false
			}
			f = strings.TrimPrefix(f, "W/")
			if f == "" || f[0] != '"' {
				return false
			}
			end := 1
			for end < len(f) && f[end] != '"' {
				if !isETagChar(f[end]) {
					return false
				}
				end++
			}
			if end == len(f) {
				return false // unterminated
			}
			if f[:end+1] == want {
				return true
			}
			f = strings.TrimLeft(f[end+1:], " \t")
			if f != "" && f[0] != ',' {
				return false
			}
		}
	}
	return false
}
