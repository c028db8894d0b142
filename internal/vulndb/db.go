package vulndb

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

var (
	// ErrNoDatabase is returned by Open when the directory holds no index:
	// nothing was imported yet ("run bulwark db import").
	ErrNoDatabase = errors.New("no vulnerability database")
	// ErrCorruptIndex is returned when the index file is damaged or was
	// written by an incompatible version; re-running the import rebuilds it.
	ErrCorruptIndex = errors.New("corrupt vulnerability database index")
	// ErrClosed is returned by calls on a closed DB.
	ErrClosed = errors.New("vulnerability database is closed")
)

// OpenOptions configure Open.
type OpenOptions struct {
	// Logger receives notices about packages that cannot be matched (a
	// version the ecosystem cannot parse). Nil discards them.
	Logger *slog.Logger
}

// DB is an opened vulnerability database. It is safe for concurrent use;
// Close it to release the mapping.
type DB struct {
	dir    string
	log    *slog.Logger
	mu     sync.RWMutex
	unmap  func() error
	ix     *index
	closed bool
}

// index is a validated view of an index file image.
type index struct {
	buf                    []byte
	str, keys, vulns, data []byte
	meta                   []byte
	nKeys, nVulns          int
}

// DefaultDir is where the database lives unless told otherwise:
// $BULWARK_DB_DIR, else the user cache directory + "bulwark/db".
func DefaultDir() (string, error) {
	if d := os.Getenv("BULWARK_DB_DIR"); d != "" {
		return d, nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find database directory: %w (set BULWARK_DB_DIR or --db-dir)", err)
	}
	return filepath.Join(c, "bulwark", "db"), nil
}

// Open maps the database in dir. It decodes nothing but the header and
// verifies the checksum, so it costs a few milliseconds whatever the size.
// It returns an error wrapping ErrNoDatabase when nothing was imported yet
// and ErrCorruptIndex when the index is damaged.
func Open(dir string, opts OpenOptions) (*DB, error) {
	p := filepath.Join(dir, indexFile)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w (run \"bulwark db import\")", dir, ErrNoDatabase)
	}
	if err != nil {
		return nil, fmt.Errorf("open vulnerability database: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open vulnerability database: %w", err)
	}
	if st.Size() < headerSize || st.Size() > 1<<32 {
		return nil, fmt.Errorf("open %s: %w: size %d", p, ErrCorruptIndex, st.Size())
	}
	buf, unmap, err := mapFile(f, int(st.Size()))
	if err != nil {
		return nil, fmt.Errorf("open vulnerability database: map %s: %w", p, err)
	}
	ix, err := parseIndex(buf, true)
	if err != nil {
		unmap()
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &DB{dir: dir, log: log, unmap: unmap, ix: ix}, nil
}

// Close releases the database. Vulnerabilities returned by Match stay valid.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	db.ix = nil
	return db.unmap()
}

// parseIndex validates the header and section bounds of an index image.
// Everything read later is bounds-checked as well, so a corrupt file that
// passes (verify=false in fuzzing) yields errors, never panics.
func parseIndex(b []byte, verify bool) (*index, error) {
	if len(b) < headerSize || string(b[:8]) != indexMagic {
		return nil, fmt.Errorf("%w: not a Bulwark index", ErrCorruptIndex)
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[8:]); v != indexVersion {
		return nil, fmt.Errorf("%w: format version %d, want %d (re-run the import)", ErrCorruptIndex, v, indexVersion)
	}
	if verify && crc32.Checksum(b[headerSize:], castagnoli) != le.Uint32(b[12:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptIndex)
	}
	ix := &index{buf: b, nKeys: int(le.Uint32(b[16:])), nVulns: int(le.Uint32(b[20:]))}
	section := func(at int) ([]byte, error) {
		off, n := uint64(le.Uint32(b[at:])), uint64(le.Uint32(b[at+4:]))
		if off < headerSize || off+n > uint64(len(b)) {
			return nil, fmt.Errorf("%w: section at %d out of bounds", ErrCorruptIndex, at)
		}
		return b[off : off+n], nil
	}
	var err error
	if ix.str, err = section(24); err != nil {
		return nil, err
	}
	if ix.keys, err = section(32); err != nil {
		return nil, err
	}
	if ix.vulns, err = section(40); err != nil {
		return nil, err
	}
	if ix.data, err = section(48); err != nil {
		return nil, err
	}
	if ix.meta, err = section(56); err != nil {
		return nil, err
	}
	if uint64(ix.nKeys)*keySize != uint64(len(ix.keys)) || uint64(ix.nVulns)*vulnSize != uint64(len(ix.vulns)) {
		return nil, fmt.Errorf("%w: table sizes disagree with counts", ErrCorruptIndex)
	}
	return ix, nil
}

