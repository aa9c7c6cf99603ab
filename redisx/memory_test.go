package redisx_test

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/theaterscriptpro/tsp/internal/logbuf"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

const policyWarning = `"msg":"redis maxmemory-policy may evict sessions`

// memoryWatcher returns a watcher of rdb logging into logs, its collector
// registered in a registry of its own (which also checks the collector
// is consistent), and closed at cleanup.
func memoryWatcher(tb testing.TB, rdb *redisx.Client, logs *logbuf.Buffer) (*redisx.MemoryWatcher, *prometheus.Registry) {
	tb.Helper()
	w, err := redisx.NewMemoryWatcher(rdb, redisx.MemoryWatcherConfig{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(w.Close)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(w.Collector()); err != nil {
		tb.Fatalf("Register: %v", err)
	}
	return w, reg
}

// memorySeries gathers reg: the value of each series by name, and the
// addr labels of redisx_memory_used_bytes.
func memorySeries(tb testing.TB, reg *prometheus.Registry) (map[string]float64, []string) {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatalf("Gather: %v", err)
	}
	got, addrs := map[string]float64{}, []string(nil)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[f.GetName()] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[f.GetName()] += m.GetGauge().GetValue()
			}
			if f.GetName() == "redisx_memory_used_bytes" {
				for _, l := range m.GetLabel() {
					if l.GetName() == "addr" {
						addrs = append(addrs, l.GetValue())
					}
				}
			}
		}
	}
	slices.Sort(addrs)
	return got, addrs
}

func check(tb testing.TB, w *redisx.MemoryWatcher) {
	tb.Helper()
	if err := w.Check(context.Background()); err != nil {
		tb.Fatalf("Check: %v", err)
	}
}

// TestMemoryWatcherRiskyPolicyAndEvictions: under allkeys-lru the risky
// gauge is 1 and the warning is written once however many readings see
// the policy, again when the policy changes to another risky one, and not
// when it changes to a safe one; keys evicted between two readings are
// counted exactly as INFO's evicted_keys grew, and logged with the count.
func TestMemoryWatcherRiskyPolicyAndEvictions(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, "--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
	rdb := redistest.Connect(t, srv.Config(t))
	logs := &logbuf.Buffer{}
	w, reg := memoryWatcher(t, rdb, logs)
	ctx := context.Background()

	if e := redistest.InfoInt(t, rdb, "stats", "evicted_keys"); e != 0 {
		t.Fatalf("a fresh server has evicted %d keys", e)
	}
	check(t, w) // the baseline: evicted_keys 0, and nothing written since
	check(t, w)
	got, addrs := memorySeries(t, reg)
	if got["redisx_eviction_policy_risky"] != 1 {
		t.Errorf("redisx_eviction_policy_risky %v under allkeys-lru; want 1", got["redisx_eviction_policy_risky"])
	}
	if got["redisx_memory_max_bytes"] != 2<<20 || got["redisx_memory_used_bytes"] <= 0 || len(addrs) != 1 {
		t.Errorf("max %v, used %v bytes, addrs %v; want 2 MiB, > 0, one", got["redisx_memory_max_bytes"], got["redisx_memory_used_bytes"], addrs)
	}
	if n := strings.Count(logs.String(), policyWarning); n != 1 {
		t.Errorf("%d policy warnings over two readings; want 1:\n%s", n, logs.String())
	}
	if got["redisx_evicted_keys_total"] != 0 {
		t.Errorf("redisx_evicted_keys_total %v before any write; want 0", got["redisx_evicted_keys_total"])
	}

	// 6 MiB into 2 MiB: most of it is evicted.
	val := []byte(strings.Repeat("x", 64<<10))
	for i := range 96 {
		if err := rdb.Set(ctx, rdb.Keys().Join("fill", string(rune('a'+i%26)), string(rune('0'+i/26))), val, time.Hour); err != nil {
			t.Fatalf("Set %d: %v", i, err)
		}
	}
	// Redis may finish evicting in its cron after the last write: read
	// until INFO says the same before and after the watcher's reading.
	var evicted int64
	for {
		before := redistest.InfoInt(t, rdb, "stats", "evicted_keys")
		check(t, w)
		if evicted = redistest.InfoInt(t, rdb, "stats", "evicted_keys"); evicted == before {
			break
		}
	}
	got, _ = memorySeries(t, reg)
	if evicted == 0 || got["redisx_evicted_keys_total"] != float64(evicted) {
		t.Errorf("redisx_evicted_keys_total %v; want INFO's evicted_keys growth %d, > 0", got["redisx_evicted_keys_total"], evicted)
	}
	if n := strings.Count(logs.String(), `"msg":"redis evicted keys at maxmemory`); n != 1 {
		t.Errorf("%d eviction lines for one reading that found evictions; want 1:\n%s", n, logs.String())
	}
	if want := `"evicted":` + strconv.FormatInt(evicted, 10); !strings.Contains(logs.String(), want) {
		t.Errorf("no %s in the eviction line:\n%s", want, logs.String())
	}
	if n := strings.Count(logs.String(), policyWarning); n != 1 {
		t.Errorf("%d policy warnings after another reading; want still 1", n)
	}

	setPolicy := func(p string) {
		t.Helper()
		if err := rdb.Do(ctx, rdb.B().ConfigSet().ParameterValue().ParameterValue("maxmemory-policy", p).Build()).Error(); err != nil {
			t.Fatalf("CONFIG SET maxmemory-policy %s: %v", p, err)
		}
	}
	setPolicy("volatile-lru") // every key has a TTL: as risky
	check(t, w)
	if n := strings.Count(logs.String(), policyWarning); n != 2 || !strings.Contains(logs.String(), `volatile-lru@`) {
		t.Errorf("%d policy warnings after a change to volatile-lru; want 2, the second naming it:\n%s", n, logs.String())
	}
	for _, p := range []string{"volatile-ttl", "noeviction"} {
		setPolicy(p)
		check(t, w)
		if got, _ := memorySeries(t, reg); got["redisx_eviction_policy_risky"] != 0 {
			t.Errorf("redisx_eviction_policy_risky %v under %s; want 0", got["redisx_eviction_policy_risky"], p)
		}
	}
	if n := strings.Count(logs.String(), policyWarning); n != 2 {
		t.Errorf("%d policy warnings after changes to volatile-ttl and noeviction; want still 2", n)
	}
}

