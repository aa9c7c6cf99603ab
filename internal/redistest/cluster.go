package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/redisx"
)

// ClusterNodeTimeout is the cluster-node-timeout of clusters started here:
// how long a master may be unreachable before the cluster marks it failed
// and promotes its replica. It is short so failover tests are quick; a
// production cluster keeps the default (15s) or a few seconds.
const ClusterNodeTimeout = 2 * time.Second

// Cluster is a local Redis Cluster of three masters and three replicas,
// started from redis-server and redis-cli on free loopback ports, each node
// in a temp dir of its own. Nodes die with the test binary.
type Cluster struct {
	// Nodes are all six servers, in the order they were created; which are
	// masters changes with failovers (see Masters and MasterOf).
	Nodes []*Server
}

// StartCluster starts a 3-master, 3-replica cluster for tb alone (tests that
// kill nodes need their own) and tears it down at cleanup.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := startCluster()
	if err != nil {
		tb.Fatalf("redistest: cluster: %v (%s)", err, installHint)
	}
	tb.Cleanup(c.close)
	return c
}

func startCluster() (*Cluster, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, errors.New("redis-cli is not on PATH")
	}
	c := &Cluster{}
	// Each node gets its cluster bus port explicitly: the default (port +
	// 10000) may be taken or beyond 65535 for a random free port. A bus
	// port taken before the node binds it makes the node exit at start:
	// then it gets another.
	for range 6 {
		var s *Server
		for attempt := 1; ; attempt++ {
			bus, err := freePort()
			if err != nil {
				c.close()
				return nil, err
			}
			s, err = startServer([]string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout.Milliseconds())),
				"--cluster-port", strconv.Itoa(bus),
				// A replica may always take over, however long it was cut off:
				// the harness cares about availability, not about stale replicas.
				"--cluster-replica-validity-factor", "0",
				// Slots whose master is down fail; the other masters keep
				// serving. This is what an operator wants for a cache.
				"--cluster-require-full-coverage", "no",
				// Replicas sync at once instead of after the 5s default delay.
				"--repl-diskless-sync-delay", "0",
			})
			if err == nil {
				break
			}
			if !errors.Is(err, errExited) || attempt == startAttempts {
				c.close()
				return nil, err
			}
		}
		c.Nodes = append(c.Nodes, s)
	}
	args := []string{"--cluster", "create"}
	for _, s := range c.Nodes {
		args = append(args, s.Addr)
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		c.close()
		return nil, fmt.Errorf("redis-cli --cluster create: %v: %s", err, out)
	}
	if err := c.waitHealthy(30 * time.Second); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) close() {
	for _, s := range c.Nodes {
		s.Kill()
		_ = os.RemoveAll(s.Dir)
	}
}

// Addrs returns the seed addresses of every node, for Config.Addrs.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr
	}
	return out
}

// Config returns a cluster Config for c with a key prefix of tb's own.
func (c *Cluster) Config(tb testing.TB) redisx.Config {
	tb.Helper()
	return redisx.Config{Cluster: true, Addrs: c.Addrs(), KeyPrefix: Prefix(tb)}
}

// WaitHealthy waits until every live node says cluster_state:ok and sees
// all 16384 slots, every slot's master is alive, and every master has a
// replica whose link is up.
func (c *Cluster) WaitHealthy(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	if err := c.waitHealthy(timeout); err != nil {
		tb.Fatalf("redistest: cluster not healthy: %v", err)
	}
}

func (c *Cluster) waitHealthy(timeout time.Duration) error {
	return waitFor(timeout, func(ctx context.Context) error {
		live := 0
		for _, s := range c.Nodes {
			if !s.alive() {
				continue
			}
			live++
			info, err := nodeString(ctx, s.Addr, "CLUSTER", "INFO")
			if err != nil {
				return fmt.Errorf("%s: cluster info: %w", s.Addr, err)
			}
			f := infoFields(info)
			if f["cluster_state"] != "ok" || f["cluster_slots_assigned"] != "16384" || f["cluster_slots_ok"] != "16384" {
				return fmt.Errorf("%s: cluster_state %s, slots assigned %s, ok %s",
					s.Addr, f["cluster_state"], f["cluster_slots_assigned"], f["cluster_slots_ok"])
			}
		}
		topo, err := c.topology(ctx)
		if err != nil {
			return err
		}
		if len(topo.masters) != 3 {
			return fmt.Errorf("%d masters serve slots, want 3", len(topo.masters))
		}
		for _, m := range topo.masters {
			if !c.node(m).alive() {
				return fmt.Errorf("master %s is dead but still owns slots", m)
			}
			// Once a master is dead its promoted replica is left alone.
			if want := btoi(live == len(c.Nodes)); topo.replicas[m] < want {
				return fmt.Errorf("master %s has %d replicas with link up, want %d", m, topo.replicas[m], want)
			}
		}
		return nil
	})
}

// clusterTopology is what the live nodes agree on: the masters that own
// slots, the master of each slot, and how many replicas each master has
// with their replication link up.
type clusterTopology struct {
	masters  []string
	slots    [16384]string
	replicas map[string]int
}

