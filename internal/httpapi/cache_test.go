package httpapi

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/ratelimit"
)

// commandLog records every command name the server sends to Redis.
type commandLog struct {
	mu       sync.Mutex
	trips    int
	names    []string
	sentKeys bool // KEYS was ever sent; reset leaves it
}

func (l *commandLog) hook(names []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trips++
	l.names = append(l.names, names...)
	for _, n := range names {
		if strings.EqualFold(n, "KEYS") {
			l.sentKeys = true
		}
	}
}

func (l *commandLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trips, l.names = 0, nil
}

func (l *commandLog) snapshot() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.trips, append([]string(nil), l.names...)
}

func TestResponseCache(t *testing.T) {
	in := newInstance(t, options{})
	author := signUp(t, in, theater.RolePlaywright)
	r := author.c.do("POST", "/api/scripts", scriptBody("Cached"))
	want(t, r, 201, "create")
	var sc theater.Script
	r.json(t, &sc)
	anon := in.client(t)
	path := "/api/scripts/" + sc.ID

	first := anon.do("GET", path, nil)
	want(t, first, 200, "first read")
	second := anon.do("GET", path, nil)
	want(t, second, 200, "second read")
	if a, b := first.header.Get("X-Cache"), second.header.Get("X-Cache"); a != "MISS" || b != "HIT" {
		t.Fatalf("X-Cache %q then %q, want MISS then HIT", a, b)
	}
	if string(first.body) != string(second.body) {
		t.Fatalf("hit body %s differs from miss body %s", second.body, first.body)
	}
	etag := second.header.Get("ETag")
	if etag == "" || strings.HasPrefix(etag, "W/") || second.header.Get("Age") == "" {
		t.Fatalf("hit headers ETag %q Age %q, want a strong ETag and an Age", etag, second.header.Get("Age"))
	}
	if second.header.Get("X-Request-ID") == first.header.Get("X-Request-ID") {
		t.Fatal("a hit replays the stored X-Request-ID")
	}
	nm := anon.do("GET", path, nil, "If-None-Match", etag)
	if nm.status != 304 || len(nm.body) != 0 {
		t.Fatalf("If-None-Match: status %d body %q, want 304 and no body", nm.status, nm.body)
	}
	// A client's no-cache does not make the server run the handler.
	if x := anon.do("GET", path, nil, "Cache-Control", "no-cache").header.Get("X-Cache"); x != "HIT" {
		t.Fatalf("Cache-Control: no-cache got X-Cache %q, want HIT", x)
	}
	// A signed-in reader gets the public entry too.
	if x := author.c.do("GET", path, nil).header.Get("X-Cache"); x != "HIT" {
		t.Fatalf("signed-in read X-Cache %q, want HIT", x)
	}

	// The key is the original guide's script:{id}, with a TTL of 600 s.
	key := domainKeys{in.rdb.Keys()}.Script(sc.ID)
	ttl, err := in.rdb.TTL(context.Background(), key)
	if err != nil || ttl <= 0 || ttl > ScriptTTL {
		t.Fatalf("TTL of %s = %v (%v), want (0, %v]", key, ttl, err, ScriptTTL)
	}

	// Views count cache hits, and 304s, as reads.
	var stats struct{ Views int64 }
	anon.do("GET", path+"/stats", nil).json(t, &stats)
	if stats.Views != 5 {
		t.Fatalf("views = %d after 2 reads, a 304, a no-cache read and a signed-in read; want 5", stats.Views)
	}

	// The list: MISS, HIT; other parameters neither split nor reach it.
	l1 := anon.do("GET", "/api/scripts?limit=5&page=1", nil)
	l2 := anon.do("GET", "/api/scripts?page=1&limit=5&utm_source=x", nil)
	if a, b := l1.header.Get("X-Cache"), l2.header.Get("X-Cache"); a != "MISS" || b != "HIT" {
		t.Fatalf("list X-Cache %q then %q, want MISS then HIT", a, b)
	}
	u1 := anon.do("GET", "/api/users/"+author.user.ID+"/scripts", nil)
	u2 := anon.do("GET", "/api/users/"+author.user.ID+"/scripts", nil)
	if a, b := u1.header.Get("X-Cache"), u2.header.Get("X-Cache"); a != "MISS" || b != "HIT" {
		t.Fatalf("author's list X-Cache %q then %q, want MISS then HIT", a, b)
	}

	// An update drops all three before its 200 is sent.
	want(t, author.c.do("PUT", path, scriptBody("Cached, Revised")), 200, "update")
	r = anon.do("GET", path, nil)
	var got theater.Script
	r.json(t, &got)
	if got.Title != "Cached, Revised" || r.header.Get("X-Cache") != "MISS" {
		t.Fatalf("after update: %q with X-Cache %q, want the new title and MISS", got.Title, r.header.Get("X-Cache"))
	}
	var page scriptPage
	anon.do("GET", "/api/scripts?limit=5&page=1", nil).json(t, &page)
	if page.Items[0].Title != "Cached, Revised" {
		t.Fatalf("list after update shows %q", page.Items[0].Title)
	}
	var list scriptPage
	anon.do("GET", "/api/users/"+author.user.ID+"/scripts", nil).json(t, &list)
	if list.Items[0].Title != "Cached, Revised" {
		t.Fatalf("author's list after update shows %q", list.Items[0].Title)
	}
	// A new script shows in the list at once; a deleted one goes at once.
	r = author.c.do("POST", "/api/scripts", scriptBody("Second"))
	want(t, r, 201, "create second")
	var second2 theater.Script
	r.json(t, &second2)
	anon.do("GET", "/api/scripts?limit=5&page=1", nil).json(t, &page)
	if page.Total != 2 {
		t.Fatalf("list total %d after a create, want 2", page.Total)
	}
	want(t, anon.do("GET", "/api/scripts/"+second2.ID, nil), 200, "read second")
	want(t, author.c.do("DELETE", "/api/scripts/"+second2.ID, nil), 204, "delete second")
	want(t, anon.do("GET", "/api/scripts/"+second2.ID, nil), 404, "read deleted")
	anon.do("GET", "/api/scripts?limit=5&page=1", nil).json(t, &page)
	if page.Total != 1 {
		t.Fatalf("list total %d after a delete, want 1", page.Total)
	}

	// Every key the server wrote has a TTL, and no raw token is in one.
	for _, k := range redistest.Keys(t, in.rdb) {
		ttl, err := in.rdb.TTL(context.Background(), k)
		if err != nil || ttl < 0 {
			t.Errorf("key %s has TTL %v (%v): every key needs one", k, ttl, err)
		}
		if strings.Contains(k, author.c.token) {
			t.Errorf("key %s holds a raw token", k)
		}
	}
}

