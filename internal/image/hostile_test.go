package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// walkRaw opens a hand-written layout and walks it.
// The extract counts the bytes instead of keeping them: the files of the
// bomb tests are large.
func walkRaw(t *testing.T, l rawLayout, lim Limits, progress func(done, total int64)) (*Image, []Entry[string], error) {
	t.Helper()
	im, err := Open(context.Background(), PrefixOCILayout+l.dir, Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { im.Close() })
	count := func(_ context.Context, in *inventory.Input) (string, error) {
		n, err := io.Copy(io.Discard, in.Reader)
		return fmt.Sprint(n), err
	}
	entries, _, err := Walk(context.Background(), im, lim, requireAll, count, progress)
	return im, entries, err
}

func wantLayerErr(t *testing.T, im *Image, entries []Entry[string], err error, target error, substr string) {
	t.Helper()
	if err == nil {
		t.Fatal("walk succeeded, want an error")
	}
	if entries != nil {
		t.Errorf("walk returned %d entries with its error", len(entries))
	}
	if !strings.Contains(err.Error(), im.Layers[len(im.Layers)-1].Digest) {
		t.Errorf("error %q does not name the layer", err)
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("error %q is not %v", err, target)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Errorf("error %q does not say %q", err, substr)
	}
}

func someFiles(t testing.TB, n int) []byte {
	var entries []te
	for i := range n {
		entries = append(entries, reg(fmt.Sprintf("dir/file%04d", i), strings.Repeat(fmt.Sprint(i), 100)))
	}
	return tarBytes(t, entries...)
}

func TestHostileTruncatedGzip(t *testing.T) {
	gz := gzipBytes(t, someFiles(t, 50))
	good := gzipBytes(t, someFiles(t, 2))
	// The manifest describes the truncated blob, so only decompression can
	// notice.
	im, entries, err := walkRaw(t, writeRawLayout(t, [][]byte{good, gz[:len(gz)-100]}, nil), Limits{}, nil)
	wantLayerErr(t, im, entries, err, nil, "truncated")
}

func TestHostileCorruptGzip(t *testing.T) {
	gz := gzipBytes(t, someFiles(t, 50))
	for _, off := range []int{20, len(gz) / 2, len(gz) - 6} { // header, deflate data, CRC
		bad := bytes.Clone(gz)
		bad[off] ^= 0x55
		im, entries, err := walkRaw(t, writeRawLayout(t, [][]byte{bad}, nil), Limits{}, nil)
		wantLayerErr(t, im, entries, err, nil, "gzip")
	}
}

func TestHostileNotATar(t *testing.T) {
	junk := bytes.Repeat([]byte("this is not a tar archive "), 100)
	for _, b := range [][]byte{junk, gzipBytes(t, junk)} {
		im, entries, err := walkRaw(t, writeRawLayout(t, [][]byte{b}, nil), Limits{}, nil)
		wantLayerErr(t, im, entries, err, nil, "tar")
	}
}

