package logbuf

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// writeThrough is the slog.Handler WriteThrough returns.
type writeThrough struct {
	next   slog.Handler
	w      *Writer
	access string
}

// WriteThrough returns a handler that passes every record to next (which
// writes to w) and flushes w right after each record at slog.LevelWarn or
// above whose message is not access, the message of the per-request access
// lines (those stay batched whatever their level). Such a line is on its
// way to the kernel before the call that logged it returns, so a SIGKILL
// or a fatal error right after cannot lose it.
func WriteThrough(next slog.Handler, w *Writer, access string) slog.Handler {
	return &writeThrough{next: next, w: w, access: access}
}

func (h *writeThrough) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *writeThrough) Handle(ctx context.Context, r slog.Record) error {
	err := h.next.Handle(ctx, r)
	if r.Level >= slog.LevelWarn && r.Message != h.access {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h *writeThrough) WithAttrs(as []slog.Attr) slog.Handler {
	return &writeThrough{next: h.next.WithAttrs(as), w: h.w, access: h.access}
}

func (h *writeThrough) WithGroup(name string) slog.Handler {
	return &writeThrough{next: h.next.WithGroup(name), w: h.w, access: h.access}
}

// ThrottleHandler is the slog.Handler Throttle returns. Close it at
// shutdown so the last counts are written.
type ThrottleHandler struct {
	next   slog.Handler
	access string
	state  *throttleState // shared by the handlers WithAttrs and WithGroup derive
}

type throttleState struct {
	every time.Duration
	mu    sync.Mutex
	cause map[string]*throttled
	done  bool
}

// throttled is one cause seen within the current interval.
type throttled struct {
	suppressed int          // records dropped since the last line
	last       slog.Record  // the latest of them, written with the count
	via        slog.Handler // the handler that got it (with its attrs)
	timer      *time.Timer
}

// Throttle returns a handler that passes records below slog.LevelWarn, and
// access lines (message access), to next unchanged, and lets through only
// the first record of each cause at WARN or above per interval every. The
// cause is the level, the message and the "error" attribute, so "rate
// limiter could not reach redis: timeout" and the same message with
// "connection refused" are two causes. At the end of an interval in which
// records of a cause were dropped, the latest of them is written with
// "suppressed" (how many were dropped) and "interval"; an interval in
// which none was dropped ends the throttling of that cause.
func Throttle(next slog.Handler, every time.Duration, access string) *ThrottleHandler {
	return &ThrottleHandler{next: next, access: access,
		state: &throttleState{every: every, cause: map[string]*throttled{}}}
}

// Enabled reports whether next handles level l.
func (h *ThrottleHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle passes r on, or counts it when its cause was already written in
// this interval.
func (h *ThrottleHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn || r.Message == h.access || h.state.every <= 0 {
		return h.next.Handle(ctx, r)
	}
	key := causeOf(r)
	st := h.state
	st.mu.Lock()
	if c, ok := st.cause[key]; ok && !st.done {
		c.suppressed++
		c.last, c.via = r.Clone(), h.next
		st.mu.Unlock()
		return nil
	}
	if !st.done {
		c := &throttled{}
		c.timer = time.AfterFunc(st.every, func() { st.tick(key, c) })
		st.cause[key] = c
	}
	st.mu.Unlock()
	return h.next.Handle(ctx, r)
}

// tick ends one interval of cause key: it writes the count of what was
// dropped, or forgets the cause when nothing was.
func (st *throttleState) tick(key string, c *throttled) {
	st.mu.Lock()
	if st.done || st.cause[key] != c {
		st.mu.Unlock()
		return
	}
	n, r, via := c.suppressed, c.last, c.via
	if n == 0 {
		delete(st.cause, key)
	} else {
		c.suppressed, c.last, c.via = 0, slog.Record{}, nil
		c.timer.Reset(st.every)
	}
	st.mu.Unlock()
	if n > 0 {
		writeCount(via, r, n, st.every)
	}
}

func writeCount(via slog.Handler, r slog.Record, n int, every time.Duration) {
	r.AddAttrs(slog.Int("suppressed", n), slog.String("interval", every.String()))
	_ = via.Handle(context.Background(), r)
}

// Close writes the counts of the current intervals and stops throttling:
// records after Close pass straight through.
func (h *ThrottleHandler) Close() {
	st := h.state
	st.mu.Lock()
	if st.done {
		st.mu.Unlock()
		return
	}
	st.done = true
	pending := st.cause
	st.cause = nil
	st.mu.Unlock()
	for _, c := range pending {
		c.timer.Stop()
		if c.suppressed > 0 {
			writeCount(c.via, c.last, c.suppressed, st.every)
		}
	}
}

// WithAttrs returns a handler whose records share this one's throttling.
func (h *ThrottleHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &ThrottleHandler{next: h.next.WithAttrs(as), access: h.access, state: h.state}
}

// WithGroup returns a handler whose records share this one's throttling.
func (h *ThrottleHandler) WithGroup(name string) slog.Handler {
	return &ThrottleHandler{next: h.next.WithGroup(name), access: h.access, state: h.state}
}

// causeOf is a record's level, message and "error" attribute.
func causeOf(r slog.Record) string {
	key := r.Level.String() + "\x00" + r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" {
			key += "\x00" + a.Value.String()
			return false
		}
		return true
	})
	return key
}
