package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// fileErr is a FileError reduced to what tests compare.
type fileErr struct {
	Path   string
	Layer  int
	Unsafe bool
}

func TestWalkLayerStack(t *testing.T) {
	tests := []struct {
		name     string
		layers   [][]te
		want     []found
		wantErrs []fileErr
	}{{
		name: "later file replaces earlier",
		layers: [][]te{
			{dir("etc"), reg("etc/a", "old"), reg("etc/b", "keep")},
			{reg("etc/a", "new")},
		},
		want: []found{{"etc/a", 1, "new"}, {"etc/b", 0, "keep"}},
	}, {
		name: "later file not required still replaces",
		layers: [][]te{
			{reg("etc/a", "old")},
			{private("etc/a", "secret")},
		},
		want: []found{},
	}, {
		name: "whiteout of a file",
		layers: [][]te{
			{reg("a/b", "b"), reg("a/c", "c")},
			{whiteout("a/.wh.b")},
		},
		want: []found{{"a/c", 0, "c"}},
	}, {
		name: "whiteout of a directory removes its subtree only",
		layers: [][]te{
			{reg("d/x", "x"), reg("d/y/z", "z"), reg("dz", "dz"), reg("d.txt", "t"), reg("d/y2", "y2")},
			{whiteout(".wh.d")},
		},
		want: []found{{"d.txt", 0, "t"}, {"dz", 0, "dz"}},
	}, {
		name: "opaque directory hides lower content",
		layers: [][]te{
			{reg("o/a", "a"), reg("o/sub/b", "b"), reg("other/c", "c"), reg("o", "not a dir yet")},
			{dir("o"), whiteout("o/.wh..wh..opq"), reg("o/new", "n")},
		},
		want: []found{{"o/new", 1, "n"}, {"other/c", 0, "c"}},
	}, {
		name: "whiteouts never affect their own layer, whatever the order",
		layers: [][]te{
			{reg("w/old", "o"), reg("w/new", "lower"), reg("w/new2", "lower2")},
			{
				whiteout("w/.wh.new"), reg("w/new", "upper"),
				reg("w/new2", "upper2"), whiteout("w/.wh.new2"),
				reg("w/fresh", "f"), whiteout("w/.wh..wh..opq"),
			},
		},
		want: []found{{"w/fresh", 1, "f"}, {"w/new", 1, "upper"}, {"w/new2", 1, "upper2"}},
	}, {
		name: "opaque root hides everything below",
		layers: [][]te{
			{reg("a", "a"), reg("b/c", "c")},
			{whiteout(".wh..wh..opq"), reg("d", "d")},
		},
		want: []found{{"d", 1, "d"}},
	}, {
		name: "directory replaced by a file or a symlink",
		layers: [][]te{
			{reg("p/q/r", "r"), reg("s/t", "t"), reg("pp/q", "keep")},
			{reg("p", "file"), symlink("s", "/etc")},
		},
		want: []found{{"p", 1, "file"}, {"pp/q", 0, "keep"}},
	}, {
		name: "file replaced by a directory, explicit or implied",
		layers: [][]te{
			{reg("f", "f"), reg("h", "h")},
			{dir("f"), reg("f/g", "g"), reg("h/i/j", "j")},
		},
		want: []found{{"f/g", 1, "g"}, {"h/i/j", 1, "j"}},
	}, {
		name: "file replaced by a directory implied by a whiteout",
		layers: [][]te{
			{reg("k", "k"), reg("m", "m")},
			{whiteout("k/.wh.x"), whiteout("m/.wh..wh..opq")},
		},
		want: []found{},
	}, {
		name: "hard links copy the target's result",
		layers: [][]te{
			{reg("bin/real", "R"), reg("lib/a", "A"), hardlink("lib/b", "lib/a"), reg("t/gone", "G"),
				private("n/t", "secret"), hardlink("n/l", "n/t")},
			{hardlink("bin/link", "/bin/real"), whiteout("t/.wh.gone"), hardlink("t/l2", "t/gone")},
		},
		want: []found{
			{"bin/link", 1, "R"}, {"bin/real", 0, "R"},
			{"lib/a", 0, "A"}, {"lib/b", 0, "A"},
		},
	}, {
		name: "symlinks are never followed",
		layers: [][]te{
			{reg("usr/lib/os-release", "ID=x"), symlink("etc/os-release", "../usr/lib/os-release"), symlink("lnk", "/etc")},
			{reg("lnk/passwd", "P"), symlink("esc", "../../.."), hardlink("viasym", "etc/os-release")},
			{reg("esc/x", "X")},
		},
		want: []found{{"esc/x", 2, "X"}, {"lnk/passwd", 1, "P"}, {"usr/lib/os-release", 0, "ID=x"}},
	}, {
		name: "hostile paths are skipped and reported",
		layers: [][]te{{
			reg("../evil", "e"), reg("/abs/file", "abs"), reg("a/../../evil2", "e2"),
			reg("./dot/file", "dot"), reg("//double//slash/./x", "ds"),
			hardlink("hl", "../../etc/shadow"), whiteout("a/.wh.."), dir("./"), dir("/"),
		}},
		want: []found{{"abs/file", 0, "abs"}, {"dot/file", 0, "dot"}, {"double/slash/x", 0, "ds"}},
		wantErrs: []fileErr{
			{"../evil", 0, true}, {"a/../../evil2", 0, true}, {"a/.wh..", 0, true}, {"hl", 0, true},
		},
	}, {
		name: "duplicate entries: the last one wins",
		layers: [][]te{{
			reg("dup/f", "1"), reg("dup/f", "2"),
			reg("dup/g", "file"), dir("dup/g"),
			reg("dup/h", "x"), private("dup/h", "hidden"),
		}},
		want: []found{{"dup/f", 0, "2"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := openV1(t, buildImage(t, "amd64", tt.layers...))
			entries, errs, err := Walk(context.Background(), im, Limits{}, requireAll, readAll, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, summarize(entries)); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			for _, e := range entries {
				if e.Layer != im.Layers[e.LayerIndex].Digest {
					t.Errorf("%s: Layer %s, want %s", e.Path, e.Layer, im.Layers[e.LayerIndex].Digest)
				}
			}
			var gotErrs []fileErr
			for _, e := range errs {
				gotErrs = append(gotErrs, fileErr{e.Path, e.LayerIndex, errors.Is(e, ErrUnsafePath)})
			}
			if diff := cmp.Diff(tt.wantErrs, gotErrs); diff != "" {
				t.Errorf("file errors (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWalkExtractErrors checks that extract errors are reported for files
// that survive, vanish with files that are replaced, and that a panicking
// extractor does not take the walk down.
func TestWalkExtractErrors(t *testing.T) {
	im := openV1(t, buildImage(t, "amd64",
		[]te{reg("bad/replaced", "FAIL"), reg("bad/kept", "FAIL"), reg("boom", "PANIC"), reg("ok", "fine")},
		[]te{reg("bad/replaced", "good now")},
	))
	extract := func(ctx context.Context, in *inventory.Input) (string, error) {
		s, err := readAll(ctx, in)
		switch s {
		case "FAIL":
			return "", errors.New("cannot parse")
		case "PANIC":
			panic("extractor bug")
		}
		return s, err
	}
	entries, errs, err := Walk(context.Background(), im, Limits{}, requireAll, extract, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []found{{"bad/replaced", 1, "good now"}, {"ok", 0, "fine"}}
	if diff := cmp.Diff(want, summarize(entries)); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Path+": "+e.Err.Error())
	}
	wantErrs := []string{"bad/kept: cannot parse", "boom: extract panicked: extractor bug"}
	if diff := cmp.Diff(wantErrs, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// TestWalkReaderAt checks the buffered random access given to extractors:
// after peeking, beyond MaxFileSize, and after reading too much.
func TestWalkReaderAt(t *testing.T) {
	big := strings.Repeat("0123456789", 10_000) // 100 kB
	im := openV1(t, buildImage(t, "amd64", []te{
		reg("peek", "ELF and the rest of the file"),
		reg("toolarge", strings.Repeat("x", 2000)),
		reg("readtoomuch", big),
		reg("untouched", "whole file"),
	}))
	extract := func(_ context.Context, in *inventory.Input) (string, error) {
		switch in.Path {
		case "peek":
			magic := make([]byte, 3)
			if _, err := io.ReadFull(in.Reader, magic); err != nil {
				return "", err
			}
		case "readtoomuch":
			if _, err := io.CopyN(io.Discard, in.Reader, 70_000); err != nil {
				return "", err
			}
		}
		ra, n, err := in.ReaderAt()
		if err != nil {
			return "", err
		}
		b := make([]byte, n)
		if _, err := ra.ReadAt(b, 0); err != nil {
			return "", err
		}
		// A second call gives the same content.
		ra2, _, err := in.ReaderAt()
		if err != nil || ra2 != ra {
			return "", fmt.Errorf("second ReaderAt: %v", err)
		}
		return string(b), nil
	}
	entries, errs, err := Walk(context.Background(), im, Limits{MaxFileSize: 1000}, requireAll, extract, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []found{{"peek", 0, "ELF and the rest of the file"}, {"untouched", 0, "whole file"}}
	if diff := cmp.Diff(want, summarize(entries)); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if len(errs) != 2 || !errors.Is(errs[1], inventory.ErrTooLarge) || errs[1].Path != "toolarge" ||
		errs[0].Path != "readtoomuch" {
		t.Errorf("errors = %v, want readtoomuch (read too much) and toolarge (ErrTooLarge)", errs)
	}
}

// TestWalkCompressions checks that gzip, zstd and uncompressed layers are
// all read, told apart by content, whatever their media type says.
func TestWalkCompressions(t *testing.T) {
	data := tarBytes(t, reg("etc/os-release", "ID=test"))
	gz := layerOf(t, data)
	zst := layerOf(t, data, tarball.WithCompression(compression.ZStd))
	// The zstd layer's media type still says gzip: only its bytes tell.
	rc, err := zst.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	magic := make([]byte, 4)
	if _, err := io.ReadFull(rc, magic); err != nil || sniff(magic) != compZstd {
		t.Fatalf("test setup: zstd layer starts with %x (%v)", magic, err)
	}
	rc.Close()
	img, err := mutate.AppendLayers(empty.Image, gz, zst)
	if err != nil {
		t.Fatal(err)
	}
	im := openV1(t, img)
	// A third, uncompressed layer, built by hand.
	raw := writeRawLayout(t, [][]byte{tarBytes(t, reg("plain", "p"))}, nil)
	imRaw, err := Open(context.Background(), PrefixOCILayout+raw.dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer imRaw.Close()
	for _, c := range []struct {
		im   *Image
		want []found
	}{
		{im, []found{{"etc/os-release", 1, "ID=test"}}},
		{imRaw, []found{{"plain", 0, "p"}}},
	} {
		entries, _, err := Walk(context.Background(), c.im, Limits{}, requireAll, readAll, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c.want, summarize(entries)); diff != "" {
			t.Errorf("entries (-want +got):\n%s", diff)
		}
	}
}

// TestWalkProgressAndCancel checks progress figures and cancellation from
// inside the loop.
func TestWalkProgressAndCancel(t *testing.T) {
	im := openV1(t, buildImage(t, "amd64",
		[]te{reg("a", "a"), reg("b", "b")},
		[]te{reg("c", strings.Repeat("c", 5000))},
	))
	var last, total int64
	if _, _, err := Walk(context.Background(), im, Limits{}, requireAll, readAll, func(d, tot int64) {
		if d < last {
			t.Errorf("progress went back from %d to %d", last, d)
		}
		last, total = d, tot
	}); err != nil {
		t.Fatal(err)
	}
	if last != im.Size() || total != im.Size() {
		t.Errorf("progress ended at %d/%d, want %d/%d", last, total, im.Size(), im.Size())
	}

	ctx, cancel := context.WithCancel(context.Background())
	_, _, err := Walk(ctx, im, Limits{}, requireAll, func(ctx context.Context, in *inventory.Input) (string, error) {
		cancel()
		return readAll(ctx, in)
	}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"a/b": "a/b", "/a/b": "a/b", "./a//b/": "a/b", "a/./b/../c": "a/c", "/": "", ".": "", "./": "",
		"/../x": "!", "..": "!", "a/../..": "!", "../": "!", "a\\..\\b": "a\\..\\b", "...": "...",
	} {
		got, ok := cleanPath(in)
		if !ok {
			got = "!"
		}
		if got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}
