// Package sqlstore persists the theater domain in SQL: SQLite (embedded, the
// default, through the pure-Go modernc.org/sqlite) or PostgreSQL (through
// pgx). One *Store implements theater.UserStore, theater.ScriptStore and
// theater.LicenseStore for both; the SQL is shared and the dialect
// differences (timestamps, locking, error codes, and the search index:
// FTS5 or tsvector + GIN, fed by one Go tokenizer, search.go) are a few
// explicit branches on Store.dialect.
//
//	st, err := sqlstore.Open(ctx, os.Getenv("DATABASE_URL")) // "sqlite:./data/theater.db"
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//	u, err := st.CreateUser(ctx, newUser, hash)
//
// Open applies the embedded migrations (migrations/<dialect>/NNNN_*.sql) in
// one transaction, recording each in schema_migrations, so every start-up
// brings the schema up to date and a second instance starting at the same
// time waits instead of racing.
//
// Every error a Store returns is a *theater.Error: ENOTFOUND, ECONFLICT,
// EINVALID, EUNAVAILABLE (database down, locked or timed out) or EINTERNAL.
// Driver and SQL text only ever appear in the error's cause, for logs.
//
// Both backends go through database/sql (PostgreSQL via pgx's stdlib
// adapter) rather than pgxpool: one query path, one scanning path and one
// pool configuration for both databases is worth far more here than pgx's
// native interface, and pgx still does the wire protocol, types and errors.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/XSAM/otelsql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/attribute"
	_ "modernc.org/sqlite" // registers driver "sqlite"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// dialect names the database behind a Store.
type dialect string

const (
	sqliteDialect   dialect = "sqlite"
	postgresDialect dialect = "postgres"
)

// DefaultBusyTimeout is how long a SQLite write waits for another writer
// before giving up with EUNAVAILABLE. Writes here take microseconds, so five
// seconds of queueing means something is wrong, not busy.
const DefaultBusyTimeout = 5 * time.Second

// Store is a SQL database holding users, scripts and licences. It is safe
// for concurrent use.
type Store struct {
	db      *sql.DB
	dialect dialect
	// writer is SQLite's one write lock, taken in Go before BEGIN
	// IMMEDIATE (nil for PostgreSQL, whose writers do not exclude each
	// other). Without it, concurrent writers wait in SQLite's busy handler,
	// which polls with sleeps growing to 100 ms: a writer that came second
	// slept on after the lock was free, and a mix of reads and writes had a
	// 120 ms tail (write_mix, issue 16). A channel hands the lock to the
	// next waiter at once, in arrival order, and a caller's cancel or
	// deadline ends the wait. Writers in other processes still meet
	// busy_timeout.
	writer chan struct{}
	// busyTimeout bounds the wait for writer, as busy_timeout bounds
	// SQLite's own.
	busyTimeout time.Duration
	// conns holds one token per connection of the pool (its
	// MaxOpenConns), taken by every operation for as long as it uses a
	// connection (holdConn), so the pool itself never has waiters. When
	// the pool is exhausted, database/sql hands a freed connection to a
	// random waiter, not the oldest: under a burst of slow queries (every
	// request a new search, the bench's miss_list) some requests lost the
	// draw again and again, and the tail was many times the median (p99
	// 795 ms, issue 16). Waiters on a channel are served in arrival order.
	conns chan struct{}
}

// newStore is a Store on db with a pool of maxConns connections.
func newStore(db *sql.DB, d dialect, maxConns int) *Store {
	db.SetMaxOpenConns(maxConns)
	return &Store{db: db, dialect: d, conns: make(chan struct{}, maxConns)}
}

// Collector reports the connection pool (open, in use, idle, waits and the
// time spent waiting, connections closed by each limit) as the standard
// go_sql_* metrics, labelled db_name with the dialect: a pool whose waits
// grow is the database saturating.
func (s *Store) Collector() prometheus.Collector {
	return collectors.NewDBStatsCollector(s.db, string(s.dialect))
}

// Compile-time checks that Store implements the domain's interfaces.
var (
	_ theater.UserStore    = (*Store)(nil)
	_ theater.ScriptStore  = (*Store)(nil)
	_ theater.LicenseStore = (*Store)(nil)
)

