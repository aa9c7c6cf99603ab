package redisx_test

import (
	"context"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
)

func TestGetSetDeleteExists(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	k := rdb.Keys().Tagged("script", "42")

	if _, found, err := rdb.Get(ctx, k); err != nil || found {
		t.Fatalf("Get of a missing key: found %v, err %v; want a miss and no error", found, err)
	}
	type doc struct{ Title string }
	if err := rdb.SetJSON(ctx, k, doc{"Hamlet"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	var got doc
	if found, err := rdb.GetJSON(ctx, k, &got); err != nil || !found || got.Title != "Hamlet" {
		t.Fatalf("GetJSON = %+v, %v, %v; want Hamlet, true, nil", got, found, err)
	}
	if n, err := rdb.Exists(ctx, k, rdb.Keys().Tagged("script", "43")); err != nil || n != 1 {
		t.Fatalf("Exists = %d, %v; want 1", n, err)
	}
	if n, err := rdb.Delete(ctx, k, rdb.Keys().Tagged("user", "7")); err != nil || n != 1 {
		t.Fatalf("Delete = %d, %v; want 1", n, err)
	}
	if err := rdb.Set(ctx, k, []byte("x"), 0); err == nil {
		t.Fatal("Set with no TTL succeeded; every key must have a TTL")
	}
}

func TestIncrSetsTTLAtomically(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	k := rdb.Keys().Tagged("views:script", "1")
	for i := 1; i <= 3; i++ {
		v, err := rdb.Incr(ctx, k, 24*time.Hour)
		if err != nil || v != int64(i) {
			t.Fatalf("Incr #%d = %d, %v", i, v, err)
		}
	}
	ttl, err := rdb.TTL(ctx, k)
	if err != nil || ttl <= 23*time.Hour {
		t.Fatalf("TTL after Incr = %v, %v; want about 24h", ttl, err)
	}
}
