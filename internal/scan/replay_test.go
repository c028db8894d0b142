package scan

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// onceReader fails the test if read after EOF or read twice from the start:
// it stands for a tar entry, which can be streamed only once.
type onceReader struct {
	r     io.Reader
	reads int
}

func (o *onceReader) Read(p []byte) (int, error) { o.reads++; return o.r.Read(p) }

func TestReplaySharesOneStream(t *testing.T) {
	content := strings.Repeat("0123456789", 1000)
	src := &onceReader{r: strings.NewReader(content)}
	rp := &replay{src: src, size: int64(len(content)), max: 1 << 20}
	in := &inventory.Input{Path: "usr/bin/x", Info: inventory.FileInfo{Size: int64(len(content))}}

	// First reader peeks 4 bytes only.
	a := rp.input(in)
	head := make([]byte, 4)
	if _, err := io.ReadFull(a.Reader, head); err != nil || string(head) != "0123" {
		t.Fatalf("first reader: %q, %v", head, err)
	}
	if rp.buf.Len() > 4 {
		t.Errorf("buffered %d bytes after a 4-byte peek", rp.buf.Len())
	}
	// Second reader reads everything from the start.
	b := rp.input(in)
	all, err := io.ReadAll(b.Reader)
	if err != nil || string(all) != content {
		t.Fatalf("second reader got %d bytes, %v", len(all), err)
	}
	// Third asks for random access.
	c := rp.input(in)
	ra, size, err := c.ReaderAt()
	if err != nil || size != int64(len(content)) {
		t.Fatalf("ReaderAt: %d, %v", size, err)
	}
	buf := make([]byte, 10)
	if _, err := ra.ReadAt(buf, 9990); err != nil || string(buf) != "0123456789" {
		t.Fatalf("ReadAt: %q, %v", buf, err)
	}
	// And a reader after random access still streams from the start.
	d := rp.input(in)
	all, _ = io.ReadAll(d.Reader)
	if !bytes.Equal(all, []byte(content)) {
		t.Fatalf("reader after ReaderAt got %d bytes", len(all))
	}
}

func TestReplayBoundsReaderAt(t *testing.T) {
	rp := &replay{src: strings.NewReader("abcdef"), size: 6, max: 4}
	in := &inventory.Input{Path: "x", Info: inventory.FileInfo{Size: 6}}
	r := rp.input(in)
	_, _ = r.Reader.Read(make([]byte, 2))
	if _, _, err := r.ReaderAt(); !errors.Is(err, inventory.ErrTooLarge) {
		t.Fatalf("ReaderAt of a file above the bound: %v, want ErrTooLarge", err)
	}
}

// TestReplayUsesWalkerBuffer: after a short peek (an extractor checking
// magic bytes), random access comes from the walker's ReaderAt, which keeps
// the peeked bytes and buffers the file once; the replay must not buffer a
// second copy. After a long read it has to buffer the rest itself.
func TestReplayUsesWalkerBuffer(t *testing.T) {
	content := strings.Repeat("0123456789abcdef", 8<<10) // 128 KiB
	for _, c := range []struct {
		name      string
		peek      int
		wantFull  bool
		maxBuffer int
	}{
		{"magic peek", 4, true, 4},
		{"peek at the walker's limit", peekKept, true, peekKept},
		{"long read", peekKept + 1, false, len(content)},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			// Stands in for image.Walk's ReaderAt, which serves the whole
			// file after up to peekKept bytes were read from its Reader.
			full := func() (io.ReaderAt, int64, error) {
				calls++
				return strings.NewReader(content), int64(len(content)), nil
			}
			rp := &replay{src: strings.NewReader(content), full: full, size: int64(len(content)), max: 1 << 20}
			in := &inventory.Input{Path: "usr/bin/x", Info: inventory.FileInfo{Size: int64(len(content))}}
			a := rp.input(in)
			if _, err := io.ReadFull(a.Reader, make([]byte, c.peek)); err != nil {
				t.Fatal(err)
			}
			ra, size, err := rp.input(in).ReaderAt()
			if err != nil || size != int64(len(content)) {
				t.Fatalf("ReaderAt: %d, %v", size, err)
			}
			if got := calls == 1; got != c.wantFull {
				t.Errorf("walker's ReaderAt called %d times, want it used: %v", calls, c.wantFull)
			}
			if rp.buf.Len() > c.maxBuffer {
				t.Errorf("replay buffered %d bytes, want at most %d", rp.buf.Len(), c.maxBuffer)
			}
			got, err := io.ReadAll(io.NewSectionReader(ra, 0, size))
			if err != nil || string(got) != content {
				t.Errorf("content through ReaderAt differs (%d bytes, %v)", len(got), err)
			}
			// A reader after random access still streams from the start.
			all, err := io.ReadAll(rp.input(in).Reader)
			if err != nil || string(all) != content {
				t.Errorf("reader after ReaderAt got %d bytes, %v", len(all), err)
			}
		})
	}
}
