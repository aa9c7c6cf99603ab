package redisx_test

// Outage tests on a throwaway redis-server that each test kills, pauses or
// starts late. They are not parallel: they count goroutines and measure
// time, which other tests' traffic would blur.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

const outageCommandTimeout = 500 * time.Millisecond

// outageClient connects to srv with a short CommandTimeout and a 1s
// half-open interval.
func outageClient(t *testing.T, srv *redistest.Server, edit ...func(*redisx.Config)) *redisx.Client {
	t.Helper()
	cfg := redistest.Config(t)
	cfg = redistest.At(cfg, srv.Addr)
	cfg.CommandTimeout = outageCommandTimeout
	cfg.BreakerOpenFor = time.Second
	for _, e := range edit {
		e(&cfg)
	}
	return redistest.Connect(t, cfg)
}

// settledGoroutines returns the goroutine count once it stops moving.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

// exercise runs each kind of call once and reports the first error.
func exercise(ctx context.Context, c *redisx.Client, tag string) error {
	k := c.Keys()
	if err := c.Set(ctx, k.Tagged("script", tag), []byte("x"), time.Minute); err != nil {
		return err
	}
	if _, _, err := c.Get(ctx, k.Tagged("script", tag)); err != nil {
		return err
	}
	if _, err := c.Incr(ctx, k.Tagged("views:script", tag), time.Minute); err != nil {
		return err
	}
	if err := c.HSet(ctx, k.Session(tag), map[string]string{"a": "b"}, time.Minute); err != nil {
		return err
	}
	if _, err := redisx.Cache(ctx, c, k.Tagged("user", tag), time.Minute, func(context.Context) (string, error) { return "u", nil }); err != nil {
		return err
	}
	return c.Ping(ctx)
}

// TestOutage stops the throwaway Redis (SIGKILL, then SIGSTOP in a second
// run): Cache still answers from the loader within the caller's deadline,
// other calls fail with ErrUnavailable and, once the breaker is open, in
// microseconds; after the restart everything works again within 2s with no
// action, and the goroutine count returns to where it was.
func TestOutage(t *testing.T) {
	for _, mode := range []string{"kill", "pause"} {
		t.Run(mode, func(t *testing.T) {
			srv := redistest.StartServer(t)
			c := outageClient(t, srv)
			ctx := context.Background()
			for i := range 3 {
				if err := exercise(ctx, c, fmt.Sprint("warm", i)); err != nil {
					t.Fatalf("before the outage: %v", err)
				}
			}
			baseline := settledGoroutines()

			if mode == "kill" {
				srv.Kill()
			} else {
				srv.Pause()
				t.Cleanup(srv.Resume)
			}

			// Cache answers from the loader within the caller's deadline,
			// even before the breaker opens (a paused Redis hangs the lookup).
			for i := range 3 {
				const deadline = 800 * time.Millisecond
				cctx, cancel := context.WithTimeout(ctx, deadline)
				began := time.Now()
				v, err := redisx.Cache(cctx, c, c.Keys().Tagged("user", fmt.Sprint("down", i)), time.Minute,
					func(context.Context) (string, error) { return "from the database", nil })
				took := time.Since(began)
				cancel()
				if err != nil || v != "from the database" {
					t.Fatalf("Cache #%d with Redis down = %q, %v; want the loader's value", i, v, err)
				}
				if took > deadline {
					t.Fatalf("Cache #%d took %v; want it within the caller's %v deadline", i, took, deadline)
				}
			}

			// Calls fail with ErrUnavailable until the breaker opens...
			waitFor(t, 10*time.Second, "the breaker to open", func() bool {
				began := time.Now()
				_, _, err := c.Get(ctx, c.Keys().Tagged("script", "probe"))
				if !errors.Is(err, redisx.ErrUnavailable) {
					t.Fatalf("Get with Redis down: err = %v; want ErrUnavailable", err)
				}
				return time.Since(began) < time.Millisecond
			})
			// ...and then fail fast: a batch of 1,000 calls in well under
			// one CommandTimeout (microseconds each, not a timeout each).
			began := time.Now()
			for i := range 1000 {
				var err error
				switch i % 4 {
				case 0:
					_, _, err = c.Get(ctx, c.Keys().Tagged("script", "fast"))
				case 1:
					_, err = c.Incr(ctx, c.Keys().Tagged("views:script", "fast"), time.Minute)
				case 2:
					err = c.Set(ctx, c.Keys().Tagged("script", "fast"), []byte("x"), time.Minute)
				case 3:
					err = c.Ping(ctx)
				}
				if !errors.Is(err, redisx.ErrUnavailable) {
					t.Fatalf("call %d with the breaker open: err = %v; want ErrUnavailable", i, err)
				}
			}
			if took := time.Since(began); took > outageCommandTimeout {
				t.Fatalf("1,000 calls with the breaker open took %v; want well under one CommandTimeout (%v)", took, outageCommandTimeout)
			} else {
				t.Logf("1,000 calls with the breaker open: %v (%v per call)", took, took/1000)
			}
			// Cache still serves from the loader, now at once.
			v, err := redisx.Cache(ctx, c, c.Keys().Tagged("user", "open"), time.Minute, func(context.Context) (string, error) { return "db", nil })
			if err != nil || v != "db" {
				t.Fatalf("Cache with the breaker open = %q, %v; want the loader's value", v, err)
			}

			// Redis comes back: calls succeed within 2s, by themselves.
			if mode == "kill" {
				srv.Start(t)
			} else {
				srv.Resume()
			}
			back := time.Now()
			waitFor(t, 2*time.Second, "calls to succeed after the restart", func() bool { return c.Ping(ctx) == nil })
			t.Logf("recovered %v after Redis came back", time.Since(back))
			if err := exercise(ctx, c, "after"); err != nil {
				t.Fatalf("after recovery: %v", err)
			}
			waitFor(t, 10*time.Second, fmt.Sprintf("goroutines to return to %d", baseline), func() bool {
				return runtime.NumGoroutine() <= baseline
			})
		})
	}
}

