package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/demo"
)

// env turns pairs into a getenv.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestBadConfigExitsTwoWithOneLinePerVariable(t *testing.T) {
	tests := []struct {
		name  string
		env   []string
		names []string // variables that must be named, one line each
	}{
		{"one bad rate", []string{"RATE_LIMIT_API", "lots"}, []string{"RATE_LIMIT_API"}},
		{"three bad", []string{"RATE_LIMIT_API", "0/1m", "RATE_LIMIT_LOGIN", "5/forever", "SHUTDOWN_TIMEOUT", "-1s"},
			[]string{"RATE_LIMIT_API", "RATE_LIMIT_LOGIN", "SHUTDOWN_TIMEOUT"}},
		{"redis url with password", []string{"REDIS_URL", "http://user:hunter2secret@x:1/"}, []string{"REDIS_URL"}},
		{"bad database", []string{"DATABASE_URL", "mysql://x"}, []string{"DATABASE_URL"}},
		{"bad log level", []string{"LOG_LEVEL", "loud"}, []string{"LOG_LEVEL"}},
		{"every kind at once", []string{"HTTP_ADDR", "nowhere", "REDIS_PORT", "0", "REDIS_DB", "abc",
			"TRUSTED_PROXIES", "300.1.1.1/8", "SESSION_IDLE_TIMEOUT", "10", "REDIS_PASSWORD", "hunter2secret"},
			[]string{"HTTP_ADDR", "REDIS_PORT", "REDIS_DB", "TRUSTED_PROXIES", "SESSION_IDLE_TIMEOUT"}},
		{"absolute shorter than idle", []string{"SESSION_IDLE_TIMEOUT", "2h", "SESSION_ABSOLUTE_TIMEOUT", "1h"}, []string{"SESSION_ABSOLUTE_TIMEOUT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(nil, env(tt.env...), &stdout, &stderr)
			if code != 2 {
				t.Fatalf("exit status %d, want 2; stderr %q", code, stderr.String())
			}
			lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
			if len(lines) != len(tt.names) {
				t.Fatalf("stderr has %d lines, want %d (one per bad variable):\n%s", len(lines), len(tt.names), stderr.String())
			}
			for i, name := range tt.names {
				found := false
				for _, l := range lines {
					if strings.Contains(l, name) {
						found = true
					}
				}
				if !found {
					t.Errorf("no line names %s (line %d expected):\n%s", name, i, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), "hunter2secret") {
				t.Fatalf("stderr leaks the Redis password: %s", stderr.String())
			}
		})
	}
}

func TestBadFlagExitsTwo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-nope"}, env(), &stdout, &stderr); code != 2 {
		t.Fatalf("exit status %d, want 2", code)
	}
	if code := run([]string{"extra"}, env(), &stdout, &stderr); code != 2 {
		t.Fatalf("exit status %d for a stray argument, want 2", code)
	}
	for _, args := range [][]string{
		{"-demo", "-demo-scripts", "-1"},
		{"-demo", "-demo-scripts", "1000001"},
		{"-demo", "-demo-scripts", "lots"},
		{"-demo", "-demo-scripts", "99999999999999999999"},
		{"-demo-scripts", "5"}, // without -demo
	} {
		stderr.Reset()
		if code := run(args, env(), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "demo") {
			t.Errorf("%q: exit status %d, stderr %q; want 2 and a line naming the flag", args, code, stderr.String())
		}
	}
}

// TestServeAndDrain builds the binary, starts it with -demo against a Redis
// that is down (it must start anyway), checks it serves the demo catalogue
// from the database and reports Redis down on /readyz, then sends SIGTERM
// and checks that it exits 0 in good time.
func TestServeAndDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t)
	addr := freeAddr(t)
	dead := freeAddr(t) // nothing listens there: Redis is down
	cmd := exec.Command(bin, "-demo")
	cmd.Env = append(os.Environ(),
		"HTTP_ADDR="+addr,
		"REDIS_URL=redis://"+dead+"/0",
		"DATABASE_URL=sqlite:"+filepath.Join(t.TempDir(), "db", "theater.db"),
		"SHUTDOWN_TIMEOUT=5s",
		"SHUTDOWN_DELAY=0s",
	)
	cmd.Dir = t.TempDir()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	base := "http://" + addr
	waitFor(t, base+"/healthz", 200, &out)
	res, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 {
		t.Fatalf("/readyz with Redis down = %d, want 503", res.StatusCode)
	}
	res, err = http.Get(base + "/api/scripts?limit=1")
	if err != nil {
		t.Fatal(err)
	}
	var page struct{ Total int }
	err = json.NewDecoder(res.Body).Decode(&page)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || page.Total != demo.DefaultScripts || res.Header.Get("X-Cache") != "BYPASS" {
		t.Fatalf("list: status %d, X-Cache %q, total %d (%v); want 200, BYPASS, %d", res.StatusCode, res.Header.Get("X-Cache"), page.Total, err, demo.DefaultScripts)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, cmd, 10*time.Second, &out)
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitFor(tb testing.TB, url string, status int, out fmt.Stringer) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == status {
				return
			}
		}
		if ctx.Err() != nil {
			tb.Fatalf("%s did not answer %d in 15s\n%s", url, status, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
