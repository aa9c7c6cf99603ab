package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/config"
	"github.com/theaterscriptpro/tsp/internal/logbuf"
	"github.com/theaterscriptpro/tsp/internal/redistest"
)

// testVersion is what the test binary is stamped with, as the Dockerfile
// stamps a release.
const testVersion = "v0.0.0-opstest"

var built struct {
	once sync.Once
	bin  string
	err  error
	out  []byte
}

// binary builds theaterd once per test run, with -X main.version.
func binary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "theaterd-test-")
		if err != nil {
			built.err = err
			return
		}
		built.bin = filepath.Join(dir, "theaterd")
		cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+testVersion, "-o", built.bin, ".")
		built.out, built.err = cmd.CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build: %v\n%s", built.err, built.out)
	}
	return built.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.bin != "" {
		_ = os.RemoveAll(filepath.Dir(built.bin))
	}
	os.Exit(code)
}

// redisURL is the shared test Redis as a REDIS_URL.
func redisURL(t *testing.T) string {
	cfg := redistest.Config(t)
	u := url.URL{Scheme: "redis", Host: cfg.Addrs[0], Path: "/0"}
	if cfg.TLS != nil {
		u.Scheme = "rediss"
	}
	if cfg.Password != "" {
		u.User = url.UserPassword(cfg.Username, cfg.Password)
	}
	return u.String()
}

// start runs the built theaterd in a temp dir with env added to this
// process's environment; the process is killed at cleanup if still running.
func start(t *testing.T, env ...string) (*exec.Cmd, *logbuf.Buffer) {
	t.Helper()
	cmd := exec.Command(binary(t))
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), append([]string{
		"REDIS_KEY_PREFIX=" + redistest.Prefix(t),
		"DATABASE_URL=sqlite:" + filepath.Join(t.TempDir(), "theater.db"),
		"SHUTDOWN_TIMEOUT=5s",
	}, env...)...)
	out := &logbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, out
}

// waitExit waits for cmd, signalled to stop, to exit 0 within bound.
func waitExit(tb testing.TB, cmd *exec.Cmd, bound time.Duration, out fmt.Stringer) {
	tb.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			tb.Fatalf("exit after SIGTERM: %v\n%s", err, out)
		}
	case <-time.After(bound):
		tb.Fatalf("still running %v after SIGTERM\n%s", bound, out)
	}
}

// get answers status and body of one GET on a fresh connection, or the
// dial error.
func get(u string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// waitLog waits for s in the log: INFO lines are batched for up to 100ms.
func waitLog(t *testing.T, out *logbuf.Buffer, s string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), s); {
		if time.Now().After(deadline) {
			t.Fatalf("the log lacks %s after 10s:\n%s", s, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	var stdout, stderr bytes.Buffer
	for _, arg := range []string{"-h", "-help", "--help"} {
		stdout.Reset()
		if code := run([]string{arg}, env(), &stdout, &stderr); code != 0 {
			t.Fatalf("theaterd %s: exit %d, want 0; stderr %q", arg, code, stderr.String())
		}
		out := stdout.String()
		for _, flagName := range []string{"-demo", "-version"} {
			if !strings.Contains(out, flagName) {
				t.Errorf("theaterd %s does not list the flag %s", arg, flagName)
			}
		}
		for _, v := range config.Vars {
			def := v.Default
			if def == "" {
				def = "none"
			}
			if !strings.Contains(out, "  "+v.Name+" (default: "+def+")\n") {
				t.Errorf("theaterd %s does not list %s with its default %s", arg, v.Name, def)
			}
		}
		if strings.Contains(out, "`") {
			t.Errorf("theaterd %s shows Markdown backticks", arg)
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("-h wrote to stderr: %q", stderr.String())
	}
}

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-version"}, env("LOG_LEVEL", "bad config does not matter"), &stdout, &stderr); code != 0 {
		t.Fatalf("-version: exit %d; stderr %q", code, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "theaterd ") || !strings.Contains(stdout.String(), runtime.Version()) {
		t.Fatalf("-version printed %q; want theaterd, a version and %s", stdout.String(), runtime.Version())
	}
	// The built binary carries the stamped version and, built from a git
	// checkout, the commit.
	out, err := exec.Command(binary(t), "-version").CombinedOutput()
	if err != nil {
		t.Fatalf("theaterd -version: %v\n%s", err, out)
	}
	got := strings.TrimSpace(string(out))
	t.Logf("theaterd -version: %s", got)
	if !strings.HasPrefix(got, "theaterd "+testVersion+" ") {
		t.Errorf("theaterd -version = %q; want it to start with theaterd %s", got, testVersion)
	}
	// When Go recorded the commit (builds from a git checkout, unless
	// -buildvcs=false), -version shows it.
	mv, err := exec.Command("go", "version", "-m", binary(t)).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mv), "\n") {
		if rev, ok := strings.CutPrefix(strings.TrimSpace(line), "build\tvcs.revision="); ok && !strings.Contains(got, "commit "+rev) {
			t.Errorf("theaterd -version = %q; want commit %s", got, rev)
		}
	}
}

// TestDotenvRealEnvironmentWins checks withDotenv: a variable set in the
// environment (even to "") wins over .env, one set only in .env is read,
// and a missing file is no error.
func TestDotenvRealEnvironmentWins(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ".env")
	body := "# comment\nRATE_LIMIT_API=5/1s\nLOG_LEVEL=debug\nexport SHUTDOWN_DELAY=1s\nHTTP_ADDR=':9999'\nREDIS_PASSWORD=\"p w#1\"\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	real := map[string]string{"RATE_LIMIT_API": "7/1m", "LOG_LEVEL": ""}
	lookup := func(k string) (string, bool) { v, ok := real[k]; return v, ok }
	getenv, err := withDotenv(path, lookup)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"RATE_LIMIT_API": "7/1m",  // environment wins
		"LOG_LEVEL":      "",      // set empty in the environment: still wins
		"SHUTDOWN_DELAY": "1s",    // from the file, export prefix allowed
		"HTTP_ADDR":      ":9999", // quotes removed
		"REDIS_PASSWORD": "p w#1", // quoted value kept whole
		"REDIS_HOST":     "",      // in neither
	} {
		if got := getenv(k); got != want {
			t.Errorf("getenv(%s) = %q; want %q", k, got, want)
		}
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ShutdownDelay != time.Second || cfg.RateLimitAPI.Limit != 7 {
		t.Errorf("loaded ShutdownDelay %v, RATE_LIMIT_API %v; want 1s from .env and 7/1m from the environment", cfg.ShutdownDelay, cfg.RateLimitAPI)
	}

	getenv, err = withDotenv(filepath.Join(dir, "absent"), lookup)
	if err != nil || getenv("RATE_LIMIT_API") != "7/1m" || getenv("SHUTDOWN_DELAY") != "" {
		t.Errorf("without a .env: err %v; want the environment only", err)
	}
}

// TestDotenvHostile feeds withDotenv files it must refuse or read safely:
// errors never quote the file (it may hold passwords).
func TestDotenvHostile(t *testing.T) {
	dir := t.TempDir()
	lookup := func(string) (string, bool) { return "", false }
	bad := map[string]string{
		"unterminated quote": "REDIS_PASSWORD=\"Zq9secret\n",
		"name with a space":  "REDIS PASSWORD=Zq9secret\n",
		"no name":            "=Zq9secret\n",
		"name with a dash":   "REDIS-PASSWORD=Zq9secret\n",
	}
	for name, body := range bad {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := withDotenv(path, lookup)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if strings.Contains(err.Error(), "Zq9") {
			t.Errorf("%s: error quotes the file: %v", name, err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
	// A directory named .env, or an unreadable one, is an error naming it.
	if _, err := withDotenv(dir, lookup); err == nil {
		t.Errorf("a directory as .env: no error")
	}
	// Control bytes and a NUL read from the file reach config.Load, which
	// refuses them naming the variable, as from the environment.
	path := filepath.Join(dir, "nul")
	if err := os.WriteFile(path, []byte("HTTP_ADDR=\":80\\x00\"\nSHUTDOWN_DELAY=\"1s\\n\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv, err := withDotenv(path, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(getenv); err == nil || !strings.Contains(err.Error(), "SHUTDOWN_DELAY") {
		t.Errorf("a newline in a .env value: Load error %v; want one naming SHUTDOWN_DELAY", err)
	}
}

// TestBinaryReadsDotenv runs theaterd in a directory whose .env holds two
// bad values, one overridden by the environment: exit 2, naming only the
// one the environment does not override.
func TestBinaryReadsDotenv(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("LOG_LEVEL=loud\nRATE_LIMIT_API=lots\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RATE_LIMIT_API=600/1m")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("theaterd with a bad .env: %v; want exit 2\n%s", err, out)
	}
	if !strings.Contains(string(out), "LOG_LEVEL") || strings.Contains(string(out), "RATE_LIMIT_API") {
		t.Fatalf("output %q; want LOG_LEVEL (from .env) named, not RATE_LIMIT_API (the environment's is good)", out)
	}
}

// TestSIGTERMReadyz503BeforeListenerCloses sends SIGTERM to a serving
// theaterd (Redis up, so /readyz said 200) and polls: /readyz must answer
// 503 while the listener still accepts, other routes still serve during
// SHUTDOWN_DELAY, and the listener closes no earlier than the delay.
func TestSIGTERMReadyz503BeforeListenerCloses(t *testing.T) {
	const delay = 2 * time.Second
	addr := freeAddr(t)
	cmd, out := start(t, "HTTP_ADDR="+addr, "REDIS_URL="+redisURL(t), "SHUTDOWN_DELAY="+delay.String())
	base := "http://" + addr
	waitFor(t, base+"/readyz", 200, out)
	for _, want := range []string{`"SESSION_IDLE_TIMEOUT":"24h"`, `"RATE_LIMIT_API":"600/1m"`, `"SHUTDOWN_DELAY":"2s"`} {
		waitLog(t, out, want)
	}

	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var saw503, closed time.Duration
	servedDuringDelay := false
	deadline := sent.Add(20 * time.Second)
	for time.Now().Before(deadline) {
		status, body, err := get(base + "/readyz")
		if err != nil {
			// Refused, or accepted and closed while the listener shut.
			closed = time.Since(sent)
			t.Logf("/readyz after SIGTERM: %v", err)
			break
		}
		switch status {
		case 200:
			if saw503 != 0 {
				t.Fatalf("/readyz 200 after a 503")
			}
		case 503:
			if saw503 == 0 {
				saw503 = time.Since(sent)
				if !strings.Contains(body, "shutting down") {
					t.Errorf("/readyz 503 body %q; want it to say shutting down", body)
				}
			}
			if !servedDuringDelay {
				if s, _, err := get(base + "/api/scripts"); err == nil && s == 200 {
					servedDuringDelay = true
				}
			}
		default:
			t.Fatalf("/readyz %d", status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("after SIGTERM: /readyz 503 at %v, listener closed at %v (SHUTDOWN_DELAY %v)", saw503, closed, delay)
	switch {
	case saw503 == 0:
		t.Fatalf("the listener closed (%v after SIGTERM) before /readyz ever answered 503\n%s", closed, out.String())
	case closed == 0:
		t.Fatalf("the listener still accepts 20s after SIGTERM")
	case closed < delay:
		t.Fatalf("the listener closed %v after SIGTERM, before SHUTDOWN_DELAY %v", closed, delay)
	case saw503 >= delay:
		t.Fatalf("/readyz answered 503 only %v after SIGTERM: not at once (SHUTDOWN_DELAY %v)", saw503, delay)
	}
	if !servedDuringDelay {
		t.Errorf("GET /api/scripts did not answer 200 during the delay")
	}
	waitExit(t, cmd, 15*time.Second, out)
}

// TestMetricsAddr checks that with METRICS_ADDR /metrics is served there
// (with the Go runtime's metrics under their standard names and the API's
// under tsp_) and not on HTTP_ADDR, and
// that the private listener serves nothing else.
func TestMetricsAddr(t *testing.T) {
	addr, maddr := freeAddr(t), freeAddr(t)
	cmd, out := start(t, "HTTP_ADDR="+addr, "METRICS_ADDR="+maddr, "REDIS_URL="+redisURL(t), "SHUTDOWN_DELAY=0s")
	waitFor(t, "http://"+addr+"/readyz", 200, out)
	if s, _, err := get("http://" + addr + "/api/scripts"); err != nil || s != 200 {
		t.Fatalf("/api/scripts: %d, %v", s, err)
	}
	status, body, err := get("http://" + maddr + "/metrics")
	if err != nil || status != 200 {
		t.Fatalf("/metrics on METRICS_ADDR: %d, %v", status, err)
	}
	for _, want := range []string{"\ngo_goroutines ", "\nprocess_resident_memory_bytes ",
		`tsp_http_request_duration_seconds_count{code="200",method="GET",route="/api/scripts"} `,
		// The database pool, and which build this is.
		"\ngo_sql_open_connections{db_name=\"sqlite\"} ", "\ngo_sql_wait_count_total{db_name=\"sqlite\"} ",
		"\ntsp_build_info{goversion=\"" + runtime.Version() + "\",revision=",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics on METRICS_ADDR lacks %q", want)
		}
	}
	// One prefix finds every figure of the service; only the standard
	// runtime collectors keep their names.
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "tsp_") && !strings.HasPrefix(line, "go_") && !strings.HasPrefix(line, "process_") {
			t.Errorf("/metrics: %q has neither the tsp_ prefix nor a standard go_/process_ name", line)
		}
	}
	if s, _, err := get("http://" + addr + "/metrics"); err != nil || s != 404 {
		t.Errorf("/metrics on HTTP_ADDR: %d, %v; want 404", s, err)
	}
	for _, p := range []string{"/api/scripts", "/readyz", "/"} {
		if s, _, err := get("http://" + maddr + p); err != nil || s != 404 {
			t.Errorf("%s on METRICS_ADDR: %d, %v; want 404", p, s, err)
		}
	}
	// The runtime's profiles: on the private listener, never the public one.
	if s, body, err := get("http://" + maddr + "/debug/pprof/heap?debug=1"); err != nil || s != 200 || !strings.Contains(body, "heap profile:") {
		t.Errorf("/debug/pprof/heap on METRICS_ADDR: %d, %v, %.80q", s, err, body)
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile"} {
		if s, _, err := get("http://" + addr + p); err != nil || s != 404 {
			t.Errorf("%s on HTTP_ADDR: %d, %v; want 404", p, s, err)
		}
	}
	waitLog(t, out, `"msg":"metrics listening","addr":"`+maddr+`"`)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	waitExit(t, cmd, 15*time.Second, out)
}

// TestMetricsAddrTaken checks that a METRICS_ADDR already in use stops
// start-up with an error naming it, rather than serving without metrics.
func TestMetricsAddrTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd, out := start(t, "HTTP_ADDR="+freeAddr(t), "METRICS_ADDR="+l.Addr().String(), "REDIS_URL="+redisURL(t))
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out.String(), "METRICS_ADDR") {
		t.Fatalf("METRICS_ADDR in use: %v; want exit 1 naming METRICS_ADDR\n%s", err, out.String())
	}
}

// TestOutageWarningsThrottled runs theaterd with Redis down and sends 300
// requests: the limiter's "could not reach redis" warning, once per request
// before, is written once per cause per 10 s interval.
func TestOutageWarningsThrottled(t *testing.T) {
	addr := freeAddr(t)
	cmd, out := start(t, "HTTP_ADDR="+addr, "REDIS_URL=redis://"+freeAddr(t)+"/0", "SHUTDOWN_DELAY=0s")
	waitFor(t, "http://"+addr+"/healthz", 200, out)
	const n = 300
	began := time.Now()
	for range n {
		if s, _, err := get("http://" + addr + "/api/scripts"); err != nil || s != 200 {
			t.Fatalf("/api/scripts with Redis down: %d, %v; want 200 from the database", s, err)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	waitExit(t, cmd, 15*time.Second, out)
	// One interval (warnInterval) ends every 10 s of the run with a count line.
	intervals := 1 + int(time.Since(began)/warnInterval)
	warns, suppressed := 0, 0
	causes := map[string]bool{}
	for _, line := range strings.Split(out.String(), "\n") {
		var rec struct {
			Level, Msg, Error string
			Suppressed        int
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Level != "WARN" || rec.Msg != "rate limiter could not reach redis" {
			continue
		}
		warns++
		suppressed += rec.Suppressed
		causes[rec.Error] = true
	}
	t.Logf("%d requests with Redis down: %d limiter warnings written (%d causes), %d more counted as suppressed", n, warns, len(causes), suppressed)
	if warns == 0 {
		t.Fatalf("no limiter warning at all:\n%s", out.String())
	}
	// Each cause: its first line, then one line with the count per interval.
	if warns > (1+intervals)*len(causes) || warns+suppressed < n {
		t.Fatalf("%d warnings (+%d suppressed) for %d requests, %d causes, %d intervals; want at most %d per cause, all accounted for",
			warns, suppressed, n, len(causes), intervals, 1+intervals)
	}
}
