package redisx_test

// Topology tests: the client on a real 3+3-node Redis Cluster and a real
// Sentinel group (internal/redistest starts them from redis-server), with
// masters killed under load. They run in every mode of REDIS_TEST_TOPOLOGY:
// the shared cluster and Sentinel group are started once per test binary,
// and the failover tests start their own.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/redisx"
)

// topology is one way to run Redis, for table tests over all three.
type topology struct {
	name string
	// config starts (or reuses) the topology and returns a Config for it
	// with a fresh key prefix.
	config func(t *testing.T) redisx.Config
	// replica returns a replica of the master that owns key (nil when there
	// is none).
	replica func(t *testing.T, key string) *redistest.Server
}

func topologies() []topology {
	return []topology{
		{
			name:    "standalone",
			config:  func(t *testing.T) redisx.Config { return redistest.StartServer(t).Config(t) },
			replica: func(*testing.T, string) *redistest.Server { return nil },
		},
		{
			name:   "cluster",
			config: func(t *testing.T) redisx.Config { return redistest.SharedCluster(t).Config(t) },
			replica: func(t *testing.T, key string) *redistest.Server {
				c := redistest.SharedCluster(t)
				if r := c.ReplicasOf(t, c.MasterOf(t, key)); len(r) > 0 {
					return r[0]
				}
				return nil
			},
		},
		{
			name:   "sentinel",
			config: func(t *testing.T) redisx.Config { return redistest.SharedSentinel(t).Config(t) },
			replica: func(t *testing.T, _ string) *redistest.Server {
				if r := redistest.SharedSentinel(t).Replicas(t); len(r) > 0 {
					return r[0]
				}
				return nil
			},
		},
	}
}

// TestClusterKeySpread writes the session and rate-limit keys of 10,000
// users, as the session and ratelimit packages name them, and checks that
// each kind lands on all three masters with none holding more than 40%: the
// hash tags are per user and per client, never one tag for everything.
func TestClusterKeySpread(t *testing.T) {
	t.Parallel()
	c := redistest.SharedCluster(t)
	rdb := redistest.Connect(t, c.Config(t))
	ctx := context.Background()
	const users = 10000
	k := rdb.Keys()
	cmds := make([]rueidis.Completed, 0, 1000)
	flush := func() {
		for _, r := range rdb.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				t.Fatalf("write: %v", err)
			}
		}
		cmds = cmds[:0]
	}
	for i := range users {
		tokenHash := sha256.Sum256([]byte(strconv.Itoa(i)))
		ip := fmt.Sprintf("198.%d.%d.%d", 18+i/65536, i/256%256, i%256)
		if i%4 == 0 {
			ip = fmt.Sprintf("2001:db8::%x", i)
		}
		for _, key := range []string{
			k.Tagged("session", theater.NewID(), hex.EncodeToString(tokenHash[:])),
			k.RateLimit(ip),
		} {
			cmds = append(cmds, rdb.B().Set().Key(key).Value("1").Px(time.Minute).Build())
		}
		if len(cmds) == cap(cmds) {
			flush()
		}
	}
	flush()

	byMaster := redistest.KeysByMaster(t, rdb)
	if len(byMaster) != 3 {
		t.Fatalf("keys on %d masters, want 3", len(byMaster))
	}
	for _, kind := range []string{"session:{", "ratelimit:{"} {
		total := 0
		counts := map[string]int{}
		for addr, keys := range byMaster {
			for _, key := range keys {
				if strings.HasPrefix(key, k.Prefix()+kind) {
					counts[addr]++
					total++
				}
			}
		}
		if total != users {
			t.Fatalf("%s keys found: %d, want %d", kind, total, users)
		}
		for addr, keys := range byMaster {
			share := float64(counts[addr]) / users
			t.Logf("%-12s on %s: %5d (%.1f%%) of %d keys there", kind, addr, counts[addr], 100*share, len(keys))
			if counts[addr] == 0 || share > 0.40 {
				t.Errorf("%s keys on master %s: %d of %d (%.1f%%); want some and at most 40%%", kind, addr, counts[addr], users, 100*share)
			}
		}
	}
}

