package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/theaterscriptpro/tsp/clientip"
	"github.com/theaterscriptpro/tsp/redisx"
)

// Errors returned by New and Allow.
var (
	// ErrInvalidConfig is wrapped by every error New returns.
	ErrInvalidConfig = errors.New("ratelimit: invalid config")
	// ErrInvalidRequest is wrapped by Allow's errors for a negative cost or
	// an empty key: mistakes of the caller, never of the client.
	ErrInvalidRequest = errors.New("ratelimit: invalid request")
	// errBadReply reports a script reply of the wrong shape.
	errBadReply = errors.New("ratelimit: unexpected reply from redis")
)

// Algorithm chooses how a Limiter counts.
type Algorithm int

const (
	// SlidingWindow (the default) keeps a small hash of time buckets per key
	// and counts every bucket that overlaps the trailing window: no window
	// of length Window ever admits more than Limit, and steady traffic at
	// the limit gets at least Limit·(1 − 1/Buckets) through. Memory per key
	// is constant.
	SlidingWindow Algorithm = iota
	// SlidingLog keeps one sorted-set entry per admitted unit: exact, with
	// memory linear in Limit, so it is allowed up to MaxLogLimit. Meant for
	// small limits such as sign-in.
	SlidingLog
	// GCRA (generic cell rate algorithm) admits Burst units at once and then
	// one every Window/Limit: a smooth rate. Any window of length Window
	// admits at most Limit + Burst − 1. One integer per key.
	GCRA
)

func (a Algorithm) String() string {
	switch a {
	case SlidingWindow:
		return "sliding-window"
	case SlidingLog:
		return "sliding-log"
	case GCRA:
		return "gcra"
	}
	return "Algorithm(" + strconv.Itoa(int(a)) + ")"
}

// FailurePolicy says what a Limiter decides when Redis cannot answer in
// time (down, paused, the circuit breaker open).
type FailurePolicy int

const (
	// FailOpen (the default) admits the request: an outage of the limiter
	// does not become an outage of the API.
	FailOpen FailurePolicy = iota
	// FailClosed refuses the request; the middleware answers 503 with
	// Retry-After: 1. For endpoints where a flood is worse than downtime.
	FailClosed
	// LocalFallback limits in process memory at Limit ÷ Config.Instances per
	// policy (at least 1), so that the instances together stay near the
	// shared limit while Redis is away.
	LocalFallback
)

func (p FailurePolicy) String() string {
	switch p {
	case FailOpen:
		return "fail-open"
	case FailClosed:
		return "fail-closed"
	case LocalFallback:
		return "local-fallback"
	}
	return "FailurePolicy(" + strconv.Itoa(int(p)) + ")"
}

// HeaderMode chooses the response headers the middleware sends.
type HeaderMode int

const (
	// HeadersAll (the default) sends RateLimit-Policy and RateLimit
	// (draft-ietf-httpapi-ratelimit-headers-11) and the legacy
	// X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset, as
	// API.md requires.
	HeadersAll HeaderMode = iota
	// HeadersDraft sends only RateLimit-Policy and RateLimit.
	HeadersDraft
	// HeadersNone sends no quota headers (Retry-After on a refusal still).
	HeadersNone
)

// Limits of a Config.
const (
	// MaxPolicies is how many policies one Limiter decides in one call.
	MaxPolicies = 4
	// MaxLogLimit is the largest Limit SlidingLog accepts: its memory grows
	// with the limit (about 36 bytes per entry).
	MaxLogLimit = 10_000
	// MaxBuckets bounds Config.Buckets.
	MaxBuckets = 100
)

