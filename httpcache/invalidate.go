package httpcache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/theaterscriptpro/tsp/redisx"
)

// ErrUnknownPattern reports an InvalidatePatterns pattern that can match no
// namespace this Cache knows. It is refused rather than turned into a scan
// that could delete keys the cache does not own (sessions, counters).
var ErrUnknownPattern = errors.New("httpcache: pattern matches no known namespace")

// unlinkBatch bounds one pipeline of UNLINKs of literal keys.
const unlinkBatch = 1000

// maxRetryTags bounds the purges waiting for their retry. Past it, a
// resource's tag is folded into its namespace's (a wider purge, never a
// missed one), so the queue holds at most maxRetryTags tags plus one per
// namespace however many writes fail while Redis is away.
const maxRetryTags = 1000

// Invalidate purges every entry carrying any of tags, on every instance
// sharing the Redis. A purge bumps each tag's epoch: one pipeline of one
// small script per tag, O(1) however many entries carry it, so purging a
// namespace of a million list pages costs what purging one entry costs.
// Entries stored under an older epoch are refused by every lookup from
// then on (this instance's before Invalidate returns; other instances' as
// soon as Redis's invalidation push reaches them) and expire by their TTL;
// nothing ever lists or walks them.
//
// If Redis fails, Invalidate returns the error, this instance stops
// serving entries with those tags, and the purge (the same few bumps) is
// retried in the background until it succeeds.
func (c *Cache) Invalidate(ctx context.Context, tags ...string) error {
	tags = dedupe(tags)
	if len(tags) == 0 {
		return nil
	}
	c.flights.written()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StoreTimeout)
	defer cancel()
	err := c.purgeTags(ctx, tags)
	if err != nil {
		// Redis's error text stays out of logs; the metrics say what failed.
		c.cfg.Logger.Warn("httpcache: purge failed; retrying in the background", "tags", len(tags))
	}
	return err
}

// purgeTags bumps each tag's epoch in one pipeline and marks the new epochs
// here before it returns. Failed tags go to the retry queue, and count as
// purge-pending here (nothing with them is served) until the retry works.
func (c *Cache) purgeTags(ctx context.Context, tags []string) error {
	c.m.purges.Add(float64(len(tags)))
	ttl := strconv.FormatInt(c.epochTTL().Milliseconds(), 10)
	keys := make([][]string, len(tags))
	cmds := make([]rueidis.Completed, len(tags))
	for i, t := range tags {
		keys[i] = []string{c.tagEpochKey(t)}
		cmds[i] = bumpScript.EvalSha(keys[i], []string{ttl})
	}
	now := c.cfg.Now()
	var failed, bases, baseTags []string
	var firstErr error
	for i, res := range c.rdb.DoMulti(ctx, cmds...) {
		epoch, err := bumpScript.Retry(ctx, c.rdb, res, keys[i], []string{ttl}).AsInt64()
		if err != nil {
			failed = append(failed, tags[i])
			firstErr = cmp(firstErr, err)
			continue
		}
		c.purges.mark(tags[i], epoch, now, c.markLife())
		if k, ok := c.resourceKey(tags[i]); ok {
			bases, baseTags = append(bases, k), append(baseTags, tags[i])
		}
	}
	// A plain route's lookup reads only its namespace's epoch, so a
	// resource's one entry is deleted too: after the bump has returned, so
	// that a store racing the purge either sees the bump in its re-check or
	// is deleted here (store.go). One UNLINK per resource tag purged.
	left, err := c.unlink(ctx, bases)
	for i, k := range bases {
		if left[k] {
			failed = append(failed, baseTags[i])
		}
	}
	firstErr = cmp(firstErr, err)
	if len(failed) > 0 {
		c.requeue(failed)
		return fmt.Errorf("httpcache: invalidate: %w", firstErr)
	}
	return nil
}

// requeue marks tags purge-pending here and queues them for retryLoop.
func (c *Cache) requeue(tags []string) {
	now := c.cfg.Now()
	for _, t := range c.retry.add(tags) {
		c.purges.mark(t, math.MaxInt64, now, 0)
	}
}

