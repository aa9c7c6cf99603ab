package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/theaterscriptpro/tsp/httpcache"
	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/redisx"
)

// Cache warming (CACHE_WARM, the original guide's best practice 4). After
// a start or a purge of the catalogue every instance's first readers would
// all miss; instead one instance refills the hottest entries in the
// background: the first warmPages catalogue pages, then the most-viewed
// scripts, Deps.CacheWarm entries at most, warmWorkers at a time, through
// the routes' own cache middleware (so a warmed entry is exactly what a
// reader's miss would have stored, under the same lease and epoch rules).
//
// One instance per generation: the catalogue's purge epoch names the
// generation of list entries, and the instance whose SET NX of
// warm:{epoch} succeeds warms it; the key lives as long as a list entry,
// so no other instance warms the same generation again. An instance that
// dies mid-warm leaves that generation cold, which costs what no warming
// costs. Warming never delays a request or readiness: it runs on its own
// goroutine, at most once per warmEvery per instance however often
// writes purge, and a request that needs an entry being warmed joins it
// as it would join any other miss.
//
// Refresh-ahead: after a create or an update, the writer refills that
// script's entry itself before answering (bounded by refreshTimeout), so
// the next reader on any instance gets a HIT.

const (
	warmPages      = 3           // the first catalogue pages, as clients ask for them
	warmWorkers    = 2           // concurrent refills, so warming never crowds out requests
	warmEvery      = time.Second // at most one warm per instance per this
	warmTimeout    = time.Minute // bound on one warm
	refreshTimeout = 500 * time.Millisecond
	// maxTopViews bounds the ranking of viewed scripts (views:top) that
	// warming reads; config.MaxCacheWarm is at most this.
	maxTopViews = 1000
)

// warmer is the background warming of one Server.
type warmer struct {
	s      *Server
	n      int
	list   http.Handler // GET /api/scripts through its cache middleware
	script http.Handler // GET /api/scripts/{id} through its cache middleware

	trigger chan string // a pending warm, and why ("start", "purge")
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}

	runs    *prometheus.CounterVec // warms by reason and whether this instance did it
	entries *prometheus.CounterVec // entries warmed by X-Cache outcome
}

func newWarmer(s *Server, n int, list, script http.Handler) *warmer {
	w := &warmer{
		s: s, n: n, list: list, script: script,
		trigger: make(chan string, 1),
		done:    make(chan struct{}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cache_warm_runs_total",
			Help: "Cache warmings asked for, by reason (start, purge) and result (warmed: this instance did it; skipped: another instance had it; failed: Redis did not answer).",
		}, []string{"reason", "result"}),
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cache_warm_entries_total",
			Help: "Entries cache warming and refresh-ahead asked for, by X-Cache outcome (MISS: refilled, HIT: already there, BYPASS or error: not stored).",
		}, []string{"outcome"}),
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	go w.loop()
	w.kick("start")
	return w
}

func (w *warmer) collectors() []prometheus.Collector {
	return []prometheus.Collector{w.runs, w.entries}
}

// kick asks for a warm; one already pending covers this one (it reads the
// generation when it runs).
func (w *warmer) kick(reason string) {
	select {
	case w.trigger <- reason:
	default:
	}
}

