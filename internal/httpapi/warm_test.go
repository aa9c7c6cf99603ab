package httpapi

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/internal/theater"
)

func counterValue(tb testing.TB, c prometheus.Counter) float64 {
	tb.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		tb.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// warmStats sums the warming counters of instances.
func warmStats(tb testing.TB, reason string, ins ...*instance) (warmed, skipped, entries float64) {
	tb.Helper()
	for _, in := range ins {
		w := in.api.warm
		warmed += counterValue(tb, w.runs.WithLabelValues(reason, "warmed"))
		skipped += counterValue(tb, w.runs.WithLabelValues(reason, "skipped"))
		for _, o := range []string{"MISS", "HIT", "BYPASS", "error"} {
			entries += counterValue(tb, w.entries.WithLabelValues(o))
		}
	}
	return warmed, skipped, entries
}

// waitWarm waits until the instances' warming for reason has run and asked
// for want entries in all, then checks that it ran exactly once and asks
// for no more once done.
func waitWarm(tb testing.TB, reason string, runs, wantEntries float64, ins ...*instance) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		warmed, _, entries := warmStats(tb, reason, ins...)
		if warmed >= runs && entries >= wantEntries {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s warming: %v runs, %v entries after 10s; want %v and %v", reason, warmed, entries, runs, wantEntries)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A second run, or more entries, would come within warmEvery.
	time.Sleep(warmEvery + 200*time.Millisecond)
	warmed, _, entries := warmStats(tb, reason, ins...)
	if warmed != runs || entries != wantEntries {
		tb.Fatalf("%s warming: %v runs and %v entries in all; want exactly %v and %v", reason, warmed, entries, runs, wantEntries)
	}
}

// Warming at start and after a catalogue purge fills the first catalogue
// pages and the most-viewed scripts, once across two instances, never
// more than CACHE_WARM entries; refresh-ahead gives a HIT on the first
// read after an update, on either instance.
func TestCacheWarming(t *testing.T) {
	t.Parallel()
	st, _ := openSQLite(t)
	cfg := redistest.Config(t)
	seed := newInstance(t, options{store: st, redis: cfg})
	author := signUp(t, seed, theater.RolePlaywright)
	ids := make([]string, 6)
	for i := range ids {
		r := author.c.do("POST", "/api/scripts", scriptBody(fmt.Sprintf("Play %d", i)))
		want(t, r, 201, "create")
		var sc theater.Script
		r.json(t, &sc)
		ids[i] = sc.ID
		// Script i has been read (i+1)*10 times: ids[5] is the most viewed.
		seed.api.views.addN(sc.ID, int64(i+1)*10)
	}
	seed.api.views.flush(context.Background())

	const n = 5 // 3 catalogue pages + the 2 most-viewed scripts
	warm := func(d *Deps) { d.CacheWarm = n }
	a := newInstance(t, options{store: st, redis: cfg, edit: warm})
	b := newInstance(t, options{store: st, redis: cfg, edit: warm})
	waitWarm(t, "start", 1, n, a, b)
	if _, skipped, _ := warmStats(t, "start", a, b); skipped != 1 {
		t.Fatalf("start: %v instances skipped warming; want the one that did not warm", skipped)
	}

	anon := b.client(t)
	xcache := func(c *client, path string) string {
		t.Helper()
		r := c.do("GET", path, nil)
		want(t, r, 200, path)
		return r.header.Get("X-Cache")
	}
	expect := func(c *client, when string, hits, misses []string) {
		t.Helper()
		for _, p := range hits {
			if got := xcache(c, p); got != "HIT" {
				t.Errorf("%s: first read of %s: X-Cache %s, want HIT (warmed)", when, p, got)
			}
		}
		for _, p := range misses {
			if got := xcache(c, p); got != "MISS" {
				t.Errorf("%s: first read of %s: X-Cache %s, want MISS (beyond the bound)", when, p, got)
			}
		}
	}
	hot := []string{"/api/scripts", "/api/scripts?page=2", "/api/scripts?page=3", "/api/scripts/" + ids[5], "/api/scripts/" + ids[4]}
	cold := []string{"/api/scripts?page=4", "/api/scripts/" + ids[3]}
	expect(anon, "after start", hot, cold)

	// An update through A: its own refresh-ahead makes the next read of
	// the script a HIT on either instance, with the new title.
	writer := author.c.on(a)
	want(t, writer.do("PUT", "/api/scripts/"+ids[0], scriptBody("Play 0, revised")), 200, "update")
	r := anon.do("GET", "/api/scripts/"+ids[0], nil)
	var got theater.Script
	r.json(t, &got)
	if r.header.Get("X-Cache") != "HIT" || got.Title != "Play 0, revised" {
		t.Fatalf("first read after the update: X-Cache %s, title %q; want HIT and the new title", r.header.Get("X-Cache"), got.Title)
	}

	// The update purged the catalogue: the writer warms it again, once,
	// with the same bound (plus the one refresh-ahead).
	waitWarm(t, "purge", 1, n+n+1, a, b) // entries count start's n too
	hot = []string{"/api/scripts", "/api/scripts?page=2", "/api/scripts?page=3"}
	expect(anon.on(a), "after the purge", hot, []string{"/api/scripts?page=5"})
}

// With warming off (the Deps default; CACHE_WARM=off) nothing is warmed
// nor refreshed: the first read after an update misses.
func TestCacheWarmingOff(t *testing.T) {
	t.Parallel()
	in := newInstance(t, options{})
	if in.api.warm != nil {
		t.Fatal("warming runs with CacheWarm 0")
	}
	author := signUp(t, in, theater.RolePlaywright)
	r := author.c.do("POST", "/api/scripts", scriptBody("Cold"))
	want(t, r, 201, "create")
	var sc theater.Script
	r.json(t, &sc)
	if got := in.client(t).do("GET", "/api/scripts/"+sc.ID, nil).header.Get("X-Cache"); got != "MISS" {
		t.Fatalf("first read with warming off: X-Cache %s, want MISS", got)
	}
	if _, err := New(Deps{Redis: in.rdb, Users: in.st, Scripts: in.st, Licenses: in.st, Database: in.st, CacheWarm: maxTopViews + 1}); err == nil {
		t.Fatal("New accepted CacheWarm above its bound")
	}
}

// A bound at or below the catalogue pages warms only pages, and never
// reads the ranking past its bound.
func TestCacheWarmingSmallBound(t *testing.T) {
	t.Parallel()
	in := newInstance(t, options{edit: func(d *Deps) { d.CacheWarm = 2 }})
	waitWarm(t, "start", 1, 2, in)
	c := in.client(t)
	for path, want := range map[string]string{"/api/scripts": "HIT", "/api/scripts?page=2": "HIT", "/api/scripts?page=3": "MISS"} {
		if got := c.do("GET", path, nil).header.Get("X-Cache"); got != want {
			t.Errorf("%s: X-Cache %s, want %s", path, got, want)
		}
	}
}
