package image

import (
	"bytes"
	"context"
	"io"
	"path"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/klauspost/compress/zstd"
)

// FuzzWalkLayer feeds arbitrary bytes as the blob of two stacked layers
// (the same bytes twice, so whiteouts and overwrites meet lower results).
// Whatever the input: no panic, bounded work, and every returned path is
// clean and relative.
func FuzzWalkLayer(f *testing.F) {
	seeds := [][]byte{
		tarBytes(f, reg("etc/os-release", "ID=x"), dir("d"), reg("d/f", "f"), whiteout("d/.wh.f"), whiteout("d/.wh..wh..opq")),
		tarBytes(f, reg("../evil", "e"), reg("/abs", "a"), hardlink("l", "abs"), hardlink("l2", "../../x"), symlink("s", "/etc"), reg("s/x", "x")),
		tarBytes(f, reg("a", strings.Repeat("A", 5000)), hardlink("b", "a"), reg("a", "again"), whiteout(".wh.."), whiteout("x/.wh.")),
		{},
		[]byte("\x1f\x8b"),
		[]byte("\x28\xb5\x2f\xfd"),
	}
	seeds = append(seeds, gzipBytes(f, seeds[0]), gzipBytes(f, seeds[1]))
	var zb bytes.Buffer
	zw, _ := zstd.NewWriter(&zb)
	zw.Write(seeds[2])
	zw.Close()
	seeds = append(seeds, zb.Bytes())
	for _, s := range seeds {
		f.Add(s)
	}
	lim := Limits{MaxLayerBytes: 16 << 20, MaxTotalBytes: 32 << 20, MaxFiles: 10_000, MaxFileSize: 1 << 20}
	extract := func(_ context.Context, in *inventory.Input) (string, error) {
		var head [16]byte
		n, _ := io.ReadFull(in.Reader, head[:])
		if n > 0 && head[0]&1 == 1 {
			ra, size, err := in.ReaderAt()
			if err != nil {
				return "", err
			}
			b := make([]byte, min(size, 64))
			ra.ReadAt(b, 0)
			return string(b), nil
		}
		return string(head[:n]), nil
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		im := &Image{srcs: []layerSource{
			{info: Layer{Digest: "sha256:0", Size: int64(len(data))}, open: open},
			{info: Layer{Digest: "sha256:1", Size: int64(len(data))}, open: open},
		}}
		entries, errs, err := Walk(context.Background(), im, lim, func(string, inventory.FileInfo) bool { return true }, extract, nil)
		if err != nil {
			if entries != nil || errs != nil {
				t.Fatalf("results returned with error %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, e := range entries {
			p := e.Path
			if p == "" || strings.HasPrefix(p, "/") || p == ".." || strings.HasPrefix(p, "../") || path.Clean(p) != p {
				t.Fatalf("unclean path %q", p)
			}
			if seen[p] {
				t.Fatalf("path %q returned twice", p)
			}
			seen[p] = true
			if e.LayerIndex < 0 || e.LayerIndex > 1 || e.Layer != im.srcs[e.LayerIndex].info.Digest {
				t.Fatalf("%s: layer %d %q", p, e.LayerIndex, e.Layer)
			}
		}
	})
}
