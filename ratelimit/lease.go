package ratelimit

import (
	"context"
	"hash/maphash"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// LeaseConfig turns on quota leasing: on a key this instance sees often (a
// hot key), one script call reserves a batch of the shared window's quota
// for the instance, which then spends it request by request with no Redis
// round trip, and gives back what it did not spend. Only SlidingWindow
// leases; see the package documentation for the guarantee and its cost.
// The zero value leases nothing.
type LeaseConfig struct {
	// Enabled turns leasing on. New refuses it for SlidingLog (exact by
	// design and meant for small limits) and GCRA (no bucket edge bounds
	// how late a leased unit is spent, so its bound would not hold).
	Enabled bool
	// MaxBatch is the most units one lease holds, the request that asks
	// for it included. The default is 1000.
	MaxBatch int
	// HotRate is the rate, in units per second of one key seen by this
	// instance, from which the key leases. Below it every decision is one
	// round trip, exactly as without leasing. The default is 100.
	HotRate float64
	// Margin is how long before the end of the lease's time bucket (on
	// Redis's clock, as this instance bounds it) spending stops. It covers
	// the rate difference between this host's monotonic clock and Redis's
	// clock. The default is 2ms plus 0.1% of the bucket width, at most a
	// tenth of the bucket; it must be shorter than the bucket.
	Margin time.Duration
	// Keys bounds how many keys this instance tracks for leasing (their
	// rate and lease); the least recently used of a sample goes first, and
	// its lease is given back. The default is 10,000.
	Keys int
}

// Internal constants of leasing.
const (
	// leaseShards spreads the tracked keys over several locks.
	leaseShards = 16
	// meterPeriod is the period over which a key's rate is measured.
	meterPeriod = int64(100 * time.Millisecond)
	// evictSample is how many keys eviction looks at to find an old one.
	evictSample = 8
	// returnGrace delays the timer that gives back an ended lease, so that
	// a key still hot gives it back with its next lease request instead
	// (no round trip of its own).
	returnGrace = 10 * time.Millisecond
)

// leaseTable is a Limiter's leases: per key, the rate this instance sees
// and the lease being spent. Bounded to a number of keys.
type leaseTable struct {
	l        *Limiter
	hotRate  float64
	margin   int64 // µs
	perShard int
	// args are the lease script's fixed arguments: margin, max batch and
	// share divisor, formatted once.
	marginArg, maxBatchArg, divisorArg string

	seed   maphash.Seed
	shards [leaseShards]leaseShard
	closed atomic.Bool
	// work counts lease requests in flight and returns being sent, for
	// Close to wait on.
	work tracker
}

type leaseShard struct {
	mu sync.RWMutex
	m  map[string]*leaseEntry
}

// leaseEntry is one key's state. Its mutex is held only for a few
// arithmetic steps, never across a round trip.
type leaseEntry struct {
	key     string
	lastUse atomic.Int64 // mono ns, for eviction without the mutex

	mu      sync.Mutex
	evicted bool
	// A rate meter of two periods (see rate).
	start     int64 // mono ns: start of the current period
	cur, prev int64 // units seen in the current and the previous period
	lease     *lease
	// flight is closed when the key's lease request in flight ends; nil
	// when none is: one per key per instance.
	flight chan struct{}
}

// lease is a batch of units charged in Redis to the time bucket of grant,
// for this instance to spend locally. Every unit is spent while Redis's
// clock is provably still inside that bucket (before end − margin), or
// given back: never both. Its fields other than left are set once.
type lease struct {
	grant int64 // µs on Redis's clock when the script charged the batch
	end   int64 // µs on Redis's clock: the end of the grant's bucket (the earliest over the policies)
	// send is this process's monotonic clock (ns) when the lease request
	// was sent. The script ran after it, so Redis's clock at local instant
	// t is at most grant + (t − send): the bound every spend is checked
	// against, and the time reported for it.
	send  int64
	until int64 // mono ns: spending stops here (end − margin, mapped by send)
	left  int   // units not yet spent; under the entry's mutex
	n     int
	rem   [MaxPolicies]int   // each policy's remaining in Redis after the grant
	reset [MaxPolicies]int64 // µs on Redis's clock when each policy is whole again
	timer *time.Timer
}

func newLeaseTable(l *Limiter, cfg LeaseConfig) *leaseTable {
	t := &leaseTable{
		l:           l,
		hotRate:     cfg.HotRate,
		margin:      cfg.Margin.Microseconds(),
		perShard:    max(1, cfg.Keys/leaseShards),
		marginArg:   strconv.FormatInt(cfg.Margin.Microseconds(), 10),
		maxBatchArg: strconv.Itoa(cfg.MaxBatch),
		divisorArg:  strconv.Itoa(2 * l.cfg.Instances),
		seed:        maphash.MakeSeed(),
	}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*leaseEntry)
	}
	return t
}

