package logbuf_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/logbuf"
)

// recorder keeps every Write it gets, so tests can see how lines were
// batched.
type recorder struct {
	mu     sync.Mutex
	writes [][]byte
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, append([]byte(nil), p...))
	return len(p), nil
}

func (r *recorder) all() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(bytes.Join(r.writes, nil)), len(r.writes)
}

func TestBatchesWithoutSplittingLines(t *testing.T) {
	rec := &recorder{}
	w := logbuf.New(rec, time.Hour) // only size and Close flush here
	var wg sync.WaitGroup
	const writers, lines = 8, 2000
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				fmt.Fprintf(w, "{\"g\":%d,\"i\":%d,\"pad\":%q}\n", g, i, strings.Repeat("x", i%300))
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, writes := rec.all()
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("got %d lines, want %d", len(got), writers*lines)
	}
	for _, l := range got {
		if !strings.HasPrefix(l, "{\"g\":") || !strings.HasSuffix(l, "\"}") {
			t.Fatalf("a line was split or interleaved: %q", trunc(l))
		}
	}
	if writes >= writers*lines/10 {
		t.Errorf("%d lines took %d writes; want them batched", writers*lines, writes)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, b := range rec.writes {
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Fatalf("a write ended mid-line: ...%q", trunc(string(b[max(0, len(b)-40):])))
		}
	}
}

func TestFlushesWithinTheInterval(t *testing.T) {
	rec := &recorder{}
	w := logbuf.New(rec, 20*time.Millisecond)
	defer w.Close()
	fmt.Fprintln(w, "one line")
	deadline := time.Now().Add(2 * time.Second)
	for {
		if out, _ := rec.all(); out == "one line\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a buffered line was not written within 2s with a 20ms flush interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLongLineGoesOutWhole(t *testing.T) {
	rec := &recorder{}
	w := logbuf.New(rec, time.Hour)
	fmt.Fprint(w, "short\n")
	long := strings.Repeat("y", 200<<10) + "\n"
	fmt.Fprint(w, long)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if out, _ := rec.all(); out != "short\n"+long {
		t.Fatalf("got %d bytes, want %d", len(out), len("short\n"+long))
	}
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
