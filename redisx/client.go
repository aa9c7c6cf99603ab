package redisx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/rueidis"
)

// Client is the Redis service: a rueidis client behind per-call deadlines,
// a circuit breaker and metrics, with the key builder. It is safe for
// concurrent use. Make one with New and share it.
type Client struct {
	cfg     Config
	keys    Keys
	opt     rueidis.ClientOption
	rdb     atomic.Pointer[rueidis.Client] // nil until the first connection succeeds
	routing atomic.Pointer[route]          // the circuit breakers, one per node (nodes.go)
	topo    topologyWatch                  // the state of the watcher that keeps routing up to date
	m       *metrics
	flight  Flight[[]byte]
	loads   chan struct{} // bounds loader calls while Redis is down
	// refreshes bounds stale-while-revalidate refreshes in the background.
	refreshes chan struct{}

	closeOnce sync.Once
	closed    chan struct{}
	// life is cancelled by Close, so background work (refreshes, the
	// connect loop) stops instead of making Close wait for it.
	life context.Context
	stop context.CancelFunc
	// bgMu guards bg.Add against Close's bg.Wait: once closing is set no
	// background work starts.
	bgMu      sync.Mutex
	closing   bool
	bg        sync.WaitGroup // the connect loop and background refreshes
	roundTrip atomic.Uint64
	written   writtenLog // read-your-writes marks for the local tier (local.go)
	// invalidations counts Invalidate calls begun, so no lookup joins a
	// load begun before one (cache.go flightKey).
	invalidations atomic.Uint64
	// lastConnErr is why the first connection has not been made yet, so
	// callers see "wrong password", not just "not connected".
	lastConnErr atomic.Pointer[error]
	oomLog      oomLog // throttles the "redis out of memory" line (errors.go)
}

// errNotConnected is what calls get before the first connection succeeds.
var errNotConnected = errors.New("not connected yet")

// notConnected is the error of a call made before the first connection,
// with the reason the last attempt failed (rueidis's errors carry no
// password).
func (c *Client) notConnected() error {
	if last := c.lastConnErr.Load(); last != nil {
		return unavailable(fmt.Errorf("%w: %v", errNotConnected, *last))
	}
	return unavailable(errNotConnected)
}

// errBreakerExcluded marks outcomes that say nothing about Redis's health
// (the caller gave up), so the breaker neither opens nor closes on them.
var errBreakerExcluded = errors.New("excluded")

// New validates cfg and returns a Client. It tries to connect once within
// cfg.DialTimeout; if Redis is unreachable it logs one line, returns the
// Client anyway and keeps reconnecting in the background with
// cfg.RetryStrategy. Calls fail with ErrUnavailable until it succeeds.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	keys, err := NewKeys(cfg.KeyPrefix)
	if err != nil {
		return nil, fmt.Errorf("%w: KeyPrefix: %v", ErrInvalidConfig, err)
	}
	c := &Client{
		cfg:       cfg,
		keys:      keys,
		m:         newMetrics(),
		loads:     make(chan struct{}, 16),
		refreshes: make(chan struct{}, 8),
		closed:    make(chan struct{}),
	}
	c.life, c.stop = context.WithCancel(context.Background())
	c.opt = c.clientOption()
	// One breaker until the first connection; then one per node (nodes.go).
	c.routing.Store(&route{any: c.newBreaker("")})

	if err := c.connect(ctx); err != nil {
		c.lastConnErr.Store(&err)
		cfg.Logger.Warn("redis unreachable at start; serving without it and reconnecting in the background",
			"addrs", cfg.Addrs, "error", err.Error())
		c.goBackground(c.reconnectLoop)
	}
	return c, nil
}

// keylessSlot is the slot our builder gives a command without keys
// (rueidis's InitSlot): it may go to any node.
const keylessSlot = 1 << 14

// goBackground runs fn in a goroutine that Close waits for, unless the
// client is closing; it reports whether fn was started.
func (c *Client) goBackground(fn func()) bool {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if c.closing {
		return false
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		fn()
	}()
	return true
}

