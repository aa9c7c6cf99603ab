package httpapi

// Issue 7 at the service level: the real handler on a real Redis Cluster
// (3 masters + 3 replicas) and a real Sentinel group, both started by
// internal/redistest from redis-server, run as two instances of one
// deployment. Each instance has its own redisx.Client; they share the Redis
// (one key prefix) and one database. Shown here:
//
//   - a session made on one instance works on the other, and a sign-out on
//     one ends it on the other;
//   - after an update returns on one instance, the other serves the new
//     data within API.md's 100 ms (polled, not assumed), for the script,
//     the list and the author's list, in both directions;
//   - cached entries are shared (a MISS on one is a HIT on the other) and
//     purged on every master: the scripts are spread until each master owns
//     some, which MasterOf and KeysByMaster both confirm;
//   - the API limit is one limit: requests split over both instances are
//     refused at exactly the limit, for users whose limiter keys live on
//     each master and for a client IP;
//   - after an end-to-end run with hundreds of users and scripts, their
//     session, limiter and cache keys are on all three masters, none with
//     more than 40 %.
//
// The failover tests are in failover_test.go. Run both with
//
//	go test -race -run 'Cluster|Failover' ./internal/httpapi/

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/password"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/internal/sqlstore"
	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/ratelimit"
	"github.com/theaterscriptpro/tsp/redisx"
	"github.com/theaterscriptpro/tsp/session"
)

// freshBound is API.md's promise: once a write has returned, every other
// instance that shares the Redis stops serving the old data within 100 ms.
const freshBound = 100 * time.Millisecond

// sharedRedis is a Redis topology that tests share: the cluster or the
// Sentinel group internal/redistest starts once per test binary. Nothing
// here kills its nodes (failover_test.go starts its own).
type sharedRedis struct {
	name string
	// masters is how many masters the keys are spread over.
	masters int
	// config returns a Config for it with a key prefix of the test's own.
	config func(t *testing.T) redisx.Config
	// masterOf returns the address of the master that owns key's slot.
	masterOf func(t *testing.T, key string) string
}

func sharedRedises() []sharedRedis {
	return []sharedRedis{
		{
			name:    "cluster",
			masters: 3,
			config:  func(t *testing.T) redisx.Config { return redistest.SharedCluster(t).Config(t) },
			masterOf: func(t *testing.T, key string) string {
				t.Helper()
				m := redistest.SharedCluster(t).MasterOf(t, key)
				if m == nil {
					t.Fatalf("the shared cluster has no master for %s", key)
				}
				return m.Addr
			},
		},
		{
			name:    "sentinel",
			masters: 1,
			config:  func(t *testing.T) redisx.Config { return redistest.SharedSentinel(t).Config(t) },
			masterOf: func(t *testing.T, _ string) string {
				t.Helper()
				return redistest.SharedSentinel(t).Master(t).Addr
			},
		},
	}
}

// seeder makes accounts without paying for argon2id per user (about 0.4 s
// a hash or check under -race): users are stored directly with one hash
// made once, then signed in through the API (one check) or through the
// server's own session store (none).
type seeder struct {
	st   *sqlstore.Store
	pass string
	hash string
}

func newSeeder(tb testing.TB, st *sqlstore.Store) *seeder {
	tb.Helper()
	pass := "correct horse " + theater.NewID()
	hash, err := password.Hash(pass)
	if err != nil {
		tb.Fatalf("password.Hash: %v", err)
	}
	return &seeder{st: st, pass: pass, hash: hash}
}

