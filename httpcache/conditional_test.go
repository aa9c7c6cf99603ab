package httpcache

import "testing"

func TestNoneMatch(t *testing.T) {
	const etag = `"abc"`
	cases := []struct {
		name  string
		field []string
		want  bool
	}{
		{"exact", []string{`"abc"`}, true},
		{"weak matches strong (weak comparison)", []string{`W/"abc"`}, true},
		{"star", []string{`*`}, true},
		{"star with spaces", []string{` * `}, true},
		{"in list", []string{`"x", "abc"`}, true},
		{"in list no spaces", []string{`"x","abc"`}, true},
		{"weak in list", []string{`"x", W/"abc"`}, true},
		{"second field line", []string{`"x"`, `"abc"`}, true},
		{"other", []string{`"abcd"`}, false},
		{"unquoted", []string{`abc`}, false},
		{"prefix only", []string{`"ab"`}, false},
		{"unterminated", []string{`"abc`}, false},
		{"garbage before match", []string{`foo, "abc"`}, false},
		{"empty", []string{``}, false},
		{"lower w", []string{`w/"abc"`}, false},
		{"star in list is not star", []string{`"x", *`}, true},
		{"star followed by junk", []string{`*x`}, false},
		{"control char", []string{"\"a\x01bc\""}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := noneMatch(c.field, etag); got != c.want {
				t.Fatalf("noneMatch(%q, %s) = %v, want %v", c.field, etag, got, c.want)
			}
		})
	}
	if !noneMatch([]string{`"abc"`}, `W/"abc"`) {
		t.Fatal("a weak stored ETag must match by weak comparison")
	}
}

func TestValidETag(t *testing.T) {
	for s, want := range map[string]bool{
		`"a"`: true, `W/"a"`: true, `""`: true, `a`: false, `"a`: false, `"a"b"`: false, `W/a`: false, "": false, "\"a\nb\"": false,
	} {
		if got := validETag(s); got != want {
			t.Errorf("validETag(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestComputeETagDependsOnRepresentation(t *testing.T) {
	a := computeETag("application/json", "", []byte("{}"))
	if !validETag(a) || a[0] != '"' {
		t.Fatalf("computeETag = %s, want a strong entity-tag", a)
	}
	for _, other := range []string{
		computeETag("text/plain", "", []byte("{}")),
		computeETag("application/json", "gzip", []byte("{}")),
		computeETag("application/json", "", []byte("{ }")),
	} {
		if other == a {
			t.Fatalf("two different representations share ETag %s", a)
		}
	}
	if computeETag("application/json", "", []byte("{}")) != a {
		t.Fatal("computeETag is not deterministic")
	}
}

func FuzzNoneMatch(f *testing.F) {
	for _, s := range []string{`"abc"`, `W/"abc", *`, `*`, `"a","b"`, `garbage`} {
		f.Add(s, `"abc"`)
	}
	f.Fuzz(func(t *testing.T, field, etag string) {
		got := noneMatch([]string{field}, etag)
		if field == etag && validETag(etag) && len(etag) > 0 && etag[0] == '"' && !got {
			t.Fatalf("noneMatch(%q, %q) = false for an identical strong tag", field, etag)
		}
	})
}
