package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"slices"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Sentinel errors callers can branch on with errors.Is.
var (
	// ErrLimit means a bound of Limits (or of the manifest/config size) was
	// exceeded. The walk stops: the image is treated as hostile or broken.
	ErrLimit = errors.New("limit exceeded")
	// ErrDigestMismatch means a blob's content does not match the digest the
	// manifest (or the config's diff_ids) promised.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrUnsafePath is the error of a FileError for a tar entry whose path or
	// hard-link target escapes the image root, or is longer than PATH_MAX.
	// The entry is skipped.
	ErrUnsafePath = errors.New("path escapes the root")
	// ErrNoPlatform means a multi-platform image has no image for the
	// requested platform; the error message lists the available ones.
	ErrNoPlatform = errors.New("no image for the requested platform")
	// ErrInvalid means a manifest, config or archive is malformed.
	ErrInvalid = errors.New("invalid image")
)

// Limits bound what a walk reads. A zero field takes the value of
// DefaultLimits; a negative field means no bound.
type Limits struct {
	// MaxLayerBytes bounds the decompressed size of one layer, and
	// MaxTotalBytes that of all layers together. They are what stops a
	// decompression bomb: the walk fails as soon as one is exceeded.
	MaxLayerBytes int64
	MaxTotalBytes int64
	// MaxFiles bounds the number of tar entries (or directory entries) read.
	MaxFiles int
	// MaxFileSize bounds the size of one file buffered in memory for
	// inventory.Input.ReaderAt; beyond it ReaderAt returns
	// inventory.ErrTooLarge and the file is still streamable through Reader.
	MaxFileSize int64
}

// DefaultLimits are generous enough for large real images (machine-learning
// images have layers of several GB) and still stop a bomb before it fills
// the disk or the memory of a CI runner.
func DefaultLimits() Limits {
	return Limits{
		MaxLayerBytes: 10 << 30,
		MaxTotalBytes: 50 << 30,
		MaxFiles:      2_000_000,
		MaxFileSize:   256 << 20,
	}
}

func (l Limits) normalize() Limits {
	d := DefaultLimits()
	fix := func(v, def int64) int64 {
		switch {
		case v == 0:
			return def
		case v < 0:
			return math.MaxInt64
		}
		return v
	}
	l.MaxLayerBytes = fix(l.MaxLayerBytes, d.MaxLayerBytes)
	l.MaxTotalBytes = fix(l.MaxTotalBytes, d.MaxTotalBytes)
	l.MaxFileSize = fix(l.MaxFileSize, d.MaxFileSize)
	l.MaxFiles = int(fix(int64(l.MaxFiles), int64(d.MaxFiles)))
	return l
}

// Entry is the result extract returned for one file that is still present
// in the final filesystem.
type Entry[T any] struct {
	// Path is slash-separated, cleaned and relative to the root.
	Path string
	// Layer is the digest of the layer that holds the file ("" for a
	// directory walk); LayerIndex its position, 0 being the base layer.
	Layer      string
	LayerIndex int
	Value      T
}

// FileError is a problem with one entry that did not stop the walk: an
// unsafe path, an invalid whiteout, or an extract error for a file still
// present in the final filesystem. At most 1000 entry errors are listed;
// a last FileError with an empty Path counts the rest.
type FileError struct {
	Path       string
	Layer      string
	LayerIndex int
	Err        error
}

