//go:build soak

package httpapi

// The soak test (issue 8, "Load"): the mixed workload at about half of the
// throughput measured just before, for SOAK_DURATION (default 10m), on
// loopback against a throwaway Redis of its own. It fails on any error and
// on growth: goroutines back to their start, RSS and Redis used_memory
// flat once TTLs turn over. It reports start, peak and end of each.
//
//	SOAK_DURATION=10m go test -tags soak -run TestSoak -timeout 30m -v ./internal/httpapi
//
// (without -race: the detector's slowdown would measure itself, not the
// service; add -race for a shorter run that also hunts data races).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/redisx"
)

// soakFigures is one sample of what must stay flat.
type soakFigures struct {
	at          time.Duration
	rssKB       int64
	goroutines  int
	redisMemory int64
}

func redisUsedMemory(ctx context.Context, rdb *redisx.Client) int64 {
	info, err := rdb.Do(ctx, rdb.B().Info().Section("memory").Build()).ToString()
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// soakLog is the soak instance's log sink. Keeping every line, as other
// tests do, grew the test's own heap by ~300 bytes a request (a 10-minute
// soak: most of the RSS growth it reported, the bytes.Buffer doubling to
// hundreds of MiB); production writes lines out and keeps none. It counts
// every line and keeps the first few of warnings, errors and 5xx answers.
type soakLog struct {
	mu    sync.Mutex
	lines int
	kept  []string
}

func (l *soakLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines++
	if len(l.kept) < 20 && (bytes.Contains(p, []byte(`"status":5`)) || bytes.Contains(p, []byte(`"level":"WARN"`)) || bytes.Contains(p, []byte(`"level":"ERROR"`))) {
		l.kept = append(l.kept, string(p))
	}
	return len(p), nil
}

// soakWorkload is the request mix: catalogue reads dominate, as in
// production; signed-in reads, updates, licences and sign-in/out pairs
// (so sessions do not pile up) make the rest.
type soakWorkload struct {
	in        *instance
	hc        *http.Client
	author    account
	producers []account
	scripts   []theater.Script
	errors    atomic.Int64
	firstErr  atomic.Pointer[string]
	ops       atomic.Int64
}

func (w *soakWorkload) fail(format string, args ...any) {
	w.errors.Add(1)
	msg := fmt.Sprintf(format, args...)
	w.firstErr.CompareAndSwap(nil, &msg)
}

func (w *soakWorkload) op(i int) {
	w.ops.Add(1)
	base := w.in.URL
	sc := w.scripts[i%len(w.scripts)]
	p := w.producers[i%len(w.producers)]
	expect := func(what string, status int, body []byte, err error, want ...int) {
		if err != nil {
			w.fail("%s: %v", what, err)
			return
		}
		for _, s := range want {
			if status == s {
				return
			}
		}
		w.fail("%s: status %d (%s)", what, status, body)
	}
	switch i % 20 {
	case 0, 1, 2, 3, 4, 5, 6, 7:
		s, b, _, err := faultReq(w.hc, "GET", base+"/api/scripts/"+sc.ID, "", nil)
		expect("read script", s, b, err, 200)
	case 8, 9, 10, 11:
		s, b, _, err := faultReq(w.hc, "GET", fmt.Sprintf("%s/api/scripts?limit=10&page=%d", base, 1+i%3), "", nil)
		expect("list", s, b, err, 200)
	case 12:
		s, b, _, err := faultReq(w.hc, "GET", base+"/api/users/"+w.author.user.ID+"/scripts", "", nil)
		expect("author's scripts", s, b, err, 200)
	case 13:
		s, b, _, err := faultReq(w.hc, "GET", base+"/api/scripts/"+sc.ID+"/stats", "", nil)
		expect("stats", s, b, err, 200)
	case 14, 15:
		s, b, _, err := faultReq(w.hc, "GET", base+"/api/me", p.c.token, nil)
		expect("me", s, b, err, 200)
	case 16:
		s, b, _, err := faultReq(w.hc, "GET", base+"/api/licenses", p.c.token, nil)
		expect("licences", s, b, err, 200)
	case 17:
		s, b, _, err := faultReq(w.hc, "PUT", base+"/api/scripts/"+sc.ID, w.author.c.token, scriptBody(fmt.Sprintf("Soak %d", i)))
		expect("update", s, b, err, 200)
	case 18:
		s, b, _, err := faultReq(w.hc, "POST", base+"/api/scripts/"+sc.ID+"/licenses", p.c.token, map[string]any{"type": "perusal"})
		expect("licence", s, b, err, 201)
	case 19:
		if i%100 != 19 {
			s, b, _, err := faultReq(w.hc, "GET", base+"/api/scripts/"+sc.ID, "", nil)
			expect("read script", s, b, err, 200)
			return
		}
		// Sign in and out: argon2id makes this the costly one, so rarer.
		s, b, _, err := faultReq(w.hc, "POST", base+"/api/auth/login", "", map[string]any{"email": p.email, "password": p.pass})
		expect("login", s, b, err, 200)
		if s != 200 {
			return
		}
		var lr loginResponse
		if jerr := json.Unmarshal(b, &lr); jerr != nil {
			w.fail("login body: %v", jerr)
			return
		}
		s, b, _, err = faultReq(w.hc, "POST", base+"/api/auth/logout", lr.Token, nil)
		expect("logout", s, b, err, 204)
	}
}

// run makes ops from workers goroutines, paced at rate per second (0: as
// fast as they go), until d passes or limit ops were made.
func (w *soakWorkload) run(workers int, rate float64, d time.Duration, limit int64) {
	var next atomic.Int64
	var tokens chan struct{}
	stop := make(chan struct{})
	if rate > 0 {
		tokens = make(chan struct{}, workers)
		go func() {
			// Tokens follow the clock, not the ticks: a ticker drops ticks
			// its reader misses (a GC pause, a busy core), which used to
			// leave the soak well short of its rate. Each tick hands out
			// every token due since the start; a backlog beyond one per
			// worker is dropped, so the rate stays a ceiling.
			begin := time.Now()
			var issued int64
			tk := time.NewTicker(time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					close(tokens)
					return
				case <-tk.C:
				}
				due := int64(rate * time.Since(begin).Seconds())
				if due-issued > int64(workers) {
					issued = due - int64(workers)
				}
				for ; issued < due; issued++ {
					select {
					case tokens <- struct{}{}:
					case <-stop:
						close(tokens)
						return
					}
				}
			}
		}()
	}
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if tokens != nil {
					if _, ok := <-tokens; !ok {
						return
					}
				}
				i := next.Add(1)
				if i > limit {
					return
				}
				w.op(int(i))
			}
		}()
	}
	wg.Wait()
	close(stop)
}