// Policy is one limit a Limiter enforces, such as 600 per minute. Several
// policies on one Limiter (per minute and per day) are decided together,
// atomically: a request is admitted only if every policy admits it, and
// charged to all of them or none.
type Policy struct {
	// Name appears in the RateLimit headers and the Redis key: 1 to 32 of
	// a-z 0-9 . _ -. The default is the Limiter's Name for a single policy
	// and Name-WINDOW ("api-1m0s" written "api-60s") for several.
	Name string
	// Rate is the limit; the original guide's max and windowMs.
	Rate Rate
	// Burst is how many units GCRA admits at once. The default is
	// Rate.Limit. Other algorithms ignore it.
	Burst int
}

// Config configures a Limiter. The zero value of each field is its
// documented default; Rate or Policies is required.
type Config struct {
	// Name names the limiter in keys, headers and metrics ("api",
	// "login"): 1 to 32 of a-z 0-9 . _ -. The default is "default".
	Name string

	// Rate is the single policy of the common case: Rate{Limit: max,
	// Window: windowMs} in the original guide. The zero Rate ("off", as
	// ParseRate reads it) with no Policies makes a limiter that admits
	// everything and never calls Redis.
	Rate Rate
	// Policies, when set, replaces Rate with several policies (at most
	// MaxPolicies).
	Policies []Policy

	// Algorithm is SlidingWindow by default.
	Algorithm Algorithm
	// Buckets is how many time buckets a SlidingWindow window has. More
	// buckets admit closer to the limit at a steady rate and use more
	// memory. The default is 10; at most MaxBuckets, and each bucket at
	// least 1 ms.
	Buckets int

	// Key returns the key a request is limited by (the original guide's
	// keyGenerator). The default is KeyByIP(clientip.Resolver{}): the connection's
	// peer address, with IPv6 grouped by /64. An empty result means the
	// client address, never "not limited".
	Key func(r *http.Request) string
	// Cost returns how many units a request costs. The default is 1.
	// A cost above a policy's limit is refused as never retryable; a
	// negative cost is treated as 1.
	Cost func(r *http.Request) int
	// Skip, when it returns true, lets the request through with no
	// decision at all (health checks, internal callers).
	Skip func(r *http.Request) bool
	// SkipSuccessful refunds requests whose response status is below 400,
	// and SkipFailed those at 400 or above, after the handler returns: a
	// login limiter with SkipSuccessful counts failed sign-ins only. Each
	// refund is one more round trip.
	SkipSuccessful bool
	SkipFailed     bool
	// ChargeRejected charges refused requests too, so a client that keeps
	// hammering stays blocked until it stops for a window. The default is
	// to charge admitted requests only.
	ChargeRejected bool

	// FailurePolicy decides when Redis does not answer in time. The
	// default is FailOpen.
	FailurePolicy FailurePolicy
	// Instances is how many API instances share the limit; LocalFallback
	// allows Limit ÷ Instances per instance. The default is 1.
	Instances int
	// Timeout bounds one decision's Redis call, whatever the request's own
	// deadline. The default is 75ms: a slow Redis must not slow the API.
	Timeout time.Duration
	// DryRun computes and counts decisions but never refuses a request and
	// sends no quota headers: for trying a limit in production first.
	DryRun bool
	// Headers chooses the quota headers. The default is HeadersAll.
	Headers HeaderMode
	// Detail is the problem+json detail of a 429. The default is "too many
	// requests" followed by when to retry.
	Detail string

	// BlockedKeys bounds the in-process cache of keys known to be over
	// their limit, which refuses a flood from one client with no Redis
	// round trip until its retry time. The default is 10,000; negative
	// turns the cache off.
	BlockedKeys int
	// FallbackKeys bounds the keys LocalFallback tracks. The default is
	// 100,000.
	FallbackKeys int

	// Lease, when Enabled, lets a hot key spend a batch of its shared
	// quota from this instance without a round trip per decision
	// (SlidingWindow only). Off by default.
	Lease LeaseConfig

	// Now is the app clock, used only for what is local to this process
	// (the blocked-key cache and LocalFallback), never for a shared
	// decision: those take Redis TIME. The default is time.Now.
	Now func() time.Time
	// Logger receives failures (without Redis's error text at levels a
	// client could see). The default discards them.
	Logger *slog.Logger
}

// Source says where a Decision came from.
type Source uint8

const (
	// SourceRedis is a decision made by the shared script.
	SourceRedis Source = iota
	// SourceBlocked is a refusal from the in-process cache of keys over
	// their limit, made with no round trip.
	SourceBlocked
	// SourceOff is the admission of a limiter whose rate is "off".
	SourceOff
	// SourceFailOpen admits because Redis did not answer.
	SourceFailOpen
	// SourceFailClosed refuses because Redis did not answer.
	SourceFailClosed
	// SourceFallback is a decision of the in-memory fallback.
	SourceFallback
	// SourceLease is an admission spent from a lease this instance holds
	// (Config.Lease), made with no round trip.
	SourceLease
)

var sourceNames = [...]string{"redis", "blocked", "off", "fail_open", "fail_closed", "fallback", "lease"}

func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "Source(" + strconv.Itoa(int(s)) + ")"
}

// PolicyState is one policy's state after a decision.
type PolicyState struct {
	Name      string
	Limit     int           // the policy's quota per Window (per instance for SourceFallback)
	Window    time.Duration // the policy's window
	Remaining int           // units still available now
	// Reset is how long until the quota is whole again.
	Reset time.Duration
	// RetryAfter, for a policy that refused, is how long until a request of
	// the same cost would fit if nothing else were admitted meanwhile.
	RetryAfter time.Duration
}

// Decision is the outcome of Allow.
type Decision struct {
	// Allowed reports whether the request may proceed.
	Allowed bool
	// Never reports a refusal no wait can cure: the cost exceeds a
	// policy's limit (or GCRA burst). It is decided without Redis.
	Never bool
	// Source says where the decision was made.
	Source Source
	// RetryAfter, on a refusal, is how long until the request would be
	// admitted if nothing else were: the longest wait of the refusing
	// policies. Zero on admission.
	RetryAfter time.Duration
	// Time is Redis's clock when the script decided (zero for decisions
	// not made by Redis): the one clock all instances share.
	Time time.Time

	n      int
	states [MaxPolicies]PolicyState
	// What a refund needs.
	key    string
	cost   int
	nonce  string
	micros int64
	lease  *lease // the lease a SourceLease admission was spent from
}

// Policies returns the state of each policy after the decision: none for
// SourceOff, SourceFailOpen, SourceFailClosed and a Never refusal; only the
// refusing one for SourceBlocked.
func (d *Decision) Policies() []PolicyState { return d.states[:d.n] }

// Binding returns the policy that limits the client most: on a refusal the
// one that makes it wait longest, else the one with the fewest units left.
// ok is false when the decision has no policy states.
func (d *Decision) Binding() (p PolicyState, ok bool) {
	if d.n == 0 {
		return PolicyState{}, false
	}
	return d.states[d.binding()], true
}

func (d *Decision) binding() int {
	best := 0
	for i := 1; i < d.n; i++ {
		a, b := d.states[i], d.states[best]
		if !d.Allowed {
			if a.RetryAfter > b.RetryAfter {
				best = i
			}
			continue
		}
		if a.Remaining < b.Remaining || (a.Remaining == b.Remaining && a.Reset > b.Reset) {
			best = i
		}
	}
	return best
}

// policy is a validated Policy with its script arguments formatted once.
type policy struct {
	name  string
	rate  Rate
	burst int
	// args are the three per-policy script arguments.
	args [3]string
	// fallbackLimit is the per-instance limit of LocalFallback.
	fallbackLimit int
	width         time.Duration // SlidingWindow bucket width
}

// Limiter decides whether requests may proceed, against limits shared by
// every instance through Redis. Make one with New; it is safe for
// concurrent use.
type Limiter struct {
	cfg      Config
	rdb      *redisx.Client
	policies []policy
	off      bool
	minLimit int // the smallest limit (GCRA: burst); a larger cost never fits
	script   *redisx.Script
	refund   *redisx.Script
	// argsOne is the whole ARGV of the common call (cost 1, Redis time),
	// built once so that call allocates no arguments.
	argsOne  []string
	blocked  *blockCache
	fallback *fallback
	metrics  *metrics
	hdr      headerValues
	// leases is nil unless Config.Lease.Enabled.
	leases *leaseTable
	// born is the origin of the monotonic clock leases are spent by.
	born time.Time
	// testNow, set only by this package's tests, drives the scripts with
	// an injected time (µs) instead of Redis TIME.
	testNow func() int64
}

// New validates cfg and returns a Limiter that keeps its counts in rdb.
// rdb may be nil only for a limiter that is off.
func New(rdb *redisx.Client, cfg Config) (*Limiter, error) {
	bad := func(format string, args ...any) (*Limiter, error) {
		return nil, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if cfg.Name == "" {
		cfg.Name = "default"
	}
	if !validName(cfg.Name) {
		return bad("Name %s: want 1 to 32 of a-z 0-9 . _ -", quoteShort(cfg.Name))
	}
	pols := cfg.Policies
	if len(pols) == 0 {
		if cfg.Rate.Off() {
			l := &Limiter{cfg: cfg, off: true, metrics: newMetrics(cfg.Name)}
			return l, nil
		}
		pols = []Policy{{Name: cfg.Name, Rate: cfg.Rate}}
	} else if !cfg.Rate.Off() {
		return bad("set Rate or Policies, not both")
	}
	if len(pols) > MaxPolicies {
		return bad("%d policies; at most %d", len(pols), MaxPolicies)
	}
	switch cfg.Algorithm {
	case SlidingWindow, SlidingLog, GCRA:
	default:
		return bad("unknown Algorithm %d", cfg.Algorithm)
	}
	switch cfg.FailurePolicy {
	case FailOpen, FailClosed, LocalFallback:
	default:
		return bad("unknown FailurePolicy %d", cfg.FailurePolicy)
	}
	switch cfg.Headers {
	case HeadersAll, HeadersDraft, HeadersNone:
	default:
		return bad("unknown Headers %d", cfg.Headers)
	}
	if cfg.Buckets == 0 {
		cfg.Buckets = 10
	}
	if cfg.Buckets < 1 || cfg.Buckets > MaxBuckets {
		return bad("Buckets %d: want 1 to %d", cfg.Buckets, MaxBuckets)
	}
	if cfg.Instances == 0 {
		cfg.Instances = 1
	}
	if cfg.Instances < 0 {
		return bad("Instances %d must be positive", cfg.Instances)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 75 * time.Millisecond
	}
	if cfg.Timeout < 0 {
		return bad("Timeout must not be negative")
	}
	if cfg.BlockedKeys == 0 {
		cfg.BlockedKeys = 10_000
	}
	if cfg.FallbackKeys == 0 {
		cfg.FallbackKeys = 100_000
	}
	if cfg.FallbackKeys < 0 {
		return bad("FallbackKeys must not be negative")
	}
	if cfg.Key == nil {
		cfg.Key = KeyByIP(clientip.Resolver{})
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if rdb == nil {
		return bad("a Redis client is required")
	}

	l := &Limiter{cfg: cfg, rdb: rdb, metrics: newMetrics(cfg.Name), born: time.Now()}
	seen := map[string]bool{}
	for i, p := range pols {
		if p.Rate.Off() {
			return bad("policy %d: a rate of \"off\" in Policies; leave the policy out", i)
		}
		if p.Rate.Limit < 1 || p.Rate.Limit > MaxLimit || p.Rate.Window < MinWindow || p.Rate.Window > MaxWindow || p.Rate.Window%time.Millisecond != 0 {
			return bad("policy %d: rate %s out of range (limit 1 to %d, window %s to %s in whole ms)", i, p.Rate, MaxLimit, MinWindow, MaxWindow)
		}
		if p.Name == "" {
			p.Name = cfg.Name
			if len(pols) > 1 {
				p.Name = cfg.Name + "-" + strconv.FormatInt(int64(p.Rate.Window/time.Millisecond), 10) + "ms"
				if p.Rate.Window%time.Second == 0 {
					p.Name = cfg.Name + "-" + strconv.FormatInt(int64(p.Rate.Window/time.Second), 10) + "s"
				}
			}
		}
		if !validName(p.Name) {
			return bad("policy %d: Name %s: want 1 to 32 of a-z 0-9 . _ -", i, quoteShort(p.Name))
		}
		if seen[p.Name] {
			return bad("policy %d: Name %q used twice", i, p.Name)
		}
		seen[p.Name] = true
		windowMicros := p.Rate.Window.Microseconds()
		q := policy{name: p.Name, rate: p.Rate, burst: p.Burst}
		q.fallbackLimit = max(1, p.Rate.Limit/cfg.Instances)
		switch cfg.Algorithm {
		case SlidingWindow:
			width := windowMicros / int64(cfg.Buckets)
			if width < 1000 {
				return bad("policy %d: %d buckets of %s are under 1ms each", i, cfg.Buckets, p.Rate.Window)
			}
			q.width = time.Duration(width) * time.Microsecond
			q.args = [3]string{strconv.Itoa(p.Rate.Limit), strconv.FormatInt(windowMicros, 10), strconv.FormatInt(width, 10)}
			q.burst = p.Rate.Limit
		case SlidingLog:
			if p.Rate.Limit > MaxLogLimit {
				return bad("policy %d: SlidingLog keeps one entry per unit; limit %d is over %d, use SlidingWindow", i, p.Rate.Limit, MaxLogLimit)
			}
			q.args = [3]string{strconv.Itoa(p.Rate.Limit), strconv.FormatInt(windowMicros, 10), "0"}
			q.burst = p.Rate.Limit
		case GCRA:
			if q.burst == 0 {
				q.burst = p.Rate.Limit
			}
			if q.burst < 1 || q.burst > MaxLimit {
				return bad("policy %d: Burst %d: want 1 to %d", i, q.burst, MaxLimit)
			}
			// Rounded up to whole µs: exact integer arithmetic in Lua, and
			// a rate never above the nominal one.
			interval := (windowMicros + int64(p.Rate.Limit) - 1) / int64(p.Rate.Limit)
			q.args = [3]string{strconv.Itoa(q.burst), strconv.FormatInt(windowMicros, 10), strconv.FormatInt(interval, 10)}
		}
		l.policies = append(l.policies, q)
	}
	l.minLimit = l.policies[0].burst
	for _, p := range l.policies[1:] {
		l.minLimit = min(l.minLimit, p.burst)
	}
	switch cfg.Algorithm {
	case SlidingWindow:
		l.script, l.refund = slidingScript, slidingRefund
	case SlidingLog:
		l.script, l.refund = logScript, logRefund
	case GCRA:
		l.script, l.refund = gcraScript, gcraRefund
	}
	if msg := l.setupLease(); msg != "" {
		return bad("%s", msg)
	}
	l.argsOne = l.args(1, 0, "", nil)
	if cfg.BlockedKeys > 0 {
		l.blocked = newBlockCache(cfg.BlockedKeys)
	}
	if cfg.FailurePolicy == LocalFallback {
		l.fallback = newFallback(cfg.FallbackKeys, cfg.Buckets)
	}
	l.hdr = l.headerValues()
	return l, nil
}

func validName(s string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Name returns the limiter's name.
func (l *Limiter) Name() string { return l.cfg.Name }

// Off reports whether the limiter admits everything (its rate is "off").
func (l *Limiter) Off() bool { return l.off }

// args builds the script's ARGV.
func (l *Limiter) args(cost int, nowMicros int64, nonce string, extra []string) []string {
	a := make([]string, 0, 4+3*len(l.policies)+len(extra))
	charge := "0"
	if l.cfg.ChargeRejected {
		charge = "1"
	}
	a = append(a, strconv.Itoa(cost), charge, strconv.FormatInt(nowMicros, 10), nonce)
	for i := range l.policies {
		a = append(a, l.policies[i].args[:]...)
	}
	return append(a, extra...)
}

// keys returns the Redis keys of identifier key, one per policy, all under
// the hash tag {key}: ratelimit:{key}:limiter:policy.
func (l *Limiter) keys(key string) []string {
	ks := make([]string, len(l.policies))
	for i := range l.policies {
		ks[i] = l.rdb.Keys().RateLimit(key, l.cfg.Name, l.policies[i].name)
	}
	return ks
}

// Allow decides whether a request with identifier key and cost may
// proceed, and charges it if so. Cost 0 only reports the state. Handlers
// call it directly for limits the middleware cannot express, such as the
// login limiter keyed on client address and email.
//
// When Redis cannot answer within Config.Timeout, Allow returns the
// decision Config.FailurePolicy dictates (see Decision.Source) and a nil
// error; the failure is logged and counted. An error is returned only for
// a caller's mistake (negative cost, empty key), wrapping ErrInvalidRequest.
func (l *Limiter) Allow(ctx context.Context, key string, cost int) (Decision, error) {
	if l.off {
		l.metrics.inc(SourceOff, true)
		return Decision{Allowed: true, Source: SourceOff}, nil
	}
	if cost < 0 {
		return Decision{}, fmt.Errorf("%w: cost %d is negative", ErrInvalidRequest, cost)
	}
	if key == "" {
		return Decision{}, fmt.Errorf("%w: empty key", ErrInvalidRequest)
	}
	if cost > l.minLimit {
		// No wait can make it fit: refuse without asking Redis.
		d := Decision{Never: true, Source: SourceRedis, key: key, cost: cost}
		l.metrics.never.Inc()
		return d, nil
	}
	// At most twice: once more after waiting for the key's lease request
	// in flight, which may have brought a lease or a block.
	for attempt := 0; ; attempt++ {
		if cost > 0 && l.blocked != nil {
			if wait, i, ok := l.blocked.get(key, cost, l.cfg.Now); ok {
				l.metrics.inc(SourceBlocked, false)
				d := Decision{Source: SourceBlocked, RetryAfter: wait, key: key, cost: cost, n: 1}
				p := &l.policies[i]
				d.states[0] = PolicyState{Name: p.name, Limit: p.rate.Limit, Window: p.rate.Window, Reset: wait, RetryAfter: wait}
				return d, nil
			}
		}
		if l.leases != nil && cost > 0 {
			d, out, err := l.leases.take(ctx, l, key, cost, attempt == 0)
			switch out {
			case leaseSpent:
				l.metrics.inc(SourceLease, true)
				return d, nil
			case leaseDecided:
				return l.settle(key, cost, d, err), nil
			case leaseWaited:
				continue
			}
		}
		d, err := l.decide(ctx, key, cost)
		return l.settle(key, cost, d, err), nil
	}
}

// settle completes a decision the script made (or could not make): the
// failure policy, the local block of a refused key, the metrics.
func (l *Limiter) settle(key string, cost int, d Decision, err error) Decision {
	if err != nil {
		return l.failed(key, cost, err)
	}
	if !d.Allowed && l.blocked != nil && cost > 0 && d.RetryAfter > 0 {
		l.blocked.put(key, cost, d.binding(), l.cfg.Now().Add(d.RetryAfter))
	}
	l.metrics.inc(SourceRedis, d.Allowed)
	return d
}

// decide runs the script: one round trip (two only on NOSCRIPT, after a
// Redis restart or failover).
func (l *Limiter) decide(ctx context.Context, key string, cost int) (Decision, error) {
	var nowMicros int64
	if l.testNow != nil {
		nowMicros = l.testNow()
	}
	var nonce string
	if l.cfg.Algorithm == SlidingLog && cost > 0 {
		nonce = strconv.FormatUint(rand.Uint64(), 36)
	}
	args := l.argsOne
	if cost != 1 || nowMicros != 0 || nonce != "" {
		args = l.args(cost, nowMicros, nonce, nil)
	}
	keys := l.keys(key)
	d, err := guard(ctx, l.cfg.Timeout, func(ctx context.Context) (Decision, error) {
		return l.parse(l.script.Run(ctx, l.rdb, keys, args))
	})
	if err != nil {
		return d, err
	}
	d.key, d.cost, d.nonce = key, cost, nonce
	return d, nil
}

// guard runs f with a deadline of timeout and returns when the deadline
// passes even if f has not: the client honours contexts while a command
// waits, but not while it redials a server that accepts connections and
// never answers (a paused Redis), and a rate limiter must not hold the
// request then. A late f finishes in the background; its outcome is lost,
// as a timed-out reply would be.
func guard[T any](ctx context.Context, timeout time.Duration, f func(context.Context) (T, error)) (T, error) {
	var cancel context.CancelFunc
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > timeout {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f(ctx)
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		cancel()
		return r.v, r.err
	case <-ctx.Done():
		cancel()
		var zero T
		return zero, fmt.Errorf("%w: %v", redisx.ErrUnavailable, ctx.Err())
	}
}

// parse reads {now, allowed, (remaining, reset, retry) per policy}.
func (l *Limiter) parse(res rueidis.RedisResult) (Decision, error) {
	var v [2 + 3*MaxPolicies]int64
	vals := v[:2+3*len(l.policies)]
	if err := readInts(res, vals); err != nil {
		return Decision{}, err
	}
	return l.decision(vals), nil
}

// readInts reads a script's reply, an array of exactly len(dst) integers.
func readInts(res rueidis.RedisResult, dst []int64) error {
	arr, err := res.ToArray()
	if err != nil {
		return err
	}
	if len(arr) != len(dst) {
		return errBadReply
	}
	for i := range arr {
		if dst[i], err = arr[i].AsInt64(); err != nil {
			return errBadReply
		}
	}
	return nil
}

// decision makes the Decision of a reply {now, allowed, (remaining,
// reset, retry) per policy}.
func (l *Limiter) decision(v []int64) Decision {
	d := Decision{Allowed: v[1] == 1, Source: SourceRedis, micros: v[0], Time: time.UnixMicro(v[0]), n: len(l.policies)}
	for i := range l.policies {
		p := &l.policies[i]
		s := &d.states[i]
		s.Name, s.Limit, s.Window = p.name, p.rate.Limit, p.rate.Window
		s.Remaining = int(v[2+3*i])
		s.Reset = time.Duration(v[3+3*i]) * time.Microsecond
		s.RetryAfter = time.Duration(v[4+3*i]) * time.Microsecond
		if !d.Allowed && s.RetryAfter > d.RetryAfter {
			d.RetryAfter = s.RetryAfter
		}
	}
	return d
}

// failed makes the decision the FailurePolicy dictates when Redis did not
// answer.
func (l *Limiter) failed(key string, cost int, err error) Decision {
	reason, msg := "error", "rate limiter: redis refused the decision"
	switch {
	case errors.Is(err, redisx.ErrOutOfMemory):
		// Redis answered, but is full: not an unreachable Redis.
		reason, msg = "out_of_memory", "rate limiter: redis out of memory"
	case errors.Is(err, redisx.ErrUnavailable):
		reason, msg = "unavailable", "rate limiter could not reach redis"
	}
	l.metrics.redisErrors.WithLabelValues(reason).Inc()
	// The error text may carry Redis's words; it goes to the operator's log
	// only, never to a client.
	l.cfg.Logger.Warn(msg, "limiter", l.cfg.Name,
		"policy", l.cfg.FailurePolicy.String(), "error", err.Error())
	switch l.cfg.FailurePolicy {
	case FailClosed:
		l.metrics.inc(SourceFailClosed, false)
		return Decision{Source: SourceFailClosed, RetryAfter: time.Second, key: key, cost: cost}
	case LocalFallback:
		d := l.fallback.allow(l, key, cost, l.cfg.Now())
		l.metrics.inc(SourceFallback, d.Allowed)
		return d
	default:
		l.metrics.inc(SourceFailOpen, true)
		return Decision{Allowed: true, Source: SourceFailOpen, key: key, cost: cost}
	}
}

// Refund gives back what an admitted decision charged, as "skip
// successful" and "skip failed" do after the response. It does nothing for
// refusals and decisions not charged. Refund a decision at most once: a
// sliding-window bucket cannot tell whose units it gives back. It costs
// one round trip.
func (l *Limiter) Refund(ctx context.Context, d Decision) error {
	if l.off || !d.Allowed || d.cost == 0 {
		return nil
	}
	switch d.Source {
	case SourceRedis:
	case SourceLease:
		// Back into the lease while it is being spent: no round trip.
		// Else into Redis, to the bucket the lease was charged to.
		if l.leases.refundLocal(l, &d) {
			l.metrics.refunds.Inc()
			return nil
		}
		d.micros = d.lease.grant
	case SourceFallback:
		l.fallback.refund(l, d)
		return nil
	default:
		return nil
	}
	var nowMicros int64
	if l.testNow != nil {
		nowMicros = l.testNow()
	}
	args := l.args(d.cost, nowMicros, d.nonce, nil)
	// ARGV[2] carries the charge's time for the sliding window's bucket.
	args[1] = strconv.FormatInt(d.micros, 10)
	keys := l.keys(d.key)
	_, err := guard(ctx, l.cfg.Timeout, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, l.refund.Run(ctx, l.rdb, keys, args).Error()
	})
	if err != nil {
		l.metrics.redisErrors.WithLabelValues("refund").Inc()
		return fmt.Errorf("ratelimit: refund: %w", err)
	}
	l.metrics.refunds.Inc()
	return nil
}

// Reset forgets everything about key (an operator unblocking a client): its
// Redis keys and this instance's local block. Other instances may refuse
// the key from their local cache until its retry time.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	if l.off {
		return nil
	}
	if l.blocked != nil {
		l.blocked.del(key)
	}
	if l.fallback != nil {
		l.fallback.del(key)
	}
	if l.leases != nil {
		l.leases.drop(key)
	}
	if _, err := l.rdb.Delete(ctx, l.keys(key)...); err != nil {
		return fmt.Errorf("ratelimit: reset: %w", err)
	}
	return nil
}

// Close gives back, in Redis, what this instance holds in leases and has
// not spent (Config.Lease), and waits for those returns and any lease
// request in flight until ctx ends: call it at shutdown, after the HTTP
// server has drained and before closing the Redis client. Allow keeps
// working afterwards, deciding every request in Redis. A limiter that does
// not lease has nothing to give back. It returns ctx's error when returns
// were still outstanding at its end; units not given back stay counted
// until their bucket leaves the window, so the limiter admits less, never
// more.
func (l *Limiter) Close(ctx context.Context) error {
	if l.leases == nil {
		return nil
	}
	if err := l.leases.close(ctx); err != nil {
		return fmt.Errorf("ratelimit: close: %w", err)
	}
	return nil
}

// quoteShort quotes s for an error message, cut so a hostile value cannot
// flood a log line.
func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return `"` + strings.ToValidUTF8(strings.ReplaceAll(s, `"`, `\"`), "?") + `"`
}
