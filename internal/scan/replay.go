package scan

import (
	"bytes"
	"io"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// replay shares one stream among several sequential readers: what one reader
// consumed is kept and served again to the next, and only as much of the
// stream is read as the most curious reader asked for.
type replay struct {
	src  io.Reader
	buf  bytes.Buffer
	err  error // sticky error of src (io.EOF at the end)
	full func() (io.ReaderAt, int64, error)
	// max bounds what readerAt buffers (Limits.MaxFileSize).
	max int64
	// size is the file's size from its header.
	size int64

	// Once one reader asked for random access, the whole file is buffered
	// by the walker and shared.
	ra     io.ReaderAt
	raSize int64
	raErr  error
	raDone bool
}

// fill reads from src until buf holds at least n bytes or src is exhausted.
func (r *replay) fill(n int) {
	for r.buf.Len() < n && r.err == nil {
		_, r.err = r.buf.ReadFrom(io.LimitReader(r.src, int64(n-r.buf.Len())))
		if r.err == nil && r.buf.Len() < n {
			// ReadFrom returns nil at the LimitReader's EOF; probe the source.
			var one [1]byte
			m, err := r.src.Read(one[:])
			r.buf.Write(one[:m])
			if err != nil {
				r.err = err
			}
		}
	}
}

type replayReader struct {
	r   *replay
	off int
}

func (rr *replayReader) Read(p []byte) (int, error) {
	if rr.r.raDone && rr.r.ra != nil {
		if int64(rr.off) >= rr.r.raSize {
			return 0, io.EOF
		}
		n, err := rr.r.ra.ReadAt(p, int64(rr.off))
		rr.off += n
		if err == io.EOF && n > 0 {
			err = nil
		}
		return n, err
	}
	need := rr.off + len(p)
	rr.r.fill(need)
	b := rr.r.buf.Bytes()
	if rr.off >= len(b) {
		if rr.r.err != nil {
			return 0, rr.r.err
		}
		return 0, io.EOF
	}
	n := copy(p, b[rr.off:])
	rr.off += n
	return n, nil
}

// peekKept is how much may be read from a walker's Reader before its
// ReaderAt is called (image.Walk keeps those first bytes and serves the
// whole file; a directory walk reads the file itself).
const peekKept = 64 << 10

// readerAt buffers the whole file once. While the replay has read no more
// than peekKept bytes, the walker's ReaderAt buffers the file in its own
// reusable buffer; beyond that, the rest is read here instead. Buffering
// here after a peek (an ELF magic check) used to hold a big binary twice:
// once growing in buf, once more in the copy bytes.Buffer makes to grow.
func (r *replay) readerAt() (io.ReaderAt, int64, error) {
	if r.raDone {
		return r.ra, r.raSize, r.raErr
	}
	r.raDone = true
	if r.buf.Len() <= peekKept && r.err == nil && r.full != nil {
		r.ra, r.raSize, r.raErr = r.full()
		return r.ra, r.raSize, r.raErr
	}
	if r.max > 0 && r.size > r.max {
		r.raErr = inventory.ErrTooLarge
		return nil, 0, r.raErr
	}
	r.fill(int(r.size) + 1)
	if r.err != nil && r.err != io.EOF {
		r.raErr = r.err
		return nil, 0, r.raErr
	}
	b := r.buf.Bytes()
	r.ra, r.raSize = bytes.NewReader(b), int64(len(b))
	return r.ra, r.raSize, nil
}

func (r *replay) input(in *inventory.Input) *inventory.Input {
	return &inventory.Input{
		Path:     in.Path,
		Info:     in.Info,
		Reader:   &replayReader{r: r},
		ReaderAt: r.readerAt,
	}
}
