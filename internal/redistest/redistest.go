// Package redistest gives tests a real Redis: REDIS_URL if set, else
// 127.0.0.1:6379 when it answers, else a redis-server started from PATH on
// a free port in a temp dir. Each test gets its own key prefix, so tests run
// in parallel without flushing each other; nothing ever skips because Redis
// is missing: the test fails and says what to install.
//
// It also starts throwaway servers (StartServer) that a fault test may stop,
// pause (SIGSTOP) or restart on the same port, a 3+3-node Redis Cluster
// (StartCluster) and a Sentinel group (StartSentinel) whose master a test
// may kill.
//
// REDIS_TEST_TOPOLOGY=cluster or =sentinel runs every suite that uses
// Config, Client or Connect on one cluster or Sentinel group started once
// per test binary instead (the default is standalone):
//
//	REDIS_TEST_TOPOLOGY=cluster go test ./redisx/ ./session/
//
//	func TestX(t *testing.T) {
//		rdb := redistest.Client(t) // keys under a prefix of its own, deleted at the end
//		...
//	}
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/redisx"
)

const installHint = "install Redis (Debian: apt-get install redis-server) or set REDIS_URL"

var shared struct {
	once sync.Once
	cfg  redisx.Config
	srv  *Server
	err  error
}

// Config returns a Config for the shared test Redis with a key prefix that
// belongs to this test alone. The shared Redis is a standalone server, or
// the cluster or Sentinel group that REDIS_TEST_TOPOLOGY names.
func Config(tb testing.TB) redisx.Config {
	tb.Helper()
	topo, err := Topology()
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	switch topo {
	case TopologyCluster:
		return SharedCluster(tb).Config(tb)
	case TopologySentinel:
		return SharedSentinel(tb).Config(tb)
	}
	shared.once.Do(func() { shared.cfg, shared.err = findRedis() })
	if shared.err != nil {
		tb.Fatalf("redistest: no Redis for tests: %v (%s)", shared.err, installHint)
	}
	cfg := shared.cfg
	cfg.KeyPrefix = Prefix(tb)
	cfg.Addrs = append([]string(nil), cfg.Addrs...)
	return cfg
}

// Prefix returns a fresh key prefix for tb: "t:<random>:".
func Prefix(tb testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "t:" + hex.EncodeToString(b[:]) + ":"
}

// Client returns a connected client for the shared test Redis with a key
// prefix of its own; its keys are deleted and it is closed at cleanup.
// edit, if given, may change the Config first.
func Client(tb testing.TB, edit ...func(*redisx.Config)) *redisx.Client {
	tb.Helper()
	cfg := Config(tb)
	for _, e := range edit {
		e(&cfg)
	}
	return Connect(tb, cfg)
}

// Connect makes a client for cfg, fails the test if it cannot reach Redis
// within 5s, and deletes the keys under cfg's prefix and closes the client
// at cleanup.
func Connect(tb testing.TB, cfg redisx.Config) *redisx.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := redisx.New(ctx, cfg)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	for c.Ping(ctx) != nil {
		if ctx.Err() != nil {
			c.Close()
			tb.Fatalf("redistest: Redis at %v does not answer (%s)", cfg.Addrs, installHint)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Cleanup(func() {
		DeleteKeys(tb, c)
		c.Close()
	})
	return c
}

// Keys lists the keys under c's prefix, with SCAN on every master (one
// server standalone, the current master with Sentinel, each master of a
// cluster). For assertions in tests (every key has a TTL, no raw token
// stored); never used by the service.
func Keys(tb testing.TB, c *redisx.Client) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	err := scanMasters(ctx, c, func(_ string, batch []string) error {
		keys = append(keys, batch...)
		return nil
	})
	if err != nil {
		tb.Fatalf("redistest: scan: %v", err)
	}
	return keys
}

// DeleteKeys removes every key under c's prefix, on every master.
func DeleteKeys(tb testing.TB, c *redisx.Client) {
	tb.Helper()
	if !c.Connected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Errors are ignored: Redis may be stopped on purpose by the test.
	_ = scanMasters(ctx, c, func(_ string, batch []string) error {
		_, err := c.Delete(ctx, batch...)
		return err
	})
}

// findRedis picks the shared server: REDIS_URL, else localhost:6379, else a
// server of our own.
func findRedis() (redisx.Config, error) {
	if u := os.Getenv("REDIS_URL"); u != "" {
		cfg, err := redisx.ParseURL(u)
		if err != nil {
			return cfg, fmt.Errorf("REDIS_URL: %w", err)
		}
		return cfg, nil
	}
	if answersPing("127.0.0.1:6379") {
		return redisx.Config{Addrs: []string{"127.0.0.1:6379"}}, nil
	}
	srv, err := startServer(nil)
	if err != nil {
		return redisx.Config{}, err
	}
	shared.srv = srv
	return redisx.Config{Addrs: []string{srv.Addr}}, nil
}

// answersPing speaks just enough RESP to tell a Redis from anything else.
func answersPing(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 64)
	n, _ := conn.Read(buf)
	// An auth-protected server answers -NOAUTH: it is a Redis all the same,
	// but not one we can use without REDIS_URL.
	return strings.HasPrefix(string(buf[:n]), "+PONG")
}

// redisServerPath finds the redis-server binary or says how to get it.
func redisServerPath() (string, error) {
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server is not on PATH")
	}
	return p, nil
}