func (c *Client) clientOption() rueidis.ClientOption {
	cfg := c.cfg
	opt := rueidis.ClientOption{
		InitAddress: cfg.Addrs,
		Username:    cfg.Username,
		Password:    cfg.Password,
		SelectDB:    cfg.DB,
		TLSConfig:   cfg.TLS,
		ClientName:  cfg.ClientName,
		// rueidis PINGs a connection idle for KeepAlive. A hung connection
		// (no RST) is found that soon, and only then drops its client-side
		// cache: an instance whose reads are all local hits would otherwise
		// serve them for as long as the connection looks alive.
		Dialer:            net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: time.Second},
		ConnWriteTimeout:  cfg.CommandTimeout + cfg.DialTimeout,
		CacheSizeEachConn: cfg.LocalCacheBytes,
		DisableCache:      cfg.DisableLocalCache,
		// With the local tier on, one connection per node: local copies and
		// their invalidations live on the connection that read them, and
		// rueidis spreads plain commands over a node's connections at
		// random, so only with one is every answer from a node proof that
		// the connection holding its copies is alive (local.go).
		PipelineMultiplex: localTierMultiplex(cfg.DisableLocalCache),
		// rueidis retries only commands marked read-only or retryable; we
		// mark idempotent writes ourselves (ToRetryable), so INCR, EVALSHA
		// and MULTI blocks are never applied twice. A negative delay from
		// the hook means "do not retry", as in rueidis. A retry waits at
		// most BreakerOpenFor, the pace at which a dead node is tried
		// anyway: after a failover rueidis's next attempt goes to the
		// promoted master, and with a longer wait the call would wait past
		// that moment, or fail at once where the wait would pass its
		// deadline (rueidis then skips the retry).
		RetryDelay: func(attempts int, cmd rueidis.Completed, _ error) time.Duration {
			// A retried command is pinned: never recycled into rueidis's
			// command pool. rueidis fails the calls of a broken connection
			// before that connection's writer goroutine has exited, and a
			// retry that then succeeds on a new connection recycles the
			// command while the old writer may still be reading it (the race
			// detector caught it once in TestFaultAPIRedis/connections_cut;
			// the same use-after-recycle as redis/rueidis#702). A negative
			// delay is no retry: nothing to pin. rueidis's single client
			// calls the hook for one command of a retried DoMulti only.
			d := min(cfg.RetryStrategy(attempts), cfg.BreakerOpenFor)
			if d >= 0 {
				cmd.Pin()
			}
			return d
		},
	}
	if cfg.DialContext != nil {
		opt.DialCtxFn = dialWith(cfg.DialContext)
	}
	if cfg.SentinelMaster != "" {
		opt.Sentinel = rueidis.SentinelOption{
			MasterSet: cfg.SentinelMaster,
			Dialer:    opt.Dialer,
			TLSConfig: cfg.TLS,
			Username:  cfg.Username,
			Password:  cfg.Password,
		}
	}
	if !cfg.Cluster && cfg.SentinelMaster == "" {
		// Without this rueidis probes CLUSTER SLOTS first on a standalone server.
		opt.ForceSingleClient = true
	}
	return opt
}

// dialWith adapts Config.DialContext to rueidis's dial hook: the hook's
// connection, bounded by the dialer's timeout, with the TLS handshake
// rueidis's own dial would have made (tls.Dialer's: the server name is
// the address's host unless the config names one).
func dialWith(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(context.Context, string, *net.Dialer, *tls.Config) (net.Conn, error) {
	return func(ctx context.Context, addr string, d *net.Dialer, tlsCfg *tls.Config) (net.Conn, error) {
		if d.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d.Timeout)
			defer cancel()
		}
		conn, err := dial(ctx, "tcp", addr)
		if err != nil || tlsCfg == nil {
			return conn, err
		}
		if tlsCfg.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				host = addr
			}
			tlsCfg = tlsCfg.Clone()
			tlsCfg.ServerName = host
		}
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		return tc, nil
	}
}

