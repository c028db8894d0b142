package testimage

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// layerFormatVersion goes into every recipe key: bump it when the layer
// writer's output changes, so cached images are rebuilt.
const layerFormatVersion = 1

// OCI whiteout names (image-spec layer.md): ".wh.NAME" deletes NAME from
// the layers below; ".wh..wh..opq" in a directory hides everything the
// layers below put in it.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// fileMeta is what a layer diff compares about a file system object.
type fileMeta struct {
	mode     fs.FileMode
	uid, gid uint32
	size     int64
	mtime    int64 // nanoseconds
	dev, ino uint64
	link     string
}

func (m fileMeta) isDir() bool { return m.mode.IsDir() }

// changed reports whether b (after) differs from a (before) in a way a
// layer must record. A replaced file (dpkg installs by rename) has a new
// inode even when its size and mtime happen to match.
func (a fileMeta) changed(b fileMeta) bool {
	if a.mode != b.mode || a.uid != b.uid || a.gid != b.gid || a.mtime != b.mtime {
		return true
	}
	if a.isDir() {
		return false
	}
	return a.size != b.size || a.ino != b.ino || a.dev != b.dev || a.link != b.link
}

// treeFilter leaves parts of a root file system out of its layers.
type treeFilter struct {
	// emptyDirs are kept as directories, without their contents: the
	// kernel's and the runtime's mount points (proc, sys, dev).
	emptyDirs map[string]bool
	// skip are left out entirely: files a chroot build needs but an image
	// must not carry (the host's resolv.conf and hostname).
	skip map[string]bool
}

// rootfsFilter is the filter for root file systems built by debootstrap.
var rootfsFilter = treeFilter{
	emptyDirs: map[string]bool{"proc": true, "sys": true, "dev": true},
	skip:      map[string]bool{"etc/resolv.conf": true, "etc/hostname": true},
}

// walkTree lists the objects under root (slash-separated, relative, in tar
// order: parents before children, siblings sorted) with their metadata.
func walkTree(ctx context.Context, root string, filter treeFilter) ([]string, map[string]fileMeta, error) {
	var order []string
	metas := map[string]fileMeta{}
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if filter.skip[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if parent := path.Dir(rel); filter.emptyDirs[parent] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		m, err := statMeta(p)
		if err != nil {
			return err
		}
		if m.mode.Type()&fs.ModeSocket != 0 {
			return nil // tar cannot carry sockets; images never need them
		}
		order = append(order, rel)
		metas[rel] = m
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("walk %s: %w", root, err)
	}
	return order, metas, nil
}

func statMeta(p string) (fileMeta, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return fileMeta{}, err
	}
	m := fileMeta{mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		m.uid, m.gid, m.ino, m.dev = st.Uid, st.Gid, uint64(st.Ino), uint64(st.Dev)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if m.link, err = os.Readlink(p); err != nil {
			return fileMeta{}, err
		}
	}
	if fi.IsDir() {
		m.size = 0
	}
	return m, nil
}

// layerItem is one entry of a layer to write: a path of the tree, or a
// whiteout marker (a path that does not exist in the tree).
type layerItem struct {
	rel      string
	whiteout bool
}

// diffTrees computes the layer that turns the tree `before` into `after`,
// the way a container builder's snapshot diff does: new and changed objects,
// their parent directories, a whiteout for each deleted object whose parent
// survives, and an opaque marker for a directory that was removed and
// recreated (new inode), followed by all of its contents.
func diffTrees(before, after map[string]fileMeta) []layerItem {
	add := map[string]bool{}
	var items []layerItem
	replaced := map[string]bool{}
	// Directories first, shortest first, so "replaced" is known for
	// parents before children.
	paths := make([]string, 0, len(after))
	for p := range after {
		paths = append(paths, p)
	}
	sortTarOrder(paths)
	underReplaced := func(p string) bool {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if replaced[d] {
				return true
			}
		}
		return false
	}
	for _, p := range paths {
		a := after[p]
		b, existed := before[p]
		switch {
		case underReplaced(p):
			add[p] = true
		case !existed:
			add[p] = true
		case b.isDir() && a.isDir() && (b.ino != a.ino || b.dev != a.dev):
			add[p] = true
			replaced[p] = true
			items = append(items, layerItem{rel: p + "/" + opaqueMarker, whiteout: true})
		case b.changed(a):
			add[p] = true
		}
	}
	// gone reports whether everything below a before-directory is already
	// hidden: the directory itself was deleted, replaced by a non-directory
	// or made opaque.
	gone := func(dir string) bool {
		a, ok := after[dir]
		return !ok || !a.isDir() || replaced[dir]
	}
	for p := range before {
		if _, ok := after[p]; ok {
			continue
		}
		parent := path.Dir(p)
		if parent != "." {
			if _, wasDir := before[parent]; wasDir && gone(parent) {
				continue
			}
		}
		wh := whiteoutPrefix + path.Base(p)
		if parent != "." {
			wh = parent + "/" + wh
			add[parent] = true
		}
		items = append(items, layerItem{rel: wh, whiteout: true})
	}
	// Parents of everything written, as container builders do, so that the
	// layer extracts on its own with the right directory modes.
	for p := range add {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if add[d] {
				break
			}
			add[d] = true
		}
	}
	for _, it := range items {
		for d := path.Dir(it.rel); d != "."; d = path.Dir(d) {
			add[d] = true
		}
	}
	for p := range add {
		items = append(items, layerItem{rel: p})
	}
	sortItems(items)
	return items
}

