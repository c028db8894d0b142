package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func recs(from, to int) [][]byte {
	var out [][]byte
	for i := from; i < to; i++ {
		out = append(out, fmt.Appendf(nil, `{"id":"%04d"}`, i))
	}
	return out
}

// drain reads and acknowledges everything pending, batch by batch.
func drain(t *testing.T, s *Spool, batch int) []string {
	t.Helper()
	var got []string
	for {
		rs, pos, err := s.Read(batch, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			return got
		}
		for _, r := range rs {
			got = append(got, string(r))
		}
		if err := s.Ack(pos); err != nil {
			t.Fatal(err)
		}
	}
}

func strs(b [][]byte) []string {
	var out []string
	for _, r := range b {
		out = append(out, string(r))
	}
	return out
}

func TestAppendReadAckAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 200}) // a few records per segment
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs(0, 30) {
		if err := s.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	// Deliver 10, then "crash" (close without acking the next read).
	rs, pos, err := s.Read(10, 1<<20)
	if err != nil || len(rs) != 10 {
		t.Fatalf("read: %d records, %v", len(rs), err)
	}
	if err := s.Ack(pos); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Read(5, 1<<20); err != nil { // read but never acked
		t.Fatal(err)
	}
	if st := s.Stats(); st.Segments < 3 {
		t.Fatalf("want several segments with SegmentBytes=200, got %d", st.Segments)
	}
	s.Close()

	s, err = Open(dir, Options{SegmentBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Append(recs(30, 35)...); err != nil {
		t.Fatal(err)
	}
	got := drain(t, s, 7)
	if diff := cmp.Diff(strs(recs(10, 35)), got); diff != "" {
		t.Fatalf("replay after reopen (-want +got):\n%s", diff)
	}
	st := s.Stats()
	if st.Acked != 25 || st.Appended != 5 || st.CorruptRecords != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Delivered segments are deleted: only the segment being written remains.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("want 1 segment left after full delivery, got %v", segs)
	}
}

func TestFullRefusesAndCounts(t *testing.T) {
	s, err := Open(t.TempDir(), Options{MaxBytes: 300, SegmentBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	accepted := 0
	var full error
	for _, r := range recs(0, 50) {
		if err := s.Append(r); err != nil {
			full = err
			break
		}
		accepted++
	}
	if !errors.Is(full, ErrFull) {
		t.Fatalf("want ErrFull, got %v", full)
	}
	if st := s.Stats(); st.Bytes > 300 || st.Rejected != 1 {
		t.Fatalf("stats %+v", st)
	}
	// What was accepted is all there; after delivery there is room again.
	if got := drain(t, s, 100); len(got) != accepted {
		t.Fatalf("accepted %d, delivered %d", accepted, len(got))
	}
	if err := s.Append(recs(0, 1)...); err != nil {
		t.Fatalf("append after drain: %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Append(make([]byte, MaxRecord+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("want ErrTooLarge, got %v", err)
	}
	if err := s.Append(nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("empty record: want ErrTooLarge, got %v", err)
	}
}

// Hostile: a torn final write, a flipped byte in the middle of a segment, a
// segment without the magic and a damaged ack file. Valid records are
// replayed, the rest counted.
func TestCorruptSegments(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(recs(0, 10)...); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir, Options{SegmentBytes: 1 << 20}) // second segment
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(recs(10, 20)...); err != nil {
		t.Fatal(err)
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 2 {
		t.Fatalf("segments %v", segs)
	}
	// Segment 1: flip a payload byte of record 5 → records 0-4 survive.
	b, _ := os.ReadFile(segs[0])
	recLen := headerSize + len(recs(0, 1)[0])
	b[len(magic)+5*recLen+headerSize+3] ^= 0xff
	os.WriteFile(segs[0], b, 0o600)
	// Segment 2: torn write — cut in the middle of record 17.
	b, _ = os.ReadFile(segs[1])
	os.WriteFile(segs[1], b[:len(magic)+7*recLen+5], 0o600)
	// A segment of garbage and a damaged ack file.
	os.WriteFile(filepath.Join(dir, "00000000000000000099.seg"), []byte("not a spool"), 0o600)
	os.WriteFile(filepath.Join(dir, ackName), []byte("garbage"), 0o600)

	s, err = Open(dir, Options{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := drain(t, s, 4)
	want := append(strs(recs(0, 5)), strs(recs(10, 17))...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("recovered records (-want +got):\n%s", diff)
	}
	st := s.Stats()
	if st.CorruptRecords != 3 || st.CorruptBytes == 0 {
		t.Fatalf("want 3 corrupt regions counted, stats %+v", st)
	}
	// New records still go through.
	if err := s.Append(recs(50, 51)...); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, s, 4); len(got) != 1 {
		t.Fatalf("after recovery: %v", got)
	}
}

// FuzzSegment opens a spool whose only segment holds arbitrary bytes: no
// panic, no huge allocation (lengths are capped by MaxRecord), and every
// record read back has a valid checksum by construction.
func FuzzSegment(f *testing.F) {
	dir := f.TempDir()
	s, _ := Open(dir, Options{})
	s.Append(recs(0, 3)...)
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	good, _ := os.ReadFile(segs[0])
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte(magic + "\xff\xff\xff\xff\x00\x00\x00\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, "00000000000000000001.seg"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(d, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for range 1000 {
			rs, pos, err := s.Read(100, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) == 0 {
				return
			}
			if err := s.Ack(pos); err != nil {
				t.Fatal(err)
			}
		}
		t.Fatal("reader did not terminate")
	})
}

// BenchmarkAppend measures a durable append of one alert-sized record
// (each call fsyncs) and a batch of 64 records per fsync.
func BenchmarkAppend(b *testing.B) {
	rec := make([]byte, 700) // a typical alert JSON
	for i := range rec {
		rec[i] = 'a' + byte(i%26)
	}
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{MaxBytes: 1 << 40, SegmentBytes: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch := make([][]byte, n)
			for i := range batch {
				batch[i] = rec
			}
			b.SetBytes(int64(n * len(rec)))
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Append(batch...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
