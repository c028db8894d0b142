package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// TestMain removes the benchmark input (see benchLayers) when done.
func TestMain(m *testing.M) {
	code := m.Run()
	if bench != nil {
		os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

// te is one tar entry of a test layer.
type te struct {
	name string
	typ  byte // tar.TypeReg when 0
	body string
	link string
	mode int64 // 0o644 when 0
}

func reg(name, body string) te     { return te{name: name, body: body} }
func dir(name string) te           { return te{name: name, typ: tar.TypeDir} }
func symlink(name, to string) te   { return te{name: name, typ: tar.TypeSymlink, link: to} }
func hardlink(name, to string) te  { return te{name: name, typ: tar.TypeLink, link: to} }
func whiteout(name string) te      { return te{name: name} }
func private(name, body string) te { return te{name: name, body: body, mode: 0o600} }

func tarBytes(t testing.TB, entries ...te) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layerOf makes a go-containerregistry layer from tar bytes (it gzips them).
func layerOf(t testing.TB, tarData []byte, opts ...tarball.LayerOption) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarData)), nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// buildImage builds a linux image for arch from layers of tar entries,
// with one history entry per layer.
func buildImage(t testing.TB, arch string, layers ...[]te) v1.Image {
	t.Helper()
	var adds []mutate.Addendum
	for i, entries := range layers {
		adds = append(adds, mutate.Addendum{
			Layer:   layerOf(t, tarBytes(t, entries...)),
			History: v1.History{CreatedBy: "layer " + string(rune('A'+i))},
		})
	}
	img, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// writeLayoutImage writes img as an OCI layout and returns its directory.
func writeLayoutImage(t testing.TB, img v1.Image, refName string) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	var opts []layout.Option
	if refName != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{annotationRefName: refName}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		t.Fatal(err)
	}
	return dir
}

// openV1 opens img through an OCI layout on disk (a real source).
func openV1(t testing.TB, img v1.Image) *Image {
	t.Helper()
	im, err := Open(context.Background(), PrefixOCILayout+writeLayoutImage(t, img, ""), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() })
	return im
}

// tarDir packs a directory into a tar file (an oci-archive from a layout).
func tarDir(t testing.TB, src, dst string) {
	t.Helper()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == src {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// rawLayout writes an OCI layout by hand, blob by blob, so that hostile
// inputs (truncated blobs, lying digests, bombs) can be built that
// go-containerregistry's writers would refuse. Each layer is stored as
// given; diffIDs are made up (Walk checks the stored digest, not them).
type rawLayout struct {
	dir      string
	manifest []byte
}

func writeRawLayout(t testing.TB, layers [][]byte, tamper func(i int, stored []byte) []byte) rawLayout {
	t.Helper()
	l, err := makeRawLayout(t.TempDir(), layers, tamper)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func makeRawLayout(dir string, layers [][]byte, tamper func(i int, stored []byte) []byte) (rawLayout, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return rawLayout{}, err
	}
	var werr error
	put := func(h v1.Hash, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", h.Hex), b, 0o644); err != nil && werr == nil {
			werr = err
		}
	}
	cfg := v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
	for i, l := range layers {
		h := sha(l)
		stored := l
		if tamper != nil {
			stored = tamper(i, l)
		}
		put(h, stored)
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCILayer, Size: int64(len(l)), Digest: h})
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, sha([]byte{byte(i)}))
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return rawLayout{}, err
	}
	put(sha(cb), cb)
	m.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cb)), Digest: sha(cb)}
	mb, err := json.Marshal(m)
	if err != nil {
		return rawLayout{}, err
	}
	put(sha(mb), mb)
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex,
		Manifests: []v1.Descriptor{{MediaType: types.OCIManifestSchema1, Size: int64(len(mb)), Digest: sha(mb)}}}
	ib, err := json.Marshal(idx)
	if err != nil {
		return rawLayout{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644); err != nil {
		return rawLayout{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return rawLayout{}, err
	}
	return rawLayout{dir: dir, manifest: mb}, werr
}

// readAll is the extract of most tests: the file's content.
func readAll(_ context.Context, in *inventory.Input) (string, error) {
	b, err := io.ReadAll(in.Reader)
	return string(b), err
}

// requireAll asks for every file except those with mode 0600, so tests can
// place files that exist but are not asked for.
func requireAll(_ string, info inventory.FileInfo) bool { return info.Mode.Perm() != 0o600 }

// found is an Entry reduced to what tests compare.
type found struct {
	Path  string
	Layer int
	Value string
}

func summarize(entries []Entry[string]) []found {
	out := []found{}
	for _, e := range entries {
		out = append(out, found{e.Path, e.LayerIndex, e.Value})
	}
	return out
}
