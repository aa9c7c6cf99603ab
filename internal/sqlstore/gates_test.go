package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// holdWrite opens a write transaction on st and keeps it open until the
// returned release is called, so a test can make other writers wait.
func holdWrite(t *testing.T, st *Store) (release func()) {
	t.Helper()
	held := make(chan struct{})
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- st.inTx(context.Background(), func(*sql.Tx) error {
			close(held)
			<-done
			return nil
		})
	}()
	select {
	case <-held:
	case err := <-errc:
		t.Fatalf("holding a write transaction: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(done)
			if err := <-errc; err != nil {
				t.Errorf("held write transaction: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// A writer that finds the write lock taken waits for it in Go, bounded by
// its context, and gets EUNAVAILABLE naming the lock when the context ends
// first — never SQLite's busy error after a sleep of its own choosing.
func TestSQLiteWriterWaitEndsWithContext(t *testing.T) {
	st := openTestSQLite(t)
	author := mustUser(t, st, "gate@example.org", theater.RolePlaywright)
	sc := mustScript(t, st, author.ID, scriptInput("Gate"))
	holdWrite(t, st)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := st.UpdateScript(ctx, sc.ID, scriptInput("Gate, revised"))
	waited := time.Since(start)
	if theater.ErrorCode(err) != theater.EUNAVAILABLE {
		t.Fatalf("UpdateScript while another write holds the lock: %v, want EUNAVAILABLE", err)
	}
	if !strings.Contains(err.Error(), "write lock") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %q does not say it waited for the write lock until the deadline", err)
	}
	t.Logf("a writer with a 50 ms deadline gave up after %v", waited)

	_, err = st.CreateUser(ctx, theater.NewUser{Email: "late@example.org", Password: "long enough", Name: "Late", Role: theater.RoleProducer}, "hash")
	if theater.ErrorCode(err) != theater.EUNAVAILABLE {
		t.Fatalf("CreateUser after the deadline while the lock is held: %v, want EUNAVAILABLE", err)
	}
}

// busy_timeout bounds the wait for another writer, as it bounds SQLite's
// own busy handler: past it the write fails EUNAVAILABLE and loses nothing.
func TestSQLiteWriterWaitBoundedByBusyTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "theater.db")
	st := openTestSQLiteURL(t, "sqlite:"+path+"?busy_timeout=100ms")
	author := mustUser(t, st, "busy@example.org", theater.RolePlaywright)
	sc := mustScript(t, st, author.ID, scriptInput("Busy"))
	release := holdWrite(t, st)

	_, err := st.UpdateScript(context.Background(), sc.ID, scriptInput("Busy, revised"))
	if theater.ErrorCode(err) != theater.EUNAVAILABLE || !errors.Is(err, errWriterBusy) {
		t.Fatalf("UpdateScript past busy_timeout: %v, want EUNAVAILABLE caused by errWriterBusy", err)
	}
	release()
	got, err := st.ScriptByID(ctxT(t), sc.ID)
	if err != nil || got.Title != "Busy" {
		t.Fatalf("after the refused write the script is %+v, %v; want it unchanged", got, err)
	}
}

// Writers queued behind a held lock all get it once it is released, each
// as soon as the one before commits: no write is lost and none sleeps on
// after the lock is free (SQLite's busy handler sleeps up to 100 ms).
func TestSQLiteWritersHandOffTheLock(t *testing.T) {
	st := openTestSQLite(t)
	author := mustUser(t, st, "handoff@example.org", theater.RolePlaywright)
	sc := mustScript(t, st, author.ID, scriptInput("Hand-off"))
	release := holdWrite(t, st)

	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, errs[i] = st.UpdateScript(ctx, sc.ID, scriptInput(fmt.Sprintf("Hand-off %d", i)))
		}()
	}
	// Let the writers reach the lock; the test's assertion does not depend
	// on whether they all did.
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	release()
	wg.Wait()
	t.Logf("%d queued writers all committed %v after the lock was released", writers, time.Since(start))
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	got, err := st.ScriptByID(ctxT(t), sc.ID)
	if err != nil || !strings.HasPrefix(got.Title, "Hand-off ") {
		t.Fatalf("after the writers the script is %+v, %v; want one of their titles", got, err)
	}
}

// PostgreSQL writers do not exclude each other, so the store keeps no lock
// of its own there.
func TestPostgresHasNoWriterLock(t *testing.T) {
	st := openTestPostgres(t)
	if st.writer != nil {
		t.Fatal("a PostgreSQL store has a process write lock; its writers would queue for nothing")
	}
}

// Every operation waits for a connection in the store's own queue, in
// arrival order, so database/sql's pool — which hands a freed connection
// to a random waiter — never has one: 64 concurrent lists on 8 (SQLite)
// or 20 (PostgreSQL) connections, and the pool's wait count stays 0.
func TestPoolNeverHasWaiters(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		author := mustUser(t, st, "pool@example.org", theater.RolePlaywright)
		for i := range 30 {
			mustScript(t, st, author.ID, scriptInput(fmt.Sprintf("Pool %d", i)))
		}
		var wg sync.WaitGroup
		errs := make(chan error, 64*2*2)
		for i := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 2 {
					f := theater.ScriptFilter{Query: fmt.Sprintf("pool %d", (i+j)%30)}
					if _, err := st.ListScripts(ctxT(t), f); err != nil {
						errs <- err
					}
					if _, err := st.UserByID(ctxT(t), author.ID); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		stats := st.db.Stats()
		t.Logf("%d connections at most; database/sql waits: %d", stats.MaxOpenConnections, stats.WaitCount)
		if stats.WaitCount != 0 {
			t.Fatalf("database/sql's pool had %d waiters (%v waiting): an operation took a connection without its token",
				stats.WaitCount, stats.WaitDuration)
		}
	})
}

// With every connection in use, an operation waits for one bounded by its
// context, and gets EUNAVAILABLE naming the wait.
func TestConnWaitEndsWithContext(t *testing.T) {
	st := openTestSQLite(t)
	author := mustUser(t, st, "conn@example.org", theater.RolePlaywright)
	var releases []func()
	for range cap(st.conns) {
		release, err := st.holdConn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := st.UserByID(ctx, author.ID)
	if theater.ErrorCode(err) != theater.EUNAVAILABLE || !strings.Contains(err.Error(), "database connection") {
		t.Fatalf("UserByID with every connection taken: %v, want EUNAVAILABLE waiting for a connection", err)
	}
	releases[0]()
	if _, err := st.UserByID(ctxT(t), author.ID); err != nil {
		t.Fatalf("UserByID once a connection is free: %v", err)
	}
	for _, r := range releases[1:] {
		r()
	}
}