// defaultMargin is LeaseConfig.Margin's default for a bucket width.
func defaultMargin(width time.Duration) time.Duration {
	return min(2*time.Millisecond+width/1000, width/10)
}

// mono is the clock leases are spent by: this process's monotonic clock in
// ns, or, in this package's tests, the injected script time, so a trace
// with an injected Redis clock spends leases on that same clock.
func (l *Limiter) mono() int64 {
	if l.testNow != nil {
		return l.testNow() * 1000
	}
	return int64(time.Since(l.born))
}

// leaseOutcome says what take did.
type leaseOutcome uint8

const (
	leaseNone    leaseOutcome = iota // no lease for this request: decide directly
	leaseSpent                       // the request was admitted from a lease
	leaseDecided                     // Redis decided, by a lease request (the error, if any, is its failure)
	leaseWaited                      // another request's lease request ended: try again
)

// take admits a request of cost from key's lease when one holds enough
// units in time. Otherwise, for a hot key, it asks Redis for a decision and
// a new lease in one call (giving back what the ended lease did not spend
// in the same call), or waits for the key's lease request in flight when
// mayWait. A cold key gets leaseNone and is decided as without leasing
// (unless it has a lease's remainder to give back: then its decision goes
// through the lease script with rate 0, which decides identically).
func (t *leaseTable) take(ctx context.Context, l *Limiter, key string, cost int, mayWait bool) (Decision, leaseOutcome, error) {
	if t.closed.Load() {
		return Decision{}, leaseNone, nil
	}
	now := l.mono()
	e := t.entry(key, now)
	e.mu.Lock()
	if e.evicted {
		// Evicted between the lookup and the lock: decide directly once.
		e.mu.Unlock()
		return Decision{}, leaseNone, nil
	}
	e.observe(now, cost)
	var ret, retAt int64
	if ls := e.lease; ls != nil {
		if now < ls.until && ls.left >= cost {
			ls.left -= cost
			d := ls.spend(l, key, cost, now)
			e.mu.Unlock()
			return d, leaseSpent, nil
		}
		// Ended, or too small for this request: retire it. What it did not
		// spend goes back with the next lease request, or else now.
		ret, retAt = int64(ls.left), ls.grant
		t.retireLocked(e)
	}
	if ch := e.flight; ch != nil {
		// A lease request or a return of this key is in flight (so there
		// was no lease to retire here): wait for it rather than race it.
		e.mu.Unlock()
		if mayWait {
			select {
			case <-ch:
				return Decision{}, leaseWaited, nil
			case <-ctx.Done():
			}
		}
		return Decision{}, leaseNone, nil
	}
	// A cold key asks for no lease (rate 0 grants none: the decision is the
	// plain script's) but still carries back what its last lease left, in
	// its own decision's call, so Redis sees the return before the decision.
	hot := e.hot(now, t.hotRate)
	if !hot && ret == 0 {
		e.mu.Unlock()
		return Decision{}, leaseNone, nil
	}
	var rate float64
	if hot {
		rate = e.rate(now)
	}
	e.flight = make(chan struct{})
	t.work.add()
	e.mu.Unlock()

	d, extra, send, err := l.requestLease(ctx, key, cost, rate, ret, retAt)

	e.mu.Lock()
	close(e.flight)
	e.flight = nil
	if err == nil && extra > 0 {
		ls := l.newLease(&d, extra, send)
		if e.evicted || t.closed.Load() {
			t.giveBackLocked(l, key, int64(extra), ls.grant)
		} else {
			e.lease = ls
			t.arm(l, e, ls)
		}
	}
	e.mu.Unlock()
	t.work.finish()
	if err == nil {
		if hot {
			l.metrics.leaseRequests.Inc()
		}
		if extra > 0 {
			l.metrics.leaseGranted.Add(float64(extra))
		}
		if ret > 0 {
			l.metrics.leaseReturned.Add(float64(ret))
		}
	} else if ret > 0 {
		l.metrics.leaseUnreturned.Add(float64(ret))
	}
	return d, leaseDecided, err
}

