package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/redisx"
)

// SentinelMaster is the master set name Sentinel groups started here
// monitor, as in the Sentinel documentation.
const SentinelMaster = "mymaster"

// Timings of Sentinel groups started here. They are short so failover tests
// are quick; production keeps down-after-milliseconds at a few seconds.
const (
	// SentinelDownAfter is how long the master must be unreachable before
	// a sentinel thinks it is down (down-after-milliseconds).
	SentinelDownAfter = time.Second

	// SentinelFailoverTimeout is Sentinel's failover-timeout: a failover
	// that has not finished by then is abandoned and retried.
	SentinelFailoverTimeout = 4 * time.Second
)

// Sentinel is a local Sentinel group: a master, one replica and three
// sentinels with quorum 2, each on a free loopback port in a temp dir of its
// own. Processes die with the test binary.
type Sentinel struct {
	// Servers are the data nodes: [0] started as the master and [1] as its
	// replica. Which one is master changes with failovers (see Master).
	Servers []*Server

	sentinels []*sentinelProcess
}

// sentinelProcess is one redis-server --sentinel. Unlike a Server it runs
// from a config file, which Sentinel requires and rewrites.
type sentinelProcess struct {
	Addr string
	Dir  string
	cmd  *exec.Cmd
}

// StartSentinel starts a Sentinel group for tb alone (tests that kill the
// master need their own) and tears it down at cleanup.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	s, err := startSentinel()
	if err != nil {
		tb.Fatalf("redistest: sentinel: %v (%s)", err, installHint)
	}
	tb.Cleanup(s.close)
	return s
}

func startSentinel() (*Sentinel, error) {
	g := &Sentinel{}
	// Replicas sync at once instead of after the 5s default delay; both
	// data nodes get it, as either may become the master.
	fast := []string{"--repl-diskless-sync-delay", "0"}
	master, err := startServer(fast)
	if err != nil {
		return nil, err
	}
	g.Servers = append(g.Servers, master)
	replica, err := startServer(append(fast, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port)))
	if err != nil {
		g.close()
		return nil, err
	}
	g.Servers = append(g.Servers, replica)
	ports, err := freePorts(3)
	if err != nil {
		g.close()
		return nil, err
	}
	for _, port := range ports {
		p, err := startSentinelProcess(port, master.Port)
		if err != nil {
			g.close()
			return nil, err
		}
		g.sentinels = append(g.sentinels, p)
	}
	if err := g.waitHealthy(30 * time.Second); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

