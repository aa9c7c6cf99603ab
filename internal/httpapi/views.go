package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/theaterscriptpro/tsp/redisx"
)

// ViewsTTL is the lifetime of a view counter, views:script:{id}, from its
// first count (the original guide's redisService.incr(key, 86400)).
const ViewsTTL = 24 * time.Hour

// maxPendingViews bounds the ids a flush may carry: a flood of reads of many
// scripts while Redis is down must not grow memory without end. Counts for
// ids beyond it are dropped and counted.
const maxPendingViews = 100_000

// minFlushTimeout is the least time a flush gets, however short the
// interval: a flush that times out puts its counts back although Redis may
// have taken them (counted twice), so its deadline must be one that only a
// Redis in trouble misses. The ticker drops ticks while a flush runs.
const minFlushTimeout = time.Second

// flushChunk is how many counters go in one pipeline.
const flushChunk = 1000

// incrViews adds ARGV[1] to the counter and gives it its TTL on its first
// count, in one atomic step, so no counter lives without a TTL.
var incrViews = redisx.NewScript(`
-- Count the views.
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
-- A new counter (no TTL yet) starts its 24 h lifetime now.
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v`)

// viewCounter counts successful script reads in memory and sends the sums
// to Redis every interval in one pipeline, so a read, cache hits included,
// costs no Redis round trip of its own. API.md allows counts to lag by 1 s.
type viewCounter struct {
	rdb      *redisx.Client
	keys     domainKeys
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	pending map[string]int64
	// flushing is held (written) through a whole flush, from taking the
	// pending counts to Redis's answer; views reads under it, so it never
	// reads Redis before a flush lands and pending after that flush took
	// them, while stats reads run side by side.
	flushing sync.RWMutex

	stop chan struct{}
	done chan struct{}
	once sync.Once

	flushed prometheus.Counter
	dropped prometheus.Counter
	failed  prometheus.Counter
}

func newViewCounter(rdb *redisx.Client, interval time.Duration, log *slog.Logger) *viewCounter {
	v := &viewCounter{
		rdb: rdb, keys: domainKeys{rdb.Keys()}, log: log, interval: interval,
		pending: make(map[string]int64),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		flushed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "script_views_flushed_total",
			Help: "Script views sent to Redis.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "script_views_dropped_total",
			Help: "Script views not counted because too many ids were waiting for Redis.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "script_view_flush_failures_total",
			Help: "Flushes of view counts that Redis did not take; their counts are kept for the next one.",
		}),
	}
	go v.loop()
	return v
}

func (v *viewCounter) collectors() []prometheus.Collector {
	return []prometheus.Collector{v.flushed, v.dropped, v.failed}
}

// add counts one view of script id.
func (v *viewCounter) add(id string) { v.addN(id, 1) }

func (v *viewCounter) addN(id string, n int64) {
	v.mu.Lock()
	if _, ok := v.pending[id]; !ok && len(v.pending) >= maxPendingViews {
		v.mu.Unlock()
		v.dropped.Add(float64(n))
		return
	}
	v.pending[id] += n
	v.mu.Unlock()
}

// views returns the views of script id: Redis's counter (0 when there is
// none) plus what this instance counted and has not flushed, so
// its own reads show in its stats at once. The counter is read from Redis,
// not from the local tier, and never while a flush is between taking the
// pending counts and Redis's answer, either of which would miss a flush's
// counts.
func (v *viewCounter) views(ctx context.Context, id string) (int64, error) {
	v.flushing.RLock()
	defer v.flushing.RUnlock()
	n, err := v.rdb.Do(ctx, v.rdb.B().Get().Key(v.keys.ScriptViews(id)).Build()).AsInt64()
	if rueidis.IsRedisNil(err) {
		n, err = 0, nil
	}
	if err != nil {
		return 0, err
	}
	v.mu.Lock()
	n += v.pending[id]
	v.mu.Unlock()
	return n, nil
}

func (v *viewCounter) loop() {
	defer close(v.done)
	t := time.NewTicker(v.interval)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), max(v.interval, minFlushTimeout))
			v.flush(ctx)
			cancel()
		}
	}
}

// flush sends every pending count. Counts Redis did not take are put back
// for the next flush: a view is counted at least once, and a reply lost in
// a broken connection may count it twice, which a view counter can afford.
func (v *viewCounter) flush(ctx context.Context) {
	v.flushing.Lock()
	defer v.flushing.Unlock()
	v.mu.Lock()
	if len(v.pending) == 0 {
		v.mu.Unlock()
		return
	}
	batch := v.pending
	v.pending = make(map[string]int64, len(batch))
	v.mu.Unlock()

	ids := make([]string, 0, min(len(batch), flushChunk))
	cmds := make([]rueidis.Completed, 0, min(len(batch), flushChunk))
	ttl := strconv.FormatInt(ViewsTTL.Milliseconds(), 10)
	var ranked []string
	var totals []int64
	send := func() {
		res := v.rdb.DoMulti(ctx, cmds...)
		ranked, totals = ranked[:0], totals[:0]
		for i, r := range res {
			key := v.keys.ScriptViews(ids[i])
			r = incrViews.Retry(ctx, v.rdb, r, []string{key}, []string{strconv.FormatInt(batch[ids[i]], 10), ttl})
			total, err := r.AsInt64()
			if err != nil {
				v.failed.Inc()
				v.addN(ids[i], batch[ids[i]])
				continue
			}
			v.flushed.Add(float64(batch[ids[i]]))
			ranked, totals = append(ranked, ids[i]), append(totals, total)
		}
		rankViews(ctx, v.rdb, ranked, totals) // for cache warming (warm.go)
		ids, cmds = ids[:0], cmds[:0]
	}
	for id, n := range batch {
		key := v.keys.ScriptViews(id)
		ids = append(ids, id)
		cmds = append(cmds, incrViews.EvalSha([]string{key}, []string{strconv.FormatInt(n, 10), ttl}))
		if len(cmds) == flushChunk {
			send()
		}
	}
	if len(cmds) > 0 {
		send()
	}
}

// close stops the loop and makes a last flush within ctx.
func (v *viewCounter) close(ctx context.Context) error {
	v.once.Do(func() {
		close(v.stop)
		<-v.done
		v.flush(ctx)
	})
	return ctx.Err()
}

// forget drops the pending views of a deleted script.
func (v *viewCounter) forget(id string) {
	v.mu.Lock()
	delete(v.pending, id)
	v.mu.Unlock()
}

// countView counts a GET of a script that answered 200 or 304 (a read all
// the same), whoever served it: the handler or the response cache.
func (s *Server) countView(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw, ok := w.(*statusWriter)
		if !ok {
			sw = &statusWriter{ResponseWriter: w}
		}
		before := sw.status
		next.ServeHTTP(sw, r)
		if before == 0 && (sw.status == http.StatusOK || sw.status == http.StatusNotModified || sw.status == 0) {
			s.views.add(r.PathValue("id"))
		}
	})
}
