package session

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// raceIterations is how many sessions each race test ends while writers
// hammer them. Run with -race.
const raceIterations = 40

// TestNoResurrectionUnderRaces ends a session (Delete, DeleteAll,
// DeleteByID, Rotate) while writers Update and Touch it without pause.
// Whatever the interleaving: the old token fails the moment the ending
// call returns, no write that starts after it succeeds, and the session's
// key never reappears.
func TestNoResurrectionUnderRaces(t *testing.T) {
	t.Parallel()
	ends := []struct {
		name string
		end  func(ctx context.Context, s *Store, tok string, sess Session) (newTok string, err error)
	}{
		{"Delete", func(ctx context.Context, s *Store, tok string, _ Session) (string, error) {
			return "", s.Delete(ctx, tok)
		}},
		{"DeleteAll", func(ctx context.Context, s *Store, _ string, sess Session) (string, error) {
			_, err := s.DeleteAll(ctx, sess.UserID, "")
			return "", err
		}},
		{"DeleteByID", func(ctx context.Context, s *Store, _ string, sess Session) (string, error) {
			ok, err := s.DeleteByID(ctx, sess.UserID, sess.ID)
			if err == nil && !ok {
				err = errors.New("DeleteByID found nothing")
			}
			return "", err
		}},
		{"Rotate", func(ctx context.Context, s *Store, tok string, _ Session) (string, error) {
			next, _, err := s.Rotate(ctx, tok)
			return next, err
		}},
	}
	for _, e := range ends {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			// Every touch writes, so writes and the ending call truly race.
			s, rdb := newTestStore(t, Config{TouchInterval: time.Millisecond})
			ctx := context.Background()
			for i := range raceIterations {
				uid := "u" + strconv.Itoa(i)
				tok, sess := mustCreate(t, s, NewSession{UserID: uid, Attrs: map[string]string{"w": "start"}})
				var ended atomic.Bool
				stop := make(chan struct{})
				errc := make(chan error, 8)
				var wg sync.WaitGroup
				for w := range 4 {
					wg.Go(func() {
						for n := 0; ; n++ {
							select {
							case <-stop:
								return
							default:
							}
							after := ended.Load() // read before the call starts
							var err error
							if (w+n)%2 == 0 {
								_, err = s.Update(ctx, tok, func(x *Session) {
									x.Attrs = map[string]string{"w": strconv.Itoa(w), "n": strconv.Itoa(n)}
								})
							} else {
								_, err = s.Touch(ctx, tok)
							}
							switch {
							case after && err == nil:
								errc <- fmt.Errorf("worker %d: a call on the old token started after the end and succeeded", w)
								return
							case err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict):
								errc <- fmt.Errorf("worker %d: %v", w, err)
								return
							}
						}
					})
				}
				time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
				next, err := e.end(ctx, s, tok, sess)
				ended.Store(true)
				if err != nil {
					close(stop)
					wg.Wait()
					t.Fatalf("iteration %d: %s: %v", i, e.name, err)
				}
				if _, err := s.Get(ctx, tok); !errors.Is(err, ErrNotFound) {
					t.Errorf("iteration %d: old token right after %s: got %v, want ErrNotFound", i, e.name, err)
				}
				time.Sleep(2 * time.Millisecond) // let the writers keep trying on the dead token
				close(stop)
				wg.Wait()
				close(errc)
				for err := range errc {
					t.Errorf("iteration %d: %v", i, err)
				}
				wantNotFound(t, s, tok, fmt.Sprintf("iteration %d, after %s and the writers", i, e.name))
				if exists(t, rdb, s.sessionKey(uid, hashOfToken(t, tok))) {
					t.Errorf("iteration %d: the ended session's key came back", i)
				}
				list, err := s.List(ctx, uid)
				if err != nil {
					t.Fatal(err)
				}
				wantLive := 0
				if next != "" {
					wantLive = 1
					if got := mustGet(t, s, next); got.ID != sess.ID {
						t.Errorf("iteration %d: rotated session has id %q, want %q", i, got.ID, sess.ID)
					}
				}
				if len(list) != wantLive || indexLen(t, s, rdb, uid) != int64(wantLive) {
					t.Errorf("iteration %d: %d listed, %d indexed; want %d", i, len(list), indexLen(t, s, rdb, uid), wantLive)
				}
				if t.Failed() {
					return
				}
			}
		})
	}
}

// TestConcurrentRotateHasOneWinner: many rotations of one token at once
// give exactly one working token.
func TestConcurrentRotateHasOneWinner(t *testing.T) {
	t.Parallel()
	s, rdb := newTestStore(t, Config{})
	ctx := context.Background()
	for i := range raceIterations {
		uid := "r" + strconv.Itoa(i)
		tok, _ := mustCreate(t, s, NewSession{UserID: uid})
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []string
		)
		for range 6 {
			wg.Go(func() {
				next, _, err := s.Rotate(ctx, tok)
				if err == nil {
					mu.Lock()
					winners = append(winners, next)
					mu.Unlock()
				} else if !errors.Is(err, ErrNotFound) {
					t.Errorf("Rotate: %v", err)
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("iteration %d: %d rotations succeeded, want 1", i, len(winners))
		}
		mustGet(t, s, winners[0])
		wantNotFound(t, s, tok, "old token")
		if n := indexLen(t, s, rdb, uid); n != 1 {
			t.Fatalf("iteration %d: index has %d entries, want 1", i, n)
		}
	}
}

// TestConcurrentCreatesKeepTheLimit: sign-ins racing for one user never
// leave more than MaxPerUser sessions.
func TestConcurrentCreatesKeepTheLimit(t *testing.T) {
	t.Parallel()
	s, rdb := newTestStore(t, Config{MaxPerUser: 5})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if _, _, err := s.Create(ctx, NewSession{UserID: "u1"}); err != nil {
					t.Errorf("Create: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	list, err := s.List(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 5 || len(sessionKeys(t, rdb)) != 5 {
		t.Fatalf("got %d listed, %d stored, want 5 and 5", len(list), len(sessionKeys(t, rdb)))
	}
}

// TestUpdatesAreNotLost: concurrent Updates of different attributes all
// land (compare-and-set retries, no lost update).
func TestUpdatesAreNotLost(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, Config{})
	ctx := context.Background()
	tok, _ := mustCreate(t, s, NewSession{UserID: "u1"})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			k := "k" + strconv.Itoa(w)
			_, err := s.Update(ctx, tok, func(x *Session) {
				if x.Attrs == nil {
					x.Attrs = map[string]string{}
				}
				x.Attrs[k] = "done"
			})
			if err != nil && !errors.Is(err, ErrConflict) {
				t.Errorf("Update: %v", err)
			}
		})
	}
	wg.Wait()
	got := mustGet(t, s, tok)
	for w := range 4 {
		if k := "k" + strconv.Itoa(w); got.Attrs[k] != "done" {
			t.Errorf("Attrs[%s]: got %q, want done (an update was lost): %v", k, got.Attrs[k], got.Attrs)
		}
	}
}
