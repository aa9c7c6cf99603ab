package redisx

import (
	"context"
	"fmt"
	"sync"
)

// Flight coalesces concurrent calls for one key in one process: the first
// caller starts fn, later callers wait for its result. Unlike
// x/sync/singleflight, fn does not run on any caller's context (pass it a
// detached one), and a caller that gives up returns its own ctx.Err() while
// the others still get fn's real result or error. The zero value is ready.
type Flight[T any] struct {
	mu    sync.Mutex
	calls map[string]*flightCall[T]
}

type flightCall[T any] struct {
	done chan struct{}
	val  T
	err  error
}

// Do runs fn once for all concurrent callers with the same key. shared
// reports whether this caller got another caller's result.
func (g *Flight[T]) Do(ctx context.Context, key string, fn func() (T, error)) (val T, shared bool, err error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = make(map[string]*flightCall[T])
	}
	call, ok := g.calls[key]
	if !ok {
		call = &flightCall[T]{done: make(chan struct{})}
		g.calls[key] = call
		go g.run(key, call, fn)
	}
	g.mu.Unlock()
	select {
	case <-call.done:
		return call.val, ok, call.err
	case <-ctx.Done():
		var zero T
		return zero, ok, ctx.Err()
	}
}

func (g *Flight[T]) run(key string, call *flightCall[T], fn func() (T, error)) {
	defer func() {
		// A panicking loader must not leave its waiters hanging forever.
		if r := recover(); r != nil {
			call.err = fmt.Errorf("redisx: loader panicked: %v", r)
		}
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(call.done)
	}()
	call.val, call.err = fn()
}