// connect makes the rueidis client, bounded by DialTimeout.
func (c *Client) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	type result struct {
		rdb rueidis.Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		rdb, err := rueidis.NewClient(c.opt)
		ch <- result{rdb, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return r.err
		}
		// The breakers follow the topology from the first call on.
		c.followTopology(ctx, r.rdb)
		c.rdb.Store(&r.rdb)
		c.cfg.Logger.Info("redis connected", "addrs", c.cfg.Addrs)
		if c.cfg.SentinelMaster != "" || c.cfg.Cluster {
			c.goBackground(func() { c.watchTopology(r.rdb) })
		}
		return nil
	case <-ctx.Done():
		// A late success is closed, not leaked.
		go func() {
			if r := <-ch; r.err == nil {
				r.rdb.Close()
			}
		}()
		return ctx.Err()
	}
}

// reconnectLoop keeps trying to make the first connection, waiting
// RetryStrategy(n) (at least minReconnectWait) before attempt n, until it
// succeeds or the client is closed. Once rueidis has a client it redials
// broken connections by itself on the next command, and the breaker's
// half-open probe is that command while Redis is down.
func (c *Client) reconnectLoop() {
	t := time.NewTimer(0)
	defer t.Stop()
	for attempt := 1; ; attempt++ {
		t.Reset(max(c.cfg.RetryStrategy(attempt), minReconnectWait))
		select {
		case <-c.life.Done():
			return
		case <-t.C:
		}
		err := c.connect(c.life)
		if err == nil {
			return
		}
		c.lastConnErr.Store(&err)
		if attempt&(attempt-1) == 0 { // attempts 1, 2, 4, 8, …: enough to see, never a flood
			c.cfg.Logger.Warn("redis still unreachable", "attempt", attempt, "error", err.Error())
		}
	}
}

// minReconnectWait keeps a hook that returns 0 or less from turning the
// connect loop into a busy loop against a refusing port.
const minReconnectWait = 10 * time.Millisecond

// Keys returns the key builder with this client's prefix.
func (c *Client) Keys() Keys { return c.keys }

// B returns a command builder; build one command per call and pass it to Do.
func (c *Client) B() rueidis.Builder { return cmdBuilder }

// cmdBuilder is rueidis's cluster-mode command builder: it computes each
// command's slot and panics on a multi-key command whose keys cross slots,
// so a cross-slot bug shows up in standalone tests too. Standalone and
// Sentinel clients accept its commands as they are. rueidis hands builders
// out only from a connected client, and ours must work before the first
// connection, so it is made from its single field (slot = 1<<14,
// "InitSlot"); TestBuilderMatchesRueidis compares it with a real client's.
var cmdBuilder = func() rueidis.Builder {
	initSlot := uint16(1 << 14)
	return *(*rueidis.Builder)(unsafe.Pointer(&initSlot))
}()

// RoundTrips returns how many round trips to Redis this client has made (a
// pipeline counts once; a local-cache hit not at all).
func (c *Client) RoundTrips() uint64 { return c.roundTrip.Load() }

// Do sends one command with the client's deadline, breaker and metrics.
// Connection failures and timeouts come back as errors wrapping
// ErrUnavailable; a cancelled ctx comes back as ctx's error; Redis's own
// replies (nil, WRONGTYPE, ...) come back as they are.
func (c *Client) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	rdb, n, done, err := c.admit(ctx, cmd.Slot())
	if err != nil {
		return rueidis.NewErrorResult(err)
	}
	if cmd.IsBlock() {
		n = nil // rueidis runs it on a dedicated connection: it says nothing of the node's
	}
	c.sent(cmd.Commands()[:1])
	var names []string
	if c.cfg.CommandObserver != nil {
		names = []string{cmd.Commands()[0]} // read now: rueidis recycles cmd
	}
	dctx, cancel := c.deadline(ctx)
	start := time.Now()
	res := rdb.Do(dctx, cmd)
	cancel()
	c.observed(ctx, names, start, res.Error())
	if err := c.end(ctx, start, n, done, res.Error()); err != nil {
		return rueidis.NewErrorResult(err)
	}
	if err := c.replied(res.Error()); err != nil {
		return rueidis.NewErrorResult(err)
	}
	return res
}

