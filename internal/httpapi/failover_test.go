package httpapi

// Failover at the HTTP layer (issue 7): one instance serves a steady
// request mix (catalogue reads by id and list, profiles, GET /api/me for two
// users, script updates by two authors) while the master that owns a hot
// script's keys is killed (SIGKILL, as a crash), on a Redis Cluster and on a
// Sentinel group of the test's own. Checked:
//
//   - public reads always answer 200 within publicReadBound; while the hot
//     script's slot has no master they come from the database (X-Cache
//     BYPASS or MISS); on Cluster a script whose keys are on another master
//     is still served from the cache (some HITs);
//   - a signed-in request whose user's slot has no master is never
//     honoured (never 200) and answers 503 problem+json, only from the kill
//     until the client's bound after the promotion; on Cluster a user whose
//     keys live on another master never notices (always 200); never a 500;
//   - every update acknowledged with 200 is in the database afterwards,
//     and a read after an acknowledged update never shows the old title
//     (read-your-writes), failover or not;
//   - with no restart, a round of every request is fully normal again (all
//     2xx, cached reads HIT) within the bound the Redis-level tests justify
//     (redisx/topology_test.go): Cluster 1.5 × node timeout + 1 s + 2 s,
//     Sentinel down-after + 2 s + 2 s, the client's share at most 2 s after
//     the promotion; both times are logged as "FAILOVER API", and from
//     then on every request answers 2xx;
//   - no response body and no log line carries CROSSSLOT, a redirection
//     (MOVED/ASK) or a LOADING/READONLY/CLUSTERDOWN/TRYAGAIN/MASTERDOWN/
//     NOSCRIPT reply.
//
// Not parallel: they measure time.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/logbuf"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/redisx"
)

// publicReadBound is the most a public read may take during a failover:
// generous, for a loaded 2-core machine under -race, but far below a hung
// request. Every Redis call on a read's path is bounded (the cache lookup
// by 100ms, the limiter by 75ms, any other call by the client's 1s command
// timeout), and the circuit breaker fails the calls fast once open.
const publicReadBound = 3 * time.Second

// redisErrorIn returns the Redis error reply s carries, or "": what a
// caller must never see (a cross-slot command, a redirection, or a role or
// loading error the client should have handled itself).
func redisErrorIn(s string) string {
	for _, mark := range []string{"CROSSSLOT", "MOVED ", "ASK ", "LOADING ", "READONLY ", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "NOSCRIPT"} {
		if strings.Contains(s, mark) {
			return strings.TrimSpace(mark)
		}
	}
	return ""
}

// hres is one response read in full, with when its request started and
// ended.
type hres struct {
	status     int
	header     http.Header
	body       []byte
	start, end time.Time
	err        error
}

// took is how long the request took, rounded for messages.
func (r hres) took() time.Duration { return r.end.Sub(r.start).Round(time.Millisecond) }

// hdo makes one request. It never fails a test, so any goroutine may call
// it.
func hdo(hc *http.Client, method, url, token string, body any) hres {
	r := hres{start: time.Now()}
	defer func() { r.end = time.Now() }()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			r.err = err
			return r
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		r.err = err
		return r
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := hc.Do(req)
	if err != nil {
		r.err = fmt.Errorf("%s %s: %w", method, url, err)
		return r
	}
	defer res.Body.Close()
	r.status, r.header = res.StatusCode, res.Header
	r.body, r.err = io.ReadAll(res.Body)
	r.end = time.Now()
	return r
}

// failoverTarget is a Redis of the test's own whose master the test kills.
type failoverTarget struct {
	name string
	cfg  redisx.Config
	// masterOf returns the master that owns key's slot now (nil while none
	// does; the dead master until the servers notice).
	masterOf func(key string) *redistest.Server
	// kill kills the master that owns key's slot and returns it.
	kill func(key string) *redistest.Server
	// cluster: users whose keys live on other masters must not notice the
	// failover (redisx keeps a circuit breaker per master).
	cluster bool
	// total bounds the time from the kill to the first fully normal round;
	// client bounds it from the promotion.
	total, client time.Duration
}