// TestLocalCacheInvalidation: a value read through DoCache is served from
// the local cache, and a write through another client (another instance)
// invalidates it within 100ms, in every topology and on every master.
func TestLocalCacheInvalidation(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			cfg := topo.config(t)
			reader := redistest.Connect(t, cfg)
			writer := redistest.Connect(t, cfg)
			ctx := context.Background()
			// Six users' keys: on a cluster they land on every master.
			for i := range 6 {
				key := reader.Keys().Tagged("user", "csc-"+strconv.Itoa(i))
				if err := writer.Set(ctx, key, []byte("v1"), time.Minute); err != nil {
					t.Fatal(err)
				}
				read := func() (string, bool) {
					t.Helper()
					res := reader.DoCache(ctx, reader.B().Get().Key(key).Cache(), time.Minute)
					v, err := res.ToString()
					if err != nil {
						t.Fatalf("DoCache GET %s: %v", key, err)
					}
					return v, res.IsCacheHit()
				}
				if v, _ := read(); v != "v1" {
					t.Fatalf("first read of %s = %q, want v1", key, v)
				}
				if v, hit := read(); v != "v1" || !hit {
					t.Fatalf("second read of %s = %q, cache hit %v; want v1 from the local cache", key, v, hit)
				}
				if err := writer.Set(ctx, key, []byte("v2"), time.Minute); err != nil {
					t.Fatal(err)
				}
				wrote := time.Now()
				for {
					v, _ := read()
					if v == "v2" {
						break
					}
					if time.Since(wrote) > 100*time.Millisecond {
						t.Fatalf("%s: local cache still serves %q 100ms after another client wrote v2", key, v)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
}

// TestDoWait: a write confirmed by WAIT is on the replica; with the replica
// frozen the same call reports ErrNotReplicated after its timeout (which
// proves WAIT went out on the connection that wrote: elsewhere it would
// have vouched for nothing and answered at once); misuse is an error, not
// a panic.
func TestDoWait(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies() {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			rdb := redistest.Connect(t, topo.config(t))
			ctx := context.Background()
			user := theater.NewID()
			key := rdb.Keys().Tagged("session", user, "durable")
			replica := topo.replica(t, key)
			if replica == nil {
				// Standalone: no replica can ever acknowledge.
				err := rdb.SetWait(ctx, key, []byte("v"), time.Minute, 1, 50*time.Millisecond)
				if !errors.Is(err, redisx.ErrNotReplicated) {
					t.Fatalf("SetWait without replicas: %v; want ErrNotReplicated", err)
				}
				if v, found, _ := rdb.Get(ctx, key); !found || string(v) != "v" {
					t.Fatalf("after ErrNotReplicated Get = %q, %v; want the write applied on the master", v, found)
				}
				return
			}
			redistest.SetReplicated(t, rdb, key, []byte("v"))
			if got := readReplica(t, replica, key); got != "v" {
				t.Fatalf("replica %s has %q right after SetWait, want v", replica.Addr, got)
			}
			// The script path, NOSCRIPT included on first use.
			script := redisx.NewScript(`redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000) return 1 -- ` + user)
			res, err := script.RunWait(ctx, rdb, []string{key}, []string{"s"}, 1, 500*time.Millisecond)
			if err != nil || res.Error() != nil {
				t.Fatalf("RunWait: %v, %v", err, res.Error())
			}
			if got := readReplica(t, replica, key); got != "s" {
				t.Fatalf("replica has %q right after RunWait, want s", got)
			}

			replica.Pause()
			t.Cleanup(replica.Resume)
			start := time.Now()
			err = rdb.SetWait(ctx, key, []byte("w"), time.Minute, 1, 200*time.Millisecond)
			took := time.Since(start)
			replica.Resume()
			if !errors.Is(err, redisx.ErrNotReplicated) {
				t.Fatalf("SetWait with the replica frozen: %v; want ErrNotReplicated", err)
			}
			if took < 150*time.Millisecond {
				t.Fatalf("SetWait with the replica frozen answered after %v; want it to wait ~200ms", took)
			}

			other := rdb.Keys().Tagged("session", user+"x", "durable")
			for _, tc := range []struct {
				name     string
				replicas int
				timeout  time.Duration
				cmds     []rueidis.Completed
			}{
				{"cross slot", 1, time.Second, []rueidis.Completed{
					rdb.B().Set().Key(key).Value("1").Build(), rdb.B().Set().Key(other).Value("1").Build()}},
				{"no replicas asked", 0, time.Second, []rueidis.Completed{rdb.B().Set().Key(key).Value("1").Build()}},
				{"zero timeout", 1, 0, []rueidis.Completed{rdb.B().Set().Key(key).Value("1").Build()}},
			} {
				if redistest.KeySlot(key) == redistest.KeySlot(other) && tc.name == "cross slot" {
					continue // the two random ids happen to share a slot
				}
				if _, _, err := rdb.DoWait(ctx, tc.replicas, tc.timeout, tc.cmds...); err == nil {
					t.Errorf("DoWait %s: no error", tc.name)
				}
			}
		})
	}
}

// readReplica reads key on a replica directly (READONLY lets a cluster
// replica serve reads of its master's slots).
func readReplica(t *testing.T, replica *redistest.Server, key string) string {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{replica.Addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	res := c.DoMulti(ctx, c.B().Arbitrary("READONLY").Build(), c.B().Get().Key(key).Build())
	if err := res[0].Error(); err != nil && !strings.Contains(err.Error(), "cluster support disabled") {
		t.Fatalf("READONLY on %s: %v", replica.Addr, err)
	}
	v, err := res[1].ToString()
	if err != nil && !redisx.IsNil(err) {
		t.Fatalf("GET on replica %s: %v", replica.Addr, err)
	}
	return v
}

// failoverLoad runs the service's kinds of calls on one user's keys (one
// hash slot, so one master) from several goroutines while the master is
// killed, and checks what callers see.
type failoverLoad struct {
	rdb    *redisx.Client
	user   string
	script *redisx.Script
	// bystander is a user whose keys live on another master (cluster):
	// their calls must go on working throughout.
	bystander string

	mu    sync.Mutex
	names []string // commands sent, from Config.CommandHook
	logs  *logRecorder
}

func newFailoverLoad(t *testing.T, cfg redisx.Config) *failoverLoad {
	l := &failoverLoad{user: theater.NewID(), logs: &logRecorder{}}
	cfg.Logger = slog.New(l.logs)
	cfg.CommandHook = func(names []string) {
		l.mu.Lock()
		l.names = append(l.names, names...)
		l.mu.Unlock()
	}
	l.rdb = redistest.Connect(t, cfg)
	l.script = redisx.NewScript(`
-- a test script: write ARGV[1] and read it back, on one key
redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000)
return redis.call('GET', KEYS[1])`)
	return l
}

// key is one of the user's keys for worker w; all share the user's hash tag.
func (l *failoverLoad) key(ns string, w int) string {
	return l.rdb.Keys().Tagged(ns, l.user, strconv.Itoa(w))
}

// step makes one round of calls for worker w: cache-aside (which must never
// fail: it falls back to the loader), SET, GET, INCR and a Lua script. It
// returns the errors the callers saw; ok means every call fully succeeded.
func (l *failoverLoad) step(ctx context.Context, w, i int) (ok bool, errs []error) {
	v := strconv.Itoa(i)
	profile, err := redisx.Cache(ctx, l.rdb, l.rdb.Keys().Tagged("user", l.user), time.Minute,
		func(context.Context) (string, error) { return "profile", nil })
	if err != nil || profile != "profile" {
		errs = append(errs, fmt.Errorf("Cache = %q, %w (it must fall back to the loader)", profile, err))
	}
	if err := l.rdb.Set(ctx, l.key("session", w), []byte(v), time.Minute); err != nil {
		errs = append(errs, err)
	} else if got, found, err := l.rdb.Get(ctx, l.key("session", w)); err != nil {
		errs = append(errs, err)
	} else if !found || string(got) != v {
		errs = append(errs, fmt.Errorf("GET after SET = %q, %v; want %q", got, found, v))
	}
	if _, err := l.rdb.Incr(ctx, l.key("ratelimit", w), time.Minute); err != nil {
		errs = append(errs, err)
	}
	if got, err := l.script.Run(ctx, l.rdb, []string{l.key("script", w)}, []string{v}).ToString(); err != nil {
		errs = append(errs, err)
	} else if got != v {
		errs = append(errs, fmt.Errorf("script = %q, want %q", got, v))
	}
	return len(errs) == 0, errs
}

// sent returns the commands sent since mark and the new mark.
func (l *failoverLoad) sent(mark int) ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.names[mark:]...), len(l.names)
}

