package password_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/password"
)

func TestGateRefusesWhenFull(t *testing.T) {
	t.Parallel()
	g, err := password.NewGate(password.GateConfig{MemoryKiB: password.DefaultMemory, MaxWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := g.Hash(context.Background(), "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	release := g.Hold(password.DefaultMemory) // one hash in progress: the budget
	start := time.Now()
	ok, err := g.Verify(context.Background(), "correct horse", enc)
	waited := time.Since(start)
	if !errors.Is(err, password.ErrBusy) || ok {
		t.Fatalf("Verify with the budget taken = %v, %v; want ErrBusy", ok, err)
	}
	if err := g.VerifyDummy(context.Background(), "x"); !errors.Is(err, password.ErrBusy) {
		t.Fatalf("VerifyDummy with the budget taken = %v; want ErrBusy", err)
	}
	if _, err := g.Hash(context.Background(), "x"); !errors.Is(err, password.ErrBusy) {
		t.Fatalf("Hash with the budget taken = %v; want ErrBusy", err)
	}
	t.Logf("refused after waiting %v (MaxWait 20ms)", waited)
	if waited < 20*time.Millisecond {
		t.Fatalf("refused after %v; want it to wait MaxWait (20ms) first", waited)
	}
	if g.Computed() != 1 || g.Refused() != 3 {
		t.Fatalf("Computed %d, Refused %d; want 1 (the first Hash) and 3", g.Computed(), g.Refused())
	}
	release()
	if ok, err := g.Verify(context.Background(), "correct horse", enc); !ok || err != nil {
		t.Fatalf("Verify after release = %v, %v; want a match", ok, err)
	}
}

func TestGateQueuesBriefly(t *testing.T) {
	t.Parallel()
	g, err := password.NewGate(password.GateConfig{MemoryKiB: password.DefaultMemory, MaxWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	release := g.Hold(password.DefaultMemory)
	done := make(chan error, 1)
	go func() { done <- g.VerifyDummy(context.Background(), "queued") }()
	select {
	case err := <-done:
		t.Fatalf("VerifyDummy ran while the budget was taken: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("queued VerifyDummy = %v; want it to run once memory is free", err)
	}
}

func TestGateCallerCancels(t *testing.T) {
	t.Parallel()
	g, err := password.NewGate(password.GateConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Hold(password.DefaultGateMemory)()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.VerifyDummy(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("VerifyDummy with a cancelled context = %v; want context.Canceled (the caller left, the gate did not refuse)", err)
	}
	if g.Refused() != 0 {
		t.Fatalf("Refused = %d; want 0", g.Refused())
	}
}

func TestGateMalformedIsRefusedBeforeQueueing(t *testing.T) {
	t.Parallel()
	g, err := password.NewGate(password.GateConfig{MaxWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Hold(password.DefaultGateMemory)()
	if _, err := g.Verify(context.Background(), "x", "$argon2id$v=19$m=19456,t=2,p=1$bad"); !errors.Is(err, password.ErrMalformed) {
		t.Fatalf("Verify(malformed) = %v; want ErrMalformed at once", err)
	}
	if _, err := g.Verify(context.Background(), string(make([]byte, password.MaxLen+1)), "x"); !errors.Is(err, password.ErrTooLong) {
		t.Fatalf("Verify(too long) = %v; want ErrTooLong", err)
	}
}

func TestNewGateRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []password.GateConfig{
		{MemoryKiB: -1},
		{MaxWait: -time.Second},
		{MemoryKiB: password.DefaultMemory - 1},
		{MemoryKiB: password.DefaultMemory, Params: password.Params{Memory: 2 * password.DefaultMemory}},
	} {
		if _, err := password.NewGate(cfg); err == nil {
			t.Errorf("NewGate(%+v) = nil error; want one", cfg)
		}
	}
}
