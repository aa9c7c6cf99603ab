package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/redisx"
)

// TopologyEnv is the environment variable that chooses the Redis every
// suite runs on: "standalone" (the default), "cluster" or "sentinel".
const TopologyEnv = "REDIS_TEST_TOPOLOGY"

// The topologies TopologyEnv may name.
const (
	TopologyStandalone = "standalone"
	TopologyCluster    = "cluster"
	TopologySentinel   = "sentinel"
)

// Topology returns the topology TopologyEnv selects, or an error naming the
// allowed values.
func Topology() (string, error) {
	switch v := os.Getenv(TopologyEnv); v {
	case "", TopologyStandalone:
		return TopologyStandalone, nil
	case TopologyCluster, TopologySentinel:
		return v, nil
	default:
		return "", fmt.Errorf("%s=%q: want standalone, cluster or sentinel", TopologyEnv, v)
	}
}

// The shared cluster and Sentinel group live as long as the test binary:
// their processes die with it (Pdeathsig). Their temp dirs stay behind,
// because the nodes rewrite their config files until the very end.
var (
	sharedCluster struct {
		once sync.Once
		c    *Cluster
		err  error
	}
	sharedSentinel struct {
		once sync.Once
		g    *Sentinel
		err  error
	}
)

// SharedCluster returns the cluster shared by every test of this binary,
// starting it on first use. Never kill its nodes: use StartCluster for that.
func SharedCluster(tb testing.TB) *Cluster {
	tb.Helper()
	sharedCluster.once.Do(func() { sharedCluster.c, sharedCluster.err = startCluster() })
	if sharedCluster.err != nil {
		tb.Fatalf("redistest: shared cluster: %v (%s)", sharedCluster.err, installHint)
	}
	return sharedCluster.c
}

// SharedSentinel returns the Sentinel group shared by every test of this
// binary, starting it on first use. Never kill its master: use
// StartSentinel for that.
func SharedSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	sharedSentinel.once.Do(func() { sharedSentinel.g, sharedSentinel.err = startSentinel() })
	if sharedSentinel.err != nil {
		tb.Fatalf("redistest: shared sentinel: %v (%s)", sharedSentinel.err, installHint)
	}
	return sharedSentinel.g
}

// KeysByMaster lists the keys under c's prefix per master address, with
// SCAN on each master. Tests use it to see how keys spread over a cluster.
func KeysByMaster(tb testing.TB, c *redisx.Client) map[string][]string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string][]string{}
	err := scanMasters(ctx, c, func(addr string, batch []string) error {
		out[addr] = append(out[addr], batch...)
		return nil
	})
	if err != nil {
		tb.Fatalf("redistest: scan: %v", err)
	}
	return out
}

// scanMasters calls fn with each batch of keys under c's prefix that SCAN
// finds on each master c is connected to. Replicas are skipped (their keys
// are the masters' keys, perhaps late), and so are nodes that do not answer
// ROLE: a dead master's keys are unreachable until its replica takes over.
func scanMasters(ctx context.Context, c *redisx.Client, fn func(addr string, batch []string) error) error {
	nodes := c.Nodes()
	addrs := make([]string, 0, len(nodes))
	for a := range nodes {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	pattern := c.Keys().Prefix() + "*"
	masters := 0
	var roleErr error
	for _, addr := range addrs {
		n := nodes[addr]
		role, err := n.Do(ctx, n.B().Role().Build()).ToArray()
		if err != nil || len(role) == 0 {
			roleErr = fmt.Errorf("%s: role: %v", addr, err)
			continue
		}
		if r, _ := role[0].ToString(); r != "master" {
			continue
		}
		masters++
		var cursor uint64
		for {
			e, err := n.Do(ctx, n.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
			if err != nil {
				return fmt.Errorf("%s: scan: %w", addr, err)
			}
			if len(e.Elements) > 0 {
				if err := fn(addr, e.Elements); err != nil {
					return err
				}
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	if masters == 0 {
		if roleErr == nil {
			roleErr = errors.New("not connected")
		}
		return fmt.Errorf("no master answered: %w", roleErr)
	}
	return nil
}

// Config returns a standalone Config for s with a key prefix of tb's own,
// whatever TopologyEnv says: for tests that run on a server of their own
// (fault tests, or a proxy in front of s after changing Addrs).
func (s *Server) Config(tb testing.TB) redisx.Config {
	tb.Helper()
	return redisx.Config{Addrs: []string{s.Addr}, KeyPrefix: Prefix(tb)}
}

// At returns cfg pointed at one standalone server, whatever
// REDIS_TEST_TOPOLOGY says: for tests that start a throwaway server (or a
// fault proxy in front of one) but keep the prefix and timeouts of cfg.
func At(cfg redisx.Config, addr string) redisx.Config {
	cfg.Addrs = []string{addr}
	cfg.Cluster, cfg.SentinelMaster = false, ""
	return cfg
}

// SetReplicated writes key = value (TTL one minute) and waits until a
// replica acknowledges it (WAIT 1), retrying while none does for up to 15
// s: a replica of a topology just started may still be in its first sync,
// and WAIT counts it only once it streams. It fails tb past that.
func SetReplicated(tb testing.TB, rdb *redisx.Client, key string, value []byte) {
	tb.Helper()
	for began := time.Now(); ; {
		err := rdb.SetWait(context.Background(), key, value, time.Minute, 1, 500*time.Millisecond)
		if err == nil {
			if d := time.Since(began); d > time.Second {
				tb.Logf("redistest: a replica acknowledged writes %v after the first try", d.Round(time.Millisecond))
			}
			return
		}
		if !errors.Is(err, redisx.ErrNotReplicated) || time.Since(began) > 15*time.Second {
			tb.Fatalf("redistest: SetWait %s: %v", key, err)
		}
	}
}
