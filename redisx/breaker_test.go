package redisx_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// TestClusterBreakerPerMaster takes two keys in adjacent hash slots that
// two masters own, inside one group of 64 slots (where the breakers used
// to be kept: about 0.8 % of slots shared a breaker with another master's).
// With one master killed, once its breaker refuses calls, every call for
// the other master's key must still succeed.
func TestClusterBreakerPerMaster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	cfg := c.Config(t)
	cfg.BreakerOpenFor = 250 * time.Millisecond
	rdb := redistest.Connect(t, cfg)
	ctx := context.Background()
	lo := boundaryInsideGroup(t, rdb)
	alive, doomed := keyForSlot(rdb, lo), keyForSlot(rdb, lo+1)
	if c.MasterOf(t, alive) == c.MasterOf(t, doomed) {
		t.Fatalf("slots %d and %d have one master", lo, lo+1)
	}
	for _, k := range []string{alive, doomed} {
		if err := rdb.Set(ctx, k, []byte("v"), time.Minute); err != nil {
			t.Fatalf("Set %s before the kill: %v", k, err)
		}
	}
	c.KillMaster(t, doomed)

	// Calls for the dead master's key until its breaker refuses them, and
	// on between the calls below, so it stays open (or half-open).
	refused := func() bool {
		// INCR is never retried, so each call fails at once.
		_, err := rdb.Incr(ctx, doomed, time.Minute)
		return errors.Is(err, gobreaker.ErrOpenState)
	}
	for deadline := time.Now().Add(redistest.ClusterNodeTimeout); !refused(); {
		if time.Now().After(deadline) {
			t.Fatalf("the dead master's breaker did not open within %v", redistest.ClusterNodeTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Four open periods: the old group breaker would have refused most of
	// these calls.
	var calls int
	for end := time.Now().Add(4 * cfg.BreakerOpenFor); time.Now().Before(end); calls++ {
		if err := rdb.Set(ctx, alive, []byte(strconv.Itoa(calls)), time.Minute); err != nil {
			t.Errorf("Set on the master that stayed up (slot %d, next to the dead master's slot %d): %v", lo, lo+1, err)
			break
		}
		refused()
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("%d calls for slot %d succeeded while the master of slot %d was dead and its breaker open", calls, lo, lo+1)
}

// TestRetryWaitsAtMostABreakerPeriod: an idempotent read caught by a dead
// server is retried by rueidis; with a retry strategy that would wait far
// past the deadline, the read must still succeed soon after the server is
// back (after a failover: once rueidis has the new master). It used to
// fail at once: rueidis skips a retry whose wait would pass the deadline.
func TestRetryWaitsAtMostABreakerPeriod(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	cfg := srv.Config(t)
	cfg.RetryStrategy = func(int) time.Duration { return time.Minute }
	cfg.CommandTimeout = 3 * time.Second
	cfg.BreakerOpenFor = 100 * time.Millisecond
	rdb := redistest.Connect(t, cfg)
	ctx := context.Background()
	key := rdb.Keys().Tagged("retry", "1")
	if err := rdb.Set(ctx, key, []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	back := make(chan time.Time, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		srv.Start(t)
		back <- time.Now()
	}()
	start := time.Now()
	_, _, err := rdb.Get(ctx, key) // an empty server answers "not found"
	end := time.Now()
	up := <-back
	if err != nil {
		t.Fatalf("Get across the restart: %v after %v; want it retried onto the restarted server", err, end.Sub(start))
	}
	t.Logf("Get answered %v after the server was back (%v in all; BreakerOpenFor %v)", end.Sub(up).Round(time.Millisecond), end.Sub(start).Round(time.Millisecond), cfg.BreakerOpenFor)
	if late := end.Sub(up); late > cfg.CommandTimeout/2 {
		t.Errorf("Get answered %v after the server was back; want about one BreakerOpenFor (%v)", late, cfg.BreakerOpenFor)
	}
}

// boundaryInsideGroup returns a slot whose next slot has another master,
// both in one group of 64 slots.
func boundaryInsideGroup(t *testing.T, rdb *redisx.Client) uint16 {
	t.Helper()
	for _, n := range rdb.Nodes() {
		ranges, err := n.Do(context.Background(), n.B().ClusterSlots().Build()).ToArray()
		if err != nil {
			continue
		}
		for _, r := range ranges {
			f, _ := r.ToArray()
			hi, err := f[1].AsInt64()
			if err == nil && hi+1 < 1<<14 && hi>>6 == (hi+1)>>6 {
				return uint16(hi)
			}
		}
		t.Fatal("every master's slots end on a multiple of 64")
	}
	t.Fatal("no node answered CLUSTER SLOTS")
	return 0
}

// keyForSlot returns a key of the client's prefix whose hash slot is slot.
func keyForSlot(rdb *redisx.Client, slot uint16) string {
	for i := 0; ; i++ {
		if k := rdb.Keys().Tagged("slot", strconv.Itoa(i)); redistest.KeySlot(k) == slot {
			return k
		}
	}
}

// logRecord is one line of the client's log.
type logRecord struct {
	at    time.Time
	msg   string
	attrs map[string]string
}

// logRecorder is a slog.Handler that keeps every record, for tests that
// check what the client logged and when.
type logRecorder struct {
	mu      sync.Mutex
	records []logRecord
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{at: r.Time, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	h.records = append(h.records, rec)
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) all() []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]logRecord(nil), h.records...)
}

// breakerSwitches returns when the client moved its breakers to a new
// master (Sentinel) or new masters (Cluster), and their addresses.
func breakerSwitches(recs []logRecord) (at []time.Time, masters [][]string) {
	for _, r := range recs {
		switch {
		case strings.HasPrefix(r.msg, "redis master changed"):
			at, masters = append(at, r.at), append(masters, []string{r.attrs["to"]})
		case strings.HasPrefix(r.msg, "redis cluster masters changed"):
			at, masters = append(at, r.at), append(masters, strings.Fields(strings.Trim(r.attrs["new"], "[]")))
		}
	}
	return at, masters
}

// checkNewMastersBreakersStayClosed fails the test if, after the client
// switched its breakers to a promoted master, that master's breaker
// opened: a failure held against the new master means calls went to the
// old one after the switch.
func checkNewMastersBreakersStayClosed(t *testing.T, recs []logRecord) {
	t.Helper()
	at, masters := breakerSwitches(recs)
	if len(at) == 0 {
		t.Fatalf("the client never logged moving its breakers to a new master")
	}
	for i, when := range at {
		for _, m := range masters[i] {
			for _, r := range recs {
				if r.msg == "redis circuit breaker" && r.at.After(when) && r.attrs["breaker"] == "redis "+m && r.attrs["to"] == gobreaker.StateOpen.String() {
					t.Errorf("the breaker of the new master %s opened %v after the switch (from %s)", m, r.at.Sub(when), r.attrs["from"])
				}
			}
		}
	}
}