// topology asks a live node for CLUSTER SHARDS and the replicas for their
// link state. It needs the node's view to agree with the others' (checked
// by WaitHealthy through cluster_state).
func (c *Cluster) topology(ctx context.Context) (*clusterTopology, error) {
	var lastErr error
	for _, s := range c.Nodes {
		if !s.alive() {
			continue
		}
		out, err := nodeString(ctx, s.Addr, "CLUSTER", "NODES")
		if err != nil {
			lastErr = err
			continue
		}
		return c.parseNodes(ctx, out)
	}
	if lastErr == nil {
		lastErr = errors.New("no live node")
	}
	return nil, lastErr
}

// parseNodes reads CLUSTER NODES: "id addr@bus flags master-id ping pong
// epoch link slot-ranges...".
func (c *Cluster) parseNodes(ctx context.Context, out string) (*clusterTopology, error) {
	t := &clusterTopology{replicas: map[string]int{}}
	addrByID := map[string]string{}
	type replica struct{ addr, masterID string }
	var replicas []replica
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		addrByID[f[0]] = addr
		flags := f[2]
		if strings.Contains(flags, "fail") && !strings.Contains(flags, "fail?") {
			continue
		}
		switch {
		case strings.Contains(flags, "master") && len(f) > 8:
			t.masters = append(t.masters, addr)
			for _, r := range f[8:] {
				if strings.HasPrefix(r, "[") {
					continue // a slot being migrated
				}
				lo, hi, ok := strings.Cut(r, "-")
				if !ok {
					hi = lo
				}
				a, err1 := strconv.Atoi(lo)
				b, err2 := strconv.Atoi(hi)
				if err1 != nil || err2 != nil || a < 0 || b >= 16384 || a > b {
					return nil, fmt.Errorf("cluster nodes: bad slot range %q", r)
				}
				for i := a; i <= b; i++ {
					t.slots[i] = addr
				}
			}
		case strings.Contains(flags, "slave"):
			replicas = append(replicas, replica{addr, f[3]})
		}
	}
	for _, r := range replicas {
		if s := c.node(r.addr); s == nil || !s.alive() {
			continue
		}
		info, err := nodeString(ctx, r.addr, "INFO", "replication")
		if err != nil {
			continue
		}
		f := infoFields(info)
		if f["master_link_status"] == "up" {
			t.replicas[addrByID[r.masterID]]++
		}
	}
	return t, nil
}

func (c *Cluster) node(addr string) *Server {
	for _, s := range c.Nodes {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// Masters returns the nodes that currently own slots.
func (c *Cluster) Masters(tb testing.TB) []*Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t, err := c.topology(ctx)
	if err != nil {
		tb.Fatalf("redistest: cluster topology: %v", err)
	}
	out := make([]*Server, 0, len(t.masters))
	for _, m := range t.masters {
		out = append(out, c.node(m))
	}
	return out
}

// MasterOf returns the node that currently owns key's slot, or nil while
// the slot has none (its master failed and no replica took over yet).
func (c *Cluster) MasterOf(tb testing.TB, key string) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t, err := c.topology(ctx)
	if err != nil {
		tb.Fatalf("redistest: cluster topology: %v", err)
	}
	return c.node(t.slots[KeySlot(key)])
}

// ReplicasOf returns the live replicas of master whose replication link
// is up.
func (c *Cluster) ReplicasOf(tb testing.TB, master *Server) []*Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []*Server
	for _, s := range c.Nodes {
		if s == master || !s.alive() {
			continue
		}
		info, err := nodeString(ctx, s.Addr, "INFO", "replication")
		if err != nil {
			continue
		}
		f := infoFields(info)
		if f["role"] == "slave" && addrOf(atoi(f["master_port"])) == master.Addr && f["master_link_status"] == "up" {
			out = append(out, s)
		}
	}
	return out
}

// KillMaster kills (SIGKILL, as a crash) the master that owns key's slot and
// returns it; the cluster then promotes its replica after
// ClusterNodeTimeout. Start the returned server again to have it rejoin as
// a replica.
func (c *Cluster) KillMaster(tb testing.TB, key string) *Server {
	tb.Helper()
	s := c.MasterOf(tb, key)
	if s == nil {
		tb.Fatalf("redistest: slot %d of %q has no master to kill", KeySlot(key), key)
	}
	s.Kill()
	return s
}

// alive reports whether the server's process runs and its port accepts
// connections (a killed server's port closes before it is reaped). It
// reads no ProcessState: server.go's Wait goroutine writes that.
func (s *Server) alive() bool {
	if s.cmd == nil || s.cmd.Process == nil || s.cmd.Process.Signal(syscall.Signal(0)) != nil {
		return false
	}
	conn, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// KeySlot returns key's Redis Cluster hash slot: CRC16 (XMODEM) of the key,
// or of its hash tag (the part between the first '{' and the next '}' when
// not empty), modulo 16384.
func KeySlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) % 16384
}

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