func TestHostileDigestMismatch(t *testing.T) {
	layer := tarBytes(t, reg("etc/passwd", "root:x:0:0"))
	// Stored bytes differ from what the manifest's digest covers, in a way
	// that still parses: only the digest can tell.
	tamper := func(_ int, b []byte) []byte { return bytes.Replace(b, []byte("root:x"), []byte("evil:x"), 1) }
	im, entries, err := walkRaw(t, writeRawLayout(t, [][]byte{layer}, tamper), Limits{}, nil)
	wantLayerErr(t, im, entries, err, ErrDigestMismatch, "hashes to")

	// Same through an oci-archive.
	l := writeRawLayout(t, [][]byte{gzipBytes(t, layer)}, func(_ int, b []byte) []byte {
		b = bytes.Clone(b)
		b[4] ^= 0xff // gzip MTIME: still a valid stream
		return b
	})
	archive := filepath.Join(t.TempDir(), "oci.tar")
	tarDir(t, l.dir, archive)
	im, err = Open(context.Background(), PrefixOCIArchive+archive, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	entries, _, err = Walk(context.Background(), im, Limits{}, requireAll, readAll, nil)
	wantLayerErr(t, im, entries, err, ErrDigestMismatch, "hashes to")
}

func TestHostileDockerArchiveDiffID(t *testing.T) {
	img := buildImage(t, "amd64", []te{reg("etc/passwd", "root:x:0:0")})
	path := filepath.Join(t.TempDir(), "save.tar")
	writeDockerSave(t, path, img, nil)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Same length, so the archive index stays valid.
	if err := os.WriteFile(path, bytes.Replace(b, []byte("root:x"), []byte("evil:x"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	im, err := Open(context.Background(), PrefixDockerArchive+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	entries, _, err := Walk(context.Background(), im, Limits{}, requireAll, readAll, nil)
	wantLayerErr(t, im, entries, err, ErrDigestMismatch, "")
}

// TestHostileRegistryDigestMismatch serves a layer whose bytes do not match
// its digest. go-containerregistry checks it at the end of the body; Walk
// must read to the end and fail.
func TestHostileRegistryDigestMismatch(t *testing.T) {
	img := buildImage(t, "amd64", []te{reg("etc/passwd", "root:x:0:0")})
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	good, _ := layers[0].Compressed()
	var orig bytes.Buffer
	orig.ReadFrom(good)
	// Changing the gzip header's MTIME keeps the stream valid (no checksum
	// covers it): only the digest can tell.
	body := bytes.Clone(orig.Bytes())
	body[4] ^= 0xff
	host := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+ld.String()) {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				w.WriteHeader(rec.Code)
				w.Write(body)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	ref := host + "/tampered:v1"
	push(t, ref, img)
	im, err := Open(context.Background(), ref, Options{Insecure: true, Keychain: anonymous})
	if err != nil {
		t.Fatal(err)
	}
	entries, _, err := Walk(context.Background(), im, Limits{}, requireAll, readAll, nil)
	wantLayerErr(t, im, entries, err, nil, "error verifying sha256 checksum")
}

// gzipBomb returns a gzip stream of a tar holding one file of size zeros
// (and, if endTar, a tar that ends after a small file, followed by zeros).
// It is built from one compressed 16 MiB member repeated, so making a 10 GB
// bomb costs one 16 MiB compression.
func gzipBomb(t testing.TB, size int64, endTar bool) []byte {
	t.Helper()
	var head bytes.Buffer
	tw := tar.NewWriter(&head)
	if endTar {
		if err := tw.WriteHeader(&tar.Header{Name: "small", Mode: 0o644, Size: 0, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Close() // writes the end-of-archive blocks; zeros follow
	} else if err := tw.WriteHeader(&tar.Header{Name: "bomb", Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	const chunk = 16 << 20
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	zw.Write(make([]byte, chunk))
	zw.Close()
	out := gzipBytes(t, head.Bytes())
	for range size / chunk {
		out = append(out, member.Bytes()...)
	}
	return out
}

func TestHostileGzipBomb(t *testing.T) {
	for _, endTar := range []bool{false, true} {
		bomb := gzipBomb(t, 10<<30, endTar)
		t.Logf("bomb: %d MB compressed, 10 GB of zeros", len(bomb)>>20)
		var done int64
		im, entries, err := walkRaw(t, writeRawLayout(t, [][]byte{bomb}, nil),
			Limits{MaxLayerBytes: 64 << 20}, func(d, _ int64) { done = d })
		wantLayerErr(t, im, entries, err, ErrLimit, "more than 67108864 bytes")
		// The limit trips after ~64 MiB of output, i.e. after reading a tiny
		// part of the compressed stream, not after inflating everything.
		if done > int64(len(bomb))/4 {
			t.Errorf("read %d of %d compressed bytes before stopping", done, len(bomb))
		}
	}
}

func TestHostileTotalBytes(t *testing.T) {
	layer := gzipBytes(t, tarBytes(t, reg("f", strings.Repeat("x", 600_000))))
	layer2 := gzipBytes(t, tarBytes(t, reg("g", strings.Repeat("y", 600_000))))
	im, entries, err := walkRaw(t, writeRawLayout(t, [][]byte{layer, layer2}, nil), Limits{MaxTotalBytes: 1_000_000}, nil)
	wantLayerErr(t, im, entries, err, ErrLimit, "in total")
}

func TestHostileTooManyFiles(t *testing.T) {
	im, entries, err := walkRaw(t, writeRawLayout(t, [][]byte{gzipBytes(t, someFiles(t, 100))}, nil), Limits{MaxFiles: 50}, nil)
	wantLayerErr(t, im, entries, err, ErrLimit, "more than 50 entries")
}

// TestHostileManifests checks the bounds on metadata: index, manifest and
// config larger than allowed, or larger than their descriptor says.
func TestHostileManifests(t *testing.T) {
	layer := gzipBytes(t, tarBytes(t, reg("a", "a")))
	huge := bytes.Repeat([]byte(" "), maxManifestBytes+1)

	rewrite := func(t *testing.T, l rawLayout, f func(m *v1.Manifest, idx *v1.IndexManifest)) {
		var m v1.Manifest
		if err := json.Unmarshal(l.manifest, &m); err != nil {
			t.Fatal(err)
		}
		idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
		f(&m, &idx)
		mb, _ := json.Marshal(m)
		h := sha(mb)
		os.WriteFile(filepath.Join(l.dir, "blobs", "sha256", h.Hex), mb, 0o644)
		if len(idx.Manifests) == 0 {
			idx.Manifests = []v1.Descriptor{{MediaType: types.OCIManifestSchema1, Size: int64(len(mb)), Digest: h}}
		}
		ib, _ := json.Marshal(idx)
		os.WriteFile(filepath.Join(l.dir, "index.json"), ib, 0o644)
	}
	tests := []struct {
		name   string
		modify func(t *testing.T, l rawLayout)
		target error
		substr string
	}{{
		name: "huge index.json",
		modify: func(t *testing.T, l rawLayout) {
			os.WriteFile(filepath.Join(l.dir, "index.json"), append([]byte(`{"schemaVersion":2,"manifests":[]}`), huge...), 0o644)
		},
		target: ErrLimit, substr: "index.json",
	}, {
		name: "manifest descriptor over the limit",
		modify: func(t *testing.T, l rawLayout) {
			rewrite(t, l, func(m *v1.Manifest, idx *v1.IndexManifest) {
				idx.Manifests = []v1.Descriptor{{MediaType: types.OCIManifestSchema1, Size: 1 << 30, Digest: sha(l.manifest)}}
			})
		},
		target: ErrLimit, substr: "limit",
	}, {
		name: "manifest larger than its descriptor says",
		modify: func(t *testing.T, l rawLayout) {
			padded := append(bytes.Clone(l.manifest), huge...)
			h := sha(padded)
			os.WriteFile(filepath.Join(l.dir, "blobs", "sha256", h.Hex), padded, 0o644)
			rewrite(t, l, func(m *v1.Manifest, idx *v1.IndexManifest) {
				idx.Manifests = []v1.Descriptor{{MediaType: types.OCIManifestSchema1, Size: 100, Digest: h}}
			})
		},
		target: ErrLimit, substr: "",
	}, {
		name: "config over the limit",
		modify: func(t *testing.T, l rawLayout) {
			rewrite(t, l, func(m *v1.Manifest, _ *v1.IndexManifest) { m.Config.Size = maxConfigBytes + 1 })
		},
		target: ErrLimit, substr: "config",
	}, {
		name: "too many layers",
		modify: func(t *testing.T, l rawLayout) {
			rewrite(t, l, func(m *v1.Manifest, _ *v1.IndexManifest) {
				for len(m.Layers) <= maxLayers {
					m.Layers = append(m.Layers, m.Layers[0])
				}
			})
		},
		target: ErrLimit, substr: "layers",
	}, {
		name: "not an image config",
		modify: func(t *testing.T, l rawLayout) {
			rewrite(t, l, func(m *v1.Manifest, _ *v1.IndexManifest) {
				m.Config.MediaType = "application/vnd.cncf.helm.config.v1+json"
			})
		},
		target: ErrInvalid, substr: "not a container image",
	}, {
		name: "manifest blob does not match its digest",
		modify: func(t *testing.T, l rawLayout) {
			h := sha(l.manifest)
			os.WriteFile(filepath.Join(l.dir, "blobs", "sha256", h.Hex), bytes.ToUpper(l.manifest), 0o644)
		},
		target: ErrDigestMismatch, substr: "",
	}, {
		name: "missing index.json",
		modify: func(t *testing.T, l rawLayout) {
			os.Remove(filepath.Join(l.dir, "index.json"))
		},
		target: ErrInvalid, substr: "index.json",
	}, {
		name: "index.json is a symlink out of the layout",
		modify: func(t *testing.T, l rawLayout) {
			outside := filepath.Join(t.TempDir(), "index.json")
			b, _ := os.ReadFile(filepath.Join(l.dir, "index.json"))
			os.WriteFile(outside, b, 0o644)
			os.Remove(filepath.Join(l.dir, "index.json"))
			if err := os.Symlink(outside, filepath.Join(l.dir, "index.json")); err != nil {
				t.Skip("symlinks not supported:", err)
			}
		},
		substr: "escapes",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := writeRawLayout(t, [][]byte{layer}, nil)
			tt.modify(t, l)
			for _, ref := range []string{PrefixOCILayout + l.dir, "archive"} {
				if ref == "archive" {
					if tt.name == "index.json is a symlink out of the layout" {
						continue // tar archives hold no symlink we follow
					}
					archive := filepath.Join(t.TempDir(), "oci.tar")
					tarDir(t, l.dir, archive)
					ref = PrefixOCIArchive + archive
				}
				_, err := Open(context.Background(), ref, Options{})
				if err == nil {
					t.Fatalf("%s: opened", ref)
				}
				if tt.target != nil && !errors.Is(err, tt.target) {
					t.Errorf("%s: err = %v, want %v", ref, err, tt.target)
				}
				if !strings.Contains(err.Error(), tt.substr) || !strings.Contains(err.Error(), ref) {
					t.Errorf("%s: err = %v, want it to name the input and say %q", ref, err, tt.substr)
				}
			}
		})
	}
}

// TestHostileManyBadEntries checks that the errors kept for a layer full of
// unsafe entries are bounded, and overlong paths are refused.
func TestHostileManyBadEntries(t *testing.T) {
	var entries []te
	for i := range 1500 {
		entries = append(entries, reg(fmt.Sprintf("../evil%d", i), ""))
	}
	entries = append(entries, reg(strings.Repeat("d/", 2100)+"f", "deep"), reg("ok", "ok"))
	im := openV1(t, buildImage(t, "amd64", entries))
	got, errs, err := Walk(context.Background(), im, Limits{}, requireAll, readAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]found{{"ok", 0, "ok"}}, summarize(got)); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if len(errs) != maxFileErrors+1 || !strings.Contains(errs[maxFileErrors].Error(), "501 more entries") {
		t.Errorf("%d errors, last %v; want %d and a count of the rest", len(errs), errs[len(errs)-1], maxFileErrors+1)
	}
}

// TestHostileEndlessEmptyMembers: gzip members that decompress to nothing
// never trip the decompressed-size bounds; the stored size must.
func TestHostileEndlessEmptyMembers(t *testing.T) {
	layer := gzipBytes(t, tarBytes(t, reg("a", "a")))
	empty := gzipBytes(t, nil)
	im, entries, err := walkRaw(t, writeRawLayout(t, [][]byte{layer}, func(_ int, b []byte) []byte {
		return append(bytes.Clone(b), bytes.Repeat(empty, 10_000)...)
	}), Limits{}, nil)
	wantLayerErr(t, im, entries, err, ErrDigestMismatch, "larger than")
}
