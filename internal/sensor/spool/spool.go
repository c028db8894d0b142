package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ErrFull is returned by Append when the spool holds MaxBytes already.
var ErrFull = errors.New("spool full")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("spool closed")

// ErrTooLarge is returned by Append for a record above MaxRecord.
var ErrTooLarge = errors.New("spool record too large")

// MaxRecord bounds one record, so a corrupted length field cannot make a
// reader allocate gigabytes.
const MaxRecord = 4 << 20

const (
	magic      = "BWSPOOL1"
	headerSize = 8 // record header: uint32 length, uint32 CRC-32C
	segSuffix  = ".seg"
	ackName    = "ack"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Options tune a spool; zero values take the defaults.
type Options struct {
	// MaxBytes caps the spool's total size on disk (default 256 MiB).
	MaxBytes int64
	// SegmentBytes is the size at which a new segment starts (default 8 MiB);
	// fully acknowledged segments are deleted.
	SegmentBytes int64
}

// Stats are the spool's counters since Open.
type Stats struct {
	Appended       uint64 // records accepted
	Rejected       uint64 // records refused because the spool was full
	Acked          uint64 // records acknowledged
	CorruptRecords uint64 // damaged records found (and skipped) on Open or read
	CorruptBytes   uint64 // bytes skipped with them
	Bytes          int64  // bytes on disk now
	Segments       int    // segment files now
}

// Position is a place in the spool: a segment and a byte offset in it.
type Position struct {
	Seg uint64
	Off int64
}

type segment struct {
	seq   uint64
	size  int64 // bytes of valid records (plus the magic); reads stop here
	onDsk int64 // file size on disk (counted against MaxBytes)
}

// Spool is a directory of segment files. Append and Read/Ack may be called
// from different goroutines (one writer and one reader at a time is the
// intended use).
type Spool struct {
	mu     sync.Mutex
	dir    string
	opts   Options
	segs   []segment // ascending; the last one is the one being written
	w      *os.File
	ack    Position
	total  int64
	stats  Stats
	notify chan struct{}
	closed bool
}

// Open opens (creating it if needed) the spool in dir, validates every
// segment and positions the reader at the last acknowledged record. Damaged
// records are counted in Stats and skipped; new records always go to a
// fresh segment so a damaged tail is never appended to.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 256 << 20
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 8 << 20
	}
	if opts.SegmentBytes > opts.MaxBytes {
		opts.SegmentBytes = opts.MaxBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	s := &Spool{dir: dir, opts: opts, notify: make(chan struct{}, 1)}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil {
			continue
		}
		seg, err := s.scan(seq)
		if err != nil {
			return nil, err
		}
		s.segs = append(s.segs, seg)
		s.total += seg.onDsk
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i].seq < s.segs[j].seq })
	s.ack = s.readAck()
	if len(s.segs) > 0 && s.ack.Seg < s.segs[0].seq {
		s.ack = Position{Seg: s.segs[0].seq, Off: int64(len(magic))}
	}
	next := uint64(1)
	if n := len(s.segs); n > 0 {
		next = s.segs[n-1].seq + 1
	}
	if err := s.newSegment(next); err != nil {
		return nil, err
	}
	s.gc()
	return s, nil
}

// scan validates one segment file and returns its valid extent.
func (s *Spool) scan(seq uint64) (segment, error) {
	path := s.segPath(seq)
	f, err := os.Open(path)
	if err != nil {
		return segment{}, fmt.Errorf("open spool segment %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return segment{}, fmt.Errorf("stat spool segment %s: %w", path, err)
	}
	seg := segment{seq: seq, onDsk: st.Size()}
	br := bufio.NewReaderSize(f, 64<<10)
	var m [len(magic)]byte
	if _, err := io.ReadFull(br, m[:]); err != nil || string(m[:]) != magic {
		if st.Size() > 0 {
			s.stats.CorruptRecords++
			s.stats.CorruptBytes += uint64(st.Size())
		}
		return seg, nil
	}
	off := int64(len(magic))
	for {
		rec, err := readRecord(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			// The rest of the segment cannot be trusted: a torn final write
			// or damaged data. Count it; the reader stops at off.
			s.stats.CorruptRecords++
			s.stats.CorruptBytes += uint64(st.Size() - off)
			break
		}
		off += int64(headerSize + len(rec))
	}
	seg.size = off
	return seg, nil
}

var errCorrupt = errors.New("corrupt record")

// readRecord reads one record: io.EOF at a clean end, errCorrupt for a
// torn or damaged one. The length is checked against MaxRecord before
// anything is allocated.
func readRecord(r io.Reader) ([]byte, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, errCorrupt
	}
	n := binary.LittleEndian.Uint32(h[0:4])
	sum := binary.LittleEndian.Uint32(h[4:8])
	if n == 0 || n > MaxRecord {
		return nil, errCorrupt
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, errCorrupt
	}
	if crc32.Checksum(b, crcTable) != sum {
		return nil, errCorrupt
	}
	return b, nil
}

func (s *Spool) segPath(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, segSuffix))
}

func (s *Spool) newSegment(seq uint64) error {
	if s.w != nil {
		if err := s.w.Close(); err != nil {
			return fmt.Errorf("close spool segment: %w", err)
		}
		s.w = nil
	}
	path := s.segPath(seq)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create spool segment: %w", err)
	}
	if _, err := f.WriteString(magic); err != nil {
		f.Close()
		return fmt.Errorf("write spool segment %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync spool segment %s: %w", path, err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	s.w = f
	s.segs = append(s.segs, segment{seq: seq, size: int64(len(magic)), onDsk: int64(len(magic))})
	s.total += int64(len(magic))
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync spool dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync spool dir: %w", err)
	}
	return nil
}

// Append writes the records and fsyncs once; when it returns nil every
// record is durable. It refuses the whole call with ErrFull when the records
// would take the spool above MaxBytes.
func (s *Spool) Append(recs ...[]byte) error {
	var need int64
	for _, r := range recs {
		if len(r) == 0 || len(r) > MaxRecord {
			return fmt.Errorf("spool append: %w (%d bytes)", ErrTooLarge, len(r))
		}
		need += int64(headerSize + len(r))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	cur := &s.segs[len(s.segs)-1]
	roll := cur.size > int64(len(magic)) && cur.size+need > s.opts.SegmentBytes
	extra := int64(0)
	if roll {
		extra = int64(len(magic))
	}
	if s.total+need+extra > s.opts.MaxBytes {
		s.stats.Rejected += uint64(len(recs))
		return fmt.Errorf("spool append %d records: %w (%d of %d bytes used)", len(recs), ErrFull, s.total, s.opts.MaxBytes)
	}
	if roll {
		if err := s.newSegment(cur.seq + 1); err != nil {
			return err
		}
		cur = &s.segs[len(s.segs)-1]
	}
	buf := make([]byte, 0, need)
	for _, r := range recs {
		var h [headerSize]byte
		binary.LittleEndian.PutUint32(h[0:4], uint32(len(r)))
		binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum(r, crcTable))
		buf = append(buf, h[:]...)
		buf = append(buf, r...)
	}
	if _, err := s.w.Write(buf); err != nil {
		// The segment may now hold a partial record: start a new one so the
		// valid extent stays well defined.
		s.segs[len(s.segs)-1].onDsk += need
		s.total += need
		_ = s.newSegment(cur.seq + 1)
		return fmt.Errorf("spool append: %w", err)
	}
	if err := s.w.Sync(); err != nil {
		return fmt.Errorf("spool append: sync: %w", err)
	}
	cur.size += need
	cur.onDsk += need
	s.total += need
	s.stats.Appended += uint64(len(recs))
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

// Notify returns a channel that receives a value after records were
// appended (coalesced), for a reader waiting for work.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Read returns up to max records (and at most maxBytes of them, but always
// at least one when any is pending) starting at the acknowledged position,
// and the position just after the last one, to pass to Ack once they were
// delivered. It returns no records when nothing is pending.
func (s *Spool) Read(max int, maxBytes int) ([][]byte, Position, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, Position{}, ErrClosed
	}
	segs := append([]segment(nil), s.segs...)
	pos := s.ack
	s.mu.Unlock()

	var out [][]byte
	size := 0
	for _, seg := range segs {
		if seg.seq < pos.Seg {
			continue
		}
		if seg.seq > pos.Seg {
			pos = Position{Seg: seg.seq, Off: int64(len(magic))}
		}
		if pos.Off >= seg.size {
			continue
		}
		f, err := os.Open(s.segPath(seg.seq))
		if err != nil {
			return out, pos, fmt.Errorf("spool read: %w", err)
		}
		r := bufio.NewReaderSize(io.NewSectionReader(f, pos.Off, seg.size-pos.Off), 64<<10)
		for len(out) < max && (size < maxBytes || len(out) == 0) {
			rec, err := readRecord(r)
			if err == io.EOF {
				break
			}
			if err != nil {
				// Validated at Open or written by us: damaged since. Skip the
				// rest of this segment.
				s.mu.Lock()
				s.stats.CorruptRecords++
				s.stats.CorruptBytes += uint64(seg.size - pos.Off)
				s.mu.Unlock()
				pos.Off = seg.size
				break
			}
			out = append(out, rec)
			pos.Off += int64(headerSize + len(rec))
			size += len(rec)
		}
		f.Close()
		if len(out) >= max || (size >= maxBytes && len(out) > 0) {
			break
		}
	}
	return out, pos, nil
}

// Ack records that everything before p was delivered. The position is
// written to disk (atomically, fsync'd) before Ack returns, and segments
// that are now fully delivered are deleted.
func (s *Spool) Ack(p Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if p.Seg < s.ack.Seg || (p.Seg == s.ack.Seg && p.Off <= s.ack.Off) {
		return nil
	}
	n := s.countBetween(s.ack, p)
	if err := s.writeAck(p); err != nil {
		return err
	}
	s.ack = p
	s.stats.Acked += n
	s.gc()
	return nil
}

// countBetween counts records between two positions by walking headers; it
// is only used for Stats, on already validated data.
func (s *Spool) countBetween(a, b Position) uint64 {
	var n uint64
	for _, seg := range s.segs {
		if seg.seq < a.Seg || seg.seq > b.Seg {
			continue
		}
		from, to := int64(len(magic)), seg.size
		if seg.seq == a.Seg && a.Off > from {
			from = a.Off
		}
		if seg.seq == b.Seg && b.Off < to {
			to = b.Off
		}
		if from >= to {
			continue
		}
		f, err := os.Open(s.segPath(seg.seq))
		if err != nil {
			continue
		}
		r := bufio.NewReader(io.NewSectionReader(f, from, to-from))
		var h [headerSize]byte
		for {
			if _, err := io.ReadFull(r, h[:]); err != nil {
				break
			}
			l := binary.LittleEndian.Uint32(h[0:4])
			if _, err := r.Discard(int(l)); err != nil {
				break
			}
			n++
		}
		f.Close()
	}
	return n
}

func (s *Spool) writeAck(p Position) error {
	tmp := filepath.Join(s.dir, ackName+".tmp")
	data := fmt.Sprintf("%d %d\n", p.Seg, p.Off)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("spool ack: %w", err)
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return fmt.Errorf("spool ack: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("spool ack: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("spool ack: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, ackName)); err != nil {
		return fmt.Errorf("spool ack: %w", err)
	}
	return syncDir(s.dir)
}

// readAck reads the acknowledged position; a missing or damaged file means
// nothing was acknowledged (replaying is safe, losing is not).
func (s *Spool) readAck() Position {
	b, err := os.ReadFile(filepath.Join(s.dir, ackName))
	if err != nil || len(b) > 64 {
		return Position{Off: int64(len(magic))}
	}
	var p Position
	if _, err := fmt.Sscanf(string(b), "%d %d", &p.Seg, &p.Off); err != nil || p.Off < int64(len(magic)) {
		return Position{Off: int64(len(magic))}
	}
	return p
}

// gc deletes segments before the acknowledged one, and the acknowledged one
// when it is fully read and not being written.
func (s *Spool) gc() {
	keep := s.segs[:0]
	last := len(s.segs) - 1
	for i, seg := range s.segs {
		done := seg.seq < s.ack.Seg || (seg.seq == s.ack.Seg && s.ack.Off >= seg.size)
		if done && i != last {
			if err := os.Remove(s.segPath(seg.seq)); err == nil || errors.Is(err, os.ErrNotExist) {
				s.total -= seg.onDsk
				continue
			}
		}
		keep = append(keep, seg)
	}
	s.segs = keep
}

// Stats returns the counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Bytes = s.total
	st.Segments = len(s.segs)
	return st
}

// Close closes the segment being written. Records already appended stay on
// disk for the next Open.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.w != nil {
		return s.w.Close()
	}
	return nil
}