// failoverBounds are the limits a failover test holds the client to.
type failoverBounds struct {
	// total bounds the time from the kill to the first fully successful
	// round.
	total time.Duration
	// client bounds the time from the servers' promotion of a replica to
	// the first fully successful round: the client's own share of the gap.
	client time.Duration
}

const failoverWorkers = 8

// run kills the master with kill while failoverWorkers goroutines call step
// in a loop, then checks that the first fully successful round came within
// the bounds, that callers saw only ErrUnavailable meanwhile, that a
// bystander on another master never failed, that the next second of rounds
// all succeed, that scripts recovered from NOSCRIPT on the new master
// within the same call, and that a write confirmed by WAIT survived.
// promoted reports whether the servers have promoted a new master.
func (l *failoverLoad) run(t *testing.T, topo string, kill func(), promoted func() bool, b failoverBounds) {
	t.Helper()
	ctx := context.Background()
	for i := range 10 { // warm up: scripts loaded, connections made
		for w := range failoverWorkers {
			if ok, errs := l.step(ctx, w, i); !ok {
				t.Fatalf("before the kill: %v", errs)
			}
		}
	}
	durable := l.key("durable", 0)
	redistest.SetReplicated(t, l.rdb, durable, []byte("kept"))

	var (
		mu                          sync.Mutex
		recovered                   time.Duration
		failures, bystanderFailures int
		seen                        []error
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	killed := time.Now()
	kill()
	for w := range failoverWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ok, errs := l.step(ctx, w, i)
				var berr error
				if l.bystander != "" {
					berr = l.rdb.Set(ctx, l.rdb.Keys().Tagged("session", l.bystander, strconv.Itoa(w)), []byte("b"), time.Minute)
				}
				mu.Lock()
				seen = append(seen, errs...)
				if berr != nil {
					seen = append(seen, berr)
					if bystanderFailures == 0 {
						t.Logf("first bystander failure %v after the kill: %v", time.Since(killed).Round(time.Millisecond), berr)
					}
					bystanderFailures++
				}
				if ok && recovered == 0 {
					recovered = time.Since(killed)
				}
				if !ok {
					failures++
				}
				mu.Unlock()
				if !ok {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	var promotedAt time.Duration
	for deadline := killed.Add(b.total + 10*time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if promotedAt == 0 && promoted() {
			promotedAt = time.Since(killed)
		}
		mu.Lock()
		done := recovered != 0
		mu.Unlock()
		if done && promotedAt != 0 {
			break
		}
	}
	close(stop)
	wg.Wait()
	if recovered == 0 {
		t.Fatalf("%s: no fully successful round within %v of killing the master", topo, b.total+10*time.Second)
	}
	t.Logf("FAILOVER %s: servers promoted a replica %v after the kill; first fully successful round %v after the kill (bounds: %v after the kill, %v after the promotion); %d rounds and %d bystander calls failed meanwhile",
		topo, promotedAt.Round(10*time.Millisecond), recovered.Round(10*time.Millisecond), b.total, b.client, failures, bystanderFailures)
	t.Run("recovers within bound", func(t *testing.T) {
		if recovered > b.total {
			t.Errorf("first fully successful round %v after the kill; want within %v (the servers took %v to promote a replica)", recovered, b.total, promotedAt)
		}
		if promotedAt != 0 && recovered-promotedAt > b.client {
			t.Errorf("first fully successful round %v after the servers promoted a replica; want within %v", recovered-promotedAt, b.client)
		}
	})
	t.Run("the new master's breaker never opens", func(t *testing.T) {
		// Calls may flow before the breakers move (a probe through the old
		// master's breaker that rueidis already sends to the new one); the
		// watcher moves them within a recheck period (1s) even then.
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if at, _ := breakerSwitches(l.logs.all()); len(at) > 0 {
				t.Logf("FAILOVER %s: the client moved its breakers to the new master %v after the kill", topo, at[0].Sub(killed).Round(10*time.Millisecond))
				break
			}
		}
		checkNewMastersBreakersStayClosed(t, l.logs.all())
	})
	t.Run("callers see only ErrUnavailable", func(t *testing.T) {
		for _, err := range seen {
			checkFailoverError(t, err)
		}
	})
	if l.bystander != "" {
		t.Run("other masters keep serving", func(t *testing.T) {
			if bystanderFailures > 0 {
				t.Errorf("%d calls for keys on a master that stayed up failed during the failover; want none (a shard's failover must not take the others down)", bystanderFailures)
			}
		})
	}
	t.Run("scripts recover from NOSCRIPT in the same call", func(t *testing.T) {
		// Whether the promoted master already answered NOSCRIPT during the
		// failover window is up to timing, so make it certain: empty every
		// node's script cache, then one call must recover in itself.
		for addr, n := range l.rdb.Nodes() {
			if err := n.Do(ctx, n.B().ScriptFlush().Build()).Error(); err != nil {
				t.Logf("SCRIPT FLUSH on %s: %v", addr, err)
			}
		}
		before, _ := l.sent(0)
		got, err := l.script.Run(ctx, l.rdb, []string{l.key("script", 0)}, []string{"after-flush"}).ToString()
		if err != nil || got != "after-flush" {
			t.Fatalf("script on the new master after SCRIPT FLUSH = %q, %v; want after-flush", got, err)
		}
		all, _ := l.sent(0)
		if names := all[len(before):]; !containsSeq(names, "EVALSHA", "EVAL") {
			t.Errorf("the call sent %v; want EVALSHA then EVAL (NOSCRIPT recovered in the same call)", compact(names))
		}
	})
	t.Run("normal after recovery", func(t *testing.T) {
		for end, i := time.Now().Add(time.Second), 1<<20; time.Now().Before(end); i++ {
			if ok, errs := l.step(ctx, 0, i); !ok {
				t.Fatalf("round failed after recovery: %v", errs)
			}
		}
	})
	t.Run("write confirmed by WAIT survives", func(t *testing.T) {
		if v, found, err := l.rdb.Get(ctx, durable); err != nil || !found || string(v) != "kept" {
			t.Errorf("Get = %q, %v, %v; want kept", v, found, err)
		}
	})
}

// checkFailoverError fails the test unless err is ErrUnavailable and
// carries no Redis redirection or role error a caller could not handle.
func checkFailoverError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, redisx.ErrUnavailable) {
		t.Errorf("caller saw %v; want only ErrUnavailable during a failover", err)
		return
	}
	for _, bad := range []string{"CROSSSLOT", "MOVED", "ASK ", "READONLY", "NOSCRIPT"} {
		if strings.Contains(err.Error(), bad) {
			t.Errorf("caller saw %s in %v", bad, err)
		}
	}
}

