package redisx_test

// Tests of the local tier's lease rules (local.go) against a real Redis:
// what may and may not renew, or end, the lease of the connection that
// holds the local copies.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// heldLocally puts v1 at a key of r's and reads it twice through A's local
// tier, so A holds a copy; it returns the key and a read of it.
func heldLocally(t *testing.T, r *rig, name string) (string, func() rueidis.RedisResult) {
	t.Helper()
	ctx := context.Background()
	k := r.rdb.Keys().Tagged("script", name)
	read := func() rueidis.RedisResult {
		return r.rdb.DoCache(ctx, r.rdb.B().Get().Key(k).Cache(), time.Minute)
	}
	if err := r.direct.Set(ctx, k, []byte("v1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if v, err := read().ToString(); err != nil || v != "v1" {
			t.Fatalf("DoCache = %q, %v; want v1", v, err)
		}
	}
	if !read().IsCacheHit() {
		t.Fatal("the third read was not a local hit: the test needs a local copy")
	}
	return k, read
}

// TestLeaseSurvivesCancelledCallers: callers that give up (ctx cancelled)
// while their command is on the wire say nothing about the connection,
// which stays healthy and keeps its replies in order. They must not end
// its lease for the others: the local copy keeps being served from the
// local tier at once. Were the lease ended, every read after a cancel
// would first wait for a round trip (20 ms here) to renew it.
func TestLeaseSurvivesCancelledCallers(t *testing.T) {
	for _, call := range []struct {
		name string
		run  func(ctx context.Context, c *redisx.Client, i int) error
	}{
		{"Do", func(ctx context.Context, c *redisx.Client, _ int) error {
			return c.Do(ctx, c.B().Get().Key(c.Keys().Tagged("script", "probe")).Build()).Error()
		}},
		{"DoMulti", func(ctx context.Context, c *redisx.Client, _ int) error {
			k := c.Keys().Tagged("script", "probe")
			for _, r := range c.DoMulti(ctx, c.B().Get().Key(k).Build(), c.B().Pttl().Key(k).Build()) {
				if err := r.Error(); err != nil && !redisx.IsNil(err) {
					return err
				}
			}
			return nil
		}},
		{"DoCache miss", func(ctx context.Context, c *redisx.Client, i int) error {
			k := c.Keys().Tagged("script", "miss"+strconv.Itoa(i))
			return c.DoCache(ctx, c.B().Get().Key(k).Cache(), time.Minute).Error()
		}},
	} {
		t.Run(call.name, func(t *testing.T) {
			r := newRig(t)
			_, read := heldLocally(t, r, "cancelled")
			// Every reply 20 ms late: a cancel 5 ms in is mid-command.
			const latency = 20 * time.Millisecond
			r.px.Latency(latency)
			// Let the lease catch up with the latency before counting.
			time.Sleep(2 * localLease)
			for i := 0; ; i++ {
				if v, err := read().ToString(); err != nil || v != "v1" {
					t.Fatalf("DoCache = %q, %v; want v1", v, err)
				}
				if i == 5 {
					break
				}
				time.Sleep(localLease / 4)
			}
			const calls = 150
			var hits, cancelled, waited int
			var slowest time.Duration
			for i := range calls {
				ctx, cancel := context.WithCancel(context.Background())
				stop := time.AfterFunc(5*time.Millisecond, cancel)
				err := call.run(ctx, r.rdb, i)
				stop.Stop()
				cancel()
				switch {
				case errors.Is(err, context.Canceled):
					cancelled++
				case err != nil && !redisx.IsNil(err):
					// A call answered before its cancel took effect (a
					// late timer) is fine; a failure is not.
					t.Fatalf("call %d: %v; want context.Canceled (cancelled mid-command) or an answer", i, err)
				}
				began := time.Now()
				res := read()
				took := time.Since(began)
				if v, err := res.ToString(); err != nil || v != "v1" {
					t.Fatalf("DoCache after cancelled call %d = %q, %v; want v1", i, v, err)
				}
				if res.IsCacheHit() {
					hits++
				}
				if took >= latency {
					waited++ // it made a round trip first: the lease had lapsed
				}
				slowest = max(slowest, took)
			}
			t.Logf("%d of %d %s calls cancelled mid-command; of the reads after each call, %d were local hits, %d waited for a round trip (slowest %v)",
				cancelled, calls, call.name, hits, waited, slowest.Round(time.Microsecond))
			if cancelled < calls/2 {
				t.Fatalf("only %d of %d calls were cancelled mid-command; the test needs most of them", cancelled, calls)
			}
			// A background renewal that a loaded box delays past the
			// lease makes one read wait now and then; an ended lease
			// would make nearly every one wait.
			if waited > calls/10 {
				t.Errorf("%d of %d reads after a cancelled call waited for a round trip; want at most %d: cancelled callers ended the lease", waited, calls, calls/10)
			}
		})
	}
}

