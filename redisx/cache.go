package redisx

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"
)

// ErrNotFound is matched (errors.Is) by the error Cache returns when the
// loader reported "not found" (per CacheOptions.NotFound), whether the
// loader ran now or a negative entry was cached.
var ErrNotFound = errors.New("redisx: not found")

// CacheOptions tune a cache-aside lookup. The zero value of each field means
// its documented default.
type CacheOptions struct {
	// TTL is how long a loaded value is fresh. Required.
	TTL time.Duration

	// Jitter adds up to this fraction of TTL at random, so keys loaded
	// together do not expire together. The default is 0.1; negative means none.
	Jitter float64

	// StaleFor keeps a value this long past TTL; a lookup in that window
	// returns the stale value at once and starts one background refresh
	// (stale-while-revalidate). The default is 0: no stale values.
	StaleFor time.Duration

	// NotFound tells which loader errors mean "not found". With NegativeTTL,
	// such results are cached too, so a flood of lookups for a missing id
	// does not reach the loader. The default is no error.
	NotFound    func(error) bool
	NegativeTTL time.Duration

	// LeaseTTL is how long one process may hold the cross-process load
	// lease; others wait for its value meanwhile. The default is 3s.
	LeaseTTL time.Duration

	// LoadTimeout bounds one loader call, which runs detached from the
	// callers' contexts. The default is 10s.
	LoadTimeout time.Duration
}

func (o CacheOptions) withDefaults() CacheOptions {
	if o.Jitter == 0 {
		o.Jitter = 0.1
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 3 * time.Second
	}
	if o.LoadTimeout == 0 {
		o.LoadTimeout = 10 * time.Second
	}
	return o
}

// Cache is cache-aside for JSON-encodable values, as the original guide's
// redisService.cache(key, fetch, ttl): it returns the value at key, or runs
// load, stores its result for ttl and returns it.
func Cache[T any](ctx context.Context, c *Client, key string, ttl time.Duration, load func(context.Context) (T, error)) (T, error) {
	return CacheWith(ctx, c, key, CacheOptions{TTL: ttl}, load)
}

// CacheWith is Cache with options.
func CacheWith[T any](ctx context.Context, c *Client, key string, opt CacheOptions, load func(context.Context) (T, error)) (T, error) {
	var v T
	b, err := c.CacheBytes(ctx, key, opt, func(ctx context.Context) ([]byte, error) {
		v, err := load(ctx)
		if err != nil {
			return nil, err
		}
		return json.Marshal(v)
	})
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("redisx: decode %q: %w", key, err)
	}
	return v, nil
}

// CacheBytes is the cache-aside behind Cache, for values already encoded.
//
// It holds under a stampede: concurrent misses of one key in this process
// run load once (Flight); across processes a short Redis lease (SET NX PX)
// lets one process load while the others wait for its value. When Redis is
// unavailable it calls load directly, at most 16 loads at a time.
func (c *Client) CacheBytes(ctx context.Context, key string, opt CacheOptions, load func(context.Context) ([]byte, error)) ([]byte, error) {
	if opt.TTL <= 0 {
		return nil, fmt.Errorf("redisx: cache %q: TTL must be positive", key)
	}
	opt = opt.withDefaults()
	raw, found, err := c.Get(ctx, key)
	switch {
	case errors.Is(err, ErrUnavailable):
		c.metrics.cache.WithLabelValues("fallback").Inc()
		return c.fallbackLoad(ctx, key, opt, load)
	case err != nil:
		return nil, err
	case found:
		if e, ok := decodeEntry(raw); ok {
			now := time.Now()
			if now.Before(e.softExpiry) {
				c.metrics.cache.WithLabelValues("hit").Inc()
				return e.result(key)
			}
			if opt.StaleFor > 0 && now.Before(e.softExpiry.Add(opt.StaleFor)) {
				c.metrics.cache.WithLabelValues("stale").Inc()
				c.refreshInBackground(key, opt, load)
				return e.result(key)
			}
		}
		// Expired, or written by something else: load it again.
	}
	c.metrics.cache.WithLabelValues("miss").Inc()
	v, shared, err := c.flight.Do(ctx, key, func() ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opt.LoadTimeout)
		defer cancel()
		return c.loadWithLease(ctx, key, opt, load)
	})
	if shared {
		c.metrics.cache.WithLabelValues("coalesced").Inc()
	}
	return v, err
}

// fallbackLoad runs load while Redis is down, still coalesced per key and
// bounded, so a dead Redis does not turn into an unbounded database load.
func (c *Client) fallbackLoad(ctx context.Context, key string, opt CacheOptions, load func(context.Context) ([]byte, error)) ([]byte, error) {
	v, _, err := c.flight.Do(ctx, "fallback\x00"+key, func() ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opt.LoadTimeout)
		defer cancel()
		select {
		case c.loads <- struct{}{}:
			defer func() { <-c.loads }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return c.callLoader(ctx, opt, load)
	})
	return v, err
}

