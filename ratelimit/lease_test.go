package ratelimit_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/ratelimit"
	"github.com/theaterscriptpro/tsp/redisx"
)

// leasing is the Lease switch of the tests; hot is one that treats every
// key as hot, for traces on an injected clock (a key's measured rate is
// at least 10 units per second while it is being used at all).
var (
	leasing = ratelimit.LeaseConfig{Enabled: true}
	hot     = ratelimit.LeaseConfig{Enabled: true, HotRate: 1}
)

// closeLimiter gives back l's leases at the end of a test.
func closeLimiter(tb testing.TB, l *ratelimit.Limiter) {
	tb.Helper()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.Close(ctx); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
}

// bucketSum is the sum of every bucket of every key under rdb's prefix:
// the units Redis counts for the test.
func bucketSum(tb testing.TB, rdb *redisx.Client) int64 {
	tb.Helper()
	var sum int64
	for _, k := range redistest.Keys(tb, rdb) {
		h, err := rdb.HGetAll(context.Background(), k)
		if err != nil {
			tb.Fatalf("HGETALL %s: %v", k, err)
		}
		for _, v := range h {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatalf("bucket %q of %s: %v", v, k, err)
			}
			sum += n
		}
	}
	return sum
}

// checkLeased fails unless a leased decision was spent inside its lease's
// bucket, on Redis's clock: at or after the grant, before the bucket ends.
func checkLeased(tb testing.TB, d ratelimit.Decision) {
	tb.Helper()
	grant, end, ok := ratelimit.LeaseBounds(d)
	if !ok {
		tb.Fatalf("a %v decision has no lease", d.Source)
	}
	if at := d.Time.UnixMicro(); at < grant || at >= end {
		tb.Fatalf("admitted from a lease at %d µs; want within its bucket [%d, %d)", at, grant, end)
	}
}

func TestLeaseConfig(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	minute := ratelimit.Rate{Limit: 600, Window: time.Minute}
	bad := map[string]ratelimit.Config{
		"gcra":              {Rate: minute, Algorithm: ratelimit.GCRA, Lease: leasing},
		"sliding log":       {Rate: minute, Algorithm: ratelimit.SlidingLog, Lease: leasing},
		"negative batch":    {Rate: minute, Lease: ratelimit.LeaseConfig{Enabled: true, MaxBatch: -1}},
		"negative rate":     {Rate: minute, Lease: ratelimit.LeaseConfig{Enabled: true, HotRate: -1}},
		"NaN rate":          {Rate: minute, Lease: ratelimit.LeaseConfig{Enabled: true, HotRate: nan()}},
		"infinite rate":     {Rate: minute, Lease: ratelimit.LeaseConfig{Enabled: true, HotRate: math.Inf(1)}},
		"negative margin":   {Rate: minute, Lease: ratelimit.LeaseConfig{Enabled: true, Margin: -time.Millisecond}},
		"margin = bucket":   {Rate: minute, Lease: ratelimit.LeaseConfig{Enabled: true, Margin: 6 * time.Second}},
		"margin > bucket":   {Policies: []ratelimit.Policy{{Name: "s", Rate: ratelimit.Rate{Limit: 5, Window: time.Second}}, {Name: "m", Rate: minute}}, Lease: ratelimit.LeaseConfig{Enabled: true, Margin: time.Second}},
		"negative keys":     {Rate: minute, Lease: ratelimit.LeaseConfig{Enabled: true, Keys: -1}},
		"disabled but hurt": {Rate: minute, Lease: ratelimit.LeaseConfig{MaxBatch: -5}},
	}
	for name, cfg := range bad {
		t.Run(name, func(t *testing.T) {
			l, err := ratelimit.New(rdb, cfg)
			if !errors.Is(err, ratelimit.ErrInvalidConfig) {
				t.Fatalf("New = %v, %v; want ErrInvalidConfig", l, err)
			}
		})
	}
	for name, cfg := range map[string]ratelimit.Config{
		"defaults":          {Rate: minute, Lease: leasing},
		"off":               {Lease: leasing},
		"gcra without":      {Rate: minute, Algorithm: ratelimit.GCRA, Lease: ratelimit.LeaseConfig{MaxBatch: 10}},
		"10 ms buckets":     {Rate: ratelimit.Rate{Limit: 5, Window: time.Second}, Buckets: 100, Lease: leasing},
		"margin just under": {Rate: minute, Lease: ratelimit.LeaseConfig{Enabled: true, Margin: 6*time.Second - time.Microsecond}},
	} {
		t.Run(name, func(t *testing.T) {
			l, err := ratelimit.New(rdb, cfg)
			if err != nil {
				t.Fatalf("New: %v; want a limiter", err)
			}
			if err := l.Close(context.Background()); err != nil {
				t.Fatalf("Close of an unused limiter: %v", err)
			}
		})
	}
}