// TestLeaseNotRenewedByDedicatedConnections: blocking commands (BLPOP,
// WAIT), a pipeline holding one, and a pipeline of 2000 commands or more
// run on dedicated connections of their own, not on the connection that
// holds the local copies and receives their invalidations. Their answers
// must not renew that connection's lease: with it hung and the dedicated
// connections healthy, no read begun more than LocalLease after another
// client's write gets the old value.
func TestLeaseNotRenewedByDedicatedConnections(t *testing.T) {
	// Connections dialled once direct is set bypass the proxy: the shared
	// one is dialled before and goes through it (and hangs with it), the
	// dedicated ones, dialled at their first use, go straight to Redis.
	var direct atomic.Bool
	var directDials atomic.Int64
	var upstream atomic.Pointer[string]
	r := newRig(t, func(cfg *redisx.Config) {
		cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if direct.Load() {
				directDials.Add(1)
				addr = *upstream.Load()
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	})
	upstream.Store(&r.srv.Addr)
	k, read := heldLocally(t, r, "dedicated")
	direct.Store(true)
	ctx := context.Background()
	list := r.rdb.Keys().Tagged("queue", "empty")
	long := make([]rueidis.Completed, 0, 2000)
	dedicated := []struct {
		name string
		run  func() error
	}{
		{"BLPOP", func() error {
			err := r.rdb.Do(ctx, r.rdb.B().Blpop().Key(list).Timeout(0.01).Build()).Error()
			if redisx.IsNil(err) {
				return nil // timed out empty: an answer
			}
			return err
		}},
		{"WAIT", func() error { return r.rdb.Do(ctx, r.rdb.B().Wait().Numreplicas(0).Timeout(1).Build()).Error() }},
		{"pipeline with WAIT", func() error {
			for _, res := range r.rdb.DoMulti(ctx, r.rdb.B().Wait().Numreplicas(0).Timeout(1).Build(), r.rdb.B().Pttl().Key(list).Build()) {
				if err := res.Error(); err != nil {
					return err
				}
			}
			return nil
		}},
		{"pipeline of 2000", func() error {
			long = long[:0]
			for i := range cap(long) {
				long = append(long, r.rdb.B().Pttl().Key(r.rdb.Keys().Tagged("script", strconv.Itoa(i))).Build())
			}
			for _, res := range r.rdb.DoMulti(ctx, long...) {
				if err := res.Error(); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, d := range dedicated {
		if err := d.run(); err != nil {
			t.Fatalf("%s before the hang: %v", d.name, err)
		}
	}
	if directDials.Load() == 0 {
		t.Fatal("no dedicated connection was dialled: the test would test nothing")
	}
	r.px.Hang()
	if err := r.direct.Set(ctx, k, []byte("v2"), time.Minute); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	answered := make([]atomic.Int64, len(dedicated))
	var failed atomic.Pointer[error]
	for i, d := range dedicated {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := d.run(); err != nil {
					// The breaker, opened by the hung connection's
					// timeouts, refuses calls for the whole node.
					if !errors.Is(err, redisx.ErrUnavailable) {
						err = fmt.Errorf("%s under the hang: %w", d.name, err)
						failed.CompareAndSwap(nil, &err)
					}
				} else {
					answered[i].Add(1)
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	stopTraffic := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopTraffic()
	redistest.StaleWithin(t, "shared connection hung, dedicated ones answering", changed, localLease, func() (bool, string) {
		v, err := read().ToString()
		// v2 comes once rueidis gives the hung connection up and dials
		// another, which goes straight to Redis.
		if v != "v1" && v != "v2" && !errors.Is(err, redisx.ErrUnavailable) {
			t.Fatalf("DoCache under the hang = %q, %v; want v1 (within the lease), v2 or ErrUnavailable", v, err)
		}
		return v == "v1", fmt.Sprintf("%q, %v", v, err)
	})
	stopTraffic()
	for i, d := range dedicated {
		t.Logf("%s answered %d times on its dedicated connection meanwhile", d.name, answered[i].Load())
		if answered[i].Load() == 0 {
			t.Errorf("%s was never answered under the hang: it renewed nothing because it never ran", d.name)
		}
	}
	if err := failed.Load(); err != nil {
		t.Error(*err)
	}
}

// TestLeaseAfterLongPipeline: a pipeline of 2000 commands or more (which
// rueidis sends on a dedicated connection) completes, and the lease of the
// connection holding the local copies stays correct: the copy is served
// from the local tier afterwards while the connection is healthy, and a
// change made by another client is seen at once.
func TestLeaseAfterLongPipeline(t *testing.T) {
	for _, size := range []int{1999, 2000, 5000} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			r := newRig(t)
			k, read := heldLocally(t, r, "pipelined")
			ctx := context.Background()
			cmds := make([]rueidis.Completed, 0, 2*size)
			for i := range size / 2 {
				pk := r.rdb.Keys().Tagged("script", "p"+strconv.Itoa(i))
				cmds = append(cmds,
					r.rdb.B().Set().Key(pk).Value(strconv.Itoa(i)).PxMilliseconds(60000).Build(),
					r.rdb.B().Get().Key(pk).Build())
			}
			for len(cmds) < size {
				cmds = append(cmds, r.rdb.B().Pttl().Key(k).Build())
			}
			start := time.Now()
			res := r.rdb.DoMulti(ctx, cmds...)
			t.Logf("a pipeline of %d commands took %v", size, time.Since(start).Round(time.Microsecond))
			if len(res) != size {
				t.Fatalf("DoMulti returned %d results; want %d", len(res), size)
			}
			for i := 0; i+1 < size && i/2 < size/2; i += 2 {
				if err := res[i].Error(); err != nil {
					t.Fatalf("SET #%d: %v", i/2, err)
				}
				if v, err := res[i+1].ToString(); err != nil || v != strconv.Itoa(i/2) {
					t.Fatalf("GET #%d = %q, %v; want %d", i/2, v, err, i/2)
				}
			}
			// Served from the local tier for five leases while healthy.
			var hits, reads int
			for end := time.Now().Add(5 * localLease); time.Now().Before(end); reads++ {
				res := read()
				if v, err := res.ToString(); err != nil || v != "v1" {
					t.Fatalf("DoCache after the pipeline = %q, %v; want v1", v, err)
				}
				if res.IsCacheHit() {
					hits++
				}
				time.Sleep(2 * time.Millisecond)
			}
			t.Logf("%d of %d reads after the pipeline were local hits", hits, reads)
			if hits == 0 {
				t.Error("no read after the pipeline was a local hit: the copy was lost")
			}
			if err := r.direct.Set(ctx, k, []byte("v2"), time.Minute); err != nil {
				t.Fatal(err)
			}
			redistest.StaleWithin(t, "after a pipeline of "+strconv.Itoa(size), time.Now(), localLease, func() (bool, string) {
				v, err := read().ToString()
				if err != nil || v != "v1" && v != "v2" {
					t.Fatalf("DoCache after the change = %q, %v; want v1 or v2", v, err)
				}
				return v == "v1", v
			})
		})
	}
}
