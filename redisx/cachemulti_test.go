package redisx_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// TestDoMultiCache: reads not held locally go to Redis in one round trip
// (the hook sees their names), reads held locally cost nothing, and a
// write invalidates the local copy.
func TestDoMultiCache(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var trips [][]string
	rdb := redistest.Client(t, func(cfg *redisx.Config) {
		cfg.CommandHook = func(names []string) {
			mu.Lock()
			trips = append(trips, slices.Clone(names))
			mu.Unlock()
		}
	})
	take := func() [][]string {
		mu.Lock()
		defer mu.Unlock()
		t := trips
		trips = nil
		return t
	}
	ctx := context.Background()
	a, b := rdb.Keys().Tagged("t", "u1", "a"), rdb.Keys().Tagged("t", "u1", "b")
	if err := rdb.Set(ctx, a, []byte("1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	read := func() []rueidis.RedisResult {
		return rdb.DoMultiCache(ctx,
			rueidis.CT(rdb.B().Get().Key(a).Cache(), time.Minute),
			rueidis.CT(rdb.B().Get().Key(b).Cache(), time.Minute))
	}
	_ = take()
	res := read()
	if v, err := res[0].ToString(); err != nil || v != "1" || !redisx.IsNil(res[1].Error()) {
		t.Fatalf("first read: got %q %v and %v, want \"1\" and nil", v, err, res[1].Error())
	}
	if got := take(); len(got) != 1 || !slices.Equal(got[0], []string{"GET", "GET"}) {
		t.Fatalf("first read: round trips %v, want one with two GETs", got)
	}
	res = read()
	if !res[0].IsCacheHit() || !res[1].IsCacheHit() {
		t.Fatal("second read: want both held locally")
	}
	if got := take(); len(got) != 0 {
		t.Fatalf("second read: round trips %v, want none", got)
	}
	if err := rdb.Set(ctx, a, []byte("2"), time.Minute); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v, _ := read()[0].ToString(); v == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the local copy was never invalidated")
		}
		time.Sleep(time.Millisecond)
	}
	if got := rdb.DoMultiCache(ctx); got != nil {
		t.Fatalf("no commands: got %v, want nil", got)
	}
}
