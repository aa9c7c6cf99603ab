package ratelimit_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/ratelimit"
)

// How the traces are timed. The production scripts take the time from Redis
// TIME, and every decision returns the µs it used (Decision.Time), so the
// real-time tests below check the production path exactly: the windows are
// measured on the clock the script decided by. Long or edge-exact traces
// (a burst 1 µs before and at a bucket edge; 20 s of steady traffic) cannot
// be produced reliably by sleeping on a shared 2-core machine, so those
// drive the same scripts with an injected time passed as an argument; only
// this package's tests can set it (export_test.go), production code always
// passes "0" = TIME.
//
// Keys still expire on Redis's real clock, with TTLs computed from the
// injected time. So injected time must never run slower than real time,
// or a key would expire before its injected end and the trace would
// measure an artefact. The injected traces therefore use a 100 s window:
// "1 per ms" at a 1 s window becomes 1 per 100 ms at 100 s, the same trace
// in units of the window, and each call advances the injected clock far
// more than the real time it takes.

// event is one request of a trace: when (µs after the start) and its cost.
type event struct {
	at   int64
	cost int
}

// admission is an admitted request on the script's clock.
type admission struct {
	at   int64
	cost int
}

// maxInWindow returns the most units admitted in any half-open window
// (t - window, t], and where that window ends. The maximum is reached at a
// window ending on an admission, so those are the only ends checked.
func maxInWindow(adm []admission, window int64) (most int, end int64) {
	sort.Slice(adm, func(i, j int) bool { return adm[i].at < adm[j].at })
	sum, i := 0, 0
	for j := range adm {
		sum += adm[j].cost
		for adm[i].at <= adm[j].at-window {
			sum -= adm[i].cost
			i++
		}
		if sum > most {
			most, end = sum, adm[j].at
		}
	}
	return most, end
}

// minInWindows returns the fewest units admitted in any window (t-window, t]
// for t from start to stop on a grid of step µs.
func minInWindows(adm []admission, window, start, stop, step int64) (least int, end int64) {
	least = -1
	for t := start; t <= stop; t += step {
		sum := 0
		for _, a := range adm {
			if a.at > t-window && a.at <= t {
				sum += a.cost
			}
		}
		if least < 0 || sum < least {
			least, end = sum, t
		}
	}
	return least, end
}

// runTrace feeds a trace to l with the injected clock and returns what was
// admitted, on the script's clock.
func runTrace(tb testing.TB, l *ratelimit.Limiter, clock *microClock, key string, trace []event) []admission {
	tb.Helper()
	start := clock.now()
	var adm []admission
	for _, e := range trace {
		clock.v.Store(start + e.at)
		d := allow(tb, l, key, e.cost)
		if d.Source != ratelimit.SourceRedis {
			tb.Fatalf("decision from %v; want redis", d.Source)
		}
		if d.Allowed {
			if got := d.Time.UnixMicro(); got != start+e.at {
				tb.Fatalf("script decided at %d; want the injected %d", got, start+e.at)
			}
			adm = append(adm, admission{e.at, e.cost})
		}
	}
	return adm
}

func edgeTrace(window, width int64) []event {
	var tr []event
	// A burst just before a bucket edge and at it, then one just before and
	// at the window's edge, then steady traffic at twice the rate.
	for _, at := range []int64{width - 1, width, window - 1, window, window + width - 1} {
		for range 15 {
			tr = append(tr, event{at, 1})
		}
	}
	for at := window + width; at < 4*window; at += window / 40 {
		tr = append(tr, event{at, 1})
	}
	return tr
}

// perStepTrace is one request every step for span.
func perStepTrace(step, span time.Duration) []event {
	var tr []event
	for at := int64(0); at < span.Microseconds(); at += step.Microseconds() {
		tr = append(tr, event{at, 1})
	}
	return tr
}

func randomTrace(seed uint64, n int, span time.Duration) []event {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	tr := make([]event, 0, n)
	for range n {
		tr = append(tr, event{r.Int64N(span.Microseconds()), 1 + r.IntN(3)})
	}
	// Bursts: many requests in the same µs.
	for range 10 {
		at := r.Int64N(span.Microseconds())
		for range 20 {
			tr = append(tr, event{at, 1})
		}
	}
	sort.Slice(tr, func(i, j int) bool { return tr[i].at < tr[j].at })
	return tr
}

// TestNeverOverAdmits: in adversarial traces, no window of length Window
// ever admits more than Limit (SlidingWindow, SlidingLog), or more than
// Limit + Burst − 1 (GCRA, as documented).
func TestNeverOverAdmits(t *testing.T) {
	t.Parallel()
	const limit = 10
	window := 100 * time.Second // see the comment at the top of the file
	traces := map[string][]event{
		"edge burst then steady": edgeTrace(window.Microseconds(), window.Microseconds()/10),
		"1 per window/1000":      perStepTrace(window/1000, 3*window),
		"random":                 randomTrace(1, 1500, 10*window),
		"random 2":               randomTrace(2, 1500, 5*window),
	}
	type variant struct {
		name  string
		alg   ratelimit.Algorithm
		burst int
		bound int
	}
	variants := []variant{
		{"sliding-window", ratelimit.SlidingWindow, 0, limit},
		{"sliding-log", ratelimit.SlidingLog, 0, limit},
		{"gcra burst 1", ratelimit.GCRA, 1, limit},
		{"gcra burst 10", ratelimit.GCRA, 10, limit + 10 - 1},
	}
	for _, v := range variants {
		for name, tr := range traces {
			t.Run(v.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				rdb := redistest.Client(t)
				l := newLimiter(t, rdb, ratelimit.Config{Algorithm: v.alg, BlockedKeys: -1,
					Policies: []ratelimit.Policy{{Name: "p", Rate: ratelimit.Rate{Limit: limit, Window: window}, Burst: v.burst}}})
				// An odd start, so bucket edges fall anywhere in the trace.
				clock := newMicroClock(1_700_000_000_123_457)
				ratelimit.SetTestNow(l, clock.now)
				adm := runTrace(t, l, clock, "k", tr)
				most, end := maxInWindow(adm, window.Microseconds())
				if most > v.bound {
					t.Fatalf("window ending at +%dµs admitted %d; want at most %d", end, most, v.bound)
				}
				if most < limit {
					t.Fatalf("the busiest window admitted only %d of %d: the trace never reached the limit", most, limit)
				}
				checkTTLs(t, rdb)
			})
		}
	}
}

