package store

import (
	"errors"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect holds the few things SQLite and PostgreSQL spell differently.
// Everything else — ON CONFLICT … DO UPDATE/NOTHING with excluded.*,
// RETURNING, partial unique indexes, LIMIT/OFFSET, || — is shared SQL.
type dialect struct {
	name string
	// rebind turns "?" placeholders into the dialect's.
	rebind func(string) string
	// ts converts a non-zero time into a column value.
	ts func(time.Time) any
	// forUpdate locks selected rows until the transaction ends (PostgreSQL);
	// SQLite has one writer, so the transaction itself is the lock.
	forUpdate string
	// skipLocked makes concurrent claimers pass over each other's rows.
	skipLocked string
	// like is the case-insensitive LIKE operator.
	like string
	// isUnique reports a unique-constraint violation.
	isUnique func(error) bool
	// isFull reports that the database could not grow: its disk is full.
	isFull func(error) bool
	// migrationDir is the embedded directory holding this dialect's schema.
	migrationDir string
}

var sqliteDialect = &dialect{
	name:   "sqlite",
	rebind: func(q string) string { return q },
	// Integer microseconds: sortable, compact, and exactly PostgreSQL's
	// timestamp precision, so both backends round-trip the same values.
	ts:           func(t time.Time) any { return t.UnixMicro() },
	like:         "LIKE", // case-insensitive for ASCII in SQLite
	migrationDir: "migrations/sqlite",
	isUnique: func(err error) bool {
		var e *sqlite.Error
		if errors.As(err, &e) {
			c := e.Code()
			return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
		}
		return false
	},
	isFull: func(err error) bool {
		// SQLITE_FULL (the primary code of any extended one) is what SQLite
		// answers when a write to the database, its WAL or a temporary file
		// fails for want of space; an I/O error carrying ENOSPC is the same
		// condition seen by another path (a short write at commit).
		var e *sqlite.Error
		if errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_FULL {
			return true
		}
		return errors.Is(err, syscall.ENOSPC)
	},
}

var postgresDialect = &dialect{
	name:         "postgres",
	rebind:       rebindDollar,
	ts:           func(t time.Time) any { return t.UTC().Truncate(time.Microsecond) },
	forUpdate:    " FOR UPDATE",
	skipLocked:   " FOR UPDATE SKIP LOCKED",
	like:         "ILIKE",
	migrationDir: "migrations/postgres",
	isUnique: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == "23505"
	},
	isFull: func(err error) bool {
		// 53100 disk_full: a relation or temporary file could not be
		// extended. (A full WAL disk is not answered: the server stops, and
		// the client sees a lost connection, retried as any outage.)
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == "53100"
	},
}

// rebindDollar rewrites "?" into "$1", "$2"… outside quoted strings and
// identifiers. The store's queries never contain a literal "?", but quoted
// text is skipped anyway so a future literal cannot shift the numbering.
func rebindDollar(q string) string {
	if strings.IndexByte(q, '?') < 0 {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
