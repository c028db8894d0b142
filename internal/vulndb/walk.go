package vulndb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/klauspost/compress/zip"
)

// Limits bound what one input may cost. Zero fields take the defaults.
type Limits struct {
	// MaxRecordBytes bounds one file (record) read from an input (default
	// and maximum MaxRecordSize).
	MaxRecordBytes int64
	// MaxTotalBytes bounds the bytes read from one input after
	// decompression (default 4 GiB): zip bombs stop here.
	MaxTotalBytes int64
	// MaxFiles bounds the files one input may list (default 2,000,000).
	MaxFiles int
	// MaxNestedZipBytes bounds a zip inside a zip, which is read into
	// memory (default 512 MiB).
	MaxNestedZipBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxRecordBytes <= 0 || l.MaxRecordBytes > MaxRecordSize {
		l.MaxRecordBytes = MaxRecordSize
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = 4 << 30
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = 2_000_000
	}
	if l.MaxNestedZipBytes <= 0 {
		l.MaxNestedZipBytes = 512 << 20
	}
	return l
}

// errTooLarge is returned for a file over MaxRecordBytes: that record is
// skipped. errInputTooLarge is returned once an input's total passes
// MaxTotalBytes: the whole input is refused.
var (
	errTooLarge      = errors.New("file too large")
	errInputTooLarge = errors.New("input too large")
)

// inputFile is one regular file inside an input (a directory, a zip, or
// the input file itself).
type inputFile struct {
	// rel is the slash-separated path inside the input; it is only ever
	// used to classify files and name them in errors, never to write, so a
	// hostile zip name ("../../x") can do no harm.
	rel  string
	size int64 // as declared; the read is bounded regardless
	open func() (io.ReadCloser, error)
}

// inputSet is the listing of one input.
type inputSet struct {
	path      string
	files     []inputFile
	single    bool // the input is one plain file
	closer    []io.Closer
	limits    Limits
	bytesRead atomic.Int64 // bytes read so far, against MaxTotalBytes
}

func (s *inputSet) Close() error {
	var errs []error
	for _, c := range s.closer {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// skipPath reports paths that never hold advisories: hidden files and
// directories (.github, .id-allocator), test fixtures (testdata), macOS zip
// litter.
func skipPath(rel string) bool {
	for _, seg := range strings.Split(rel, "/") {
		if seg == "testdata" || seg == "__MACOSX" || (strings.HasPrefix(seg, ".") && seg != "." && seg != "..") {
			return true
		}
	}
	return false
}

// listInput lists the files of path: a directory (walked without following
// symlinks), a zip file, or a single file. Zips inside directories and zips
// inside zips (one level, bounded in memory) are opened as well.
func listInput(ctx context.Context, p string, limits Limits) (*inputSet, error) {
	limits = limits.withDefaults()
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	s := &inputSet{path: p, limits: limits}
	switch {
	case st.IsDir():
		err = s.walkDir(ctx, p)
	case isZipName(p):
		err = s.addZipFile(ctx, p, "")
	default:
		s.single = true
		s.files = []inputFile{{rel: filepath.Base(p), size: st.Size(), open: func() (io.ReadCloser, error) { return os.Open(p) }}}
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func isZipName(name string) bool { return strings.EqualFold(path.Ext(name), ".zip") }

func (s *inputSet) add(f inputFile) error {
	if len(s.files) >= s.limits.MaxFiles {
		return fmt.Errorf("input %s: more than %d files", s.path, s.limits.MaxFiles)
	}
	s.files = append(s.files, f)
	return nil
}

func (s *inputSet) walkDir(ctx context.Context, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk %s: %w", p, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel != "." && skipPath(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // directories are walked; symlinks and devices are not followed
		}
		if isZipName(p) {
			return s.addZipFile(ctx, p, rel+"!")
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		return s.add(inputFile{rel: rel, size: info.Size(), open: func() (io.ReadCloser, error) { return os.Open(p) }})
	})
}

func (s *inputSet) addZipFile(ctx context.Context, p, prefix string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("open zip %s: %w", p, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat zip %s: %w", p, err)
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		f.Close()
		return fmt.Errorf("open zip %s: %w", p, err)
	}
	s.closer = append(s.closer, f)
	return s.addZip(ctx, zr, prefix, 0)
}

// addZip lists a zip's files. Entry names are never used as file system
// paths, so "zip slip" names are harmless; they are listed like any other.
func (s *inputSet) addZip(ctx context.Context, zr *zip.Reader, prefix string, depth int) error {
	for _, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		if zf.FileInfo().IsDir() || !zf.Mode().IsRegular() {
			continue
		}
		rel := prefix + strings.TrimPrefix(path.Clean("/"+zf.Name), "/")
		if skipPath(zf.Name) {
			continue
		}
		if isZipName(zf.Name) {
			if depth >= 1 {
				continue // deeper nesting is not a layout any database uses
			}
			data, err := s.readZipEntry(zf, s.limits.MaxNestedZipBytes)
			if err != nil {
				return fmt.Errorf("read nested zip %s: %w", rel, err)
			}
			inner, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
			if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
				return fmt.Errorf("open nested zip %s: %w", rel, err)
			}
			if err := s.addZip(ctx, inner, rel+"!", depth+1); err != nil {
				return err
			}
			continue
		}
		zf := zf
		if err := s.add(inputFile{rel: rel, size: int64(zf.UncompressedSize64), open: func() (io.ReadCloser, error) { return zf.Open() }}); err != nil {
			return err
		}
	}
	return nil
}

func (s *inputSet) readZipEntry(zf *zip.File, limit int64) ([]byte, error) {
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return s.readBounded(rc, limit)
}

// readBounded reads at most limit bytes (errTooLarge beyond), whatever a
// zip header declared, and charges them to the input's total.
func (s *inputSet) readBounded(r io.Reader, limit int64) ([]byte, error) {
	remaining := s.limits.MaxTotalBytes - s.bytesRead.Load()
	if remaining <= 0 {
		return nil, fmt.Errorf("%w: %s: more than %d bytes after decompression", errInputTooLarge, s.path, s.limits.MaxTotalBytes)
	}
	data, err := io.ReadAll(io.LimitReader(r, min(limit, remaining)+1))
	s.bytesRead.Add(int64(len(data)))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > remaining {
		return nil, fmt.Errorf("%w: %s: more than %d bytes after decompression", errInputTooLarge, s.path, s.limits.MaxTotalBytes)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: over %d bytes", errTooLarge, limit)
	}
	return data, nil
}

// read returns the content of f, bounded by MaxRecordBytes.
func (s *inputSet) read(f inputFile) ([]byte, error) {
	if f.size > s.limits.MaxRecordBytes {
		return nil, fmt.Errorf("%w: %d bytes, over %d", errTooLarge, f.size, s.limits.MaxRecordBytes)
	}
	rc, err := f.open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return s.readBounded(rc, s.limits.MaxRecordBytes)
}
