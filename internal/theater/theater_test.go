package theater

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// checkErr fails tb unless err has wantCode and wantField ("" for both means
// err must be nil).
func checkErr(tb testing.TB, err error, wantCode, wantField string) {
	tb.Helper()
	if got := ErrorCode(err); got != wantCode {
		tb.Fatalf("ErrorCode(%v) = %q, want %q", err, got, wantCode)
	}
	if got := ErrorField(err); got != wantField {
		tb.Fatalf("ErrorField(%v) = %q, want %q", err, got, wantField)
	}
	if wantField != "" && !strings.Contains(ErrorMessage(err), wantField) {
		tb.Fatalf("message %q does not name field %q", ErrorMessage(err), wantField)
	}
}

func TestErrorHelpers(t *testing.T) {
	cause := errors.New("pq: relation \"users\" does not exist")
	wrapped := fmt.Errorf("load user: %w", Wrap(EINTERNAL, "could not load user", cause))
	tests := []struct {
		name                    string
		err                     error
		code, field, message    string
		causeReachable, leaksIn bool
	}{
		{"nil", nil, "", "", "", false, false},
		{"plain", errors.New("boom"), EINTERNAL, "", "internal error", false, false},
		{"errorf", Errorf(ENOTFOUND, "script %s not found", "abc"), ENOTFOUND, "", "script abc not found", false, false},
		{"invalid", Invalid("title", "must not be empty"), EINVALID, "title", "title: must not be empty", false, false},
		{"wrapped cause", wrapped, EINTERNAL, "", "could not load user", true, true},
		{"context", Wrap(EUNAVAILABLE, "database unavailable", context.DeadlineExceeded), EUNAVAILABLE, "", "database unavailable", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ErrorCode(tt.err); got != tt.code {
				t.Errorf("ErrorCode = %q, want %q", got, tt.code)
			}
			if got := ErrorField(tt.err); got != tt.field {
				t.Errorf("ErrorField = %q, want %q", got, tt.field)
			}
			if got := ErrorMessage(tt.err); got != tt.message {
				t.Errorf("ErrorMessage = %q, want %q", got, tt.message)
			}
			if tt.causeReachable && !errors.Is(tt.err, cause) {
				t.Errorf("errors.Is(err, cause) = false, want true")
			}
			if tt.leaksIn {
				// The cause belongs in logs (Error()) and never in the message.
				if !strings.Contains(tt.err.Error(), "does not exist") {
					t.Errorf("Error() = %q, want the cause in it for logs", tt.err.Error())
				}
				if strings.Contains(ErrorMessage(tt.err), "relation") {
					t.Errorf("ErrorMessage = %q leaks the cause", ErrorMessage(tt.err))
				}
			}
		})
	}
	if !errors.Is(Wrap(EUNAVAILABLE, "x", context.DeadlineExceeded), context.DeadlineExceeded) {
		t.Error("Wrap hides context.DeadlineExceeded from errors.Is")
	}
}

