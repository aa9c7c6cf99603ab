package faultproxy_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/faultproxy"
)

// echoServer is a real TCP server on loopback that writes back what it
// reads; the proxy is protocol-agnostic, so its own tests need no Redis.
func echoServer(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	tb.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

func dial(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads len(msg) bytes back within limit.
func roundTrip(c net.Conn, msg string, limit time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(limit))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func mustEcho(tb testing.TB, c net.Conn, msg string) time.Duration {
	tb.Helper()
	start := time.Now()
	got, err := roundTrip(c, msg, 5*time.Second)
	if err != nil || got != msg {
		tb.Fatalf("echo of %q = %q, %v; want it back", msg, got, err)
	}
	return time.Since(start)
}

func TestPassThrough(t *testing.T) {
	t.Parallel()
	px := faultproxy.Start(t, echoServer(t))
	if !strings.HasPrefix(px.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr() = %q; want a loopback address", px.Addr())
	}
	c := dial(t, px.Addr())
	for i := range 20 {
		mustEcho(t, c, fmt.Sprintf("ping %d\r\n", i))
	}
	// A second connection at the same time is independent.
	mustEcho(t, dial(t, px.Addr()), "other")
}

func TestLatency(t *testing.T) {
	t.Parallel()
	px := faultproxy.Start(t, echoServer(t))
	c := dial(t, px.Addr())
	if d := mustEcho(t, c, "warm"); d > 100*time.Millisecond {
		t.Fatalf("round trip with no fault took %v; want well under 100ms", d)
	}
	for _, lat := range []time.Duration{50 * time.Millisecond, 200 * time.Millisecond} {
		px.Latency(lat)
		if d := mustEcho(t, c, "slow"); d < lat {
			t.Errorf("round trip with Latency(%v) took %v; want at least %v", lat, d, lat)
		}
		// A connection opened under the fault has it too.
		if d := mustEcho(t, dial(t, px.Addr()), "new"); d < lat {
			t.Errorf("new connection with Latency(%v): round trip %v; want at least %v", lat, d, lat)
		}
	}
	px.Latency(0)
	if d := mustEcho(t, c, "fast again"); d > 100*time.Millisecond {
		t.Errorf("round trip after Latency(0) took %v; want well under 100ms", d)
	}
}

func TestBandwidth(t *testing.T) {
	t.Parallel()
	px := faultproxy.Start(t, echoServer(t))
	c := dial(t, px.Addr())
	msg := strings.Repeat("x", 16<<10) // 16 KiB each way
	if d := mustEcho(t, c, msg); d > 300*time.Millisecond {
		t.Fatalf("16 KiB echo with no limit took %v; want well under 300ms", d)
	}
	px.Bandwidth(32) // 0.5s each way
	if d := mustEcho(t, c, msg); d < 400*time.Millisecond {
		t.Errorf("16 KiB echo at 32 KiB/s took %v; want at least 400ms", d)
	}
	px.Bandwidth(0)
	if d := mustEcho(t, c, msg); d > 300*time.Millisecond {
		t.Errorf("16 KiB echo after Bandwidth(0) took %v; want well under 300ms", d)
	}
}

func TestCutConnections(t *testing.T) {
	t.Parallel()
	px := faultproxy.Start(t, echoServer(t))
	c := dial(t, px.Addr())
	mustEcho(t, c, "before")

	// Cut mid-command: the request is out, its reply is held back.
	px.Latency(time.Second)
	if _, err := c.Write([]byte("in flight")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	px.CutConnections()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := c.Read(make([]byte, 64))
	if err == nil || isTimeout(err) {
		t.Fatalf("read on a cut connection = %d bytes, %v; want the connection closed", n, err)
	}
	px.Latency(0)
	// New connections work at once, on the same address.
	mustEcho(t, dial(t, px.Addr()), "after")
}

func TestHangHoldsBytesAndNeverCloses(t *testing.T) {
	t.Parallel()
	px := faultproxy.Start(t, echoServer(t))
	c := dial(t, px.Addr())
	mustEcho(t, c, "before ")

	px.Hang()
	got, err := roundTrip(c, "held ", 300*time.Millisecond)
	if !isTimeout(err) {
		t.Fatalf("echo under Hang = %q, %v; want a read timeout (no reply, no close)", got, err)
	}
	// A connection opened during the hang is accepted and hangs too.
	c2 := dial(t, px.Addr())
	if got, err := roundTrip(c2, "x", 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("echo on a new connection under Hang = %q, %v; want a read timeout", got, err)
	}
	if _, err := c.Write([]byte("more")); err != nil {
		t.Fatalf("write under Hang: %v; want the connection kept open", err)
	}

	px.Reset()
	// Nothing was dropped: the held bytes arrive, in order.
	buf := make([]byte, len("held more"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "held more" {
		t.Fatalf("after Reset read %q, %v; want %q", buf, err, "held more")
	}
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c2, buf[:1]); err != nil || buf[0] != 'x' {
		t.Fatalf("after Reset the new connection read %q, %v; want %q", buf[:1], err, "x")
	}
	mustEcho(t, c, "after")
}

func TestDownUp(t *testing.T) {
	t.Parallel()
	px := faultproxy.Start(t, echoServer(t))
	c := dial(t, px.Addr())
	mustEcho(t, c, "before")

	px.Down()
	px.Down() // twice is harmless
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := c.Read(make([]byte, 8)); err == nil || isTimeout(err) {
		t.Fatalf("read on an open connection after Down = %d, %v; want it closed", n, err)
	}
	if c2, err := net.DialTimeout("tcp", px.Addr(), time.Second); err == nil {
		c2.Close()
		t.Fatalf("dial %s while Down succeeded; want it refused", px.Addr())
	}
	px.CutConnections() // no-op while down, must not bring it up
	if c2, err := net.DialTimeout("tcp", px.Addr(), time.Second); err == nil {
		c2.Close()
		t.Fatalf("dial after CutConnections while Down succeeded; want it still refused")
	}

	px.Up()
	mustEcho(t, dial(t, px.Addr()), "after")
}

func TestResetEndsEveryFault(t *testing.T) {
	t.Parallel()
	px := faultproxy.Start(t, echoServer(t))
	px.Latency(300 * time.Millisecond)
	px.Bandwidth(1)
	px.Down()
	px.Reset()
	c := dial(t, px.Addr())
	if d := mustEcho(t, c, strings.Repeat("y", 4096)); d > 200*time.Millisecond {
		t.Fatalf("echo after Reset took %v; want no fault left", d)
	}
	px.Hang()
	px.Reset()
	if d := mustEcho(t, c, "z"); d > 200*time.Millisecond {
		t.Fatalf("echo after Hang+Reset took %v; want no fault left", d)
	}
}

func TestUpstreamDown(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: the proxy accepts, fails to reach the
	// upstream and closes the client's connection, as a dead server would.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	px := faultproxy.Start(t, dead)
	c := dial(t, px.Addr())
	if got, err := roundTrip(c, "hello", 3*time.Second); err == nil || isTimeout(err) {
		t.Fatalf("echo with the upstream down = %q, %v; want the connection closed", got, err)
	}
}

// TestNoGoroutineLeak runs every fault with traffic and checks that after
// Close the process is back to its goroutine count. Not parallel: it counts
// the whole process's goroutines.
func TestNoGoroutineLeak(t *testing.T) {
	upstream := echoServer(t)
	settle(t, 0) // let earlier tests' goroutines finish
	before := runtime.NumGoroutine()

	func() {
		tb := &subTB{TB: t}
		defer tb.cleanup()
		px := faultproxy.Start(tb, upstream)
		c := dial(tb, px.Addr())
		mustEcho(t, c, "a")
		px.Latency(20 * time.Millisecond)
		px.Bandwidth(64)
		mustEcho(t, c, "b")
		px.Hang()
		_, _ = roundTrip(c, "held", 50*time.Millisecond)
		hung := dial(tb, px.Addr())
		_, _ = hung.Write([]byte("x"))
		px.CutConnections()
		px.Reset()
		mustEcho(t, dial(tb, px.Addr()), "c")
		px.Down()
		px.Up()
		px.Hang()
		_, _ = dial(tb, px.Addr()).Write([]byte("left hanging at Close"))
	}()
	settle(t, before)
}

// settle waits until the goroutine count is at most want (0: until it
// stops falling) and fails the test with a dump if it is not within 5s.
func settle(tb testing.TB, want int) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	last := -1
	for {
		n := runtime.NumGoroutine()
		if want > 0 && n <= want || want == 0 && n == last {
			return
		}
		if time.Now().After(deadline) {
			if want == 0 {
				return
			}
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			tb.Fatalf("goroutines: %d, want at most %d; still running:\n%s", n, want, buf)
		}
		last = n
		time.Sleep(50 * time.Millisecond)
	}
}

// subTB runs cleanups when its scope ends rather than at the end of the
// test, so a test can check what is left after them.
type subTB struct {
	testing.TB
	mu  sync.Mutex
	fns []func()
}

func (s *subTB) Cleanup(f func()) { s.mu.Lock(); s.fns = append(s.fns, f); s.mu.Unlock() }

func (s *subTB) cleanup() {
	for i := len(s.fns) - 1; i >= 0; i-- {
		s.fns[i]()
	}
}

// fatalTB records a Fatalf and ends the goroutine as testing.T would.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fails runs fn with a fatalTB in its own goroutine and returns the
// message it failed with ("" if it did not fail).
func fails(t *testing.T, fn func(tb testing.TB)) string {
	t.Helper()
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(tb)
	}()
	<-done
	return tb.msg
}

func TestHostileArguments(t *testing.T) {
	t.Parallel()
	upstream := echoServer(t)
	tests := []struct {
		name string
		fn   func(tb testing.TB)
		want string // in the failure message
	}{
		{"upstream without port", func(tb testing.TB) { faultproxy.Start(tb, "127.0.0.1") }, "want host:port"},
		{"upstream empty", func(tb testing.TB) { faultproxy.Start(tb, "") }, "want host:port"},
		{"upstream garbage", func(tb testing.TB) { faultproxy.Start(tb, "::::\x00") }, "want host:port"},
		{"negative latency", func(tb testing.TB) { faultproxy.Start(tb, upstream).Latency(-time.Second) }, "negative latency"},
		{"negative bandwidth", func(tb testing.TB) { faultproxy.Start(tb, upstream).Bandwidth(-1) }, "out of range"},
		{"huge bandwidth", func(tb testing.TB) { faultproxy.Start(tb, upstream).Bandwidth(1 << 40) }, "out of range"},
		{"upstream no host", func(tb testing.TB) { faultproxy.Start(tb, ":6379") }, "want host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fails(t, tt.fn); !strings.Contains(got, tt.want) {
				t.Errorf("failure message = %q; want it to contain %q", got, tt.want)
			}
		})
	}
	// Valid calls do not fail, and the proxy still works after them.
	px := faultproxy.Start(t, upstream)
	if got := fails(t, func(testing.TB) { px.Latency(0); px.Bandwidth(0); px.Up(); px.Reset() }); got != "" {
		t.Errorf("no-op fault calls failed: %s", got)
	}
	mustEcho(t, dial(t, px.Addr()), "ok")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

// BenchmarkRoundTrip measures what the proxy adds to a small round trip
// on loopback, with no fault: the baseline every fault is added to.
func BenchmarkRoundTrip(b *testing.B) {
	upstream := echoServer(b)
	for _, bc := range []struct {
		name string
		addr func() string
	}{
		{"direct", func() string { return upstream }},
		{"proxied", func() string { return faultproxy.Start(b, upstream).Addr() }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			addr := bc.addr()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				msg := []byte("PING\r\n")
				buf := make([]byte, len(msg))
				for pb.Next() {
					if _, err := c.Write(msg); err != nil {
						b.Error(err)
						return
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
