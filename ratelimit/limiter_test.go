package ratelimit_test

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/ratelimit"
	"github.com/theaterscriptpro/tsp/redisx"
)

var algorithms = []ratelimit.Algorithm{ratelimit.SlidingWindow, ratelimit.SlidingLog, ratelimit.GCRA}

// newLimiter makes a limiter for a test. Unless the test sets one, the
// Timeout is 5 s: tests about counting must not fail open because the
// shared 2-core machine (and -race) delayed one call past the 75 ms default.
func newLimiter(tb testing.TB, rdb *redisx.Client, cfg ratelimit.Config) *ratelimit.Limiter {
	tb.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	l, err := ratelimit.New(rdb, cfg)
	if err != nil {
		tb.Fatalf("New(%+v): %v", cfg, err)
	}
	return l
}

func allow(tb testing.TB, l *ratelimit.Limiter, key string, cost int) ratelimit.Decision {
	tb.Helper()
	d, err := l.Allow(context.Background(), key, cost)
	if err != nil {
		tb.Fatalf("Allow(%q, %d): %v", key, cost, err)
	}
	return d
}

// checkTTLs fails unless every key under rdb's prefix has a TTL, and
// returns how many keys there are.
func checkTTLs(tb testing.TB, rdb *redisx.Client) int {
	tb.Helper()
	keys := redistest.Keys(tb, rdb)
	for _, k := range keys {
		ttl, err := rdb.TTL(context.Background(), k)
		if err != nil {
			tb.Fatalf("PTTL %s: %v", k, err)
		}
		if ttl < 0 && ttl != -2 { // -2: expired between SCAN and PTTL
			tb.Errorf("key %s has no TTL (PTTL %d)", k, ttl)
		}
	}
	return len(keys)
}

// microClock is an injected script time in µs that tests move by hand.
type microClock struct{ v atomic.Int64 }

func (c *microClock) now() int64            { return c.v.Load() }
func (c *microClock) add(d time.Duration)   { c.v.Add(d.Microseconds()) }
func newMicroClock(start int64) *microClock { c := &microClock{}; c.v.Store(start); return c }

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	minute := ratelimit.Rate{Limit: 10, Window: time.Minute}
	bad := map[string]ratelimit.Config{
		"no rate":              {Policies: []ratelimit.Policy{{Rate: ratelimit.Rate{}}}},
		"rate and policies":    {Rate: minute, Policies: []ratelimit.Policy{{Rate: minute}}},
		"name upper":           {Name: "API", Rate: minute},
		"name with brace":      {Name: "a{b}", Rate: minute},
		"name too long":        {Name: "abcdefghijabcdefghijabcdefghijabc", Rate: minute},
		"policy name quote":    {Policies: []ratelimit.Policy{{Name: `a"b`, Rate: minute}}},
		"duplicate policy":     {Policies: []ratelimit.Policy{{Name: "a", Rate: minute}, {Name: "a", Rate: minute}}},
		"too many policies":    {Policies: []ratelimit.Policy{{Name: "a", Rate: minute}, {Name: "b", Rate: minute}, {Name: "c", Rate: minute}, {Name: "d", Rate: minute}, {Name: "e", Rate: minute}}},
		"window too short":     {Rate: ratelimit.Rate{Limit: 1, Window: time.Millisecond}},
		"window sub-ms":        {Rate: ratelimit.Rate{Limit: 1, Window: time.Second + time.Microsecond}},
		"negative limit":       {Rate: ratelimit.Rate{Limit: -1, Window: time.Second}},
		"log limit too large":  {Rate: ratelimit.Rate{Limit: ratelimit.MaxLogLimit + 1, Window: time.Minute}, Algorithm: ratelimit.SlidingLog},
		"unknown algorithm":    {Rate: minute, Algorithm: 7},
		"unknown failure":      {Rate: minute, FailurePolicy: 9},
		"unknown headers":      {Rate: minute, Headers: 9},
		"buckets too many":     {Rate: minute, Buckets: ratelimit.MaxBuckets + 1},
		"buckets negative":     {Rate: minute, Buckets: -1},
		"negative instances":   {Rate: minute, Instances: -2},
		"negative timeout":     {Rate: minute, Timeout: -time.Second},
		"negative burst":       {Policies: []ratelimit.Policy{{Rate: minute, Burst: -1}}, Algorithm: ratelimit.GCRA},
		"negative fallback":    {Rate: minute, FallbackKeys: -1},
		"policy rate off name": {Policies: []ratelimit.Policy{{Name: "x"}}},
	}
	for name, cfg := range bad {
		t.Run(name, func(t *testing.T) {
			l, err := ratelimit.New(rdb, cfg)
			if !errors.Is(err, ratelimit.ErrInvalidConfig) {
				t.Fatalf("New = %v, %v; want ErrInvalidConfig", l, err)
			}
		})
	}
	t.Run("nil client", func(t *testing.T) {
		if _, err := ratelimit.New(nil, ratelimit.Config{Rate: minute}); !errors.Is(err, ratelimit.ErrInvalidConfig) {
			t.Fatalf("New(nil) err = %v; want ErrInvalidConfig", err)
		}
	})
}