func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// unlink deletes entry keys in pipelines of unlinkBatch, one UNLINK per
// key (they may live on many cluster slots), and returns those it could
// not delete.
func (c *Cache) unlink(ctx context.Context, keys []string) (map[string]bool, error) {
	var firstErr error
	var left map[string]bool
	for len(keys) > 0 {
		n := min(len(keys), unlinkBatch)
		batch := keys[:n]
		keys = keys[n:]
		cmds := make([]rueidis.Completed, n)
		for i, k := range batch {
			cmds[i] = c.rdb.B().Unlink().Key(k).Build()
		}
		for i, res := range c.rdb.DoMulti(ctx, cmds...) {
			d, err := res.AsInt64()
			if err != nil {
				if left == nil {
					left = map[string]bool{}
				}
				left[batch[i]] = true
				firstErr = cmp(firstErr, err)
				continue
			}
			c.m.purged.Add(float64(d))
		}
	}
	return left, firstErr
}

// resourceKey returns the key of the one entry a resource tag names on a
// plain route: ResourceTag(ns, id) is "res=ns=" + the id as escaped in
// keys, and the entry is ns:{id} (Keys.Tagged writes an empty id as '%').
func (c *Cache) resourceKey(tag string) (string, bool) {
	rest, ok := strings.CutPrefix(tag, "res=")
	if !ok {
		return "", false
	}
	ns, id, ok := strings.Cut(rest, "=")
	if !ok || checkNamespace(ns) != nil || strings.ContainsAny(id, "{}") {
		return "", false
	}
	if id == "" {
		id = "%"
	}
	return c.keys.Prefix() + ns + ":{" + id + "}", true
}

// markLife is how long this process remembers a purge: past the longest
// entry lifetime, every entry stored before the purge has expired anyway.
func (c *Cache) markLife() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lifetime + time.Minute
}

// InvalidatePatterns is the original guide's invalidateCache(['scripts:*',
// 'script:*']): patterns are Redis globs over keys, without the prefix. They
// map to tags, so a purge never scans the keyspace:
//
//   - "ns:*" (and "*", "scripts:*" ...) purge NamespaceTag of every known
//     namespace whose keys it matches ("scripts:*" covers scripts:list and
//     scripts:user; "script:*" only script);
//   - "ns:{id}" purges ResourceTag(ns, id), id written as it is in keys
//     (redisx.EscapeKeyPart);
//   - a key without glob characters is UNLINKed;
//   - any other glob ("script:{2*") purges every known namespace it may
//     match: wider than asked, never narrower, and O(1), where a SCAN
//     would cost O(keyspace).
//
// A pattern matching no known namespace fails with ErrUnknownPattern.
func (c *Cache) InvalidatePatterns(ctx context.Context, patterns ...string) error {
	c.flights.written()
	var tags, literals []string
	var errs []error
	for _, p := range patterns {
		t, l, err := c.mapPattern(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tags, literals = append(tags, t...), append(literals, l...)
	}
	if err := c.Invalidate(ctx, tags...); err != nil {
		errs = append(errs, err)
	}
	if len(literals) > 0 {
		lctx, cancel := context.WithTimeout(ctx, c.cfg.StoreTimeout)
		left, err := c.unlink(lctx, literals)
		cancel()
		// A key whose UNLINK failed is purged by its namespace's epoch
		// instead, retried in the background: the retry never walks keys,
		// and its queue stays bounded.
		var nsTags []string
		for k := range left {
			if ns, _, ok := strings.Cut(strings.TrimPrefix(k, c.keys.Prefix()), ":{"); ok {
				nsTags = append(nsTags, NamespaceTag(ns))
			}
		}
		if len(nsTags) > 0 {
			c.requeue(dedupe(nsTags))
		}
		// This process's local copies of the deleted keys may outlive the
		// UNLINK by the time Redis's invalidation takes to arrive; redisx
		// does not serve them until then. Keys whose UNLINK failed are
		// marked too: a timed-out UNLINK may have been applied.
		c.rdb.MarkWritten(literals...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Cache) knownNamespaces() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.namespaces))
	for ns := range c.namespaces {
		out = append(out, ns)
	}
	return out
}

// mapPattern turns one pattern into tags or literal keys.
func (c *Cache) mapPattern(p string) (tags, literals []string, err error) {
	if p == "" || !validValue(p) || strings.ContainsAny(p, " \t") {
		return nil, nil, fmt.Errorf("%w: %q", ErrUnknownPattern, p)
	}
	known := c.knownNamespaces()
	const meta = "*?[]\\"
	if prefix, ok := strings.CutSuffix(p, "*"); ok && !strings.ContainsAny(prefix, meta) {
		for _, ns := range known {
			if strings.HasPrefix(ns+":", prefix) {
				tags = append(tags, NamespaceTag(ns))
			}
		}
		if len(tags) > 0 {
			return tags, nil, nil
		}
	}
	if !strings.ContainsAny(p, meta) {
		ns, rest, ok := strings.Cut(p, ":{")
		if !ok || !c.isKnown(ns) {
			return nil, nil, fmt.Errorf("%w: %q", ErrUnknownPattern, p)
		}
		if id, ok := strings.CutSuffix(rest, "}"); ok && !strings.ContainsAny(id, "{}") {
			return []string{resourceTagEscaped(ns, id)}, nil, nil
		}
		return nil, []string{c.keys.Prefix() + p}, nil
	}
	for _, ns := range known {
		if globCouldMatch(p, ns) {
			tags = append(tags, NamespaceTag(ns))
		}
	}
	if len(tags) > 0 {
		return tags, nil, nil
	}
	return nil, nil, fmt.Errorf("%w: %q", ErrUnknownPattern, p)
}

