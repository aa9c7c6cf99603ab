package session

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// TestFullRedis: with Redis at maxmemory under noeviction, sessions are
// still read and served, touch due or not: the local tier's tracked reads,
// which a full Redis refuses (it queues nothing in a MULTI), are made
// plainly, and a touch Redis refuses is skipped (counted) rather than
// failing the lookup. No lookup fails, so none is an error.
func TestFullRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, "--maxmemory-policy", "noeviction")
	cfg := redistest.At(redistest.Config(t), srv.Addr)
	clk := newClock()
	first, err := NewStore(redistest.Connect(t, cfg), Config{Now: clk.Now, TouchInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok, created := mustCreate(t, first, NewSession{UserID: "u1"})
	mustGet(t, first, tok) // the scripts are loaded, as on a Redis that has been running
	// Another instance, which holds no local copy yet.
	rdb := redistest.Connect(t, cfg)
	s, err := NewStore(rdb, Config{Now: clk.Now, TouchInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	redistest.FillUp(t, rdb)

	if got, err := s.Get(ctx, tok); err != nil || got.ID != created.ID {
		t.Fatalf("Get on a full Redis: %v, %v; want the session", got.ID, err)
	}
	clk.Advance(2 * time.Minute) // a touch is due: the script would write
	got, err := s.Touch(ctx, tok)
	if err != nil || got.ID != created.ID {
		t.Fatalf("Touch on a full Redis: %v, %v; want the session", got.ID, err)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]float64{}
	for _, mf := range mfs {
		for _, x := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range x.GetLabel() {
				name += "/" + l.GetValue()
			}
			m[name] = x.GetCounter().GetValue()
		}
	}
	// Redis 7.0 lets a script that has already called a write command
	// (the index's prune) write on: the touch then lands. Where Redis
	// refuses it, the session is served untouched and the refusal counted.
	moved := !got.LastSeenAt.Equal(created.LastSeenAt)
	if moved && m["session_touch_refusals_total"] != 0 || !moved && m["session_touch_refusals_total"] != 1 {
		t.Errorf("LastSeenAt moved %v, session_touch_refusals_total %v; want a refusal counted exactly when the touch did not land",
			moved, m["session_touch_refusals_total"])
	}
	for name, want := range map[string]float64{
		"session_lookups_total/ok":            2,
		"session_lookups_total/error":         0,
		"session_lookups_total/unavailable":   0,
		"session_lookups_total/out_of_memory": 0,
	} {
		if m[name] != want {
			t.Errorf("%s = %v; want %v", name, m[name], want)
		}
	}
}

// TestFailKind: every failure gets the lookups label that names its cause.
func TestFailKind(t *testing.T) {
	t.Parallel()
	oom := fmt.Errorf("session: get: %w", fmt.Errorf("%w: OOM command not allowed", redisx.ErrOutOfMemory))
	for _, c := range []struct {
		err  error
		want string
	}{
		{oom, "out_of_memory"},
		{fmt.Errorf("x: %w", redisx.ErrUnavailable), "unavailable"},
		{context.DeadlineExceeded, "unavailable"},
		{context.Canceled, "unavailable"},
		{errors.New("WRONGTYPE"), "error"},
	} {
		if got := failKind(c.err); got != c.want {
			t.Errorf("failKind(%v) = %q; want %q", c.err, got, c.want)
		}
	}
}
