package redisx_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

type play struct {
	Title string
	Acts  int
}

// countingLoader returns a loader that counts its calls, waits for gate
// (if not nil) and then returns v.
func countingLoader(n *atomic.Int64, gate <-chan struct{}, v play) func(context.Context) (play, error) {
	return func(ctx context.Context) (play, error) {
		n.Add(1)
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return play{}, ctx.Err()
			}
		}
		return v, nil
	}
}

// TestCacheStampedeOneProcess: 1,000 goroutines miss one key together and
// the loader runs exactly once; all get its value.
func TestCacheStampedeOneProcess(t *testing.T) {
	t.Parallel()
	// A generous deadline: a lookup that times out on a starved test box
	// falls back to the loader by design, which is not what this tests.
	rdb := redistest.Client(t, func(c *redisx.Config) { c.CommandTimeout = 10 * time.Second })
	key := rdb.Keys().Tagged("script", "stampede")
	var loads atomic.Int64
	gate := make(chan struct{})
	load := countingLoader(&loads, gate, play{"Hamlet", 5})

	const n = 1000
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			v, err := redisx.Cache(ctx, rdb, key, time.Minute, load)
			if err != nil || v.Title != "Hamlet" {
				errs <- fmt.Errorf("got %+v, %v; want Hamlet", v, err)
			}
		}()
	}
	close(start)
	// Hold the loader until every goroutine has had time to miss.
	time.Sleep(200 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := loads.Load(); got != 1 {
		t.Fatalf("loader ran %d times for %d concurrent misses; want exactly 1", got, n)
	}
}

// TestCacheStampedeTwoInstances: two Clients sharing a prefix (two app
// instances) miss together; the Redis lease makes one load and the other
// wait for its value: once per lease, not once per client.
func TestCacheStampedeTwoInstances(t *testing.T) {
	t.Parallel()
	cfg := redistest.Config(t)
	cfg.CommandTimeout = 10 * time.Second // as in TestCacheStampedeOneProcess
	a, b := redistest.Connect(t, cfg), redistest.Connect(t, cfg)
	key := a.Keys().Tagged("script", "two")
	var loads atomic.Int64
	load := func(ctx context.Context) (play, error) {
		loads.Add(1)
		time.Sleep(150 * time.Millisecond) // well under the 3s lease
		return play{"Lear", 5}, nil
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 200 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			v, err := redisx.Cache(context.Background(), c, key, time.Minute, load)
			if err != nil || v.Title != "Lear" {
				failed.Add(1)
				t.Errorf("instance got %+v, %v; want Lear", v, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := loads.Load(); got != 1 {
		t.Fatalf("two instances missing together ran the loader %d times; want 1 (one lease)", got)
	}

	t.Run("a dead holder's lease expires and a waiter takes over", func(t *testing.T) {
		key := a.Keys().Tagged("script", "orphan")
		// A holder that took the lease and died: nobody will store a value.
		if err := a.Do(context.Background(), a.B().Set().Key(key+":lease").Value("dead").Nx().PxMilliseconds(300).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		var loads atomic.Int64
		began := time.Now()
		v, err := redisx.CacheWith(context.Background(), b, key, redisx.CacheOptions{TTL: time.Minute, LeaseTTL: 300 * time.Millisecond},
			countingLoader(&loads, nil, play{"Orphan", 1}))
		took := time.Since(began)
		if err != nil || v.Title != "Orphan" || loads.Load() != 1 {
			t.Fatalf("got %+v, %v after %d loads; want Orphan from 1 load", v, err, loads.Load())
		}
		if took < 200*time.Millisecond {
			t.Errorf("loaded after %v; want it to wait for the dead holder's lease (300ms)", took)
		}
	})
}

// TestCacheFirstCallerCancelled: the first caller giving up returns its
// own ctx error at once; the load goes on (on no caller's context) and the
// other waiters get its value.
func TestCacheFirstCallerCancelled(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	key := rdb.Keys().Tagged("script", "cancel")
	started := make(chan struct{})
	gate := make(chan struct{})
	var loaderCtxErr atomic.Value
	load := func(ctx context.Context) (play, error) {
		close(started)
		<-gate
		loaderCtxErr.Store(fmt.Sprint(ctx.Err()))
		return play{"Macbeth", 5}, nil
	}
	first, cancelFirst := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := redisx.Cache(first, rdb, key, time.Minute, load)
		firstErr <- err
	}()
	<-started

	const waiters = 20
	var wg sync.WaitGroup
	results := make(chan string, waiters)
	for range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := redisx.Cache(context.Background(), rdb, key, time.Minute, load)
			results <- fmt.Sprint(v.Title, err)
		}()
	}
	time.Sleep(50 * time.Millisecond) // let the waiters join the flight
	cancelFirst()
	select {
	case err := <-firstErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("first caller after cancel: err = %v; want context.Canceled", err)
		}
	case <-time.After(time.Second):
		t.Fatal("first caller did not return within 1s of cancelling")
	}
	close(gate)
	wg.Wait()
	close(results)
	for r := range results {
		if r != "Macbeth<nil>" {
			t.Errorf("waiter got %q; want Macbeth and no error", r)
		}
	}
	if got := loaderCtxErr.Load(); got != "<nil>" {
		t.Errorf("loader's context error when it finished = %v; want nil (not the first caller's context)", got)
	}
}