// globCouldMatch is a cheap over-approximation: the glob's literal prefix
// (up to its first metacharacter) must be compatible with "ns:{".
func globCouldMatch(glob, ns string) bool {
	lit := glob
	if i := strings.IndexAny(glob, "*?[\\"); i >= 0 {
		lit = glob[:i]
	}
	key := ns + ":{"
	return strings.HasPrefix(key, lit) || strings.HasPrefix(lit, key)
}

func (c *Cache) isKnown(ns string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.namespaces[ns]
}

// InvalidateMiddleware purges the tags tags(r) returns after the handler
// answers 2xx, and before any byte of the response leaves: the purge runs
// when the handler calls WriteHeader (or first writes, or returns), so a
// client never sees its write acknowledged while an old entry is still
// served, here or on another instance. A failed purge does not fail the
// request (the write is done); it is retried in the background, and this
// instance serves no entry with those tags meanwhile.
func (c *Cache) InvalidateMiddleware(tags func(r *http.Request) []string) func(http.Handler) http.Handler {
	return c.invalidating(func(ctx context.Context, r *http.Request) {
		_ = c.Invalidate(ctx, tags(r)...)
	})
}

// InvalidatePatternsMiddleware is the original guide's
// invalidateCache(['scripts:*', 'script:*']) as a middleware. A "{name}"
// in a pattern stands for the request's path value name, escaped as in
// keys: on "PUT /api/scripts/{id}", "script:{id}" purges that script's
// entries. Patterns are mapped when a request is handled, so routes may be
// registered in any order; one that matches no namespace known by then is
// logged and counted (httpcache_errors_total{op="pattern"}).
func (c *Cache) InvalidatePatternsMiddleware(patterns ...string) func(http.Handler) http.Handler {
	return c.invalidating(func(ctx context.Context, r *http.Request) {
		ps := make([]string, len(patterns))
		for i, p := range patterns {
			ps[i] = fillPathValues(p, func(name string) string { return redisx.EscapeKeyPart(r.PathValue(name)) })
		}
		if err := c.InvalidatePatterns(ctx, ps...); errors.Is(err, ErrUnknownPattern) {
			c.m.errors.WithLabelValues("pattern").Inc()
			c.cfg.Logger.Error("httpcache: invalidation pattern matches no known namespace", "patterns", patterns)
		}
	})
}

// fillPathValues replaces each {name} with value(name).
func fillPathValues(p string, value func(string) string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(p[i:], '}')
		if j < 0 {
			break
		}
		b.WriteString(p[:i+1])
		b.WriteString(value(p[i+1 : i+j]))
		b.WriteByte('}')
		p = p[i+j+1:]
	}
	b.WriteString(p)
	return b.String()
}

func (c *Cache) invalidating(purge func(context.Context, *http.Request)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			iw := &invalidateWriter{ResponseWriter: w}
			iw.fire = func(status int) {
				if status/100 == 2 {
					// The purge outlives a client that hangs up: its write happened.
					purge(context.WithoutCancel(r.Context()), r)
				}
			}
			next.ServeHTTP(iw, r)
			iw.before(http.StatusOK) // a handler that wrote nothing answered 200
		})
	}
}

// invalidateWriter runs fire once, just before the status line goes out.
type invalidateWriter struct {
	http.ResponseWriter
	fire  func(status int)
	fired bool
}

func (w *invalidateWriter) before(status int) {
	if !w.fired {
		w.fired = true
		w.fire(status)
	}
}

