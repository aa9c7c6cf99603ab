package httpapi

import (
	"net/url"
	"strconv"
	"testing"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// TestSearchEndToEnd: GET /api/scripts?q= on the real server and both
// databases finds by word and by the prefix of the last word, case- and
// accent-insensitively, a title match first; operators are text; every
// spelling of one query shares one cache entry.
func TestSearchEndToEnd(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.open(t)
		in := newInstance(t, options{store: st})
		c := in.client(t)
		author := seedUser(t, st, theater.RolePlaywright)
		inSynopsis := seedTitled(t, st, author.ID, "Three Sisters", "They long for Moscow and mention a seagull.")
		inTitle := seedTitled(t, st, author.ID, "The Seagull", "Konstantin writes plays.")
		seedTitled(t, st, author.ID, "Pièce d'Été", "Une comédie légère.")

		search := func(q string) scriptPage {
			t.Helper()
			r := c.do("GET", "/api/scripts?"+url.Values{"q": {q}}.Encode(), nil)
			want(t, r, 200, "search "+q)
			var p scriptPage
			r.json(t, &p)
			return p
		}
		p := search("seagull")
		if len(p.Items) != 2 || p.Items[0].ID != inTitle.ID || p.Items[1].ID != inSynopsis.ID || p.Total != 2 || !p.TotalExact {
			t.Fatalf("q=seagull: %+v; want the title match, then the synopsis match, total 2 exact", p)
		}
		if p := search("seag"); len(p.Items) != 2 {
			t.Fatalf("q=seag (a prefix): %d items; want 2", len(p.Items))
		}
		if p := search("ETE piece"); len(p.Items) != 1 {
			t.Fatalf("q=ETE piece (accents, case, word order): %d items; want 1", len(p.Items))
		}
		for _, q := range []string{`"seagull`, `seagull*`, `NEAR(seagull)`, `-seagull`, `title:seagull`, `(seagull`, `^seagull`, `seagull & moscow`, `seagull | x`, `!seagull`} {
			r := c.do("GET", "/api/scripts?"+url.Values{"q": {q}}.Encode(), nil)
			want(t, r, 200, "operators as text: q="+q)
		}
		if p := search("zzzqqq"); len(p.Items) != 0 || p.Total != 0 || p.NextCursor != "" {
			t.Fatalf("q=zzzqqq: %+v; want nothing and no cursor", p)
		}

		// One entry for every spelling of a query.
		first := c.do("GET", "/api/scripts?q=The%20%20Seagull", nil)
		again := c.do("GET", "/api/scripts?limit=20&q=+the+seagull+&page=1", nil)
		if first.header.Get("X-Cache") != "MISS" || again.header.Get("X-Cache") != "HIT" {
			t.Fatalf("X-Cache %q then %q for two spellings of one query; want MISS then HIT",
				first.header.Get("X-Cache"), again.header.Get("X-Cache"))
		}
		wantField(t, c.do("GET", "/api/scripts?sort=popular", nil), "sort", "an unknown sort")
		wantField(t, c.do("GET", "/api/scripts?page=101", nil), "page", "a page past the offset limit")
	})
}

// TestCursorsEndToEnd walks an author's list and the catalogue with
// nextCursor on both databases: every script once, in order, and a
// forged or foreign cursor is 400 naming cursor.
func TestCursorsEndToEnd(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.open(t)
		in := newInstance(t, options{store: st})
		c := in.client(t)
		author := seedUser(t, st, theater.RolePlaywright)
		other := seedUser(t, st, theater.RolePlaywright)
		const n = 23
		for i := range n {
			seedTitled(t, st, author.ID, "Play "+strconv.Itoa(i), "A script.")
		}
		seedTitled(t, st, other.ID, "Someone else's", "A script.")

		walk := func(base string) []string {
			t.Helper()
			var ids []string
			path := base + "limit=5"
			for pages := 0; ; pages++ {
				if pages > n {
					t.Fatalf("%s: more pages than scripts", base)
				}
				r := c.do("GET", path, nil)
				want(t, r, 200, "page of "+base)
				var p scriptPage
				r.json(t, &p)
				for _, sc := range p.Items {
					ids = append(ids, sc.ID)
				}
				if p.NextCursor == "" {
					return ids
				}
				path = base + "limit=5&cursor=" + url.QueryEscape(p.NextCursor)
			}
		}
		mine := walk("/api/users/" + author.ID + "/scripts?")
		if len(mine) != n {
			t.Fatalf("the author's list walked by cursor: %d scripts; want %d", len(mine), n)
		}
		seen := map[string]bool{}
		for _, id := range mine {
			if seen[id] {
				t.Fatalf("script %s twice in the author's list", id)
			}
			seen[id] = true
		}
		if all := walk("/api/scripts?"); len(all) != n+1 {
			t.Fatalf("the catalogue walked by cursor: %d scripts; want %d", len(all), n+1)
		}

		// A cursor of the author's list on the catalogue, or on another
		// author's list, or mangled: 400 naming cursor.
		r := c.do("GET", "/api/users/"+author.ID+"/scripts?limit=5", nil)
		var p scriptPage
		r.json(t, &p)
		if p.NextCursor == "" || p.Total != n || !p.TotalExact {
			t.Fatalf("first page of the author's list: %+v; want a cursor and total %d", p, n)
		}
		for what, path := range map[string]string{
			"foreign (another list)":   "/api/scripts?limit=5&cursor=" + url.QueryEscape(p.NextCursor),
			"foreign (another author)": "/api/users/" + other.ID + "/scripts?limit=5&cursor=" + url.QueryEscape(p.NextCursor),
			"another limit":            "/api/users/" + author.ID + "/scripts?limit=6&cursor=" + url.QueryEscape(p.NextCursor),
			"truncated":                "/api/users/" + author.ID + "/scripts?limit=5&cursor=" + url.QueryEscape(p.NextCursor[:len(p.NextCursor)/2]),
			"forged":                   "/api/scripts?cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
			"not base64":               "/api/scripts?cursor=%21%21%21",
		} {
			wantField(t, c.do("GET", path, nil), "cursor", what+" cursor")
		}
	})
}