func sortItems(items []layerItem) {
	sort.Slice(items, func(i, j int) bool { return tarLess(items[i].rel, items[j].rel) })
}

func sortTarOrder(paths []string) {
	sort.Slice(paths, func(i, j int) bool { return tarLess(paths[i], paths[j]) })
}

// tarLess orders paths component by component, so a directory comes right
// before its contents ("a", "a/b", "a.txt") — the order filepath.WalkDir
// produces and extractors expect.
func tarLess(a, b string) bool {
	for {
		ai, bi := strings.IndexByte(a, '/'), strings.IndexByte(b, '/')
		ac, bc := a, b
		if ai >= 0 {
			ac = a[:ai]
		}
		if bi >= 0 {
			bc = b[:bi]
		}
		if ac != bc {
			return ac < bc
		}
		if ai < 0 || bi < 0 {
			return ai < 0 && bi >= 0
		}
		a, b = a[ai+1:], b[bi+1:]
	}
}

func treeItems(order []string) []layerItem {
	items := make([]layerItem, len(order))
	for i, p := range order {
		items[i] = layerItem{rel: p}
	}
	return items
}

// layerOptions normalise entries for reproducible layers.
type layerOptions struct {
	// fixedTime, when set, replaces every modification time.
	fixedTime time.Time
	// rootOwned sets every uid and gid to 0.
	rootOwned bool
	// normalModes sets directories to 0755 and files to 0755 or 0644
	// (executable or not), so the host's umask does not leak into layers.
	normalModes bool
}

// normalised are the options of reproducible layers.
var normalised = layerOptions{fixedTime: epoch, rootOwned: true, normalModes: true}

// layerStats describes a written layer.
type layerStats struct {
	entries, whiteouts int
	uncompressed       int64
	compressed         int64
	diffID             string
}