func (w *invalidateWriter) WriteHeader(code int) {
	if code >= 200 {
		w.before(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *invalidateWriter) Write(p []byte) (int, error) {
	w.before(http.StatusOK)
	return w.ResponseWriter.Write(p)
}

func (w *invalidateWriter) Flush() {
	w.before(http.StatusOK)
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *invalidateWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// purgeLog remembers this process's recent purges, so that an entry stored
// before one (its record holds the epochs it read) is never served here
// again, not even in the instant a racing store takes to delete itself,
// nor while a failed purge waits for its retry. Checking it costs hits
// nothing while it is empty, and a map lookup per tag otherwise.
type purgeLog struct {
	n     atomic.Int64
	mu    sync.RWMutex
	marks map[string]purgeMark
}

type purgeMark struct {
	epoch int64 // math.MaxInt64: purge pending, every entry is stale
	until time.Time
}

func (p *purgeLog) mark(tag string, epoch int64, now time.Time, keep time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.marks == nil {
		p.marks = map[string]purgeMark{}
	}
	m := p.marks[tag]
	if epoch == math.MaxInt64 {
		m.epoch = epoch
	} else if m.epoch == math.MaxInt64 || epoch > m.epoch {
		m.epoch = epoch // a successful retry replaces the pending mark
	}
	m.until = now.Add(keep)
	p.marks[tag] = m
	// Forget what can no longer matter (amortised: only when the log grew).
	if len(p.marks) > 64 && len(p.marks)&63 == 0 {
		for t, old := range p.marks {
			if old.epoch != math.MaxInt64 && now.After(old.until) {
				delete(p.marks, t)
			}
		}
	}
	p.n.Store(int64(len(p.marks)))
}

// stale reports whether rec was stored before a purge of one of its tags.
func (p *purgeLog) stale(rec *record) bool {
	if p.n.Load() == 0 || rec.nTags == 0 {
		return false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	for it := rec.tagIter(); it.next(); {
		if m, ok := p.marks[it.tag]; ok && it.epoch < m.epoch {
			return true
		}
	}
	return false
}

// retryQueue holds the tags of purges that failed, for retryLoop. It is
// bounded by maxRetryTags: see add.
type retryQueue struct {
	mu   sync.Mutex
	tags map[string]bool
	wake chan struct{}
}

func (q *retryQueue) init() {
	q.tags, q.wake = map[string]bool{}, make(chan struct{}, 1)
}

// add queues tags and returns what was queued for them: the tags
// themselves, or, once the queue is full, their namespaces' tags in place
// of resource tags. The caller marks those purge-pending.
func (q *retryQueue) add(tags []string) []string {
	q.mu.Lock()
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if len(q.tags) >= maxRetryTags {
			t = foldTag(t)
		}
		q.tags[t] = true
		out = append(out, t)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return out
}

func (q *retryQueue) take() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	tags := make([]string, 0, len(q.tags))
	for t := range q.tags {
		tags = append(tags, t)
	}
	clear(q.tags)
	return tags
}

// foldTag returns the namespace tag covering a resource tag: every entry
// with ResourceTag(ns, id) also carries NamespaceTag(ns). Other tags are
// returned as they are.
func foldTag(tag string) string {
	rest, ok := strings.CutPrefix(tag, "res=")
	if !ok {
		return tag
	}
	ns, _, ok := strings.Cut(rest, "=") // a namespace holds no '='
	if !ok {
		return tag
	}
	return NamespaceTag(ns)
}

// retryLoop retries failed purges with backoff until they succeed or the
// Cache is closed. A retry is the same few epoch bumps as the purge: it
// costs Redis nothing more after a timeout than before it.
func (c *Cache) retryLoop() {
	defer c.bg.Done()
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-c.closed:
			return
		case <-c.retry.wake:
		}
		for {
			tags := c.retry.take()
			if len(tags) == 0 {
				backoff = 50 * time.Millisecond
				break
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.StoreTimeout)
			err := c.purgeTags(ctx, tags) // requeues what fails
			cancel()
			if err == nil {
				continue
			}
			c.m.errors.WithLabelValues("purge_retry").Inc()
			select {
			case <-c.closed:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

func dedupe(s []string) []string {
	out := s[:0:0]
	seen := map[string]bool{}
	for _, v := range s {
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// TagEpoch returns tag's purge epoch as Redis holds it: 0 until the tag is
// first purged, then a number that grows with every purge. Every instance
// reads the same value, so it names one generation of the tag's entries:
// a warmer can tell whether the entries it would refill were purged since
// (internal/httpapi warms once per generation).
func (c *Cache) TagEpoch(ctx context.Context, tag string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StoreTimeout)
	defer cancel()
	cur, err := readEpochs([]string{tag}, c.rdb.DoMulti(ctx, c.rdb.B().Get().Key(c.tagEpochKey(tag)).Build()))
	if err != nil {
		return 0, err
	}
	return cur[0].epoch, nil
}