// TestNeverOverAdmitsRealTime runs the production path (Redis TIME) with
// one request per ms from one goroutine and random traffic from several
// instances, and checks every window on the times the script returned.
func TestNeverOverAdmitsRealTime(t *testing.T) {
	t.Parallel()
	const limit = 20
	window := time.Second
	for _, alg := range []ratelimit.Algorithm{ratelimit.SlidingWindow, ratelimit.SlidingLog} {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			cfg := redistest.Config(t)
			var mu sync.Mutex
			var adm []admission
			var wg sync.WaitGroup
			stop := time.Now().Add(2500 * time.Millisecond)
			for inst := range 3 {
				l := newLimiter(t, redistest.Connect(t, cfg), ratelimit.Config{Name: "rt", Algorithm: alg,
					Rate: ratelimit.Rate{Limit: limit, Window: window}})
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(inst), 7))
					for time.Now().Before(stop) {
						d, err := l.Allow(context.Background(), "k", 1)
						if err != nil || d.Source == ratelimit.SourceFailOpen {
							t.Errorf("Allow: %+v, %v", d, err)
							return
						}
						if d.Allowed {
							mu.Lock()
							adm = append(adm, admission{d.Time.UnixMicro(), 1})
							mu.Unlock()
						}
						if inst == 0 {
							time.Sleep(time.Millisecond) // 1 per ms
						} else {
							time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond)
						}
					}
				})
			}
			wg.Wait()
			most, end := maxInWindow(adm, window.Microseconds())
			if most > limit {
				t.Fatalf("window ending at %v admitted %d; want at most %d", time.UnixMicro(end), most, limit)
			}
			if most < limit*3/4 {
				t.Fatalf("busiest window admitted %d of %d: the limiter starves clients", most, limit)
			}
		})
	}
}

// TestSteadyTrafficUtility: steady traffic at exactly the limit gets at
// least Limit·(1 − 1/Buckets) through in every window once warmed up. Under
// overload (3× the limit) the buckets admit in pulses, as each old bucket
// leaves the window, so the bound holds on average per window rather than
// in every window; the sliding log holds it in every window.
func TestSteadyTrafficUtility(t *testing.T) {
	t.Parallel()
	const limit = 100
	window := 100 * time.Second // see the comment at the top of the file
	for _, tt := range []struct {
		alg     ratelimit.Algorithm
		buckets int
		rate    int // offered requests per window
		want    int
	}{
		{ratelimit.SlidingWindow, 10, limit, limit * 9 / 10},
		{ratelimit.SlidingWindow, 10, 3 * limit, limit * 9 / 10},
		{ratelimit.SlidingWindow, 4, limit, limit * 3 / 4},
		{ratelimit.SlidingWindow, 4, 3 * limit, limit * 3 / 4},
		{ratelimit.SlidingLog, 0, limit, limit - 1},
		{ratelimit.SlidingLog, 0, 3 * limit, limit - 1},
		{ratelimit.GCRA, 0, limit, limit},
	} {
		name := fmt.Sprintf("%s/%d buckets/offered %d per window", tt.alg, tt.buckets, tt.rate)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rdb := redistest.Client(t)
			l := newLimiter(t, rdb, ratelimit.Config{Algorithm: tt.alg, Buckets: tt.buckets, BlockedKeys: -1,
				Rate: ratelimit.Rate{Limit: limit, Window: window}})
			clock := newMicroClock(1_700_000_000_777_777)
			ratelimit.SetTestNow(l, clock.now)
			step := window.Microseconds() / int64(tt.rate)
			var tr []event
			span := 12 * window.Microseconds()
			for at := int64(0); at < span; at += step {
				tr = append(tr, event{at, 1})
			}
			adm := runTrace(t, l, clock, "k", tr)
			warm := 2 * window.Microseconds()
			if tt.rate == limit || tt.alg == ratelimit.SlidingLog {
				least, end := minInWindows(adm, window.Microseconds(), warm, span-step, step)
				if least < tt.want {
					t.Fatalf("window ending at +%dµs admitted %d; want at least %d", end, least, tt.want)
				}
			} else {
				n := 0
				for _, a := range adm {
					if a.at >= warm {
						n += a.cost
					}
				}
				windows := float64(span-warm) / float64(window.Microseconds())
				if avg := float64(n) / windows; avg < float64(tt.want) {
					t.Fatalf("admitted %.1f per window on average; want at least %d", avg, tt.want)
				}
			}
			if most, _ := maxInWindow(adm, window.Microseconds()); most > limit {
				t.Fatalf("a window admitted %d; want at most %d", most, limit)
			}
		})
	}
}
