// Package pgtest gives tests a real PostgreSQL server.
//
// With BULWARK_TEST_POSTGRES set to a DSN, that server is used. Otherwise,
// when PostgreSQL's server binaries are installed (Debian: apt-get install
// postgresql), a private server is created with initdb in a temporary
// directory — as the "postgres" user through runuser when the process is
// root, since PostgreSQL refuses to run as root — listening only on a Unix
// socket in that directory, and removed by Stop. Each test gets its own
// database, so tests can run in parallel and never see each other's rows.
//
// The private server runs with fsync off; BULWARK_PGTEST_FSYNC=1 turns
// durability back on to benchmark commits as production pays for them.
// BULWARK_PGTEST_STATEMENTS=1 loads pg_stat_statements, for benchmarks to
// report what each statement cost the server (Statements), and
// BULWARK_PGTEST_OPTS adds server options ("-c name=value ...").
//
// When no server can be had, tests skip with the reason, except under CI
// (CI=true) or BULWARK_REQUIRE_POSTGRES=1, where they fail: CI installs the
// package, so a PostgreSQL test that does not run there is a broken setup,
// not a pass.
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Server is a PostgreSQL server for tests. The zero value is not usable;
// use New.
type Server struct {
	once    sync.Once
	base    string // DSN of the admin database
	err     error  // why no server is available
	dataDir string // set when this process started the server
	tmpDir  string
	runAs   []string // runuser prefix when root
	binDir  string
	n       atomic.Int64
}

// New returns a Server that starts on first use. Call Stop when the tests
// are done (TestMain).
func New() *Server { return &Server{} }

func required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("BULWARK_REQUIRE_POSTGRES") == "1"
}

// DSN returns a DSN for a new, empty database dropped when tb ends. It
// skips tb (or fails it under CI) when no server is available.
func (s *Server) DSN(tb testing.TB) string {
	tb.Helper()
	s.once.Do(s.start)
	if s.err != nil {
		if required() {
			tb.Fatalf("PostgreSQL required (CI or BULWARK_REQUIRE_POSTGRES=1) but unavailable: %v", s.err)
		}
		tb.Skipf("PostgreSQL unavailable: %v (install the postgresql package or set BULWARK_TEST_POSTGRES)", s.err)
	}
	name := fmt.Sprintf("bulwark_test_%d_%d", os.Getpid(), s.n.Add(1))
	// A loaded CI machine (many packages' servers and tests at once) can
	// stall one connection attempt; a few tries before giving up.
	var admin *sql.DB
	var err error
	for try := 1; try <= 4; try++ {
		if admin, err = s.open(s.base); err == nil {
			break
		}
		tb.Logf("connect to test PostgreSQL (try %d): %v", try, err)
		time.Sleep(time.Duration(try) * 500 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("connect to test PostgreSQL: %v", err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		admin, err := s.open(s.base)
		if err != nil {
			return
		}
		defer admin.Close()
		_, _ = admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
	})
	return withDB(s.base, name)
}

func (s *Server) open(dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDB(*cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// withDB replaces the database of a URL or keyword/value DSN (in the
// latter the last dbname wins).
func withDB(dsn, db string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + db
		return u.String()
	}
	return dsn + " dbname=" + db
}

func (s *Server) start() {
	if dsn := os.Getenv("BULWARK_TEST_POSTGRES"); dsn != "" {
		db, err := s.open(dsn)
		if err != nil {
			s.err = fmt.Errorf("BULWARK_TEST_POSTGRES: %w", err)
			return
		}
		db.Close()
		s.base = dsn
		return
	}
	s.binDir = findBinDir()
	if s.binDir == "" {
		s.err = fmt.Errorf("no initdb found (looked in /usr/lib/postgresql/*/bin and PATH)")
		return
	}
	tmp, err := os.MkdirTemp("", "bulwark-pg-")
	if err != nil {
		s.err = err
		return
	}
	s.tmpDir = tmp
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			s.err = fmt.Errorf("running as root and no postgres user to run the server as: %w", err)
			return
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(tmp, uid, gid); err != nil {
			s.err = err
			return
		}
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			s.err = fmt.Errorf("running as root and no runuser: %w", err)
			return
		}
		s.runAs = []string{runuser, "-u", "postgres", "--"}
	}
	data := filepath.Join(tmp, "data")
	if out, err := s.run(filepath.Join(s.binDir, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		s.err = fmt.Errorf("initdb: %v: %s", err, out)
		return
	}
	s.dataDir = data
	// Unix socket only (no TCP port to collide with). Durability is off
	// (tests kill clients, not the server) unless BULWARK_PGTEST_FSYNC=1
	// asks for production-like commits, for benchmarks.
	durability := "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	if os.Getenv("BULWARK_PGTEST_FSYNC") == "1" {
		durability = ""
	}
	opts := fmt.Sprintf("-k %s -c listen_addresses='' -p 5432 %s -c max_connections=300", tmp, durability)
	if os.Getenv("BULWARK_PGTEST_STATEMENTS") == "1" {
		opts += " -c shared_preload_libraries=pg_stat_statements"
	}
	if extra := os.Getenv("BULWARK_PGTEST_OPTS"); extra != "" {
		opts += " " + extra
	}
	if out, err := s.run(filepath.Join(s.binDir, "pg_ctl"), "-D", data, "-l", filepath.Join(tmp, "server.log"),
		"-w", "-t", "60", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(tmp, "server.log"))
		s.err = fmt.Errorf("pg_ctl start: %v: %s %s", err, out, log)
		return
	}
	s.base = fmt.Sprintf("host=%s port=5432 user=postgres dbname=postgres sslmode=disable", tmp)
}

func (s *Server) run(name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, s.runAs...), name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.tmpDir // the postgres user may not be able to enter the caller's directory
	return cmd.CombinedOutput()
}

// findBinDir returns the newest /usr/lib/postgresql/N/bin with initdb, or
// the directory of initdb on PATH.
func findBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[j]))))
		return vi > vj
	})
	if len(dirs) > 0 {
		return filepath.Dir(dirs[0])
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return filepath.Dir(p)
	}
	return ""
}

// Stop stops a server this process started and removes its files.
func (s *Server) Stop() {
	if s.dataDir != "" {
		_, _ = s.run(filepath.Join(s.binDir, "pg_ctl"), "-D", s.dataDir, "-m", "immediate", "-w", "stop")
	}
	if s.tmpDir != "" {
		_ = os.RemoveAll(s.tmpDir)
	}
}

// Backend is one of the two databases Bulwark's store runs on, as a test
// sees it: DSN returns a fresh, empty database that goes away when tb ends.
type Backend struct {
	Name string
	DSN  func(tb testing.TB) string
}

// Backends are the databases every store-backed test runs against: SQLite
// (a new file in tb's temporary directory) and PostgreSQL from s (skipped,
// or failed under CI, when no server can be had; see DSN).
func (s *Server) Backends() []Backend {
	return []Backend{
		{"sqlite", func(tb testing.TB) string { return filepath.Join(tb.TempDir(), "bulwark.db") }},
		{"postgres", s.DSN},
	}
}

// Statements reports the n statements of dsn's database that took the
// server the most time since it started, one per line: calls, rows, total
// and mean execution time, and the statement's start. It needs
// pg_stat_statements loaded (BULWARK_PGTEST_STATEMENTS=1 for the private
// server) and returns an error otherwise.
func Statements(ctx context.Context, dsn string, n int) (string, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "", err
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return "", fmt.Errorf("pg_stat_statements: %w", err)
	}
	rows, err := db.QueryContext(ctx, `SELECT calls, rows, total_exec_time, left(regexp_replace(query, '\s+', ' ', 'g'), 110)
		FROM pg_stat_statements JOIN pg_database d ON d.oid = dbid
		WHERE d.datname = current_database() ORDER BY total_exec_time DESC LIMIT $1`, n)
	if err != nil {
		return "", fmt.Errorf("pg_stat_statements: %w", err)
	}
	defer rows.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%9s %10s %10s %9s  %s\n", "calls", "rows", "total ms", "µs/row", "statement")
	for rows.Next() {
		var calls, nrows int64
		var total float64
		var q string
		if err := rows.Scan(&calls, &nrows, &total, &q); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%9d %10d %10.0f %9.2f  %s\n", calls, nrows, total, 1000*total/float64(max(1, nrows)), q)
	}
	return b.String(), rows.Err()
}