// DoMulti sends cmds in one pipeline: one round trip, one deadline. Errors
// are per command, as in Do.
func (c *Client) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	if len(cmds) == 0 {
		return nil
	}
	slot := uint16(keylessSlot)
	for i := range cmds {
		if s := cmds[i].Slot(); s < keylessSlot {
			slot = s // the first keyed command's: a pipeline is usually about one hash tag
			break
		}
	}
	rdb, n, done, err := c.admit(ctx, slot)
	if err != nil {
		return errorResults(len(cmds), err)
	}
	if len(cmds) >= dedicatedPipeline || slices.ContainsFunc(cmds, func(c rueidis.Completed) bool { return c.IsBlock() }) {
		// On a connection of its own (a long pipeline, or one with a
		// blocking command such as WAIT): it says nothing of the node's.
		n = nil
	}
	var names []string
	if c.cfg.CommandHook != nil || c.cfg.CommandObserver != nil {
		names = make([]string, len(cmds))
		for i := range cmds {
			names[i] = cmds[i].Commands()[0]
		}
	}
	c.sent(names)
	dctx, cancel := c.deadline(ctx)
	start := time.Now()
	res := rdb.DoMulti(dctx, cmds...)
	cancel()
	var failure, first error
	for _, r := range res {
		e := r.Error()
		if first == nil && e != nil && !rueidis.IsRedisNil(e) {
			first = e
		}
		if isConnectionFailure(e) {
			failure = e
			break
		}
	}
	c.observed(ctx, names, start, first)
	if c.end(ctx, start, n, done, failure) != nil {
		c.replaceFailures(ctx, res)
	}
	c.replaceRefusals(res)
	return res
}

// replaceRefusals gives each result Redis refused with OOM the error
// callers see, ErrOutOfMemory, and counts it.
func (c *Client) replaceRefusals(res []rueidis.RedisResult) {
	for i, r := range res {
		if err := c.replied(r.Error()); err != nil {
			res[i] = rueidis.NewErrorResult(err)
		}
	}
}

// replaceFailures gives each result that failed on the connection the
// error callers see (ErrUnavailable, or ctx's own when it was cancelled).
func (c *Client) replaceFailures(ctx context.Context, res []rueidis.RedisResult) {
	for i, r := range res {
		if e := r.Error(); isConnectionFailure(e) {
			res[i] = rueidis.NewErrorResult(c.callerError(ctx, e))
		}
	}
}

// DoCache sends a read through rueidis's server-assisted client-side cache:
// a local hit costs no round trip, no timer and no allocation; Redis
// invalidates the local copy when the key changes, and ttl bounds how long
// it is kept in any case. A copy is served only under the local tier's
// rules (local.go): the connection holding it answered within LocalLease,
// and this process has not written the key since the copy was made
// (MarkWritten). While the breaker is open even local hits are refused.
func (c *Client) DoCache(ctx context.Context, cmd rueidis.Cacheable, ttl time.Duration) rueidis.RedisResult {
	return c.cacheRead(ctx, time.Time{}, cmd, ttl)
}

// DoCacheBefore is DoCache bounded by deadline when that comes before the
// client's CommandTimeout (httpcache's LookupTimeout), still arming no
// timer on a local hit.
func (c *Client) DoCacheBefore(ctx context.Context, deadline time.Time, cmd rueidis.Cacheable, ttl time.Duration) rueidis.RedisResult {
	return c.cacheRead(ctx, deadline, cmd, ttl)
}

func (c *Client) cacheRead(ctx context.Context, deadline time.Time, cmd rueidis.Cacheable, ttl time.Duration) rueidis.RedisResult {
	// Read the arguments now: rueidis recycles the command once answered.
	args := cmd.Commands()
	since := c.written.reading(ttl)
	var plain []string // the command's arguments, kept when a hit may not serve
	if c.written.marked(cacheKey(cmd)) {
		plain = slices.Clone(args)
	}
	return c.cacheOnce(ctx, deadline, cmd, args, plain, ttl, since, true)
}

