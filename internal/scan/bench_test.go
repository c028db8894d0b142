package scan_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/klauspost/compress/gzip"

	"github.com/bulwark-security/bulwark/internal/image"
	"github.com/bulwark-security/bulwark/internal/inventory/list"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/testimage"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// The speed target: scanning a ~100 MB (compressed) image with a
// warm database costs at most 1.5× the CPU of merely decompressing its
// layers. BenchmarkScanImage and BenchmarkDecompressLayers measure both on
// the same image, the "big" test image of internal/testimage (a debootstrap
// Debian with Python, Node.js, Java libraries and language packages
// installed by apt), in one run:
//
//	go test ./internal/scan -run '^$' -bench 'ScanImage|DecompressLayers' -benchtime 3x
//
// Both report cpu-ms/op, the process CPU time (user+system, all threads,
// the garbage collector included) per op from getrusage: wall time means
// little on a shared machine.

// repoRoot is the directory holding go.mod.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := testimage.RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return dir
}

// bigImage returns the big test image, skipping when it cannot be built
// here (it needs root and debootstrap; CI builds it).
func bigImage(b *testing.B) testimage.Image {
	b.Helper()
	img := testimage.Get(b, "big")
	bi, err := testimage.ReadBuildInfo(img)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("image %s: %d layers, %.1f MB compressed, %.1f MB uncompressed",
		img.Name, len(bi.Layers), float64(bi.CompressedSize)/1e6, float64(bi.UncompressedSize)/1e6)
	return img
}

// layerBlobs are the compressed layer blobs of an OCI layout, in order.
func layerBlobs(b *testing.B, dir string) []string {
	b.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		b.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		b.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		b.Fatalf("OCI layout %s: %v (%d manifests)", dir, err, len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		b.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		b.Fatal(err)
	}
	var blobs []string
	for _, l := range m.Layers {
		blobs = append(blobs, filepath.Join(dir, "blobs", l.Digest.Algorithm, l.Digest.Hex))
	}
	return blobs
}

// BenchmarkDecompressLayers is the floor: inflating every layer of the big
// image to io.Discard with the gzip implementation the scanner uses.
func BenchmarkDecompressLayers(b *testing.B) {
	img := bigImage(b)
	blobs := layerBlobs(b, img.OCILayout)
	var total int64
	start := cpuTime()
	for b.Loop() {
		total = 0
		for _, p := range blobs {
			f, err := os.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			zr, err := gzip.NewReader(f)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, zr)
			if err != nil {
				b.Fatal(err)
			}
			total += n
			f.Close()
		}
	}
	reportCPU(b, start)
	b.SetBytes(total)
}

// warmDB imports every real advisory source available once (the demo's
// subset of the Go vulnerability database and ../shared/vulndata: PyPA,
// RustSec, AlmaLinux, Alpine, Node.js WG, CISA KEV and vulnrichment).
var warmDB struct {
	once sync.Once
	dir  string
	err  error
}

func openWarmDB(b *testing.B) *vulndb.DB {
	b.Helper()
	root := repoRoot(b)
	warmDB.once.Do(func() {
		var paths []string
		// The demo's Go and Node.js subsets, and the full shared snapshots
		// (its KEV and CVE 5 files supersede the demo's subsets of them).
		for _, pattern := range []string{
			filepath.Join(root, "internal", "demo", "data", "demo-db", "golang-vulndb.zip"),
			filepath.Join(root, "..", "shared", "vulndata", "*.zip"),
			filepath.Join(root, "..", "shared", "vulndata", "cisa-kev.json"),
		} {
			m, _ := filepath.Glob(pattern)
			paths = append(paths, m...)
		}
		dir, err := os.MkdirTemp("", "bulwark-bench-db-")
		if err != nil {
			warmDB.err = err
			return
		}
		warmDB.dir = dir
		_, warmDB.err = vulndb.Import(context.Background(), dir, paths, vulndb.ImportOptions{})
	})
	if warmDB.err != nil {
		b.Fatal(warmDB.err)
	}
	db, err := vulndb.Open(warmDB.dir, vulndb.OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	st := db.Status()
	b.Logf("database: %d vulnerabilities from %d sources", st.Vulnerabilities, len(st.Sources))
	return db
}

func TestMain(m *testing.M) {
	if argv := os.Getenv(envLauncher); argv != "" {
		os.Exit(launch(argv, os.Getenv(envLauncherReport)))
	}
	code := m.Run()
	for _, d := range []string{warmDB.dir, bulwarkBin.dir, rssImages.dir} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

func newScanner() *scan.Scanner {
	return &scan.Scanner{
		Extractors: list.All(),
		Limits:     image.Limits{MaxTotalBytes: 8 << 30, MaxLayerBytes: 8 << 30, MaxFiles: 2_000_000, MaxFileSize: 512 << 20},
		Version:    "bench",
		Log:        slog.New(slog.DiscardHandler),
	}
}

// BenchmarkScanImage scans the big image end to end with a warm database:
// open, read every layer once, extract, assemble, match. The image is read
// from its OCI layout (compressed blobs, digests verified as they stream,
// as from a registry) and from its docker-archive (digests verified over
// the uncompressed tars, which costs a SHA-256 of every uncompressed byte).
func BenchmarkScanImage(b *testing.B) {
	img := bigImage(b)
	db := openWarmDB(b)
	for _, src := range []struct{ name, ref string }{
		{"oci-layout", image.PrefixOCILayout + img.OCILayout},
		{"docker-archive", image.PrefixDockerArchive + img.DockerArchive},
	} {
		b.Run(src.name, func(b *testing.B) {
			s := newScanner()
			var res *scan.Result
			start := cpuTime()
			for b.Loop() {
				var err error
				res, err = s.Image(b.Context(), src.ref, image.Options{}, nil)
				if err != nil {
					b.Fatal(err)
				}
				if err := scan.Match(b.Context(), db, res); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
			b.ReportMetric(float64(len(res.Packages)), "packages")
			b.ReportMetric(float64(len(res.Findings)), "findings")
			if len(res.Packages) < 200 || res.OS == nil {
				b.Errorf("scan found %d packages, OS %v: not a real scan", len(res.Packages), res.OS)
			}
		})
	}
}

// reportCPU reports the process CPU time per op since start.
func reportCPU(b *testing.B, start time.Duration) {
	if used := cpuTime() - start; used > 0 && b.N > 0 {
		b.ReportMetric(float64(used.Microseconds())/1000/float64(b.N), "cpu-ms/op")
	}
}