func (c *Client) callLoader(ctx context.Context, opt CacheOptions, load func(context.Context) ([]byte, error)) ([]byte, error) {
	v, err := load(ctx)
	if err != nil && opt.NotFound != nil && opt.NotFound(err) {
		return nil, notFoundError{err}
	}
	return v, err
}

// loadWithLease takes the key's lease and loads, or waits for the holder's
// value. If the holder dies its lease expires and a waiter takes over.
func (c *Client) loadWithLease(ctx context.Context, key string, opt CacheOptions, load func(context.Context) ([]byte, error)) ([]byte, error) {
	lease := key + ":lease"
	token := leaseToken()
	poll := 5 * time.Millisecond
	for {
		got, err := c.Do(ctx, c.B().Set().Key(lease).Value(token).Nx().Px(opt.LeaseTTL).Build()).ToString()
		if err == nil && got == "OK" {
			defer func() {
				// Release only our own lease, not one taken after ours expired.
				_ = releaseLease.Run(context.WithoutCancel(ctx), c, []string{lease}, []string{token}).Error()
			}()
			return c.loadAndStore(ctx, key, opt, load)
		}
		if err != nil && !IsNil(err) {
			// Redis failed mid-way: load without the lease rather than fail.
			c.metrics.cache.WithLabelValues("fallback").Inc()
			return c.callLoader(ctx, opt, load)
		}
		// Someone else is loading: wait for their value.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
		poll = min(poll*2, 50*time.Millisecond)
		raw, found, err := c.Get(ctx, key)
		if err == nil && found {
			if e, ok := decodeEntry(raw); ok && time.Now().Before(e.softExpiry) {
				return e.result(key)
			}
		}
	}
}

func (c *Client) loadAndStore(ctx context.Context, key string, opt CacheOptions, load func(context.Context) ([]byte, error)) ([]byte, error) {
	v, err := c.callLoader(ctx, opt, load)
	var nf notFoundError
	switch {
	case errors.As(err, &nf) && opt.NegativeTTL > 0:
		c.store(ctx, key, entry{negative: true, softExpiry: time.Now().Add(opt.NegativeTTL)}, opt.NegativeTTL)
		return nil, err
	case err != nil:
		return nil, err
	}
	fresh := opt.TTL
	if opt.Jitter > 0 {
		fresh += time.Duration(mrand.Float64() * opt.Jitter * float64(opt.TTL))
	}
	c.store(ctx, key, entry{value: v, softExpiry: time.Now().Add(fresh)}, fresh+opt.StaleFor)
	return v, nil
}

// store writes an entry; a failure only costs a later miss, so it is counted
// but not returned: the caller has its value.
func (c *Client) store(ctx context.Context, key string, e entry, ttl time.Duration) {
	if err := c.Set(ctx, key, e.encode(), ttl); err != nil {
		c.metrics.cache.WithLabelValues("error").Inc()
	}
}

// refreshInBackground reloads a stale key once, detached from the request,
// in a bounded pool: when the pool is full the stale value simply stays a
// little longer.
func (c *Client) refreshInBackground(key string, opt CacheOptions, load func(context.Context) ([]byte, error)) {
	select {
	case c.refreshes <- struct{}{}:
	default:
		return
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		defer func() { <-c.refreshes }()
		ctx, cancel := context.WithTimeout(context.Background(), opt.LoadTimeout)
		defer cancel()
		_, _, _ = c.flight.Do(ctx, key, func() ([]byte, error) {
			return c.loadWithLease(ctx, key, opt, load)
		})
	}()
}

var releaseLease = NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

func leaseToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type notFoundError struct{ err error }

func (e notFoundError) Error() string        { return e.err.Error() }
func (e notFoundError) Unwrap() error        { return e.err }
func (e notFoundError) Is(target error) bool { return target == ErrNotFound }

// entry is what CacheBytes stores: a version byte, a flags byte, the soft
// expiry in Unix milliseconds, then the value. The version lets a later
// release change the layout; an entry it cannot read is a miss.
type entry struct {
	negative   bool
	softExpiry time.Time
	value      []byte
}

const (
	entryVersion  = 1
	entryNegative = 1 << 0
	entryHeader   = 10
)

func (e entry) encode() []byte {
	b := make([]byte, entryHeader, entryHeader+len(e.value))
	b[0] = entryVersion
	if e.negative {
		b[1] = entryNegative
	}
	binary.BigEndian.PutUint64(b[2:], uint64(e.softExpiry.UnixMilli()))
	return append(b, e.value...)
}

func decodeEntry(b []byte) (entry, bool) {
	if len(b) < entryHeader || b[0] != entryVersion || b[1]&^entryNegative != 0 {
		return entry{}, false
	}
	e := entry{
		negative:   b[1]&entryNegative != 0,
		softExpiry: time.UnixMilli(int64(binary.BigEndian.Uint64(b[2:]))),
		value:      b[entryHeader:],
	}
	if e.negative && len(e.value) != 0 {
		return entry{}, false
	}
	return e, true
}

func (e entry) result(key string) ([]byte, error) {
	if e.negative {
		return nil, fmt.Errorf("%w: %s (cached)", ErrNotFound, key)
	}
	return e.value, nil
}