func (e FileError) Error() string {
	if e.Layer == "" {
		return fmt.Sprintf("%s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("%s (layer %s): %v", e.Path, e.Layer, e.Err)
}

func (e FileError) Unwrap() error { return e.Err }

// Walk reads the layers of img in order, each once, streaming, and returns
// what extract found in the files that survive the layer stack, sorted by
// path.
//
// For every regular file of every layer, required is called with its path
// (see inventory.Input.Path); when it returns true the file is handed to
// extract. The Input (Reader and ReaderAt included) is valid only during
// that call: its buffers are reused for the next file. ReaderAt may be
// called after reading at most 64 KiB from Reader.
//
// Results follow the files: a file in a later layer at the same path
// replaces the earlier result even if it is not required; whiteouts and
// opaque directories remove results of lower layers (never of their own);
// a file or symlink replacing a directory removes results below it. A hard
// link to a file with a result yields a copy of that result at the link's
// path (the Value is copied as is, so any location inside it still names
// the target). Symlinks are never followed.
//
// Per-file problems are returned as FileErrors. Anything that makes the
// layer stream itself untrustworthy — a limit exceeded, truncated or
// corrupt compressed data, a digest mismatch, ctx cancelled — fails the
// whole walk with an error naming the layer, and no results are returned.
//
// progress, when not nil, is called with the compressed bytes read so far
// and the compressed size of all layers.
func Walk[T any](ctx context.Context, img *Image, lim Limits,
	required func(path string, info inventory.FileInfo) bool,
	extract func(ctx context.Context, in *inventory.Input) (T, error),
	progress func(done, total int64),
) ([]Entry[T], []FileError, error) {
	w := newWalker(lim, required, extract)
	w.progress = progress
	for _, s := range img.srcs {
		w.progressTotal += s.info.Size
	}
	defer w.close()
	for i := range img.srcs {
		if err := w.walkLayer(ctx, i, &img.srcs[i]); err != nil {
			return nil, nil, err
		}
	}
	entries, errs := w.results()
	return entries, errs, nil
}

// record is what is known about one required file: extract's value or error.
type record[T any] struct {
	layer int
	val   T
	err   error
}

type walker[T any] struct {
	lim      Limits
	required func(string, inventory.FileInfo) bool
	extract  func(context.Context, *inventory.Input) (T, error)
	progress func(done, total int64)

	files                       int
	totalBytes                  int64 // decompressed, all layers
	progressDone, progressTotal int64 // compressed

	// state holds the records of the layers below the current one that are
	// still visible; lowerDirs the directories holding them.
	state     map[string]*record[T]
	lowerDirs map[string]struct{}
	layers    []string // digest by layer index
	errs      []FileError
	moreErrs  int // beyond maxFileErrors

	// Reused across layers and files to keep allocation low.
	br       *bufio.Reader
	gz       *gzip.Reader
	zd       *zstd.Decoder
	file     fileReader
	readerAt func() (io.ReaderAt, int64, error)
	in       inventory.Input
}

func newWalker[T any](lim Limits, required func(string, inventory.FileInfo) bool,
	extract func(context.Context, *inventory.Input) (T, error)) *walker[T] {
	w := &walker[T]{
		lim:      lim.normalize(),
		required: required,
		extract:  extract,
		state:    map[string]*record[T]{},
	}
	w.file.max = w.lim.MaxFileSize
	w.readerAt = w.file.readerAt
	return w
}

func (w *walker[T]) close() {
	if w.zd != nil {
		w.zd.Close()
	}
}

// layerDelta is what one layer changes in the stack. Only what can affect
// the records of lower layers is tracked, so the cost per entry stays a few
// map lookups.
type layerDelta[T any] struct {
	idx    int
	digest string
	// recs are this layer's records.
	recs map[string]*record[T]
	// shadow: lower record paths replaced by an entry of this layer (or made
	// a directory by one). nondirs: directories of lower records replaced by
	// a non-directory. whiteouts hide a path and everything below it;
	// opaques everything strictly below a directory.
	shadow, nondirs, whiteouts, opaques map[string]struct{}
	// links are hard links (path → target) whose target is not a record of
	// this layer; they are resolved against the lower layers at the end.
	links map[string]string

	lastDir   string
	lastDirOK bool
}

func set(m *map[string]struct{}, k string) {
	if *m == nil {
		*m = map[string]struct{}{}
	}
	(*m)[k] = struct{}{}
}

func has(m map[string]struct{}, k string) bool {
	_, ok := m[k]
	return ok
}

// see records that this layer has an entry at p.
func (w *walker[T]) see(d *layerDelta[T], p string, isDir bool) {
	if len(d.recs) > 0 {
		delete(d.recs, p)
	}
	if len(d.links) > 0 {
		delete(d.links, p)
	}
	if len(w.state) == 0 {
		return
	}
	if _, ok := w.state[p]; ok {
		set(&d.shadow, p)
	}
	if !isDir && has(w.lowerDirs, p) {
		set(&d.nondirs, p)
	}
	w.seeParents(d, parentDir(p))
}

// seeParents records that this layer has directory dir and its parents: an
// entry implies them, and a lower file at one of them is replaced by a
// directory. Entries come grouped by directory, so checking each directory
// once in a row is enough.
func (w *walker[T]) seeParents(d *layerDelta[T], dir string) {
	if len(w.state) == 0 || (d.lastDirOK && dir == d.lastDir) {
		return
	}
	d.lastDir, d.lastDirOK = dir, true
	for a := dir; a != ""; a = parentDir(a) {
		if _, ok := w.state[a]; ok {
			set(&d.shadow, a)
		}
	}
}

// hides reports whether layer d removes the lower record at p.
func (d *layerDelta[T]) hides(p string) bool {
	if has(d.shadow, p) || has(d.whiteouts, p) {
		return true
	}
	for a := p; a != ""; {
		a = parentDir(a)
		if has(d.opaques, a) {
			return true
		}
		if a != "" && (has(d.whiteouts, a) || has(d.nondirs, a)) {
			return true
		}
	}
	return false
}

// apply merges layer d into the stack.
func (w *walker[T]) apply(d *layerDelta[T]) {
	if len(w.state) > 0 && len(d.shadow)+len(d.nondirs)+len(d.whiteouts)+len(d.opaques) > 0 {
		for p := range w.state {
			if d.hides(p) {
				delete(w.state, p)
			}
		}
	}
	for p, target := range d.links {
		if r, ok := w.state[target]; ok && r.err == nil {
			if d.recs == nil {
				d.recs = map[string]*record[T]{}
			}
			d.recs[p] = &record[T]{layer: d.idx, val: r.val}
		}
	}
	for p, r := range d.recs {
		w.state[p] = r
	}
	// Directories of the records, for the next layer's checks.
	clear(w.lowerDirs)
	for p := range w.state {
		for a := parentDir(p); a != ""; a = parentDir(a) {
			if has(w.lowerDirs, a) {
				break
			}
			set(&w.lowerDirs, a)
		}
	}
}

// maxFileErrors bounds the entry errors kept (a hostile layer can hold
// millions of bad entries); the rest are counted.
const maxFileErrors = 1000

// maxPath is Linux's PATH_MAX: no real file has a longer path, and the
// bound keeps what the walk holds per entry small.
const maxPath = 4096

func (w *walker[T]) fileErr(d *layerDelta[T], p string, err error) {
	if len(w.errs) >= maxFileErrors {
		w.moreErrs++
		return
	}
	if len(p) > 256 {
		p = p[:256] + "…"
	}
	w.errs = append(w.errs, FileError{Path: p, Layer: d.digest, LayerIndex: d.idx, Err: err})
}

// readTar reads one layer's tar stream into d.
func (w *walker[T]) readTar(ctx context.Context, d *layerDelta[T], tr *tar.Reader) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		w.files++
		if w.files > w.lim.MaxFiles {
			return fmt.Errorf("%w: more than %d entries", ErrLimit, w.lim.MaxFiles)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		p, ok := cleanPath(hdr.Name)
		if !ok {
			w.fileErr(d, hdr.Name, ErrUnsafePath)
			continue
		}
		if len(p) > maxPath {
			w.fileErr(d, p, fmt.Errorf("path longer than %d bytes: %w", maxPath, ErrUnsafePath))
			continue
		}
		if p == "" {
			continue // the root directory itself
		}
		dir, base := parentDir(p), p[strings.LastIndexByte(p, '/')+1:]
		if strings.HasPrefix(base, ".wh.") {
			w.seeParents(d, dir)
			w.whiteout(d, p, dir, base)
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			w.see(d, p, true)
		case tar.TypeReg:
			w.see(d, p, false)
			if isSparse(hdr) {
				// Sparse entries can expand to far more than they weigh;
				// no package database or binary is stored sparse.
				continue
			}
			info := inventory.FileInfo{Size: hdr.Size, Mode: tarMode(hdr)}
			if !w.required(p, info) {
				continue
			}
			val, err := w.call(ctx, p, info, tr)
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if d.recs == nil {
				d.recs = map[string]*record[T]{}
			}
			d.recs[p] = &record[T]{layer: d.idx, val: val, err: err}
		case tar.TypeLink:
			w.see(d, p, false)
			t, ok := cleanPath(hdr.Linkname)
			if !ok || t == "" {
				w.fileErr(d, p, fmt.Errorf("hard link to %q: %w", hdr.Linkname, ErrUnsafePath))
				continue
			}
			if r, ok := d.recs[t]; ok {
				if r.err == nil {
					d.recs[p] = &record[T]{layer: d.idx, val: r.val}
				}
			} else if _, ok := w.state[t]; ok {
				if d.links == nil {
					d.links = map[string]string{}
				}
				d.links[p] = t
			}
		default:
			// Symlinks, devices, fifos, sparse files: present in the
			// filesystem (so they replace what was below), never read.
			w.see(d, p, false)
		}
	}
}

// whiteout records a whiteout entry. Only those that hide a lower record
// are kept, so a layer of a million whiteouts costs no memory.
func (w *walker[T]) whiteout(d *layerDelta[T], p, dir, base string) {
	switch {
	case base == ".wh..wh..opq":
		if len(w.state) > 0 && (dir == "" || has(w.lowerDirs, dir)) {
			set(&d.opaques, dir)
		}
	case strings.HasPrefix(base, ".wh..wh."):
		// Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not files.
	default:
		name := base[len(".wh."):]
		if name == "" || name == "." || name == ".." {
			w.fileErr(d, p, fmt.Errorf("invalid whiteout: %w", ErrUnsafePath))
			return
		}
		if len(w.state) == 0 {
			return
		}
		target := joinPath(dir, name)
		if _, ok := w.state[target]; ok || has(w.lowerDirs, target) {
			set(&d.whiteouts, target)
		}
	}
}

// call hands one file to extract, turning a panic into an error so that one
// hostile file cannot take the whole scan down.
func (w *walker[T]) call(ctx context.Context, p string, info inventory.FileInfo, r io.Reader) (val T, err error) {
	w.file.reset(r, info.Size)
	w.in = inventory.Input{Path: p, Info: info, Reader: &w.file, ReaderAt: w.readerAt}
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("extract panicked: %v", x)
		}
	}()
	return w.extract(ctx, &w.in)
}