// Open connects to databaseURL, applies pending migrations and returns the
// store. Accepted forms:
//
//	sqlite:PATH                    a file; it and its directory are created
//	sqlite:PATH?busy_timeout=250ms  how long a write waits for the lock (default 5s)
//	sqlite::memory:                a private in-memory database (tests)
//	postgres://… or postgresql://… any libpq URL pgx accepts; a search_path
//	                               query parameter selects the schema
//
// Anything else is an EINVALID error naming DATABASE_URL. An unreachable
// database is EUNAVAILABLE.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	var (
		s   *Store
		err error
	)
	switch {
	case strings.HasPrefix(databaseURL, "sqlite:"):
		s, err = openSQLite(strings.TrimPrefix(databaseURL, "sqlite:"))
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		s, err = openPostgres(databaseURL)
	default:
		return nil, theater.Errorf(theater.EINVALID,
			"DATABASE_URL must start with sqlite: or postgres:// (got %q)", redact(databaseURL))
	}
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if err := s.backfillSearch(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// sqlTracing makes an OpenTelemetry span of every query, statement and
// transaction (otelsql), with the SQL text but never its arguments, through
// the global tracer provider: a no-op unless internal/tracing has set one up.
// Row iteration, session resets and prepares would only add noise.
func sqlTracing(system string) []otelsql.Option {
	return []otelsql.Option{
		otelsql.WithAttributes(attribute.String("db.system.name", system)),
		otelsql.WithSpanOptions(otelsql.SpanOptions{OmitConnResetSession: true, OmitRows: true, OmitConnPrepare: true}),
	}
}

// redact hides a password in a URL so an error about it can be printed.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if len(s) > 40 {
			return s[:40] + "…"
		}
		return s
	}
	return u.Redacted()
}

func openSQLite(rest string) (*Store, error) {
	path, query, _ := strings.Cut(rest, "?")
	path = strings.TrimPrefix(path, "//") // sqlite:///abs/path is sqlite:/abs/path
	if path == "" {
		return nil, theater.Errorf(theater.EINVALID, "DATABASE_URL: sqlite: needs a file path, as in sqlite:./data/theater.db")
	}
	busy := DefaultBusyTimeout
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, theater.Errorf(theater.EINVALID, "DATABASE_URL: bad query string after the sqlite path")
	}
	for k, v := range q {
		switch k {
		case "busy_timeout":
			d, err := time.ParseDuration(v[0])
			if err != nil || d < 0 {
				return nil, theater.Errorf(theater.EINVALID, "DATABASE_URL: busy_timeout must be a duration such as 5s")
			}
			busy = d
		default:
			return nil, theater.Errorf(theater.EINVALID, "DATABASE_URL: unknown sqlite parameter %q (known: busy_timeout)", k)
		}
	}
	memory := path == ":memory:"
	if !memory {
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, theater.Wrap(theater.EUNAVAILABLE, "cannot create the database directory", err)
			}
		}
	}
	// Every connection gets these pragmas: WAL so readers never wait for the
	// writer; busy_timeout so a writer queues for the lock instead of
	// failing at once; foreign keys, which SQLite leaves off by default;
	// synchronous=NORMAL, which in WAL mode loses no committed data on a
	// crash of the process (only, at worst, the last commits on power loss).
	// _txlock=immediate takes the write lock at BEGIN: a deferred
	// transaction that reads then writes cannot wait for the lock (SQLite
	// returns SQLITE_BUSY at once to avoid deadlock), an immediate one can.
	dsn := path + "?_pragma=" + url.QueryEscape(fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds())) +
		"&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := otelsql.Open("sqlite", dsn, sqlTracing("sqlite")...)
	if err != nil {
		return nil, theater.Wrap(theater.EINTERNAL, "cannot open the database", err)
	}
	if memory {
		// Each connection to :memory: is a separate, empty database: keep
		// exactly one, for ever.
		db.SetConnMaxIdleTime(0)
		db.SetConnMaxLifetime(0)
	}
	// SQLite has one writer at a time whatever the pool size; a few
	// connections let reads run beside it.
	conns := 8
	if memory {
		conns = 1
	}
	st := newStore(db, sqliteDialect, conns)
	db.SetMaxIdleConns(conns)
	st.writer, st.busyTimeout = make(chan struct{}, 1), busy
	return st, nil
}

func openPostgres(dsn string) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the URL, password included: keep it out.
		return nil, theater.Errorf(theater.EINVALID, "DATABASE_URL is not a valid PostgreSQL URL")
	}
	if cfg.ConnectTimeout == 0 {
		// Without a bound, a black-holed server would hang start-up and
		// every request for the kernel's TCP timeout (minutes).
		cfg.ConnectTimeout = 5 * time.Second
	}
	if _, ok := cfg.RuntimeParams["plan_cache_mode"]; !ok {
		// pgx prepares and caches every statement, and after five runs
		// PostgreSQL may switch a statement to a generic plan, made without
		// its arguments. For a search that is the wrong plan: whether to
		// walk the created_at index or the GIN index depends on how common
		// the words are ("th": 4 ms with its own plan, 60 ms generic).
		// Planning our short queries costs a fraction of a millisecond.
		cfg.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	db := otelsql.OpenDB(stdlib.GetConnector(*cfg), sqlTracing("postgresql")...)
	st := newStore(db, postgresDialect, 20)
	db.SetMaxIdleConns(10)
	// Recycle connections so a failover or a pgbouncer restart is picked
	// up, and idle ones are not kept open against the server's limit.
	db.SetConnMaxLifetime(30 * time.Minute)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return st, nil
}

