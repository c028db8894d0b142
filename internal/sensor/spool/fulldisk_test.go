package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/fsutil/fulldisk"
)

// TestFullDisk runs the spool on a real filesystem that fills up (a tmpfs
// smaller than MaxBytes, so the disk and not the spool's own cap is what
// runs out): Append fails with ENOSPC and never panics; what was appended
// before is delivered in order; acknowledging it needs no space, so the
// spool frees the disk by itself and takes new records again without a
// restart; a restart on a still-full disk opens and delivers.
func TestFullDisk(t *testing.T) {
	disk := fulldisk.Mount(t, 1<<20)
	dir := filepath.Join(disk.Dir, "spool")
	opts := Options{MaxBytes: 64 << 20, SegmentBytes: 64 << 10}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(i int) []byte { return fmt.Appendf(nil, `{"id":"%06d","pad":"%0900d"}`, i, 0) }
	n := 0
	var appendErr error
	for n < 5000 {
		if appendErr = s.Append(rec(n)); appendErr != nil {
			break
		}
		n++
	}
	if !errors.Is(appendErr, syscall.ENOSPC) || errors.Is(appendErr, ErrFull) {
		t.Fatalf("after %d records: Append error %v, want ENOSPC from the disk", n, appendErr)
	}
	if n < 100 {
		t.Fatalf("only %d records fit on a 1 MiB disk", n)
	}
	// Still full: more appends fail cleanly (no segment file left half made).
	for i := range 20 {
		if err := s.Append(rec(n + i)); err == nil {
			t.Fatalf("append %d on a full disk succeeded", i)
		}
	}

	// Deliver half: the ack is written on the full disk, and the delivered
	// segments are deleted.
	var got []string
	for len(got) < n/2 {
		rs, pos, err := s.Read(50, 1<<20)
		if err != nil || len(rs) == 0 {
			t.Fatalf("read: %d records, %v", len(rs), err)
		}
		if err := s.Ack(pos); err != nil {
			t.Fatalf("ack on a full disk: %v", err)
		}
		got = append(got, strs(rs)...)
	}
	if free := disk.Free(); free < 64<<10 {
		t.Fatalf("acknowledging %d records freed only %d bytes", len(got), free)
	}
	// Room again: new records are taken without a restart.
	if err := s.Append(rec(100000)); err != nil {
		t.Fatalf("append after delivery freed space: %v", err)
	}
	s.Close()

	// Fill the disk again, then restart on it: Open works and delivers
	// everything not acknowledged, in order.
	disk.Fill(0)
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatalf("open on a full disk: %v", err)
	}
	defer s.Close()
	got = append(got, drain(t, s, 64)...)
	var want []string
	for i := range n {
		want = append(want, string(rec(i)))
	}
	want = append(want, string(rec(100000)))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("delivered (-want +got):\n%s", diff)
	}
	if st := s.Stats(); st.CorruptRecords > 1 {
		// At most the record torn by the write that hit ENOSPC.
		t.Errorf("stats after reopen: %+v", st)
	}
	disk.Unfill()
	if err := s.Append(rec(200000)); err != nil {
		t.Fatalf("append after the disk was freed: %v", err)
	}
	if got := drain(t, s, 64); len(got) != 1 || got[0] != string(rec(200000)) {
		t.Fatalf("after freeing: %v", got)
	}
}

// The ack file: the older one-line format is read (and rewritten in the
// slot format); a torn or damaged newest slot falls back to the previous
// position (a replay, never a skip); damage everywhere means "from the
// start".
func TestAckFile(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(recs(0, 20)...); err != nil {
		t.Fatal(err)
	}
	rs, p5, _ := s.Read(5, 1<<20)
	if len(rs) != 5 || s.Ack(p5) != nil {
		t.Fatal("ack 5")
	}
	rs, p8, _ := s.Read(3, 1<<20)
	if len(rs) != 3 || s.Ack(p8) != nil {
		t.Fatal("ack 8")
	}
	s.Close()
	ackPath := filepath.Join(dir, ackName)
	reopen := func() []string {
		t.Helper()
		s, err := Open(dir, Options{SegmentBytes: 200})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		rs, _, err := s.Read(100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		return strs(rs)
	}
	if got := reopen(); len(got) != 12 || got[0] != string(recs(8, 9)[0]) {
		t.Fatalf("after acks: %v", got)
	}
	// Tear the newest slot (generation 3 sits in slot 1): back to record 5.
	b, _ := os.ReadFile(ackPath)
	if len(b) != 2*ackSlot {
		t.Fatalf("ack file is %d bytes", len(b))
	}
	b[ackSlot+20] ^= 0xff
	os.WriteFile(ackPath, b, 0o600)
	if got := reopen(); len(got) != 15 || got[0] != string(recs(5, 6)[0]) {
		t.Fatalf("torn newest slot: %v", got)
	}
	// The older format written by earlier versions.
	os.WriteFile(ackPath, fmt.Appendf(nil, "%d %d\n", p8.Seg, p8.Off), 0o600)
	if got := reopen(); len(got) != 12 || got[0] != string(recs(8, 9)[0]) {
		t.Fatalf("one-line ack file: %v", got)
	}
	if b, _ := os.ReadFile(ackPath); len(b) != 2*ackSlot {
		t.Fatalf("the one-line ack file was not rewritten in slots: %q", b)
	}
	// Both slots damaged: everything is replayed.
	os.WriteFile(ackPath, make([]byte, 2*ackSlot), 0o600)
	if got := reopen(); len(got) != 20 {
		t.Fatalf("damaged ack file: %d records, want all 20", len(got))
	}
}

// FuzzAckFile opens a spool whose ack file holds arbitrary bytes: no panic,
// and the position is either one that was written or the start.
func FuzzAckFile(f *testing.F) {
	f.Add([]byte("1 8\n"))
	f.Add(append(encodeAckSlot(1, Position{Seg: 1, Off: 8}), make([]byte, ackSlot)...))
	f.Add(append(encodeAckSlot(7, Position{Seg: 1 << 62, Off: 1 << 62}), encodeAckSlot(8, Position{Seg: 2, Off: 3})...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, ackName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(d, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Append(recs(0, 1)...); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Read(10, 1<<20); err != nil {
			t.Fatal(err)
		}
	})
}