// user stores a new user with the seeder's password.
func (s *seeder) user(tb testing.TB, role theater.Role) theater.User {
	tb.Helper()
	u, err := s.newUser(role)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// newUser is user for any goroutine.
func (s *seeder) newUser(role theater.Role) (theater.User, error) {
	n := theater.NewUser{Email: uniqueEmail(string(role)), Password: s.pass, Name: "Seeded " + string(role), Role: role}
	if err := n.ValidateTrusted(); err != nil {
		return theater.User{}, fmt.Errorf("seed user: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := s.st.CreateUser(ctx, n, s.hash)
	if err != nil {
		return theater.User{}, fmt.Errorf("CreateUser: %w", err)
	}
	return u, nil
}

// login signs u in on in through POST /api/auth/login.
func (s *seeder) login(tb testing.TB, in *instance, u theater.User) account {
	tb.Helper()
	c := in.client(tb)
	r := c.do("POST", "/api/auth/login", map[string]any{"email": u.Email, "password": s.pass})
	want(tb, r, http.StatusOK, "login")
	var lr loginResponse
	r.json(tb, &lr)
	if lr.Token == "" || lr.User.ID != u.ID {
		tb.Fatalf("login = %s", r.body)
	}
	c.token = lr.Token
	return account{user: u, email: u.Email, pass: s.pass, c: c}
}

// session signs u in on in through the server's own session store, with
// the NewSession the login handler makes once the password is checked: the
// same keys as a real sign-in, without the check.
func (s *seeder) session(tb testing.TB, in *instance, u theater.User) account {
	tb.Helper()
	a, err := s.newSession(tb, in, u)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// newSession is session for any goroutine.
func (s *seeder) newSession(tb testing.TB, in *instance, u theater.User) (account, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, _, err := in.api.sessions.Store().Create(ctx, session.NewSession{
		UserID: u.ID, Email: u.Email, Role: string(u.Role), UserAgent: "cluster-test", IP: "127.0.0.1",
		Attrs: map[string]string{attrName: u.Name, attrCreatedAt: u.CreatedAt.UTC().Format(time.RFC3339Nano)},
	})
	if err != nil {
		return account{}, fmt.Errorf("session create: %w", err)
	}
	c := &client{tb: tb, base: in.URL, hc: in.Client(), token: tok}
	return account{user: u, email: u.Email, pass: s.pass, c: c}, nil
}

// scriptItems is the part of a list response (GET /api/scripts and GET
// /api/users/{id}/scripts) the tests read.
type scriptItems struct {
	Items []theater.Script `json:"items"`
}

// titleIn returns the title of script id in a list response body, or "".
func titleIn(tb testing.TB, r resp, id string) string {
	tb.Helper()
	var l scriptItems
	r.json(tb, &l)
	for _, sc := range l.Items {
		if sc.ID == id {
			return sc.Title
		}
	}
	return ""
}

// readTitle reads path on c and returns the title of script id in it (the
// script itself, or its row in a list) with the X-Cache header.
func readTitle(tb testing.TB, c *client, path, id string) (title, xcache string) {
	tb.Helper()
	r := c.do("GET", path, nil)
	want(tb, r, http.StatusOK, "GET "+path)
	if strings.HasPrefix(path, "/api/scripts/") {
		var sc theater.Script
		r.json(tb, &sc)
		return sc.Title, r.header.Get("X-Cache")
	}
	return titleIn(tb, r, id), r.header.Get("X-Cache")
}

// readCached is readTitle for assertions on X-Cache: a read that bypassed
// the cache because its lookup missed the 100ms deadline (a loaded machine
// under -race) says nothing about the entry, so it is read again, a few
// times.
func readCached(tb testing.TB, c *client, path, id string) (title, xcache string) {
	tb.Helper()
	for range 5 {
		if title, xcache = readTitle(tb, c, path, id); xcache != "BYPASS" {
			return title, xcache
		}
		time.Sleep(20 * time.Millisecond)
	}
	return title, xcache
}

// pollFresh reads path on c until it shows title for script id, and fails
// the test if a read that started more than freshBound after written still
// showed something else. It returns how long after written the last stale
// read started (0 when the first read was fresh).
func pollFresh(tb testing.TB, c *client, path, id, title string, written time.Time) time.Duration {
	tb.Helper()
	var staleFor time.Duration
	for {
		start := time.Now()
		got, xcache := readTitle(tb, c, path, id)
		if got == title {
			return staleFor
		}
		staleFor = start.Sub(written)
		if staleFor > freshBound {
			tb.Fatalf("GET %s still serves %q (X-Cache %s) %v after the update to %q returned on the other instance; API.md allows %v",
				path, got, xcache, staleFor.Round(time.Millisecond), title, freshBound)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestClusterAndSentinelTwoInstances runs two instances on the shared
// cluster and on the shared Sentinel group, each with SQLite and with
// PostgreSQL: sessions and cached entries are shared, a purge on one
// reaches the other within 100 ms on every master, and a sign-out ends
// the session everywhere.
func TestClusterAndSentinelTwoInstances(t *testing.T) {
	t.Parallel()
	for _, topo := range sharedRedises() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			eachBackend(t, func(t *testing.T, b backend) {
				st, _ := b.open(t)
				cfg := topo.config(t)
				a := newInstance(t, options{store: st, redis: cfg})
				bb := newInstance(t, options{store: st, redis: cfg})
				if a.rdb == bb.rdb {
					t.Fatal("the two instances share one redisx.Client; each must have its own")
				}
				sd := newSeeder(t, st)

				// A session made on A works on B.
				author := sd.login(t, a, sd.user(t, theater.RolePlaywright))
				onB := author.c.on(bb)
				var me meResponse
				r := onB.do("GET", "/api/me", nil)
				want(t, r, http.StatusOK, "session from A on B")
				r.json(t, &me)
				if me.User.ID != author.user.ID {
					t.Fatalf("B's /api/me = user %q, want %q", me.User.ID, author.user.ID)
				}

				// Six scripts, until every master owns the cache keys of
				// the same number.
				keys := domainKeys{a.rdb.Keys()}
				each := 6 / topo.masters
				perMaster := map[string][]theater.Script{}
				var scripts []theater.Script
				for i := 0; len(perMaster) < topo.masters || minLen(perMaster) < each; i++ {
					if i == 60 {
						t.Fatalf("60 scripts landed on %d masters, want %d", len(perMaster), topo.masters)
					}
					r := author.c.do("POST", "/api/scripts", scriptBody(fmt.Sprintf("Spread %d", i)))
					want(t, r, http.StatusCreated, "create")
					var sc theater.Script
					r.json(t, &sc)
					m := topo.masterOf(t, keys.Script(sc.ID))
					if len(perMaster[m]) < each {
						perMaster[m] = append(perMaster[m], sc)
						scripts = append(scripts, sc)
					}
				}

				anonA, anonB := a.client(t), bb.client(t)
				lists := []string{
					"/api/scripts?author=" + author.user.ID + "&limit=100",
					"/api/users/" + author.user.ID + "/scripts?limit=100", // up to 60 scripts: one page
				}
				var worst time.Duration
				for i, sc := range scripts {
					// Writer and reader swap sides from one script to the next.
					writer, reader, wname, rname := author.c, anonB, "A", "B"
					if i%2 == 1 {
						writer, reader, wname, rname = author.c.on(bb), anonA, "B", "A"
					}
					other := anonA
					if rname == "A" {
						other = anonB
					}
					path := "/api/scripts/" + sc.ID
					// One entry for both: a MISS on the reader is a HIT on the other.
					if title, x := readCached(t, reader, path, sc.ID); title != sc.Title || x != "MISS" {
						t.Fatalf("first read of %s on %s: %q, X-Cache %s; want %q, MISS", sc.ID, rname, title, x, sc.Title)
					}
					if _, x := readCached(t, other, path, sc.ID); x != "HIT" {
						t.Fatalf("read of %s on %s after %s stored it: X-Cache %s, want HIT (the entry is shared)", sc.ID, wname, rname, x)
					}
					for _, p := range append([]string{path}, lists...) {
						readCached(t, reader, p, sc.ID)
						if title, x := readCached(t, reader, p, sc.ID); title != sc.Title || x != "HIT" {
							t.Fatalf("second read of %s on %s: %q, X-Cache %s; want %q, HIT", p, rname, title, x, sc.Title)
						}
					}

					next := fmt.Sprintf("%s v2 on %s", sc.Title, wname)
					want(t, writer.do("PUT", path, scriptBody(next)), http.StatusOK, "update on "+wname)
					written := time.Now()
					for _, p := range append([]string{path}, lists...) {
						worst = max(worst, pollFresh(t, reader, p, sc.ID, next, written))
					}
					// The purge reached every tier: the next reads fill the
					// entry again and hit it, on the reader and the writer.
					readCached(t, reader, path, sc.ID)
					for _, c := range []*client{reader, other} {
						if title, x := readCached(t, c, path, sc.ID); title != next || x != "HIT" {
							t.Fatalf("read of %s after the purge: %q, X-Cache %s; want %q, HIT", sc.ID, title, x, next)
						}
					}
				}

				// The entries are on the masters MasterOf named.
				byMaster := redistest.KeysByMaster(t, a.rdb)
				for m, scs := range perMaster {
					for _, sc := range scs {
						entry := keys.Prefix() + "script:{" + redisx.EscapeKeyPart(sc.ID) + "}"
						if !hasKeyPrefix(byMaster[m], entry) {
							t.Errorf("no cache entry %s* on master %s, which owns its slot (keys there: %d)", entry, m, len(byMaster[m]))
						}
					}
				}
				t.Logf("%s/%s: %d scripts on %d masters; slowest purge seen by the other instance: stale until %v after the write returned (bound %v)",
					topo.name, b.name, len(scripts), len(perMaster), worst.Round(time.Microsecond), freshBound)

				// A sign-out on B ends the session on B at once and on A
				// within API.md's 100 ms.
				want(t, onB.do("POST", "/api/auth/logout", nil), http.StatusNoContent, "logout on B")
				want(t, onB.do("GET", "/api/me", nil), http.StatusUnauthorized, "B after its own logout")
				wantWithin(t, author.c, "GET", "/api/me", http.StatusUnauthorized, freshBound, "A after the logout on B")
			})
		})
	}
}

func minLen[T any](m map[string][]T) int {
	n := -1
	for _, v := range m {
		if n < 0 || len(v) < n {
			n = len(v)
		}
	}
	return n
}

func hasKeyPrefix(keys []string, prefix string) bool {
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// TestClusterAndSentinelSharedLimit: requests split over two instances are
// refused at exactly the limit, for users whose limiter keys live on each
// master and for an anonymous client IP.
func TestClusterAndSentinelSharedLimit(t *testing.T) {
	t.Parallel()
	const limit = 12
	for _, topo := range sharedRedises() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			st, _ := openSQLite(t)
			cfg := topo.config(t)
			lim := func(d *Deps) { d.APIRate = ratelimit.Rate{Limit: limit, Window: time.Minute} }
			a := newInstance(t, options{store: st, redis: cfg, edit: lim})
			bb := newInstance(t, options{store: st, redis: cfg, edit: lim})
			sd := newSeeder(t, st)
			keys := domainKeys{a.rdb.Keys()}

			// Users whose limiter keys (ratelimit:{user:<id>}) land on
			// every master; no request has been made for them yet.
			type probe struct {
				name   string
				c      *client
				path   string
				id     string // the limiter's identifier
				master string // the master that owns its slot
			}
			var probes []probe
			seen := map[string]bool{}
			for i := 0; len(seen) < topo.masters || len(probes) < 3; i++ {
				if i == 60 {
					t.Fatalf("60 users' limiter keys landed on %d masters, want %d", len(seen), topo.masters)
				}
				u := sd.user(t, theater.RoleProducer)
				m := topo.masterOf(t, keys.RateLimit("user:"+u.ID))
				if seen[m] && len(seen) < topo.masters {
					continue
				}
				seen[m] = true
				probes = append(probes, probe{"user " + u.ID, sd.session(t, a, u).c, "/api/me", "user:" + u.ID, m})
			}
			// Anonymous requests are limited per client IP: no request
			// from this IP has reached these instances yet.
			ip := ratelimit.AddrKey(netip.MustParseAddr("127.0.0.1"))
			probes = append(probes, probe{"client IP", a.client(t), "/api/scripts?limit=1", ip, topo.masterOf(t, keys.RateLimit(ip))})

			for _, p := range probes {
				inst := []*instance{a, bb}
				for i := 1; i <= limit+3; i++ {
					name := "AB"[i%2 : i%2+1]
					r := p.c.on(inst[i%2]).do("GET", p.path, nil)
					if i <= limit {
						want(t, r, http.StatusOK, fmt.Sprintf("%s: request %d of %d on %s", p.name, i, limit, name))
						if got := r.header.Get("X-RateLimit-Remaining"); got != strconv.Itoa(limit-i) {
							t.Errorf("%s: request %d on %s: X-RateLimit-Remaining %q, want %d", p.name, i, name, got, limit-i)
						}
						continue
					}
					if r.status != http.StatusTooManyRequests {
						t.Fatalf("%s: request %d on %s: status %d, want 429: %d requests admitted over two instances with a shared limit of %d",
							p.name, i, name, r.status, i, limit)
					}
					want(t, r, http.StatusTooManyRequests, p.name+": over the limit")
					if r.header.Get("Retry-After") == "" {
						t.Errorf("%s: 429 on %s without Retry-After", p.name, name)
					}
				}
				t.Logf("%s/%s: limiter key on master %s: exactly %d of %d requests split over two instances admitted",
					topo.name, p.name, p.master, limit, limit+3)
			}
			// The limiter's keys are where MasterOf said.
			byMaster := redistest.KeysByMaster(t, a.rdb)
			for _, p := range probes {
				if k := keys.RateLimit(p.id); !hasKeyPrefix(byMaster[p.master], k) {
					t.Errorf("%s: no limiter key %s* on master %s", p.name, k, p.master)
				}
			}
		})
	}
}

// TestClusterKeySpreadAPI runs hundreds of users and scripts through two
// instances on the shared cluster and checks where their keys landed: the
// session, limiter and cache keys each on all three masters, none holding
// more than 40 % of a kind. Each of those kinds has at least 1000
// independent hash tags (one per user, per script, per cache tag), so a
// master's share is 33 % ± 1.5 % (one standard deviation) and 40 % is more
// than four deviations away: a failure means keys share a tag they should
// not, not bad luck. The view counters (one tag per script, 500) are
// checked to be on every master and their shares logged.
func TestClusterKeySpreadAPI(t *testing.T) {
	t.Parallel()
	const (
		spreadUsers   = 1000 // a fifth of them playwrights
		spreadScripts = 500
		workers       = 8
	)
	cfg := redistest.SharedCluster(t).Config(t)
	st, _ := openSQLite(t)
	a := newInstance(t, options{store: st, redis: cfg})
	bb := newInstance(t, options{store: st, redis: cfg})
	sd := newSeeder(t, st)
	start := time.Now()

	// Users, each signed in on one instance and reading /api/me on the
	// other (a session and a per-user limiter key each); every fifth is a
	// playwright.
	users := make([]account, spreadUsers)
	parallel(t, workers, spreadUsers, func(i int) error {
		role := theater.RoleProducer
		if i%5 == 0 {
			role = theater.RolePlaywright
		}
		u, err := sd.newUser(role)
		if err != nil {
			return err
		}
		if users[i], err = sd.newSession(t, []*instance{a, bb}[i%2], u); err != nil {
			return err
		}
		return expect(users[i].c.on([]*instance{bb, a}[i%2]), "GET", "/api/me", nil, http.StatusOK, nil)
	})
	var authors []account
	for i := 0; i < spreadUsers; i += 5 {
		authors = append(authors, users[i])
	}
	t.Logf("%d users signed in and read /api/me in %v", spreadUsers, time.Since(start).Round(time.Millisecond))
	// Scripts, each created on one instance and read (stored in the
	// response cache) on the other, with their authors' profiles and lists.
	parallel(t, workers, spreadScripts, func(i int) error {
		au := authors[i%len(authors)]
		in, other := []*instance{a, bb}[i%2], []*instance{bb, a}[i%2]
		var sc theater.Script
		if err := expect(au.c.on(in), "POST", "/api/scripts", scriptBody(fmt.Sprintf("Spread %d", i)), http.StatusCreated, &sc); err != nil {
			return err
		}
		paths := []string{"/api/scripts/" + sc.ID}
		if i >= spreadScripts-len(authors) { // each author's last script
			paths = append(paths, "/api/users/"+au.user.ID, "/api/users/"+au.user.ID+"/scripts")
		}
		anon := other.client(t)
		for _, p := range paths {
			if err := expect(anon, "GET", p, nil, http.StatusOK, nil); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("end-to-end run: %d users, %d scripts in %v", spreadUsers, spreadScripts, time.Since(start).Round(time.Millisecond))

	// Where the keys are, once each instance has sent its view counts
	// (every ViewFlushInterval, 50ms here).
	prefix := a.rdb.Keys().Prefix()
	var byMaster map[string][]string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		byMaster = redistest.KeysByMaster(t, a.rdb)
		views := 0
		for _, ks := range byMaster {
			for _, k := range ks {
				if strings.HasPrefix(k, prefix+"views:script:{") {
					views++
				}
			}
		}
		if views >= spreadScripts || time.Now().After(deadline) {
			break
		}
	}
	if len(byMaster) != 3 {
		t.Fatalf("keys on %d masters, want 3", len(byMaster))
	}
	kinds := []struct {
		name       string
		namespaces []string // key namespaces (the part before ":{")
		least      int      // at least this many keys of the kind
		most       float64  // the largest share a master may hold
	}{
		{"session", []string{"session", "sessions:user", "sessions:epoch"}, spreadUsers, 0.40},
		{"limiter", []string{"ratelimit"}, spreadUsers, 0.40},
		{"cache", []string{"script", "scripts:list", "scripts:user", "user", "httpcache:tag"}, 2 * spreadScripts, 0.40},
		{"views", []string{"views:script"}, spreadScripts, 1},
	}
	kindOf := map[string]string{}
	for _, k := range kinds {
		for _, ns := range k.namespaces {
			kindOf[ns] = k.name
		}
	}
	counts := map[string]map[string]int{} // kind -> master -> keys
	others := map[string]int{}            // namespaces of no kind above
	for m, ks := range byMaster {
		for _, key := range ks {
			ns, _, ok := strings.Cut(strings.TrimPrefix(key, prefix), ":{")
			kind := kindOf[ns]
			if !ok || kind == "" {
				others[ns]++
				continue
			}
			if counts[kind] == nil {
				counts[kind] = map[string]int{}
			}
			counts[kind][m]++
		}
	}
	masters := make([]string, 0, len(byMaster))
	for m := range byMaster {
		masters = append(masters, m)
	}
	sort.Strings(masters)
	for _, k := range kinds {
		total := 0
		for _, n := range counts[k.name] {
			total += n
		}
		if total < k.least {
			t.Errorf("%s keys: %d, want at least %d", k.name, total, k.least)
			continue
		}
		line := fmt.Sprintf("%-8s %6d keys:", k.name, total)
		for _, m := range masters {
			n := counts[k.name][m]
			share := float64(n) / float64(total)
			line += fmt.Sprintf("  %s %5.1f%%", m, 100*share)
			if n == 0 || share > k.most {
				t.Errorf("%s keys on master %s: %d of %d (%.1f%%); want some and at most %.0f%%", k.name, m, n, total, 100*share, 100*k.most)
			}
		}
		t.Log(line)
	}
	if len(others) > 0 {
		t.Logf("keys of no kind above, by namespace: %v", others)
	}
}

// parallel runs f(0..n-1) on workers goroutines and fails the test with
// the first error.
func parallel(t *testing.T, workers, n int, f func(i int) error) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// expect makes one request from any goroutine (it never fails the test
// itself) and decodes a body of the wanted status into v when v is not nil.
func expect(c *client, method, path string, body any, status int, v any) error {
	r := hdo(c.hc, method, c.base+path, c.token, body)
	if r.err != nil {
		return r.err
	}
	if r.status != status {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, r.status, status, r.body)
	}
	if v != nil {
		return json.Unmarshal(r.body, v)
	}
	return nil
}