// Ping checks that the database answers, for readiness probes. It returns
// EUNAVAILABLE when it does not.
func (s *Store) Ping(ctx context.Context) error {
	release, err := s.holdConn(ctx)
	if err != nil {
		return err
	}
	defer release()
	if err := s.db.PingContext(ctx); err != nil {
		return theater.Wrap(theater.EUNAVAILABLE, "database unavailable", err)
	}
	return nil
}

// Close closes the database. Calls after Close fail with EUNAVAILABLE.
func (s *Store) Close() error {
	return s.db.Close()
}

// Dialect returns "sqlite" or "postgres".
func (s *Store) Dialect() string { return string(s.dialect) }

// timeLayout is how SQLite columns hold timestamps: UTC, fixed width with
// milliseconds, so comparing the text compares the times.
const timeLayout = "2006-01-02T15:04:05.000Z"

// timeArg converts t to the value the dialect stores.
func (s *Store) timeArg(t time.Time) any {
	t = theater.Timestamp(t)
	if s.dialect == sqliteDialect {
		return t.Format(timeLayout)
	}
	return t
}

// scanTime scans either dialect's timestamp into *t, in UTC.
type scanTime struct{ t *time.Time }

func (st scanTime) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*st.t = theater.Timestamp(v)
		return nil
	case string:
		return st.parse(v)
	case []byte:
		return st.parse(string(v))
	}
	return fmt.Errorf("sqlstore: cannot scan %T into a timestamp", src)
}

func (st scanTime) parse(v string) error {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return fmt.Errorf("sqlstore: bad timestamp %q: %w", v, err)
	}
	*st.t = theater.Timestamp(t)
	return nil
}

// now is the time stamped on new rows. It is a method so that it has one
// definition; tests that need a clock set times through the input instead.
func (s *Store) now() time.Time { return theater.Timestamp(time.Now()) }

// inTx runs f in a transaction, committing if f returns nil. The error of f
// is returned as is (it is already classified); errors of BEGIN and COMMIT
// are classified here.
func (s *Store) inTx(ctx context.Context, f func(*sql.Tx) error) error {
	release, err := s.lockWriter(ctx)
	if err != nil {
		return err
	}
	defer release()
	// The write lock first: a writer waiting for it holds no connection
	// that a reader could use.
	releaseConn, err := s.holdConn(ctx)
	if err != nil {
		return err
	}
	defer releaseConn()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err, "begin transaction")
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return s.wrap(err, "commit")
	}
	return nil
}

// lockWriter takes SQLite's write lock in this process (Store.writer) and
// returns its release; for PostgreSQL it does nothing. A wait ended by ctx
// is the database being busy: EUNAVAILABLE, as SQLITE_BUSY would be.
func (s *Store) lockWriter(ctx context.Context) (release func(), err error) {
	if s.writer == nil {
		return func() {}, nil
	}
	release = func() { <-s.writer }
	select {
	case s.writer <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(s.busyTimeout)
	defer t.Stop()
	select {
	case s.writer <- struct{}{}:
		return release, nil
	case <-ctx.Done():
		return nil, s.wrap(ctx.Err(), "wait for the database's write lock")
	case <-t.C:
		return nil, theater.Wrap(theater.EUNAVAILABLE, "database unavailable, try again later",
			&opError{op: "wait for the database's write lock", err: errWriterBusy})
	}
}

// holdConn takes one of the pool's connection tokens (Store.conns), in
// arrival order, and returns its release. Every exported operation holds
// one for its duration and uses at most one connection at a time under
// it; nothing under it takes another (that could deadlock). A wait ended
// by ctx is the database being busy: EUNAVAILABLE.
func (s *Store) holdConn(ctx context.Context) (release func(), err error) {
	release = func() { <-s.conns }
	select {
	case s.conns <- struct{}{}:
		return release, nil
	default:
	}
	select {
	case s.conns <- struct{}{}:
		return release, nil
	case <-ctx.Done():
		return nil, s.wrap(ctx.Err(), "wait for a database connection")
	}
}

// errWriterBusy is a write that waited busy_timeout for another writer.
var errWriterBusy = errors.New("another write held the lock for busy_timeout")

// inReadTx runs f in a read-only transaction, always rolled back. The
// caller holds a connection token (holdConn).
func (s *Store) inReadTx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s.wrap(err, "begin transaction")
	}
	defer tx.Rollback()
	return f(tx)
}

// itoa shortens placeholder building.
func itoa(n int) string { return strconv.Itoa(n) }

// isNoRows reports whether err is "no rows".
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
