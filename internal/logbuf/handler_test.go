package logbuf_test

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/logbuf"
)

// TestWarnBeforeSIGKILLIsInTheLog runs a child process that logs an INFO
// line and a WARN line through a Writer that would flush only after an
// hour, says so on stderr, and waits; the test then kills it with SIGKILL.
// Both lines must be in its stdout file: the WARN is written through, with
// the batched lines before it.
func TestWarnBeforeSIGKILLIsInTheLog(t *testing.T) {
	if os.Getenv("LOGBUF_CHILD") == "1" {
		child()
		return
	}
	logPath := filepath.Join(t.TempDir(), "out.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWarnBeforeSIGKILLIsInTheLog$")
	cmd.Env = append(os.Environ(), "LOGBUF_CHILD=1")
	cmd.Stdout = f
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if sc.Text() == "logged" {
				ready <- sc.Text()
				return
			}
		}
		ready <- "child ended: " + sc.Err().Error()
	}()
	select {
	case s := <-ready:
		if s != "logged" {
			t.Fatal(s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the child did not log within 30s")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v; want killed by SIGKILL", err)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	iInfo, iWarn := strings.Index(out, `"msg":"listening"`), strings.Index(out, `"msg":"redis unreachable"`)
	if iWarn < 0 || iInfo < 0 || iInfo > iWarn {
		t.Fatalf("after SIGKILL the log holds %q; want the INFO line, then the WARN line", out)
	}
	if strings.Contains(out, `"msg":"request"`) {
		t.Errorf("the access line logged after the WARN was written through: %q", out)
	}
}

// child logs like theaterd does, then waits to be killed.
func child() {
	out := logbuf.New(os.Stdout, time.Hour) // the timer never flushes here
	log := slog.New(logbuf.WriteThrough(slog.NewJSONHandler(out, nil), out, "request"))
	log.Info("listening")
	log.Warn("redis unreachable", "error", "connection refused")
	log.Error("request", "status", 503) // an access line: batched
	os.Stderr.WriteString("logged\n")
	time.Sleep(time.Hour)
}

func TestWriteThroughFlushesWarnNotAccessLines(t *testing.T) {
	rec := &recorder{}
	out := logbuf.New(rec, time.Hour)
	defer out.Close()
	log := slog.New(logbuf.WriteThrough(slog.NewJSONHandler(out, nil), out, "request")).With("app", "t")
	log.Info("one")
	log.Info("request", "status", 200)
	log.Error("request", "status", 503)
	if _, n := rec.all(); n != 0 {
		t.Fatalf("%d writes after INFO and access lines; want 0 (batched)", n)
	}
	log.Warn("two")
	got, n := rec.all()
	if n != 1 {
		t.Fatalf("%d writes after a WARN; want 1", n)
	}
	want := []string{`"msg":"one"`, `"status":200`, `"status":503`, `"msg":"two"`}
	last := -1
	for _, w := range want {
		i := strings.Index(got, w)
		if i <= last {
			t.Fatalf("written %q; want %v in that order", got, want)
		}
		last = i
	}
	log.WithGroup("g").Error("three")
	if _, n := rec.all(); n != 2 {
		t.Fatalf("%d writes after an ERROR from a derived logger; want 2", n)
	}
}

// lines decodes JSON log lines.
func lines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// TestThrottleOneLinePerCauseWithCount logs 1,000 warnings of one cause,
// 10 of another and some INFO and access lines within one (hour-long)
// interval: each cause is written once, INFO and access lines all pass,
// and Close writes each cause's count.
func TestThrottleOneLinePerCauseWithCount(t *testing.T) {
	rec := &recorder{}
	out := logbuf.New(rec, time.Hour)
	th := logbuf.Throttle(slog.NewJSONHandler(out, nil), time.Hour, "request")
	log := slog.New(th)
	for i := range 1000 {
		log.With("request_id", i).Warn("rate limiter could not reach redis", "error", "redisx: unavailable")
		log.Error("request", "status", 503)
	}
	for range 10 {
		log.Warn("rate limiter could not reach redis", "error", "i/o timeout")
	}
	log.Info("still here")
	_ = out.Flush()
	got, _ := rec.all()
	ls := lines(t, got)
	counts := map[string]int{}
	for _, l := range ls {
		counts[l["msg"].(string)+"|"+toString(l["error"])]++
		if _, ok := l["suppressed"]; ok {
			t.Errorf("a count before the interval ended: %v", l)
		}
	}
	if counts["rate limiter could not reach redis|redisx: unavailable"] != 1 ||
		counts["rate limiter could not reach redis|i/o timeout"] != 1 ||
		counts["request|"] != 1000 || counts["still here|"] != 1 {
		t.Fatalf("lines per cause %v; want each warning cause once, every access and INFO line", counts)
	}
	th.Close()
	_ = out.Flush()
	got, _ = rec.all()
	ls = lines(t, got)
	suppressed := map[string]float64{}
	for _, l := range ls {
		if n, ok := l["suppressed"].(float64); ok {
			suppressed[toString(l["error"])] = n
			if l["interval"] != "1h0m0s" {
				t.Errorf("count line %v; want interval 1h0m0s", l)
			}
		}
	}
	if suppressed["redisx: unavailable"] != 999 || suppressed["i/o timeout"] != 9 {
		t.Fatalf("counts at Close %v; want 999 and 9", suppressed)
	}
	log.Warn("after close")
	log.Warn("after close")
	_ = out.Flush()
	got, _ = rec.all()
	if c := strings.Count(got, "after close"); c != 2 {
		t.Fatalf("%d lines after Close; want both", c)
	}
}

// TestThrottleCountsAtIntervalEnd checks the timer: within a 100ms
// interval, the first warning is written and the count of the rest comes
// at the interval's end, without a Close. Every warning is accounted for
// (written, or counted in a "suppressed"), however the scheduler slices it.
func TestThrottleCountsAtIntervalEnd(t *testing.T) {
	rec := &recorder{}
	out := logbuf.New(rec, time.Hour)
	th := logbuf.Throttle(slog.NewJSONHandler(out, nil), 100*time.Millisecond, "request")
	defer th.Close()
	log := slog.New(th)
	const n = 50
	start := time.Now()
	for range n {
		log.Warn("breaker open", "error", "redis down")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_ = out.Flush()
		got, _ := rec.all()
		ls := lines(t, got)
		total, counted := 0, false
		for _, l := range ls {
			total++
			if s, ok := l["suppressed"].(float64); ok {
				total += int(s) - 1 // the count line stands for the dropped records, itself included
				counted = true
			}
		}
		if counted && total == n {
			t.Logf("count line %v after the first warning (interval 100ms); %d lines for %d warnings", time.Since(start), len(ls), n)
			if len(ls) > n/2 {
				t.Errorf("%d lines for %d warnings: not throttled", len(ls), n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no count line 10s after the warnings (interval 100ms): %q", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}