func startSentinelProcess(port, masterPort int) (*sentinelProcess, error) {
	bin, err := redisServerPath()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redistest-sentinel-")
	if err != nil {
		return nil, err
	}
	p := &sentinelProcess{Addr: addrOf(port), Dir: dir}
	conf := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
logfile %s
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %[4]s %[6]d
sentinel failover-timeout %[4]s %[7]d
sentinel parallel-syncs %[4]s 1
`, port, dir, filepath.Join(dir, "sentinel.log"), SentinelMaster, masterPort,
		SentinelDownAfter.Milliseconds(), SentinelFailoverTimeout.Milliseconds())
	path := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, path, "--sentinel")
	// The sentinel dies with the test binary, even if the test panics.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server --sentinel: %w", err)
	}
	p.cmd = cmd
	go func() { _ = cmd.Wait() }()
	err = waitFor(10*time.Second, func(context.Context) error {
		conn, err := net.DialTimeout("tcp", p.Addr, 100*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		return err
	})
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "sentinel.log"))
		p.kill()
		return nil, fmt.Errorf("sentinel on %s did not start: %v: %s", p.Addr, err, log)
	}
	return p, nil
}

func (p *sentinelProcess) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
	_ = os.RemoveAll(p.Dir)
}

func (g *Sentinel) close() {
	for _, p := range g.sentinels {
		p.kill()
	}
	for _, s := range g.Servers {
		s.Kill()
		_ = os.RemoveAll(s.Dir)
	}
}

// Addrs returns the sentinels' addresses, for Config.Addrs.
func (g *Sentinel) Addrs() []string {
	out := make([]string, len(g.sentinels))
	for i, p := range g.sentinels {
		out[i] = p.Addr
	}
	return out
}

// Config returns a Sentinel Config for g with a key prefix of tb's own.
func (g *Sentinel) Config(tb testing.TB) redisx.Config {
	tb.Helper()
	return redisx.Config{SentinelMaster: SentinelMaster, Addrs: g.Addrs(), KeyPrefix: Prefix(tb)}
}

// Master returns the data node the sentinels currently name as master.
func (g *Sentinel) Master(tb testing.TB) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr, err := g.masterAddr(ctx)
	if err != nil {
		tb.Fatalf("redistest: sentinel: %v", err)
	}
	return g.server(addr)
}

// Replicas returns the data nodes that are not the current master.
func (g *Sentinel) Replicas(tb testing.TB) []*Server {
	tb.Helper()
	m := g.Master(tb)
	var out []*Server
	for _, s := range g.Servers {
		if s != m {
			out = append(out, s)
		}
	}
	return out
}

// KillMaster kills (SIGKILL, as a crash) the current master and returns it.
// The sentinels promote the replica after SentinelDownAfter plus their
// election; Start the returned server to have the sentinels turn it into a
// replica of the new master.
func (g *Sentinel) KillMaster(tb testing.TB) *Server {
	tb.Helper()
	s := g.Master(tb)
	if s == nil {
		tb.Fatal("redistest: sentinel: the master is not one of the group's servers")
	}
	s.Kill()
	return s
}

// WaitHealthy waits until every sentinel names the same live master,
// reaches quorum (SENTINEL CKQUORUM) and, while both data nodes run, the
// replica's link to that master is up and the sentinels know the replica.
func (g *Sentinel) WaitHealthy(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	if err := g.waitHealthy(timeout); err != nil {
		tb.Fatalf("redistest: sentinel group not healthy: %v", err)
	}
}

func (g *Sentinel) waitHealthy(timeout time.Duration) error {
	return waitFor(timeout, func(ctx context.Context) error {
		master := ""
		for _, p := range g.sentinels {
			addr, err := sentinelMasterAddr(ctx, p.Addr)
			if err != nil {
				return err
			}
			if master != "" && addr != master {
				return fmt.Errorf("sentinels disagree on the master: %s and %s", master, addr)
			}
			master = addr
			if _, err := nodeString(ctx, p.Addr, "SENTINEL", "CKQUORUM", SentinelMaster); err != nil {
				return fmt.Errorf("%s: ckquorum: %w", p.Addr, err)
			}
		}
		m := g.server(master)
		if m == nil || !m.alive() {
			return fmt.Errorf("master %s is not running", master)
		}
		if role, err := nodeRole(ctx, master); err != nil || role != "master" {
			return fmt.Errorf("%s: role %q (%v), want master", master, role, err)
		}
		for _, s := range g.Servers {
			if s == m {
				continue
			}
			if !s.alive() {
				return nil // a dead replica cannot be waited for
			}
			info, err := nodeString(ctx, s.Addr, "INFO", "replication")
			if err != nil {
				return err
			}
			f := infoFields(info)
			if f["role"] != "slave" || addrOf(atoi(f["master_port"])) != master || f["master_link_status"] != "up" {
				return fmt.Errorf("replica %s: role %s of port %s, link %s", s.Addr, f["role"], f["master_port"], f["master_link_status"])
			}
			for _, p := range g.sentinels {
				if err := sentinelKnowsReplica(ctx, p.Addr, s.Addr); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (g *Sentinel) masterAddr(ctx context.Context) (string, error) {
	var lastErr error
	for _, p := range g.sentinels {
		addr, err := sentinelMasterAddr(ctx, p.Addr)
		if err == nil {
			return addr, nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = errors.New("no sentinel")
	}
	return "", lastErr
}

func (g *Sentinel) server(addr string) *Server {
	for _, s := range g.Servers {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

func sentinelMasterAddr(ctx context.Context, sentinel string) (string, error) {
	m, err := nodeDo(ctx, sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SentinelMaster)
	if err != nil {
		return "", fmt.Errorf("%s: get-master-addr-by-name: %w", sentinel, err)
	}
	hp, err := m.AsStrSlice()
	if err != nil || len(hp) != 2 {
		return "", fmt.Errorf("%s: get-master-addr-by-name: %v %v", sentinel, hp, err)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// sentinelKnowsReplica checks that the sentinel lists addr as a replica
// that is not down: only such a replica can be promoted.
func sentinelKnowsReplica(ctx context.Context, sentinel, addr string) error {
	m, err := nodeDo(ctx, sentinel, "SENTINEL", "REPLICAS", SentinelMaster)
	if err != nil {
		return fmt.Errorf("%s: sentinel replicas: %w", sentinel, err)
	}
	list, err := m.ToArray()
	if err != nil {
		return err
	}
	for _, r := range list {
		f, err := r.AsStrMap()
		if err != nil {
			return err
		}
		if net.JoinHostPort(f["ip"], f["port"]) == addr && f["flags"] == "slave" && f["master-link-status"] == "ok" {
			return nil
		}
	}
	return fmt.Errorf("sentinel %s does not list replica %s as healthy yet", sentinel, addr)
}

func nodeRole(ctx context.Context, addr string) (string, error) {
	m, err := nodeDo(ctx, addr, "ROLE")
	if err != nil {
		return "", err
	}
	a, err := m.ToArray()
	if err != nil || len(a) == 0 {
		return "", fmt.Errorf("role: %v", err)
	}
	return a[0].ToString()
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
