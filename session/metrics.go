package session

import "github.com/prometheus/client_golang/prometheus"

// metrics are per Store, never package variables; the caller registers
// them with Collector. No label ever carries a token, a user or an id.
type metrics struct {
	created prometheus.Counter
	lookups *prometheus.CounterVec
	touches prometheus.Counter
	// touchRefused counts touches Redis refused with OOM; the session was
	// served untouched.
	touchRefused prometheus.Counter
	rotations    prometheus.Counter
	revoked      *prometheus.CounterVec
}

// reasonPerUserCap is the revocation reason of a session ended because its
// user signed in once more with Config.MaxPerUser sessions already live. It
// is not Redis eviction (maxmemory), which this package cannot see: a
// session Redis evicts simply stops being found.
const reasonPerUserCap = "per_user_cap"

func newMetrics() *metrics {
	m := &metrics{
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "session_created_total",
			Help: "Sessions created (sign-ins).",
		}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "session_lookups_total",
			Help: "Session lookups by result: ok, not_found (unknown, expired, revoked), malformed (never sent to Redis), unavailable, out_of_memory (Redis full), error.",
		}, []string{"result"}),
		touches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "session_touch_writes_total",
			Help: "Lookups that moved the idle expiry (at most one per session per touch interval).",
		}),
		touchRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "session_touch_refusals_total",
			Help: "Touches Redis refused because it was full (OOM): the session was served without moving its idle expiry.",
		}),
		rotations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "session_rotations_total",
			Help: "Sessions moved to a new token.",
		}),
		revoked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "session_revocations_total",
			Help: "Sessions ended before their time, by reason: delete (logout), delete_all, delete_by_id, per_user_cap (the user's oldest-idle session ended to make room under Config.MaxPerUser; not Redis eviction).",
		}, []string{"reason"}),
	}
	// Every series exists from the start, so rates work before the first event.
	for _, r := range []string{"ok", "not_found", "malformed", "unavailable", "out_of_memory", "error"} {
		m.lookups.WithLabelValues(r)
	}
	for _, r := range []string{"delete", "delete_all", "delete_by_id", reasonPerUserCap} {
		m.revoked.WithLabelValues(r)
	}
	return m
}

// Collector returns the store's Prometheus metrics as one collector, for
// the caller to register: reg.MustRegister(store.Collector()).
func (s *Store) Collector() prometheus.Collector {
	m := s.metrics
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "session_active",
		Help: "Distinct sessions this instance found (successful lookups) in the last complete 5-minute window; a lower bound past 100,000. A session used on two instances counts on both.",
	}, func() float64 { return float64(s.active.count()) })
	return collectors{m.created, m.lookups, m.touches, m.touchRefused, m.rotations, m.revoked, active}
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
