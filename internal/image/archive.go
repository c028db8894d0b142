package image

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// blobStore gives read access to the files of an OCI layout or a docker
// save archive, by slash-separated path relative to its root.
type blobStore interface {
	open(name string) (io.ReadCloser, int64, error)
}

// dirStore reads a directory through os.Root, so no path — not even one
// through a symlink in the layout — can open a file outside it.
type dirStore struct{ root *os.Root }

func (s dirStore) open(name string) (io.ReadCloser, int64, error) {
	f, err := s.root.Open(name)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %s is not a regular file", ErrInvalid, name)
	}
	return f, st.Size(), nil
}

// maxArchiveEntries bounds the index of an archive. An OCI or docker
// archive holds a few files per layer.
const maxArchiveEntries = 100_000

// tarIndex gives random access to the regular files of an uncompressed tar
// archive without extracting it: one pass records where each file's data
// starts, and reads are then ReadAt calls on the archive file.
type tarIndex struct {
	f     *os.File
	files map[string]tarFile
	// links maps symlinks and hard links to their target path: older
	// `docker save` archives link duplicate layers to one file.
	links map[string]string
}

type tarFile struct{ off, size int64 }

func openTarIndex(name string) (*tarIndex, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	t, err := indexTar(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read archive %s: %w", name, err)
	}
	return t, nil
}

func indexTar(f *os.File) (*tarIndex, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file", ErrInvalid)
	}
	var magic [4]byte
	n, _ := f.ReadAt(magic[:], 0)
	if c := sniff(magic[:n]); c != compNone {
		return nil, fmt.Errorf("%w: the archive is %s-compressed; decompress it first", ErrInvalid, c)
	}
	t := &tarIndex{f: f, files: map[string]tarFile{}, links: map[string]string{}}
	// tar.Reader skips file data with Seek when it can, so indexing reads
	// only the headers.
	tr := tar.NewReader(f)
	for count := 0; ; count++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if count >= maxArchiveEntries {
			return nil, fmt.Errorf("%w: more than %d entries", ErrLimit, maxArchiveEntries)
		}
		p, ok := cleanPath(hdr.Name)
		if !ok || p == "" {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			target := hdr.Linkname
			if hdr.Typeflag == tar.TypeSymlink && !strings.HasPrefix(target, "/") {
				target = joinPath(parentDir(p), target)
			}
			if tp, ok := cleanPath(target); ok && tp != "" {
				t.links[p] = tp
			}
			continue
		}
		if hdr.Typeflag != tar.TypeReg || isSparse(hdr) {
			continue
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		if off+hdr.Size > st.Size() {
			return nil, fmt.Errorf("%w: %s is truncated", ErrInvalid, p)
		}
		t.files[p] = tarFile{off: off, size: hdr.Size}
	}
	return t, nil
}

func (t *tarIndex) lookup(name string) (tarFile, bool) {
	for range 8 { // links to links, not loops
		if tf, ok := t.files[name]; ok {
			return tf, true
		}
		next, ok := t.links[name]
		if !ok {
			break
		}
		name = next
	}
	return tarFile{}, false
}

func (t *tarIndex) open(name string) (io.ReadCloser, int64, error) {
	tf, ok := t.lookup(name)
	if !ok {
		return nil, 0, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return io.NopCloser(io.NewSectionReader(t.f, tf.off, tf.size)), tf.size, nil
}

func (t *tarIndex) Close() error { return t.f.Close() }

// readFile reads a small file of a store, bounded.
func readFile(s blobStore, name string, max int64) ([]byte, error) {
	rc, size, err := s.open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s is missing", ErrInvalid, name)
		}
		return nil, err
	}
	if size > max {
		rc.Close()
		return nil, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrLimit, name, size, max)
	}
	return readBounded(rc, name, max)
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 64<<10) }
