package ratelimit

import (
	"hash/maphash"
	"sort"
	"sync"
	"time"
)

// blockShards spreads the blocked-key cache over several locks, so a flood
// on many cores does not queue on one mutex.
const blockShards = 16

// blockCache remembers keys that Redis refused, until their retry time: a
// request with at least the refused cost cannot fit before then (counts only
// grow until units leave the window), so refusing it locally is what Redis
// would decide, at no round trip. It is bounded; when full it first drops
// expired entries, then an arbitrary one, which at worst costs that key one
// more round trip.
type blockCache struct {
	seed   maphash.Seed
	max    int // per shard
	shards [blockShards]blockShard
}

type blockShard struct {
	mu sync.Mutex
	m  map[string]blockEntry
}

type blockEntry struct {
	until  time.Time
	cost   int
	policy int // index of the refusing policy, for the headers
}

func newBlockCache(size int) *blockCache {
	c := &blockCache{seed: maphash.MakeSeed(), max: max(1, size/blockShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]blockEntry)
	}
	return c
}

func (c *blockCache) shard(key string) *blockShard {
	return &c.shards[maphash.String(c.seed, key)%blockShards]
}

// get reports how long key stays blocked for cost, and by which policy.
// It reads the clock only for a key it holds: most keys are not blocked,
// and a clock read is a good part of a decision spent from a lease.
func (c *blockCache) get(key string, cost int, clock func() time.Time) (time.Duration, int, bool) {
	s := c.shard(key)
	s.mu.Lock()
	e, ok := s.m[key]
	var now time.Time
	if ok {
		if now = clock(); !now.Before(e.until) {
			delete(s.m, key)
			ok = false
		}
	}
	s.mu.Unlock()
	if !ok || cost < e.cost {
		// A smaller request might still fit: let Redis decide.
		return 0, 0, false
	}
	return e.until.Sub(now), e.policy, true
}

func (c *blockCache) put(key string, cost, policy int, until time.Time) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && e.cost < cost && e.until.After(until) {
		// Keep the entry that blocks more requests for longer.
		return
	}
	if _, ok := s.m[key]; !ok && len(s.m) >= c.max {
		now := until // any entry ending before this one's end is older
		for k, e := range s.m {
			if e.until.Before(now) {
				delete(s.m, k)
			}
		}
		for k := range s.m {
			if len(s.m) < c.max {
				break
			}
			delete(s.m, k)
		}
	}
	s.m[key] = blockEntry{until: until, cost: cost, policy: policy}
}

func (c *blockCache) del(key string) {
	s := c.shard(key)
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
}

func (c *blockCache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += len(c.shards[i].m)
		c.shards[i].mu.Unlock()
	}
	return n
}

// fallback is the in-memory limiter of LocalFallback: the same bucketed
// sliding window as the Redis script, on the app clock, at each policy's
// Limit ÷ Instances. It is bounded to a number of keys; when full it drops
// keys with nothing counted, then arbitrary ones.
type fallback struct {
	mu      sync.Mutex
	max     int
	buckets int
	m       map[string]*fbKey
}

type fbKey struct {
	pols [MaxPolicies][]fbBucket
}

type fbBucket struct {
	idx   int64
	count int
}

func newFallback(size, buckets int) *fallback {
	return &fallback{max: size, buckets: buckets, m: make(map[string]*fbKey)}
}

func (f *fallback) allow(l *Limiter, key string, cost int, now time.Time) Decision {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.m[key]
	if k == nil {
		if len(f.m) >= f.max {
			f.evict(l, now)
		}
		k = &fbKey{}
		f.m[key] = k
	}
	t := now.UnixMicro()
	d := Decision{Allowed: true, Source: SourceFallback, n: len(l.policies), key: key, cost: cost, micros: t}
	sums := [MaxPolicies]int{}
	for i := range l.policies {
		p := &l.policies[i]
		window, width := p.rate.Window.Microseconds(), f.width(p)
		oldest := floorDiv(t-window, width)
		live := k.pols[i][:0]
		for _, b := range k.pols[i] {
			if b.idx >= oldest {
				live = append(live, b)
				sums[i] += b.count
			}
		}
		k.pols[i] = live
		if sums[i]+cost > p.fallbackLimit {
			d.Allowed = false
		}
	}
	for i := range l.policies {
		p := &l.policies[i]
		window, width := p.rate.Window.Microseconds(), f.width(p)
		cur := floorDiv(t, width)
		if d.Allowed && cost > 0 {
			bs := k.pols[i]
			if n := len(bs); n > 0 && bs[n-1].idx == cur {
				bs[n-1].count += cost
			} else {
				k.pols[i] = append(bs, fbBucket{cur, cost})
			}
			sums[i] += cost
		}
		s := &d.states[i]
		s.Name, s.Limit, s.Window = p.name, p.fallbackLimit, p.rate.Window
		s.Remaining = max(0, p.fallbackLimit-sums[i])
		bs := k.pols[i]
		if len(bs) > 0 {
			s.Reset = time.Duration((bs[len(bs)-1].idx+1)*width+window-t) * time.Microsecond
		}
		if excess := sums[i] + cost - p.fallbackLimit; !d.Allowed && excess > 0 {
			acc := 0
			for _, b := range bs {
				if acc += b.count; acc >= excess {
					s.RetryAfter = time.Duration((b.idx+1)*width+window-t) * time.Microsecond
					break
				}
			}
			d.RetryAfter = max(d.RetryAfter, s.RetryAfter)
		}
	}
	return d
}

// width is the bucket width in µs of p in the fallback (the same as the
// Redis buckets for SlidingWindow).
func (f *fallback) width(p *policy) int64 {
	return max(1000, p.rate.Window.Microseconds()/int64(f.buckets))
}

func (f *fallback) refund(l *Limiter, d Decision) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.m[d.key]
	if k == nil {
		return
	}
	for i := range l.policies {
		idx := floorDiv(d.micros, f.width(&l.policies[i]))
		for j := range k.pols[i] {
			if b := &k.pols[i][j]; b.idx == idx && b.count >= d.cost {
				b.count -= d.cost
			}
		}
	}
}

// evict makes room: keys with nothing left in any window go first; if none,
// the key with the oldest newest bucket.
func (f *fallback) evict(l *Limiter, now time.Time) {
	t := now.UnixMicro()
	for key, k := range f.m {
		empty := true
		for i := range l.policies {
			p := &l.policies[i]
			oldest := floorDiv(t-p.rate.Window.Microseconds(), f.width(p))
			if bs := k.pols[i]; len(bs) > 0 && bs[len(bs)-1].idx >= oldest {
				empty = false
			}
		}
		if empty {
			delete(f.m, key)
		}
	}
	if len(f.m) < f.max {
		return
	}
	type aged struct {
		key string
		idx int64
	}
	all := make([]aged, 0, len(f.m))
	for key, k := range f.m {
		var newest int64
		if bs := k.pols[0]; len(bs) > 0 {
			newest = bs[len(bs)-1].idx
		}
		all = append(all, aged{key, newest})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].idx < all[j].idx })
	for _, a := range all[:min(len(all), len(all)-f.max+1+len(all)/16)] {
		delete(f.m, a.key)
	}
}

func (f *fallback) del(key string) {
	f.mu.Lock()
	delete(f.m, key)
	f.mu.Unlock()
}

// floorDiv divides rounding toward minus infinity, as Lua's math.floor does.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