// TestNewWhileUnreachable: New returns at once although Redis is down,
// calls fail with ErrUnavailable, the RetryStrategy hook paces the
// reconnect attempts, and the client connects by itself once Redis is up.
func TestNewWhileUnreachable(t *testing.T) {
	srv := redistest.StartServer(t)
	srv.Kill()
	var attempts atomic.Int64
	cfg := redistest.Config(t)
	cfg = redistest.At(cfg, srv.Addr)
	cfg.DialTimeout = time.Second
	cfg.RetryStrategy = func(n int) time.Duration {
		attempts.Add(1)
		return 50 * time.Millisecond
	}
	began := time.Now()
	c, err := redisx.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New with Redis down = %v; want a client", err)
	}
	t.Cleanup(c.Close)
	if took := time.Since(began); took > cfg.DialTimeout {
		t.Fatalf("New took %v; want at most DialTimeout (%v)", took, cfg.DialTimeout)
	}
	if c.Connected() {
		t.Fatal("Connected() = true with Redis down")
	}
	ctx := context.Background()
	began = time.Now()
	if _, _, err := c.Get(ctx, c.Keys().Tagged("script", "x")); !errors.Is(err, redisx.ErrUnavailable) {
		t.Fatalf("Get before the first connection: %v; want ErrUnavailable", err)
	}
	if _, err := redisx.Cache(ctx, c, c.Keys().Tagged("user", "x"), time.Minute, func(context.Context) (int, error) { return 7, nil }); err != nil {
		t.Fatalf("Cache before the first connection: %v; want the loader's value", err)
	}
	if took := time.Since(began); took > 50*time.Millisecond {
		t.Errorf("calls before the first connection took %v; want them to fail fast", took)
	}
	waitFor(t, 2*time.Second, "the RetryStrategy hook to be used", func() bool { return attempts.Load() >= 3 })

	srv.Start(t)
	waitFor(t, 2*time.Second, "the client to connect by itself", func() bool { return c.Ping(ctx) == nil })
	if !c.Connected() {
		t.Error("Connected() = false after a successful Ping")
	}
	// Once connected the loop stops: no more attempts.
	n := attempts.Load()
	time.Sleep(200 * time.Millisecond)
	if m := attempts.Load(); m != n {
		t.Errorf("RetryStrategy called %d more times after connecting; want the loop to stop", m-n)
	}
}