// TestMemoryWatcherNoEviction: a noeviction server is no risk and gets no
// warning, full or not.
func TestMemoryWatcherNoEviction(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, "--maxmemory", "64mb", "--maxmemory-policy", "noeviction")
	rdb := redistest.Connect(t, srv.Config(t))
	logs := &logbuf.Buffer{}
	w, reg := memoryWatcher(t, rdb, logs)
	check(t, w)
	redistest.FillUp(t, rdb)
	check(t, w)
	got, _ := memorySeries(t, reg)
	if got["redisx_eviction_policy_risky"] != 0 || got["redisx_evicted_keys_total"] != 0 {
		t.Errorf("risky %v, evicted %v under noeviction; want 0, 0", got["redisx_eviction_policy_risky"], got["redisx_evicted_keys_total"])
	}
	if used, limit := got["redisx_memory_used_bytes"], got["redisx_memory_max_bytes"]; used <= limit {
		t.Errorf("used %v <= max %v bytes on a full Redis; want above", used, limit)
	}
	if s := logs.String(); strings.Contains(s, `"level":"WARN"`) {
		t.Errorf("warnings under noeviction:\n%s", s)
	}
}

// TestMemoryWatcherReadsEveryMaster: one series per master of the shared
// topology (REDIS_TEST_TOPOLOGY), replicas left out.
func TestMemoryWatcherReadsEveryMaster(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	w, reg := memoryWatcher(t, rdb, &logbuf.Buffer{})
	check(t, w)
	_, addrs := memorySeries(t, reg)
	topo, err := redistest.Topology()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	switch topo {
	case redistest.TopologyCluster:
		for _, m := range redistest.SharedCluster(t).Masters(t) {
			want = append(want, m.Addr)
		}
	case redistest.TopologySentinel:
		want = []string{redistest.SharedSentinel(t).Master(t).Addr}
	default:
		want = slices.Collect(func(yield func(string) bool) {
			for a := range rdb.Nodes() {
				yield(a)
			}
		})
	}
	slices.Sort(want)
	if !slices.Equal(addrs, want) {
		t.Errorf("series for %v; want the masters %v", addrs, want)
	}
	// The load figures of each master: at least this client is connected.
	got, _ := memorySeries(t, reg)
	if got["redisx_connected_clients"] < float64(len(want)) {
		t.Errorf("redisx_connected_clients sums to %v over %d masters; want at least one client each", got["redisx_connected_clients"], len(want))
	}
	for _, name := range []string{"redisx_ops_per_second", "redisx_expired_keys_total"} {
		if _, ok := got[name]; !ok {
			t.Errorf("no %s series", name)
		}
	}
}

// TestMemoryWatcherStartClose: Start reads at once and Close stops it;
// both are safe to repeat, and Close without Start returns.
func TestMemoryWatcherStartClose(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	w, reg := memoryWatcher(t, rdb, &logbuf.Buffer{})
	w.Start()
	w.Start()
	for {
		if _, addrs := memorySeries(t, reg); len(addrs) > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.Close()
	w.Close()

	idle, _ := memoryWatcher(t, rdb, &logbuf.Buffer{})
	idle.Close()
	idle.Start() // after Close: does nothing
}

// TestNewMemoryWatcherRejects a nil client and a negative interval.
func TestNewMemoryWatcherRejects(t *testing.T) {
	t.Parallel()
	if _, err := redisx.NewMemoryWatcher(nil, redisx.MemoryWatcherConfig{}); err == nil {
		t.Error("nil Client: no error")
	}
	if _, err := redisx.NewMemoryWatcher(redistest.Client(t), redisx.MemoryWatcherConfig{Interval: -time.Second}); err == nil {
		t.Error("negative Interval: no error")
	}
}
