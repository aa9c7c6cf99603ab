package httpapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/ratelimit"
)

// TestTwoInstances runs two servers on one Redis (one key prefix) and one
// database, as two processes of one deployment.
func TestTwoInstances(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.open(t)
		cfg := redistest.Config(t)
		limit := func(d *Deps) { d.APIRate = ratelimit.Rate{Limit: 40, Window: time.Minute} }
		a := newInstance(t, options{store: st, redis: cfg, edit: limit})
		bb := newInstance(t, options{store: st, redis: cfg, edit: limit})

		// A session made on one works on the other.
		author := signUp(t, a, theater.RolePlaywright)
		onB := author.c.on(bb)
		want(t, onB.do("GET", "/api/me", nil), 200, "session from A on B")

		// An update on A is never served stale by B once it has returned.
		r := author.c.do("POST", "/api/scripts", scriptBody("Version 0"))
		want(t, r, 201, "create on A")
		var sc theater.Script
		r.json(t, &sc)
		anonB := bb.client(t)
		for i := 1; i <= 5; i++ {
			want(t, anonB.do("GET", "/api/scripts/"+sc.ID, nil), 200, "warm B")
			want(t, anonB.do("GET", "/api/scripts?limit=5", nil), 200, "warm B list")
			title := "Version " + string(rune('0'+i))
			want(t, author.c.do("PUT", "/api/scripts/"+sc.ID, scriptBody(title)), 200, "update on A")
			written := time.Now()
			// A itself serves the new data at once (read-your-writes); B
			// within API.md's 100 ms (its local copies go on Redis's
			// invalidation push).
			var got theater.Script
			author.c.do("GET", "/api/scripts/"+sc.ID, nil).json(t, &got)
			if got.Title != title {
				t.Fatalf("A serves %q after its own update to %q returned", got.Title, title)
			}
			pollFresh(t, anonB, "/api/scripts/"+sc.ID, sc.ID, title, written)
			pollFresh(t, anonB, "/api/scripts?limit=5", sc.ID, title, written)
		}

		// A sign-out on B ends the session on B at once, on A within 100 ms.
		want(t, onB.do("POST", "/api/auth/logout", nil), 204, "logout on B")
		want(t, onB.do("GET", "/api/me", nil), 401, "B after its own logout")
		wantWithin(t, author.c, "GET", "/api/me", 401, freshBound, "A after logout on B")

		// The API limit is shared: requests spent on A count on B.
		probe := a.client(t)
		var spent int
		for ; spent < 100; spent++ {
			c := probe
			if spent%2 == 1 {
				c = probe.on(bb)
			}
			if r := c.do("GET", "/healthz", nil); r.status != 200 {
				t.Fatalf("healthz %d", r.status)
			}
			r := c.do("GET", "/api/scripts/"+sc.ID+"/stats", nil)
			if r.status == http.StatusTooManyRequests {
				if r.header.Get("Retry-After") == "" {
					t.Fatal("429 without Retry-After")
				}
				want(t, r, 429, "limited")
				break
			}
			want(t, r, 200, "stats under the limit")
		}
		// 40 per minute for this client IP across both instances, some of
		// which the requests above already spent.
		if spent >= 40 {
			t.Fatalf("admitted %d requests split over two instances, limit 40", spent)
		}
	})
}
