package httpapi

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

func TestScriptsAndLicenses(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.open(t)
		in := newInstance(t, options{store: st})
		author := signUp(t, in, theater.RolePlaywright)
		rival := signUp(t, in, theater.RolePlaywright)
		producer := signUp(t, in, theater.RoleProducer)
		anon := in.client(t)

		// Create: playwrights only.
		want(t, producer.c.do("POST", "/api/scripts", scriptBody("Not Mine")), 403, "producer creates")
		r := author.c.do("POST", "/api/scripts", scriptBody("  Waiting  "))
		want(t, r, 201, "create")
		var sc theater.Script
		r.json(t, &sc)
		if sc.Title != "Waiting" || sc.AuthorID != author.user.ID || sc.AuthorName != author.user.Name || !theater.ValidID(sc.ID) {
			t.Fatalf("created %+v", sc)
		}
		if loc := r.header.Get("Location"); loc != "/api/scripts/"+sc.ID {
			t.Fatalf("Location = %q", loc)
		}

		// Read, list, filter, author's list.
		r = anon.do("GET", "/api/scripts/"+sc.ID, nil)
		want(t, r, 200, "read")
		var got theater.Script
		r.json(t, &got)
		if got != sc {
			t.Fatalf("read %+v, want %+v", got, sc)
		}
		var page scriptPage
		anon.do("GET", "/api/scripts?genre=drama&q=WAIT&author="+author.user.ID, nil).json(t, &page)
		if page.Total != 1 || page.Items[0].ID != sc.ID {
			t.Fatalf("filtered list = %+v", page)
		}
		anon.do("GET", "/api/scripts?genre=comedy", nil).json(t, &page)
		if page.Total != 0 || page.Items == nil {
			t.Fatalf("comedy list = %+v, want empty items array", page)
		}

		// Update: the author yes, a rival no, an anonymous caller 401.
		upd := scriptBody("Waiting, Revised")
		want(t, rival.c.do("PUT", "/api/scripts/"+sc.ID, upd), 403, "rival updates")
		want(t, anon.do("PUT", "/api/scripts/"+sc.ID, upd), 401, "anonymous update")
		want(t, author.c.do("PUT", "/api/scripts/"+theater.NewID(), upd), 404, "update unknown")
		r = author.c.do("PUT", "/api/scripts/"+sc.ID, upd)
		want(t, r, 200, "update")
		var updated theater.Script
		r.json(t, &updated)
		if updated.Title != "Waiting, Revised" || !updated.UpdatedAt.After(sc.UpdatedAt) && !updated.UpdatedAt.Equal(sc.UpdatedAt) {
			t.Fatalf("updated %+v", updated)
		}
		anon.do("GET", "/api/scripts/"+sc.ID, nil).json(t, &got)
		if got.Title != "Waiting, Revised" {
			t.Fatalf("read after update: title %q", got.Title)
		}

		// Licences.
		ends := time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339)
		perf := map[string]any{"type": "performance", "performances": 3, "endsAt": ends}
		want(t, anon.do("POST", "/api/scripts/"+sc.ID+"/licenses", perf), 401, "anonymous licence")
		want(t, producer.c.do("POST", "/api/scripts/"+theater.NewID()+"/licenses", perf), 404, "licence of unknown script")
		wantField(t, producer.c.do("POST", "/api/scripts/"+sc.ID+"/licenses", map[string]any{"type": "performance", "performances": 0, "endsAt": ends}), "performances", "no performances")
		wantField(t, producer.c.do("POST", "/api/scripts/"+sc.ID+"/licenses", map[string]any{"type": "performance", "performances": 2, "endsAt": "2000-01-01T00:00:00Z"}), "endsAt", "ends in the past")
		wantField(t, producer.c.do("POST", "/api/scripts/"+sc.ID+"/licenses", map[string]any{"type": "performance", "performances": 2, "endsAt": "next tuesday"}), "endsAt", "bad timestamp")
		wantField(t, producer.c.do("POST", "/api/scripts/"+sc.ID+"/licenses", map[string]any{"type": "rental"}), "type", "bad type")

		var list licenseList
		r = producer.c.do("GET", "/api/licenses", nil)
		want(t, r, 200, "licences before")
		r.json(t, &list)
		if len(list.Items) != 0 {
			t.Fatalf("licences before = %s", r.body)
		}
		r = producer.c.do("POST", "/api/scripts/"+sc.ID+"/licenses", perf)
		want(t, r, 201, "licence")
		var lic theater.License
		r.json(t, &lic)
		if lic.ScriptID != sc.ID || lic.UserID != producer.user.ID || lic.Performances != 3 {
			t.Fatalf("licence %+v", lic)
		}
		// The cached (empty) list was dropped before the 201.
		producer.c.do("GET", "/api/licenses", nil).json(t, &list)
		if len(list.Items) != 1 || list.Items[0].ID != lic.ID {
			t.Fatalf("licences after = %+v", list)
		}
		want(t, producer.c.do("POST", "/api/scripts/"+sc.ID+"/licenses", map[string]any{"type": "perusal"}), 201, "perusal licence")
		producer.c.do("GET", "/api/licenses", nil).json(t, &list)
		if len(list.Items) != 2 {
			t.Fatalf("licences after the second = %d, want 2", len(list.Items))
		}
		// Someone else's licences are not visible.
		rival.c.do("GET", "/api/licenses", nil).json(t, &list)
		if len(list.Items) != 0 {
			t.Fatalf("rival sees %d licences", len(list.Items))
		}

		// Delete: not while licensed, not by a rival; a fresh script goes.
		want(t, rival.c.do("DELETE", "/api/scripts/"+sc.ID, nil), 403, "rival deletes")
		want(t, author.c.do("DELETE", "/api/scripts/"+sc.ID, nil), 409, "delete licensed script")
		r = author.c.do("POST", "/api/scripts", scriptBody("Ephemeral"))
		want(t, r, 201, "create second")
		var eph theater.Script
		r.json(t, &eph)
		want(t, anon.do("GET", "/api/scripts/"+eph.ID, nil), 200, "read second")
		want(t, author.c.do("DELETE", "/api/scripts/"+eph.ID, nil), 204, "delete")
		want(t, anon.do("GET", "/api/scripts/"+eph.ID, nil), 404, "read deleted")
		want(t, author.c.do("DELETE", "/api/scripts/"+eph.ID, nil), 404, "delete twice")
	})
}