// TestFailoverCluster kills the master that owns a hot script's keys (and
// a signed-in user's) on a 3+3 cluster under the request mix.
func TestFailoverCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	runFailover(t, failoverTarget{
		name:     "cluster",
		cfg:      c.Config(t),
		masterOf: func(key string) *redistest.Server { return c.MasterOf(t, key) },
		kill:     func(key string) *redistest.Server { return c.KillMaster(t, key) },
		cluster:  true,
		// Why these bounds: see TestClusterFailover in redisx.
		total:  redistest.ClusterNodeTimeout*3/2 + time.Second + 2*time.Second,
		client: 2 * time.Second,
	})
}

// TestFailoverSentinel kills the Sentinel group's master under the request
// mix: every key is on it, so every signed-in request may answer 503 until
// the promotion, and none may after the client's bound.
func TestFailoverSentinel(t *testing.T) {
	g := redistest.StartSentinel(t)
	runFailover(t, failoverTarget{
		name:     "sentinel",
		cfg:      g.Config(t),
		masterOf: func(string) *redistest.Server { return g.Master(t) },
		kill:     func(string) *redistest.Server { return g.KillMaster(t) },
		// Why these bounds: see TestSentinelFailover in redisx.
		total:  redistest.SentinelDownAfter + 2*time.Second + 2*time.Second,
		client: 2 * time.Second,
	})
}

// breakersMoved returns when redisx's JSON log says it gave the promoted
// master (Sentinel) or masters (Cluster) breakers of their own, or zero.
func breakersMoved(log string) time.Time {
	for _, line := range strings.Split(log, "\n") {
		var rec struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil &&
			(strings.HasPrefix(rec.Msg, "redis master changed") || strings.HasPrefix(rec.Msg, "redis cluster masters changed")) {
			return rec.Time
		}
	}
	return time.Time{}
}

// fevent is one request of the mix.
type fevent struct {
	kind string // what the request is, for messages
	who  string // "anon", "hot" (keys on the killed master) or "steady"
	hres
}

// roundResult is one round of every request kind.
type roundResult struct {
	start, end time.Time
	normal     bool   // every request 2xx and the cached reads HIT
	failed     bool   // a request was not 2xx
	why        string // what was not normal
	slowest    string // the slowest request, for messages
}

// failoverMix is the request mix and what it saw.
type failoverMix struct {
	hc              *http.Client
	base            string
	hot, other, own theater.Script // own is the hot user's
	steady, hotUser account

	mu       sync.Mutex
	events   []fevent
	rounds   []roundResult
	problems []string
	tried    map[string][]string // script id -> titles sent, in order
	acked    map[string][]string // script id -> titles acknowledged, in order
}

func (m *failoverMix) fail(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.problems) < 30 {
		m.problems = append(m.problems, fmt.Sprintf(format, args...))
	}
}

// req makes one request of the mix, checks what holds for every response
// and records it.
func (m *failoverMix) req(kind, who, method, path, token string, body any) hres {
	r := hdo(m.hc, method, m.base+path, token, body)
	switch {
	case r.err != nil:
		m.fail("%s: %v", kind, r.err)
	case r.header.Get("X-Request-ID") == "":
		m.fail("%s: no X-Request-ID", kind)
	case r.status >= 400 && r.header.Get("Content-Type") != "application/problem+json":
		m.fail("%s: status %d with Content-Type %q, want problem+json", kind, r.status, r.header.Get("Content-Type"))
	}
	if mark := redisErrorIn(string(r.body)); mark != "" {
		m.fail("%s: the body carries a Redis %s error: %s", kind, mark, r.body)
	}
	if r.status >= 400 {
		var p problemBody
		if err := json.Unmarshal(r.body, &p); err != nil || p.Status != r.status {
			m.fail("%s: problem body %s does not match status %d", kind, r.body, r.status)
		}
		for _, leak := range []string{"redis", "rueidis", "slot", "sql"} {
			if strings.Contains(strings.ToLower(p.Detail), leak) {
				m.fail("%s: detail %q leaks %q", kind, p.Detail, leak)
			}
		}
	}
	m.mu.Lock()
	m.events = append(m.events, fevent{kind: kind, who: who, hres: r})
	m.mu.Unlock()
	return r
}