func (w *walker[T]) results() ([]Entry[T], []FileError) {
	entries := make([]Entry[T], 0, len(w.state))
	errs := w.errs
	if w.moreErrs > 0 {
		errs = append(errs, FileError{LayerIndex: len(w.layers), Err: fmt.Errorf("%d more entries skipped as unsafe", w.moreErrs)})
	}
	for p, r := range w.state {
		layer := ""
		if r.layer < len(w.layers) {
			layer = w.layers[r.layer]
		}
		if r.err != nil {
			errs = append(errs, FileError{Path: p, Layer: layer, LayerIndex: r.layer, Err: r.err})
			continue
		}
		entries = append(entries, Entry[T]{Path: p, Layer: layer, LayerIndex: r.layer, Value: r.val})
	}
	slices.SortFunc(entries, func(a, b Entry[T]) int { return strings.Compare(a.Path, b.Path) })
	slices.SortStableFunc(errs, func(a, b FileError) int {
		if a.LayerIndex != b.LayerIndex {
			return a.LayerIndex - b.LayerIndex
		}
		return strings.Compare(a.Path, b.Path)
	})
	return entries, errs
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// tarMode is the fs.FileMode of a regular file entry, without the allocation
// of hdr.FileInfo(): required is called for every file.
func tarMode(hdr *tar.Header) fs.FileMode {
	m := fs.FileMode(hdr.Mode).Perm()
	if hdr.Mode&04000 != 0 {
		m |= fs.ModeSetuid
	}
	if hdr.Mode&02000 != 0 {
		m |= fs.ModeSetgid
	}
	if hdr.Mode&01000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// fileReader is the Reader and ReaderAt of inventory.Input over a stream.
// It keeps the first bytes handed out by Read so that ReaderAt can still
// buffer the whole file after an extractor peeked at its magic bytes.
type fileReader struct {
	r         io.Reader
	size, max int64
	buf       []byte
	read      int64
	recording bool // buf holds every byte read so far
	buffered  bool // ReaderAt was called; buf holds the whole file
	at        bytes.Reader
}

// maxPeek is how much an extractor may read through Reader before calling
// ReaderAt.
const maxPeek = 64 << 10

// maxKeptBuffer is the largest buffer kept for the next file; larger ones
// are dropped so one big binary does not pin its size for the whole scan.
const maxKeptBuffer = 32 << 20

func (f *fileReader) reset(r io.Reader, size int64) {
	f.r, f.size, f.read = r, size, 0
	if cap(f.buf) > maxKeptBuffer {
		f.buf = nil
	}
	f.buf = f.buf[:0]
	f.recording, f.buffered = true, false
	f.at.Reset(nil)
}

var errReadAfterReaderAt = errors.New("read from Input.Reader after Input.ReaderAt")

func (f *fileReader) Read(p []byte) (int, error) {
	if f.buffered {
		return 0, errReadAfterReaderAt
	}
	n, err := f.r.Read(p)
	if f.recording {
		if len(f.buf)+n <= maxPeek {
			f.buf = append(f.buf, p[:n]...)
		} else {
			f.recording = false
		}
	}
	f.read += int64(n)
	return n, err
}

func (f *fileReader) readerAt() (io.ReaderAt, int64, error) {
	if f.buffered {
		return &f.at, f.size, nil
	}
	if f.size > f.max {
		return nil, 0, fmt.Errorf("%w: %d bytes, limit %d", inventory.ErrTooLarge, f.size, f.max)
	}
	if !f.recording {
		return nil, 0, fmt.Errorf("ReaderAt called after reading more than %d bytes from Reader", maxPeek)
	}
	n := int(f.size)
	if cap(f.buf) < n {
		nb := make([]byte, len(f.buf), n)
		copy(nb, f.buf)
		f.buf = nb
	}
	f.buf = f.buf[:n]
	if _, err := io.ReadFull(f.r, f.buf[f.read:]); err != nil {
		return nil, 0, fmt.Errorf("buffer file: %w", err)
	}
	f.buffered = true
	f.at.Reset(f.buf)
	return &f.at, f.size, nil
}

// verifyMode says what a layer's bytes are checked against while streaming.
type verifyMode int

const (
	// verifyNone: the source verifies the digest itself (go-containerregistry's
	// remote layers check it when the body is read to EOF, which Walk does).
	verifyNone verifyMode = iota
	// verifyBlob: hash the stored (compressed) bytes against Layer.Digest
	// and check their size.
	verifyBlob
	// verifyDiffID: hash the decompressed tar against Layer.DiffID (docker
	// save archives, whose manifest has no compressed digests).
	verifyDiffID
)

// layerSource is one layer as Walk reads it.
type layerSource struct {
	info   Layer
	open   func() (io.ReadCloser, error)
	verify verifyMode
}

// compression kinds, told apart by magic bytes.
const (
	compNone = "uncompressed"
	compGzip = "gzip"
	compZstd = "zstd"
)

func sniff(b []byte) string {
	switch {
	case len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b:
		return compGzip
	case len(b) >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd:
		return compZstd
	}
	return compNone
}

// walkLayer streams layer idx: blob → (digest) → decompressor → bounds →
// (diffID) → tar.
func (w *walker[T]) walkLayer(ctx context.Context, idx int, src *layerSource) (err error) {
	comp := ""
	defer func() {
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("%w (truncated or corrupt)", err)
			}
			if comp != "" {
				err = fmt.Errorf("layer %d %s (%s): %w", idx, src.info.Digest, comp, err)
			} else {
				err = fmt.Errorf("layer %d %s: %w", idx, src.info.Digest, err)
			}
		}
	}()
	w.layers = append(w.layers, src.info.Digest)
	d := &layerDelta[T]{idx: idx, digest: src.info.Digest}

	rc, err := src.open()
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer rc.Close()

	cr := &countReader{r: rc, ctx: ctx, max: src.info.Size}
	if w.progress != nil {
		cr.progress = func(n int64) {
			w.progressDone += n
			w.progress(w.progressDone, w.progressTotal)
		}
	}
	var blob io.Reader = cr
	var h hash.Hash
	want := src.info.Digest
	if src.verify == verifyDiffID {
		want = src.info.DiffID
	}
	if src.verify != verifyNone {
		wh, err := v1.NewHash(want)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if h, err = v1.Hasher(wh.Algorithm); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if src.verify == verifyBlob {
		blob = io.TeeReader(cr, h)
	}
	if w.br == nil {
		w.br = bufio.NewReaderSize(blob, 256<<10)
	} else {
		w.br.Reset(blob)
	}
	magic, _ := w.br.Peek(4) // short or empty blobs are left to tar to reject
	comp = sniff(magic)
	var dec io.Reader
	switch comp {
	case compGzip:
		if w.gz == nil {
			w.gz, err = gzip.NewReader(w.br)
		} else {
			err = w.gz.Reset(w.br)
		}
		if err != nil {
			return fmt.Errorf("gzip header: %w", err)
		}
		dec = w.gz
	case compZstd:
		if w.zd == nil {
			w.zd, err = zstd.NewReader(w.br, zstd.WithDecoderMaxWindow(128<<20), zstd.WithDecoderConcurrency(1))
		} else {
			err = w.zd.Reset(w.br)
		}
		if err != nil {
			return fmt.Errorf("zstd header: %w", err)
		}
		dec = w.zd
	default:
		dec = w.br
	}
	lr := &limitReader{r: dec, ctx: ctx, layerMax: w.lim.MaxLayerBytes, totalMax: w.lim.MaxTotalBytes, total: &w.totalBytes}
	var plain io.Reader = lr
	if src.verify == verifyDiffID {
		plain = io.TeeReader(lr, h)
	}
	if err := w.readTar(ctx, d, tar.NewReader(plain)); err != nil {
		return err
	}
	// Read to the end: the gzip/zstd checksums, the digest and the bounds
	// cover the whole blob, not just the tar entries before its end marker.
	if _, err := io.Copy(io.Discard, plain); err != nil {
		return fmt.Errorf("read after tar end: %w", err)
	}
	if comp != compNone {
		if _, err := io.Copy(io.Discard, w.br); err != nil {
			return fmt.Errorf("read after compressed end: %w", err)
		}
	}
	if h != nil {
		got := hex.EncodeToString(h.Sum(nil))
		if got != want[strings.IndexByte(want, ':')+1:] {
			return fmt.Errorf("%w: content hashes to %s, want %s", ErrDigestMismatch, got, want)
		}
		if src.verify == verifyBlob && cr.n != src.info.Size {
			return fmt.Errorf("%w: blob has %d bytes, manifest says %d", ErrDigestMismatch, cr.n, src.info.Size)
		}
	}
	w.apply(d)
	return nil
}

// countReader counts the stored bytes of a layer, reports progress,
// notices cancellation between reads, and refuses to read more than the
// manifest's size: a blob of endless empty gzip members decompresses to
// nothing, so only this bound stops it.
type countReader struct {
	r        io.Reader
	ctx      context.Context
	n, max   int64
	progress func(n int64)
}

func (c *countReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if c.n > c.max {
		return 0, fmt.Errorf("%w: blob is larger than the %d bytes the manifest says", ErrDigestMismatch, c.max)
	}
	if rest := c.max - c.n + 1; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(int64(n))
	}
	return n, err
}

// limitReader enforces the decompressed-size bounds as bytes come out of
// the decompressor, so a bomb stops after at most the limit, and checks ctx
// every MiB (a bomb may inflate for long between two compressed reads).
// Its errors are sticky.
type limitReader struct {
	r           io.Reader
	ctx         context.Context
	n, layerMax int64
	total       *int64
	totalMax    int64
	sinceCheck  int
	err         error
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	*l.total += int64(n)
	switch {
	case l.n > l.layerMax:
		l.err = fmt.Errorf("%w: layer decompresses to more than %d bytes", ErrLimit, l.layerMax)
	case *l.total > l.totalMax:
		l.err = fmt.Errorf("%w: layers decompress to more than %d bytes in total", ErrLimit, l.totalMax)
	}
	if l.err == nil {
		if l.sinceCheck += n; l.sinceCheck >= 1<<20 {
			l.sinceCheck = 0
			l.err = l.ctx.Err()
		}
	}
	if l.err != nil {
		return 0, l.err
	}
	if err != nil && err != io.EOF {
		l.err = err
	}
	return n, err
}