// TestCacheWaitersGetLoaderError: every waiter gets the loader's real
// error (errors.Is works), and nothing is cached.
func TestCacheWaitersGetLoaderError(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	key := rdb.Keys().Tagged("script", "fails")
	errDB := errors.New("database is on fire")
	var loads atomic.Int64
	load := func(ctx context.Context) (play, error) {
		loads.Add(1)
		time.Sleep(100 * time.Millisecond)
		return play{}, fmt.Errorf("load script: %w", errDB)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := redisx.Cache(context.Background(), rdb, key, time.Minute, load)
			if !errors.Is(err, errDB) {
				t.Errorf("waiter err = %v; want the loader's error", err)
			}
		}()
	}
	wg.Wait()
	if got := loads.Load(); got != 1 {
		t.Errorf("loader ran %d times; want 1", got)
	}
	if _, found, err := rdb.Get(context.Background(), key); err != nil || found {
		t.Errorf("after a failed load the key exists (%v, %v); want nothing cached", found, err)
	}
}

// TestCachePanickingLoader: a panic in the loader becomes an error for
// every waiter instead of hanging them, and the next call loads again.
func TestCachePanickingLoader(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	key := rdb.Keys().Tagged("script", "panics")
	load := func(ctx context.Context) (play, error) {
		time.Sleep(50 * time.Millisecond)
		panic("loader bug")
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := redisx.Cache(context.Background(), rdb, key, time.Minute, load)
			if err == nil {
				t.Error("waiter of a panicking loader got no error")
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("waiters of a panicking loader still hang after 5s")
	}
	v, err := redisx.Cache(context.Background(), rdb, key, time.Minute, func(context.Context) (play, error) { return play{"Fixed", 1}, nil })
	if err != nil || v.Title != "Fixed" {
		t.Fatalf("after the panic: %+v, %v; want a fresh load", v, err)
	}
}

// TestCacheNegative: a "not found" is cached for NegativeTTL when asked,
// and never otherwise.
func TestCacheNegative(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	errNoRow := errors.New("no such user")
	var loads atomic.Int64
	load := func(context.Context) (play, error) {
		loads.Add(1)
		return play{}, errNoRow
	}
	isNoRow := func(err error) bool { return errors.Is(err, errNoRow) }
	ctx := context.Background()

	t.Run("cached for NegativeTTL", func(t *testing.T) {
		loads.Store(0)
		key := rdb.Keys().Tagged("user", "ghost")
		opt := redisx.CacheOptions{TTL: time.Minute, NotFound: isNoRow, NegativeTTL: 300 * time.Millisecond}
		_, err := redisx.CacheWith(ctx, rdb, key, opt, load)
		if !errors.Is(err, redisx.ErrNotFound) || !errors.Is(err, errNoRow) {
			t.Fatalf("first lookup: err = %v; want ErrNotFound wrapping the loader's error", err)
		}
		for range 5 {
			if _, err := redisx.CacheWith(ctx, rdb, key, opt, load); !errors.Is(err, redisx.ErrNotFound) {
				t.Fatalf("cached negative lookup: err = %v; want ErrNotFound", err)
			}
		}
		if got := loads.Load(); got != 1 {
			t.Fatalf("loader ran %d times within NegativeTTL; want 1", got)
		}
		if ttl, err := rdb.TTL(ctx, key); err != nil || ttl <= 0 || ttl > 300*time.Millisecond {
			t.Errorf("negative entry TTL = %v, %v; want (0, 300ms]", ttl, err)
		}
		time.Sleep(400 * time.Millisecond)
		_, _ = redisx.CacheWith(ctx, rdb, key, opt, load)
		if got := loads.Load(); got != 2 {
			t.Errorf("after NegativeTTL the loader ran %d times in all; want 2", got)
		}
	})
	t.Run("not cached without NegativeTTL", func(t *testing.T) {
		loads.Store(0)
		key := rdb.Keys().Tagged("user", "ghost2")
		opt := redisx.CacheOptions{TTL: time.Minute, NotFound: isNoRow}
		for range 3 {
			if _, err := redisx.CacheWith(ctx, rdb, key, opt, load); !errors.Is(err, redisx.ErrNotFound) {
				t.Fatalf("err = %v; want ErrNotFound", err)
			}
		}
		if got := loads.Load(); got != 3 {
			t.Errorf("loader ran %d times; want 3 (no negative caching)", got)
		}
	})
}

// TestCacheTTLJitter: stored TTLs lie in [TTL, TTL·(1+Jitter)], spread
// out; Jitter < 0 means none and Jitter > 1 counts as 1.
func TestCacheTTLJitter(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ctx := context.Background()
	const ttl = 10 * time.Second
	tests := []struct {
		name     string
		jitter   float64
		min, max time.Duration
		spread   bool
	}{
		{"default 10%", 0, ttl, ttl + ttl/10, true},
		{"50%", 0.5, ttl, ttl + ttl/2, true},
		{"none", -1, ttl, ttl, false},
		{"capped at 100%", 7, ttl, 2 * ttl, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for i := range 40 {
				key := rdb.Keys().Tagged("jitter", tt.name, fmt.Sprint(i))
				start := time.Now()
				_, err := redisx.CacheWith(ctx, rdb, key, redisx.CacheOptions{TTL: ttl, Jitter: tt.jitter},
					func(context.Context) (int, error) { return i, nil })
				if err != nil {
					t.Fatal(err)
				}
				got, err := rdb.TTL(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				// The TTL runs down between the store and PTTL: allow exactly
				// the time that passed, which a loaded machine stretches.
				// PTTL counts whole milliseconds, rounding down: one more.
				slack := time.Since(start) + time.Millisecond
				if got < tt.min-slack || got > tt.max {
					t.Fatalf("TTL = %v; want within [%v, %v]", got, tt.min, tt.max)
				}
				seen[got.Round(50*time.Millisecond)] = true
			}
			if tt.spread && len(seen) < 5 {
				t.Errorf("40 keys got only %d distinct TTLs; want them spread out", len(seen))
			}
		})
	}
}

// TestCacheStaleWhileRevalidate: past TTL but within StaleFor, lookups get
// the stale value at once while exactly one background refresh runs, even
// with two instances serving the key.
func TestCacheStaleWhileRevalidate(t *testing.T) {
	t.Parallel()
	cfg := redistest.Config(t)
	cfg.CommandTimeout = 10 * time.Second // as in TestCacheStampedeOneProcess
	a, b := redistest.Connect(t, cfg), redistest.Connect(t, cfg)
	key := a.Keys().Tagged("script", "swr")
	ctx := context.Background()
	opt := redisx.CacheOptions{TTL: 200 * time.Millisecond, StaleFor: 10 * time.Second, Jitter: -1}

	if _, err := redisx.CacheWith(ctx, a, key, opt, func(context.Context) (play, error) { return play{"v1", 1}, nil }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // now stale

	var refreshes atomic.Int64
	gate := make(chan struct{})
	refresh := countingLoader(&refreshes, gate, play{"v2", 2})
	var wg sync.WaitGroup
	began := time.Now()
	for i := range 100 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := redisx.CacheWith(ctx, c, key, opt, refresh)
			if err != nil || v.Title != "v1" {
				t.Errorf("stale lookup = %+v, %v; want v1 at once", v, err)
			}
		}()
	}
	wg.Wait()
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("100 stale lookups took %v while the refresh was blocked; want them served at once", took)
	}
	waitFor(t, time.Second, "the background refresh to start", func() bool { return refreshes.Load() >= 1 })
	close(gate)
	waitFor(t, 3*time.Second, "the refreshed value", func() bool {
		v, err := redisx.CacheWith(ctx, b, key, opt, refresh)
		return err == nil && v.Title == "v2"
	})
	time.Sleep(100 * time.Millisecond) // any late, redundant refresh would run now
	if got := refreshes.Load(); got != 1 {
		t.Fatalf("%d refreshes ran for one stale key on two instances; want exactly 1", got)
	}
}

