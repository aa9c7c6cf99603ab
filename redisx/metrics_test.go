package redisx_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/rueidis"

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
// OOM; each refusal, alone or in a pipeline, is counted, and neither opens
// the breaker (Redis is answering) nor counts as an unreachable Redis.
func TestOOMReplies(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, "--maxmemory-policy", "noeviction")
	rdb := redistest.Connect(t, redistest.At(redistest.Config(t), srv.Addr))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(rdb.Collector())
	ctx := context.Background()
	b := rdb.B()
	if err := rdb.Do(ctx, b.ConfigSet().ParameterValue().ParameterValue("maxmemory", "1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	set := func(k string) rueidis.Completed {
		return rdb.B().Set().Key(rdb.Keys().Join(k)).Value("v").Ex(time.Minute).Build()
	}
	if err := rdb.Do(ctx, set("a")).Error(); err == nil || !strings.HasPrefix(err.Error(), "OOM") {
		t.Fatalf("SET at maxmemory: got %v, want an OOM reply", err)
	}
	for _, r := range rdb.DoMulti(ctx, set("b"), rdb.B().Get().Key(rdb.Keys().Join("b")).Build(), set("c")) {
		_ = r.Error()
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
	if got["redisx_oom_replies_total"] != 3 {
		t.Errorf("redisx_oom_replies_total = %v; want 3 (one SET, two in the pipeline)", got["redisx_oom_replies_total"])
	}
	if got["redisx_errors_total"] != 0 || got["redisx_breaker_state"] != 0 || got["redisx_connected"] != 1 {
		t.Errorf("errors %v, breaker %v, connected %v; want 0, 0 (closed), 1: an OOM is an answer",
			got["redisx_errors_total"], got["redisx_breaker_state"], got["redisx_connected"])
	}
}
