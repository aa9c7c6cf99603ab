package redisx_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/rueidis"

	"github.com/theaterscriptpro/tsp/internal/logbuf"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// TestCollector: the collector registers in a fresh registry (twice, for
// two clients, in two registries) and exposes every documented series,
// with every label value present from the start.
func TestCollector(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(rdb.Collector()); err != nil {
		t.Fatalf("Register in a fresh registry: %v", err)
	}
	if err := prometheus.NewRegistry().Register(redistest.Client(t).Collector()); err != nil {
		t.Fatalf("a second client's collector in another registry: %v", err)
	}

	ctx := context.Background()
	key := rdb.Keys().Tagged("script", "m")
	load := func(context.Context) (int, error) { return 1, nil }
	for range 3 { // one miss, two hits
		if _, err := redisx.Cache(ctx, rdb, key, time.Minute, load); err != nil {
			t.Fatal(err)
		}
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	labelled := func(name, label string) map[string]float64 {
		out := map[string]float64{}
		for _, m := range byName[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
		return out
	}
	for _, name := range []string{
		"redisx_round_trips_total", "redisx_command_duration_seconds", "redisx_errors_total", "redisx_breaker_state",
		"redisx_connected", "redisx_local_cache_hits_total", "redisx_cache_requests_total", "redisx_oom_replies_total",
	} {
		if byName[name] == nil {
			t.Errorf("series %s is missing", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if v := byName["redisx_round_trips_total"].GetMetric()[0].GetCounter().GetValue(); v < 3 {
		t.Errorf("redisx_round_trips_total = %v; want at least 3", v)
	}
	if n := byName["redisx_command_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); n < 3 {
		t.Errorf("redisx_command_duration_seconds count = %d; want at least 3", n)
	}
	if v := byName["redisx_connected"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("redisx_connected = %v; want 1", v)
	}
	if v := byName["redisx_breaker_state"].GetMetric()[0].GetGauge().GetValue(); v != 0 {
		t.Errorf("redisx_breaker_state = %v; want 0 (closed)", v)
	}
	reasons := labelled("redisx_errors_total", "reason")
	for _, r := range []string{"not_connected", "breaker_open", "canceled", "timeout", "connection"} {
		if _, ok := reasons[r]; !ok {
			t.Errorf("redisx_errors_total{reason=%q} is missing", r)
		}
	}
	results := labelled("redisx_cache_requests_total", "result")
	for _, r := range []string{"hit", "miss", "stale", "coalesced", "fallback", "error"} {
		if _, ok := results[r]; !ok {
			t.Errorf("redisx_cache_requests_total{result=%q} is missing", r)
		}
	}
	if results["hit"] != 2 || results["miss"] != 1 {
		t.Errorf("cache hits %v, misses %v; want 2 and 1", results["hit"], results["miss"])
	}
}

// TestOOMReplies: a Redis at maxmemory under noeviction refuses writes with
// OOM; each refusal, alone or in a pipeline, in a script, a MULTI or
// cache-aside, comes back as ErrOutOfMemory (still matching Redis's reply,
// never ErrUnavailable) and is counted; reads still answer; the breaker
// neither opens (Redis is answering) nor counts it as an unreachable
// Redis; and the log says "redis out of memory" once per interval, not
// once per refusal.
func TestOOMReplies(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, "--maxmemory-policy", "noeviction")
	var logs logbuf.Buffer
	cfg := redistest.At(redistest.Config(t), srv.Addr)
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	cfg.OutOfMemoryLogInterval = time.Hour
	cfg.BreakerFailures = 2
	rdb := redistest.Connect(t, cfg)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(rdb.Collector())
	ctx := context.Background()
	b := rdb.B()
	for _, k := range []string{"p1", "p2"} {
		if err := rdb.Set(ctx, rdb.Keys().Join(k), []byte(k), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.Do(ctx, b.ConfigSet().ParameterValue().ParameterValue("maxmemory", "1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	set := func(k string) rueidis.Completed {
		return rdb.B().Set().Key(rdb.Keys().Join(k)).Value("v").Ex(time.Minute).Build()
	}
	isOOM := func(what string, err error) {
		t.Helper()
		var re *rueidis.RedisError
		switch {
		case !errors.Is(err, redisx.ErrOutOfMemory):
			t.Errorf("%s at maxmemory: got %v; want redisx.ErrOutOfMemory", what, err)
		case !errors.As(err, &re) || !strings.HasPrefix(re.Error(), "OOM "):
			t.Errorf("%s: %v does not wrap Redis's OOM reply", what, err)
		case errors.Is(err, redisx.ErrUnavailable):
			t.Errorf("%s: %v is ErrUnavailable; Redis answered", what, err)
		}
	}
	isOOM("SET", rdb.Do(ctx, set("a")).Error())
	res := rdb.DoMulti(ctx, set("b"), rdb.B().Get().Key(rdb.Keys().Join("b")).Build(), set("c"))
	isOOM("pipelined SET", res[0].Error())
	if err := res[1].Error(); !redisx.IsNil(err) {
		t.Errorf("a GET in the same pipeline: %v; want the nil reply (reads still work)", err)
	}
	isOOM("second pipelined SET", res[2].Error())
	_, err := rdb.Incr(ctx, rdb.Keys().Join("n"), time.Minute) // a script
	isOOM("INCR script", err)
	for range 5 { // more than BreakerFailures
		isOOM("SET again", rdb.Set(ctx, rdb.Keys().Join("d"), []byte("v"), time.Minute))
	}
	// A read that can be served is.
	if _, found, err := rdb.Get(ctx, rdb.Keys().Join("a")); err != nil || found {
		t.Errorf("GET on the full Redis: found %v, %v; want a miss and no error", found, err)
	}
	v, err := redisx.Cache(ctx, rdb, rdb.Keys().Join("cached"), time.Minute, func(context.Context) (int, error) { return 7, nil })
	if err != nil || v != 7 {
		t.Errorf("Cache on a full Redis: %v, %v; want the loaded 7", v, err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			got[f.GetName()] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	// One SET, two in the pipeline, the script, five SETs, and the
	// cache-aside's lease (its store is not tried once the lease failed).
	if got["redisx_oom_replies_total"] != 10 {
		t.Errorf("redisx_oom_replies_total = %v; want 10", got["redisx_oom_replies_total"])
	}
	cache := map[string]float64{}
	for _, f := range families {
		if f.GetName() == "redisx_cache_requests_total" {
			for _, m := range f.GetMetric() {
				cache[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if cache["out_of_memory"] != 1 || cache["error"] != 0 || cache["fallback"] != 0 {
		t.Errorf("redisx_cache_requests_total %v; want out_of_memory 1, no error nor fallback", cache)
	}

	// Reads through the local tier: a full Redis refuses the MULTI that
	// asks for tracking, and the reads are made plainly instead.
	if v, err := rdb.DoCache(ctx, rdb.B().Get().Key(rdb.Keys().Join("p1")).Cache(), time.Minute).ToString(); err != nil || v != "p1" {
		t.Errorf("DoCache GET on a full Redis: %q, %v; want \"p1\"", v, err)
	}
	multi := rdb.DoMultiCache(ctx,
		rueidis.CT(rdb.B().Get().Key(rdb.Keys().Join("p1")).Cache(), time.Minute),
		rueidis.CT(rdb.B().Get().Key(rdb.Keys().Join("p2")).Cache(), time.Minute))
	for i, want := range []string{"p1", "p2"} {
		if v, err := multi[i].ToString(); err != nil || v != want {
			t.Errorf("DoMultiCache GET %d on a full Redis: %q, %v; want %q", i, v, err, want)
		}
	}
	if n := strings.Count(logs.String(), `"msg":"redis out of memory"`); n != 1 {
		t.Errorf("%d \"redis out of memory\" lines for 10 refusals within the interval; want 1:\n%s", n, logs.String())
	}
	if got["redisx_errors_total"] != 0 || got["redisx_breaker_state"] != 0 || got["redisx_connected"] != 1 {
		t.Errorf("errors %v, breaker %v, connected %v; want 0, 0 (closed), 1: an OOM is an answer",
			got["redisx_errors_total"], got["redisx_breaker_state"], got["redisx_connected"])
	}
}
