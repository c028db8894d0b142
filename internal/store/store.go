package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/klauspost/compress/zstd"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Sentinel errors callers branch on (the API layer maps them to status codes).
var (
	// ErrNotFound: the row asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique constraint was violated (a name already taken).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input cannot be stored (unknown enumeration value,
	// malformed digest, missing required field). Wrapped with the reason.
	ErrInvalid = errors.New("invalid input")
	// ErrUnauthorized: a token or password did not verify (unknown, wrong,
	// expired, revoked or disabled — deliberately not told apart).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrLeaseLost: a job completion, failure or extension named a lease the
	// caller no longer holds (it expired and the job was claimed again, or it
	// was already finished).
	ErrLeaseLost = errors.New("job lease lost")
	// ErrNoSecretKey: registry credentials were given or asked for but the
	// store was opened without Options.SecretKey.
	ErrNoSecretKey = errors.New("no secret key configured")
	// ErrStorageFull: the database's disk (or PostgreSQL's tablespace) is
	// full. The transaction was rolled back whole, so nothing of the call was
	// stored; the caller should retry later (the API answers 507 with
	// Retry-After, and senders keep their records until then).
	ErrStorageFull = errors.New("storage full")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Options configures Open.
type Options struct {
	// SecretKey is the 32-byte AES-256 key sealing registry credentials. It is
	// never written to the database. Without it, registries can be stored
	// without credentials only.
	SecretKey []byte
	// Logger receives migration and maintenance messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock (tests move it to expire leases); nil is time.Now.
	Now func() time.Time
	// SQLiteReaders is the size of the SQLite reader pool (default
	// max(4, GOMAXPROCS)). Writes always go through one connection.
	SQLiteReaders int
	// SQLiteSynchronous is SQLite's synchronous pragma. "NORMAL" (the
	// default) in WAL mode makes a committed transaction survive a crash
	// or kill -9 of the process but not a power loss or kernel crash, which
	// may lose the last commits (never corrupt the file); commits cost no
	// fsync. "FULL" fsyncs every commit, so they also survive power loss,
	// at several milliseconds per commit on ordinary disks (group writes
	// with EnqueueMany).
	SQLiteSynchronous string
	// PostgresMaxConns bounds the PostgreSQL connection pool (default 16).
	PostgresMaxConns int
}

// Store is central's persistence. It is safe for concurrent use.
type Store struct {
	d      *dialect
	w      *sql.DB // writes (SQLite: exactly one connection)
	r      *sql.DB // reads (SQLite: a query_only pool; PostgreSQL: same as w)
	key    []byte
	log    *slog.Logger
	now    func() time.Time
	zenc   *zstd.Encoder
	zdec   *zstd.Decoder
	closed bool
	// stmts caches the alert ingest's prepared statements (SQLite; see
	// ingestStmts). PostgreSQL's driver caches statements itself.
	stmts stmtCache
	// logWindow keeps the export log rows read last, for the other
	// exports (exportlog_window.go).
	logWindow exportLogWindow
	// wturn hands SQLite's one writer connection to write transactions
	// in arrival order (nil on PostgreSQL). database/sql gives a freed
	// connection to a random waiter, so under a steady ingest an export
	// worker could miss its turn several times running and fall behind
	// for good (each turn settles one batch); in order, every waiting
	// transaction gets the writer once per ingest transaction.
	wturn chan struct{}
	// bufs recycles the PostgreSQL ingest's COPY and parameter buffers
	// (alerts_copy.go).
	bufs ingestBufs
	// openFPs remembers fingerprints this Store saw with an open alert
	// row on PostgreSQL, so that a batch of only new ones skips the probe
	// for open rows (upsertAlertGroupsPG).
	openFPs openFingerprints
	// logRowBufs recycles readExportLogDB's row buffers (*[]logRow): the
	// window copies the rows it keeps and the leased records copy theirs,
	// so a buffer is free again once a read is done (it held a few hundred
	// KiB per read before).
	logRowBufs sync.Pool
}

// Open opens the database named by dsn and applies pending migrations.
//
// dsn is either a PostgreSQL URL or keyword string ("postgres://…",
// "postgresql://…", "host=… dbname=…") or a SQLite file ("sqlite:path",
// "file:path" or a plain path). SQLite is opened in WAL mode with foreign
// keys on and a busy timeout; one writer connection serializes writes, as
// SQLite does anyway, so that no write ever fails with SQLITE_BUSY inside
// the process.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.SecretKey != nil && len(opts.SecretKey) != 32 {
		return nil, fmt.Errorf("open store: secret key must be 32 bytes, got %d", len(opts.SecretKey))
	}
	s := &Store{key: opts.SecretKey, log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	var err error
	if isPostgresDSN(dsn) {
		err = s.openPostgres(dsn, opts)
	} else {
		err = s.openSQLite(dsn, opts)
	}
	if err != nil {
		return nil, err
	}
	s.zenc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err == nil {
		// Bounded so a corrupt or hostile blob cannot claim unbounded memory.
		s.zdec, err = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(512<<20), zstd.WithDecoderConcurrency(0))
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open store: zstd: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Dialect names the backend: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.d.name }

