package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

var errNoVulnDB = errors.New("no vulnerability database loaded")

// indexFileName is the file `bulwark db import` rewrites (by rename) on
// every import: its identity changing means the database changed.
const indexFileName = "index.bvdb"

// vulnDB holds the current vulnerability database and swaps it when the
// index file changes. Old databases are closed after the swap; a match
// that raced with the swap retries on the new one (vulndb.DB.Close waits
// for running matches, and later calls get ErrClosed).
type vulnDB struct {
	dir string
	log *slog.Logger

	mu      sync.RWMutex
	db      *vulndb.DB
	stamp   fileStamp
	loadErr string
}

// fileStamp identifies a version of the index file. An import writes a
// new file and renames it into place, so the inode changes as well as the
// modification time and size.
type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

func newVulnDB(dir string, log *slog.Logger) *vulnDB { return &vulnDB{dir: dir, log: log} }

func (v *vulnDB) statIndex() (fileStamp, error) {
	if v.dir == "" {
		return fileStamp{}, errors.New("no database directory configured (--db-dir)")
	}
	fi, err := os.Stat(filepath.Join(v.dir, indexFileName))
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size(), ino: inode(fi)}, nil
}

// load opens the database now.
func (v *vulnDB) load() error {
	_, err := v.reloadIfChanged()
	return err
}

// reloadIfChanged opens the index again when its file changed since the
// last load, and reports whether it did.
func (v *vulnDB) reloadIfChanged() (bool, error) {
	st, err := v.statIndex()
	if err != nil {
		v.setErr(err)
		return false, err
	}
	v.mu.RLock()
	same := v.db != nil && st == v.stamp
	v.mu.RUnlock()
	if same {
		return false, nil
	}
	db, err := vulndb.Open(v.dir, vulndb.OpenOptions{Logger: v.log})
	if err != nil {
		v.setErr(err)
		return false, err
	}
	v.mu.Lock()
	old := v.db
	v.db, v.stamp, v.loadErr = db, st, ""
	v.mu.Unlock()
	if old != nil {
		go old.Close() // waits for matches still running on it
	}
	s := db.Status()
	v.log.Info("vulnerability database loaded", "dir", v.dir, "built", s.Built, "vulnerabilities", s.Vulnerabilities)
	return true, nil
}

func (v *vulnDB) setErr(err error) {
	v.mu.Lock()
	v.loadErr = err.Error()
	v.mu.Unlock()
}

func (v *vulnDB) loaded() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.db != nil
}

func (v *vulnDB) lastError() string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.loadErr
}

func (v *vulnDB) status() (vulndb.Status, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.db == nil {
		return vulndb.Status{}, false
	}
	return v.db.Status(), true
}

func (v *vulnDB) current() *vulndb.DB {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.db
}

// match fills res.Findings (and res.DB) from the current database.
func (v *vulnDB) match(ctx context.Context, res *scan.Result) error {
	for range 3 {
		db := v.current()
		if db == nil {
			return errNoVulnDB
		}
		err := scan.Match(ctx, db, res)
		if errors.Is(err, vulndb.ErrClosed) {
			continue // swapped under us: use the new one
		}
		return err
	}
	return fmt.Errorf("match: %w", vulndb.ErrClosed)
}

func (v *vulnDB) close() {
	v.mu.Lock()
	db := v.db
	v.db = nil
	v.mu.Unlock()
	if db != nil {
		db.Close()
	}
}
