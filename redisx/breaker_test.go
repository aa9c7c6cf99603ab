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

	"github.com/theaterscriptpro/tsp/internal/faultproxy"
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

// TestBreakerCountsOnlyTimeoutsOfASilentNode: a caller's deadline that
// passes while the node keeps answering other calls (replies slower than
// that caller's budget: a backlog, or this process starved of CPU by a
// burst) is not an outage, so the breaker stays closed however many such
// deadlines pass; the same deadlines on a node that answers nothing open
// it. Before, any five deadlines in a row opened the breaker, and a burst
// of 200 sign-ins on a loaded machine failed every caller for 250 ms at a
// time (TestLoginBurstMemoryIsBounded on CI).
func TestBreakerCountsOnlyTimeoutsOfASilentNode(t *testing.T) {
	t.Parallel()
	const (
		latency = 200 * time.Millisecond // every reply's delay
		// The slow caller's deadline: half the latency, so every slow call
		// times out, with about six replies to others inside it. At 60 ms
		// (four) a stall of the loaded 2-core box under -race left one
		// window without a reply about once in three runs of the suite.
		budget = 100 * time.Millisecond
	)
	srv := redistest.StartServer(t)
	px := faultproxy.Start(t, srv.Addr)
	cfg := redistest.At(srv.Config(t), px.Addr())
	cfg.BreakerFailures = 2
	rdb := redistest.Connect(t, cfg)
	ctx := context.Background()
	key := rdb.Keys().Join("breaker", "slow")

	// Other callers keep the node busy: one GET every 15ms, each answered
	// 200ms later, so replies arrive all through each slow call. (Not
	// faster: the proxy holds 16 chunks per direction, then pushes back.)
	px.Latency(latency)
	stop := make(chan struct{})
	var traffic sync.WaitGroup
	traffic.Add(1)
	go func() {
		defer traffic.Done()
		var wg sync.WaitGroup
		for tick := time.NewTicker(15 * time.Millisecond); ; {
			select {
			case <-stop:
				tick.Stop()
				wg.Wait()
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = rdb.Do(ctx, rdb.B().Get().Key(key).Build()).Error()
			}()
		}
	}()
	defer func() { close(stop); traffic.Wait() }()
	// Replies are flowing once rueidis pipelines: its first call goes
	// alone (one latency), the ones queued behind it go together.
	time.Sleep(3 * latency)

	slowCall := func() error {
		cctx, cancel := context.WithTimeout(ctx, budget)
		defer cancel()
		// Do, not the cached Get: every call is a round trip.
		return rdb.Do(cctx, rdb.B().Get().Key(key).Build()).Error()
	}
	// Rounds of ten slow calls at once: their deadlines pass together, so
	// no other caller's success comes between them (with the old rule, two
	// in a row opened the breaker).
	var timedOut int
	for round := range 3 {
		errs := make([]error, 10)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = slowCall() }()
		}
		wg.Wait()
		errs = append(errs, slowCall()) // and one after the round
		for i, err := range errs {
			if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
				t.Fatalf("round %d, call %d: %v after %d deadlines passed while the node answered; want the breaker closed", round+1, i+1, err, timedOut)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				timedOut++
			}
		}
	}
	if timedOut < 20 {
		t.Fatalf("only %d of 33 calls with a %v budget timed out behind %v of latency; the test proves nothing", timedOut, budget, latency)
	}
	t.Logf("%d deadlines of %v passed while the node answered, breaker closed throughout", timedOut, budget)

	// The node goes silent: the same deadlines now open the breaker.
	px.Hang()
	t.Cleanup(px.Reset)
	time.Sleep(latency + 50*time.Millisecond) // the replies in flight are out
	for i := 0; ; i++ {
		err := slowCall()
		if errors.Is(err, gobreaker.ErrOpenState) {
			t.Logf("silent node: breaker open after %d deadlines", i)
			break
		}
		if i == 20 {
			t.Fatalf("20 deadlines passed on a silent node and the breaker is still closed (last: %v)", err)
		}
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