func TestSoak(t *testing.T) {
	dur := 10 * time.Minute
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 24*time.Hour {
			t.Fatalf("SOAK_DURATION=%q: want a Go duration up to 24h", v)
		}
		dur = d
	}
	// A Redis of the soak's own, so used_memory is ours alone.
	srv := redistest.StartServer(t)
	cfg := redistest.Config(t)
	cfg = redistest.At(cfg, srv.Addr)
	logs := &soakLog{}
	in := newInstance(t, options{redis: cfg, edit: func(d *Deps) {
		d.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}})
	ctx := context.Background()
	w := &soakWorkload{in: in, author: signUp(t, in, theater.RolePlaywright)}
	w.hc = &http.Client{Transport: in.Client().Transport, Timeout: 10 * time.Second}
	for range 4 {
		w.producers = append(w.producers, signUp(t, in, theater.RoleProducer))
	}
	for i := range 20 {
		r := w.author.c.do("POST", "/api/scripts", scriptBody(fmt.Sprintf("Soak script %d", i)))
		want(t, r, http.StatusCreated, "seed script")
		var sc theater.Script
		r.json(t, &sc)
		w.scripts = append(w.scripts, sc)
	}

	// Measure the maximum throughput of this machine, now.
	const workers = 16
	measure := min(max(dur/20, 5*time.Second), 30*time.Second)
	w.run(workers, 0, measure, math.MaxInt64)
	maxRate := float64(w.ops.Load()) / measure.Seconds()
	if w.errors.Load() > 0 {
		t.Fatalf("%d errors while measuring throughput; first: %s", w.errors.Load(), *w.firstErr.Load())
	}
	rate := maxRate / 2
	t.Logf("max throughput %.0f req/s over %v; soaking at %.0f req/s for %v", maxRate, measure, rate, dur)

	// Soak, sampling what must stay flat.
	w.ops.Store(0)
	start := time.Now()
	var samples []soakFigures
	var mu sync.Mutex
	// SOAK_PROFILE_DIR, when set, gets heap profiles a third in and at the
	// end (go tool pprof -top -sample_index=inuse_space FILE).
	profileDir := os.Getenv("SOAK_PROFILE_DIR")
	writeHeap := func(name string) {
		if profileDir == "" {
			return
		}
		f, err := os.Create(filepath.Join(profileDir, name))
		if err != nil {
			t.Errorf("heap profile: %v", err)
			return
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.WriteHeapProfile(f); err != nil {
			t.Errorf("heap profile: %v", err)
		}
	}
	nSamples := 0
	sample := func() {
		f := soakFigures{time.Since(start), rssKB(), runtime.NumGoroutine(), redisUsedMemory(ctx, in.rdb)}
		mu.Lock()
		samples = append(samples, f)
		nSamples++
		third := nSamples == 21 // of 61 (one per sixtieth, plus the start)
		mu.Unlock()
		if third {
			writeHeap("heap-third.pprof")
		}
	}
	in.Client().CloseIdleConnections()
	sample()
	done := make(chan struct{})
	go func() {
		tk := time.NewTicker(max(dur/60, time.Second))
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				sample()
			}
		}
	}()
	limit := int64(rate*dur.Seconds()*1.1) + 1 // bounded in count as well as time
	w.run(workers, rate, dur, limit)
	close(done)
	elapsed := time.Since(start)
	in.Client().CloseIdleConnections()
	w.hc.CloseIdleConnections()
	time.Sleep(2 * time.Second) // let finished requests' goroutines end
	runtime.GC()
	sample()
	writeHeap("heap-end.pprof")

	first, last := samples[0], samples[len(samples)-1]
	peak := first
	for _, s := range samples {
		peak.rssKB = max(peak.rssKB, s.rssKB)
		peak.goroutines = max(peak.goroutines, s.goroutines)
		peak.redisMemory = max(peak.redisMemory, s.redisMemory)
	}
	t.Logf("%d requests in %v (%.0f req/s), %d errors", w.ops.Load(), elapsed.Round(time.Second), float64(w.ops.Load())/elapsed.Seconds(), w.errors.Load())
	t.Logf("RSS:            start %d KiB, peak %d KiB, end %d KiB", first.rssKB, peak.rssKB, last.rssKB)
	var series []string
	for i := 0; i < len(samples); i += max(1, len(samples)/12) {
		series = append(series, fmt.Sprintf("%v:%d", samples[i].at.Round(time.Second), samples[i].rssKB>>10))
	}
	t.Logf("RSS MiB over time: %s", strings.Join(series, " "))
	t.Logf("goroutines:     start %d, peak %d, end %d", first.goroutines, peak.goroutines, last.goroutines)
	t.Logf("Redis memory:   start %d B, peak %d B, end %d B", first.redisMemory, peak.redisMemory, last.redisMemory)

	if n := w.errors.Load(); n > 0 {
		t.Errorf("%d errors; first: %s", n, *w.firstErr.Load())
		// The server's side: its first warnings and 5xx answers.
		logs.mu.Lock()
		for _, line := range logs.kept {
			t.Logf("server log: %s", strings.TrimSpace(line))
		}
		logs.mu.Unlock()
	}
	if last.goroutines > first.goroutines+5 {
		t.Errorf("goroutines grew from %d to %d", first.goroutines, last.goroutines)
	}
	// Flat once TTLs turn over: the end compared with a third of the way
	// in, after warm-up growth (caches filling, pools sizing).
	third := samples[len(samples)/3]
	t.Logf("RSS a third in: %d KiB; at the end %d KiB (%.2fx; at most 1.2x)", third.rssKB, last.rssKB, float64(last.rssKB)/float64(third.rssKB))
	if last.rssKB*5 > third.rssKB*6 {
		t.Errorf("RSS grew from %d KiB (a third in) to %d KiB: more than 1.2x", third.rssKB, last.rssKB)
	}
	// The rate is a load-test figure: asserted on a full soak, only printed
	// on a short one (CI's 60 s run, on a shared machine, is there for the
	// memory and the errors).
	if got := float64(w.ops.Load()) / elapsed.Seconds(); got < rate*0.95 && elapsed >= 5*time.Minute {
		t.Errorf("reached %.0f req/s of the %.0f aimed at (want at least 95%%)", got, rate)
	}
	if last.redisMemory > third.redisMemory*3/2+1<<20 {
		t.Errorf("Redis used_memory grew from %d B (a third in) to %d B", third.redisMemory, last.redisMemory)
	}
}