func nan() float64 { return math.NaN() }

// TestLeaseRoundTrips: a hot key costs at most one Redis call per 50
// requests, and every call is one EVALSHA.
func TestLeaseRoundTrips(t *testing.T) {
	t.Parallel()
	rdb, calls := hookClient(t)
	l := newLimiter(t, rdb, ratelimit.Config{Name: "api", Rate: ratelimit.Rate{Limit: 1_000_000_000, Window: time.Minute}, Lease: leasing})
	closeLimiter(t, l)
	allow(t, l, "warm", 1)
	allow(t, l, "warm", 1)
	calls()
	const goroutines, each = 8, 2500
	var leased atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				d, err := l.Allow(context.Background(), "ip:192.0.2.1", 1)
				if err != nil || !d.Allowed {
					t.Errorf("Allow: %+v, %v; want admitted", d, err)
					return
				}
				if d.Source == ratelimit.SourceLease {
					leased.Add(1)
				}
			}
		})
	}
	wg.Wait()
	got := calls()
	const n = goroutines * each
	if len(got) > n/50 {
		t.Fatalf("%d requests on one key made %d round trips; want at most %d (one per 50)", n, len(got), n/50)
	}
	for _, c := range got {
		if len(c) != 1 || (c[0] != "EVALSHA" && c[0] != "EVAL") {
			t.Fatalf("a round trip sent %v; want one script call", c)
		}
	}
	if leased.Load() < n*9/10 {
		t.Fatalf("%d of %d decisions spent from a lease; want at least 90%%", leased.Load(), n)
	}
	t.Logf("%d requests, %d round trips, %d from leases", n, len(got), leased.Load())
}

// TestLeaseColdKeyNeverLeases: a key below HotRate is decided exactly as
// without leasing, one round trip per decision.
func TestLeaseColdKeyNeverLeases(t *testing.T) {
	t.Parallel()
	rate := ratelimit.Rate{Limit: 30, Window: 100 * time.Second}
	rdbL, calls := hookClient(t)
	rdbP := redistest.Client(t)
	clock := newMicroClock(1_700_000_000_123_457)
	leased := newLimiter(t, rdbL, ratelimit.Config{Rate: rate, Lease: leasing, BlockedKeys: -1})
	plain := newLimiter(t, rdbP, ratelimit.Config{Rate: rate, BlockedKeys: -1})
	closeLimiter(t, leased)
	ratelimit.SetTestNow(leased, clock.now)
	ratelimit.SetTestNow(plain, clock.now)
	// Load the script on the node that holds "k" (on a cluster, a node's
	// first call answers NOSCRIPT once): one unit on both limiters, so they
	// stay in step.
	allow(t, leased, "k", 1)
	allow(t, plain, "k", 1)
	calls()
	// 20 a second, below the default HotRate of 100, cost 1 to 3, for 3
	// windows: past the limit, refusals, and recovery.
	r := rand.New(rand.NewPCG(5, 6))
	const n = 6000
	for i := range n {
		clock.add(50 * time.Millisecond)
		cost := 1 + r.IntN(3)
		a, p := allow(t, leased, "k", cost), allow(t, plain, "k", cost)
		if a.Source != ratelimit.SourceRedis || a.Allowed != p.Allowed || a.RetryAfter != p.RetryAfter ||
			a.Policies()[0] != p.Policies()[0] {
			t.Fatalf("decision %d: leasing limiter %+v, plain %+v; want the same Redis decision", i, a, p)
		}
	}
	if got := calls(); len(got) != n {
		t.Fatalf("%d cold decisions made %d round trips; want %d", n, len(got), n)
	}
	if units, leases := ratelimit.LeasedUnits(leased); leases != 0 {
		t.Fatalf("a cold key holds %d leases of %d units; want none", leases, units)
	}
}

// leaseTraces are adversarial traces for a limit of 60 per 100 s: bursts at
// bucket and window edges, 1000 per window, and random traffic with bursts.
func leaseTraces(window time.Duration) map[string][]event {
	w := window.Microseconds()
	width := w / 10
	var edge []event
	for _, at := range []int64{width - 1, width, w - 1, w, w + width - 1} {
		for range 90 {
			edge = append(edge, event{at, 1})
		}
	}
	for at := w + width; at < 4*w; at += w / 400 {
		edge = append(edge, event{at, 1})
	}
	random := func(seed uint64) []event {
		tr := randomTrace(seed, 6000, 8*window)
		r := rand.New(rand.NewPCG(seed, 99))
		for range 20 {
			at := r.Int64N(8 * w)
			for range 100 {
				tr = append(tr, event{at, 1})
			}
		}
		sortEvents(tr)
		return tr
	}
	return map[string][]event{
		"edge bursts then steady": edge,
		"1000 per window":         perStepTrace(window/1000, 3*window),
		"random":                  random(11),
		"random 2":                random(12),
	}
}

// TestLeaseNeverOverAdmits: three instances leasing from one key admit at
// most Limit in every window of adversarial traces, each leased unit
// inside the bucket its lease was charged to, on the injected Redis clock
// that both the scripts and the spending follow.
func TestLeaseNeverOverAdmits(t *testing.T) {
	t.Parallel()
	const limit, instances = 60, 3
	window := 100 * time.Second // see the top of trace_test.go
	for name, tr := range leaseTraces(window) {
		for _, pick := range []string{"round robin", "random instance"} {
			t.Run(name+"/"+pick, func(t *testing.T) {
				t.Parallel()
				cfg := redistest.Config(t)
				clock := newMicroClock(1_700_000_000_123_457)
				var ls []*ratelimit.Limiter
				for range instances {
					l := newLimiter(t, redistest.Connect(t, cfg), ratelimit.Config{Name: "tr", Rate: ratelimit.Rate{Limit: limit, Window: window},
						Instances: instances, Lease: hot, BlockedKeys: -1})
					ratelimit.SetTestNow(l, clock.now)
					closeLimiter(t, l)
					ls = append(ls, l)
				}
				r := rand.New(rand.NewPCG(3, 4))
				start := clock.now()
				var adm []admission
				leased := 0
				for i, e := range tr {
					clock.v.Store(start + e.at)
					inst := i % instances
					if pick != "round robin" {
						inst = r.IntN(instances)
					}
					d := allow(t, ls[inst], "k", e.cost)
					if !d.Allowed {
						continue
					}
					if got := d.Time.UnixMicro(); got != start+e.at {
						t.Fatalf("admitted at %d on Redis's clock; want the injected %d", got, start+e.at)
					}
					switch d.Source {
					case ratelimit.SourceLease:
						checkLeased(t, d)
						leased++
					case ratelimit.SourceRedis:
					default:
						t.Fatalf("decision from %v", d.Source)
					}
					adm = append(adm, admission{e.at, e.cost})
				}
				most, end := maxInWindow(adm, window.Microseconds())
				if most > limit {
					t.Fatalf("window ending at +%dµs admitted %d; want at most %d", end, most, limit)
				}
				if most < limit*3/4 {
					t.Fatalf("the busiest window admitted %d of %d: the trace never neared the limit", most, limit)
				}
				if leased < len(adm)/4 {
					t.Fatalf("%d of %d admissions from leases: the trace did not lease", leased, len(adm))
				}
				t.Logf("%d admitted, %d from leases, busiest window %d", len(adm), leased, most)
			})
		}
	}
}

