package ratelimit

import "github.com/prometheus/client_golang/prometheus"

// metrics are a Limiter's Prometheus figures, labelled with its name. They
// live on the Limiter (no global registry); the caller registers
// Collector().
type metrics struct {
	decisions   *prometheus.CounterVec
	byOutcome   [len(sourceNames)][2]prometheus.Counter // resolved once: no lookup per request
	redisErrors *prometheus.CounterVec
	refunds     prometheus.Counter
	never       prometheus.Counter
	dryRun      prometheus.Counter
	// Leasing (Config.Lease).
	leaseRequests   prometheus.Counter
	leaseUnits      *prometheus.CounterVec
	leaseGranted    prometheus.Counter
	leaseReturned   prometheus.Counter
	leaseUnreturned prometheus.Counter
}

func newMetrics(name string) *metrics {
	labels := prometheus.Labels{"limiter": name}
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "ratelimit_decisions_total",
			Help:        "Rate-limit decisions by source (redis, lease, blocked, fallback, fail_open, fail_closed, off) and outcome.",
			ConstLabels: labels,
		}, []string{"source", "outcome"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "ratelimit_redis_errors_total",
			Help:        "Decisions and refunds Redis did not make, by reason: unavailable (down, slow, breaker open), out_of_memory (Redis full refused the script), error (any other reply), refund.",
			ConstLabels: labels,
		}, []string{"reason"}),
		refunds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ratelimit_refunds_total", Help: "Charges given back (skip successful / skip failed).", ConstLabels: labels,
		}),
		never: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ratelimit_cost_over_limit_total", Help: "Requests refused because their cost exceeds a limit.", ConstLabels: labels,
		}),
		dryRun: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ratelimit_dry_run_refusals_total", Help: "Requests a dry-run limiter would have refused.", ConstLabels: labels,
		}),
	}
	// Every reason exists from the start, so rates and alerts work before
	// the first failure.
	for _, r := range []string{"unavailable", "out_of_memory", "error", "refund"} {
		m.redisErrors.WithLabelValues(r)
	}
	m.leaseRequests = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ratelimit_lease_requests_total", Help: "Decisions of a hot key that also asked Redis for a lease.", ConstLabels: labels,
	})
	m.leaseUnits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "ratelimit_lease_units_total",
		Help:        "Leased units: granted by Redis, returned unspent, or not returned because Redis did not answer (they stay counted until their bucket leaves the window).",
		ConstLabels: labels,
	}, []string{"event"})
	m.leaseGranted = m.leaseUnits.WithLabelValues("granted")
	m.leaseReturned = m.leaseUnits.WithLabelValues("returned")
	m.leaseUnreturned = m.leaseUnits.WithLabelValues("unreturned")
	for s := range sourceNames {
		m.byOutcome[s][0] = m.decisions.WithLabelValues(sourceNames[s], "limited")
		m.byOutcome[s][1] = m.decisions.WithLabelValues(sourceNames[s], "allowed")
	}
	return m
}

func (m *metrics) inc(s Source, allowed bool) {
	i := 0
	if allowed {
		i = 1
	}
	m.byOutcome[s][i].Inc()
}

// Collector returns the limiter's Prometheus collectors as one, for the
// caller to register: reg.MustRegister(lim.Collector()). Limiters with
// different names may be registered side by side.
func (l *Limiter) Collector() prometheus.Collector {
	m := l.metrics
	return collectors{m.decisions, m.redisErrors, m.refunds, m.never, m.dryRun, m.leaseRequests, m.leaseUnits}
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