// TestCacheCorruptOrForeignEntry: whatever sits at the key (garbage, a
// truncated or unknown entry, JSON of another shape, a hash), a lookup is
// a miss, never a panic or a stuck error, and the load replaces it.
func TestCacheCorruptOrForeignEntry(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ctx := context.Background()
	header := func(version, flags byte, value string) string {
		b := make([]byte, 10, 10+len(value))
		b[0], b[1] = version, flags
		binary.BigEndian.PutUint64(b[2:], uint64(time.Now().Add(time.Hour).UnixMilli()))
		return string(append(b, value...))
	}
	tests := []struct {
		name  string
		store func(key string) error
	}{
		{"empty string", setRaw(rdb, "")},
		{"plain text", setRaw(rdb, "hello")},
		{"bare JSON of the right shape", setRaw(rdb, `{"Title":"raw","Acts":1}`)},
		{"short header", setRaw(rdb, "\x01\x00\x00")},
		{"unknown version", setRaw(rdb, header(9, 0, `{"Title":"x"}`))},
		{"unknown flags", setRaw(rdb, header(1, 0x80, `{"Title":"x"}`))},
		{"negative entry with a body", setRaw(rdb, header(1, 1, `{"Title":"x"}`))},
		{"truncated JSON", setRaw(rdb, header(1, 0, `{"Title":"tru`))},
		{"JSON of another type", setRaw(rdb, header(1, 0, `[1,2,3]`))},
		{"a hash, not a string", func(key string) error { return rdb.HSet(ctx, key, map[string]string{"f": "v"}, time.Minute) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := rdb.Keys().Tagged("script", tt.name)
			if err := tt.store(key); err != nil {
				t.Fatal(err)
			}
			var loads atomic.Int64
			load := countingLoader(&loads, nil, play{"Loaded", 3})
			for range 2 {
				v, err := redisx.Cache(ctx, rdb, key, time.Minute, load)
				if err != nil || v != (play{"Loaded", 3}) {
					t.Fatalf("lookup over a %s = %+v, %v; want the loader's value", tt.name, v, err)
				}
			}
			if got := loads.Load(); got != 1 {
				t.Errorf("loader ran %d times; want 1 (the first lookup replaces the entry)", got)
			}
		})
	}
}