// TestDefaultRetryStrategy: exponential backoff with full jitter, from 50ms
// to a 2s cap, sane for any attempt number.
func TestDefaultRetryStrategy(t *testing.T) {
	t.Parallel()
	for _, n := range []int{-5, 0, 1, 2, 3, 5, 6, 7, 10, 64, 1 << 30} {
		ceiling := 2 * time.Second
		if n >= 1 && n < 7 {
			ceiling = 50 * time.Millisecond << (n - 1)
		} else if n < 1 {
			ceiling = 50 * time.Millisecond
		}
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range 2000 {
			d := redisx.DefaultRetryStrategy(n)
			if d <= 0 || d > ceiling+time.Millisecond {
				t.Fatalf("DefaultRetryStrategy(%d) = %v; want within (0, %v]", n, d, ceiling)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter: the waits cover the whole range, not a band near the top.
		if lo > ceiling/10 || hi < ceiling*9/10 {
			t.Errorf("DefaultRetryStrategy(%d) ranged over [%v, %v]; want about [0, %v]", n, lo, hi, ceiling)
		}
	}
}

// TestIncrUnderConnectionDrops kills the client's connections again and
// again (CLIENT KILL) while increments run. A reply lost with its
// connection may leave an increment applied but unacknowledged; it must
// never be applied twice (no retry), an acknowledged one never lost, and
// every counter must have its TTL.
func TestIncrUnderConnectionDrops(t *testing.T) {
	srv := redistest.StartServer(t)
	c := outageClient(t, srv, func(cfg *redisx.Config) {
		cfg.CommandTimeout = time.Second
		cfg.BreakerFailures = 1 << 30 // this test is about the writes, not the breaker
	})
	ctx := context.Background()

	killer, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close()
	replies := bufio.NewReader(killer)
	stopKilling := make(chan struct{})
	var kills atomic.Int64
	go func() {
		for {
			select {
			case <-stopKilling:
				return
			case <-time.After(3 * time.Millisecond):
			}
			if _, err := killer.Write([]byte("CLIENT KILL TYPE normal SKIPME yes\r\n")); err != nil {
				return
			}
			if line, err := replies.ReadString('\n'); err != nil {
				return
			} else if n, _ := strconv.Atoi(line[1 : len(line)-2]); n > 0 {
				kills.Add(int64(n))
			}
		}
	}()

	type outcome struct {
		key   string
		acked bool
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		next     atomic.Int64
		shared   = c.Keys().Tagged("views:script", "shared")
		sharedOK atomic.Int64
		sharedN  atomic.Int64
		wg       sync.WaitGroup
	)
	stopAt := time.Now().Add(1500 * time.Millisecond)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stopAt) {
				// Each key gets exactly one Incr: its value can only be 0 or 1.
				key := c.Keys().Tagged("views:script", strconv.FormatInt(next.Add(1), 10))
				_, err := c.Incr(ctx, key, time.Hour)
				if err != nil && !errors.Is(err, redisx.ErrUnavailable) {
					t.Errorf("Incr under connection drops: %v; want success or ErrUnavailable", err)
				}
				mu.Lock()
				outcomes = append(outcomes, outcome{key, err == nil})
				mu.Unlock()
				sharedN.Add(1)
				if _, err := c.IncrBy(ctx, shared, 1, time.Hour); err == nil {
					sharedOK.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(stopKilling)

	waitFor(t, 3*time.Second, "the client to work again", func() bool { return c.Ping(ctx) == nil })
	var failed int
	for _, o := range outcomes {
		v, found, err := c.Get(ctx, o.key)
		if err != nil {
			t.Fatalf("Get %s: %v", o.key, err)
		}
		switch {
		case found && string(v) != "1":
			t.Errorf("%s = %s after one Incr; want 1 (an increment was applied twice)", o.key, v)
		case !found && o.acked:
			t.Errorf("%s is missing; its Incr was acknowledged", o.key)
		case found:
			if ttl, err := c.TTL(ctx, o.key); err != nil || ttl <= 0 {
				t.Errorf("TTL of %s = %v, %v; want a positive TTL", o.key, ttl, err)
			}
		}
		if !o.acked {
			failed++
		}
	}
	v, _, err := c.Get(ctx, shared)
	if err != nil {
		t.Fatal(err)
	}
	total, _ := strconv.ParseInt(string(v), 10, 64)
	if total > sharedN.Load() || total < sharedOK.Load() {
		t.Errorf("shared counter = %d after %d IncrBy (%d acknowledged); want between the two", total, sharedN.Load(), sharedOK.Load())
	}
	if ttl, err := c.TTL(ctx, shared); err != nil || ttl <= 0 {
		t.Errorf("TTL of the shared counter = %v, %v; want a positive TTL", ttl, err)
	}
	t.Logf("%d connections killed; %d Incr, %d failed; shared counter %d of %d (%d acknowledged)",
		kills.Load(), len(outcomes), failed, total, sharedN.Load(), sharedOK.Load())
	if kills.Load() == 0 || failed == 0 {
		t.Fatalf("%d kills and %d failed increments; the drops did not land mid-command, so this proved nothing", kills.Load(), failed)
	}
}

// TestNotConnectedSaysWhy: before the first connection, calls report why
// the last attempt failed (here a wrong password), never the password.
func TestNotConnectedSaysWhy(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, "--requirepass", "right-horse-battery")
	cfg := srv.Config(t)
	cfg.Password = "wrong-horse-battery"
	cfg.DialTimeout = 500 * time.Millisecond
	rdb, err := redisx.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	err = rdb.Ping(context.Background())
	if !errors.Is(err, redisx.ErrUnavailable) {
		t.Fatalf("Ping = %v; want ErrUnavailable", err)
	}
	msg := err.Error()
	if !strings.Contains(strings.ToUpper(msg), "WRONGPASS") {
		t.Errorf("error %q does not say the password was refused", msg)
	}
	if strings.Contains(msg, "horse-battery") {
		t.Errorf("error %q contains the password", msg)
	}
}