func containsSeq(names []string, a, b string) bool {
	for i := 0; i+1 < len(names); i++ {
		if names[i] == a && names[i+1] == b {
			return true
		}
	}
	return false
}

// compact shortens a command list for a failure message.
func compact(names []string) string {
	if len(names) > 40 {
		names = names[len(names)-40:]
	}
	return strings.Join(names, " ")
}

// TestClusterFailover kills the master of a user's slot under load. Redis
// Cluster flags a master failed once a ping has gone unanswered for
// cluster-node-timeout, and the ping goes out up to half a node timeout
// after the last answer; its replica then waits 0.5-1s before its
// election. So the servers need up to 1.5 node timeouts + 1s, and the
// client gets 2s on top.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	l := newFailoverLoad(t, c.Config(t))
	for l.bystander == "" || c.MasterOf(t, l.rdb.Keys().Tagged("user", l.bystander)) == c.MasterOf(t, l.key("session", 0)) {
		l.bystander = theater.NewID()
	}
	var dead *redistest.Server
	l.run(t, "cluster", func() {
		flushScripts(t, c.ReplicasOf(t, c.MasterOf(t, l.key("session", 0))))
		dead = c.KillMaster(t, l.key("session", 0))
	},
		func() bool { m := c.MasterOf(t, l.key("session", 0)); return m != nil && m != dead },
		failoverBounds{total: redistest.ClusterNodeTimeout*3/2 + time.Second + 2*time.Second, client: 2 * time.Second})
}

// flushScripts empties the replicas' script caches just before their master
// is killed, so the promoted one must answer NOSCRIPT and the recovery path
// (EVALSHA then EVAL in the same call) is exercised every run: whether a
// replica already held a script is otherwise up to chance.
func flushScripts(tb testing.TB, replicas []*redistest.Server) {
	tb.Helper()
	for _, r := range replicas {
		out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(r.Port), "SCRIPT", "FLUSH").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK") {
			tb.Fatalf("SCRIPT FLUSH on replica %s: %v: %s", r.Addr, err, out)
		}
	}
}

// TestSentinelFailover kills the Sentinel master under load. The sentinels
// agree it is down after down-after-milliseconds, elect a leader (after a
// random delay of up to 1s) and promote the replica, which takes them up to
// about 2s more; the client gets 2s on top.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	g := redistest.StartSentinel(t)
	l := newFailoverLoad(t, g.Config(t))
	var dead *redistest.Server
	l.run(t, "sentinel", func() {
		flushScripts(t, g.Replicas(t))
		dead = g.KillMaster(t)
	},
		func() bool { return g.Master(t) != dead },
		failoverBounds{total: redistest.SentinelDownAfter + 2*time.Second + 2*time.Second, client: 2 * time.Second})
}
