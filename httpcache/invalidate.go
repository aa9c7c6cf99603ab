package httpcache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
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

// unlinkBatch bounds one pipeline of UNLINKs, so a purge of a huge tag
// never blocks Redis or the client with one giant write.
const unlinkBatch = 1000

// Invalidate purges every entry carrying any of tags, on every instance
// sharing the Redis: each tag's set is read and its entries UNLINKed, which
// costs O(entries purged) and never scans the keyspace. Entries being
// stored concurrently are caught by the store's epoch re-check.
//
// If Redis fails, Invalidate returns the error, this instance stops
// serving entries with those tags, and the purge is retried in the
// background until it succeeds.
func (c *Cache) Invalidate(ctx context.Context, tags ...string) error {
	tags = dedupe(tags)
	if len(tags) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StoreTimeout)
	defer cancel()
	err := c.purgeTags(ctx, tags)
	if err != nil {
		// Redis's error text stays out of logs; the metrics say what failed.
		c.cfg.Logger.Warn("httpcache: purge failed; retrying in the background", "tags", len(tags))
	}
	return err
}

// purgeTags runs the purge script for each tag (one pipeline), UNLINKs the
// members in batches, then drops them from the tags' pending sets (one
// pipeline): three round trips, however many other entries exist. Failed
// tags and keys go to the retry queue, and the tags count as purged-pending
// here (nothing with them is served) until the retry succeeds.
func (c *Cache) purgeTags(ctx context.Context, tags []string) error {
	c.m.purges.Add(float64(len(tags)))
	ttl := fmt.Sprint(c.epochTTL().Milliseconds())
	type call struct{ keys, args []string }
	calls := make([]call, len(tags))
	cmds := make([]rueidis.Completed, len(tags))
	for i, t := range tags {
		calls[i] = call{[]string{c.tagSetKey(t), c.tagEpochKey(t), c.tagPendingKey(t)}, []string{ttl}}
		cmds[i] = purgeScript.EvalSha(calls[i].keys, calls[i].args)
	}
	now := c.cfg.Now()
	var failed []string
	var firstErr error
	var members []string
	perTag := make([][]string, len(tags))
	seen := map[string]bool{}
	for i, res := range c.rdb.DoMulti(ctx, cmds...) {
		res = purgeScript.Retry(ctx, c.rdb, res, calls[i].keys, calls[i].args)
		epoch, ms, err := parsePurge(res)
		if err != nil {
			failed = append(failed, tags[i])
			firstErr = cmp(firstErr, err)
			continue
		}
		c.purges.mark(tags[i], epoch, now, c.markLife())
		perTag[i] = ms
		for _, m := range ms {
			if !seen[m] && strings.HasPrefix(m, c.keys.Prefix()) {
				seen[m] = true
				members = append(members, m)
			}
		}
	}
	leftover, err := c.unlink(ctx, members)
	firstErr = cmp(firstErr, err)
	if len(leftover) == 0 {
		if err := c.untrack(ctx, tags, perTag); err != nil {
			// Harmless: the next purge of the tag UNLINKs them again.
			c.m.errors.WithLabelValues("untrack").Inc()
		}
	}
	if len(failed) > 0 || len(leftover) > 0 {
		for _, t := range failed {
			c.purges.mark(t, math.MaxInt64, now, 0)
		}
		c.retry.add(failed, leftover)
		return fmt.Errorf("httpcache: invalidate: %w", firstErr)
	}
	return nil
}

// untrack removes deleted entries from their tags' pending sets.
func (c *Cache) untrack(ctx context.Context, tags []string, perTag [][]string) error {
	var cmds []rueidis.Completed
	for i, ms := range perTag {
		for len(ms) > 0 {
			n := min(len(ms), unlinkBatch)
			cmds = append(cmds, c.rdb.B().Zrem().Key(c.tagPendingKey(tags[i])).Member(ms[:n]...).Build())
			ms = ms[n:]
		}
	}
	var firstErr error
	for _, res := range c.rdb.DoMulti(ctx, cmds...) {
		firstErr = cmp(firstErr, res.Error())
	}
	return firstErr
}

