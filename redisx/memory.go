package redisx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Redis evicts keys without telling its clients: under allkeys-lru a full
// Redis signs users out one by one and every reply still looks normal. The
// MemoryWatcher reads what only Redis knows (INFO) and turns it into
// metrics and log lines, so a deployment sees evictions, a policy that
// evicts sessions, and memory close to maxmemory before users do.

// MemoryWatcherConfig configures NewMemoryWatcher.
type MemoryWatcherConfig struct {
	// Interval is how often Redis's memory figures are read, after a first
	// reading at Start. The default is one minute: the figures move with
	// traffic over minutes, and the alerts on them look at minutes.
	Interval time.Duration

	// Logger gets the policy warning and one line per reading that found
	// evictions. The default is the Client's Config.Logger.
	Logger *slog.Logger
}

// MemoryWatcher reads maxmemory, maxmemory_policy, used_memory and
// evicted_keys from INFO on every master the Client is connected to (the
// standalone server, Sentinel's current master, each Cluster master), at
// Start and then every Interval, and exposes them with Collector:
//
//	redisx_memory_used_bytes{addr}     gauge: used_memory of each master
//	redisx_memory_max_bytes{addr}      gauge: maxmemory of each master (0: no limit)
//	redisx_evicted_keys_total          counter: keys the masters evicted while watched
//	redisx_eviction_policy_risky       gauge: 1 while a master with a maxmemory may evict sessions
//	redisx_expired_keys_total{addr}    counter: INFO expired_keys of each master (since its start)
//	redisx_ops_per_second{addr}        gauge: INFO instantaneous_ops_per_sec of each master
//	redisx_connected_clients{addr}     gauge: INFO connected_clients of each master
//
// A policy may evict sessions (and limiter windows) when it is allkeys-*
// (any key), or volatile-lru, volatile-lfu or volatile-random: they evict
// keys with a TTL, and every key the toolkit writes has one. volatile-ttl,
// the policy docs/production.md recommends, evicts the keys nearest their
// expiry first: cache entries (minutes) and limiter windows (a minute) go
// long before sessions (a 24 h idle timeout), so it is not counted as
// risky; its evictions still show in redisx_evicted_keys_total and the
// log. noeviction never evicts (writes fail with ErrOutOfMemory instead).
// Without a maxmemory Redis evicts nothing, whatever the policy.
//
// The watcher logs one warning per change of the risky policies seen, not
// per reading, and one line per reading that found evictions, with their
// count. The commands bypass Do's breaker and metrics, as Nodes does; the
// Redis user needs the INFO command.
type MemoryWatcher struct {
	c   *Client
	cfg MemoryWatcherConfig

	evicted           prometheus.Counter
	usedDesc, maxDesc *prometheus.Desc
	riskyDesc         *prometheus.Desc
	expiredDesc       *prometheus.Desc
	opsDesc           *prometheus.Desc
	clientsDesc       *prometheus.Desc

	checking sync.Mutex            // held through a whole Check: readings apply in order
	mu       sync.Mutex            // guards what follows, for Check and Collect
	nodes    map[string]nodeMemory // the last reading of each master, by address
	baseline map[string]int64      // evicted_keys at the last reading, by address
	warned   string                // the risky policies last warned about ("" none)
	failing  bool                  // the last Check failed (logged once)

	startOnce, closeOnce sync.Once
	stop                 chan struct{}
	done                 chan struct{}
}

// nodeMemory is what one INFO reading says.
type nodeMemory struct {
	used, max, evicted int64
	policy             string
	replica            bool
	traffic            *nodeTraffic // nil when INFO lacks the fields (an older or trimmed INFO)
}

// nodeTraffic is INFO's load figures, shown beside the memory ones.
type nodeTraffic struct{ expired, opsPerSec, clients int64 }

// NewMemoryWatcher returns a watcher of c's Redis memory; it reads nothing
// until Start or Check.
func NewMemoryWatcher(c *Client, cfg MemoryWatcherConfig) (*MemoryWatcher, error) {
	switch {
	case c == nil:
		return nil, fmt.Errorf("%w: MemoryWatcher needs a Client", ErrInvalidConfig)
	case cfg.Interval < 0:
		return nil, fmt.Errorf("%w: MemoryWatcherConfig.Interval must not be negative, got %s", ErrInvalidConfig, cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = c.cfg.Logger
	}
	return &MemoryWatcher{
		c:   c,
		cfg: cfg,
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redisx_evicted_keys_total",
			Help: "Keys the Redis masters evicted at maxmemory while watched (growth of INFO evicted_keys; a restart's count is added as it is).",
		}),
		usedDesc: prometheus.NewDesc("redisx_memory_used_bytes",
			"INFO used_memory of each Redis master at the last reading.", []string{"addr"}, nil),
		maxDesc: prometheus.NewDesc("redisx_memory_max_bytes",
			"INFO maxmemory of each Redis master at the last reading (0: no limit).", []string{"addr"}, nil),
		expiredDesc: prometheus.NewDesc("redisx_expired_keys_total",
			"INFO expired_keys of each Redis master: keys removed at their TTL since the master started.", []string{"addr"}, nil),
		opsDesc: prometheus.NewDesc("redisx_ops_per_second",
			"INFO instantaneous_ops_per_sec of each Redis master at the last reading.", []string{"addr"}, nil),
		clientsDesc: prometheus.NewDesc("redisx_connected_clients",
			"INFO connected_clients of each Redis master at the last reading: every instance's connections and the operators'.", []string{"addr"}, nil),
		riskyDesc: prometheus.NewDesc("redisx_eviction_policy_risky",
			"1 while a Redis master with a maxmemory runs a policy that may evict sessions and limiter keys (allkeys-*, volatile-lru, volatile-lfu, volatile-random), else 0.", nil, nil),
		nodes:    map[string]nodeMemory{},
		baseline: map[string]int64{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}, nil
}

