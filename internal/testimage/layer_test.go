package testimage

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestTarLess(t *testing.T) {
	in := []string{"a.txt", "a/b/c", "b", "a", "a/b", "a-b", "a/.wh.x", "a/b.txt"}
	sortTarOrder(in)
	want := []string{"a", "a/.wh.x", "a/b", "a/b/c", "a/b.txt", "a-b", "a.txt", "b"}
	if diff := cmp.Diff(want, in); diff != "" {
		t.Errorf("tar order (-want +got):\n%s", diff)
	}
}

// entry is a tar header reduced to what the tests compare.
type entry struct {
	Name     string
	Type     byte
	Mode     int64
	Linkname string
	Content  string
}

func readLayerFile(t *testing.T, p string) []entry {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return readTar(t, gz)
}

func readTar(t *testing.T, r io.Reader) []entry {
	t.Helper()
	tr := tar.NewReader(r)
	var out []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{Name: h.Name, Type: h.Typeflag, Mode: h.Mode & 0o7777, Linkname: h.Linkname, Content: string(data)})
	}
}

func mustWrite(t *testing.T, root, rel, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func TestWriteTreeLayer(t *testing.T) {
	root := t.TempDir()
	mustWrite(t, root, "etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644)
	mustWrite(t, root, "etc/resolv.conf", "nameserver 10.0.0.1\n", 0o644) // host file: left out
	mustWrite(t, root, "usr/bin/tool", "#!/bin/sh\n", 0o755)
	mustWrite(t, root, "proc/1/status", "leaked\n", 0o444) // mount point: kept empty
	mustWrite(t, root, "dev/null", "not a device\n", 0o666)
	if err := os.Link(filepath.Join(root, "usr/bin/tool"), filepath.Join(root, "usr/bin/tool2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "etc/passwd.abs")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "etc/fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "layer.tar.gz")
	st, err := writeTreeLayer(context.Background(), dst, root, rootfsFilter, layerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := readLayerFile(t, dst)
	want := []entry{
		{Name: "bin", Type: tar.TypeSymlink, Mode: 0o777, Linkname: "usr/bin"},
		{Name: "dev/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "etc/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "etc/fifo", Type: tar.TypeFifo, Mode: 0o600},
		{Name: "etc/passwd", Type: tar.TypeReg, Mode: 0o644, Content: "root:x:0:0::/root:/bin/sh\n"},
		{Name: "etc/passwd.abs", Type: tar.TypeSymlink, Mode: 0o777, Linkname: "/etc/passwd"},
		{Name: "proc/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/bin/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/bin/tool", Type: tar.TypeReg, Mode: 0o755, Content: "#!/bin/sh\n"},
		{Name: "usr/bin/tool2", Type: tar.TypeLink, Mode: 0o755, Linkname: "usr/bin/tool"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layer entries (-want +got):\n%s", diff)
	}
	if st.entries != len(want) || st.whiteouts != 0 || st.compressed == 0 || st.uncompressed <= st.compressed/2 {
		t.Errorf("stats = %+v", st)
	}
	// The layer is readable by go-containerregistry and its diff ID is the
	// one the writer computed.
	l, err := tarball.LayerFromFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	d, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	if d.String() != st.diffID {
		t.Errorf("diff ID = %s, writer said %s", d, st.diffID)
	}
}

func TestNormalisedLayerIsReproducible(t *testing.T) {
	var digests []string
	for i := 0; i < 2; i++ {
		root := t.TempDir()
		mustWrite(t, root, "usr/local/bin/app", "binary", 0o700)
		mustWrite(t, root, "app/package.json", `{"name":"x"}`, 0o600)
		if err := os.Chmod(filepath.Join(root, "app"), 0o700); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(t.TempDir(), "l.tar.gz")
		st, err := writeTreeLayer(context.Background(), dst, root, treeFilter{}, normalised)
		if err != nil {
			t.Fatal(err)
		}
		l, err := tarball.LayerFromFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d.String()+" "+st.diffID)
		for _, e := range readLayerFile(t, dst) {
			wantMode := int64(0o644)
			if e.Type == tar.TypeDir || e.Name == "usr/local/bin/app" {
				wantMode = 0o755
			}
			if e.Mode != wantMode {
				t.Errorf("%s mode %o, want %o", e.Name, e.Mode, wantMode)
			}
		}
	}
	if digests[0] != digests[1] {
		t.Errorf("same tree, different layers: %v", digests)
	}
}

// TestDiffTreesAppliesLikeTheBuild builds a base layer and a diff layer from
// real directory trees, applies them with go-containerregistry's own
// flattening (which honours whiteouts and opaque directories) and checks
// the result is the changed tree.
func TestDiffTreesAppliesLikeTheBuild(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	mustWrite(t, root, "keep/file", "same", 0o644)
	mustWrite(t, root, "modify/file", "old", 0o644)
	mustWrite(t, root, "delete/one", "bye", 0o644)
	mustWrite(t, root, "delete/two", "stays", 0o644)
	mustWrite(t, root, "deldir/a/b", "bye", 0o644)
	mustWrite(t, root, "recreate/old1", "hidden", 0o644)
	mustWrite(t, root, "recreate/old2", "hidden", 0o644)
	mustWrite(t, root, "dir2file/x", "bye", 0o644)
	mustWrite(t, root, "replace/by-rename", "old", 0o644)
	dir := t.TempDir()
	base := filepath.Join(dir, "base.tar.gz")
	if _, err := writeTreeLayer(ctx, base, root, treeFilter{}, layerOptions{}); err != nil {
		t.Fatal(err)
	}
	_, before, err := walkTree(ctx, root, treeFilter{})
	if err != nil {
		t.Fatal(err)
	}

	// The changes a package manager and a clean-up script make.
	mustWrite(t, root, "modify/file", "new content", 0o644)
	mustWrite(t, root, "added/deep/file", "hi", 0o600)
	must(t, os.Remove(filepath.Join(root, "delete/one")))
	must(t, os.RemoveAll(filepath.Join(root, "deldir")))
	must(t, os.RemoveAll(filepath.Join(root, "recreate")))
	mustWrite(t, root, "recreate/new", "fresh", 0o644)
	must(t, os.RemoveAll(filepath.Join(root, "dir2file")))
	mustWrite(t, root, "dir2file", "now a file", 0o644)
	// Same size, same mtime, new inode: what dpkg's install-by-rename does.
	fi, err := os.Stat(filepath.Join(root, "replace/by-rename"))
	must(t, err)
	mustWrite(t, root, "replace/tmp", "NEW", 0o644)
	must(t, os.Chtimes(filepath.Join(root, "replace/tmp"), fi.ModTime(), fi.ModTime()))
	must(t, os.Rename(filepath.Join(root, "replace/tmp"), filepath.Join(root, "replace/by-rename")))
	must(t, os.Chtimes(filepath.Join(root, "replace"), fi.ModTime(), fi.ModTime()))

	_, after, err := walkTree(ctx, root, treeFilter{})
	if err != nil {
		t.Fatal(err)
	}
	items := diffTrees(before, after)
	var names []string
	for _, it := range items {
		if it.whiteout {
			names = append(names, it.rel)
		}
	}
	wantWhiteouts := []string{".wh.deldir", "delete/.wh.one", "recreate/.wh..wh..opq"}
	if diff := cmp.Diff(wantWhiteouts, names); diff != "" {
		t.Errorf("whiteouts (-want +got):\n%s", diff)
	}
	for _, it := range items {
		if it.rel == "keep/file" || it.rel == "delete/two" {
			t.Errorf("unchanged %s in the diff layer", it.rel)
		}
	}
	upper := filepath.Join(dir, "upper.tar.gz")
	st, err := writeLayer(ctx, upper, root, items, layerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.whiteouts != 3 {
		t.Errorf("whiteouts = %d, want 3", st.whiteouts)
	}

	// Apply both with go-containerregistry and compare with the tree.
	img := empty.Image
	for _, p := range []string{base, upper} {
		l, err := tarball.LayerFromFile(p)
		must(t, err)
		img, err = mutate.AppendLayers(img, l)
		must(t, err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	got := map[string]string{}
	for _, e := range readTar(t, rc) {
		if e.Type == tar.TypeReg {
			got[strings.TrimSuffix(e.Name, "/")] = e.Content
		}
	}
	want := map[string]string{}
	order, metas, err := walkTree(ctx, root, treeFilter{})
	must(t, err)
	for _, p := range order {
		if metas[p].mode.IsRegular() {
			data, err := os.ReadFile(filepath.Join(root, p))
			must(t, err)
			want[p] = string(data)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flattened image != changed tree (-want +got):\n%s", diff)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDiffTreesHardLinkToLowerLayerIsCopied(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	mustWrite(t, root, "a", "shared", 0o644)
	_, before, err := walkTree(ctx, root, treeFilter{})
	must(t, err)
	must(t, os.Link(filepath.Join(root, "a"), filepath.Join(root, "b")))
	_, after, err := walkTree(ctx, root, treeFilter{})
	must(t, err)
	dst := filepath.Join(t.TempDir(), "l.tar.gz")
	_, err = writeLayer(ctx, dst, root, diffTrees(before, after), layerOptions{})
	must(t, err)
	// "a" gained a link count (metadata change of the inode is not in
	// fileMeta), "b" is new: b must carry its content, never a link to a
	// path outside this layer.
	for _, e := range readLayerFile(t, dst) {
		if e.Type == tar.TypeLink {
			found := false
			for _, e2 := range readLayerFile(t, dst) {
				if e2.Name == e.Linkname {
					found = true
				}
			}
			if !found {
				t.Errorf("%s links to %s, which is not in the layer", e.Name, e.Linkname)
			}
		}
		if e.Name == "b" && e.Type == tar.TypeReg && e.Content != "shared" {
			t.Errorf("b content %q", e.Content)
		}
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a\040b`: "/tmp/a b",
		`/plain`:      "/plain",
		`/tab\011x`:   "/tab\tx",
		`/end\04`:     `/end\04`,
		`/bs\134`:     `/bs\`,
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzTarLess(f *testing.F) {
	f.Add("a/b", "a.b")
	f.Add("a", "a/b")
	f.Add("", "/")
	f.Fuzz(func(t *testing.T, a, b string) {
		if tarLess(a, b) && tarLess(b, a) {
			t.Fatalf("tarLess not antisymmetric for %q, %q", a, b)
		}
		if tarLess(a, a) {
			t.Fatalf("tarLess(%q, %q) is true", a, a)
		}
		ps := []string{a, b, a + "/x", b + "/x"}
		sortTarOrder(ps)
		if !sort.SliceIsSorted(ps, func(i, j int) bool { return tarLess(ps[i], ps[j]) }) {
			t.Fatalf("not sorted: %q", ps)
		}
	})
}

func ExampleNames() {
	fmt.Println(Names())
	// Output: [go-vuln npm debian big demo]
}
