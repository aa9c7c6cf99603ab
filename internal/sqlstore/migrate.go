package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// migrationFiles holds one directory per dialect. Each migration is
// NNNN_name.sql and exists in both directories with the same number, so the
// schemas cannot drift apart silently (TestMigrationsInStep checks it).
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// migration is one numbered schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns d's migrations in version order.
func migrations(d dialect) ([]migration, error) {
	dir := path.Join("migrations", string(d))
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(migrationFiles, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// migrate applies the migrations not yet recorded in schema_migrations, all
// in one transaction: a failure leaves the schema as it was (PostgreSQL and
// SQLite both have transactional DDL), and a concurrent Open by another
// instance waits for the lock and then finds nothing left to do.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations(s.dialect)
	if err != nil {
		return theater.Wrap(theater.EINTERNAL, "cannot read migrations", err)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if s.dialect == postgresDialect {
			// A transaction-scoped advisory lock per schema: instances
			// migrating one schema queue, tests in separate schemas don't.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext(current_schema()))`); err != nil {
				return s.wrap(err, "lock for migrations")
			}
		}
		// SQLite needs no lock statement: _txlock=immediate made BEGIN take
		// the database's write lock.
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at TEXT NOT NULL
		)`); err != nil {
			return s.wrap(err, "create schema_migrations")
		}
		applied := make(map[int]bool)
		rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return s.wrap(err, "read schema_migrations")
		}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return s.wrap(err, "read schema_migrations")
			}
			applied[v] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return s.wrap(err, "read schema_migrations")
		}
		for _, m := range ms {
			if applied[m.version] {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return s.wrap(err, "apply migration "+m.name)
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, s.now().Format(timeLayout)); err != nil {
				return s.wrap(err, "record migration "+m.name)
			}
		}
		return nil
	})
}