// Close releases the database connections.
func (s *Store) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.zenc != nil {
		errs = append(errs, s.zenc.Close())
	}
	if s.zdec != nil {
		s.zdec.Close()
	}
	return errors.Join(errs...)
}

// Ping checks that the database answers (for /readyz). It uses the reader
// pool, so a long write transaction does not make central look unready.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

func isPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") ||
		strings.Contains(dsn, "host=") || strings.Contains(dsn, "dbname=")
}

func (s *Store) openPostgres(dsn string, opts Options) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("open postgres: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	n := opts.PostgresMaxConns
	if n <= 0 {
		n = 16
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s.d, s.w, s.r = postgresDialect, db, db
	return nil
}

func (s *Store) openSQLite(dsn string, opts Options) error {
	path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i] // our own parameters below are the ones that count
	}
	if path == "" || path == ":memory:" {
		// An in-memory database is private to one connection, and the
		// reader pool would see another, empty one.
		return fmt.Errorf("open sqlite: a file path is required (in-memory databases are not supported)")
	}
	sync := strings.ToUpper(opts.SQLiteSynchronous)
	switch sync {
	case "":
		sync = "NORMAL"
	case "FULL", "NORMAL":
	default:
		return fmt.Errorf("open sqlite: synchronous must be FULL or NORMAL, got %q", opts.SQLiteSynchronous)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	// Write transactions take the write lock when they begin, so two
	// processes on one file wait for each other (busy_timeout) instead of
	// deadlocking on a read-to-write upgrade.
	q.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	s.wturn = make(chan struct{}, 1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// Create the file and switch it to WAL before the readers open it.
	if err := w.Ping(); err != nil {
		w.Close()
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	rq := url.Values{}
	rq.Add("_pragma", "busy_timeout(10000)")
	rq.Add("_pragma", "foreign_keys(1)")
	rq.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", "file:"+path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	n := opts.SQLiteReaders
	if n <= 0 {
		n = max(4, runtime.GOMAXPROCS(0))
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.d, s.w, s.r = sqliteDialect, w, r
	return nil
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Queries are written with "?" and rebound for the dialect here.
func (s *Store) exec(ctx context.Context, q querier, query string, args ...any) (sql.Result, error) {
	return q.ExecContext(ctx, s.d.rebind(query), args...)
}

func (s *Store) query(ctx context.Context, q querier, query string, args ...any) (*sql.Rows, error) {
	return q.QueryContext(ctx, s.d.rebind(query), args...)
}

func (s *Store) queryRow(ctx context.Context, q querier, query string, args ...any) *sql.Row {
	return q.QueryRowContext(ctx, s.d.rebind(query), args...)
}

// tx runs fn in a write transaction, committing when it returns nil.
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.wturn != nil {
		select { // a blocked channel send queues in arrival order
		case s.wturn <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-s.wturn }()
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// ts converts a time to the dialect's column value; the zero time is NULL.
func (s *Store) ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return s.d.ts(t)
}

// timeCol scans a time column of either dialect (PostgreSQL timestamptz,
// SQLite integer microseconds) into a time.Time (zero for NULL).
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.t = time.Time{}
	case int64:
		*c.t = time.UnixMicro(v).UTC()
	case time.Time:
		*c.t = v.UTC()
	default:
		return fmt.Errorf("scan time: unexpected %T", src)
	}
	return nil
}

// tcol is shorthand for a time column scan target.
func tcol(t *time.Time) timeCol { return timeCol{t} }

// boolCol scans booleans stored as SQLite integers or PostgreSQL booleans.
type boolCol struct{ b *bool }

func (c boolCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.b = false
	case bool:
		*c.b = v
	case int64:
		*c.b = v != 0
	default:
		return fmt.Errorf("scan bool: unexpected %T", src)
	}
	return nil
}

// placeholders returns "?, ?, ?" for n values.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// wrapErr maps driver errors to sentinels and adds the operation's name.
func (s *Store) wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	if s.d.isUnique(err) {
		return fmt.Errorf("%s: %w (%v)", op, ErrConflict, err)
	}
	if s.d.isFull(err) {
		return fmt.Errorf("%s: %w: %w", op, ErrStorageFull, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