// cacheOnce is one read of cmd (whose arguments are args) through the
// local tier. renew says whether a lapsed lease may be renewed and the
// read made again; that second read is made from plain, a copy of args.
func (c *Client) cacheOnce(ctx context.Context, deadline time.Time, cmd rueidis.Cacheable, args, plain []string, ttl time.Duration, since uint64, renew bool) rueidis.RedisResult {
	name, key := args[0], cacheKey(cmd)
	simple := len(args) == 2 // name and key: a plain read can be rebuilt from the two
	rdb, n, done, err := c.admit(ctx, cmd.Slot())
	if err != nil {
		return rueidis.NewErrorResult(err)
	}
	now := time.Now()
	lapsed := c.leaseLapsed(n, now)
	if lapsed && plain == nil {
		plain = slices.Clone(args)
	}
	lazy := c.lazyDeadlineFor(ctx, deadline)
	res := rdb.DoCache(lazy.context(ctx), cmd, ttl)
	lazy.release()
	if res.IsCacheHit() {
		// A local hit says nothing about Redis's health: it must neither
		// close a half-open breaker nor reset the failure count.
		done(errBreakerExcluded)
		written := plain != nil && !c.written.trust(key, true, since)
		switch {
		case renew && (lapsed || written):
			// The connection holding the copy has not answered lately, or
			// this process wrote the key and its invalidation may still be
			// on the way: one round trip on that connection brings what it
			// holds up to date, then read that.
			if err := c.renewLease(ctx, deadline, key); err != nil {
				return rueidis.NewErrorResult(err)
			}
			c.written.settled(key, since)
			return c.cacheOnce(ctx, deadline, rueidis.Cacheable(plainRead(plain)), plain, plain, ttl, since, false)
		case written:
			// Written again meanwhile: ask Redis itself.
			return c.doBefore(ctx, deadline, plainRead(plain))
		}
		c.m.localHits.Inc()
		c.renewSoon(n, now, key)
		return res
	}
	c.roundTrip.Add(1)
	if c.cfg.CommandHook != nil {
		c.cfg.CommandHook([]string{name})
	}
	c.observed(ctx, []string{name}, now, res.Error())
	if err := c.end(ctx, now, n, done, res.Error()); err != nil {
		return rueidis.NewErrorResult(err)
	}
	if err := c.replied(res.Error()); err != nil {
		if simple {
			// A full Redis refuses the transaction in which rueidis asks
			// for the key to be tracked (under OOM Redis queues no command
			// in a MULTI), though it still answers the read itself: make
			// it plainly, without a local copy.
			return c.doBefore(ctx, deadline, plainRead([]string{name, key}))
		}
		return rueidis.NewErrorResult(err)
	}
	if plain != nil {
		c.written.trust(key, false, since)
	}
	return res
}

