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
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
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
	switch {
	case o.Jitter == 0:
		o.Jitter = 0.1
	case !(o.Jitter > 0): // negative or NaN
		o.Jitter = 0
	case o.Jitter > 1:
		o.Jitter = 1
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 3 * time.Second
	}
	if o.LoadTimeout <= 0 {
		o.LoadTimeout = 10 * time.Second
	}
	if o.StaleFor < 0 {
		o.StaleFor = 0
	}
	return o
}

// Cache is cache-aside for JSON-encodable values, as the original guide's
// redisService.cache(key, fetch, ttl): it returns the value at key, or runs
// load, stores its result for ttl and returns it.
func Cache[T any](ctx context.Context, c *Client, key string, ttl time.Duration, load func(context.Context) (T, error)) (T, error) {
	return CacheWith(ctx, c, key, CacheOptions{TTL: ttl}, load)
}

// CacheWith is Cache with options. A stored value that does not decode as
// T (written by another version, or corrupt) is a miss: load runs and
// replaces it.
func CacheWith[T any](ctx context.Context, c *Client, key string, opt CacheOptions, load func(context.Context) (T, error)) (T, error) {
	// One allocation for the codec and the result together: the hit path
	// makes no closures.
	cd := &jsonCodec[T]{fn: load}
	if _, err := c.cacheBytes(ctx, key, opt, cd); err != nil {
		var zero T
		return zero, err
	}
	return cd.v, nil
}

// CacheBytes is the cache-aside behind Cache, for values already encoded.
//
// It holds under a stampede: concurrent misses of one key in this process
// run load once (Flight), detached from the callers' contexts; across
// processes a short Redis lease (SET NX PX) lets one process load while
// the others wait for its value. When Redis is unavailable it calls load
// directly, still coalesced per key and at most 16 loads at a time, and the
// lookup gets at most half of the caller's remaining time, so the loader
// has the other half.
func (c *Client) CacheBytes(ctx context.Context, key string, opt CacheOptions, load func(context.Context) ([]byte, error)) ([]byte, error) {
	return c.cacheBytes(ctx, key, opt, rawCodec(load))
}

// codec is what cacheBytes needs from its caller. load makes a fresh
// encoded value; decode takes the bytes about to be returned, in the
// caller's goroutine (a stored value it rejects is a miss, a loaded one an
// error); valid tells, with no side effect, whether decode would accept a
// value another instance stored: the shared load uses it, since it cannot
// call any one caller's decode.
type codec interface {
	load(context.Context) ([]byte, error)
	decode([]byte) error
	valid([]byte) bool
}

// rawCodec is the codec of CacheBytes: bytes are taken as they are.
type rawCodec func(context.Context) ([]byte, error)

func (f rawCodec) load(ctx context.Context) ([]byte, error) { return f(ctx) }
func (rawCodec) decode([]byte) error                        { return nil }
func (rawCodec) valid([]byte) bool                          { return true }

// jsonCodec is the codec of CacheWith; decode leaves the value in v.
type jsonCodec[T any] struct {
	v  T
	fn func(context.Context) (T, error)
}

func (j *jsonCodec[T]) load(ctx context.Context) ([]byte, error) {
	x, err := j.fn(ctx)
	if err != nil {
		return nil, err
	}
	return json.Marshal(x)
}

func (j *jsonCodec[T]) decode(b []byte) error {
	var zero T
	j.v = zero // a failed earlier decode may have filled part of v
	return json.Unmarshal(b, &j.v)
}

func (j *jsonCodec[T]) valid(b []byte) bool {
	var x T
	return json.Unmarshal(b, &x) == nil
}

func (c *Client) cacheBytes(ctx context.Context, key string, opt CacheOptions, cd codec) ([]byte, error) {
	if opt.TTL <= 0 {
		return nil, fmt.Errorf("redisx: cache %q: TTL must be positive", key)
	}
	opt = opt.withDefaults()

	lctx, cancel := ctx, noCancel
	if dl, ok := ctx.Deadline(); ok {
		if half := time.Until(dl) / 2; half < c.cfg.CommandTimeout {
			lctx, cancel = context.WithTimeout(ctx, half)
		}
	}
	raw, found, err := c.Get(lctx, key)
	cancel()
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, c.callerError(ctx, ctx.Err())
	case errors.Is(err, ErrUnavailable):
		c.m.cacheFallback.Inc()
		v, err := c.fallbackLoad(ctx, key, opt, cd)
		return finish(key, cd, v, err)
	case err != nil:
		// A reply error (WRONGTYPE: something else lives at key) is a
		// foreign entry: a miss, which the load below overwrites.
		c.m.cacheError.Inc()
	case found:
		if e, ok := decodeEntry(raw); ok {
			now := time.Now()
			fresh := now.Before(e.softExpiry)
			stale := !fresh && opt.StaleFor > 0 && now.Before(e.softExpiry.Add(opt.StaleFor))
			if (fresh || stale) && (e.negative || cd.decode(e.value) == nil) {
				if fresh {
					c.m.cacheHit.Inc()
				} else {
					c.m.cacheStale.Inc()
					c.refreshInBackground(key, opt, cd)
				}
				return e.result(key)
			}
		}
		// Expired, corrupt or written by something else: load it again.
	}
	c.m.cacheMiss.Inc()
	v, shared, err := c.flight.Do(ctx, c.flightKey(key), func() ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opt.LoadTimeout)
		defer cancel()
		defer context.AfterFunc(c.life, cancel)()
		return c.loadWithLease(ctx, key, opt, cd)
	})
	if shared {
		c.m.cacheCoalesced.Inc()
	}
	return finish(key, cd, v, err)
}

// finish runs decode on a successful result, turning its failure into the
// call's error.
func finish(key string, cd codec, b []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	if err := cd.decode(b); err != nil {
		return nil, fmt.Errorf("redisx: decode %q: %w", key, err)
	}
	return b, nil
}

// fallbackLoad runs load while Redis is down, still coalesced per key and
// bounded, so a dead Redis does not turn into an unbounded database load.
func (c *Client) fallbackLoad(ctx context.Context, key string, opt CacheOptions, cd codec) ([]byte, error) {
	v, _, err := c.flight.Do(ctx, "fallback\x00"+c.flightKey(key), func() ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opt.LoadTimeout)
		defer cancel()
		select {
		case c.loads <- struct{}{}:
			defer func() { <-c.loads }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return c.callLoader(ctx, opt, cd)
	})
	return v, err
}

func (c *Client) callLoader(ctx context.Context, opt CacheOptions, cd codec) ([]byte, error) {
	v, err := cd.load(ctx)
	if err != nil && opt.NotFound != nil && opt.NotFound(err) {
		return nil, notFoundError{err}
	}
	return v, err
}

// loadWithLease takes the key's lease and loads, or waits for the holder's
// value. Each attempt is one round trip: SET lease NX PX and GET key in one
// pipeline, so a value stored just before we took the lease is used, not
// loaded again. If the holder dies its lease expires and a waiter takes over.
func (c *Client) loadWithLease(ctx context.Context, key string, opt CacheOptions, cd codec) ([]byte, error) {
	lease, sameSlot := leaseKey(key)
	token := leaseToken()
	poll := 5 * time.Millisecond
	for {
		res := c.DoMulti(ctx,
			c.B().Set().Key(lease).Value(token).Nx().PxMilliseconds(millis(opt.LeaseTTL)).Build(),
			c.B().Get().Key(key).Build())
		got, err := res[0].ToString()
		held := err == nil && got == "OK"
		released := false // set when the store script released the lease
		if held {
			defer func() {
				// Release only our own lease, not one taken after ours
				// expired, unless the store script already did.
				if !released {
					_ = releaseLease.Run(context.WithoutCancel(ctx), c, []string{lease}, []string{token}).Error()
				}
			}()
		}
		if raw, gerr := res[1].AsBytes(); gerr == nil {
			if e, ok := decodeEntry(raw); ok && time.Now().Before(e.softExpiry) && (e.negative || cd.valid(e.value)) {
				return e.result(key)
			}
		}
		if held {
			storeToken := token
			if !sameSlot {
				storeToken = "" // the store cannot check the lease in the same script
			}
			var v []byte
			v, released, err = c.loadAndStore(ctx, key, lease, storeToken, opt, cd)
			return v, err
		}
		switch {
		case err != nil && !IsNil(err):
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// Redis failed mid-way: load without the lease rather than fail.
			// Full (the lease's SET refused), nothing could be stored anyway.
			if errors.Is(err, ErrOutOfMemory) {
				c.m.cacheOOM.Inc()
			} else {
				c.m.cacheFallback.Inc()
			}
			return c.callLoader(ctx, opt, cd)
		}
		// Someone else holds the lease: wait for their value.
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		poll = min(poll*2, 50*time.Millisecond)
	}
}