func TestOffAdmitsWithoutRedis(t *testing.T) {
	t.Parallel()
	rate, err := ratelimit.ParseRate("off")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ratelimit.New(nil, ratelimit.Config{Rate: rate})
	if err != nil {
		t.Fatalf("New(off) = %v", err)
	}
	for range 3 {
		d := allow(t, l, "k", 1000)
		if !d.Allowed || d.Source != ratelimit.SourceOff {
			t.Fatalf("off limiter: got %+v; want allowed from SourceOff", d)
		}
	}
	if !l.Off() {
		t.Fatal("Off() = false; want true")
	}
}

func TestAllowBadInput(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, redistest.Client(t), ratelimit.Config{Rate: ratelimit.Rate{Limit: 5, Window: time.Minute}})
	for _, tt := range []struct {
		key  string
		cost int
	}{{"", 1}, {"k", -1}, {"k", -1 << 40}} {
		if _, err := l.Allow(context.Background(), tt.key, tt.cost); !errors.Is(err, ratelimit.ErrInvalidRequest) {
			t.Errorf("Allow(%q, %d) err = %v; want ErrInvalidRequest", tt.key, tt.cost, err)
		}
	}
}

// TestLimitThenRefuse: each algorithm admits its quota, refuses the next
// request with a positive retry time, reports the remaining count, and
// leaves only keys with TTLs.
func TestLimitThenRefuse(t *testing.T) {
	t.Parallel()
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			rdb := redistest.Client(t)
			l := newLimiter(t, rdb, ratelimit.Config{Name: "t", Rate: ratelimit.Rate{Limit: 5, Window: time.Minute}, Algorithm: alg})
			for i := range 5 {
				d := allow(t, l, "client", 1)
				if !d.Allowed || d.Source != ratelimit.SourceRedis {
					t.Fatalf("request %d: got %+v; want admitted by Redis", i+1, d)
				}
				if p, _ := d.Binding(); p.Remaining != 4-i {
					t.Fatalf("request %d: remaining %d; want %d", i+1, p.Remaining, 4-i)
				}
				if d.Time.IsZero() || time.Since(d.Time).Abs() > time.Minute {
					t.Fatalf("request %d: Redis time %v is not now", i+1, d.Time)
				}
			}
			d := allow(t, l, "client", 1)
			if d.Allowed || d.Source != ratelimit.SourceRedis || d.RetryAfter <= 0 || d.RetryAfter > 66*time.Second {
				// At most a window and one bucket (6 s of 60 s).
				t.Fatalf("request 6: got %+v; want refused by Redis with 0 < RetryAfter <= 66s", d)
			}
			// Refused again, now from the local cache, with no round trip.
			before := rdb.RoundTrips()
			d = allow(t, l, "client", 1)
			if d.Allowed || d.Source != ratelimit.SourceBlocked || d.RetryAfter <= 0 {
				t.Fatalf("request 7: got %+v; want refused by the local block cache", d)
			}
			if got := rdb.RoundTrips() - before; got != 0 {
				t.Fatalf("blocked key cost %d round trips; want 0", got)
			}
			// Another client is not affected.
			if d := allow(t, l, "other", 1); !d.Allowed {
				t.Fatalf("another key: got %+v; want admitted", d)
			}
			if n := checkTTLs(t, rdb); n != 2 {
				t.Fatalf("%d keys; want 2 (one per client)", n)
			}
		})
	}
}

