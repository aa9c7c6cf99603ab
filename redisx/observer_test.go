package redisx_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

type ctxKey struct{}

// TestCommandObserver: every round trip is reported once, with the
// caller's context, the command names and its start; a missing key (a
// Redis nil reply) is an answer, not an error; a local cache hit makes no
// round trip and no report.
func TestCommandObserver(t *testing.T) {
	t.Parallel()
	type call struct {
		names []string
		tag   any
		err   error
		start time.Time
	}
	var mu sync.Mutex
	var calls []call
	rdb := redistest.Client(t, func(cfg *redisx.Config) {
		cfg.CommandObserver = func(ctx context.Context, names []string, start time.Time, err error) {
			mu.Lock()
			calls = append(calls, call{slices.Clone(names), ctx.Value(ctxKey{}), err, start})
			mu.Unlock()
		}
	})
	take := func() []call {
		mu.Lock()
		defer mu.Unlock()
		var c []call
		for _, x := range calls {
			if !slices.Equal(x.names, []string{"PING"}) { // the health check's own
				c = append(c, x)
			}
		}
		calls = nil
		return c
	}
	ctx := context.WithValue(context.Background(), ctxKey{}, "req-1")
	k := rdb.Keys().Tagged("obs", "k")
	before := time.Now()
	if _, found, err := rdb.Get(ctx, k); err != nil || found {
		t.Fatalf("Get of a missing key: found %v, err %v", found, err)
	}
	got := take()
	if len(got) != 1 || !slices.Equal(got[0].names, []string{"GET"}) || got[0].tag != "req-1" || got[0].err != nil || got[0].start.Before(before) {
		t.Fatalf("Get: observed %+v, want one GET with the caller's context, no error", got)
	}
	if err := rdb.Set(ctx, k, []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := take(); len(got) != 1 || got[0].names[0] != "SET" {
		t.Fatalf("Set: observed %+v, want one SET", got)
	}
	cmd := rdb.B().Get().Key(k).Cache()
	for i := range 2 {
		if r := rdb.DoCache(ctx, cmd, time.Minute); r.Error() != nil {
			t.Fatal(r.Error())
		}
		got := take()
		if i == 0 && (len(got) != 1 || got[0].names[0] != "GET") {
			t.Fatalf("DoCache miss: observed %+v, want one GET", got)
		}
		if i == 1 && len(got) != 0 {
			t.Fatalf("DoCache local hit: observed %+v, want nothing", got)
		}
		cmd = rdb.B().Get().Key(k).Cache()
	}
	res := rdb.DoMulti(ctx, rdb.B().Get().Key(k).Build(), rdb.B().Incr().Key(k).Build())
	if res[1].Error() == nil {
		t.Fatal("INCR of a non-number succeeded")
	}
	got = take()
	if len(got) != 1 || !slices.Equal(got[0].names, []string{"GET", "INCR"}) || got[0].err == nil {
		t.Fatalf("DoMulti: observed %+v, want one GET+INCR round trip with INCR's error", got)
	}
}