// TestRoundTrips pins how many Redis round trips the hot paths cost, and
// that KEYS is never sent.
func TestRoundTrips(t *testing.T) {
	log := &commandLog{}
	cfg := redistest.Config(t)
	cfg.CommandHook = log.hook
	in := newInstance(t, options{redis: cfg, edit: func(d *Deps) {
		d.APIRate = ratelimit.Rate{Limit: 1_000_000, Window: time.Minute}
		d.ViewFlushInterval = time.Second
	}})
	author := signUp(t, in, theater.RolePlaywright)
	r := author.c.do("POST", "/api/scripts", scriptBody("Counted"))
	want(t, r, 201, "create")
	var sc theater.Script
	r.json(t, &sc)
	anon := in.client(t)
	anon.do("GET", "/api/scripts/"+sc.ID, nil)
	anon.do("GET", "/api/scripts?page=1&limit=20", nil)
	author.c.do("GET", "/api/me", nil)

	tests := []struct {
		name  string
		c     *client
		path  string
		trips int
	}{
		// At most the API limiter (one EVALSHA) and the entry (one GET,
		// none when the client-side cache has it); the view is counted
		// in memory and flushed later.
		{"script hit", anon, "/api/scripts/" + sc.ID, 2},
		{"list hit", anon, "/api/scripts?page=1&limit=20", 2},
		// The session lookup-and-touch (one script) + the API limiter.
		{"me", author.c, "/api/me", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Let a pending view flush go first, so it is not counted here.
			time.Sleep(1100 * time.Millisecond)
			log.reset()
			const n = 10
			for i := 0; i < n; i++ {
				want(t, tt.c.do("GET", tt.path, nil), 200, tt.name)
			}
			trips, names := log.snapshot()
			if trips > n*tt.trips {
				t.Fatalf("%d requests made %d round trips (%v), want at most %d each", n, trips, names, tt.trips)
			}
		})
	}
	// Writes with invalidation, and deletes, never scan the keyspace.
	want(t, author.c.do("PUT", "/api/scripts/"+sc.ID, scriptBody("Counted again")), 200, "update")
	r = author.c.do("POST", "/api/scripts", scriptBody("Doomed"))
	want(t, r, 201, "create")
	var doomed theater.Script
	r.json(t, &doomed)
	want(t, author.c.do("DELETE", "/api/scripts/"+doomed.ID, nil), 204, "delete")
	log.mu.Lock()
	defer log.mu.Unlock()
	if log.sentKeys {
		t.Fatal("the server sent KEYS")
	}
	for _, n := range log.names {
		if strings.EqualFold(n, "SCAN") {
			t.Fatal("a write scanned the keyspace")
		}
	}
}

// TestInvalidateCatalogue: scripts written behind the API's back show in
// the lists once the catalogue is purged.
func TestInvalidateCatalogue(t *testing.T) {
	in := newInstance(t, options{})
	author := seedUser(t, in.st, theater.RolePlaywright)
	anon := in.client(t)
	var page scriptPage
	anon.do("GET", "/api/scripts", nil).json(t, &page)
	anon.do("GET", "/api/users/"+author.ID+"/scripts", nil)
	seedScript(t, in.st, author.ID, "Behind the back")
	anon.do("GET", "/api/scripts", nil).json(t, &page)
	if page.Total != 0 {
		t.Fatalf("the cached list already shows %d scripts: the test proves nothing", page.Total)
	}
	if err := in.api.InvalidateCatalogue(context.Background()); err != nil {
		t.Fatal(err)
	}
	anon.do("GET", "/api/scripts", nil).json(t, &page)
	var list scriptPage
	anon.do("GET", "/api/users/"+author.ID+"/scripts", nil).json(t, &list)
	if page.Total != 1 || list.Total != 1 {
		t.Fatalf("after the purge: list total %d, author's %d; want 1 and 1", page.Total, list.Total)
	}
}