// update sends a new title for sc as a and records whether it was
// acknowledged.
func (m *failoverMix) update(kind, who string, a account, sc theater.Script, title string) hres {
	m.mu.Lock()
	m.tried[sc.ID] = append(m.tried[sc.ID], title)
	m.mu.Unlock()
	r := m.req(kind, who, "PUT", "/api/scripts/"+sc.ID, a.c.token, scriptBody(title))
	if r.status == http.StatusOK {
		m.mu.Lock()
		m.acked[sc.ID] = append(m.acked[sc.ID], title)
		m.mu.Unlock()
	}
	return r
}

// round makes one request of every kind, in an order that makes its
// cached reads HIT when all is normal: the writes, then each cached read
// twice, the second of which must HIT.
func (m *failoverMix) round(i int) roundResult {
	rr := roundResult{start: time.Now(), normal: true}
	var slowest time.Duration
	notNormal := func(format string, args ...any) {
		if !rr.normal {
			rr.why += "; "
		}
		rr.why += fmt.Sprintf(format, args...)
		rr.normal = false
	}
	track := func(what string, r hres) hres {
		if r.status < 200 || r.status > 299 {
			rr.failed = true
		}
		if d := r.end.Sub(r.start); d > slowest {
			slowest, rr.slowest = d, fmt.Sprintf("%s: %d in %v (%s)", what, r.status, r.took(), r.header.Get("Cache-Status"))
		}
		return r
	}
	title := fmt.Sprintf("Round %d", i)
	w := track("PUT hot script", m.update("round: PUT hot script", "steady", m.steady, m.hot, title))
	if w.status != http.StatusOK {
		notNormal("PUT hot script: %d in %v", w.status, w.took())
	}
	if r := track("PUT own script", m.update("round: PUT own script", "hot", m.hotUser, m.own, fmt.Sprintf("Own %d", i))); r.status != http.StatusOK {
		notNormal("PUT own script: %d in %v", r.status, r.took())
	}
	for j := range 2 {
		r := track("GET hot script", m.req("round: GET hot script", "anon", "GET", "/api/scripts/"+m.hot.ID, "", nil))
		if r.status != http.StatusOK {
			notNormal("GET hot script: %d in %v", r.status, r.took())
			continue
		}
		var sc theater.Script
		if err := json.Unmarshal(r.body, &sc); err != nil {
			m.fail("round: GET hot script: %v", err)
		}
		if w.status == http.StatusOK && sc.Title != title {
			m.fail("round %d: read after the acknowledged update to %q served %q (X-Cache %s): read-your-writes broken",
				i, title, sc.Title, r.header.Get("X-Cache"))
		}
		if x := r.header.Get("X-Cache"); j == 1 && x != "HIT" {
			notNormal("second GET hot script: X-Cache %s in %v", x, r.took())
		}
	}
	for j := range 2 {
		r := track("GET list", m.req("round: GET list", "anon", "GET", "/api/scripts?limit=5", "", nil))
		if r.status != http.StatusOK {
			notNormal("GET list: %d in %v", r.status, r.took())
		} else if x := r.header.Get("X-Cache"); j == 1 && x != "HIT" {
			notNormal("second GET list: X-Cache %s in %v", x, r.took())
		}
	}
	for _, a := range []struct {
		who string
		acc account
	}{{"hot", m.hotUser}, {"steady", m.steady}} {
		if r := track("GET /api/me ("+a.who+")", m.req("round: GET /api/me", a.who, "GET", "/api/me", a.acc.c.token, nil)); r.status != http.StatusOK {
			notNormal("GET /api/me (%s user): %d in %v", a.who, r.status, r.took())
		}
	}
	if r := track("GET profile", m.req("round: GET profile", "anon", "GET", "/api/users/"+m.steady.user.ID, "", nil)); r.status != http.StatusOK {
		notNormal("GET profile: %d in %v", r.status, r.took())
	}
	rr.end = time.Now()
	m.mu.Lock()
	m.rounds = append(m.rounds, rr)
	m.mu.Unlock()
	return rr
}

