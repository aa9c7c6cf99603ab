package sqlstore

import (
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// TestConcurrentWriters runs 20 writers at once. On SQLite only one can
// write at a time: WAL, busy_timeout and BEGIN IMMEDIATE must make the rest
// queue rather than fail with "database is locked".
func TestConcurrentWriters(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *Store) {
		ctx := ctxT(t)
		const writers, each = 20, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers*each*3)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u, err := st.CreateUser(ctx, theater.NewUser{Email: fmt.Sprintf("w%d@example.org", w), Password: "long enough",
					Name: "Writer", Role: theater.RolePlaywright}, "h")
				if err != nil {
					errs <- err
					return
				}
				for i := 0; i < each; i++ {
					sc, err := st.CreateScript(ctx, u.ID, scriptInput(fmt.Sprintf("W%d S%d", w, i)))
					if err != nil {
						errs <- err
						continue
					}
					if _, err := st.UpdateScript(ctx, sc.ID, scriptInput(fmt.Sprintf("W%d S%d v2", w, i))); err != nil {
						errs <- err
					}
					if _, err := st.ListScripts(ctx, theater.ScriptFilter{AuthorID: u.ID}); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent write: code %q: %v", theater.ErrorCode(err), err)
		}
		if p, err := st.ListScripts(ctx, theater.ScriptFilter{}); err != nil || p.Total != writers*each {
			t.Errorf("total = %d, %v, want %d", p.Total, err, writers*each)
		}
	})
}

// TestSQLiteLockedIsUnavailable holds SQLite's write lock from another
// connection for longer than the store's busy_timeout: the store must answer
// EUNAVAILABLE (the HTTP layer's 503), with no driver text in the message.
func TestSQLiteLockedIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locked.db")
	st := openTestSQLiteURL(t, "sqlite:"+path+"?busy_timeout=50ms")
	author := mustUser(t, st, "a@example.org", theater.RolePlaywright)
	ctx := ctxT(t)

	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatalf("take the write lock: %v", err)
	}
	defer conn.ExecContext(ctx, `ROLLBACK`)

	writes := []struct {
		name string
		call func() error
	}{
		{"create user", func() error {
			_, err := st.CreateUser(ctx, theater.NewUser{Email: "b@example.org", Password: "long enough", Name: "B", Role: theater.RoleProducer}, "h")
			return err
		}},
		{"create script", func() error { _, err := st.CreateScript(ctx, author.ID, scriptInput("Blocked")); return err }},
		{"delete script", func() error { return st.DeleteScript(ctx, theater.NewID()) }},
	}
	for _, tt := range writes {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			wantCode(t, tt.call(), theater.EUNAVAILABLE)
			if d := time.Since(start); d < 40*time.Millisecond {
				t.Errorf("gave up after %v, want it to wait about the 50ms busy_timeout", d)
			}
		})
	}
	// Readers are not blocked by a writer in WAL mode.
	if _, err := st.UserByID(ctx, author.ID); err != nil {
		t.Errorf("UserByID while locked: %v, want WAL readers unaffected", err)
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			st := b.open(t)
			st.Close()
			ctx := ctxT(t)
			_, err := st.UserByID(ctx, theater.NewID())
			wantCode(t, err, theater.EUNAVAILABLE)
			wantCode(t, st.Ping(ctx), theater.EUNAVAILABLE)
		})
	}
}

// TestPostgresDownIsUnavailable puts a TCP proxy between the store and
// PostgreSQL and cuts it: reads, writes and Ping must all be EUNAVAILABLE,
// and the store must recover once the proxy is back.
func TestPostgresDownIsUnavailable(t *testing.T) {
	base := openTestPostgres(t) // creates the schema and migrates it
	var schema string
	if err := base.db.QueryRowContext(ctxT(t), `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(testDatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, target.Host)
	via := *target
	via.Host = p.addr()
	q := via.Query()
	q.Set("connect_timeout", "2")
	via.RawQuery = q.Encode()
	st, err := Open(ctxT(t), withSearchPath(t, via.String(), schema))
	if err != nil {
		t.Fatalf("Open via proxy: %v", err)
	}
	defer st.Close()
	author := mustUser(t, st, "up@example.org", theater.RolePlaywright)

	p.cut()
	ctx := ctxT(t)
	calls := []struct {
		name string
		call func() error
	}{
		{"ping", func() error { return st.Ping(ctx) }},
		{"read", func() error { _, err := st.UserByID(ctx, author.ID); return err }},
		{"list", func() error { _, err := st.ListScripts(ctx, theater.ScriptFilter{}); return err }},
		{"write", func() error { _, err := st.CreateScript(ctx, author.ID, scriptInput("Down")); return err }},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.call(), theater.EUNAVAILABLE) })
	}

	p.restore()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := st.UserByID(ctx, author.ID)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover after PostgreSQL came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// proxy forwards TCP connections to a target until cut, which closes every
// connection and refuses new ones until restore.
type proxy struct {
	tb     testing.TB
	target string
	ln     net.Listener
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func startProxy(tb testing.TB, target string) *proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &proxy{tb: tb, target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	tb.Cleanup(func() { ln.Close(); p.cut() })
	go p.serve()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		if !down {
			p.conns[c] = struct{}{}
		}
		p.mu.Unlock()
		if down {
			c.Close() // like a server that is gone: connection reset
			continue
		}
		go p.pipe(c)
	}
}

func (p *proxy) pipe(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
