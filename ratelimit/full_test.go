package ratelimit_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/theaterscriptpro/tsp/internal/logbuf"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/ratelimit"
)

// TestFullRedis: a Redis at maxmemory under noeviction refuses the
// sliding-window and GCRA scripts (their first write) with OOM. The
// limiter then follows its FailurePolicy as when Redis is away, but names
// the cause: ratelimit_redis_errors_total{reason="out_of_memory"} and the
// log line "rate limiter: redis out of memory", not "could not reach
// redis" (Redis answered).
func TestFullRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, "--maxmemory-policy", "noeviction")
	rdb := redistest.Connect(t, redistest.At(redistest.Config(t), srv.Addr))
	var logs logbuf.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	var lims []*ratelimit.Limiter
	for _, a := range []ratelimit.Algorithm{ratelimit.SlidingWindow, ratelimit.GCRA} {
		l := newLimiter(t, rdb, ratelimit.Config{Name: a.String(), Algorithm: a, Logger: log,
			Rate: ratelimit.Rate{Limit: 5, Window: time.Minute}, FailurePolicy: ratelimit.LocalFallback})
		allow(t, l, "before", 1) // its script is loaded, as on a Redis that has been running
		lims = append(lims, l)
	}
	redistest.FillUp(t, rdb)
	for _, l := range lims {
		for _, key := range []string{"before", "new"} {
			if d := allow(t, l, key, 1); d.Source != ratelimit.SourceFallback || !d.Allowed {
				t.Errorf("%v on a full Redis: source %v, allowed %v; want the local fallback's admission", key, d.Source, d.Allowed)
			}
		}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(l.Collector())
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "ratelimit_redis_errors_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "reason" {
						got[lp.GetValue()] = m.GetCounter().GetValue()
					}
				}
			}
		}
		want := map[string]float64{"out_of_memory": 2, "unavailable": 0, "error": 0, "refund": 0}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("ratelimit_redis_errors_total by reason %v; want %v", got, want)
				break
			}
		}
	}
	if n := strings.Count(logs.String(), `"msg":"rate limiter: redis out of memory"`); n != 4 {
		t.Errorf("%d \"rate limiter: redis out of memory\" lines; want 4, one per decision:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "could not reach redis") {
		t.Errorf("the log says Redis could not be reached; it answered, full:\n%s", logs.String())
	}
}
