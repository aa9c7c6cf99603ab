package redisx_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

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
		"redisx_connected", "redisx_local_cache_hits_total", "redisx_cache_requests_total",
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
