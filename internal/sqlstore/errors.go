package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// SQLite result codes (https://sqlite.org/rescode.html); part of SQLite's
// stable ABI, spelled out here rather than importing the transpiled C.
const (
	sqliteBusy                = 5
	sqliteLocked              = 6
	sqliteNoMem               = 7
	sqliteReadOnly            = 8
	sqliteIOErr               = 10
	sqliteFull                = 13
	sqliteCantOpen            = 14
	sqliteConstraint          = 19
	sqliteConstraintFK        = 787  // SQLITE_CONSTRAINT_FOREIGNKEY
	sqliteConstraintPK        = 1555 // SQLITE_CONSTRAINT_PRIMARYKEY
	sqliteConstraintUnique    = 2067 // SQLITE_CONSTRAINT_UNIQUE
	sqliteConstraintCheck     = 275  // SQLITE_CONSTRAINT_CHECK
	sqliteConstraintNotNull   = 1299 // SQLITE_CONSTRAINT_NOTNULL
	sqlitePrimaryCodeMask     = 0xff
	pgUniqueViolation         = "23505"
	pgForeignKeyViolation     = "23503"
	pgClassConnection         = "08" // connection exception
	pgClassResources          = "53" // insufficient resources (too many connections, disk full)
	pgClassOperatorIntervened = "57" // admin shutdown, cannot connect now, query cancelled
	pgSerializationFailure    = "40001"
	pgDeadlock                = "40P01"
	pgLockNotAvailable        = "55P03" // lock_timeout expired: busy, not broken
)

// kind is what a driver error means to the domain.
type kind int

const (
	kindOther       kind = iota
	kindUnique           // a unique constraint was violated
	kindForeignKey       // a foreign key was violated
	kindUnavailable      // the database is down, locked, busy or timed out
)

// classify looks through err for the driver's own error type.
func (s *Store) classify(err error) kind {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) {
		return kindUnavailable
	}
	// database/sql's "database is closed" has no exported sentinel.
	if strings.HasPrefix(err.Error(), "sql: database is closed") {
		return kindUnavailable
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqliteConstraintUnique, sqliteConstraintPK:
			return kindUnique
		case sqliteConstraintFK:
			return kindForeignKey
		}
		switch se.Code() & sqlitePrimaryCodeMask {
		case sqliteBusy, sqliteLocked, sqliteNoMem, sqliteReadOnly, sqliteIOErr, sqliteFull, sqliteCantOpen:
			return kindUnavailable
		}
		return kindOther
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == pgUniqueViolation:
			return kindUnique
		case pe.Code == pgForeignKeyViolation:
			return kindForeignKey
		case pe.Code == pgSerializationFailure, pe.Code == pgDeadlock, pe.Code == pgLockNotAvailable,
			strings.HasPrefix(pe.Code, pgClassConnection),
			strings.HasPrefix(pe.Code, pgClassResources),
			strings.HasPrefix(pe.Code, pgClassOperatorIntervened):
			return kindUnavailable
		}
		return kindOther
	}
	if s.dialect == postgresDialect {
		// Anything from the PostgreSQL side that is not a server error is
		// the connection failing: refused, reset, timed out, EOF mid-reply.
		var ne net.Error
		var ce *pgconn.ConnectError
		if errors.As(err, &ne) || errors.As(err, &ce) || pgconn.Timeout(err) ||
			errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
			errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
			errors.Is(err, syscall.EPIPE) || strings.Contains(err.Error(), "conn closed") {
			return kindUnavailable
		}
	}
	return kindOther
}

// wrap turns a driver error into a *theater.Error: EUNAVAILABLE when the
// database cannot serve now (the HTTP layer answers 503 and clients retry),
// EINTERNAL otherwise. op says what was being done, for logs; the client
// message never carries the driver's text. Callers handle unique and
// foreign-key violations themselves, where they know what they mean.
func (s *Store) wrap(err error, op string) error {
	var te *theater.Error
	if errors.As(err, &te) {
		return err
	}
	cause := &opError{op: op, err: err}
	if s.classify(err) == kindUnavailable {
		return theater.Wrap(theater.EUNAVAILABLE, "database unavailable, try again later", cause)
	}
	return theater.Wrap(theater.EINTERNAL, "internal error", cause)
}

// opError prefixes a cause with the operation, keeping it unwrappable.
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return "sqlstore: " + e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }
