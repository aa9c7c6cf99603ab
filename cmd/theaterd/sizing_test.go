package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/theaterscriptpro/tsp/internal/logbuf"
	"github.com/theaterscriptpro/tsp/internal/redistest"
)

// sizing is a theaterd on a throwaway Redis of its own, and an admin
// connection to that Redis to measure it.
type sizing struct {
	t     *testing.T
	admin rueidis.Client
	base  string
	anon  *apiCall
	out   *logbuf.Buffer
}

func newSizing(t *testing.T, redisArgs ...string) *sizing {
	srv := redistest.StartServer(t, redisArgs...)
	admin, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	addr := freeAddr(t)
	_, out := start(t, "HTTP_ADDR="+addr, "REDIS_URL=redis://"+srv.Addr+"/0", "REDIS_KEY_PREFIX=tsp:",
		"TRUSTED_PROXIES=127.0.0.1", "RATE_LIMIT_API=1000000/1m", "SHUTDOWN_DELAY=0s", "LOG_LEVEL=warn")
	waitFor(t, "http://"+addr+"/readyz", 200, out)
	base := "http://" + addr
	return &sizing{t: t, admin: admin, base: base, out: out,
		anon: &apiCall{c: &http.Client{Timeout: 10 * time.Second}, base: base, tb: t, log: out}}
}

func (s *sizing) info(field string) int64 {
	txt, err := s.admin.Do(context.Background(), s.admin.B().Info().Section("all").Build()).ToString()
	if err != nil {
		s.t.Fatal(err)
	}
	for _, line := range strings.Split(txt, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	s.t.Fatalf("INFO has no %s", field)
	return 0
}

// keyKinds is MEMORY USAGE summed and counted per key shape (ids made *).
func (s *sizing) keyKinds() map[string][2]int64 {
	ctx := context.Background()
	ids := regexp.MustCompile(`\{[^}]*\}|[0-9A-Za-z_-]{16,}|\d+(\.\d+){3}|\d{3,}`)
	out := map[string][2]int64{}
	var cursor uint64
	for {
		e, err := s.admin.Do(ctx, s.admin.B().Scan().Cursor(cursor).Count(1000).Build()).AsScanEntry()
		if err != nil {
			s.t.Fatal(err)
		}
		for _, k := range e.Elements {
			n, err := s.admin.Do(ctx, s.admin.B().MemoryUsage().Key(k).Samples(0).Build()).AsInt64()
			if err != nil {
				continue // expired meanwhile
			}
			kind := ids.ReplaceAllString(k, "*")
			v := out[kind]
			out[kind] = [2]int64{v[0] + 1, v[1] + n}
		}
		if cursor = e.Cursor; cursor == 0 {
			return out
		}
	}
}

func (s *sizing) report(kinds map[string][2]int64) string {
	var names []string
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		v := kinds[k]
		fmt.Fprintf(&b, "\n  %-60s %6d keys  %6d B/key (MEMORY USAGE)", k, v[0], v[1]/v[0])
	}
	return b.String()
}

func (s *sizing) as(token, ip string) *apiCall {
	a := *s.anon
	a.bearer = token
	if ip != "" {
		a.c = &http.Client{Timeout: 10 * time.Second, Transport: forwardedFor{ip}}
	}
	return &a
}

// forwardedFor sends X-Forwarded-For: ip (TRUSTED_PROXIES=127.0.0.1
// believes it), so each ip is a client of its own for the limiter.
type forwardedFor struct{ ip string }

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.ip)
	return http.DefaultTransport.RoundTrip(r)
}

func (s *sizing) signIn(users, perUser int) []string {
	var tokens []string
	for u := range users {
		email := fmt.Sprintf("u%d-%d@example.org", u, time.Now().UnixNano())
		s.anon.do("POST", "/api/auth/register", map[string]any{"email": email, "password": "correct horse battery", "name": "N", "role": "playwright"}, 201)
		for range perUser {
			tokens = append(tokens, s.anon.do("POST", "/api/auth/login", map[string]any{"email": email, "password": "correct horse battery"}, 200)["token"].(string))
		}
	}
	return tokens
}

func (s *sizing) scripts(token string, n, synopsis int) []string {
	var ids []string
	for i := range n {
		body := map[string]any{"title": fmt.Sprintf("Play %d", i), "genre": "drama", "synopsis": strings.Repeat("x", synopsis),
			"castMin": 1, "castMax": 5, "durationMinutes": 90}
		ids = append(ids, s.as(token, "").do("POST", "/api/scripts", body, 201)["id"].(string))
	}
	return ids
}

