package redisx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/rueidis"
	"github.com/sony/gobreaker/v2"
)

// Client is the Redis service: a rueidis client behind per-call deadlines,
// a circuit breaker and metrics, with the key builder. It is safe for
// concurrent use. Make one with New and share it.
type Client struct {
	cfg     Config
	keys    Keys
	opt     rueidis.ClientOption
	rdb     atomic.Pointer[rueidis.Client] // nil until the first connection succeeds
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	metrics *metrics
	flight  Flight[[]byte]
	loads   chan struct{} // bounds loader calls while Redis is down
	// refreshes bounds stale-while-revalidate refreshes in the background.
	refreshes chan struct{}

	closeOnce sync.Once
	closed    chan struct{}
	bg        sync.WaitGroup // the connect loop and background refreshes
	roundTrip atomic.Uint64
}

// errNotConnected is what calls get before the first connection succeeds.
var errNotConnected = errors.New("not connected yet")

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
		metrics:   newMetrics(),
		loads:     make(chan struct{}, 16),
		refreshes: make(chan struct{}, 8),
		closed:    make(chan struct{}),
	}
	c.opt = c.clientOption()
	c.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "redis",
		MaxRequests: 1,
		Timeout:     cfg.BreakerOpenFor,
		ReadyToTrip: func(counts gobreaker.Counts) bool {
			return counts.ConsecutiveFailures >= cfg.BreakerFailures
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errBreakerExcluded) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			c.metrics.breakerState.Set(float64(to))
			cfg.Logger.Warn("redis circuit breaker", "from", from.String(), "to", to.String())
		},
	})

	if err := c.connect(ctx); err != nil {
		cfg.Logger.Warn("redis unreachable at start; serving without it and reconnecting in the background",
			"addrs", cfg.Addrs, "error", err.Error())
		c.bg.Add(1)
		go c.reconnectLoop()
	}
	return c, nil
}

func (c *Client) clientOption() rueidis.ClientOption {
	cfg := c.cfg
	opt := rueidis.ClientOption{
		InitAddress:       cfg.Addrs,
		Username:          cfg.Username,
		Password:          cfg.Password,
		SelectDB:          cfg.DB,
		TLSConfig:         cfg.TLS,
		ClientName:        cfg.ClientName,
		Dialer:            net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second},
		ConnWriteTimeout:  cfg.CommandTimeout + cfg.DialTimeout,
		CacheSizeEachConn: cfg.LocalCacheBytes,
		DisableCache:      cfg.DisableLocalCache,
		// rueidis retries only commands marked read-only or retryable; we
		// mark idempotent writes ourselves, so INCR is never applied twice.
		RetryDelay: func(attempts int, _ rueidis.Completed, _ error) time.Duration {
			return cfg.RetryStrategy(attempts)
		},
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
		c.rdb.Store(&r.rdb)
		c.cfg.Logger.Info("redis connected", "addrs", c.cfg.Addrs)
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

func (c *Client) reconnectLoop() {
	defer c.bg.Done()
	for attempt := 1; ; attempt++ {
		select {
		case <-c.closed:
			return
		case <-time.After(c.cfg.RetryStrategy(attempt)):
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-c.closed:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := c.connect(ctx)
		cancel()
		if err == nil {
			return
		}
	}
}

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
// Connection failures come back as errors wrapping ErrUnavailable; Redis's
// own replies (nil, WRONGTYPE, ...) come back as they are.
func (c *Client) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	rdb, done, err := c.begin(cmd.Commands())
	if err != nil {
		return rueidis.NewErrorResult(err)
	}
	ctx, cancel := c.deadline(ctx)
	start := time.Now()
	res := rdb.Do(ctx, cmd)
	cancel()
	if err := c.end(ctx, start, done, res.Error()); err != nil {
		return rueidis.NewErrorResult(err)
	}
	return res
}

// DoMulti sends cmds in one pipeline: one round trip, one deadline.
func (c *Client) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	if len(cmds) == 0 {
		return nil
	}
	names := make([]string, 0, len(cmds))
	for i := range cmds {
		names = append(names, cmds[i].Commands()[0])
	}
	rdb, done, err := c.beginNames(names)
	if err != nil {
		return errorResults(len(cmds), err)
	}
	ctx, cancel := c.deadline(ctx)
	start := time.Now()
	res := rdb.DoMulti(ctx, cmds...)
	cancel()
	var first error
	for _, r := range res {
		if e := r.Error(); isConnectionFailure(e) {
			first = e
			break
		}
	}
	if err := c.end(ctx, start, done, first); err != nil {
		for i, r := range res {
			if isConnectionFailure(r.Error()) {
				res[i] = rueidis.NewErrorResult(unavailable(r.Error()))
			}
		}
	}
	return res
}

