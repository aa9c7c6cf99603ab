package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// FuzzDecodeJSON feeds every request body type arbitrary bytes: decoding
// never panics, every failure is one of the three kinds the handlers turn
// into 400, 413 or 415, with a client-safe message, and every success used
// only member names the request type spells exactly so.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"title":"x"}`, `{"email":"a@b.c","password":"12345678"}`, `{"type":"perusal","endsAt":"2030-01-01T00:00:00Z"}`,
		`[]`, `null`, `{"a":1}`, `{} {}`, `{"castMin":"2"}`, `{"castMin":1e400}`, "{\"title\":\"\x00\"}", `{"`, `{"title":"x"}garbage`,
		strings.Repeat("[", 10000), `{"performances":-1}`,
		`{"Title":"x"}`, `{"TYPE":"perusal"}`, `{"Email":"a@b.c","PASSWORD":"12345678"}`, `{"title":"a","title":"b"}`,
	} {
		f.Add([]byte(s))
	}
	targets := []func() any{
		func() any { return new(theater.ScriptInput) },
		func() any { return new(theater.NewUser) },
		func() any { return new(loginRequest) },
		func() any { return new(licenseRequest) },
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, target := range targets {
			r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			v := target()
			err := decodeJSON(httptest.NewRecorder(), r, v)
			if err == nil {
				wantExactNames(t, body, v)
				continue
			}
			if errors.Is(err, errTooLarge) || errors.Is(err, errMediaType) {
				continue
			}
			if theater.ErrorCode(err) != theater.EINVALID || theater.ErrorField(err) == "" {
				t.Fatalf("decode %q: %v is not an EINVALID naming a field", body, err)
			}
			msg := theater.ErrorMessage(err)
			if !utf8.ValidString(msg) || strings.ContainsAny(msg, "\x00\r\n") || len(msg) > 300 {
				t.Fatalf("decode %q: message %q is not safe to show", body, msg)
			}
		}
	})
}

// wantExactNames fails unless every member name of the object in body is
// one that v, encoded again, carries: the names encoding/json itself writes
// for the type, an oracle independent of decodeJSON's own check.
func wantExactNames(t *testing.T, body []byte, v any) {
	t.Helper()
	var in map[string]json.RawMessage
	if json.Unmarshal(body, &in) != nil {
		return // null: decodes to the zero request, which validation refuses
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var known map[string]json.RawMessage
	if err := json.Unmarshal(out, &known); err != nil {
		t.Fatal(err)
	}
	for name := range in {
		if _, ok := known[name]; !ok {
			t.Fatalf("decode %q accepted member %q, which %T does not spell so", body, name, v)
		}
	}
}

// FuzzParseFilter: any query string either fails with a field named, or
// gives a filter within the bounds the store relies on.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "page=2&limit=5", "limit=0", "limit=101", "page=-1", "genre=DRAMA", "q=%00", "author=x", "page=1&page=2", "limit=1e3", "q=The%20%20Seagull", "sort=TITLE", "sort=x", "cursor=abc", "cursor=x&page=2", "page=101", "q=" + strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		fl, err := parseFilter(q, catalogueParams)
		if err != nil {
			if theater.ErrorCode(err) != theater.EINVALID || theater.ErrorField(err) == "" {
				t.Fatalf("parseFilter(%q): %v", raw, err)
			}
			return
		}
		if fl.Page < 1 || fl.Page > theater.MaxPage || fl.Limit < 1 || fl.Limit > theater.MaxLimit {
			t.Fatalf("parseFilter(%q) = %+v out of bounds", raw, fl)
		}
		if fl.AuthorID != "" && !theater.ValidID(fl.AuthorID) {
			t.Fatalf("parseFilter(%q) let author %q through", raw, fl.AuthorID)
		}
		if fl.Query != theater.FoldQuery(fl.Query) || len(fl.Cursor) > theater.MaxCursorLen {
			t.Fatalf("parseFilter(%q) = %+v: q not folded or cursor too long", raw, fl)
		}
		switch fl.Sort {
		case theater.SortNewest, theater.SortTitle, theater.SortRelevance:
		default:
			t.Fatalf("parseFilter(%q) let sort %q through", raw, fl.Sort)
		}
		// The cache id is a function of the filter alone: the same filter
		// spelled as its canonical query string keys the same entry.
		r := httptest.NewRequest("GET", "/api/scripts?"+q.Encode(), nil)
		id, ok := listCacheID(catalogueParams)(r)
		if ok == (fl.Cursor != "") {
			t.Fatalf("listCacheID(%q): cached %v with cursor %q", raw, ok, fl.Cursor)
		}
		if ok {
			again, _ := listCacheID(catalogueParams)(httptest.NewRequest("GET", "/api/scripts?"+id, nil))
			if again != id {
				t.Fatalf("listCacheID(%q) = %q, but its own spelling keys %q", raw, id, again)
			}
		}
	})
}

// FuzzRequestID: an id taken from a client is short and harmless in a
// header or a log line.
func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"abc", "", "a b", "x\r\nSet-Cookie: y", strings.Repeat("a", 65), "é", `"quoted"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !saneRequestID(s) {
			return
		}
		if len(s) > MaxRequestIDLen || len(s) == 0 {
			t.Fatalf("accepted %q of length %d", s, len(s))
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; !(c == '.' || c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				t.Fatalf("accepted %q with byte %q", s, c)
			}
		}
	})
}
