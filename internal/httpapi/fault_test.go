package httpapi

// Fault tests for the whole API (issue 8): a steady request mix (catalogue
// reads, sign-in, signed-in reads, script writes, licence creation) runs
// while Redis is slowed, throttled, cut, black-holed, refused, paused or
// killed behind internal/faultproxy, and while the database is locked or
// its connections are killed. Each fault checks:
//
//   - public reads answer 200 from the database within readBound;
//   - a session that cannot be checked is never honoured (503, never 200);
//   - every write acknowledged with 2xx is in the database afterwards;
//   - once Redis is back, no stale script is served after an
//     acknowledged update;
//   - the service is back to normal within 2s of the fault ending, with
//     no restart (logged as "RECOVERY" for the README's table);
//   - goroutines and open file descriptors return to their baseline.
//
// Not parallel: they count the process's goroutines and descriptors and
// measure time.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/faultproxy"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/internal/theater"
)

const (
	// faultRedisTimeout is the instance's Redis CommandTimeout.
	faultRedisTimeout = 200 * time.Millisecond
	// readBound is the most a public read may take under any Redis fault:
	// a few Redis calls (limiter, cache) at their deadline before the
	// breaker opens, then the database.
	readBound = 1500 * time.Millisecond
	// faultWindow is how long the request mix runs under each fault.
	faultWindow = 1200 * time.Millisecond
	// recoveryLimit is the promise.
	recoveryLimit = 2 * time.Second
)

// faultRig is one instance whose Redis sits behind a fault proxy, with an
// author, a producer and a script.
type faultRig struct {
	in       *instance
	srv      *redistest.Server
	px       *faultproxy.Proxy
	author   account
	producer account
	signer   account // signs in again and again
	script   theater.Script
}

func newFaultRig(t *testing.T, o options) *faultRig {
	t.Helper()
	srv := redistest.StartServer(t)
	px := faultproxy.Start(t, srv.Addr)
	cfg := redistest.Config(t)
	cfg = redistest.At(cfg, px.Addr())
	cfg.CommandTimeout = faultRedisTimeout
	o.redis = cfg
	in := newInstance(t, o)
	t.Cleanup(px.Reset) // heal the wire before the cleanups that use it
	t.Cleanup(srv.Resume)
	r := &faultRig{in: in, srv: srv, px: px}
	r.author = signUp(t, in, theater.RolePlaywright)
	r.producer = signUp(t, in, theater.RoleProducer)
	r.signer = signUp(t, in, theater.RoleProducer)
	res := r.author.c.do("POST", "/api/scripts", scriptBody("Under fault"))
	want(t, res, http.StatusCreated, "create script")
	res.json(t, &r.script)
	return r
}

// faultReq is one request made from a worker goroutine (the helpers in
// helpers_test.go fail the test, which only the test goroutine may do).
func faultReq(hc *http.Client, method, url, token string, body any) (int, []byte, time.Duration, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	res, err := hc.Do(req)
	if err != nil {
		return 0, nil, time.Since(start), err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	took := time.Since(start)
	if err == nil && res.StatusCode >= 400 && res.Header.Get("Content-Type") != "application/problem+json" {
		err = fmt.Errorf("%s %s: status %d with Content-Type %q, want problem+json", method, url, res.StatusCode, res.Header.Get("Content-Type"))
	}
	return res.StatusCode, b, took, err
}

// mixResult is what the request mix saw under one fault.
type mixResult struct {
	mu       sync.Mutex
	problems []string
	statuses map[string]map[int]int // kind -> status -> count
	slowest  time.Duration          // of the public reads
	acked    []string               // titles of acknowledged updates, in order
	tried    []string               // every title sent, in order
	licences []string               // ids of acknowledged licences

	dbTitle    string          // the script's title in the database after the mix
	dbLicences map[string]bool // the producer's licences in the database after the mix
}

func (m *mixResult) fail(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.problems) < 20 {
		m.problems = append(m.problems, fmt.Sprintf(format, args...))
	}
}