// DoCache sends a read through rueidis's server-assisted client-side cache:
// a local hit costs no round trip; Redis invalidates the local copy when the
// key changes, and ttl bounds how long it is kept in any case.
func (c *Client) DoCache(ctx context.Context, cmd rueidis.Cacheable, ttl time.Duration) rueidis.RedisResult {
	rdb := c.rdb.Load()
	if rdb == nil {
		return rueidis.NewErrorResult(unavailable(errNotConnected))
	}
	done, err := c.breaker.Allow()
	if err != nil {
		c.metrics.errors.WithLabelValues("breaker_open").Inc()
		return rueidis.NewErrorResult(unavailable(err))
	}
	ctx, cancel := c.deadline(ctx)
	start := time.Now()
	res := (*rdb).DoCache(ctx, cmd, ttl)
	cancel()
	if res.IsCacheHit() {
		c.metrics.localHits.Inc()
		done(nil)
		return res
	}
	if c.cfg.CommandHook != nil {
		c.cfg.CommandHook([]string{cmd.Commands()[0]})
	}
	c.roundTrip.Add(1)
	if err := c.end(ctx, start, done, res.Error()); err != nil {
		return rueidis.NewErrorResult(err)
	}
	return res
}

func errorResults(n int, err error) []rueidis.RedisResult {
	out := make([]rueidis.RedisResult, n)
	for i := range out {
		out[i] = rueidis.NewErrorResult(err)
	}
	return out
}

func (c *Client) begin(cmd []string) (rueidis.Client, func(error), error) {
	return c.beginNames(cmd[:1])
}

// beginNames checks that a connection exists and the breaker admits the
// call, and reports the commands to the hook.
func (c *Client) beginNames(names []string) (rueidis.Client, func(error), error) {
	select {
	case <-c.closed:
		return nil, nil, ErrClosed
	default:
	}
	rdb := c.rdb.Load()
	if rdb == nil {
		c.metrics.errors.WithLabelValues("not_connected").Inc()
		return nil, nil, unavailable(errNotConnected)
	}
	done, err := c.breaker.Allow()
	if err != nil {
		c.metrics.errors.WithLabelValues("breaker_open").Inc()
		return nil, nil, unavailable(err)
	}
	if c.cfg.CommandHook != nil {
		c.cfg.CommandHook(names)
	}
	c.roundTrip.Add(1)
	return *rdb, done, nil
}

// end records the outcome with the breaker and metrics, and returns the
// error to give the caller instead of Redis's, or nil to keep the result.
func (c *Client) end(ctx context.Context, start time.Time, done func(error), err error) error {
	c.metrics.duration.Observe(time.Since(start).Seconds())
	if !isConnectionFailure(err) {
		done(nil)
		return nil
	}
	if ctx.Err() == context.Canceled {
		// The caller gave up; that says nothing about Redis.
		done(errBreakerExcluded)
		c.metrics.errors.WithLabelValues("canceled").Inc()
		return err
	}
	done(err)
	if isTimeout(err) {
		c.metrics.errors.WithLabelValues("timeout").Inc()
	} else {
		c.metrics.errors.WithLabelValues("connection").Inc()
	}
	return unavailable(err)
}

func unavailable(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// deadline gives ctx the client's CommandTimeout unless it already has an
// earlier deadline.
func (c *Client) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= c.cfg.CommandTimeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.cfg.CommandTimeout)
}

// Ping checks Redis with PING, for readiness probes. It goes through the
// breaker like any call, so an open breaker answers at once.
func (c *Client) Ping(ctx context.Context) error {
	return c.Do(ctx, c.B().Ping().Build()).Error()
}

// Connected reports whether a connection has been made at least once.
func (c *Client) Connected() bool { return c.rdb.Load() != nil }

// Close ends the connection loop, waits for background work (refreshes
// started by Cache) and closes the connections. Calls after Close fail with
// ErrClosed.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.bg.Wait()
		if rdb := c.rdb.Load(); rdb != nil {
			(*rdb).Close()
		}
	})
}