func corrupt(what string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrCorruptIndex, what, err)
}

// lookup returns the entries of key (base ecosystem, normalised name).
func (ix *index) lookup(eco, name string) ([]byte, int, error) {
	le := binary.LittleEndian
	var cmpErr error
	keyAt := func(i int) (e, n []byte) {
		k := ix.keys[i*keySize:]
		e, err1 := readStr(ix.str, le.Uint32(k))
		n, err2 := readStr(ix.str, le.Uint32(k[4:]))
		if err := errors.Join(err1, err2); err != nil && cmpErr == nil {
			cmpErr = err
		}
		return e, n
	}
	ecoB, nameB := []byte(eco), []byte(name)
	lo, hi := 0, ix.nKeys
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		e, n := keyAt(m)
		c := bytes.Compare(e, ecoB)
		if c == 0 {
			c = bytes.Compare(n, nameB)
		}
		if c < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if cmpErr != nil {
		return nil, 0, corrupt("key table", cmpErr)
	}
	if lo >= ix.nKeys {
		return nil, 0, nil
	}
	e, n := keyAt(lo)
	if string(e) != eco || string(n) != name {
		return nil, 0, nil
	}
	k := ix.keys[lo*keySize:]
	off, cnt := le.Uint32(k[8:]), le.Uint32(k[12:])
	if uint64(off) >= uint64(len(ix.data)) {
		return nil, 0, corrupt("key table", errShort)
	}
	return ix.data[off:], int(cnt), nil
}

// vulnRow reads row i of the vulnerability table.
func (ix *index) vulnRow(i uint64) (idRef, aliasOff, detOff, detLen uint32, err error) {
	if i >= uint64(ix.nVulns) {
		return 0, 0, 0, 0, corrupt("vulnerability reference", errShort)
	}
	r := ix.vulns[i*vulnSize:]
	le := binary.LittleEndian
	return le.Uint32(r), le.Uint32(r[4:]), le.Uint32(r[8:]), le.Uint32(r[12:]), nil
}

// aliasRefs reads the string refs of a vulnerability's ID and aliases into
// dst: deduplicated strings make alias comparison an integer comparison.
func (ix *index) aliasRefs(i uint64, dst []uint32) ([]uint32, error) {
	_, off, _, _, err := ix.vulnRow(i)
	if err != nil {
		return nil, err
	}
	if uint64(off) >= uint64(len(ix.data)) {
		return nil, corrupt("alias list", errShort)
	}
	d := &dec{b: ix.data[off:]}
	n := d.count()
	for j := 0; j < n && d.err == nil; j++ {
		dst = append(dst, uint32(d.uvarint()))
	}
	if d.err != nil {
		return nil, corrupt("alias list", d.err)
	}
	return dst, nil
}

func (ix *index) details(i uint64) (*Vulnerability, error) {
	_, _, off, n, err := ix.vulnRow(i)
	if err != nil {
		return nil, err
	}
	if uint64(off)+uint64(n) > uint64(len(ix.data)) {
		return nil, corrupt("vulnerability details", errShort)
	}
	v, err := decodeVuln(ix.data[off : off+n])
	if err != nil {
		return nil, corrupt("vulnerability details", err)
	}
	return v, nil
}

// Status describes the opened database.
func (db *DB) Status() Status {
	db.mu.RLock()
	defer db.mu.RUnlock()
	st := Status{Dir: db.dir, SchemaVersion: SchemaVersion}
	if db.ix == nil {
		return st
	}
	var m indexMeta
	if err := json.Unmarshal(db.ix.meta, &m); err == nil {
		st.Built = m.Built
		st.Sources = m.Sources
	}
	st.Vulnerabilities = db.ix.nVulns
	return st
}