// recovery looks at the rounds that started at or after t: first is the
// end of the first fully normal one (zero while none), settled the end of
// the first normal round after the last one that was not, and last the
// latest round.
func (m *failoverMix) recovery(t time.Time) (first, settled time.Time, last roundResult) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// A round that ends normally before any round saw the outage ran
	// before it could be seen (answered by the local tier, or by masters
	// the kill did not touch): recovery is the first normal round after
	// the outage was seen, or the first of all when it never was.
	seen := false
	var firstOfAll time.Time
	for _, rr := range m.rounds {
		if rr.start.Before(t) {
			continue
		}
		switch {
		case !rr.normal:
			settled = time.Time{}
			seen = true
		case settled.IsZero():
			settled = rr.end
		}
		if rr.normal && firstOfAll.IsZero() {
			firstOfAll = rr.end
		}
		if rr.normal && seen && first.IsZero() {
			first = rr.end
		}
		last = rr
	}
	if !seen {
		first = firstOfAll
	}
	return first, settled, last
}

// roundsSince counts the rounds that started at or after t.
func (m *failoverMix) roundsSince(t time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, rr := range m.rounds {
		if !rr.start.Before(t) {
			n++
		}
	}
	return n
}

func runFailover(t *testing.T, ft failoverTarget) {
	st, _ := openSQLite(t)
	// The client's log (connections, breakers) explains a slow recovery.
	rlog := &logbuf.Buffer{}
	ft.cfg.Logger = slog.New(slog.NewJSONHandler(rlog, nil))
	defer func() {
		if t.Failed() { // what the client went through: breakers, topology
			for _, l := range strings.Split(strings.TrimSpace(rlog.String()), "\n") {
				t.Logf("%s: redisx log: %s", ft.name, l)
			}
		}
	}()
	in := newInstance(t, options{redis: ft.cfg, store: st})
	keys := domainKeys{in.rdb.Keys()}
	sd := newSeeder(t, st)
	cluster := ft.cluster
	master := func(key string) *redistest.Server {
		t.Helper()
		m := ft.masterOf(key)
		if m == nil {
			t.Fatalf("no master for %s before the kill", key)
		}
		return m
	}
	create := func(a account, title string) theater.Script {
		t.Helper()
		r := a.c.do("POST", "/api/scripts", scriptBody(title))
		want(t, r, http.StatusCreated, "create "+title)
		var sc theater.Script
		r.json(t, &sc)
		return sc
	}

	// The steady author writes the hot script; on Cluster their session
	// lives on a master that stays up.
	steady := sd.login(t, in, sd.user(t, theater.RolePlaywright))
	hot := create(steady, "Hot")
	for i := 0; cluster && master(keys.Script(hot.ID)) == master(keys.Session(steady.user.ID)); i++ {
		if i == 40 {
			t.Fatal("40 scripts on the steady author's master")
		}
		hot = create(steady, fmt.Sprintf("Hot %d", i))
	}
	victim := master(keys.Script(hot.ID))
	// A script whose keys stay up (on Cluster): its reads must keep their
	// cache.
	other := create(steady, "Bystander")
	for i := 0; cluster && master(keys.Script(other.ID)) == victim; i++ {
		if i == 40 {
			t.Fatal("no script found on another master")
		}
		other = create(steady, fmt.Sprintf("Bystander %d", i))
	}
	// The hot user's session is on the victim.
	hu := sd.user(t, theater.RolePlaywright)
	for i := 0; master(keys.Session(hu.ID)) != victim; i++ {
		if i == 60 {
			t.Fatal("60 users, none with a session on the hot script's master")
		}
		hu = sd.user(t, theater.RolePlaywright)
	}
	hotUser := sd.login(t, in, hu)
	own := create(hotUser, "Own")

	m := &failoverMix{
		hc:   &http.Client{Transport: in.Client().Transport, Timeout: 10 * time.Second},
		base: in.URL, hot: hot, other: other, own: own, steady: steady, hotUser: hotUser,
		tried: map[string][]string{}, acked: map[string][]string{},
	}
	// Warm up until three rounds in a row are fully normal (a lookup may
	// miss its 100ms deadline now and then on a loaded machine).
	for i, normal := 0, 0; normal < 3; i++ {
		rr := m.round(i)
		switch {
		case rr.normal:
			normal++
		case rr.failed:
			t.Fatalf("round %d before the kill: %s", i, rr.why)
		case i == 20:
			t.Fatalf("20 rounds before the kill and not three fully normal in a row; the last: %s", rr.why)
		default:
			normal = 0
		}
	}
	for _, p := range m.problems {
		t.Fatalf("before the kill: %s", p)
	}
	// Everything written so far is on the replica (WAIT covers all the
	// master's writes before it, whoever made them), so the sessions
	// survive the promotion.
	ctx := context.Background()
	redistest.SetReplicated(t, in.rdb, keys.Tagged("failover", hot.ID), []byte("sync"))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	loop := func(pause time.Duration, step func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				step(i)
				time.Sleep(pause)
			}
		}()
	}
	for _, rd := range []struct{ kind, path string }{
		{"GET hot script", "/api/scripts/" + hot.ID},
		{"GET other script", "/api/scripts/" + other.ID},
		{"GET list", "/api/scripts?limit=5"},
		{"GET profile", "/api/users/" + steady.user.ID},
	} {
		loop(5*time.Millisecond, func(int) { m.req(rd.kind, "anon", "GET", rd.path, "", nil) })
	}
	loop(10*time.Millisecond, func(int) { m.req("GET /api/me", "hot", "GET", "/api/me", hotUser.c.token, nil) })
	loop(10*time.Millisecond, func(int) { m.req("GET /api/me", "steady", "GET", "/api/me", steady.c.token, nil) })
	loop(10*time.Millisecond, func(i int) { m.round(1000 + i) })
	time.Sleep(300 * time.Millisecond)

	hotKey := keys.Script(hot.ID)
	killed := time.Now()
	dead := ft.kill(hotKey)
	killReturned := time.Now()
	// Poll the servers' view until the rounds have been normal for a
	// second after the promotion.
	var lastNoMaster, promotedAt time.Time
	lastNoMaster = killReturned
	for time.Since(killed) < ft.total+10*time.Second {
		poll := time.Now()
		if mm := ft.masterOf(hotKey); promotedAt.IsZero() {
			if mm == nil || mm == dead {
				lastNoMaster = poll
			} else {
				promotedAt = poll
			}
		}
		// A second of normal rounds, and at least three of them: one round
		// may itself take a second (a read that waits out a lease orphaned
		// by the failover, httpcache.Config.MaxLeaseWait).
		if first, settled, _ := m.recovery(killed); !promotedAt.IsZero() && !settled.IsZero() &&
			time.Since(settled) > time.Second && m.roundsSince(first) >= 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	recoveredAt, settledAt, last := m.recovery(killed)

	for _, p := range m.problems {
		t.Errorf("%s: %s", ft.name, p)
	}
	if promotedAt.IsZero() {
		t.Fatalf("%s: the servers promoted no replica within %v of the kill", ft.name, ft.total+10*time.Second)
	}
	if recoveredAt.IsZero() {
		t.Fatalf("%s: no fully normal round within %v of the kill; the last round: %s", ft.name, ft.total+10*time.Second, last.why)
	}
	total, client := recoveredAt.Sub(killed), recoveredAt.Sub(promotedAt)
	settled := "not within the test"
	if !settledAt.IsZero() {
		settled = settledAt.Sub(killed).Round(time.Millisecond).String() + " after the kill"
	}
	t.Logf("FAILOVER API %s: replica promoted %v after the kill (seen within %v); first fully normal round %v after the kill, %v after the promotion (bounds %v and %v); every round normal from %s",
		ft.name, promotedAt.Sub(killed).Round(time.Millisecond), promotedAt.Sub(lastNoMaster).Round(time.Millisecond),
		total.Round(time.Millisecond), client.Round(time.Millisecond), ft.total, ft.client, settled)
	if at := breakersMoved(rlog.String()); !at.IsZero() {
		t.Logf("FAILOVER API %s: redisx moved its circuit breakers to the new master %v after the kill, %v after the promotion",
			ft.name, at.Sub(killed).Round(time.Millisecond), at.Sub(promotedAt).Round(time.Millisecond))
	}
	outOfBounds := false
	if total > ft.total {
		outOfBounds = true
		t.Errorf("%s: first fully normal round %v after the kill; want within %v", ft.name, total, ft.total)
	}
	if client > ft.client {
		outOfBounds = true
		t.Errorf("%s: first fully normal round %v after the promotion; want within %v", ft.name, client, ft.client)
	}
	// Once normal, it stays so: every request 2xx. A MISS or BYPASS where
	// a HIT was due is counted, not failed: purges that failed during the
	// outage are retried after it (each empties its entries once more), and
	// a lookup may miss its 100ms deadline on a loaded machine.
	var after, cacheMisses int
	for _, rr := range m.rounds {
		if rr.start.Before(recoveredAt) {
			continue
		}
		after++
		switch {
		case rr.failed:
			t.Errorf("%s: a round %v after the recovery relapsed: %s", ft.name, rr.start.Sub(recoveredAt).Round(time.Millisecond), rr.why)
		case !rr.normal:
			cacheMisses++
		}
	}
	if after < 2 {
		t.Errorf("%s: only %d rounds after the recovery; the test stopped too soon to see it last", ft.name, after)
	}
	t.Logf("%s: %d rounds after the recovery, %d of them with a MISS or BYPASS where a HIT was due", ft.name, after, cacheMisses)
	if outOfBounds || t.Failed() {
		// The rounds that ended from just before the promotion on (the client's log
		// follows at the end).
		for _, rr := range m.rounds {
			if rr.end.After(promotedAt.Add(-500*time.Millisecond)) && (!rr.normal || rr.end.Sub(rr.start) > 500*time.Millisecond) {
				t.Logf("%s: round %v..%v after the kill: %s; slowest %s", ft.name, rr.start.Sub(killed).Round(time.Millisecond), rr.end.Sub(killed).Round(time.Millisecond), rr.why, rr.slowest)
			}
		}
	}

	// Every request, by when it ran. "Dark" requests ran wholly while
	// the hot slot had no master.
	dark := func(e fevent) bool { return !e.start.Before(killReturned) && !e.end.After(lastNoMaster) }
	type tally map[string]int
	stats := map[string]tally{} // kind/who -> status or X-Cache -> count
	var darkHotReads, darkHot503, darkOtherHits int
	var slowest time.Duration
	for _, e := range m.events {
		name := e.kind + " (" + e.who + ")"
		label := strconv.Itoa(e.status)
		if x := e.header.Get("X-Cache"); x != "" {
			label += " " + x
		}
		if dark(e) {
			label += " dark"
		}
		if stats[name] == nil {
			stats[name] = tally{}
		}
		stats[name][label]++
		switch e.who {
		case "anon":
			slowest = max(slowest, e.end.Sub(e.start))
			if e.status != http.StatusOK {
				t.Errorf("%s: %s at %v: status %d, want 200 (served from the database)", ft.name, e.kind, e.start.Sub(killed).Round(time.Millisecond), e.status)
			}
			if d := e.end.Sub(e.start); d > publicReadBound {
				t.Errorf("%s: %s at %v took %v; want at most %v", ft.name, e.kind, e.start.Sub(killed).Round(time.Millisecond), d.Round(time.Millisecond), publicReadBound)
			}
			if e.kind == "GET other script" && dark(e) && e.header.Get("X-Cache") == "HIT" {
				darkOtherHits++
			}
			if strings.HasSuffix(e.kind, "hot script") && dark(e) {
				darkHotReads++
				if x := e.header.Get("X-Cache"); x != "BYPASS" && x != "MISS" {
					t.Errorf("%s: %s at %v with no master for its slot: X-Cache %s, want BYPASS or MISS", ft.name, e.kind, e.start.Sub(killed).Round(time.Millisecond), x)
				}
			}
		default:
			sessionDown := e.who == "hot" || !cluster
			switch {
			case e.status == http.StatusOK:
				if e.who == "hot" && dark(e) {
					t.Errorf("%s: %s by the hot user at %v answered 200 while their session's slot had no master: a session that cannot be checked was honoured",
						ft.name, e.kind, e.start.Sub(killed).Round(time.Millisecond))
				}
			case e.status == http.StatusServiceUnavailable && sessionDown:
				if e.who == "hot" && dark(e) {
					darkHot503++
				}
				if e.start.Before(killed) || e.end.After(promotedAt.Add(ft.client)) {
					t.Errorf("%s: %s (%s user) answered 503 at %v, outside the kill (0s) to the promotion + %v (%v)",
						ft.name, e.kind, e.who, e.start.Sub(killed).Round(time.Millisecond), ft.client, promotedAt.Add(ft.client).Sub(killed).Round(time.Millisecond))
				}
				if e.header.Get("Retry-After") == "" {
					t.Errorf("%s: %s: 503 without Retry-After", ft.name, e.kind)
				}
			default:
				t.Errorf("%s: %s (%s user) at %v: status %d (%.200s); want 200%s", ft.name, e.kind, e.who, e.start.Sub(killed).Round(time.Millisecond), e.status, e.body,
					map[bool]string{true: " or 503", false: " (their keys are on a master that stayed up)"}[sessionDown])
			}
		}
	}
	names := make([]string, 0, len(stats))
	for n := range stats {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Logf("%s: %-32s %v", ft.name, n, stats[n])
	}
	t.Logf("%s: %d requests, %d rounds; slowest public read %v", ft.name, len(m.events), len(m.rounds), slowest.Round(time.Millisecond))
	// The mix must have run through the outage, or it proves nothing.
	// On Cluster the other masters keep their cache: a script whose keys
	// are on one of them is still served from it.
	if cluster && darkOtherHits == 0 {
		t.Errorf("%s: no read of a script whose keys are on another master was a HIT while the hot slot had no master; one master's failure took the whole cache down", ft.name)
	}
	if darkHotReads == 0 || darkHot503 == 0 {
		t.Errorf("%s: %d reads of the hot script and %d 503s for the hot user while its slot had no master; want some of each", ft.name, darkHotReads, darkHot503)
	}

	// Every acknowledged update is in the database: the last acknowledged
	// title, or one sent after it whose answer was lost.
	for _, sc := range []theater.Script{hot, own} {
		got, err := st.ScriptByID(ctx, sc.ID)
		if err != nil {
			t.Fatal(err)
		}
		acked, tried := m.acked[sc.ID], m.tried[sc.ID]
		if len(acked) == 0 {
			t.Errorf("%s: no update of %s was acknowledged", ft.name, sc.ID)
			continue
		}
		last, ok, after := acked[len(acked)-1], false, false
		for _, title := range tried {
			after = after || title == last
			ok = ok || after && title == got.Title
		}
		if !ok {
			t.Errorf("%s: the database holds %q for %s; want the last acknowledged %q or a later attempt", ft.name, got.Title, sc.ID, last)
		}
		// And the API serves what the database holds.
		var served theater.Script
		r := in.client(t).do("GET", "/api/scripts/"+sc.ID, nil)
		want(t, r, http.StatusOK, "read after the failover")
		r.json(t, &served)
		if served.Title != got.Title {
			t.Errorf("%s: after the failover the API serves %q (X-Cache %s) for %s; the database holds %q", ft.name, served.Title, r.header.Get("X-Cache"), sc.ID, got.Title)
		}
	}
	if mark := redisErrorIn(in.logs.String()); mark != "" {
		t.Errorf("%s: the server's log carries a Redis %s error: a reply the client should have handled reached the service", ft.name, mark)
	}
}
