package redisx

import "github.com/prometheus/client_golang/prometheus"

// metrics holds the client's Prometheus figures. They live on the Client,
// not in package variables, so two clients never share counters; the
// caller registers them with Collector.
type metrics struct {
	duration     prometheus.Histogram
	errors       *prometheus.CounterVec
	breakerState prometheus.Gauge
	localHits    prometheus.Counter
	cache        *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "redisx_command_duration_seconds",
			Help:    "Time from sending a command (or pipeline) to Redis to its reply.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redisx_errors_total",
			Help: "Calls that did not reach Redis or got no reply, by reason.",
		}, []string{"reason"}),
		breakerState: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "redisx_breaker_state",
			Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}),
		localHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redisx_local_cache_hits_total",
			Help: "Reads answered by the client-side cache without a round trip.",
		}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redisx_cache_requests_total",
			Help: "Cache-aside lookups by outcome: hit, miss, stale, coalesced, fallback, error.",
		}, []string{"result"}),
	}
}

// Collector returns the client's Prometheus collectors as one, for the
// caller to register: reg.MustRegister(rdb.Collector()).
func (c *Client) Collector() prometheus.Collector {
	rt := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "redisx_round_trips_total",
		Help: "Round trips to Redis (a pipeline counts once).",
	}, func() float64 { return float64(c.RoundTrips()) })
	m := c.metrics
	return collectors{rt, m.duration, m.errors, m.breakerState, m.localHits, m.cache}
}

// collectors makes several collectors register as one.
type collectors []prometheus.Collector

func (cs collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

func (cs collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}