func TestCostOverLimitIsNeverRetryable(t *testing.T) {
	t.Parallel()
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			rdb := redistest.Client(t)
			l := newLimiter(t, rdb, ratelimit.Config{Rate: ratelimit.Rate{Limit: 5, Window: time.Minute}, Algorithm: alg})
			before := rdb.RoundTrips()
			d := allow(t, l, "k", 6)
			if d.Allowed || !d.Never || d.RetryAfter != 0 {
				t.Fatalf("cost 6 of 5: got %+v; want a Never refusal without RetryAfter", d)
			}
			if got := rdb.RoundTrips() - before; got != 0 {
				t.Fatalf("a cost over the limit made %d round trips; want 0", got)
			}
			// The whole quota in one request fits.
			if d := allow(t, l, "k", 5); !d.Allowed {
				t.Fatalf("cost 5 of 5: got %+v; want admitted", d)
			}
			if d := allow(t, l, "k", 1); d.Allowed {
				t.Fatalf("after cost 5 of 5: got %+v; want refused", d)
			}
		})
	}
}

func TestCostZeroOnlyReports(t *testing.T) {
	t.Parallel()
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			rdb := redistest.Client(t)
			l := newLimiter(t, rdb, ratelimit.Config{Rate: ratelimit.Rate{Limit: 3, Window: time.Minute}, Algorithm: alg})
			allow(t, l, "k", 1)
			for range 5 {
				d := allow(t, l, "k", 0)
				if p, _ := d.Binding(); !d.Allowed || p.Remaining != 2 {
					t.Fatalf("peek: got %+v remaining %d; want allowed with 2 remaining", d, p.Remaining)
				}
			}
			if d := allow(t, l, "fresh", 0); !d.Allowed {
				t.Fatalf("peek at a fresh key: %+v", d)
			}
			if n := len(redistest.Keys(t, rdb)); n != 1 {
				t.Fatalf("a peek created keys: %d keys; want 1", n)
			}
		})
	}
}

// TestPoliciesAreAtomic: a request refused by one policy is charged to
// none, and the refusal names the policy that refused.
func TestPoliciesAreAtomic(t *testing.T) {
	t.Parallel()
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			rdb := redistest.Client(t)
			l := newLimiter(t, rdb, ratelimit.Config{Name: "api", Algorithm: alg, Policies: []ratelimit.Policy{
				{Name: "minute", Rate: ratelimit.Rate{Limit: 3, Window: time.Minute}},
				{Name: "day", Rate: ratelimit.Rate{Limit: 5, Window: 24 * time.Hour}},
			}})
			for i := range 3 {
				if d := allow(t, l, "u", 1); !d.Allowed {
					t.Fatalf("request %d: %+v; want admitted", i+1, d)
				}
			}
			d := allow(t, l, "u", 1)
			if d.Allowed {
				t.Fatalf("request 4: admitted; want refused by the minute policy")
			}
			if p, _ := d.Binding(); p.Name != "minute" {
				t.Fatalf("refused by %q; want minute", p.Name)
			}
			st := d.Policies()
			if len(st) != 2 || st[1].Name != "day" || st[1].Remaining != 2 || st[1].RetryAfter != 0 {
				t.Fatalf("policies %+v; want day with 2 remaining and no retry: the refusal was not charged", st)
			}
			keys := redistest.Keys(t, rdb)
			if len(keys) != 2 {
				t.Fatalf("keys %v; want one per policy", keys)
			}
			// Built by the one key builder: ratelimit:{u}:api:minute and :day,
			// sharing the identifier's hash tag.
			sort.Strings(keys)
			if want := []string{rdb.Keys().RateLimit("u", "api", "day"), rdb.Keys().RateLimit("u", "api", "minute")}; !slices.Equal(keys, want) {
				t.Fatalf("keys %q; want %q (redisx.Keys.RateLimit)", keys, want)
			}
			checkTTLs(t, rdb)
		})
	}
}

func TestChargeRejected(t *testing.T) {
	t.Parallel()
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			rdb := redistest.Client(t)
			clock := newMicroClock(1_700_000_000_000_000)
			l := newLimiter(t, rdb, ratelimit.Config{Rate: ratelimit.Rate{Limit: 3, Window: 10 * time.Second}, Algorithm: alg,
				ChargeRejected: true, BlockedKeys: -1})
			ratelimit.SetTestNow(l, clock.now)
			for range 3 {
				allow(t, l, "k", 1)
			}
			first := allow(t, l, "k", 1)
			// Keep hammering for 9 s: each refusal is charged, so the wait grows.
			for range 9 {
				clock.add(time.Second)
				allow(t, l, "k", 1)
			}
			last := allow(t, l, "k", 1)
			if last.Allowed || last.RetryAfter <= first.RetryAfter-9*time.Second {
				t.Fatalf("after hammering: %+v; want still refused with a wait that did not run down (first %v)", last, first.RetryAfter)
			}
			clock.add(last.RetryAfter)
			if d := allow(t, l, "k", 1); !d.Allowed {
				t.Fatalf("after waiting RetryAfter: %+v; want admitted", d)
			}
			checkTTLs(t, rdb)
			if alg == ratelimit.SlidingLog {
				n, err := rdb.Do(context.Background(), rdb.B().Zcard().Key(redistest.Keys(t, rdb)[0]).Build()).AsInt64()
				if err != nil || n > 3 {
					t.Fatalf("log holds %d entries (%v); want at most the limit, 3", n, err)
				}
			}
		})
	}
}

func TestRefund(t *testing.T) {
	t.Parallel()
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			rdb := redistest.Client(t)
			l := newLimiter(t, rdb, ratelimit.Config{Rate: ratelimit.Rate{Limit: 3, Window: time.Hour}, Algorithm: alg})
			ctx := context.Background()
			for range 10 {
				d := allow(t, l, "k", 2)
				if !d.Allowed {
					t.Fatalf("refunded requests should not count: %+v", d)
				}
				if err := l.Refund(ctx, d); err != nil {
					t.Fatal(err)
				}
			}
			// Refunding a refusal, or twice, gives nothing back.
			a := allow(t, l, "k", 3)
			r := allow(t, l, "k", 1)
			if !a.Allowed || r.Allowed {
				t.Fatalf("got %+v then %+v; want admitted then refused", a, r)
			}
			if err := l.Refund(ctx, r); err != nil {
				t.Fatal(err)
			}
			if err := l.Reset(ctx, "k"); err != nil { // clear the local block only matters here
				t.Fatal(err)
			}
			if d := allow(t, l, "k", 3); !d.Allowed {
				t.Fatalf("after Reset: %+v; want admitted", d)
			}
			checkTTLs(t, rdb)
		})
	}
}

// TestRefundGivesBackOnlyItsOwn: a refund returns what its decision was
// charged, not what other requests were.
func TestRefundGivesBackOnlyItsOwn(t *testing.T) {
	t.Parallel()
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			rdb := redistest.Client(t)
			l := newLimiter(t, rdb, ratelimit.Config{Rate: ratelimit.Rate{Limit: 2, Window: time.Hour}, Algorithm: alg, BlockedKeys: -1})
			ctx := context.Background()
			a := allow(t, l, "k", 1)
			allow(t, l, "k", 1)
			if err := l.Refund(ctx, a); err != nil {
				t.Fatal(err)
			}
			if d := allow(t, l, "k", 1); !d.Allowed {
				t.Fatalf("after the refund: %+v; want admitted", d)
			}
			if d := allow(t, l, "k", 1); d.Allowed {
				t.Fatalf("the refund gave back more than its own unit: %+v admitted", d)
			}
		})
	}
}