func TestAdminMayEditAnyScript(t *testing.T) {
	in := newInstance(t, options{})
	author := signUp(t, in, theater.RolePlaywright)
	r := author.c.do("POST", "/api/scripts", scriptBody("Owned"))
	want(t, r, 201, "create")
	var sc theater.Script
	r.json(t, &sc)
	// Admins are never self-registered: make one in the store, sign in.
	admin := seedUser(t, in.st, theater.RoleAdmin)
	c := in.client(t)
	r = c.do("POST", "/api/auth/login", map[string]any{"email": admin.Email, "password": "correct horse battery"})
	want(t, r, 200, "admin login")
	var lr loginResponse
	r.json(t, &lr)
	c.token = lr.Token
	want(t, c.do("PUT", "/api/scripts/"+sc.ID, scriptBody("Edited by admin")), 200, "admin update")
	want(t, c.do("DELETE", "/api/scripts/"+sc.ID, nil), 204, "admin delete")
}

// TestHostileBodies sends every write endpoint malformed, mistyped,
// oversized and surprising bodies.
func TestHostileBodies(t *testing.T) {
	in := newInstance(t, options{})
	author := signUp(t, in, theater.RolePlaywright)
	r := author.c.do("POST", "/api/scripts", scriptBody("Target"))
	want(t, r, 201, "create")
	var sc theater.Script
	r.json(t, &sc)
	endpoints := []struct{ method, path string }{
		{"POST", "/api/auth/register"}, {"POST", "/api/auth/login"}, {"POST", "/api/scripts"},
		{"PUT", "/api/scripts/" + sc.ID}, {"POST", "/api/scripts/" + sc.ID + "/licenses"},
	}
	big := bytes.Repeat([]byte(" "), 2<<20)
	big[0] = '{'
	big[len(big)-1] = '}'
	bodies := []struct {
		name   string
		body   []byte
		status int
		field  string
		ctype  string
	}{
		{"empty", []byte(""), 400, "body", ""},
		{"not json", []byte("hello"), 400, "body", ""},
		{"truncated", []byte(`{"title":`), 400, "body", ""},
		{"array", []byte(`[1,2]`), 400, "body", ""},
		{"null", []byte(`null`), 400, "", ""},
		{"two objects", []byte(`{} {}`), 400, "body", ""},
		{"trailing garbage", []byte(`{}x`), 400, "body", ""},
		{"unknown field", []byte(`{"isAdmin":true}`), 400, "isAdmin", ""},
		{"2 MiB", big, 413, "", ""},
		{"form post", []byte("title=x"), 415, "", "application/x-www-form-urlencoded"},
		{"text/plain", []byte("{}"), 415, "", "text/plain"},
	}
	for _, ep := range endpoints {
		for _, b := range bodies {
			t.Run(ep.method+" "+ep.path+" "+b.name, func(t *testing.T) {
				headers := []string{}
				if b.ctype != "" {
					headers = append(headers, "Content-Type", b.ctype)
				}
				r := author.c.raw(ep.method, ep.path, b.body, headers...)
				if b.name == "null" {
					// null decodes to the zero request, which fails validation.
					if r.status != 400 {
						t.Fatalf("status %d, want 400: %s", r.status, r.body)
					}
					return
				}
				want(t, r, b.status, b.name)
				if b.field != "" {
					var p problemBody
					r.json(t, &p)
					if p.Field != b.field {
						t.Fatalf("field %q, want %q (%s)", p.Field, b.field, r.body)
					}
				}
			})
		}
	}
	// Wrong types name the field.
	typed := []struct {
		path, body, field string
	}{
		{"/api/scripts", `{"title":"x","genre":"drama","castMin":"two","castMax":4,"durationMinutes":90}`, "castMin"},
		{"/api/scripts", `{"title":12,"genre":"drama","castMin":1,"castMax":4,"durationMinutes":90}`, "title"},
		{"/api/scripts", `{"title":"x","genre":"drama","castMin":1.5,"castMax":4,"durationMinutes":90}`, "castMin"},
		{"/api/scripts", `{"title":"x","genre":"drama","castMin":1,"castMax":99999999999999999999,"durationMinutes":90}`, "castMax"},
		{"/api/scripts", `{"title":"x","genre":"drama","castMin":1,"castMax":4,"durationMinutes":0}`, "durationMinutes"},
		{"/api/scripts", `{"title":"x\u0000y","genre":"drama","castMin":1,"castMax":4,"durationMinutes":9}`, "title"},
		{"/api/scripts", `{"title":"x","genre":"drama","castMin":1,"castMax":4,"durationMinutes":9,"language":"<script>"}`, "language"},
		{"/api/scripts/" + sc.ID + "/licenses", `{"type":"perusal","performances":"many"}`, "performances"},
		{"/api/scripts/" + sc.ID + "/licenses", `{"type":"perusal","startsAt":17}`, "startsAt"},
		{"/api/auth/login", `{"email":["a"],"password":"x"}`, "email"},
	}
	for _, tt := range typed {
		wantField(t, author.c.raw("POST", tt.path, []byte(tt.body)), tt.field, tt.path+" "+tt.body)
	}
	// A long run of unknown-field names never echoes the raw input.
	r = author.c.raw("POST", "/api/scripts", []byte(`{"`+strings.Repeat("\\u0001", 10)+`":1}`))
	want(t, r, 400, "unprintable field name")
	if bytes.Contains(r.body, []byte{1}) {
		t.Fatalf("problem echoes a control character: %q", r.body)
	}
	// Nothing changed.
	var got theater.Script
	in.client(t).do("GET", "/api/scripts/"+sc.ID, nil).json(t, &got)
	if got.Title != "Target" {
		t.Fatalf("script changed to %q by a hostile body", got.Title)
	}
	_ = http.StatusOK
}
