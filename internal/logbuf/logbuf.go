// Package logbuf batches log output: one write(2) per flush instead of one
// per line. At tens of thousands of requests a second, a JSON line per
// request written straight to stdout costs a system call each — about a
// fifth of a cached read's CPU in theaterd's load tests.
//
// Lines are never split or interleaved: each Write (slog writes one record
// per call) goes into the buffer whole. A line waits at most FlushEvery,
// and Close flushes what is left, so a clean shutdown loses nothing.
//
// What explains a crash must not wait in a buffer that a SIGKILL, an OOM
// kill or a fatal runtime error throws away: WriteThrough flushes after
// every record at WARN or above (with the batched lines before it, in
// order), except the per-request access lines, which stay batched even for
// 5xx responses. A crash then loses at most FlushEvery of INFO and access
// lines. Throttle keeps an outage from writing the same warning once per
// request: one line per cause per interval, then one with the count.
//
//	out := logbuf.New(os.Stdout, 100*time.Millisecond)
//	defer out.Close()
//	json := slog.NewJSONHandler(out, nil)
//	th := logbuf.Throttle(logbuf.WriteThrough(json, out, "request"), 10*time.Second, "request")
//	defer th.Close()
//	logger := slog.New(th)
package logbuf

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// bufferSize is how much is gathered before a flush that does not wait
// for the timer.
const bufferSize = 64 << 10

// Writer is an io.Writer that batches writes to the underlying writer. It
// is safe for concurrent use.
type Writer struct {
	mu      sync.Mutex
	buf     *bufio.Writer
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

// New returns a Writer that flushes to w at least every flushEvery (a
// value of zero or less means 100ms).
func New(w io.Writer, flushEvery time.Duration) *Writer {
	if flushEvery <= 0 {
		flushEvery = 100 * time.Millisecond
	}
	lw := &Writer{
		buf:     bufio.NewWriterSize(w, bufferSize),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go lw.flushLoop(flushEvery)
	return lw
}

// Write buffers p whole; a line longer than the buffer goes straight out.
func (lw *Writer) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.buf.Available() < len(p) {
		// Flush first, so p is never split across two writes.
		if err := lw.buf.Flush(); err != nil {
			return 0, err
		}
	}
	return lw.buf.Write(p)
}

// Flush writes out what is buffered.
func (lw *Writer) Flush() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.buf.Flush()
}

// Close stops the flush timer and flushes what is left. Writes after Close
// still work, unbatched until the next Flush.
func (lw *Writer) Close() error {
	lw.once.Do(func() {
		close(lw.stop)
		<-lw.stopped
	})
	return lw.Flush()
}

func (lw *Writer) flushLoop(every time.Duration) {
	defer close(lw.stopped)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-lw.stop:
			return
		case <-t.C:
			_ = lw.Flush() // a failing stdout has nowhere to report to
		}
	}
}