// TestManyInstancesAdmitExactlyMax: several clients (app instances) with
// many goroutines each, on one key, admit exactly the limit.
func TestManyInstancesAdmitExactlyMax(t *testing.T) {
	t.Parallel()
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			cfg := redistest.Config(t)
			const limit, instances, goroutines, tries = 100, 4, 16, 20
			// GCRA refills one unit per Window/Limit: an hour makes that 36s,
			// longer than the test, so exactly Burst (= Limit) pass.
			rate := ratelimit.Rate{Limit: limit, Window: time.Hour}
			var admitted atomic.Int64
			var wg sync.WaitGroup
			var rdbs []*redisx.Client
			for i := range instances {
				rdb := redistest.Connect(t, cfg)
				rdbs = append(rdbs, rdb)
				l := newLimiter(t, rdb, ratelimit.Config{Name: "race", Rate: rate, Algorithm: alg})
				_ = i
				for range goroutines {
					wg.Go(func() {
						for range tries {
							d, err := l.Allow(context.Background(), "hot", 1)
							if err != nil || d.Source == ratelimit.SourceFailOpen {
								t.Errorf("Allow: %+v, %v", d, err)
								return
							}
							if d.Allowed {
								admitted.Add(1)
							}
						}
					})
				}
			}
			wg.Wait()
			if got := admitted.Load(); got != limit {
				t.Fatalf("%d instances × %d goroutines × %d tries admitted %d; want exactly %d", instances, goroutines, tries, got, limit)
			}
			checkTTLs(t, rdbs[0])
		})
	}
}

// TestSkewedAppClocksDecideTheSame: instances whose clocks are 5 s ahead
// and behind make exactly the decisions an unskewed one makes, because
// shared decisions take Redis TIME and the app clock only times local
// blocks by durations.
func TestSkewedAppClocksDecideTheSame(t *testing.T) {
	t.Parallel()
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			cfg := redistest.Config(t)
			// A long window for comparing decisions, so a slow machine
			// cannot slide it between the two runs; a short one for waiting.
			long := ratelimit.Rate{Limit: 4, Window: time.Minute}
			short := ratelimit.Rate{Limit: 4, Window: 2 * time.Second}
			mk := func(name string, rate ratelimit.Rate, skew time.Duration) *ratelimit.Limiter {
				return newLimiter(t, redistest.Connect(t, cfg), ratelimit.Config{Name: name, Rate: rate, Algorithm: alg,
					Now: func() time.Time { return time.Now().Add(skew) }})
			}
			skews := []time.Duration{5 * time.Second, -5 * time.Second, 0}
			var skewed, skewedShort []*ratelimit.Limiter
			for _, sk := range skews {
				skewed = append(skewed, mk("skew", long, sk))
				skewedShort = append(skewedShort, mk("short", short, sk))
			}
			straight := mk("skew", long, 0)
			run := func(key string, pick func(i int) *ratelimit.Limiter) []bool {
				var out []bool
				for i := range 10 {
					out = append(out, allow(t, pick(i), key, 1).Allowed)
				}
				return out
			}
			got := run("skewed", func(i int) *ratelimit.Limiter { return skewed[i%3] })
			want := run("straight", func(int) *ratelimit.Limiter { return straight })
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("decision %d: skewed instances %v, one unskewed %v; want the same", i, got, want)
				}
			}
			if want[3] != true || want[4] != false {
				t.Fatalf("decisions %v; want 4 admitted then refusals", want)
			}
			skewed = skewedShort
			run("skewed", func(i int) *ratelimit.Limiter { return skewed[i%3] })
			// Each skewed instance honours the block as a duration: after
			// the wait every one of them admits again.
			d := allow(t, skewed[0], "skewed", 1)
			time.Sleep(d.RetryAfter + 10*time.Millisecond)
			for i, l := range skewed {
				d := allow(t, l, "skewed", 1)
				if !d.Allowed {
					t.Fatalf("instance %d after the wait: %+v; want admitted", i, d)
				}
				// Give the unit back so the next instance finds it too.
				if err := l.Refund(context.Background(), d); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