// Start reads once in the background, then every Interval until Close.
// Calling it again does nothing.
func (w *MemoryWatcher) Start() {
	w.startOnce.Do(func() { go w.run() })
}

func (w *MemoryWatcher) run() {
	defer close(w.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-w.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		_ = w.Check(ctx) // its failures are logged by Check
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

// Close stops the background readings and waits for the one under way.
// It is safe to call more than once, and without Start.
func (w *MemoryWatcher) Close() {
	w.closeOnce.Do(func() {
		close(w.stop)
		started := true
		w.startOnce.Do(func() { started = false }) // no Start after Close
		if started {
			<-w.done
		}
	})
}

// Check reads every master once, updates the metrics and logs as described
// on MemoryWatcher, and returns what failed (the masters that answered are
// counted anyway). Start calls it; tests call it directly.
func (w *MemoryWatcher) Check(ctx context.Context) error {
	// One reading at a time: two applied out of order would take the older
	// evicted_keys for a restart and count its evictions again.
	w.checking.Lock()
	defer w.checking.Unlock()
	nodes := w.c.Nodes()
	if nodes == nil {
		return w.failed(w.c.notConnected())
	}
	addrs := slices.Sorted(maps.Keys(nodes))
	read := make(map[string]nodeMemory, len(addrs))
	var errs []error
	for _, a := range addrs {
		n := nodes[a]
		cctx, cancel := w.c.deadline(ctx)
		// One command per section: INFO with several sections needs
		// Redis 7.
		res := n.DoMulti(cctx,
			n.B().Info().Section("memory").Build(),
			n.B().Info().Section("stats").Build(),
			n.B().Info().Section("replication").Build(),
			n.B().Info().Section("clients").Build())
		cancel()
		var text strings.Builder
		var err error
		for _, r := range res {
			s, e := r.ToString()
			if e != nil {
				err = e
				break
			}
			text.WriteString(s)
			text.WriteString("\n")
		}
		if err == nil {
			var m nodeMemory
			if m, err = memoryFromInfo(parseInfo(text.String())); err == nil {
				read[a] = m
				continue
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", a, err))
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	var evicted int64
	evictedBy := map[string]int64{}
	for a, m := range read {
		if m.replica {
			// A replica's figures are its master's doing; a promoted
			// one is read from its first reading as master on.
			delete(w.nodes, a)
			delete(w.baseline, a)
			continue
		}
		if last, ok := w.baseline[a]; ok {
			if d := evictedSince(last, m.evicted); d > 0 {
				evicted += d
				evictedBy[a] = d
			}
		}
		w.baseline[a] = m.evicted
		w.nodes[a] = m
	}
	for a := range w.nodes {
		if _, ok := nodes[a]; !ok { // gone from the topology: its series go too
			delete(w.nodes, a)
			delete(w.baseline, a)
		}
	}
	if evicted > 0 {
		w.evicted.Add(float64(evicted))
		w.cfg.Logger.Warn("redis evicted keys at maxmemory: raise maxmemory (docs/production.md, memory sizing)",
			"evicted", evicted, "by_node", evictedBy, "policy", w.policiesLocked())
	}
	if risky := w.riskyLocked(); risky != w.warned {
		w.warned = risky
		if risky != "" {
			w.cfg.Logger.Warn("redis maxmemory-policy may evict sessions and limiter keys, signing users out: use volatile-ttl (docs/production.md, eviction policy)",
				"policy", risky)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return w.failedLocked(err)
	}
	w.failing = false
	return nil
}

func (w *MemoryWatcher) failed(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failedLocked(err)
}

// failedLocked logs the first of a run of failed readings: a Redis that is
// down is reported by the Client already, but a reply the watcher cannot
// read (an ACL without INFO) would otherwise leave the metrics silent.
func (w *MemoryWatcher) failedLocked(err error) error {
	if !w.failing {
		w.failing = true
		w.cfg.Logger.Warn("redis memory watcher: reading INFO failed; memory and eviction metrics are stale", "error", err.Error())
	}
	return fmt.Errorf("redisx: memory watcher: %w", err)
}

// riskyLocked names the risky policies of the masters, with their
// addresses, sorted: "" when there are none.
func (w *MemoryWatcher) riskyLocked() string {
	var out []string
	for a, m := range w.nodes {
		if m.max > 0 && PolicyMayEvictSessions(m.policy) {
			out = append(out, m.policy+"@"+a)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// policiesLocked lists the masters' policies, for the eviction line.
func (w *MemoryWatcher) policiesLocked() []string {
	var out []string
	for _, m := range w.nodes {
		if !slices.Contains(out, m.policy) {
			out = append(out, m.policy)
		}
	}
	slices.Sort(out)
	return out
}

// evictedSince is how many keys a node evicted between two readings of its
// evicted_keys. A smaller reading means the node restarted (the count
// begins again at zero), so all of it is new.
func evictedSince(last, now int64) int64 {
	if now < last {
		return now
	}
	return now - last
}

// PolicyMayEvictSessions reports whether Redis under maxmemory-policy p
// may evict sessions and limiter keys before what can be rebuilt: true for
// allkeys-* and volatile-lru, volatile-lfu and volatile-random (every key
// the toolkit writes has a TTL, so volatile-* policies reach all of them),
// and for a policy it does not know; false for noeviction and
// volatile-ttl, which evicts the shortest-lived keys (cache entries,
// limiter windows) long before sessions.
func PolicyMayEvictSessions(p string) bool {
	switch p {
	case "noeviction", "volatile-ttl":
		return false
	}
	return true
}

// Collector returns the watcher's Prometheus series (listed on
// MemoryWatcher) as one collector, for the caller to register.
func (w *MemoryWatcher) Collector() prometheus.Collector { return memoryCollector{w} }

type memoryCollector struct{ w *MemoryWatcher }

func (mc memoryCollector) Describe(ch chan<- *prometheus.Desc) {
	w := mc.w
	w.evicted.Describe(ch)
	ch <- w.usedDesc
	ch <- w.maxDesc
	ch <- w.riskyDesc
	ch <- w.expiredDesc
	ch <- w.opsDesc
	ch <- w.clientsDesc
}

// Collect reports the last reading: one series per master it found, so
// the addr label is bounded by the masters and a node gone from the
// topology leaves no stale series.
func (mc memoryCollector) Collect(ch chan<- prometheus.Metric) {
	w := mc.w
	w.evicted.Collect(ch)
	w.mu.Lock()
	defer w.mu.Unlock()
	for a, m := range w.nodes {
		ch <- prometheus.MustNewConstMetric(w.usedDesc, prometheus.GaugeValue, float64(m.used), a)
		ch <- prometheus.MustNewConstMetric(w.maxDesc, prometheus.GaugeValue, float64(m.max), a)
		if t := m.traffic; t != nil {
			ch <- prometheus.MustNewConstMetric(w.expiredDesc, prometheus.CounterValue, float64(t.expired), a)
			ch <- prometheus.MustNewConstMetric(w.opsDesc, prometheus.GaugeValue, float64(t.opsPerSec), a)
			ch <- prometheus.MustNewConstMetric(w.clientsDesc, prometheus.GaugeValue, float64(t.clients), a)
		}
	}
	risky := 0.0
	if w.riskyLocked() != "" {
		risky = 1
	}
	ch <- prometheus.MustNewConstMetric(w.riskyDesc, prometheus.GaugeValue, risky)
}

// parseInfo reads an INFO reply: "field:value" lines, "# Section" headers
// and blank lines, with CRLF or LF endings. A line without a colon is
// skipped; a repeated field keeps its last value. A RESP3 verbatim
// string's "txt:" format prefix, if the client left it, is dropped.
func parseInfo(s string) map[string]string {
	s = strings.TrimPrefix(s, "txt:")
	out := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" {
			continue
		}
		out[k] = v
	}
	return out
}

// memoryFromInfo takes the watcher's figures from parsed INFO fields,
// failing on a missing or unreadable one rather than reporting a zero.
func memoryFromInfo(f map[string]string) (nodeMemory, error) {
	var m nodeMemory
	var errs []error
	num := func(name string) int64 {
		v, ok := f[name]
		if !ok {
			errs = append(errs, fmt.Errorf("INFO has no %s", name))
			return 0
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("INFO %s %q is not a byte or key count", name, truncate(v, 32)))
			return 0
		}
		return n
	}
	m.used, m.max, m.evicted = num("used_memory"), num("maxmemory"), num("evicted_keys")
	// The load figures are shown when INFO has all three; one that is
	// there but unreadable is an error like the others.
	_, e := f["expired_keys"]
	_, o := f["instantaneous_ops_per_sec"]
	_, c := f["connected_clients"]
	if e && o && c {
		m.traffic = &nodeTraffic{num("expired_keys"), num("instantaneous_ops_per_sec"), num("connected_clients")}
	}
	m.policy = strings.TrimSpace(f["maxmemory_policy"])
	if m.policy == "" {
		errs = append(errs, errors.New("INFO has no maxmemory_policy"))
	} else if len(m.policy) > 32 {
		errs = append(errs, fmt.Errorf("INFO maxmemory_policy %q is not a policy", truncate(m.policy, 32)))
	}
	// Without a role (a reply cut short) the node is taken for a master:
	// its figures are shown rather than hidden.
	m.replica = strings.TrimSpace(f["role"]) == "slave"
	return m, errors.Join(errs...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
