package httpcache

import "github.com/prometheus/client_golang/prometheus"

// metrics are the Cache's Prometheus figures. They live on the Cache, not
// in package variables; the caller registers Collector().
type metrics struct {
	requests  *prometheus.CounterVec
	stores    *prometheus.CounterVec
	notStored *prometheus.CounterVec
	purges    prometheus.Counter
	purged    prometheus.Counter
	raced     prometheus.Counter
	errors    *prometheus.CounterVec
	// lookupErrors and corrupt are errors' children on the hit path,
	// resolved once so a lookup never looks a label up.
	lookupErrors, corrupt prometheus.Counter
	// storeOOM is errors' store_out_of_memory: a store Redis refused
	// because it is full.
	storeOOM prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "httpcache_requests_total",
			Help: "Cacheable requests by route and result: hit, miss, stale, bypass, coalesced (waited for another request's response).",
		}, []string{"route", "result"}),
		stores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "httpcache_stores_total",
			Help: "Responses stored, by route.",
		}, []string{"route"}),
		notStored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "httpcache_not_stored_total",
			Help: "Responses the safe defaults kept out of the cache, by route and rule.",
		}, []string{"route", "reason"}),
		purges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "httpcache_purges_total",
			Help: "Tags and glob patterns purged.",
		}),
		purged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "httpcache_purged_entries_total",
			Help: "Entries deleted by purges.",
		}),
		raced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "httpcache_store_raced_total",
			Help: "Stores undone because a purge ran while their handler did.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "httpcache_errors_total",
			Help: "Failures by operation: lookup, store, store_out_of_memory (Redis full refused the store; the response was served, not kept), corrupt (an unreadable entry), purge_retry, pattern (matches no namespace), refresh_panic.",
		}, []string{"op"}),
	}
	m.lookupErrors = m.errors.WithLabelValues("lookup")
	m.corrupt = m.errors.WithLabelValues("corrupt")
	m.storeOOM = m.errors.WithLabelValues("store_out_of_memory")
	m.errors.WithLabelValues("store")
	return m
}

// routeMetrics are one route's counters, resolved once so the hot path
// only adds.
type routeMetrics struct {
	hit, miss, stale, bypass, coalesced, stores prometheus.Counter
	notStoredVec                                *prometheus.CounterVec
	name                                        string
}

func (m *metrics) route(name string) routeMetrics {
	return routeMetrics{
		hit:          m.requests.WithLabelValues(name, "hit"),
		miss:         m.requests.WithLabelValues(name, "miss"),
		stale:        m.requests.WithLabelValues(name, "stale"),
		bypass:       m.requests.WithLabelValues(name, "bypass"),
		coalesced:    m.requests.WithLabelValues(name, "coalesced"),
		stores:       m.stores.WithLabelValues(name),
		notStoredVec: m.notStored,
		name:         name,
	}
}

func (rm routeMetrics) notStored(reason string) {
	rm.notStoredVec.WithLabelValues(rm.name, reason).Inc()
}

// Collector returns the Cache's metrics as one collector, for the caller
// to register: reg.MustRegister(cache.Collector()).
func (c *Cache) Collector() prometheus.Collector {
	m := c.m
	return collectors{m.requests, m.stores, m.notStored, m.purges, m.purged, m.raced, m.errors}
}

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
