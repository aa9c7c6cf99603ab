package redisx

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// metrics holds the client's Prometheus figures. They live on the Client,
// not in package variables, so two clients never share counters; the
// caller registers them with Collector. Every labelled series is resolved
// once here, so the hot paths do an atomic add, never a label lookup.
type metrics struct {
	duration  prometheus.Histogram
	errors    *prometheus.CounterVec
	localHits prometheus.Counter
	cache     *prometheus.CounterVec
	oom       prometheus.Counter

	errNotConnected, errBreakerOpen, errCanceled, errTimeout, errConnection prometheus.Counter

	cacheHit, cacheMiss, cacheStale, cacheCoalesced, cacheFallback, cacheError, cacheOOM prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "redisx_command_duration_seconds",
			Help:    "Time from sending a command (or pipeline) to Redis to its reply.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redisx_errors_total",
			Help: "Calls that did not reach Redis or got no reply, by reason: not_connected, breaker_open, canceled, timeout, connection.",
		}, []string{"reason"}),
		localHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redisx_local_cache_hits_total",
			Help: "Reads answered by the client-side cache without a round trip.",
		}),
		oom: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redisx_oom_replies_total",
			Help: "Commands Redis refused with OOM: it reached maxmemory and could free nothing (noeviction, or no key it may evict).",
		}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redisx_cache_requests_total",
			Help: "Cache-aside lookups by outcome: hit, miss, stale, coalesced, fallback, error, out_of_memory (the loaded value could not be stored: Redis is full).",
		}, []string{"result"}),
	}
	e := m.errors.WithLabelValues
	m.errNotConnected, m.errBreakerOpen, m.errCanceled, m.errTimeout, m.errConnection =
		e("not_connected"), e("breaker_open"), e("canceled"), e("timeout"), e("connection")
	r := m.cache.WithLabelValues
	m.cacheHit, m.cacheMiss, m.cacheStale, m.cacheCoalesced, m.cacheFallback, m.cacheError, m.cacheOOM =
		r("hit"), r("miss"), r("stale"), r("coalesced"), r("fallback"), r("error"), r("out_of_memory")
	return m
}

// cacheFailed counts a cache-aside step that Redis answered with an error:
// out_of_memory when it was full, else error.
func (m *metrics) cacheFailed(err error) {
	if errors.Is(err, ErrOutOfMemory) {
		m.cacheOOM.Inc()
		return
	}
	m.cacheError.Inc()
}

// Collector returns the client's Prometheus collectors as one, for the
// caller to register: reg.MustRegister(rdb.Collector()). Call it once per
// registry. The series are:
//
//	redisx_round_trips_total                 counter: round trips (a pipeline counts once)
//	redisx_command_duration_seconds          histogram: latency of each round trip
//	redisx_errors_total{reason}              counter: not_connected, breaker_open, canceled, timeout, connection
//	redisx_breaker_state                     gauge: 0 closed, 1 half-open, 2 open (the worst breaker's: one per master in Cluster mode)
//	redisx_connected                         gauge: 1 while connected and no breaker is open
//	redisx_local_cache_hits_total            counter: client-side cache hits (no round trip)
//	redisx_cache_requests_total{result}      counter: Cache lookups: hit, miss, stale, coalesced, fallback, error, out_of_memory
//	redisx_oom_replies_total                 counter: commands Redis refused at maxmemory (OOM replies, ErrOutOfMemory)
func (c *Client) Collector() prometheus.Collector {
	rt := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "redisx_round_trips_total",
		Help: "Round trips to Redis (a pipeline counts once).",
	}, func() float64 { return float64(c.RoundTrips()) })
	up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "redisx_connected",
		Help: "1 while a connection to Redis exists and the circuit breaker is not open, else 0.",
	}, func() float64 {
		if c.Connected() && c.breakerState() != gobreaker.StateOpen {
			return 1
		}
		return 0
	})
	// Read from the breakers in use when scraped: the set changes with
	// the topology, and a dropped breaker must not count.
	breaker := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "redisx_breaker_state",
		Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open; in Cluster mode the worst of the per-master breakers.",
	}, func() float64 { return float64(c.breakerState()) })
	m := c.m
	return collectors{rt, up, m.duration, m.errors, breaker, m.localHits, m.cache, m.oom}
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