// requestLease runs the lease script: the decision on cost, the return of
// ret units granted at retAt, and a lease of extra units. It returns the
// monotonic time the request was sent, which bounds Redis's clock.
func (l *Limiter) requestLease(ctx context.Context, key string, cost int, rate float64, ret, retAt int64) (Decision, int, int64, error) {
	t := l.leases
	var nowMicros int64
	send := l.mono()
	if l.testNow != nil {
		nowMicros = send / 1000
	}
	args := l.args(cost, nowMicros, "", []string{
		strconv.FormatInt(int64(rate), 10), t.marginArg, t.maxBatchArg, t.divisorArg,
		strconv.FormatInt(ret, 10), strconv.FormatInt(retAt, 10),
	})
	keys := l.keys(key)
	type reply struct {
		d     Decision
		extra int
	}
	r, err := guard(ctx, l.cfg.Timeout, func(ctx context.Context) (reply, error) {
		var v [3 + 3*MaxPolicies]int64
		vals := v[:3+3*len(l.policies)]
		if err := readInts(slidingLeaseScript.Run(ctx, l.rdb, keys, args), vals); err != nil {
			return reply{}, err
		}
		return reply{l.decision(vals[:len(vals)-1]), int(vals[len(vals)-1])}, nil
	})
	if err != nil {
		return Decision{}, 0, 0, err
	}
	r.d.key, r.d.cost = key, cost
	if r.extra < 0 || !r.d.Allowed {
		r.extra = 0
	}
	return r.d, r.extra, send, nil
}

// newLease makes the lease Redis granted with decision d, and reports in
// d's remaining counts what the lease holds, so d's headers say what they
// would have said without leasing.
func (l *Limiter) newLease(d *Decision, extra int, send int64) *lease {
	g := d.micros
	end := int64(1<<63 - 1)
	for i := range l.policies {
		w := l.policies[i].width.Microseconds()
		end = min(end, (floorDiv(g, w)+1)*w)
	}
	ls := &lease{grant: g, end: end, send: send, until: send + (end-l.leases.margin-g)*1000, left: extra, n: d.n}
	for i := 0; i < d.n; i++ {
		ls.rem[i] = d.states[i].Remaining
		ls.reset[i] = g + d.states[i].Reset.Microseconds()
		d.states[i].Remaining += extra
	}
	return ls
}

// spend returns the decision of cost units just taken from ls at mono
// time now. Remaining is what Redis knew at the grant less what this
// instance has spent of the lease since: other instances' admissions since
// the grant are not in it.
func (ls *lease) spend(l *Limiter, key string, cost int, now int64) Decision {
	at := ls.grant + (now-ls.send)/1000
	d := Decision{Allowed: true, Source: SourceLease, Time: time.UnixMicro(at), n: ls.n,
		key: key, cost: cost, micros: at, lease: ls}
	for i := 0; i < ls.n; i++ {
		p := &l.policies[i]
		s := &d.states[i]
		s.Name, s.Limit, s.Window = p.name, p.rate.Limit, p.rate.Window
		s.Remaining = ls.rem[i] + ls.left
		s.Reset = time.Duration(max(0, ls.reset[i]-at)) * time.Microsecond
	}
	return d
}

// arm starts the timer that gives back what an idle key's lease did not
// spend, shortly after the lease ends. Under an injected test clock there
// is no timer: leases end when next touched, or at Close.
func (t *leaseTable) arm(l *Limiter, e *leaseEntry, ls *lease) {
	if l.testNow != nil {
		return
	}
	wait := time.Duration(ls.until-l.mono()) + returnGrace
	ls.timer = time.AfterFunc(max(0, wait), func() {
		e.mu.Lock()
		if e.lease != ls {
			e.mu.Unlock()
			return
		}
		units, at := int64(ls.left), ls.grant
		t.retireLocked(e)
		if units == 0 {
			e.mu.Unlock()
			return
		}
		// The return is the key's request in flight (there is none other
		// while a lease is held): a request of the key that comes now
		// waits for it, so Redis sees the return before that decision.
		e.flight = make(chan struct{})
		t.work.add()
		e.mu.Unlock()
		l.giveBack(e.key, units, at)
		e.mu.Lock()
		close(e.flight)
		e.flight = nil
		e.mu.Unlock()
		t.work.finish()
	})
}

