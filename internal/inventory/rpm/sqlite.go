package rpm

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"modernc.org/sqlite"
	"modernc.org/sqlite/vfs"
)

var sqliteMagic = []byte("SQLite format 3\x00")

func isSQLite(head []byte) bool { return bytes.HasPrefix(head, sqliteMagic) }

// sqliteLimitLength is SQLITE_LIMIT_LENGTH, the limit on the size of any
// string or blob SQLite will make.
const sqliteLimitLength = 0

// readSQLite calls fn with every package blob of an rpmdb.sqlite database.
//
// The file is served to SQLite from memory through modernc.org/sqlite's
// read-only fs.FS VFS (opened immutable, so SQLite looks for no journal).
// The database is untrusted: "Packages" must be a real table (a view could
// compute anything), and no value may exceed the file's size, which also
// bounds what generated columns or defaults could make.
func readSQLite(ctx context.Context, r io.ReaderAt, size int64, fn func([]byte) error) (err error) {
	const name = "rpmdb.sqlite"
	vname, fsys, err := vfs.New(memFS{name: name, r: r, size: size})
	if err != nil {
		return fmt.Errorf("register sqlite vfs: %w", err)
	}
	defer func() {
		if cerr := fsys.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("unregister sqlite vfs: %w", cerr)
		}
	}()
	db, err := sql.Open("sqlite", "file:"+name+"?vfs="+vname+"&mode=ro&immutable=1")
	if err != nil {
		return fmt.Errorf("open sqlite: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("open sqlite: %w", err)
	}
	defer conn.Close()

	limit := int(min(max(size, 1<<20), 1<<30))
	if _, err := sqlite.Limit(conn, sqliteLimitLength, limit); err != nil {
		return fmt.Errorf("limit sqlite: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA trusted_schema=OFF"); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	var typ string
	err = conn.QueryRowContext(ctx, "SELECT type FROM sqlite_master WHERE name = 'Packages'").Scan(&typ)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: no Packages table")
	}
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if typ != "table" {
		return fmt.Errorf("sqlite: Packages is a %s, not a table", typ)
	}
	rows, err := conn.QueryContext(ctx, "SELECT blob FROM Packages")
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
		if err := fn(blob); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return nil
}

// memFS is a file system holding one read-only file, the database, read
// through an io.ReaderAt: SQLite reads pages from the buffer the scan
// already holds, and nothing is written anywhere.
type memFS struct {
	name string
	r    io.ReaderAt
	size int64
}

func (m memFS) Open(name string) (fs.File, error) {
	if name != m.name {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{SectionReader: io.NewSectionReader(m.r, 0, m.size), fs: m}, nil
}

type memFile struct {
	*io.SectionReader
	fs memFS
}

func (f *memFile) Stat() (fs.FileInfo, error) { return memInfo(f.fs), nil }
func (f *memFile) Close() error               { return nil }

type memInfo memFS

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return 0o444 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }
