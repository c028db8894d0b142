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
	"syscall"
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
	// The ack file is two fixed slots written in place alternately (see
	// writeAck): magic, generation, segment, offset, CRC-32C.
	ackMagic = "BWA2"
	ackSlot  = 32
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
	mu   sync.Mutex
	dir  string
	opts Options
	segs []segment // ascending; the last one is the one being written
	// w is the segment being written; nil after a write failed (a full
	// disk), until the next Append starts a new segment.
	w   *os.File
	ack Position
	// ackF is the ack file, open for in-place writes; ackGen the
	// generation of its newest slot. nil until the file exists in the
	// slot format (creating it needs space; rewriting it does not).
	ackF   *os.File
	ackGen uint64
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
	s.ack, s.ackGen = s.readAck()
	if len(s.segs) > 0 && s.ack.Seg < s.segs[0].seq {
		s.ack = Position{Seg: s.segs[0].seq, Off: int64(len(magic))}
	}
	// On a full disk the spool still opens, so that what it holds can be
	// delivered and acknowledged, which frees the space: the ack file and
	// the new segment are then made when there is room (writeAck, Append).
	if err := s.openAckFile(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		return nil, err
	}
	if err := s.newSegment(s.nextSeq()); err != nil && !errors.Is(err, syscall.ENOSPC) {
		s.closeFiles()
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

// nextSeq is the number of the next segment to create: after every
// segment there is and after the acknowledged one (the reader skips
// segments numbered below it).
func (s *Spool) nextSeq() uint64 {
	next := s.ack.Seg + 1
	if n := len(s.segs); n > 0 {
		next = max(next, s.segs[n-1].seq+1)
	}
	return next
}

// newSegment closes the segment being written and starts segment seq. If
// that fails (a full disk) no segment is open and no file is left behind,
// so the next attempt can create the same one.
func (s *Spool) newSegment(seq uint64) error {
	if s.w != nil {
		err := s.w.Close()
		s.w = nil
		if err != nil {
			return fmt.Errorf("close spool segment: %w", err)
		}
	}
	path := s.segPath(seq)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create spool segment: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		_ = os.Remove(path)
		return err
	}
	if _, err := f.WriteString(magic); err != nil {
		return fail(fmt.Errorf("write spool segment %s: %w", path, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("sync spool segment %s: %w", path, err))
	}
	if err := syncDir(s.dir); err != nil {
		return fail(err)
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
	if s.w == nil { // the last write failed, or the disk was full at Open
		if s.total+need+int64(len(magic)) > s.opts.MaxBytes {
			s.stats.Rejected += uint64(len(recs))
			return fmt.Errorf("spool append %d records: %w (%d of %d bytes used)", len(recs), ErrFull, s.total, s.opts.MaxBytes)
		}
		if err := s.newSegment(s.nextSeq()); err != nil {
			return fmt.Errorf("spool append: %w", err)
		}
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
		// The segment may now hold a partial record: it is written no more
		// (the next Append starts a new one), so its valid extent stays
		// well defined; its bytes count against MaxBytes until it is done.
		cur.onDsk += need
		s.total += need
		_ = s.w.Close()
		s.w = nil
		return fmt.Errorf("spool append: %w", err)
	}
	if err := s.w.Sync(); err != nil {
		// Whether the records reached the disk is unknown: they are not
		// read in this run (the caller was told they failed) and are
		// found by the next Open if they did (at-least-once).
		cur.onDsk += need
		s.total += need
		_ = s.w.Close()
		s.w = nil
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

// The acknowledged position must be durable, and writing it must not need
// space: on a full disk, acknowledging delivered records is what lets the
// spool delete segments and free room. So the ack file is made once (two
// 32-byte slots, through a temporary file and a rename) and from then on
// rewritten in place, the two slots alternately, each with a generation
// and a CRC: a torn write spoils at most the slot being written, and the
// reader takes the newest valid slot — at worst the previous position,
// which replays one batch (at-least-once), never skips one.

func encodeAckSlot(gen uint64, p Position) []byte {
	b := make([]byte, ackSlot)
	copy(b, ackMagic)
	binary.LittleEndian.PutUint64(b[4:], gen)
	binary.LittleEndian.PutUint64(b[12:], p.Seg)
	binary.LittleEndian.PutUint64(b[20:], uint64(p.Off))
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], crcTable))
	return b
}

func decodeAckSlot(b []byte) (gen uint64, p Position, ok bool) {
	if len(b) != ackSlot || string(b[:4]) != ackMagic || crc32.Checksum(b[:28], crcTable) != binary.LittleEndian.Uint32(b[28:]) {
		return 0, Position{}, false
	}
	p = Position{Seg: binary.LittleEndian.Uint64(b[12:]), Off: int64(binary.LittleEndian.Uint64(b[20:]))}
	if p.Off < int64(len(magic)) {
		return 0, Position{}, false
	}
	return binary.LittleEndian.Uint64(b[4:]), p, true
}

// openAckFile opens the ack file for in-place writes, first (re)making it
// in the slot format when it is missing or in the older one-line format.
func (s *Spool) openAckFile() error {
	path := filepath.Join(s.dir, ackName)
	if b, err := os.ReadFile(path); err != nil || len(b) != 2*ackSlot {
		if err := s.createAckFile(); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("spool ack: %w", err)
	}
	s.ackF = f
	return nil
}

// createAckFile writes a fresh ack file holding s.ack in slot 0.
func (s *Spool) createAckFile() error {
	tmp := filepath.Join(s.dir, ackName+".tmp")
	s.ackGen++
	data := append(encodeAckSlot(s.ackGen, s.ack), make([]byte, ackSlot)...)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("spool ack: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, ackName))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("spool ack: %w", err)
	}
	return syncDir(s.dir)
}

func (s *Spool) writeAck(p Position) error {
	if s.ackF == nil {
		if err := s.openAckFile(); err != nil {
			return err
		}
	}
	gen := s.ackGen + 1
	if _, err := s.ackF.WriteAt(encodeAckSlot(gen, p), int64(gen%2)*ackSlot); err != nil {
		return fmt.Errorf("spool ack: %w", err)
	}
	if err := s.ackF.Sync(); err != nil {
		return fmt.Errorf("spool ack: sync: %w", err)
	}
	s.ackGen = gen
	return nil
}

// readAck reads the acknowledged position and its generation: the newest
// valid slot, or the older one-line format ("SEG OFF"). A missing or
// damaged file means nothing was acknowledged (replaying is safe, losing
// is not).
func (s *Spool) readAck() (Position, uint64) {
	start := Position{Off: int64(len(magic))}
	b, err := os.ReadFile(filepath.Join(s.dir, ackName))
	if err != nil || len(b) > 2*ackSlot {
		return start, 0
	}
	if len(b) == 2*ackSlot {
		var best Position
		var bestGen uint64
		for i := range 2 {
			if gen, p, ok := decodeAckSlot(b[i*ackSlot : (i+1)*ackSlot]); ok && gen > bestGen {
				best, bestGen = p, gen
			}
		}
		if bestGen > 0 {
			return best, bestGen
		}
		return start, 0
	}
	var p Position
	if _, err := fmt.Sscanf(string(b), "%d %d", &p.Seg, &p.Off); err != nil || p.Off < int64(len(magic)) {
		return start, 0
	}
	return p, 0
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
	return s.closeFiles()
}

func (s *Spool) closeFiles() error {
	var err error
	if s.ackF != nil {
		err = s.ackF.Close()
		s.ackF = nil
	}
	if s.w != nil {
		if cerr := s.w.Close(); err == nil {
			err = cerr
		}
		s.w = nil
	}
	return err
}