// writeLayer writes items of the tree at root as a gzip-compressed tar to
// dst. Hard links become tar links to the first path of the same inode in
// this layer; a link whose first path is not in this layer is written as a
// full copy, so the layer never refers to a path it does not carry.
// Extended attributes are not carried.
func writeLayer(ctx context.Context, dst, root string, items []layerItem, opts layerOptions) (layerStats, error) {
	var st layerStats
	f, err := os.Create(dst)
	if err != nil {
		return st, fmt.Errorf("write layer: %w", err)
	}
	defer f.Close()
	cf := &countingWriter{w: f}
	bw := bufio.NewWriterSize(cf, 1<<20)
	gz, err := gzip.NewWriterLevel(bw, gzip.DefaultCompression)
	if err != nil {
		return st, err
	}
	diff := sha256.New()
	cu := &countingWriter{w: io.MultiWriter(gz, diff)}
	tw := tar.NewWriter(cu)
	links := map[[2]uint64]string{}
	buf := make([]byte, 256*1024)
	for i, it := range items {
		if i%1024 == 0 && ctx.Err() != nil {
			return st, ctx.Err()
		}
		if it.whiteout {
			hdr := &tar.Header{Name: it.rel, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: whiteoutTime(opts)}
			if err := tw.WriteHeader(hdr); err != nil {
				return st, fmt.Errorf("write layer %s: %w", it.rel, err)
			}
			st.entries++
			st.whiteouts++
			continue
		}
		if err := writeTreeEntry(tw, root, it.rel, opts, links, buf); err != nil {
			return st, fmt.Errorf("write layer %s: %w", it.rel, err)
		}
		st.entries++
	}
	if err := tw.Close(); err != nil {
		return st, fmt.Errorf("write layer: %w", err)
	}
	if err := gz.Close(); err != nil {
		return st, fmt.Errorf("write layer: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return st, fmt.Errorf("write layer: %w", err)
	}
	if err := f.Close(); err != nil {
		return st, fmt.Errorf("write layer: %w", err)
	}
	st.uncompressed, st.compressed = cu.n, cf.n
	st.diffID = "sha256:" + hex.EncodeToString(diff.Sum(nil))
	return st, nil
}

func whiteoutTime(opts layerOptions) time.Time {
	if !opts.fixedTime.IsZero() {
		return opts.fixedTime
	}
	return time.Unix(0, 0)
}

func writeTreeEntry(tw *tar.Writer, root, rel string, opts layerOptions, links map[[2]uint64]string, buf []byte) error {
	p := filepath.Join(root, filepath.FromSlash(rel))
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	var target string
	if fi.Mode()&fs.ModeSymlink != 0 {
		if target, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, target)
	if err != nil {
		return err
	}
	hdr.Name = rel
	if fi.IsDir() {
		hdr.Name += "/"
	}
	// Names are numeric ids only: the host's user database says nothing
	// about the image's.
	hdr.Uname, hdr.Gname = "", ""
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.ModTime = fi.ModTime().Truncate(time.Second)
	if !opts.fixedTime.IsZero() {
		hdr.ModTime = opts.fixedTime
	}
	if opts.rootOwned {
		hdr.Uid, hdr.Gid = 0, 0
	}
	if opts.normalModes {
		switch {
		case fi.IsDir():
			hdr.Mode = 0o755
		case fi.Mode().IsRegular() && fi.Mode()&0o111 != 0:
			hdr.Mode = 0o755
		case fi.Mode().IsRegular():
			hdr.Mode = 0o644
		}
	}
	sys, _ := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().IsRegular() && sys != nil && sys.Nlink > 1 {
		k := [2]uint64{uint64(sys.Dev), uint64(sys.Ino)}
		if first, ok := links[k]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			return tw.WriteHeader(hdr)
		}
		links[k] = rel
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf)
	if err != nil {
		return err
	}
	if n != hdr.Size {
		return fmt.Errorf("file shrank while writing (%d of %d bytes)", n, hdr.Size)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeTreeLayer writes the whole tree at root as one layer.
func writeTreeLayer(ctx context.Context, dst, root string, filter treeFilter, opts layerOptions) (layerStats, error) {
	order, _, err := walkTree(ctx, root, filter)
	if err != nil {
		return layerStats{}, err
	}
	if len(order) == 0 {
		return layerStats{}, errors.New("write layer: empty tree " + root)
	}
	return writeLayer(ctx, dst, root, treeItems(order), opts)
}

// treeLayer writes the tree at root as one layer file in dir.
func (b *builder) treeLayer(ctx context.Context, dir, root string, filter treeFilter, opts layerOptions, createdBy string) (layerSpec, error) {
	f, err := os.CreateTemp(dir, "layer-*.tar.gz")
	if err != nil {
		return layerSpec{}, err
	}
	f.Close()
	st, err := writeTreeLayer(ctx, f.Name(), root, filter, opts)
	if err != nil {
		return layerSpec{}, err
	}
	b.log.Info("layer written", "createdBy", createdBy, "entries", st.entries, "compressedMB", fmt.Sprintf("%.1f", float64(st.compressed)/1e6))
	return layerSpec{file: f.Name(), createdBy: createdBy, stats: st}, nil
}

// itemsLayer writes the given items of the tree at root as one layer file
// in dir (a diff layer).
func (b *builder) itemsLayer(ctx context.Context, dir, root string, items []layerItem, createdBy string) (layerSpec, error) {
	f, err := os.CreateTemp(dir, "layer-*.tar.gz")
	if err != nil {
		return layerSpec{}, err
	}
	f.Close()
	st, err := writeLayer(ctx, f.Name(), root, items, layerOptions{})
	if err != nil {
		return layerSpec{}, err
	}
	b.log.Info("layer written", "createdBy", tail(createdBy, 120), "entries", st.entries, "whiteouts", st.whiteouts, "compressedMB", fmt.Sprintf("%.1f", float64(st.compressed)/1e6))
	return layerSpec{file: f.Name(), createdBy: createdBy, stats: st}, nil
}