// loadAndStore runs the loader and stores its result. With a token, the
// store happens only while the lease still holds it: Invalidate deletes the
// lease, so a load that began before a write cannot put the old value back
// after the write's invalidation.
// released reports that the store script released the lease.
func (c *Client) loadAndStore(ctx context.Context, key, lease, token string, opt CacheOptions, cd codec) (v []byte, released bool, err error) {
	v, err = c.callLoader(ctx, opt, cd)
	// The store gets its own deadline: a loader that used most of the load
	// timeout must not make its result impossible to keep.
	sctx := context.WithoutCancel(ctx)
	var nf notFoundError
	switch {
	case errors.As(err, &nf) && opt.NegativeTTL > 0:
		released = c.store(sctx, key, lease, token, entry{negative: true, softExpiry: time.Now().Add(opt.NegativeTTL)}, opt.NegativeTTL)
		return nil, released, err
	case err != nil:
		return nil, false, err
	}
	fresh := opt.TTL + jitter(opt.TTL, opt.Jitter)
	released = c.store(sctx, key, lease, token, entry{value: v, softExpiry: time.Now().Add(fresh)}, fresh+opt.StaleFor)
	return v, released, nil
}

// jitter returns a random duration in [0, frac·ttl], frac in [0, 1].
func jitter(ttl time.Duration, frac float64) time.Duration {
	if frac <= 0 {
		return 0
	}
	return time.Duration(mrand.Float64() * frac * float64(ttl))
}

// store writes an entry; a failure only costs a later miss, so it is counted
// but not returned: the caller has its value.
// With a token it runs storeIfLeased, which also releases the lease, and
// reports whether that script ran.
func (c *Client) store(ctx context.Context, key, lease, token string, e entry, ttl time.Duration) (released bool) {
	if token == "" {
		if err := c.Set(ctx, key, e.encode(), ttl); err != nil {
			c.m.cacheFailed(err)
		}
		return false
	}
	err := storeIfLeased.Run(ctx, c, []string{key, lease},
		[]string{token, rueidis.BinaryString(e.encode()), strconv.FormatInt(millis(ttl), 10)}).Error()
	if err != nil {
		c.m.cacheFailed(err)
		return false
	}
	return true
}

// storeIfLeased stores the value only if the lease still holds our token,
// then releases the lease: one round trip for both.
var storeIfLeased = NewScript(`
-- KEYS[1] the entry, KEYS[2] its lease; ARGV: token, value, ttl in ms.
-- Invalidate deleted the lease if the data changed while we loaded:
-- storing now would put back what the write replaced.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
return 1`)

// Invalidate deletes cache-aside entries after the data behind them
// changed, together with their load leases, so a load that was already
// running when the data changed does not store its old result
// (CacheBytes's store checks its lease). Use it instead of Delete for keys
// filled by Cache.
func (c *Client) Invalidate(ctx context.Context, keys ...string) error {
	c.invalidations.Add(1)
	cmds := make([]rueidis.Completed, 0, len(keys))
	for _, k := range keys {
		lease, sameSlot := leaseKey(k)
		if sameSlot {
			cmds = append(cmds, c.B().Unlink().Key(k, lease).Build().ToRetryable())
		} else {
			cmds = append(cmds, c.B().Unlink().Key(k).Build().ToRetryable(), c.B().Unlink().Key(lease).Build().ToRetryable())
		}
	}
	for _, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("redisx: invalidate: %w", err)
		}
	}
	return nil
}

// flightKey is the Flight key of a load of key: no join across a write. A
// lookup that begins after an Invalidate began in this process never joins
// a load begun before it (which may have read the data before the change),
// even though storeIfLeased keeps that load's result out of Redis: it
// starts a load of its own. Invalidations are rare next to lookups, so one
// count for every key is enough.
func (c *Client) flightKey(key string) string {
	return key + "\x00" + strconv.FormatUint(c.invalidations.Load(), 10)
}

// leaseKey names the load lease of a cache entry. Keys from Keys carry a
// hash tag, and key+":lease" keeps it, so a script may touch both in
// Redis Cluster; sameSlot is false for a key without a usable hash tag.
func leaseKey(key string) (lease string, sameSlot bool) {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			return key + ":lease", true
		}
	}
	if !strings.ContainsAny(key, "{}") {
		// Tag the whole key: "{key}:lease" hashes exactly like key.
		return "{" + key + "}:lease", true
	}
	return key + ":lease", false
}

// refreshInBackground reloads a stale key once, detached from the request,
// in a bounded pool: when the pool is full the stale value simply stays a
// little longer. Close cancels it.
func (c *Client) refreshInBackground(key string, opt CacheOptions, cd codec) {
	select {
	case c.refreshes <- struct{}{}:
	default:
		return
	}
	started := c.goBackground(func() {
		defer func() { <-c.refreshes }()
		ctx, cancel := context.WithTimeout(c.life, opt.LoadTimeout)
		defer cancel()
		_, _, _ = c.flight.Do(ctx, c.flightKey(key), func() ([]byte, error) {
			return c.loadWithLease(ctx, key, opt, cd)
		})
	})
	if !started {
		<-c.refreshes
	}
}

// releaseLease deletes the lease only if it still holds our token.
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