// TestLeaseNeverOverAdmitsRealTime is the production path: Redis TIME,
// the monotonic clock, timers; 3 instances × 4 goroutines hammer one key
// for 2.5 s, and every window of the admissions, timed on Redis's clock
// (the grant's TIME plus the time elapsed since its request was sent),
// holds at most Limit.
func TestLeaseNeverOverAdmitsRealTime(t *testing.T) {
	t.Parallel()
	const limit, instances, goroutines = 300, 3, 4
	window := time.Second
	cfg := redistest.Config(t)
	var mu sync.Mutex
	var adm []admission
	var leased atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(2500 * time.Millisecond)
	for range instances {
		l := newLimiter(t, redistest.Connect(t, cfg), ratelimit.Config{Name: "rt", Rate: ratelimit.Rate{Limit: limit, Window: window},
			Instances: instances, Lease: leasing})
		closeLimiter(t, l)
		for range goroutines {
			wg.Go(func() {
				for time.Now().Before(stop) {
					d, err := l.Allow(context.Background(), "k", 1)
					if err != nil || d.Source == ratelimit.SourceFailOpen {
						t.Errorf("Allow: %+v, %v", d, err)
						return
					}
					if !d.Allowed {
						time.Sleep(time.Millisecond) // blocked: do not spin the CPU the others need
						continue
					}
					if d.Source == ratelimit.SourceLease {
						checkLeased(t, d)
						leased.Add(1)
					}
					mu.Lock()
					adm = append(adm, admission{d.Time.UnixMicro(), 1})
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	most, end := maxInWindow(adm, window.Microseconds())
	if most > limit {
		t.Fatalf("window ending at %v admitted %d; want at most %d", time.UnixMicro(end), most, limit)
	}
	if most < limit*3/4 {
		t.Fatalf("busiest window admitted %d of %d: leasing starves clients", most, limit)
	}
	if leased.Load() < int64(len(adm)/4) {
		t.Fatalf("%d of %d admissions from leases; want leasing to carry the load", leased.Load(), len(adm))
	}
	t.Logf("%d admitted, %d from leases, busiest window %d of %d", len(adm), leased.Load(), most, limit)
}

// TestLeaseFairness: two instances with equal demand on one key each get a
// fair share of the window, however the leases fall.
func TestLeaseFairness(t *testing.T) {
	t.Parallel()
	const limit = 1000
	window := 100 * time.Second
	cfg := redistest.Config(t)
	clock := newMicroClock(1_700_000_000_000_000)
	var ls [2]*ratelimit.Limiter
	for i := range ls {
		ls[i] = newLimiter(t, redistest.Connect(t, cfg), ratelimit.Config{Name: "fair", Rate: ratelimit.Rate{Limit: limit, Window: window},
			Instances: 2, Lease: hot, BlockedKeys: -1})
		ratelimit.SetTestNow(ls[i], clock.now)
		closeLimiter(t, ls[i])
	}
	// Equal demand: each instance gets every other request, 1000 a second
	// each, until the window is used up (within its first bucket).
	var got [2]int
	for i := range 4 * limit {
		clock.add(500 * time.Microsecond)
		if allow(t, ls[i%2], "k", 1).Allowed {
			got[i%2]++
		}
	}
	if got[0]+got[1] != limit {
		t.Fatalf("admitted %v, %d in all; want %d: the window's quota in full", got, got[0]+got[1], limit)
	}
	for i, n := range got {
		if n < limit*2/5 {
			t.Fatalf("instance %d got %d of %d (shares %v); want at least 40%%", i, n, limit, got)
		}
	}
	t.Logf("shares %v", got)
}

// burst sends n requests from 4 goroutines on key and returns how many
// were admitted.
func burst(tb testing.TB, l *ratelimit.Limiter, key string, n int) int64 {
	tb.Helper()
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range n / 4 {
				d, err := l.Allow(context.Background(), key, 1)
				if err != nil || d.Source == ratelimit.SourceFailOpen {
					tb.Errorf("Allow: %+v, %v", d, err)
					return
				}
				if d.Allowed {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return admitted.Load()
}

// burstLeased bursts on key until l holds a lease at the end of a burst
// (a burst can end in the last margin of a bucket, where nothing is
// leased), and returns how many requests were admitted in all.
func burstLeased(tb testing.TB, l *ratelimit.Limiter, key string, n int) int64 {
	tb.Helper()
	var admitted int64
	for range 5 {
		admitted += burst(tb, l, key, n)
		if units, _ := ratelimit.LeasedUnits(l); units > 0 {
			return admitted
		}
	}
	tb.Fatal("after 5 bursts nothing is leased; want an unspent lease to give back")
	return 0
}

// TestLeaseReturns: after a burst, what the leases did not spend goes back,
// so the key's buckets count exactly the units admitted: once the key is
// idle (the lease's timer), at Close, and when the key is evicted.
func TestLeaseReturns(t *testing.T) {
	t.Parallel()
	rate := ratelimit.Rate{Limit: 1_000_000, Window: 10 * time.Second} // 1 s buckets
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		rdb := redistest.Client(t)
		l := newLimiter(t, rdb, ratelimit.Config{Rate: rate, Lease: leasing})
		admitted := burstLeased(t, l, "k", 4000)
		deadline := time.Now().Add(5 * time.Second)
		for {
			units, _ := ratelimit.LeasedUnits(l)
			sum := bucketSum(t, rdb)
			if units == 0 && sum == admitted {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("5 s after the burst: %d units still leased, Redis counts %d; want 0 and the %d admitted", units, sum, admitted)
			}
			time.Sleep(20 * time.Millisecond)
		}
		checkTTLs(t, rdb)
	})
	t.Run("close", func(t *testing.T) {
		t.Parallel()
		rdb := redistest.Client(t)
		l := newLimiter(t, rdb, ratelimit.Config{Rate: rate, Lease: leasing})
		admitted := burstLeased(t, l, "k", 4000)
		if err := l.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if units, leases := ratelimit.LeasedUnits(l); leases != 0 {
			t.Fatalf("after Close %d leases of %d units remain; want none", leases, units)
		}
		if sum := bucketSum(t, rdb); sum != admitted {
			t.Fatalf("after Close Redis counts %d; want the %d admitted", sum, admitted)
		}
		// After Close every decision is Redis's again, and still counted.
		d := allow(t, l, "k", 1)
		if d.Source != ratelimit.SourceRedis || bucketSum(t, rdb) != admitted+1 {
			t.Fatalf("after Close: %v decision, Redis counts %d; want a Redis decision counted as %d", d.Source, bucketSum(t, rdb), admitted+1)
		}
	})
	t.Run("evicted", func(t *testing.T) {
		t.Parallel()
		rdb := redistest.Client(t)
		l := newLimiter(t, rdb, ratelimit.Config{Rate: rate, Lease: ratelimit.LeaseConfig{Enabled: true, Keys: 32}})
		var admitted int64
		for i := range 100 {
			admitted += burst(t, l, "k"+strconv.Itoa(i), 200)
		}
		if n := ratelimit.LeaseKeys(l); n > 32 {
			t.Fatalf("tracking %d keys; want at most Lease.Keys = 32", n)
		}
		if err := l.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if sum := bucketSum(t, rdb); sum != admitted {
			t.Fatalf("after 100 hot keys through a table of 32 and Close, Redis counts %d; want the %d admitted", sum, admitted)
		}
	})
}

// TestLeaseRedisKilled: a lease granted before Redis died is still spent
// until its bucket ends, not after; then the failure policy decides.
func TestLeaseRedisKilled(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	cfg := redistest.Config(t)
	cfg = redistest.At(cfg, srv.Addr)
	cfg.BreakerOpenFor = 250 * time.Millisecond
	rdb := redistest.Connect(t, cfg)
	l, err := ratelimit.New(rdb, ratelimit.Config{Rate: ratelimit.Rate{Limit: 1_000_000, Window: 20 * time.Second}, // 2 s buckets
		FailurePolicy: ratelimit.FailClosed, Timeout: 200 * time.Millisecond,
		Lease: ratelimit.LeaseConfig{Enabled: true, MaxBatch: 1_000_000}})
	if err != nil {
		t.Fatal(err)
	}
	// Hammer until this instance holds a lease with time left to spend it
	// at one unit a ms.
	var units int
	var left time.Duration
	var ok bool
	var read time.Time // before the lease was read: it is valid until at least read + left
	for give := time.Now().Add(10 * time.Second); ; {
		burst(t, l, "k", 400)
		read = time.Now()
		units, left, ok = ratelimit.LeaseLeft(l, "k")
		if ok && left > 400*time.Millisecond && units > int(left/time.Millisecond) {
			break
		}
		if time.Now().After(give) {
			t.Fatalf("no lease with 400 ms and enough units to spend (last: %d units, %v, %v)", units, left, ok)
		}
	}
	srv.Kill()
	leased := 0
	for {
		d := allow(t, l, "k", 1)
		if d.Source != ratelimit.SourceLease {
			if since := time.Since(read); since < left {
				t.Fatalf("%v after reading %v of the lease left, with Redis killed, a %v decision; want the lease spent until it ends", since, left, d.Source)
			}
			if d.Allowed || d.Source != ratelimit.SourceFailClosed {
				t.Fatalf("after the lease ended: %+v; want the failure policy (fail closed)", d)
			}
			break
		}
		checkLeased(t, d)
		leased++
		if time.Since(read) > left+5*time.Second {
			t.Fatalf("still spending a lease %v after it had %v left", time.Since(read), left)
		}
		time.Sleep(time.Millisecond)
	}
	if leased == 0 {
		t.Fatal("no decision spent the lease after Redis died")
	}
	for range 3 {
		if d := allow(t, l, "k", 1); d.Source != ratelimit.SourceFailClosed {
			t.Fatalf("with Redis down and the lease over: %v; want fail closed", d.Source)
		}
	}
	if got := counterValue(t, l.Collector(), "ratelimit_redis_errors_total"); got < 1 {
		t.Fatalf("redis errors counted %v; want some", got)
	}
	t.Logf("%d decisions from the lease in the %v after the kill", leased, left.Round(time.Millisecond))
}

// TestLeaseHeaders: RateLimit's r stays what Redis would say: one instance
// alone on a key reports exactly Limit − admitted, leased or not.
func TestLeaseHeaders(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	const limit = 2000
	l := newLimiter(t, rdb, ratelimit.Config{Name: "api", Rate: ratelimit.Rate{Limit: limit, Window: time.Minute}, Lease: leasing})
	closeLimiter(t, l)
	h := l.Middleware(okHandler(200))
	before := rdb.RoundTrips()
	for i := 1; i <= 600; i++ {
		w := serve(h, "192.0.2.1:1")
		items, err := parseSFList(w.Header().Get("RateLimit"))
		if err != nil || len(items) != 1 {
			t.Fatalf("request %d: RateLimit %q: %v", i, w.Header().Get("RateLimit"), err)
		}
		if r := items[0].params["r"]; r != limit-int64(i) {
			t.Fatalf("request %d: r=%d; want %d", i, r, limit-i)
		}
		if got, want := w.Header().Get("X-RateLimit-Remaining"), strconv.Itoa(limit-i); got != want {
			t.Fatalf("request %d: X-RateLimit-Remaining %s; want %s", i, got, want)
		}
		if tt := items[0].params["t"]; tt < 1 || tt > 66 {
			t.Fatalf("request %d: t=%d; want within a window and a bucket", i, tt)
		}
	}
	if trips := rdb.RoundTrips() - before; trips > 100 {
		t.Fatalf("600 requests made %d round trips; want the hot key to lease", trips)
	}
}

// TestLeaseRefund: "skip successful" gives a leased unit back to the lease
// it came from, with no round trip, and nothing stays counted.
func TestLeaseRefund(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	l := newLimiter(t, rdb, ratelimit.Config{Rate: ratelimit.Rate{Limit: 100, Window: time.Minute}, Lease: leasing, SkipSuccessful: true})
	h := l.Middleware(okHandler(200))
	// Far more requests than the limit: refunded, they never add up.
	for i := range 1000 {
		if w := serve(h, "192.0.2.1:1"); w.Code != 200 {
			t.Fatalf("request %d: %d; want 200, every success refunded", i, w.Code)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sum := bucketSum(t, rdb); sum != 0 {
		t.Fatalf("Redis counts %d after refunding every request; want 0", sum)
	}
}

func sortEvents(tr []event) {
	sort.SliceStable(tr, func(i, j int) bool { return tr[i].at < tr[j].at })
}

// TestLeaseSeveralPolicies: with a per-100 s and a per-1000 s policy on
// one key, leases end with the shorter policy's bucket and neither policy
// is ever exceeded in any of its windows.
func TestLeaseSeveralPolicies(t *testing.T) {
	t.Parallel()
	const instances = 3
	short, long := ratelimit.Rate{Limit: 60, Window: 100 * time.Second}, ratelimit.Rate{Limit: 150, Window: 1000 * time.Second}
	cfg := redistest.Config(t)
	clock := newMicroClock(1_700_000_000_654_321)
	var ls []*ratelimit.Limiter
	for range instances {
		l := newLimiter(t, redistest.Connect(t, cfg), ratelimit.Config{Name: "two", Instances: instances, Lease: hot, BlockedKeys: -1,
			Policies: []ratelimit.Policy{{Name: "short", Rate: short}, {Name: "long", Rate: long}}})
		ratelimit.SetTestNow(l, clock.now)
		closeLimiter(t, l)
		ls = append(ls, l)
	}
	start := clock.now()
	var adm []admission
	leased := 0
	for i, e := range randomTrace(21, 8000, 2500*time.Second) {
		clock.v.Store(start + e.at)
		d := allow(t, ls[i%instances], "k", e.cost)
		if !d.Allowed {
			continue
		}
		if d.Source == ratelimit.SourceLease {
			checkLeased(t, d)
			if _, end, _ := ratelimit.LeaseBounds(d); end%(short.Window.Microseconds()/10) != 0 {
				t.Fatalf("lease ends at %d µs; want the end of a %v bucket", end, short.Window/10)
			}
			leased++
		}
		adm = append(adm, admission{e.at, e.cost})
	}
	for _, r := range []ratelimit.Rate{short, long} {
		if most, end := maxInWindow(adm, r.Window.Microseconds()); most > r.Limit {
			t.Fatalf("%v window ending at +%dµs admitted %d; want at most %d", r.Window, end, most, r.Limit)
		}
	}
	if leased < len(adm)/4 {
		t.Fatalf("%d of %d admissions from leases: the trace did not lease", leased, len(adm))
	}
	t.Logf("%d admitted, %d from leases", len(adm), leased)
}
