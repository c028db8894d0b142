package store

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
)

//go:embed migrations
var migrationsFS embed.FS

// migrationLockID is the PostgreSQL advisory lock key held while migrating
// (an arbitrary constant: "bulwark" in ASCII).
const migrationLockID = 0x62756c7761726b

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads dir's "NNNN_name.sql" files in version order.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		base := strings.TrimSuffix(e.Name(), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", e.Name())
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// SchemaVersion reports the newest migration applied to the database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.queryRow(ctx, s.r, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, s.wrapErr("schema version", err)
	}
	return int(v.Int64), nil
}

// migrate applies every embedded migration the database lacks, all in one
// transaction: either the schema moves to the newest version or it stays
// as it was. Replicas starting together serialize on a lock (PostgreSQL:
// a transaction-scoped advisory lock; SQLite: the write lock BEGIN
// IMMEDIATE takes), and each re-reads the applied versions under it.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations(migrationsFS, s.d.migrationDir)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	latest := ms[len(ms)-1].version
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if s.d == postgresDialect {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLockID)); err != nil {
				return fmt.Errorf("advisory lock: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY,
			name TEXT NOT NULL,
			applied_at TEXT NOT NULL)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		applied := map[int]bool{}
		rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return err
		}
		maxApplied := 0
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			applied[v] = true
			maxApplied = max(maxApplied, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if maxApplied > latest {
			return fmt.Errorf("database schema version %d is newer than this binary knows (%d): upgrade bulwark", maxApplied, latest)
		}
		for _, m := range ms {
			if applied[m.version] {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("apply %04d_%s: %w", m.version, m.name, err)
			}
			if _, err := s.exec(ctx, tx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, s.now().UTC().Format("2006-01-02T15:04:05.000000Z")); err != nil {
				return fmt.Errorf("record %04d_%s: %w", m.version, m.name, err)
			}
			s.log.Info("applied migration", "dialect", s.d.name, "version", m.version, "name", m.name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate %s: %w", s.d.name, err)
	}
	return nil
}