func setRaw(rdb *redisx.Client, v string) func(key string) error {
	return func(key string) error { return rdb.Set(context.Background(), key, []byte(v), time.Minute) }
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCacheInvalidateDuringLoad: a load that began before the data changed
// must not store its old result after the write's Invalidate; the next
// lookup loads the new data.
func TestCacheInvalidateDuringLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, key := range []string{"tagged", "untagged"} {
		t.Run(key, func(t *testing.T) {
			rdb := redistest.Client(t)
			k := rdb.Keys().Tagged("licenses:user", "u1")
			if key == "untagged" {
				k = rdb.Keys().Join("plain", "u1")
			}
			var version atomic.Int64 // the "database"
			loading, release := make(chan struct{}), make(chan struct{})
			first := true
			load := func(context.Context) (int64, error) {
				v := version.Load()
				if first {
					first = false
					close(loading)
					<-release // the write happens while we hold the old value
				}
				return v, nil
			}
			done := make(chan int64)
			go func() {
				v, err := redisx.Cache(ctx, rdb, k, time.Minute, load)
				if err != nil {
					t.Error(err)
				}
				done <- v
			}()
			<-loading
			version.Store(1)
			if err := rdb.Invalidate(ctx, k); err != nil {
				t.Fatal(err)
			}
			close(release)
			if got := <-done; got != 0 {
				t.Fatalf("the load that began before the write returned %d; want the old value 0 to its own caller", got)
			}
			got, err := redisx.Cache(ctx, rdb, k, time.Minute, load)
			if err != nil || got != 1 {
				t.Fatalf("after Invalidate: Cache = %d, %v; want 1 (the old load must not have been stored)", got, err)
			}
			for _, key := range redistest.Keys(t, rdb) {
				if ttl, _ := rdb.TTL(ctx, key); ttl < 0 {
					t.Errorf("key %s has no TTL (%v)", key, ttl)
				}
			}
		})
	}
}

// TestCacheMissRoundTrips pins the cost of a miss on the loading instance:
// the lease with the GET in one pipeline, then the store script that also
// releases the lease.
func TestCacheMissRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var names [][]string
	var mu sync.Mutex
	rdb := redistest.Client(t, func(c *redisx.Config) {
		c.CommandHook = func(n []string) {
			mu.Lock()
			names = append(names, append([]string(nil), n...))
			mu.Unlock()
		}
	})
	k := rdb.Keys().Tagged("user", "rt")
	// Load the scripts first, so NOSCRIPT does not count: on a key with the
	// same hash tag, so on a cluster it is the same node.
	if _, err := redisx.Cache(ctx, rdb, rdb.Keys().Tagged("user", "rt", "warm"), time.Minute, func(context.Context) (int, error) { return 1, nil }); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	names = nil
	mu.Unlock()
	if _, err := redisx.Cache(ctx, rdb, k, time.Minute, func(context.Context) (int, error) { return 2, nil }); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := "[[GET] [SET GET] [EVALSHA]]"
	if got := fmt.Sprint(names); got != want {
		t.Errorf("a miss sent %s; want %s", got, want)
	}
}
