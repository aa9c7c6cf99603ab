package password

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// ErrBusy is returned by a Gate's methods when no memory was free for the
// hash within MaxWait: the server is overloaded with sign-ins, and the
// caller should answer 503 with a short Retry-After.
var ErrBusy = errors.New("password: too many password hashes in progress")

// Defaults of GateConfig.
const (
	// DefaultGateMemory is four default hashes at once (76 MiB): more
	// would not finish sooner on a few cores, only hold more memory.
	DefaultGateMemory = 4 * DefaultMemory
	// DefaultGateWait is how long a hash may queue for memory.
	DefaultGateWait = time.Second
)

// GateConfig configures a Gate. A zero field means its default.
type GateConfig struct {
	// MemoryKiB is the most argon2id memory, in KiB, that hashes may hold
	// at once. Each hash holds its own parameters' memory (19 MiB by
	// default; a stored hash with more memory holds more, at most all of
	// MemoryKiB). The default value is DefaultGateMemory (76 MiB).
	MemoryKiB int64
	// MaxWait is how long a hash waits for memory before ErrBusy. The
	// default value is DefaultGateWait (1s).
	MaxWait time.Duration
	// Params are the parameters of Hash and VerifyDummy.
	Params Params
}

// Gate runs argon2id under a memory budget, so that a burst of sign-ins
// or sign-ups cannot exhaust the process's memory: each hash takes its
// memory from the budget for as long as it runs, excess hashes queue (in
// order) for at most MaxWait, and then fail with ErrBusy. A Gate is safe for
// concurrent use; the server has one.
type Gate struct {
	sem      *semaphore.Weighted
	budget   int64
	wait     time.Duration
	params   Params
	computed atomic.Uint64
	refused  atomic.Uint64
	held     atomic.Int64 // KiB held now
	peak     atomic.Int64 // the most KiB ever held at once
}

// NewGate checks cfg and returns a Gate.
func NewGate(cfg GateConfig) (*Gate, error) {
	if cfg.MemoryKiB < 0 || cfg.MaxWait < 0 {
		return nil, fmt.Errorf("password: GateConfig: MemoryKiB and MaxWait must not be negative")
	}
	if cfg.MemoryKiB == 0 {
		cfg.MemoryKiB = DefaultGateMemory
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultGateWait
	}
	p := cfg.Params.withDefaults()
	if int64(p.Memory) > cfg.MemoryKiB {
		return nil, fmt.Errorf("password: GateConfig: MemoryKiB %d is less than one hash (%d KiB)", cfg.MemoryKiB, p.Memory)
	}
	return &Gate{sem: semaphore.NewWeighted(cfg.MemoryKiB), budget: cfg.MemoryKiB, wait: cfg.MaxWait, params: p}, nil
}

// run holds memKiB of the budget while fn runs.
func (g *Gate) run(ctx context.Context, memKiB uint32, fn func()) error {
	n := min(int64(memKiB), g.budget)
	wctx, cancel := context.WithTimeout(ctx, g.wait)
	defer cancel()
	if err := g.sem.Acquire(wctx, n); err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // the caller gave up, not the gate
		}
		g.refused.Add(1)
		return ErrBusy
	}
	defer g.sem.Release(n)
	defer g.held.Add(-n)
	for h, p := g.held.Add(n), g.peak.Load(); h > p && !g.peak.CompareAndSwap(p, h); p = g.peak.Load() {
	}
	g.computed.Add(1)
	fn()
	return nil
}

// Hash is Params.Hash under the gate.
func (g *Gate) Hash(ctx context.Context, password string) (string, error) {
	if len(password) > MaxLen {
		return "", ErrTooLong
	}
	var out string
	var err error
	if gerr := g.run(ctx, g.params.Memory, func() { out, err = g.params.Hash(password) }); gerr != nil {
		return "", gerr
	}
	return out, err
}

// Verify is the package's Verify under the gate. A malformed encoding is
// refused before it queues.
func (g *Gate) Verify(ctx context.Context, password, encoded string) (bool, error) {
	if len(password) > MaxLen {
		return false, ErrTooLong
	}
	d, err := decode(encoded)
	if err != nil {
		return false, err
	}
	var ok bool
	if gerr := g.run(ctx, d.p.Memory, func() { ok, err = Verify(password, encoded) }); gerr != nil {
		return false, gerr
	}
	return ok, err
}

// VerifyDummy is Params.VerifyDummy under the gate: it queues and costs
// like Verify, so an unknown email and a wrong password still take the
// same time, even under load.
func (g *Gate) VerifyDummy(ctx context.Context, password string) error {
	return g.run(ctx, g.params.Memory, func() { g.params.VerifyDummy(password) })
}

// Computed is how many hashes the gate has run: Hash, Verify and
// VerifyDummy alike.
func (g *Gate) Computed() uint64 { return g.computed.Load() }

// PeakKiB is the most argon2id memory, in KiB, that the gate's hashes have
// held at once: never more than GateConfig.MemoryKiB.
func (g *Gate) PeakKiB() int64 { return g.peak.Load() }

// Refused is how many hashes the gate refused with ErrBusy.
func (g *Gate) Refused() uint64 { return g.refused.Load() }