// retireLocked ends e's lease: nothing more is spent from it. The caller
// gives back what it held.
func (t *leaseTable) retireLocked(e *leaseEntry) {
	if ls := e.lease; ls != nil {
		ls.left = 0
		if ls.timer != nil {
			ls.timer.Stop()
		}
		e.lease = nil
	}
}

// giveBackLocked sends a return in the background; the entry's mutex is
// held, so Close, which takes it after marking the table closed, cannot
// miss the return it waits for.
func (t *leaseTable) giveBackLocked(l *Limiter, key string, units, at int64) {
	t.work.add()
	go func() {
		defer t.work.finish()
		l.giveBack(key, units, at)
	}()
}

// giveBack refunds units granted at µs time at to the bucket they were
// charged to: one round trip, bounded by Config.Timeout. A return that
// fails is not retried: if it timed out, Redis may have applied it, and
// applying it twice would give back units that were spent. Units not given
// back stay counted until their bucket leaves the window: the limiter then
// admits less, never more.
func (l *Limiter) giveBack(key string, units, at int64) {
	var nowMicros int64
	if l.testNow != nil {
		nowMicros = l.testNow()
	}
	args := l.args(int(units), nowMicros, "", nil)
	args[1] = strconv.FormatInt(at, 10) // the refund script's charge time
	keys := l.keys(key)
	_, err := guard(context.Background(), l.cfg.Timeout, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, l.refund.Run(ctx, l.rdb, keys, args).Error()
	})
	if err != nil {
		l.metrics.leaseUnreturned.Add(float64(units))
		l.cfg.Logger.Warn("rate limiter could not give back leased units", "limiter", l.cfg.Name,
			"units", units, "error", err.Error())
		return
	}
	l.metrics.leaseReturned.Add(float64(units))
}

// refundLocal gives the units of a leased decision back to its lease when
// that lease is still being spent: no round trip. It reports false when
// the lease has ended; the caller then refunds in Redis.
func (t *leaseTable) refundLocal(l *Limiter, d *Decision) bool {
	e := t.lookup(d.key)
	if e == nil {
		return false
	}
	now := l.mono()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lease != d.lease || now >= d.lease.until {
		return false
	}
	d.lease.left += d.cost
	return true
}

// drop forgets key's lease without giving it back, for Reset: the key's
// counts are gone from Redis.
func (t *leaseTable) drop(key string) {
	if e := t.lookup(key); e != nil {
		e.mu.Lock()
		t.retireLocked(e)
		e.mu.Unlock()
	}
}

// close stops leasing and gives back every lease, waiting for the returns
// (and lease requests in flight) until ctx ends.
func (t *leaseTable) close(ctx context.Context) error {
	t.closed.Store(true)
	var all []*leaseEntry
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		for _, e := range s.m {
			all = append(all, e)
		}
		s.mu.RUnlock()
	}
	for _, e := range all {
		e.mu.Lock()
		if ls := e.lease; ls != nil {
			units, at := int64(ls.left), ls.grant
			t.retireLocked(e)
			if units > 0 {
				t.giveBackLocked(t.l, e.key, units, at)
			}
		}
		e.mu.Unlock()
	}
	return t.work.wait(ctx)
}

func (t *leaseTable) shard(key string) *leaseShard {
	return &t.shards[maphash.String(t.seed, key)%leaseShards]
}

func (t *leaseTable) lookup(key string) *leaseEntry {
	s := t.shard(key)
	s.mu.RLock()
	e := s.m[key]
	s.mu.RUnlock()
	return e
}

