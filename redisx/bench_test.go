package redisx_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// Benchmarks of the hot paths against the real test Redis, in parallel as
// a server runs them. Each reports round trips per operation.
//
//	go test -run '^$' -bench . -benchtime=2s ./redisx/

func reportRoundTrips(b *testing.B, c *redisx.Client, before uint64) {
	b.Helper()
	b.ReportMetric(float64(c.RoundTrips()-before)/float64(b.N), "roundtrips/op")
}

func BenchmarkGet(b *testing.B) {
	c := redistest.Client(b)
	ctx := context.Background()
	key := c.Keys().Tagged("script", "bench")
	if err := c.Set(ctx, key, []byte(`{"title":"Hamlet"}`), time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	before := c.RoundTrips()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, found, err := c.Get(ctx, key); err != nil || !found {
				b.Fatalf("Get = %v, %v", found, err)
			}
		}
	})
	reportRoundTrips(b, c, before)
}

func BenchmarkSet(b *testing.B) {
	c := redistest.Client(b)
	ctx := context.Background()
	key := c.Keys().Tagged("script", "bench")
	value := []byte(`{"title":"Hamlet"}`)
	b.ReportAllocs()
	before := c.RoundTrips()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Set(ctx, key, value, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	reportRoundTrips(b, c, before)
}

func BenchmarkCacheHit(b *testing.B) {
	c := redistest.Client(b)
	ctx := context.Background()
	key := c.Keys().Tagged("script", "bench")
	type script struct {
		ID, Title string
	}
	load := func(context.Context) (script, error) { return script{"1", "Hamlet"}, nil }
	if _, err := redisx.Cache(ctx, c, key, time.Hour, load); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	before := c.RoundTrips()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, err := redisx.Cache(ctx, c, key, time.Hour, load); err != nil || v.Title != "Hamlet" {
				b.Fatalf("Cache = %+v, %v", v, err)
			}
		}
	})
	reportRoundTrips(b, c, before)
}

func BenchmarkIncr(b *testing.B) {
	c := redistest.Client(b)
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	before := c.RoundTrips()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// A few counters, as view counters of popular scripts.
		key := c.Keys().Tagged("views:script", strconv.FormatInt(n.Add(1)%8, 10))
		for pb.Next() {
			if _, err := c.Incr(ctx, key, 24*time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	reportRoundTrips(b, c, before)
}