// doBefore is Do bounded by deadline too, when it is set.
func (c *Client) doBefore(ctx context.Context, deadline time.Time, cmd rueidis.Completed) rueidis.RedisResult {
	if deadline.IsZero() {
		return c.Do(ctx, cmd)
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return c.Do(dctx, cmd) // a passed deadline comes back as ErrUnavailable (end)
}

func errorResults(n int, err error) []rueidis.RedisResult {
	out := make([]rueidis.RedisResult, n)
	for i := range out {
		out[i] = rueidis.NewErrorResult(err)
	}
	return out
}

// admit checks that the caller still waits, that the client is open and
// connected, and that the breaker lets the call through. Nothing here
// touches the network, so a refused call costs microseconds.
func (c *Client) admit(ctx context.Context, slot uint16) (rueidis.Client, *nodeBreaker, func(error), error) {
	if err := ctx.Err(); err != nil {
		// The caller gave up before we started: not Redis's fault.
		return nil, nil, nil, c.callerError(ctx, err)
	}
	select {
	case <-c.closed:
		return nil, nil, nil, ErrClosed
	default:
	}
	rdb := c.rdb.Load()
	if rdb == nil {
		c.m.errNotConnected.Inc()
		return nil, nil, nil, c.notConnected()
	}
	n := c.breakerFor(slot)
	done, err := n.Allow()
	if err != nil {
		c.m.errBreakerOpen.Inc()
		return nil, nil, nil, unavailable(err)
	}
	return *rdb, n, done, nil
}

// sent counts one round trip and shows the hook its command names.
func (c *Client) sent(names []string) {
	c.roundTrip.Add(1)
	if c.cfg.CommandHook != nil {
		c.cfg.CommandHook(names)
	}
}

// observed tells Config.CommandObserver of one round trip; a Redis nil
// reply is an answer, not an error.
func (c *Client) observed(ctx context.Context, names []string, start time.Time, err error) {
	if c.cfg.CommandObserver == nil || len(names) == 0 {
		return
	}
	if rueidis.IsRedisNil(err) {
		err = nil
	}
	c.cfg.CommandObserver(ctx, names, start, err)
}

// end records the outcome with the breaker, the node's lease (n, nil when
// the command did not go over the node's connection) and the metrics, and
// returns the error to give the caller instead of Redis's, or nil to keep
// the result. ctx is the caller's context (not the one with the client's
// deadline, which is always cancelled by the time end runs).
func (c *Client) end(ctx context.Context, start time.Time, n *nodeBreaker, done func(error), err error) error {
	now := time.Now()
	c.m.duration.Observe(now.Sub(start).Seconds())
	if !isConnectionFailure(err) {
		done(nil)
		if n != nil {
			n.answered(start, now)
		}
		return nil
	}
	if n != nil && errors.Is(err, context.DeadlineExceeded) && n.repliedSince(start) {
		// The caller's deadline passed while the node kept answering: it is
		// up, only slower than this caller's budget (a backlog, or this
		// process starved of CPU by a burst, which is what tripped the
		// breaker for every caller before). Not an outage, so the breaker
		// does not count it and the lease stays; a backlog longer than
		// LocalLease lapses the lease by itself.
		done(errBreakerExcluded)
		c.m.errTimeout.Inc()
		return unavailable(err)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		// The caller gave up; that says nothing about Redis, nor about
		// the connection (rueidis keeps it, replies stay in order).
		done(errBreakerExcluded)
		c.m.errCanceled.Inc()
		return ctx.Err()
	}
	if n != nil {
		n.lost()
	}
	done(err)
	if isTimeout(err) {
		c.m.errTimeout.Inc()
	} else {
		c.m.errConnection.Inc()
	}
	return unavailable(err)
}

// callerError is what a call returns when its context ended: the context's
// own error when the caller cancelled, ErrUnavailable (wrapping
// context.DeadlineExceeded) when a deadline passed.
func (c *Client) callerError(ctx context.Context, err error) error {
	if ctx.Err() == context.Canceled {
		return context.Canceled
	}
	return unavailable(err)
}

// unavailable wraps err in ErrUnavailable, keeping err matchable with
// errors.Is (context.DeadlineExceeded, net errors).
func unavailable(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// deadline gives ctx the client's CommandTimeout unless it already has an
// earlier deadline, in which case it costs nothing (no timer, no allocation).
func (c *Client) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return withBudget(ctx, c.cfg.CommandTimeout)
}

// withBudget returns ctx bounded by d from now, reusing ctx when its own
// deadline comes first.
func withBudget(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return ctx, noCancel
	}
	return context.WithTimeout(ctx, d)
}

func noCancel() {}

// Ping checks Redis with PING, for readiness probes. It goes through the
// breaker like any call, so an open breaker answers at once.
func (c *Client) Ping(ctx context.Context) error {
	return c.Do(ctx, c.B().Ping().Build()).Error()
}

// Connected reports whether a connection has been made at least once.
func (c *Client) Connected() bool { return c.rdb.Load() != nil }

// Close ends the connection loop, cancels background work (refreshes
// started by Cache) and waits for it, and closes the connections. Calls
// after Close fail with ErrClosed.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		c.bgMu.Lock()
		c.closing = true
		c.bgMu.Unlock()
		close(c.closed)
		c.stop()
		c.bg.Wait()
		if rdb := c.rdb.Load(); rdb != nil {
			(*rdb).Close()
		}
	})
}

// dedicatedPipeline is rueidis's BlockingPipeline default: a pipeline of
// this many commands goes over a connection of its own.
const dedicatedPipeline = 2000

// localTierMultiplex is rueidis's PipelineMultiplex: one connection per
// node (-1) with the local tier on, rueidis's default (0) without.
func localTierMultiplex(disabled bool) int {
	if disabled {
		return 0
	}
	return -1
}
