package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// wantError checks the shape of every failed scan: exit 2, an error on
// stderr containing each of want, and no report at all on stdout — a
// partial result must never pass for a complete one.
func wantError(t *testing.T, r result, want ...string) {
	t.Helper()
	r.want(t, ExitError)
	if r.stdout != "" {
		t.Errorf("a report was written although the scan failed (%d bytes):\n%.500s", len(r.stdout), r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "Error: ") && !strings.Contains(r.stderr, "\nError: ") {
		t.Errorf("stderr has no error line:\n%s", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
}

func TestErrorMissingDB(t *testing.T) {
	dir := t.TempDir()
	r := run(t, "scan", "image", "--db-dir", dir, "--format", "json", demoImage(t))
	wantError(t, r, "bulwark db import", "--skip-db")
	// db status says the same.
	wantError(t, run(t, "db", "status", "--db-dir", dir), dir)
}

func TestErrorUnreadableImage(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.tar")
	if err := os.WriteFile(garbage, []byte("this is not a tar archive, nor anything else\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{
		"docker-archive:" + filepath.Join(dir, "missing.tar"),
		"docker-archive:" + garbage,
		"oci-archive:" + garbage,
		"oci-layout:" + dir,
	} {
		t.Run(ref, func(t *testing.T) {
			r := run(t, "scan", "image", "--skip-db", "--format", "json", ref)
			wantError(t, r, strings.SplitN(ref, ":", 2)[1])
		})
	}
	t.Run("not a directory", func(t *testing.T) {
		wantError(t, run(t, "scan", "fs", "--skip-db", "--format", "json", filepath.Join(dir, "nope")), filepath.Join(dir, "nope"))
	})
	t.Run("not an SBOM", func(t *testing.T) {
		wantError(t, run(t, "scan", "sbom", "--skip-db", "--format", "json", garbage), garbage)
	})
}

// corruptLayerImage writes an OCI layout whose last layer is the demo
// image's node_modules layer with its gzip stream damaged by damage. The
// manifest digest is computed over the damaged blob, so only the
// decompressor can notice.
func corruptLayerImage(t *testing.T, damage func([]byte) []byte) string {
	t.Helper()
	src, err := tarball.ImageFromPath(filepath.Join(repoRoot(t), "internal", "demo", "data", "demo-image.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := src.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var blobs []v1.Layer
	for i, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if i == len(layers)-1 {
			b = damage(b)
		}
		blobs = append(blobs, static.NewLayer(b, types.OCILayer))
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), blobs...)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestErrorCorruptLayer(t *testing.T) {
	db := demoDB(t)
	for _, c := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"flipped bytes", func(b []byte) []byte {
			b = append([]byte(nil), b...)
			for i := len(b) / 2; i < len(b)/2+64; i++ {
				b[i] ^= 0x5a
			}
			return b
		}},
		{"bad trailer", func(b []byte) []byte {
			b = append([]byte(nil), b...)
			b[len(b)-6] ^= 0xff // the CRC-32 of the gzip trailer
			return b
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ref := "oci-layout:" + corruptLayerImage(t, c.damage)
			for _, format := range []string{"json", "table", "cyclonedx"} {
				r := run(t, "scan", "image", "--db-dir", db, "--format", format, ref)
				wantError(t, r, ref, "layer 2")
			}
			// With -o, no report file is left behind either.
			out := filepath.Join(t.TempDir(), "report.json")
			wantError(t, run(t, "scan", "image", "--db-dir", db, "-o", out, ref), ref)
			if _, err := os.Stat(out); err == nil {
				data, _ := os.ReadFile(out)
				t.Errorf("report file written for a failed scan (%d bytes)", len(data))
			}
		})
	}
	// Control: the same construction without damage scans fine.
	r := run(t, "scan", "image", "--db-dir", db, "--format", "json", "oci-layout:"+corruptLayerImage(t, func(b []byte) []byte { return b })).want(t, ExitOK)
	if res := parseResult(t, r.stdout); len(res.Findings) == 0 {
		t.Error("control image: no findings")
	}
}

func TestErrorLimits(t *testing.T) {
	// The demo image decompresses to about 8 MB: 1 MB is a bomb here.
	r := run(t, "scan", "image", "--skip-db", "--format", "json", "--max-image-size", "1000000", demoImage(t))
	wantError(t, r, "limit", "decompress")
	r = run(t, "scan", "image", "--skip-db", "--format", "json", "--max-files", "10", demoImage(t))
	wantError(t, r, "limit", "10")
}
