package redisx_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/faultproxy"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// TestFaultClusterLocalCacheUnderOneHungMaster is API.md's 100 ms promise
// on Cluster, where liveness is kept per node: instance A reaches one
// master through a proxy that then black-holes (no RST, so Redis's
// invalidation is held in the network) and the other masters directly,
// and they stay healthy. Instance B, a normal client, changes a key owned
// by the hung master. No read on A begun more than LocalLease after B's
// write returned gets the old value, none does afterwards (under the hang
// or after it ends), and A's traffic to the other masters keeps
// succeeding meanwhile: their answers renew their own nodes' leases, not
// the hung one's.
func TestFaultClusterLocalCacheUnderOneHungMaster(t *testing.T) {
	c := redistest.StartCluster(t)
	bcfg := c.Config(t)
	b := redistest.Connect(t, bcfg)
	k := b.Keys().Tagged("script", "hung-master")
	hung := c.MasterOf(t, k)
	if hung == nil {
		t.Fatalf("no master owns %s", k)
	}
	var healthyKey string
	for i := 0; healthyKey == ""; i++ {
		if hk := b.Keys().Tagged("script", fmt.Sprint("healthy", i)); c.MasterOf(t, hk) != hung {
			healthyKey = hk
		}
	}
	px := faultproxy.Start(t, hung.Addr)
	var proxied atomic.Int64
	acfg := bcfg
	acfg.CommandTimeout = faultTimeout
	acfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		// rueidis dials what the cluster announces (CLUSTER SLOTS): the
		// nodes' own 127.0.0.1:port addresses.
		if addr == hung.Addr {
			proxied.Add(1)
			addr = px.Addr()
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	a := redistest.Connect(t, acfg)
	t.Cleanup(px.Reset) // before the clients' cleanups delete their keys through it
	ctx := context.Background()
	get := func() (string, error) {
		return a.DoCache(ctx, a.B().Get().Key(k).Cache(), time.Minute).ToString()
	}
	if err := b.Set(ctx, k, []byte("v1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if v, err := get(); err != nil || v != "v1" {
			t.Fatalf("A's DoCache #%d = %q, %v; want v1", i, v, err)
		}
	}
	if got := a.DoCache(ctx, a.B().Get().Key(k).Cache(), time.Minute); !got.IsCacheHit() {
		t.Fatal("A's third read was not a local hit: the test needs a local copy")
	}
	if proxied.Load() == 0 {
		t.Fatalf("A never dialled %s through the proxy: the hang would test nothing", hung.Addr)
	}

	// A's service keeps calling the healthy masters throughout.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var healthyOK, healthyErr atomic.Int64
	var firstErr atomic.Pointer[error]
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := a.Set(ctx, healthyKey, []byte(fmt.Sprint(i)), time.Minute)
			if err == nil {
				_, _, err = a.Get(ctx, healthyKey)
			}
			if err != nil {
				healthyErr.Add(1)
				firstErr.CompareAndSwap(nil, &err)
			} else {
				healthyOK.Add(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	stopTraffic := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopTraffic()

	px.Hang()
	if err := b.Set(ctx, k, []byte("v2"), time.Minute); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	read := func(what string) (bool, string) {
		v, err := get()
		if v != "v1" && v != "v2" && !errors.Is(err, redisx.ErrUnavailable) {
			t.Fatalf("A's DoCache %s = %q, %v; want v1 (within the lease), v2 or ErrUnavailable", what, v, err)
		}
		return v == "v1", fmt.Sprintf("%q, %v", v, err)
	}
	redistest.StaleWithin(t, "cluster, one master hung", changed, localLease, func() (bool, string) {
		return read("under the hang")
	})

	// Never again: not while the hang lasts, nor once it ends and the
	// held bytes (the invalidation among them) are delivered.
	var late, reads int
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); reads++ {
		if stale, _ := read("under the hang"); stale {
			late++
		}
		time.Sleep(2 * time.Millisecond)
	}
	px.Reset()
	deadline := time.Now().Add(recoveryBudget)
	for {
		stale, got := read("after the hang")
		reads++
		if stale {
			late++
		}
		v, err := get()
		reads++
		if v == "v1" {
			late++
		}
		if err == nil && v == "v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A's DoCache after the hang: %s; want v2 within %v", got, recoveryBudget)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopTraffic()
	t.Logf("cluster, one master hung: %d of %d reads begun after the bound (under the hang and after it) got the old value", late, reads)
	if late > 0 {
		t.Errorf("%d reads after the bound got v1; want 0", late)
	}
	t.Logf("A's traffic to the healthy masters under the hang: %d calls succeeded, %d failed", healthyOK.Load(), healthyErr.Load())
	if healthyErr.Load() > 0 {
		t.Errorf("%d calls to the healthy masters failed under the hang, first: %v", healthyErr.Load(), *firstErr.Load())
	}
	if healthyOK.Load() == 0 {
		t.Error("no call to the healthy masters succeeded under the hang")
	}
}
