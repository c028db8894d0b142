package inventory

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ReadAll reads the whole file in hands. A file larger than limit bytes
// fails with ErrTooLarge: by its declared size before anything is read, and
// by the bytes actually streamed, since a file in a directory can grow
// while it is read. Extractors that parse a file whole read it with
// ReadAll, so that a hostile file cannot exhaust memory.
func ReadAll(in *Input, limit int64) ([]byte, error) {
	if in.Info.Size > limit {
		return nil, fmt.Errorf("%s: %d bytes, limit %d: %w", in.Path, in.Info.Size, limit, ErrTooLarge)
	}
	// Size the buffer from the declared size: small files are read by the
	// thousand (package.json), and io.ReadAll's doubling from 512 bytes
	// dominates their cost otherwise. bytes.Buffer wants MinRead spare
	// bytes.
	buf := bytes.NewBuffer(make([]byte, 0, max(in.Info.Size, 0)+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(in.Reader, limit+1)); err != nil {
		return nil, fmt.Errorf("read %s: %w", in.Path, err)
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes: %w", in.Path, limit, ErrTooLarge)
	}
	return buf.Bytes(), nil
}

// TrimBOM drops a leading UTF-8 byte order mark. Editors on Windows and
// some SDKs write one; the tools that read these files ignore it, and
// encoding/json does not.
func TrimBOM(b []byte) []byte {
	return bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
}

// LineReader yields the lines of a text database without their line
// ending, skipping (and counting) lines longer than a bound, so that a
// hostile file cannot make a parser buffer without limit. Its buffer starts
// small: most files read this way are a few KiB.
type LineReader struct {
	r        *bufio.Reader
	max      int
	long     []byte // a line longer than the bufio buffer, being assembled
	line     int    // number of the last line returned or skipped
	overlong int
	first    int // number of the first overlong line
}

// NewLineReader returns a LineReader of r that skips lines over maxLine
// bytes (16 at the least).
func NewLineReader(r io.Reader, maxLine int) *LineReader {
	maxLine = max(maxLine, 16)
	// Lines that fit the buffer are returned without a length check, so
	// the buffer must not be larger than the bound.
	return &LineReader{r: bufio.NewReaderSize(r, min(4096, maxLine)), max: maxLine}
}

// Next returns the next line without its "\n" or "\r\n". The slice is valid
// until the next call. At the end of the input it returns io.EOF; a read
// error is returned as is.
func (lr *LineReader) Next() ([]byte, error) {
	for {
		line, err := lr.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			lr.long = append(lr.long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) && len(lr.long) <= lr.max {
				line, err = lr.r.ReadSlice('\n')
				lr.long = append(lr.long, line...)
			}
			if len(lr.long) > lr.max {
				lr.line++
				lr.overlong++
				if lr.first == 0 {
					lr.first = lr.line
				}
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = lr.r.ReadSlice('\n')
				}
				if err != nil {
					return nil, err
				}
				continue
			}
			line = lr.long
		}
		if len(line) == 0 && err != nil {
			return nil, err
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		lr.line++
		line = bytes.TrimSuffix(line, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		return line, nil
	}
}

// Line is the number of the last line returned or skipped, from 1.
func (lr *LineReader) Line() int { return lr.line }

// Overlong reports how many lines were skipped for their length, and the
// number of the first.
func (lr *LineReader) Overlong() (n, first int) { return lr.overlong, lr.first }
