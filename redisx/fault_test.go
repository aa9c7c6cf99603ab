package redisx_test

// Fault tests: a throwaway redis-server behind a fault-injecting proxy, so
// each test can slow, throttle, cut, hang, stop or kill Redis and check
// that calls keep their deadlines, fail with ErrUnavailable, never apply a
// counter twice or leave a key without a TTL, and that the client recovers
// by itself within 2s of the fault ending. Recovery times are logged with
// the prefix "RECOVERY" (go test -v -run Fault ./redisx | grep RECOVERY) for
// the README's table.
//
// These tests are not parallel: they count the process's goroutines and
// measure time, and other tests' traffic would blur both.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/theaterscriptpro/tsp/internal/faultproxy"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

const (
	// faultTimeout is the CommandTimeout of the client under fault.
	faultTimeout = 200 * time.Millisecond
	// slack is what a loaded 2-core CI box with the race detector may add
	// to a deadline before a call returns.
	slack = 250 * time.Millisecond
	// recoveryBudget is the promise: normal service within 2s of
	// the fault ending, with no action.
	recoveryBudget = 2 * time.Second
)

// rig is a throwaway Redis, a proxy in front of it, the client under test
// (through the proxy) and a direct client on the same key prefix that sees
// what really is in Redis.
type rig struct {
	srv    *redistest.Server
	px     *faultproxy.Proxy
	rdb    *redisx.Client
	direct *redisx.Client
}

func newRig(t *testing.T, edit ...func(*redisx.Config)) *rig {
	t.Helper()
	srv := redistest.StartServer(t)
	px := faultproxy.Start(t, srv.Addr)
	cfg := redistest.Config(t)
	cfg = redistest.At(cfg, px.Addr())
	cfg.CommandTimeout = faultTimeout
	for _, e := range edit {
		e(&cfg)
	}
	dcfg := cfg
	dcfg = redistest.At(dcfg, srv.Addr)
	dcfg.CommandTimeout = 2 * time.Second
	dcfg.DisableLocalCache = true
	r := &rig{srv: srv, px: px, rdb: redistest.Connect(t, cfg), direct: redistest.Connect(t, dcfg)}
	// Cleanups run last-in first-out: heal the wire before the clients'
	// cleanups delete their keys through it, even when a test fails mid-fault.
	t.Cleanup(px.Reset)
	// Warm up: the scripts' NOSCRIPT fallback and the first pipelines are
	// part of normal service, not of the fault.
	if err := r.concurrentCalls(); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	return r
}

// concurrentCalls makes calls from several goroutines at once. rueidis
// serves a lone caller on the connection itself and starts its background
// reader and writer goroutines only under concurrency; doing this before
// the baseline and after recovery compares goroutine counts like for like.
func (r *rig) concurrentCalls() error {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A busy CI box may miss the 200ms deadline now and then; that
			// is not what these calls are for, so each gets a few tries.
			deadline := time.Now().Add(5 * time.Second)
			for done := 0; done < 5; {
				_, err := r.rdb.Incr(ctx, r.rdb.Keys().Tagged("views:script", "warm"), time.Minute)
				switch {
				case err == nil:
					done++
				case time.Now().After(deadline):
					errs <- err
					return
				default:
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// call runs one Redis call through the client under test and reports its
// error and how long it took.
func (r *rig) call(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	_, _, err := r.rdb.Get(ctx, r.rdb.Keys().Tagged("script", "probe"))
	return time.Since(start), err
}

// wantUnavailable checks that a call fails with ErrUnavailable within max.
func (r *rig) wantUnavailable(t *testing.T, ctx context.Context, max time.Duration) time.Duration {
	t.Helper()
	took, err := r.call(ctx)
	if !errors.Is(err, redisx.ErrUnavailable) {
		t.Fatalf("call under fault: err = %v; want ErrUnavailable", err)
	}
	if took > max {
		t.Fatalf("call under fault took %v; want at most %v (the deadline plus slack)", took, max)
	}
	return took
}

// openBreaker makes failing calls until the breaker opens, then checks a
// call fails at once without touching the network.
func (r *rig) openBreaker(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for i := 0; breakerState(t, r.rdb) != 2; i++ {
		if i > 20 {
			t.Fatalf("breaker still %v after %d failing calls; want it open", breakerState(t, r.rdb), i)
		}
		r.wantUnavailable(t, ctx, faultTimeout+slack)
	}
	took := r.wantUnavailable(t, ctx, slack)
	if took > 50*time.Millisecond {
		t.Errorf("call with the breaker open took %v; want it to fail at once", took)
	}
}

// recovery measures how long after the fault ended the client answers
// again, fails the test past recoveryBudget, then checks a run of normal
// calls (writes and reads) all succeed. Nothing is done to help it.
func (r *rig) recovery(t *testing.T, fault string, ended time.Time) time.Duration {
	t.Helper()
	ctx := context.Background()
	key := r.rdb.Keys().Tagged("script", "recovery")
	for {
		if err := r.rdb.Set(ctx, key, []byte("ok"), time.Minute); err == nil {
			break
		}
		if time.Since(ended) > recoveryBudget {
			t.Fatalf("%s: not recovered %v after the fault ended; want within %v", fault, time.Since(ended), recoveryBudget)
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(ended)
	// Normal service: calls succeed. On a CI box running at several times
	// its core count a lone 200ms deadline may still be missed, so one
	// timeout in 40 calls is tolerated; more means the client is not well.
	misses := 0
	for i := range 20 {
		_, err := r.rdb.Incr(ctx, r.rdb.Keys().Tagged("views:script", "after"), time.Minute)
		if err != nil && !errors.Is(err, redisx.ErrUnavailable) {
			t.Fatalf("%s: Incr #%d after recovery: %v", fault, i, err)
		}
		if err != nil {
			misses++
		}
		v, found, err := r.rdb.Get(ctx, key)
		switch {
		case errors.Is(err, redisx.ErrUnavailable):
			misses++
		case err != nil || !found || string(v) != "ok":
			t.Fatalf("%s: Get #%d after recovery = %q, %v, %v; want ok", fault, i, v, found, err)
		}
		if misses > 1 {
			t.Fatalf("%s: %d of %d calls after recovery failed (last: %v); want the client back to normal", fault, misses, 2*(i+1), err)
		}
	}
	if misses > 0 {
		t.Logf("%s: %d call of 40 after recovery missed its deadline (a loaded machine?)", fault, misses)
	}
	if err := r.concurrentCalls(); err != nil {
		t.Fatalf("%s: concurrent calls after recovery: %v", fault, err)
	}
	t.Logf("RECOVERY %-38s %v", fault, took.Round(time.Millisecond))
	return took
}

// breakerState reads the redisx_breaker_state gauge the way Prometheus
// would: 0 closed, 1 half-open, 2 open.
func breakerState(tb testing.TB, c *redisx.Client) float64 {
	tb.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "redisx_breaker_state" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	tb.Fatal("no redisx_breaker_state metric")
	return -1
}

// goroutines returns the current count once it has stopped falling.
func goroutines() int {
	last := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(20 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n >= last {
			return n
		}
		last = n
	}
	return last
}

// noLeak waits up to 5s for the goroutine count to come back to baseline
// and fails with a dump of what is still running if it does not.
func noLeak(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d after the fault, %d before; still running:\n%s", n, baseline, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFaultLatency50ms(t *testing.T) {
	r := newRig(t)
	before := goroutines()
	r.px.Latency(50 * time.Millisecond)
	ctx := context.Background()
	for i := range 10 {
		took, err := r.call(ctx)
		if err != nil {
			t.Fatalf("call #%d with 50ms latency and a %v timeout: %v; want success", i, faultTimeout, err)
		}
		if took < 50*time.Millisecond {
			t.Fatalf("call #%d took %v; want at least the 50ms latency (is the fault in force?)", i, took)
		}
		if took > faultTimeout+slack {
			t.Fatalf("call #%d took %v; want under %v", i, took, faultTimeout+slack)
		}
	}
	if s := breakerState(t, r.rdb); s != 0 {
		t.Errorf("breaker state %v after slow but successful calls; want 0 (closed)", s)
	}
	r.px.Reset()
	r.recovery(t, "latency 50ms (timeout 200ms)", time.Now())
	noLeak(t, before)
}

func TestFaultLatency500ms(t *testing.T) {
	r := newRig(t)
	before := goroutines()
	r.px.Latency(500 * time.Millisecond)

	// The client's CommandTimeout caps a caller's longer deadline...
	long, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.wantUnavailable(t, long, faultTimeout+slack)
	// ...and a caller's shorter deadline wins over it.
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	r.wantUnavailable(t, short, 50*time.Millisecond+slack)

	r.openBreaker(t)
	time.Sleep(300 * time.Millisecond) // the fault lasts a while
	r.px.Reset()
	r.recovery(t, "latency 500ms (timeout 200ms)", time.Now())
	noLeak(t, before)
}

func TestFaultBandwidth(t *testing.T) {
	r := newRig(t)
	before := goroutines()
	ctx := context.Background()
	big := []byte(strings.Repeat("x", 128<<10))
	bigKey := r.rdb.Keys().Tagged("script", "big")

	r.px.Bandwidth(64) // KiB/s: a 128 KiB value needs 2s, the deadline is 200ms
	// Small commands still fit in the deadline...
	for i := range 5 {
		if err := r.rdb.Set(ctx, r.rdb.Keys().Tagged("script", fmt.Sprint("small", i)), []byte("tiny"), time.Minute); err != nil {
			t.Fatalf("small Set #%d at 64 KiB/s: %v; want success", i, err)
		}
	}
	// ...a large one does not, and fails on time instead of stalling.
	start := time.Now()
	err := r.rdb.Set(ctx, bigKey, big, time.Minute)
	if !errors.Is(err, redisx.ErrUnavailable) {
		t.Fatalf("128 KiB Set at 64 KiB/s: err = %v; want ErrUnavailable", err)
	}
	if took := time.Since(start); took > faultTimeout+slack {
		t.Fatalf("128 KiB Set at 64 KiB/s took %v; want the deadline (%v) to cut it", took, faultTimeout)
	}
	r.px.Reset()
	r.recovery(t, "bandwidth 64 KiB/s", time.Now())
	// The timed-out Set may still land (ErrUnavailable means "may or may
	// not have been applied": its bytes were on the wire), but never as a
	// truncated value, and never without its TTL.
	if v, found, err := r.direct.Get(ctx, bigKey); err != nil || found && string(v) != string(big) {
		t.Errorf("after a timed-out 128 KiB Set the key holds %d bytes, err %v; want nothing or all %d", len(v), err, len(big))
	} else if found {
		if ttl, err := r.direct.TTL(ctx, bigKey); err != nil || ttl <= 0 {
			t.Errorf("PTTL of the late-landing value = %v, %v; want its TTL", ttl, err)
		}
	}
	if err := r.rdb.Set(ctx, bigKey, big, time.Minute); err != nil {
		t.Errorf("128 KiB Set after the fault: %v", err)
	}
	noLeak(t, before)
}

// TestFaultCutMidCommand cuts every connection again and again while
// writers run: an acknowledged increment is never lost, an unacknowledged
// one is applied at most once, and no key is left without a TTL.
func TestFaultCutMidCommand(t *testing.T) {
	r := newRig(t, func(c *redisx.Config) {
		c.CommandTimeout = time.Second
		// This test is about what a cut does to writes, not about the
		// breaker (which would turn most calls into fast failures).
		c.BreakerFailures = 1 << 20
	})
	before := goroutines()
	ctx := context.Background()
	k := r.rdb.Keys()
	counter := k.Tagged("views:script", "cut")
	// Replies come 5ms late, so at any moment commands are in flight.
	r.px.Latency(5 * time.Millisecond)

	var attempts, acked, failed atomic.Int64
	var mu sync.Mutex
	seen := map[int64]bool{} // values returned by acknowledged increments
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				attempts.Add(1)
				v, err := r.rdb.Incr(ctx, counter, time.Hour)
				if err != nil {
					if !errors.Is(err, redisx.ErrUnavailable) {
						t.Errorf("Incr under cuts: %v; want success or ErrUnavailable", err)
					}
					failed.Add(1)
				} else {
					acked.Add(1)
					mu.Lock()
					if seen[v] {
						t.Errorf("two acknowledged increments both returned %d", v)
					}
					seen[v] = true
					mu.Unlock()
				}
				// Writes of other shapes: a MULTI/EXEC hash and set with TTL,
				// a hash counter in Lua. None may survive without its TTL.
				id := fmt.Sprint(w, "-", i%8)
				_ = r.rdb.HSet(ctx, k.Session(id), map[string]string{"u": id}, time.Hour)
				_ = r.rdb.SAdd(ctx, k.Tagged("sessions", id), time.Hour, id)
				_, _ = r.rdb.HIncrBy(ctx, k.Tagged("hits", id), "n", 1, time.Hour)
			}
		}()
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	cuts := 0
	for time.Now().Before(deadline) {
		time.Sleep(60 * time.Millisecond)
		r.px.CutConnections()
		cuts++
	}
	r.px.Reset()
	ended := time.Now()
	close(stop)
	wg.Wait()
	r.recovery(t, "connections cut mid-command", ended)

	got, found, err := r.direct.Get(ctx, counter)
	if err != nil || !found {
		t.Fatalf("counter after the cuts: found %v, err %v", found, err)
	}
	var n int64
	fmt.Sscan(string(got), &n)
	a, ok, f := attempts.Load(), acked.Load(), failed.Load()
	t.Logf("%d cuts: %d Incr attempted, %d acknowledged, %d failed; counter = %d", cuts, a, ok, f, n)
	if f == 0 || ok == 0 {
		t.Fatalf("%d failed and %d acknowledged increments; want both (are the cuts landing mid-command?)", f, ok)
	}
	if n < ok {
		t.Errorf("counter = %d < %d acknowledged increments: an acknowledged write was lost", n, ok)
	}
	if n > a {
		t.Errorf("counter = %d > %d attempts: an increment was applied twice", n, a)
	}
	for v := range seen {
		if v > n {
			t.Errorf("an increment returned %d, above the final counter %d", v, n)
		}
	}
	// Every key the writers made has a TTL on the real server.
	keys := redistest.Keys(t, r.direct)
	if len(keys) < 3 {
		t.Fatalf("only %d keys under the prefix; the writers did not run", len(keys))
	}
	for _, key := range keys {
		ttl, err := r.direct.TTL(ctx, key)
		if err != nil || ttl <= 0 {
			t.Errorf("PTTL %s = %v, %v; want a positive TTL", key, ttl, err)
		}
	}
	noLeak(t, before)
}

// TestFaultHang black-holes the connection: nothing is answered and
// nothing is closed. Deadlines must still hold, goroutines parked on the
// hung connection must not pile up, and service must come back.
func TestFaultHang(t *testing.T) {
	r := newRig(t)
	before := goroutines()
	r.px.Hang()
	long, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.wantUnavailable(t, long, faultTimeout+slack)
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	r.wantUnavailable(t, short, 50*time.Millisecond+slack)

	// Many concurrent callers under the hang all get their answer on time.
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			took, err := r.call(context.Background())
			if !errors.Is(err, redisx.ErrUnavailable) || took > faultTimeout+slack {
				errs <- fmt.Errorf("concurrent call under hang: %v after %v", err, took)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r.openBreaker(t)
	time.Sleep(500 * time.Millisecond)
	r.px.Reset()
	r.recovery(t, "hung connections (no reply, no close)", time.Now())
	noLeak(t, before)
}

func TestFaultNetworkDown(t *testing.T) {
	r := newRig(t)
	before := goroutines()
	r.px.Down() // connections reset, new ones refused
	r.wantUnavailable(t, context.Background(), faultTimeout+slack)
	r.openBreaker(t)
	time.Sleep(300 * time.Millisecond)
	r.px.Up()
	r.recovery(t, "network down (connections refused)", time.Now())
	noLeak(t, before)
}

func TestFaultRedisPaused(t *testing.T) {
	r := newRig(t)
	t.Cleanup(r.srv.Resume) // never leave a stopped process behind a failed test
	before := goroutines()
	r.srv.Pause() // SIGSTOP: connections stay open, nothing answers
	r.wantUnavailable(t, context.Background(), faultTimeout+slack)
	r.openBreaker(t)
	time.Sleep(500 * time.Millisecond)
	r.srv.Resume()
	r.recovery(t, "Redis paused (SIGSTOP/SIGCONT)", time.Now())
	noLeak(t, before)
}

func TestFaultRedisRestart(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	counter := r.rdb.Keys().Tagged("views:script", "restart")
	if _, err := r.rdb.Incr(ctx, counter, time.Hour); err != nil {
		t.Fatal(err)
	}
	before := goroutines()
	r.srv.Kill() // a crash: the process is gone, its port closed
	r.wantUnavailable(t, ctx, faultTimeout+slack)
	r.openBreaker(t)
	r.srv.Start(t) // a fresh, empty server on the same port
	r.recovery(t, "Redis killed and restarted (empty)", time.Now())
	// Counting starts again on the empty server, with its TTL.
	if v, err := r.rdb.Incr(ctx, counter, time.Hour); err != nil || v != 1 {
		t.Errorf("Incr after restart = %d, %v; want 1 on the empty server", v, err)
	}
	if ttl, err := r.direct.TTL(ctx, counter); err != nil || ttl <= 0 {
		t.Errorf("PTTL after restart = %v, %v; want a TTL", ttl, err)
	}
	noLeak(t, before)
}

// TestFaultRedisDownAtStart starts the client while nothing answers: New
// must return at once, calls fail fast, and the client must connect by
// itself once Redis appears.
func TestFaultRedisDownAtStart(t *testing.T) {
	srv := redistest.StartServer(t)
	px := faultproxy.Start(t, srv.Addr)
	px.Down()
	cfg := redistest.Config(t)
	cfg = redistest.At(cfg, px.Addr())
	cfg.CommandTimeout = faultTimeout
	cfg.DialTimeout = 300 * time.Millisecond
	start := time.Now()
	rdb, err := redisx.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New with Redis down: %v; want a client", err)
	}
	t.Cleanup(rdb.Close)
	if took := time.Since(start); took > cfg.DialTimeout+slack {
		t.Errorf("New with Redis down took %v; want at most DialTimeout %v", took, cfg.DialTimeout)
	}
	r := &rig{srv: srv, px: px, rdb: rdb}
	r.wantUnavailable(t, context.Background(), slack)
	time.Sleep(time.Second) // the backoff grows meanwhile
	px.Up()
	r.recovery(t, "Redis unreachable at start", time.Now())
}

// TestFaultLocalCacheNeverServesAcrossALostConnection: rueidis's
// client-side cache keeps values Redis promised to invalidate. A value
// changed while the connection was lost must not be served from it for
// longer than API.md's bound for other instances (LocalLease, 100 ms)
// after the change, and once the new value has been read the old one
// never comes back. How long the old one was still served is printed.
func TestFaultLocalCacheNeverServesAcrossALostConnection(t *testing.T) {
	for _, fault := range []struct {
		name  string
		start func(r *rig)
		end   func(r *rig)
	}{
		{"connections cut", func(r *rig) { r.px.CutConnections() }, func(*rig) {}},
		{"network down", func(r *rig) { r.px.Down() }, func(r *rig) { r.px.Up() }},
		{"Redis restarted", func(r *rig) { r.srv.Restart(t) }, func(*rig) {}},
	} {
		t.Run(fault.name, func(t *testing.T) {
			r := newRig(t)
			ctx := context.Background()
			k := r.rdb.Keys().Tagged("script", "cached")
			get := func() (string, bool, error) {
				res := r.rdb.DoCache(ctx, r.rdb.B().Get().Key(k).Cache(), time.Minute)
				s, err := res.ToString()
				return s, res.IsCacheHit(), err
			}
			if err := r.direct.Set(ctx, k, []byte("v1"), time.Minute); err != nil {
				t.Fatal(err)
			}
			if v, _, err := get(); err != nil || v != "v1" {
				t.Fatalf("first DoCache = %q, %v; want v1", v, err)
			}
			if v, hit, err := get(); err != nil || v != "v1" || !hit {
				t.Fatalf("second DoCache = %q (hit %v), %v; want a local hit of v1", v, hit, err)
			}
			fault.start(r)
			// Another instance updates the value while this one is cut off.
			if err := r.direct.Set(ctx, k, []byte("v2"), time.Minute); err != nil {
				t.Fatalf("update through the direct client: %v", err)
			}
			changed := time.Now()
			fault.end(r)
			bound := changed.Add(localLease)
			deadline := time.Now().Add(recoveryBudget)
			var lastOld time.Time
			olds, late := 0, 0
			for {
				began := time.Now()
				v, _, err := get()
				if v == "v1" {
					olds++
					lastOld = began
					if began.After(bound) {
						late++
					}
				}
				if err == nil && v == "v2" {
					break
				}
				if err != nil && !errors.Is(err, redisx.ErrUnavailable) && !redisx.IsNil(err) {
					t.Fatalf("DoCache after the fault: %v", err)
				}
				if began.After(deadline) {
					t.Fatalf("DoCache still failing %v after the fault: %v", recoveryBudget, err)
				}
				time.Sleep(time.Millisecond)
			}
			if olds > 0 {
				t.Logf("v1 served %d times, the last read that got it began %v after the change (bound %v)", olds, lastOld.Sub(changed).Round(time.Microsecond), localLease)
			} else {
				t.Logf("v1 never served after the change")
			}
			if late > 0 {
				t.Errorf("v1 served to %d reads that began more than %v after it changed, the last %v after", late, localLease, lastOld.Sub(changed).Round(time.Millisecond))
			}
			// Once v2 was read, v1 never comes back.
			for end := time.Now().Add(3 * localLease); time.Now().Before(end); time.Sleep(time.Millisecond) {
				if v, hit, _ := get(); v == "v1" {
					t.Fatalf("DoCache served v1 again (local hit %v) after it had served v2", hit)
				}
			}
		})
	}
}

// localLease is redisx's default LocalLease, API.md's bound.
const localLease = 100 * time.Millisecond

// TestFaultLocalCacheUnderHang: another client changes a value while this
// client's connection is black-holed, so Redis's invalidation is held in
// the network. Local hits touch no network; the connection's lease does:
// its last answer was to a command sent before the hang, so no read that
// begins more than LocalLease after the change may get the old value,
// however much other traffic the service sends meanwhile (it hangs too,
// and is never an answer). Once the hang ends the new value is read.
//
// An instance whose only traffic is local hits is covered by
// TestFaultLocalCacheUnderHangWithoutTraffic.
func TestFaultLocalCacheUnderHang(t *testing.T) {
	r, get, changed := hangWithLocalCopy(t, "cached")
	ctx := context.Background()
	// The rest of the service keeps calling Redis (sessions, limits...).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					_, _ = r.call(ctx)
					// Paced like real traffic: a spinning loop of fast
					// breaker refusals would starve the CPU the recovery
					// probe needs.
					time.Sleep(2 * time.Millisecond)
				}
			}
		}()
	}
	stopTraffic := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopTraffic()
	refusedWithin(t, get, changed, "with other traffic")
	stopTraffic()
	r.px.Reset()
	deadline := time.Now().Add(recoveryBudget)
	for {
		v, err := get()
		if err == nil && v == "v2" {
			break
		}
		if v == "v1" {
			t.Fatal("DoCache served v1 after the hang ended; want v2")
		}
		if time.Now().After(deadline) {
			t.Fatalf("DoCache after the hang: %q, %v; want v2 within %v", v, err, recoveryBudget)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hangWithLocalCopy holds v1 for key name in the local tier, hangs the
// connection, and changes the value to v2 behind the proxy's back. It
// returns the rig, a local-tier read of the key and when the value changed.
func hangWithLocalCopy(t *testing.T, name string) (*rig, func() (string, error), time.Time) {
	t.Helper()
	r := newRig(t)
	ctx := context.Background()
	k := r.rdb.Keys().Tagged("script", name)
	get := func() (string, error) {
		return r.rdb.DoCache(ctx, r.rdb.B().Get().Key(k).Cache(), time.Minute).ToString()
	}
	if err := r.direct.Set(ctx, k, []byte("v1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if v, err := get(); err != nil || v != "v1" {
			t.Fatalf("DoCache = %q, %v; want v1", v, err)
		}
	}
	r.px.Hang()
	if err := r.direct.Set(ctx, k, []byte("v2"), time.Minute); err != nil {
		t.Fatal(err)
	}
	return r, get, time.Now()
}

// refusedWithin reads until a read begun LocalLease after changed is
// refused (ErrUnavailable), failing if any such read got v1
// (redistest.StaleWithin); it prints when the last v1 was served.
func refusedWithin(t *testing.T, get func() (string, error), changed time.Time, what string) {
	t.Helper()
	redistest.StaleWithin(t, "hung connection "+what, changed, localLease, func() (bool, string) {
		v, err := get()
		if v != "v1" && !errors.Is(err, redisx.ErrUnavailable) {
			t.Fatalf("DoCache under the hang = %q, %v; want v1 (within the lease) or ErrUnavailable", v, err)
		}
		return v == "v1", fmt.Sprintf("%q, %v", v, err)
	})
}

// TestFaultLocalCacheUnderHangWithoutTraffic: when every read is a local
// hit, the lease alone stops them: no read that begins more than
// LocalLease after the change gets the old value.
func TestFaultLocalCacheUnderHangWithoutTraffic(t *testing.T) {
	_, get, changed := hangWithLocalCopy(t, "cached-alone")
	refusedWithin(t, get, changed, "without other traffic")
}

// TestFaultCacheAsideFallsBackToLoader: under every fault, cache-aside
// answers from the loader (the database) within the deadline instead of
// failing, and caches again once Redis is back.
func TestFaultCacheAsideFallsBackToLoader(t *testing.T) {
	type faultCase struct {
		name       string
		start, end func(r *rig)
	}
	for _, fc := range []faultCase{
		{"latency 500ms", func(r *rig) { r.px.Latency(500 * time.Millisecond) }, func(r *rig) { r.px.Reset() }},
		{"hung connections", func(r *rig) { r.px.Hang() }, func(r *rig) { r.px.Reset() }},
		{"network down", func(r *rig) { r.px.Down() }, func(r *rig) { r.px.Up() }},
		{"Redis paused", func(r *rig) { r.srv.Pause() }, func(r *rig) { r.srv.Resume() }},
	} {
		t.Run(fc.name, func(t *testing.T) {
			r := newRig(t)
			t.Cleanup(r.srv.Resume)
			ctx := context.Background()
			k := r.rdb.Keys().Tagged("user", "42")
			var loads atomic.Int64
			load := func(context.Context) (string, error) {
				loads.Add(1)
				return "from the database", nil
			}
			if v, err := redisx.Cache(ctx, r.rdb, k, time.Minute, load); err != nil || v != "from the database" {
				t.Fatalf("Cache = %q, %v", v, err)
			}
			if v, err := redisx.Cache(ctx, r.rdb, k, time.Minute, load); err != nil || v != "from the database" || loads.Load() != 1 {
				t.Fatalf("second Cache = %q, %v after %d loads; want a hit", v, err, loads.Load())
			}
			fc.start(r)
			for i := range 8 {
				start := time.Now()
				v, err := redisx.Cache(ctx, r.rdb, k, time.Minute, load)
				took := time.Since(start)
				if err != nil || v != "from the database" {
					t.Fatalf("Cache #%d under %s = %q, %v; want the loader's value", i, fc.name, v, err)
				}
				if took > faultTimeout+slack {
					t.Fatalf("Cache #%d under %s took %v; want at most the Redis deadline %v plus slack", i, fc.name, took, faultTimeout)
				}
			}
			if loads.Load() < 2 {
				t.Errorf("loader ran %d times; the fault should have sent reads to it", loads.Load())
			}
			fc.end(r)
			r.recovery(t, "cache-aside, "+fc.name, time.Now())
			// Once Redis is back, values are served from it again.
			before := loads.Load()
			for range 3 {
				if _, err := redisx.Cache(ctx, r.rdb, k, time.Minute, load); err != nil {
					t.Fatal(err)
				}
			}
			if n := loads.Load() - before; n > 1 {
				t.Errorf("after recovery the loader ran %d times for 3 lookups; want at most 1 (then hits)", n)
			}
		})
	}
}

// TestNoJoinAcrossAWrite: a cache-aside lookup that begins after this
// process's Invalidate returned never gets the result of a load begun
// before the write, with a slow loader (300 ms) and Redis up, slow (each
// reply 100 ms late) or down: it starts a load of its own.
func TestNoJoinAcrossAWrite(t *testing.T) {
	for _, fault := range []struct {
		name  string
		start func(r *rig)
	}{
		{"Redis up", func(*rig) {}},
		{"Redis slow", func(r *rig) { r.px.Latency(100 * time.Millisecond) }},
		{"Redis down", func(r *rig) { r.px.Down() }},
	} {
		t.Run(fault.name, func(t *testing.T) {
			r := newRig(t)
			ctx := context.Background()
			k := r.rdb.Keys().Tagged("licenses:user", "ann")
			var db atomic.Int64 // the database: its current version
			db.Store(1)
			load := func(context.Context) (int64, error) {
				v := db.Load() // read first, as a query would, then slow
				time.Sleep(300 * time.Millisecond)
				return v, nil
			}
			fault.start(r)
			first := make(chan int64, 1)
			go func() {
				v, _ := redisx.Cache(ctx, r.rdb, k, time.Minute, load)
				first <- v
			}()
			time.Sleep(100 * time.Millisecond) // the first load has read version 1
			db.Store(2)
			_ = r.rdb.Invalidate(ctx, k) // may fail with Redis down: the write still happened here
			v, err := redisx.Cache(ctx, r.rdb, k, time.Minute, load)
			if err != nil {
				t.Fatalf("lookup after the write: %v", err)
			}
			if v != 2 {
				t.Fatalf("lookup begun after Invalidate returned got version %d; want 2 (it joined a load begun before the write)", v)
			}
			if v := <-first; v != 1 {
				t.Logf("the lookup begun before the write got version %d", v)
			}
		})
	}
}