// entry returns key's entry, making room for it when the shard is full.
func (t *leaseTable) entry(key string, now int64) *leaseEntry {
	if e := t.lookup(key); e != nil {
		if e.lastUse.Load() < now-int64(time.Millisecond) {
			e.lastUse.Store(now) // at most once a ms: no write per request on a hot key
		}
		return e
	}
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[key]; e != nil {
		return e
	}
	if len(s.m) >= t.perShard {
		t.evictLocked(s)
	}
	e := &leaseEntry{key: key, start: now}
	e.lastUse.Store(now)
	s.m[key] = e
	return e
}

// evictLocked drops the least recently used of a few keys of s (map order
// is random: a sample) and gives back its lease. A lease request in flight
// for it sees it evicted and gives its lease back at once.
func (t *leaseTable) evictLocked(s *leaseShard) {
	var victim *leaseEntry
	n := 0
	for _, e := range s.m {
		if victim == nil || e.lastUse.Load() < victim.lastUse.Load() {
			victim = e
		}
		if n++; n == evictSample {
			break
		}
	}
	if victim == nil {
		return
	}
	victim.mu.Lock()
	victim.evicted = true
	if ls := victim.lease; ls != nil {
		units, at := int64(ls.left), ls.grant
		t.retireLocked(victim)
		if units > 0 {
			t.giveBackLocked(t.l, victim.key, units, at)
		}
	}
	victim.mu.Unlock()
	delete(s.m, victim.key)
}

// observe counts units of key seen at mono time now.
func (e *leaseEntry) observe(now int64, units int) {
	if el := now - e.start; el >= meterPeriod {
		if el < 2*meterPeriod {
			e.prev = e.cur
			e.start += meterPeriod
		} else {
			e.prev = 0
			e.start = now
		}
		e.cur = 0
	}
	e.cur += int64(units)
}

// rate estimates the key's units per second over the last meterPeriod:
// the previous period's count weighted by how much of it that span still
// covers, plus the current period's (the sliding-window counter estimate).
func (e *leaseEntry) rate(now int64) float64 {
	el := min(max(0, now-e.start), meterPeriod)
	w := float64(meterPeriod-el) / float64(meterPeriod)
	return (float64(e.prev)*w + float64(e.cur)) * float64(time.Second) / float64(meterPeriod)
}

func (e *leaseEntry) hot(now int64, hotRate float64) bool { return e.rate(now) >= hotRate }

// tracker counts background work for Close to wait on.
type tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0; nil when nobody waits
}

func (w *tracker) add() {
	w.mu.Lock()
	w.n++
	w.mu.Unlock()
}

func (w *tracker) finish() {
	w.mu.Lock()
	if w.n--; w.n == 0 && w.idle != nil {
		close(w.idle)
		w.idle = nil
	}
	w.mu.Unlock()
}

func (w *tracker) wait(ctx context.Context) error {
	w.mu.Lock()
	if w.n == 0 {
		w.mu.Unlock()
		return nil
	}
	if w.idle == nil {
		w.idle = make(chan struct{})
	}
	ch := w.idle
	w.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// setupLease validates Config.Lease, applies its defaults and, when it is
// enabled, makes the lease table. It returns what is wrong, or "".
func (l *Limiter) setupLease() string {
	c := l.cfg.Lease
	switch {
	case c.MaxBatch < 0:
		return "Lease.MaxBatch must not be negative"
	case c.HotRate < 0 || math.IsNaN(c.HotRate) || math.IsInf(c.HotRate, 0):
		return "Lease.HotRate must be a finite rate, not negative"
	case c.Margin < 0:
		return "Lease.Margin must not be negative"
	case c.Keys < 0:
		return "Lease.Keys must not be negative"
	}
	if !c.Enabled {
		return ""
	}
	if l.cfg.Algorithm != SlidingWindow {
		return "Lease needs the sliding-window algorithm; " + l.cfg.Algorithm.String() + " decides every request in Redis"
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1000
	}
	if c.HotRate == 0 {
		c.HotRate = 100
	}
	if c.Keys == 0 {
		c.Keys = 10_000
	}
	width := l.policies[0].width
	for _, p := range l.policies[1:] {
		width = min(width, p.width)
	}
	if c.Margin == 0 {
		c.Margin = defaultMargin(width)
	}
	if c.Margin >= width {
		return "Lease.Margin " + c.Margin.String() + " leaves no time to spend a lease in a " + width.String() + " bucket"
	}
	l.cfg.Lease = c
	l.leases = newLeaseTable(l, c)
	return ""
}