func TestNewID(t *testing.T) {
	seen := make(map[string]bool)
	for i := 0; i < 10000; i++ {
		id := NewID()
		if !ValidID(id) {
			t.Fatalf("ValidID(%q) = false for an id NewID made", id)
		}
		if len(id) != IDLen {
			t.Fatalf("len(NewID()) = %d, want %d", len(id), IDLen)
		}
		if strings.ContainsAny(id, ":*?[]{}/ ") {
			t.Fatalf("NewID() = %q contains a key or glob character", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"abcdefgh234567ab", true},
		{"", false},
		{"abcdefgh234567a", false},   // short
		{"abcdefgh234567abc", false}, // long
		{"ABCDEFGH234567AB", false},  // upper case is not what NewID makes
		{"abcdefgh2345678a", false},  // 8 is not base32
		{"abcdefgh2345671a", false},  // nor is 1
		{"abcdefgh23456:ab", false},
		{"abcdefgh23456*ab", false},
		{"abcdefgh23456{ab", false},
		{"../../etc/passwd", false},
		{"abcdefgh23456\x00ab", false},
		{"abcdéfgh23456ab", false}, // 16 bytes, not 16 characters of the alphabet
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			if got := ValidID(tt.in); got != tt.want {
				t.Errorf("ValidID(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewUserValidate(t *testing.T) {
	ok := func() NewUser {
		return NewUser{Email: "ann@example.org", Password: "correct horse", Name: "Ann", Role: RolePlaywright}
	}
	tests := []struct {
		name      string
		edit      func(*NewUser)
		code      string
		field     string
		wantEmail string
	}{
		{"ok", func(*NewUser) {}, "", "", "ann@example.org"},
		{"producer", func(n *NewUser) { n.Role = RoleProducer }, "", "", "ann@example.org"},
		{"email trimmed and lowered", func(n *NewUser) { n.Email = "  Ann@Example.ORG \t" }, "", "", "ann@example.org"},
		{"email empty", func(n *NewUser) { n.Email = " " }, EINVALID, "email", ""},
		{"email no at", func(n *NewUser) { n.Email = "ann.example.org" }, EINVALID, "email", ""},
		{"email two ats", func(n *NewUser) { n.Email = "a@b@example.org" }, EINVALID, "email", ""},
		{"email no dot", func(n *NewUser) { n.Email = "ann@localhost" }, EINVALID, "email", ""},
		{"email trailing dot", func(n *NewUser) { n.Email = "ann@example." }, EINVALID, "email", ""},
		{"email double dot", func(n *NewUser) { n.Email = "ann@example..org" }, EINVALID, "email", ""},
		{"email space", func(n *NewUser) { n.Email = "a nn@example.org" }, EINVALID, "email", ""},
		{"email NUL", func(n *NewUser) { n.Email = "ann\x00@example.org" }, EINVALID, "email", ""},
		{"email too long", func(n *NewUser) { n.Email = "a@" + strings.Repeat("b", 250) + ".org" }, EINVALID, "email", ""},
		{"email injection", func(n *NewUser) { n.Email = "x'; DROP TABLE users;--@example.org" }, EINVALID, "email", ""},
		{"email quote is allowed", func(n *NewUser) { n.Email = "o'brien@example.org" }, "", "", "o'brien@example.org"},
		{"password short", func(n *NewUser) { n.Password = "1234567" }, EINVALID, "password", ""},
		{"password 8 runes of 2 bytes", func(n *NewUser) { n.Password = "éééééééé" }, "", "", "ann@example.org"},
		{"password 7 runes of 4 bytes", func(n *NewUser) { n.Password = "🎭🎭🎭🎭🎭🎭🎭" }, EINVALID, "password", ""},
		{"password 128", func(n *NewUser) { n.Password = strings.Repeat("x", 128) }, "", "", "ann@example.org"},
		{"password 129", func(n *NewUser) { n.Password = strings.Repeat("x", 129) }, EINVALID, "password", ""},
		{"password spaces count", func(n *NewUser) { n.Password = "        " }, "", "", "ann@example.org"},
		{"password bad utf8", func(n *NewUser) { n.Password = "abcdefg\xff" }, EINVALID, "password", ""},
		{"name empty", func(n *NewUser) { n.Name = "  " }, EINVALID, "name", ""},
		{"name 100", func(n *NewUser) { n.Name = strings.Repeat("ß", 100) }, "", "", "ann@example.org"},
		{"name 101", func(n *NewUser) { n.Name = strings.Repeat("a", 101) }, EINVALID, "name", ""},
		{"name NUL", func(n *NewUser) { n.Name = "A\x00nn" }, EINVALID, "name", ""},
		{"name newline", func(n *NewUser) { n.Name = "A\nnn" }, EINVALID, "name", ""},
		{"name escape", func(n *NewUser) { n.Name = "\x1b[31mAnn" }, EINVALID, "name", ""},
		{"name hostile but printable", func(n *NewUser) { n.Name = `Robert'); DROP TABLE users;--` }, "", "", "ann@example.org"},
		{"admin self-assigned", func(n *NewUser) { n.Role = RoleAdmin }, EINVALID, "role", ""},
		{"role empty", func(n *NewUser) { n.Role = "" }, EINVALID, "role", ""},
		{"role unknown", func(n *NewUser) { n.Role = "root" }, EINVALID, "role", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := ok()
			tt.edit(&n)
			err := n.Validate()
			checkErr(t, err, tt.code, tt.field)
			if err == nil && n.Email != tt.wantEmail {
				t.Errorf("Email = %q, want %q", n.Email, tt.wantEmail)
			}
		})
	}
}

func TestNewUserValidateTrusted(t *testing.T) {
	n := NewUser{Email: "root@example.org", Password: "long enough", Name: "Root", Role: RoleAdmin}
	if err := n.ValidateTrusted(); err != nil {
		t.Fatalf("ValidateTrusted(admin) = %v, want nil", err)
	}
	n.Role = "superuser"
	checkErr(t, n.ValidateTrusted(), EINVALID, "role")
}

func validScript() ScriptInput {
	return ScriptInput{Title: "The Seagull", Genre: "drama", Synopsis: "A play in four acts.", CastMin: 5, CastMax: 13, DurationMinutes: 150, Language: "ru"}
}

func TestScriptInputValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*ScriptInput)
		code  string
		field string
		check func(testing.TB, ScriptInput)
	}{
		{"ok", func(*ScriptInput) {}, "", "", nil},
		{"normalised", func(s *ScriptInput) {
			s.Title, s.Genre, s.Language, s.Synopsis = "  Ubu Roi ", " Absurdist", "", "line one\r\nline two\rthree "
		}, "", "", func(tb testing.TB, s ScriptInput) {
			tb.Helper()
			want := ScriptInput{Title: "Ubu Roi", Genre: "absurdist", Synopsis: "line one\nline two\nthree", CastMin: 5, CastMax: 13, DurationMinutes: 150, Language: "en"}
			if s != want {
				tb.Errorf("got %+v, want %+v", s, want)
			}
		}},
		{"title empty", func(s *ScriptInput) { s.Title = "" }, EINVALID, "title", nil},
		{"title 200", func(s *ScriptInput) { s.Title = strings.Repeat("é", 200) }, "", "", nil},
		{"title 201", func(s *ScriptInput) { s.Title = strings.Repeat("a", 201) }, EINVALID, "title", nil},
		{"title NUL", func(s *ScriptInput) { s.Title = "Ham\x00let" }, EINVALID, "title", nil},
		{"title tab", func(s *ScriptInput) { s.Title = "Ham\tlet" }, EINVALID, "title", nil},
		{"title DEL", func(s *ScriptInput) { s.Title = "Ham\x7flet" }, EINVALID, "title", nil},
		{"title C1", func(s *ScriptInput) { s.Title = "Ham\u0085let" }, EINVALID, "title", nil},
		{"title bad utf8", func(s *ScriptInput) { s.Title = "Ham\xc3let" }, EINVALID, "title", nil},
		{"title hostile printable", func(s *ScriptInput) { s.Title = `'; DROP TABLE scripts; -- "%_\` }, "", "", nil},
		{"title unicode", func(s *ScriptInput) { s.Title = "Царь Эдип 🎭 الملك" }, "", "", nil},
		{"genre empty", func(s *ScriptInput) { s.Genre = "" }, EINVALID, "genre", nil},
		{"genre unknown", func(s *ScriptInput) { s.Genre = "space opera" }, EINVALID, "genre", nil},
		{"synopsis empty ok", func(s *ScriptInput) { s.Synopsis = "" }, "", "", nil},
		{"synopsis newlines ok", func(s *ScriptInput) { s.Synopsis = "Act I\n\tScene 1" }, "", "", nil},
		{"synopsis 5000", func(s *ScriptInput) { s.Synopsis = strings.Repeat("ä", 5000) }, "", "", nil},
		{"synopsis 5001", func(s *ScriptInput) { s.Synopsis = strings.Repeat("a", 5001) }, EINVALID, "synopsis", nil},
		{"synopsis NUL", func(s *ScriptInput) { s.Synopsis = "a\x00b" }, EINVALID, "synopsis", nil},
		{"castMin 0", func(s *ScriptInput) { s.CastMin = 0 }, EINVALID, "castMin", nil},
		{"castMin negative", func(s *ScriptInput) { s.CastMin = -3 }, EINVALID, "castMin", nil},
		{"castMax below min", func(s *ScriptInput) { s.CastMax = 4 }, EINVALID, "castMax", nil},
		{"castMax equal min", func(s *ScriptInput) { s.CastMax = 5 }, "", "", nil},
		{"castMax 201", func(s *ScriptInput) { s.CastMax = 201 }, EINVALID, "castMax", nil},
		{"castMin 201", func(s *ScriptInput) { s.CastMin, s.CastMax = 201, 201 }, EINVALID, "castMin", nil},
		{"duration 0", func(s *ScriptInput) { s.DurationMinutes = 0 }, EINVALID, "durationMinutes", nil},
		{"duration 600", func(s *ScriptInput) { s.DurationMinutes = 600 }, "", "", nil},
		{"duration 601", func(s *ScriptInput) { s.DurationMinutes = 601 }, EINVALID, "durationMinutes", nil},
		{"language pt-BR", func(s *ScriptInput) { s.Language = "pt-BR" }, "", "", nil},
		{"language sr-Latn-RS", func(s *ScriptInput) { s.Language = "sr-Latn-RS" }, "", "", nil},
		{"language one letter", func(s *ScriptInput) { s.Language = "e" }, EINVALID, "language", nil},
		{"language digits first", func(s *ScriptInput) { s.Language = "12" }, EINVALID, "language", nil},
		{"language empty subtag", func(s *ScriptInput) { s.Language = "en--GB" }, EINVALID, "language", nil},
		{"language 36", func(s *ScriptInput) { s.Language = "en-" + strings.Repeat("abcdefgh-", 3) + "abcdef" }, EINVALID, "language", nil},
		{"language injection", func(s *ScriptInput) { s.Language = "en';--" }, EINVALID, "language", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := validScript()
			tt.edit(&in)
			err := in.Validate()
			checkErr(t, err, tt.code, tt.field)
			if tt.check != nil {
				tt.check(t, in)
			}
		})
	}
}

func TestLicenseInputValidate(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		name         string
		in           LicenseInput
		code, field  string
		wantStartsAt time.Time
		wantEndsAt   time.Time
	}{
		{"perusal defaults", LicenseInput{Type: LicensePerusal},
			"", "", Timestamp(now), Timestamp(now).Add(PerusalPeriod)},
		{"perusal zero performances explicit end", LicenseInput{Type: LicensePerusal, EndsAt: now.Add(day)},
			"", "", Timestamp(now), Timestamp(now.Add(day))},
		{"performance ok", LicenseInput{Type: LicensePerformance, Performances: 3, StartsAt: now.Add(7 * day), EndsAt: now.Add(14 * day)},
			"", "", Timestamp(now.Add(7 * day)), Timestamp(now.Add(14 * day))},
		{"performance started in the past ok", LicenseInput{Type: LicensePerformance, Performances: 1, StartsAt: now.Add(-day), EndsAt: now.Add(day)},
			"", "", Timestamp(now.Add(-day)), Timestamp(now.Add(day))},
		{"non-UTC converted", LicenseInput{Type: LicensePerformance, Performances: 1,
			StartsAt: time.Date(2026, 4, 1, 20, 0, 0, 0, time.FixedZone("CEST", 2*3600)), EndsAt: time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)},
			"", "", time.Date(2026, 4, 1, 18, 0, 0, 0, time.UTC), time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)},
		{"type empty", LicenseInput{}, EINVALID, "type", time.Time{}, time.Time{}},
		{"type unknown", LicenseInput{Type: "broadcast"}, EINVALID, "type", time.Time{}, time.Time{}},
		{"performance zero performances", LicenseInput{Type: LicensePerformance, EndsAt: now.Add(day)}, EINVALID, "performances", time.Time{}, time.Time{}},
		{"negative performances", LicenseInput{Type: LicensePerusal, Performances: -1}, EINVALID, "performances", time.Time{}, time.Time{}},
		{"too many performances", LicenseInput{Type: LicensePerformance, Performances: MaxPerformances + 1, EndsAt: now.Add(day)}, EINVALID, "performances", time.Time{}, time.Time{}},
		{"performance no end", LicenseInput{Type: LicensePerformance, Performances: 1}, EINVALID, "endsAt", time.Time{}, time.Time{}},
		{"end before start", LicenseInput{Type: LicensePerformance, Performances: 1, StartsAt: now.Add(2 * day), EndsAt: now.Add(day)}, EINVALID, "endsAt", time.Time{}, time.Time{}},
		{"end equals start", LicenseInput{Type: LicensePerformance, Performances: 1, StartsAt: now.Add(day), EndsAt: now.Add(day)}, EINVALID, "endsAt", time.Time{}, time.Time{}},
		{"end in the past", LicenseInput{Type: LicensePerformance, Performances: 1, StartsAt: now.Add(-2 * day), EndsAt: now.Add(-day)}, EINVALID, "endsAt", time.Time{}, time.Time{}},
		{"perusal end in the past", LicenseInput{Type: LicensePerusal, StartsAt: now.Add(-2 * day), EndsAt: now.Add(-day)}, EINVALID, "endsAt", time.Time{}, time.Time{}},
		{"start far future", LicenseInput{Type: LicensePerformance, Performances: 1, StartsAt: now.AddDate(20, 0, 0), EndsAt: now.AddDate(21, 0, 0)}, EINVALID, "startsAt", time.Time{}, time.Time{}},
		{"start year 1", LicenseInput{Type: LicensePerformance, Performances: 1, StartsAt: time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), EndsAt: now.Add(day)}, EINVALID, "startsAt", time.Time{}, time.Time{}},
		{"period too long", LicenseInput{Type: LicensePerformance, Performances: 1, StartsAt: now, EndsAt: now.AddDate(11, 0, 0)}, EINVALID, "endsAt", time.Time{}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			err := in.Validate(now)
			checkErr(t, err, tt.code, tt.field)
			if err != nil {
				return
			}
			if !in.StartsAt.Equal(tt.wantStartsAt) || in.StartsAt.Location() != time.UTC {
				t.Errorf("StartsAt = %v, want %v in UTC", in.StartsAt, tt.wantStartsAt)
			}
			if !in.EndsAt.Equal(tt.wantEndsAt) || in.EndsAt.Location() != time.UTC {
				t.Errorf("EndsAt = %v, want %v in UTC", in.EndsAt, tt.wantEndsAt)
			}
			if in.StartsAt.Nanosecond()%int(time.Millisecond) != 0 {
				t.Errorf("StartsAt = %v, want millisecond precision", in.StartsAt)
			}
		})
	}
}

func TestScriptFilterNormalize(t *testing.T) {
	tests := []struct {
		name        string
		in, want    ScriptFilter
		code, field string
	}{
		{"zero", ScriptFilter{}, ScriptFilter{Page: 1, Limit: 20, Sort: SortNewest}, "", ""},
		{"given", ScriptFilter{Page: 3, Limit: 100, Genre: " Comedy ", Query: " 50%  OFF ", AuthorID: "abcdefgh234567ab"},
			ScriptFilter{Page: 3, Limit: 100, Genre: "comedy", Query: "50% off", AuthorID: "abcdefgh234567ab", Sort: SortRelevance}, "", ""},
		{"sort title", ScriptFilter{Query: "x", Sort: " Title "}, ScriptFilter{Page: 1, Limit: 20, Query: "x", Sort: SortTitle}, "", ""},
		{"q trimmed before its check", ScriptFilter{Query: "\tLove  Story\n"}, ScriptFilter{Page: 1, Limit: 20, Query: "love story", Sort: SortRelevance}, "", ""},
		{"sort relevance spelled out, no query", ScriptFilter{Sort: "relevance"}, ScriptFilter{Page: 1, Limit: 20, Sort: SortNewest}, "", ""},
		{"sort relevance spelled out, with a query", ScriptFilter{Query: "x", Sort: "RELEVANCE"}, ScriptFilter{Page: 1, Limit: 20, Query: "x", Sort: SortRelevance}, "", ""},
		{"sort unknown", ScriptFilter{Sort: "popular"}, ScriptFilter{}, EINVALID, "sort"},
		{"cursor too long", ScriptFilter{Cursor: strings.Repeat("c", MaxCursorLen+1)}, ScriptFilter{}, EINVALID, "cursor"},
		{"cursor with page", ScriptFilter{Cursor: "abc", Page: 2}, ScriptFilter{}, EINVALID, "cursor"},
		{"page negative", ScriptFilter{Page: -1}, ScriptFilter{}, EINVALID, "page"},
		{"page huge", ScriptFilter{Page: MaxPage + 1}, ScriptFilter{}, EINVALID, "page"},
		{"limit negative", ScriptFilter{Limit: -5}, ScriptFilter{}, EINVALID, "limit"},
		{"limit 101", ScriptFilter{Limit: 101}, ScriptFilter{}, EINVALID, "limit"},
		{"genre unknown", ScriptFilter{Genre: "nope"}, ScriptFilter{}, EINVALID, "genre"},
		{"q too long", ScriptFilter{Query: strings.Repeat("q", 201)}, ScriptFilter{}, EINVALID, "q"},
		{"q NUL", ScriptFilter{Query: "a\x00"}, ScriptFilter{}, EINVALID, "q"},
		{"author malformed", ScriptFilter{AuthorID: "../x"}, ScriptFilter{}, EINVALID, "author"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.in
			err := f.Normalize()
			checkErr(t, err, tt.code, tt.field)
			if err == nil && f != tt.want {
				t.Errorf("got %+v, want %+v", f, tt.want)
			}
		})
	}
	f := ScriptFilter{Page: 3, Limit: 25}
	if got, want := f.Offset(), 50; got != want {
		t.Errorf("Offset() = %d, want %d", got, want)
	}
}

func TestAuthorisation(t *testing.T) {
	author := User{ID: "aaaaaaaaaaaaaaaa", Role: RolePlaywright}
	other := User{ID: "bbbbbbbbbbbbbbbb", Role: RolePlaywright}
	admin := User{ID: "cccccccccccccccc", Role: RoleAdmin}
	producer := User{ID: "dddddddddddddddd", Role: RoleProducer}
	s := Script{ID: "ssssssssssssssss", AuthorID: author.ID}
	tests := []struct {
		name            string
		u               User
		create, editOwn bool
	}{
		{"author", author, true, true},
		{"other playwright", other, true, false},
		{"admin", admin, true, true},
		{"producer", producer, false, false},
		{"zero user", User{}, false, false},
		{"zero user on authorless script", User{Role: RolePlaywright}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CanCreateScript(tt.u); got != tt.create {
				t.Errorf("CanCreateScript = %v, want %v", got, tt.create)
			}
			script := s
			if tt.name == "zero user on authorless script" {
				script.AuthorID = ""
			}
			if got := CanEditScript(tt.u, script); got != tt.editOwn {
				t.Errorf("CanEditScript = %v, want %v", got, tt.editOwn)
			}
		})
	}
}

// FuzzValidate checks that no input makes a validator panic, and that what
// passes validation is free of control characters.
func FuzzValidate(f *testing.F) {
	f.Add("Hamlet", "drama", "syn", "en", "a@b.co", 1, 2)
	f.Add("\x00", "", "\xff", "e-", "@", -1, 0)
	f.Fuzz(func(t *testing.T, title, genre, synopsis, lang, email string, a, b int) {
		in := ScriptInput{Title: title, Genre: genre, Synopsis: synopsis, Language: lang, CastMin: a, CastMax: b, DurationMinutes: a}
		if in.Validate() == nil && strings.ContainsAny(in.Title, "\x00\r\n") {
			t.Errorf("accepted title %q", in.Title)
		}
		n := NewUser{Email: email, Password: synopsis, Name: title, Role: RoleProducer}
		_ = n.Validate()
		sf := ScriptFilter{Page: a, Limit: b, Genre: genre, Query: title, AuthorID: lang}
		_ = sf.Normalize()
	})
}