// TestRedisMemoryPerItem measures what docs/production.md sizes maxmemory
// from: Redis's used_memory growth per session, per limiter client and per
// cached script, and MEMORY USAGE per key shape.
func TestRedisMemoryPerItem(t *testing.T) {
	if testing.Short() {
		t.Skip("measures with a theaterd and a Redis of its own")
	}
	s := newSizing(t)
	const users, perUser, clients, cached = 5, 10, 200, 200

	// One of each first, so the Lua scripts and connection buffers are in
	// place before the measuring starts.
	warm := s.signIn(1, 1)
	warmID := s.scripts(warm[0], 1, 1000)[0]
	s.anon.do("GET", "/api/scripts/"+warmID, nil, 200)
	s.as("", "10.9.9.9").do("GET", "/api/scripts/"+warmID, nil, 200)
	time.Sleep(1500 * time.Millisecond)

	m0 := s.info("used_memory")
	tokens := s.signIn(users, perUser)
	m1 := s.info("used_memory")
	ids := s.scripts(tokens[0], cached, 1000)
	m2 := s.info("used_memory")
	for _, id := range ids {
		s.anon.do("GET", "/api/scripts/"+id, nil, 200)
	}
	time.Sleep(1500 * time.Millisecond) // the view counters' flush
	m3 := s.info("used_memory")
	for i := range clients {
		s.as("", fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)).do("GET", "/api/scripts/"+ids[0], nil, 200)
	}
	m4 := s.info("used_memory")
	t.Logf("used_memory growth: %d B per session (%d users x %d sessions, with the users' indexes), "+
		"%d B per script created (cache purges), %d B per cached script read once (1,000-byte synopsis; entry, tags, view counter), "+
		"%d B per limiter client", (m1-m0)/int64(users*perUser), users, perUser, (m2-m1)/cached, (m3-m2)/cached, (m4-m3)/clients)
	t.Logf("keys by shape:%s", s.report(s.keyKinds()))
}

// TestEvictionPolicies fills a Redis capped by maxmemory with cached
// scripts after 20 sign-ins and 50 limiter clients, under each eviction
// policy, and measures what survives: sessions (GET /api/me), limiter
// keys, and whether new sign-ins and cache stores still work. The guide's
// choice of policy rests on these figures.
func TestEvictionPolicies(t *testing.T) {
	if testing.Short() {
		t.Skip("fills three Redis servers past maxmemory")
	}
	for _, policy := range []string{"noeviction", "volatile-ttl", "allkeys-lru"} {
		t.Run(policy, func(t *testing.T) {
			s := newSizing(t, "--maxmemory", "3mb", "--maxmemory-policy", policy)
			tokens := s.signIn(2, 10)
			const clients = 50
			for i := range clients {
				s.as("", fmt.Sprintf("10.2.0.%d", i+1)).do("GET", "/api/scripts", nil, 200)
			}
			limiterKeys := func() int {
				n := 0
				for kind, v := range s.keyKinds() {
					if strings.Contains(kind, ":ratelimit:") {
						n += int(v[0])
					}
				}
				return n
			}
			limitersBefore := limiterKeys()
			lateEmail := fmt.Sprintf("late%d@example.org", time.Now().UnixNano())
			s.anon.do("POST", "/api/auth/register", map[string]any{"email": lateEmail, "password": "correct horse battery", "name": "N", "role": "playwright"}, 201)
			statuses := map[int]int{}
			for i := range 600 {
				body := map[string]any{"title": fmt.Sprintf("Flood %d", i), "genre": "drama", "synopsis": strings.Repeat("y", 5000),
					"castMin": 1, "castMax": 5, "durationMinutes": 90}
				status, b := s.as(tokens[0], "").send("POST", "/api/scripts", body)
				var created struct{ ID string }
				_ = json.Unmarshal(b, &created)
				statuses[status]++
				if created.ID != "" {
					statuses[1000+s.anon.status("GET", "/api/scripts/"+created.ID, nil)]++
				}
			}
			alive, gone, failed := 0, 0, 0
			for _, tok := range tokens {
				switch s.as(tok, "").status("GET", "/api/me", nil) {
				case 200:
					alive++
				case 401:
					gone++
				default:
					failed++
				}
			}
			newLogin := s.anon.status("POST", "/api/auth/login", map[string]any{"email": lateEmail, "password": "correct horse battery"})
			t.Logf("%s: after 600 creates+reads of 5 KB scripts into maxmemory 3mb: used_memory %d, evicted_keys %d; "+
				"sessions %d/%d alive (%d signed out, %d errors); limiter keys %d of %d left; a new sign-in %d; "+
				"statuses (1xxx = the read after a create) %v",
				policy, s.info("used_memory"), s.info("evicted_keys"), alive, len(tokens), gone, failed,
				limiterKeys(), limitersBefore, newLogin, statuses)
			// What docs/production.md says of each policy.
			switch policy {
			case "volatile-ttl":
				if alive != len(tokens) || newLogin != 200 {
					t.Errorf("volatile-ttl: %d of %d sessions usable, new sign-in %d; the guide says all, and 200", alive, len(tokens), newLogin)
				}
			case "noeviction":
				if gone != 0 || failed != 0 || newLogin != 503 {
					t.Errorf("noeviction: %d sessions signed out, %d signed-in requests failed, a new sign-in %d; the guide says none lost, signed-in requests still served, new sign-ins 503 while Redis is full", gone, failed, newLogin)
				}
			case "allkeys-lru":
				if gone == 0 {
					t.Errorf("allkeys-lru signed nobody out; the guide says it evicts sessions")
				}
			}
		})
	}
}