func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func parsePurge(res rueidis.RedisResult) (int64, []string, error) {
	arr, err := res.ToArray()
	if err != nil {
		return 0, nil, err
	}
	if len(arr) != 2 {
		return 0, nil, errNoReply
	}
	epoch, err := arr[0].AsInt64()
	if err != nil {
		return 0, nil, err
	}
	ms, err := arr[1].AsStrSlice()
	if err != nil {
		return 0, nil, err
	}
	return epoch, ms, nil
}

// unlink deletes keys in pipelines of unlinkBatch, one UNLINK per key (keys
// of one tag live on many cluster slots). It returns the keys it could not
// delete.
func (c *Cache) unlink(ctx context.Context, keys []string) ([]string, error) {
	var left []string
	var firstErr error
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
				left = append(left, batch[i])
				firstErr = cmp(firstErr, err)
				continue
			}
			c.m.purged.Add(float64(d))
		}
	}
	return left, firstErr
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
//   - any other glob falls back to incremental SCAN + UNLINK in batches,
//     deleting only keys of known namespaces.
//
// A pattern matching no known namespace fails with ErrUnknownPattern.
func (c *Cache) InvalidatePatterns(ctx context.Context, patterns ...string) error {
	var tags, literals, globs []string
	var errs []error
	for _, p := range patterns {
		t, l, g, err := c.mapPattern(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tags, literals, globs = append(tags, t...), append(literals, l...), append(globs, g...)
	}
	if err := c.Invalidate(ctx, tags...); err != nil {
		errs = append(errs, err)
	}
	if len(literals) > 0 {
		lctx, cancel := context.WithTimeout(ctx, c.cfg.StoreTimeout)
		if _, err := c.unlink(lctx, literals); err != nil {
			errs = append(errs, err)
		}
		cancel()
		// This process's local copies of the deleted keys may outlive the
		// UNLINK by the time Redis's invalidation takes to arrive; they are
		// not trusted until then (local.go). Keys whose UNLINK failed are
		// marked too: a timed-out UNLINK may have been applied.
		c.written.mark(literals, c.markLife())
	}
	for _, g := range globs {
		if err := c.scanPurge(ctx, g); err != nil {
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

// mapPattern turns one pattern into tags, literal keys or a glob to scan.
func (c *Cache) mapPattern(p string) (tags, literals, globs []string, err error) {
	if p == "" || !validValue(p) || strings.ContainsAny(p, " \t") {
		return nil, nil, nil, fmt.Errorf("%w: %q", ErrUnknownPattern, p)
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
			return tags, nil, nil, nil
		}
	}
	if !strings.ContainsAny(p, meta) {
		ns, rest, ok := strings.Cut(p, ":{")
		if !ok || !c.isKnown(ns) {
			return nil, nil, nil, fmt.Errorf("%w: %q", ErrUnknownPattern, p)
		}
		if id, ok := strings.CutSuffix(rest, "}"); ok && !strings.ContainsAny(id, "{}") {
			return []string{resourceTagEscaped(ns, id)}, nil, nil, nil
		}
		return nil, []string{c.keys.Prefix() + p}, nil, nil
	}
	for _, ns := range known {
		if globCouldMatch(p, ns) {
			return nil, nil, []string{p}, nil
		}
	}
	return nil, nil, nil, fmt.Errorf("%w: %q", ErrUnknownPattern, p)
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

// scanPurge is the fallback for general globs: SCAN MATCH in batches,
// UNLINK what belongs to a known namespace. It first bumps the epochs of
// the namespaces the glob may touch, so a store racing it deletes itself.
func (c *Cache) scanPurge(ctx context.Context, glob string) error {
	c.m.purges.Inc()
	ttl := fmt.Sprint(c.epochTTL().Milliseconds())
	var cmds []rueidis.Completed
	var calls [][]string
	for _, ns := range c.knownNamespaces() {
		if globCouldMatch(glob, ns) {
			k := []string{c.tagEpochKey(NamespaceTag(ns))}
			calls = append(calls, k)
			cmds = append(cmds, bumpScript.EvalSha(k, []string{ttl}))
		}
	}
	bctx, cancel := context.WithTimeout(ctx, c.cfg.StoreTimeout)
	for i, res := range c.rdb.DoMulti(bctx, cmds...) {
		if err := bumpScript.Retry(bctx, c.rdb, res, calls[i], []string{ttl}).Error(); err != nil {
			cancel()
			return fmt.Errorf("httpcache: invalidate %q: %w", glob, err)
		}
	}
	cancel()
	match := c.keys.Prefix() + glob
	return c.scan(ctx, match, func(keys []string) error {
		var del []string
		for _, k := range keys {
			if ns, _, ok := strings.Cut(strings.TrimPrefix(k, c.keys.Prefix()), ":{"); ok && c.isKnown(ns) {
				del = append(del, k)
			}
		}
		uctx, cancel := context.WithTimeout(ctx, c.cfg.StoreTimeout)
		defer cancel()
		_, err := c.unlink(uctx, del)
		// As for literal keys: local copies are not trusted until Redis's
		// invalidation has surely arrived (local.go).
		c.written.mark(del, c.markLife())
		if err != nil {
			return fmt.Errorf("httpcache: invalidate %q: %w", glob, err)
		}
		return nil
	})
}

// nodeLister is what a redisx.Client offers (or will) to reach each server
// of a cluster; SCAN must visit them all. Without it, or with one node,
// SCAN goes through Do like every other command.
type nodeLister interface {
	Nodes() map[string]rueidis.Client
}

func (c *Cache) scan(ctx context.Context, match string, fn func([]string) error) error {
	do := func(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult { return c.rdb.Do(ctx, cmd) }
	var nodes []func(context.Context, rueidis.Completed) rueidis.RedisResult
	if nl, ok := any(c.rdb).(nodeLister); ok {
		if ns := nl.Nodes(); len(ns) > 1 {
			for _, n := range ns {
				nodes = append(nodes, n.Do)
			}
		}
	}
	if nodes == nil {
		nodes = append(nodes, do)
	}
	for _, node := range nodes {
		var cursor uint64
		for {
			sctx, cancel := context.WithTimeout(ctx, c.cfg.StoreTimeout)
			e, err := node(sctx, c.rdb.B().Scan().Cursor(cursor).Match(match).Count(unlinkBatch).Build()).AsScanEntry()
			cancel()
			if err != nil {
				return fmt.Errorf("httpcache: scan: %w", err)
			}
			if len(e.Elements) > 0 {
				if err := fn(e.Elements); err != nil {
					return err
				}
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return nil
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

// retryQueue holds purges that failed, for retryLoop.
type retryQueue struct {
	mu   sync.Mutex
	tags map[string]bool
	keys map[string]bool
	wake chan struct{}
}

func (q *retryQueue) init() {
	q.tags, q.keys, q.wake = map[string]bool{}, map[string]bool{}, make(chan struct{}, 1)
}

func (q *retryQueue) add(tags, keys []string) {
	q.mu.Lock()
	for _, t := range tags {
		q.tags[t] = true
	}
	for _, k := range keys {
		q.keys[k] = true
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *retryQueue) take() (tags, keys []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for t := range q.tags {
		tags = append(tags, t)
	}
	for k := range q.keys {
		keys = append(keys, k)
	}
	clear(q.tags)
	clear(q.keys)
	return tags, keys
}

// retryLoop retries failed purges with backoff until they succeed or the
// Cache is closed.
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
			tags, keys := c.retry.take()
			if len(tags) == 0 && len(keys) == 0 {
				backoff = 50 * time.Millisecond
				break
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.StoreTimeout)
			var err error
			if len(tags) > 0 {
				err = c.purgeTags(ctx, tags) // requeues what fails
			}
			if left, uerr := c.unlink(ctx, keys); uerr != nil {
				c.retry.add(nil, left)
				err = cmp(err, uerr)
			}
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
