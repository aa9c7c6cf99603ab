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
			var got theater.Script
			anonB.do("GET", "/api/scripts/"+sc.ID, nil).json(t, &got)
			if got.Title != title {
				t.Fatalf("B serves %q after A's update to %q returned", got.Title, title)
			}
			var page scriptPage
			anonB.do("GET", "/api/scripts?limit=5", nil).json(t, &page)
			if len(page.Items) == 0 || page.Items[0].Title != title {
				t.Fatalf("B's list serves %+v after A's update to %q returned", page.Items, title)
			}
		}

		// A sign-out on B ends the session on A at once.
		want(t, onB.do("POST", "/api/auth/logout", nil), 204, "logout on B")
		want(t, author.c.do("GET", "/api/me", nil), 401, "A after logout on B")

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