func (m *mixResult) count(kind string, status int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.statuses[kind] == nil {
		m.statuses[kind] = map[int]int{}
	}
	m.statuses[kind][status]++
}

// runMix runs the request mix for d. outage says Redis cannot answer in
// time during the whole window, so no session can be checked.
func (r *faultRig) runMix(d time.Duration, outage bool) *mixResult {
	m := &mixResult{statuses: map[string]map[int]int{}}
	base := r.in.URL
	hc := &http.Client{Transport: r.in.Client().Transport, Timeout: 10 * time.Second}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	worker := func(kind string, pause time.Duration, step func(i int)) {
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
	// API.md's bound: a session held in the local tier may be honoured for
	// at most LocalLease (100 ms) after its connection last answered, so
	// during an outage only requests begun later than that after the fault
	// must be refused. Those begun earlier are counted, not failed.
	faultAt := time.Now()
	sessionStatus := func(kind string, status int, body []byte, took time.Duration) {
		m.count(kind, status)
		began := time.Now().Add(-took)
		switch {
		case outage && status == http.StatusOK && began.Sub(faultAt) <= localLease:
			m.count(kind+" (honoured within the lease)", status)
		case outage && status == http.StatusOK:
			m.fail("%s: 200 for a request begun %v after the fault, while Redis cannot answer: a session that cannot be checked was honoured", kind, began.Sub(faultAt).Round(time.Millisecond))
		case status != http.StatusOK && status != http.StatusCreated && status != http.StatusServiceUnavailable:
			m.fail("%s: status %d (%s); want 2xx or 503", kind, status, body)
		}
	}
	// Catalogue reads, anonymous: always 200, always in time.
	for _, path := range []string{"/api/scripts/" + r.script.ID, "/api/scripts?limit=5", "/api/users/" + r.author.user.ID} {
		worker("read", 5*time.Millisecond, func(int) {
			status, body, took, err := faultReq(hc, "GET", base+path, "", nil)
			m.count("read", status)
			m.mu.Lock()
			m.slowest = max(m.slowest, took)
			m.mu.Unlock()
			switch {
			case err != nil:
				m.fail("GET %s: %v", path, err)
			case status != http.StatusOK:
				m.fail("GET %s: status %d (%s); want 200 from the database", path, status, body)
			case took > readBound:
				m.fail("GET %s took %v; want at most %v", path, took, readBound)
			}
		})
	}
	// Signed-in reads.
	worker("me", 10*time.Millisecond, func(int) {
		status, body, took, err := faultReq(hc, "GET", base+"/api/me", r.producer.c.token, nil)
		if err != nil {
			m.fail("GET /api/me: %v", err)
			return
		}
		sessionStatus("me", status, body, took)
	})
	worker("licences", 10*time.Millisecond, func(int) {
		status, body, took, err := faultReq(hc, "GET", base+"/api/licenses", r.producer.c.token, nil)
		if err != nil {
			m.fail("GET /api/licenses: %v", err)
			return
		}
		sessionStatus("licences", status, body, took)
	})
	// Sign-in (argon2id is slow on purpose: paced), with an account of its
	// own: each sign-in makes a session, and the oldest sessions of a user
	// may be evicted, which must not sign out the other workers.
	worker("login", 300*time.Millisecond, func(int) {
		status, body, took, err := faultReq(hc, "POST", base+"/api/auth/login", "",
			map[string]any{"email": r.signer.email, "password": r.signer.pass})
		if err != nil {
			m.fail("login: %v", err)
			return
		}
		sessionStatus("login", status, body, took)
	})
	// Script writes: one writer, so the last acknowledged title is the
	// one the database must hold.
	worker("write", 50*time.Millisecond, func(i int) {
		title := fmt.Sprintf("Fault write %d", i)
		m.mu.Lock()
		m.tried = append(m.tried, title)
		m.mu.Unlock()
		status, body, took, err := faultReq(hc, "PUT", base+"/api/scripts/"+r.script.ID, r.author.c.token, scriptBody(title))
		if err != nil {
			m.fail("PUT script: %v", err)
			return
		}
		sessionStatus("write", status, body, took)
		if status == http.StatusOK {
			m.mu.Lock()
			m.acked = append(m.acked, title)
			m.mu.Unlock()
		}
	})
	// Licence creation.
	worker("licence", 50*time.Millisecond, func(int) {
		status, body, took, err := faultReq(hc, "POST", base+"/api/scripts/"+r.script.ID+"/licenses", r.producer.c.token,
			map[string]any{"type": "perusal"})
		if err != nil {
			m.fail("POST licence: %v", err)
			return
		}
		sessionStatus("licence", status, body, took)
		if status == http.StatusCreated {
			var l theater.License
			if err := json.Unmarshal(body, &l); err != nil || l.ID == "" {
				m.fail("licence 201 body %s: %v", body, err)
				return
			}
			m.mu.Lock()
			m.licences = append(m.licences, l.ID)
			m.mu.Unlock()
		}
	})
	time.Sleep(d)
	close(stop)
	wg.Wait()
	// What the database holds now, before recovery writes anything; Redis
	// faults never touch the database, so this is readable under them.
	ctx := context.Background()
	if sc, err := r.in.st.ScriptByID(ctx, r.script.ID); err == nil {
		m.dbTitle = sc.Title
	} else {
		m.fail("ScriptByID after the mix: %v", err)
	}
	if ls, err := r.in.st.LicensesByUser(ctx, r.producer.user.ID); err == nil {
		m.dbLicences = map[string]bool{}
		for _, l := range ls {
			m.dbLicences[l.ID] = true
		}
	} else {
		m.fail("LicensesByUser after the mix: %v", err)
	}
	return m
}

// check reports the mix's problems and checks every acknowledged write
// against the database.
func (r *faultRig) check(t *testing.T, fault string, m *mixResult) {
	t.Helper()
	for _, p := range m.problems {
		t.Errorf("%s: %s", fault, p)
	}
	t.Logf("%s: statuses %v; slowest public read %v", fault, m.statuses, m.slowest.Round(time.Millisecond))
	if m.statuses["read"][http.StatusOK] == 0 {
		t.Errorf("%s: no public read answered; the mix did not run", fault)
	}
	// Acknowledged licences are all in the database.
	for _, id := range m.licences {
		if !m.dbLicences[id] {
			t.Errorf("%s: licence %s was acknowledged with 201 but is not in the database", fault, id)
		}
	}
	// The database holds the last acknowledged title, or one sent after it
	// whose answer was lost (never an older one).
	if len(m.acked) > 0 {
		last := m.acked[len(m.acked)-1]
		ok, after := false, false
		for _, title := range m.tried {
			after = after || title == last
			ok = ok || after && title == m.dbTitle
		}
		if !ok {
			t.Errorf("%s: database title %q; want the last acknowledged %q or a later attempt: an acknowledged write was lost", fault, m.dbTitle, last)
		}
	}
}

// recover waits, with no action, until a signed-in read, an update and a
// fresh read of that update all work, and fails past recoveryLimit. After
// a Redis restart the sessions are gone: it signs in again, as users would.
func (r *faultRig) recover(t *testing.T, fault string, ended time.Time, sessionsLost bool) {
	t.Helper()
	hc := r.in.Client()
	base := r.in.URL
	token := r.author.c.token
	var last string
	for i := 0; ; i++ {
		if time.Since(ended) > recoveryLimit {
			t.Fatalf("%s: not recovered %v after the fault ended (last: %s); want within %v", fault, time.Since(ended).Round(time.Millisecond), last, recoveryLimit)
		}
		if sessionsLost && token == r.author.c.token {
			status, body, _, err := faultReq(hc, "POST", base+"/api/auth/login", "", map[string]any{"email": r.author.email, "password": r.author.pass})
			if err != nil || status != http.StatusOK {
				last = fmt.Sprintf("login: %d %s %v", status, body, err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			var lr loginResponse
			if err := json.Unmarshal(body, &lr); err != nil {
				t.Fatal(err)
			}
			token = lr.Token
		}
		status, body, _, err := faultReq(hc, "GET", base+"/api/me", token, nil)
		if err != nil || status != http.StatusOK {
			last = fmt.Sprintf("me: %d %s %v", status, body, err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		title := fmt.Sprintf("Recovered %d", i)
		status, body, _, err = faultReq(hc, "PUT", base+"/api/scripts/"+r.script.ID, token, scriptBody(title))
		if err != nil || status != http.StatusOK {
			last = fmt.Sprintf("update: %d %s %v", status, body, err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		break
	}
	took := time.Since(ended)
	r.author.c.token = token
	t.Logf("RECOVERY %-38s %v", "API: "+fault, took.Round(time.Millisecond))
	// Once Redis is back no stale script is served: every read, cached or
	// not, shows what the database holds, and the next update at once.
	ctx := context.Background()
	anon := r.in.client(t)
	for i := range 3 {
		sc, err := r.in.st.ScriptByID(ctx, r.script.ID)
		if err != nil {
			t.Fatal(err)
		}
		var got theater.Script
		res := anon.do("GET", "/api/scripts/"+r.script.ID, nil)
		want(t, res, http.StatusOK, fault+": read after recovery")
		res.json(t, &got)
		if got.Title != sc.Title {
			t.Fatalf("%s: read #%d after recovery served %q (X-Cache %s); the database holds %q", fault, i, got.Title, res.header.Get("X-Cache"), sc.Title)
		}
		next := fmt.Sprintf("After recovery %d", i)
		want(t, r.author.c.do("PUT", "/api/scripts/"+r.script.ID, scriptBody(next)), http.StatusOK, fault+": update after recovery")
		anon.do("GET", "/api/scripts/"+r.script.ID, nil).json(t, &got)
		if got.Title != next {
			t.Fatalf("%s: read after an acknowledged update served %q, want %q", fault, got.Title, next)
		}
	}
}

// baseline is the process's goroutine and socket counts, taken with idle
// HTTP connections closed.
type baseline struct{ goroutines, fds int }

// openSockets counts the process's open sockets (Redis, HTTP, proxy and
// database connections). Files are left out: SQLite's pool may keep one
// more connection (database and WAL files) after a burst, which is a pool,
// not a leak.
func openSockets() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

func (r *faultRig) baseline() baseline {
	r.in.Client().CloseIdleConnections()
	last := baseline{runtime.NumGoroutine(), openSockets()}
	for range 25 {
		time.Sleep(20 * time.Millisecond)
		now := baseline{runtime.NumGoroutine(), openSockets()}
		if now.goroutines >= last.goroutines && now.fds >= last.fds {
			return now
		}
		last = now
	}
	return last
}

// backToBaseline waits up to 5s for goroutines and sockets to come
// back to b and fails with what is still running if they do not.
func (r *faultRig) backToBaseline(t *testing.T, fault string, b baseline) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.in.Client().CloseIdleConnections()
		g, fds := runtime.NumGoroutine(), openSockets()
		if g <= b.goroutines && fds <= b.fds {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%s: %d goroutines and %d open sockets after the fault, %d and %d before; goroutines:\n%s",
				fault, g, fds, b.goroutines, b.fds, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// warm runs the mix briefly with no fault, so that every connection and
// background goroutine normal service needs exists before the baseline.
func (r *faultRig) warm(t *testing.T) {
	t.Helper()
	m := r.runMix(300*time.Millisecond, false)
	for _, p := range m.problems {
		t.Fatalf("warm-up with no fault: %s", p)
	}
}

func TestFaultAPIRedis(t *testing.T) {
	faults := []struct {
		name   string
		outage bool // Redis cannot answer within its deadline meanwhile
		start  func(r *faultRig)
		end    func(t *testing.T, r *faultRig)
		lost   bool // sessions are gone afterwards (empty Redis)
	}{
		{"latency 50ms", false, func(r *faultRig) { r.px.Latency(50 * time.Millisecond) }, func(_ *testing.T, r *faultRig) { r.px.Reset() }, false},
		{"latency 500ms", true, func(r *faultRig) { r.px.Latency(500 * time.Millisecond) }, func(_ *testing.T, r *faultRig) { r.px.Reset() }, false},
		{"bandwidth 64 KiB/s", false, func(r *faultRig) { r.px.Bandwidth(64) }, func(_ *testing.T, r *faultRig) { r.px.Reset() }, false},
		{"hung connections", true, func(r *faultRig) { r.px.Hang() }, func(_ *testing.T, r *faultRig) { r.px.Reset() }, false},
		{"network down", true, func(r *faultRig) { r.px.Down() }, func(_ *testing.T, r *faultRig) { r.px.Up() }, false},
		{"Redis paused (SIGSTOP)", true, func(r *faultRig) { r.srv.Pause() }, func(_ *testing.T, r *faultRig) { r.srv.Resume() }, false},
		{"Redis killed, restarted empty", true, func(r *faultRig) { r.srv.Kill() }, func(t *testing.T, r *faultRig) { r.srv.Start(t) }, true},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			r := newFaultRig(t, options{})
			r.warm(t)
			b := r.baseline()
			f.start(r)
			m := r.runMix(faultWindow, f.outage)
			f.end(t, r)
			ended := time.Now()
			r.recover(t, f.name, ended, f.lost)
			r.check(t, f.name, m)
			r.backToBaseline(t, f.name, b)
		})
	}
	// Connections cut again and again: any request may fail with 503, none
	// with anything else; acknowledged writes stay written.
	t.Run("connections cut mid-command", func(t *testing.T) {
		r := newFaultRig(t, options{})
		r.warm(t)
		b := r.baseline()
		done := make(chan *mixResult)
		go func() { done <- r.runMix(faultWindow, false) }()
		deadline := time.Now().Add(faultWindow)
		for time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			r.px.CutConnections()
		}
		m := <-done
		ended := time.Now()
		r.recover(t, "connections cut mid-command", ended, false)
		r.check(t, "connections cut mid-command", m)
		r.backToBaseline(t, "connections cut mid-command", b)
	})
}

// TestFaultAPIDatabase locks the database from a second connection: writes
// (and, on PostgreSQL, reads of the locked table) answer 503 problem+json
// within the database's lock timeout instead of hanging, nothing panics,
// and the service recovers when the lock goes. Killing the server's
// PostgreSQL connections is survived the same way.
func TestFaultAPIDatabase(t *testing.T) {
	t.Run("sqlite locked by BEGIN EXCLUSIVE", func(t *testing.T) {
		dir := t.TempDir()
		u := "sqlite:" + dir + "/theater.db?busy_timeout=300ms"
		st := openStore(t, u)
		r := newFaultRig(t, options{store: st})
		locker, err := sql.Open("sqlite", dir+"/theater.db")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { locker.Close() })
		r.dbLockCase(t, "SQLite locked", func(ctx context.Context, conn *sql.Conn) error {
			_, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE")
			return err
		}, locker, "COMMIT")
	})
	t.Run("postgres table locked", func(t *testing.T) {
		_, u := openPostgres(t)
		// The operator's knob: no statement (lock waits included) runs
		// longer than statement_timeout.
		st := openStore(t, u+"&statement_timeout=300ms")
		r := newFaultRig(t, options{store: st})
		locker, err := sql.Open("pgx", u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { locker.Close() })
		r.dbLockCase(t, "PostgreSQL table locked", func(ctx context.Context, conn *sql.Conn) error {
			if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
				return err
			}
			_, err := conn.ExecContext(ctx, "LOCK TABLE scripts IN ACCESS EXCLUSIVE MODE")
			return err
		}, locker, "ROLLBACK")
	})
	t.Run("postgres connections terminated", func(t *testing.T) {
		_, u := openPostgres(t)
		// The server's connections carry a name of their own, so that only
		// they are killed: other tests share this database.
		app := "tsp_fault_" + theater.NewID()
		st := openStore(t, u+"&application_name="+app)
		r := newFaultRig(t, options{store: st})
		admin, err := sql.Open("pgx", u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Close() })
		ctx := context.Background()
		anon := r.in.client(t)
		want(t, anon.do("GET", "/api/scripts?limit=5", nil, "Cache-Control", "no-cache"), http.StatusOK, "read before")
		var killed int
		if err := admin.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1`, app).Scan(&killed); err != nil {
			t.Fatal(err)
		}
		if killed == 0 {
			t.Fatalf("no backend named %s to terminate; the test would prove nothing", app)
		}
		t.Logf("terminated %d PostgreSQL backends", killed)
		ended := time.Now()
		// Each request either works or is a 503 problem; then it works.
		for {
			res := r.author.c.do("PUT", "/api/scripts/"+r.script.ID, scriptBody("After terminate"))
			if res.status == http.StatusOK {
				break
			}
			want(t, res, http.StatusServiceUnavailable, "update after the backends were killed")
			if time.Since(ended) > recoveryLimit {
				t.Fatalf("not recovered %v after the database connections were killed", time.Since(ended))
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("RECOVERY %-38s %v", "API: PostgreSQL connections killed", time.Since(ended).Round(time.Millisecond))
	})
}

// dbLockCase holds a database lock from a second connection while the
// request mix runs, then releases it and measures recovery.
func (r *faultRig) dbLockCase(t *testing.T, fault string, lock func(context.Context, *sql.Conn) error, db *sql.DB, release string) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := lock(ctx, conn); err != nil {
		t.Fatalf("take the lock: %v", err)
	}
	released := false
	defer func() {
		if !released {
			_, _ = conn.ExecContext(ctx, release)
		}
	}()
	// Writes wait for the lock at most its timeout, then 503.
	start := time.Now()
	res := r.author.c.do("PUT", "/api/scripts/"+r.script.ID, scriptBody("Locked out"))
	took := time.Since(start)
	want(t, res, http.StatusServiceUnavailable, fault+": update")
	if res.header.Get("Retry-After") == "" {
		t.Errorf("%s: 503 without Retry-After", fault)
	}
	if took > 3*time.Second {
		t.Errorf("%s: the update took %v to fail; want about the lock timeout", fault, took)
	}
	res = r.producer.c.do("POST", "/api/scripts/"+r.script.ID+"/licenses", map[string]any{"type": "perusal"})
	if res.status != http.StatusCreated {
		want(t, res, http.StatusServiceUnavailable, fault+": licence")
	}
	// Reads: 200 (SQLite's WAL lets readers through; a cached response
	// needs no database) or 503, never anything else.
	res = r.in.client(t).do("GET", "/api/scripts?limit=5&genre=comedy", nil)
	if res.status != http.StatusOK {
		want(t, res, http.StatusServiceUnavailable, fault+": uncached read")
	}
	if _, err := conn.ExecContext(ctx, release); err != nil {
		t.Fatal(err)
	}
	released = true
	ended := time.Now()
	for {
		res := r.author.c.do("PUT", "/api/scripts/"+r.script.ID, scriptBody("Unlocked"))
		if res.status == http.StatusOK {
			break
		}
		if time.Since(ended) > recoveryLimit {
			t.Fatalf("%s: update still %d %v after the lock was released", fault, res.status, time.Since(ended))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("RECOVERY %-38s %v", "API: "+fault, time.Since(ended).Round(time.Millisecond))
	var got theater.Script
	r.in.client(t).do("GET", "/api/scripts/"+r.script.ID, nil).json(t, &got)
	if got.Title != "Unlocked" {
		t.Fatalf("%s: read after the update served %q, want Unlocked", fault, got.Title)
	}
	if strings.Contains(r.in.logs.String(), "panic") {
		t.Fatalf("%s: the log mentions a panic", fault)
	}
}

// localLease is redisx's default LocalLease: API.md's 100 ms bound on
// serving what another instance (or a lost connection) has made stale.
const localLease = 100 * time.Millisecond