func (w *warmer) loop() {
	defer close(w.done)
	var last time.Time
	for {
		var reason string
		select {
		case <-w.ctx.Done():
			return
		case reason = <-w.trigger:
		}
		if wait := warmEvery - time.Since(last); wait > 0 {
			select {
			case <-w.ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		last = time.Now()
		w.run(reason)
	}
}

// run warms the catalogue's current generation if no instance has.
func (w *warmer) run(reason string) {
	ctx, cancel := context.WithTimeout(w.ctx, warmTimeout)
	defer cancel()
	rdb := w.s.rdb
	epoch, err := w.s.cache.TagEpoch(ctx, httpcache.NamespaceTag(nsScripts+":list"))
	if err != nil {
		w.runs.WithLabelValues(reason, "failed").Inc()
		return
	}
	lease := w.s.keys.Join("warm", strconv.FormatInt(epoch, 10))
	won, err := rdb.Do(ctx, rdb.B().Set().Key(lease).Value("1").Nx().Px(ListTTL).Build()).ToString()
	switch {
	case redisx.IsNil(err):
		w.runs.WithLabelValues(reason, "skipped").Inc()
		return
	case err != nil || won != "OK":
		w.runs.WithLabelValues(reason, "failed").Inc()
		return
	}
	w.runs.WithLabelValues(reason, "warmed").Inc()
	targets := w.targets(ctx)
	jobs := make(chan *http.Request)
	var wg sync.WaitGroup
	for range warmWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range jobs {
				w.fill(r)
			}
		}()
	}
	for _, r := range targets {
		select {
		case jobs <- r:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
}

// targets returns at most w.n requests: the first catalogue pages, then
// the most-viewed scripts.
func (w *warmer) targets(ctx context.Context) []*http.Request {
	var out []*http.Request
	for p := 1; p <= min(warmPages, w.n); p++ {
		target := "/api/scripts" // page 1 as clients ask for it: no query
		if p > 1 {
			target += "?page=" + strconv.Itoa(p)
		}
		if r, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil); err == nil {
			out = append(out, r)
		}
	}
	if len(out) >= w.n {
		return out
	}
	rdb := w.s.rdb
	ids, err := rdb.Do(ctx, rdb.B().Zrange().Key(w.topKey()).Min("0").Max(strconv.Itoa(w.n-len(out)-1)).Rev().Build()).AsStrSlice()
	if err != nil {
		return out
	}
	for _, id := range ids {
		if len(out) == w.n {
			break
		}
		if r := w.scriptRequest(ctx, id); r != nil {
			out = append(out, r)
		}
	}
	return out
}

func (w *warmer) scriptRequest(ctx context.Context, id string) *http.Request {
	if !theater.ValidID(id) {
		return nil // not one of ours: never a cache key
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "/api/scripts/"+id, nil)
	if err != nil {
		return nil
	}
	r.SetPathValue("id", id)
	return r
}

// fill runs one request through its route's cache middleware.
func (w *warmer) fill(r *http.Request) {
	h := w.list
	if r.PathValue("id") != "" {
		h = w.script
	}
	rec := &discardWriter{header: http.Header{}}
	h.ServeHTTP(rec, r)
	outcome := rec.header.Get("X-Cache")
	if rec.status != 0 && rec.status != http.StatusOK || outcome == "" {
		outcome = "error"
	}
	w.entries.WithLabelValues(outcome).Inc()
}

// refresh refills script id's entry after the writer changed it, before
// the write is answered; the purge of the old entry has already returned.
func (w *warmer) refresh(r *http.Request, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), refreshTimeout)
	defer cancel()
	if req := w.scriptRequest(ctx, id); req != nil {
		w.fill(req)
	}
}

// topKey is the ranking of viewed scripts, views:top: a sorted set of
// script ids scored by their view counter, at most maxTopViews long.
func (w *warmer) topKey() string { return w.s.keys.TopViews() }

// rankViews records the counters a flush just wrote in views:top and trims
// it to maxTopViews, in one pipeline of bounded size (a flush chunk). The
// ranking is a hint for warming: losing it costs a colder start.
func rankViews(ctx context.Context, rdb *redisx.Client, ids []string, totals []int64) {
	if len(ids) == 0 {
		return
	}
	key := domainKeys{rdb.Keys()}.TopViews()
	add := rdb.B().Zadd().Key(key).ScoreMember()
	for i, id := range ids {
		add = add.ScoreMember(float64(totals[i]), id)
	}
	_ = rdb.DoMulti(ctx,
		add.Build(),
		rdb.B().Zremrangebyrank().Key(key).Start(0).Stop(-maxTopViews-1).Build(),
		rdb.B().Pexpire().Key(key).Milliseconds(ViewsTTL.Milliseconds()).Build())
}

// unrankViews drops a deleted script from views:top.
func unrankViews(ctx context.Context, rdb *redisx.Client, id string) {
	_ = rdb.Do(ctx, rdb.B().Zrem().Key(domainKeys{rdb.Keys()}.TopViews()).Member(id).Build()).Error()
}

// afterScriptWrite runs once a script write and its purge are done: the
// writer refreshes the script's entry (not after a delete), and the
// catalogue, just purged, is warmed again in the background.
func (s *Server) afterScriptWrite(r *http.Request, id string, deleted bool) {
	if deleted {
		unrankViews(context.WithoutCancel(r.Context()), s.rdb, id)
	}
	if s.warm == nil {
		return
	}
	if !deleted {
		s.warm.refresh(r, id)
	}
	s.warm.kick("purge")
}

// close stops warming and waits for a warm in progress to give up.
func (w *warmer) close() {
	w.cancel()
	<-w.done
}

// discardWriter takes a warming response: only its status and headers
// matter.
type discardWriter struct {
	header http.Header
	status int
}

func (d *discardWriter) Header() http.Header { return d.header }

func (d *discardWriter) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}

func (d *discardWriter) Write(p []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	return len(p), nil
}
