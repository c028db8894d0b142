package image

import (
	"archive/tar"
	"bytes"
	"cmp"
	stdgzip "compress/gzip"
	"context"
	"debug/buildinfo"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/klauspost/compress/gzip"
)

// The benchmarks compare a full walk with merely inflating the same layers
// (the target: scan CPU within 1.5x of decompressing). Their input
// is built at benchmark start by benchLayers, deterministically:
//   - real files: a fixed sample (by FNV hash of the path) of this machine's
//     /usr, files up to 16 MiB, plus /var/lib/dpkg/status — a
//     realistic mix of ELF binaries and libraries, Python, jars, text and
//     package databases;
//   - when the machine has too little of that, synthetic files from a fixed
//     seed (text, binary-like data and a dpkg status file).
// Either way ~100 MB uncompressed, split into 4 gzip layers (default level,
// like docker), written as an OCI layout in a temporary directory.

const benchTarget = 100 << 20

type benchInput struct {
	dir          string   // OCI layout
	blobs        []string // layer blob files
	uncompressed int64
	compressed   int64
	files        int
	source       string
}

var (
	benchOnce sync.Once
	bench     *benchInput
	benchErr  error
)

type benchFile struct {
	name string
	mode int64
	data []byte
}

func realFiles() []benchFile {
	var out []benchFile
	add := func(name string, mode int64, p string) {
		if b, err := os.ReadFile(p); err == nil {
			out = append(out, benchFile{name, mode, b})
		}
	}
	add("var/lib/dpkg/status", 0o644, "/var/lib/dpkg/status")
	add("etc/os-release", 0o644, "/etc/os-release")
	// A uniform sample of the whole tree: files ordered by the hash of
	// their path, taken until the target size, then put back in path order.
	type cand struct {
		p    string
		h    uint32
		size int64
		mode fs.FileMode
	}
	var cands []cand
	filepath.WalkDir("/usr", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		h := fnv.New32a()
		io.WriteString(h, p)
		if h.Sum32()%10 != 0 {
			return nil
		}
		if info, err := d.Info(); err == nil && info.Size() <= 16<<20 {
			cands = append(cands, cand{p, h.Sum32(), info.Size(), info.Mode().Perm()})
		}
		return nil
	})
	slices.SortFunc(cands, func(a, b cand) int { return cmp.Compare(a.h, b.h) })
	var total int64
	n := 0
	for ; n < len(cands) && total < benchTarget; n++ {
		total += cands[n].size
	}
	cands = cands[:n]
	slices.SortFunc(cands, func(a, b cand) int { return strings.Compare(a.p, b.p) })
	for _, c := range cands {
		add(strings.TrimPrefix(c.p, "/"), int64(c.mode), c.p)
	}
	return out
}

func syntheticFiles() []benchFile {
	r := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("package version depends description the of and libc6 amd64 python3 usr lib share doc " +
		"Maintainer Architecture Source Installed-Size Status install ok installed Priority optional Section")
	text := func(n int) []byte {
		var b bytes.Buffer
		for b.Len() < n {
			b.WriteString(words[r.IntN(len(words))])
			if r.IntN(8) == 0 {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		}
		return b.Bytes()
	}
	binary := func(n int) []byte {
		b := make([]byte, n)
		for i := 0; i < n; {
			if r.IntN(3) == 0 { // runs, like code and zero padding
				run := min(r.IntN(64)+1, n-i)
				i += run
				continue
			}
			b[i] = byte(r.Uint32())
			i++
		}
		copy(b, "\x7fELF")
		return b
	}
	out := []benchFile{{"var/lib/dpkg/status", 0o644, text(2 << 20)}}
	var total int64
	for i := 0; total < benchTarget; i++ {
		var f benchFile
		switch k := r.IntN(10); {
		case k < 6:
			f = benchFile{fmt.Sprintf("usr/share/doc/pkg%d/file%d.txt", i%300, i), 0o644, text(r.IntN(40_000) + 100)}
		case k < 9:
			f = benchFile{fmt.Sprintf("usr/lib/x86_64-linux-gnu/lib%d.so", i), 0o644, binary(r.IntN(400_000) + 1000)}
		default:
			f = benchFile{fmt.Sprintf("usr/bin/tool%d", i), 0o755, binary(r.IntN(2_000_000) + 1000)}
		}
		out = append(out, f)
		total += int64(len(f.data))
	}
	return out
}

func buildBench() (*benchInput, error) {
	files := realFiles()
	source := "a sample of /usr"
	var total int64
	for _, f := range files {
		total += int64(len(f.data))
	}
	if total < benchTarget/2 {
		files, source = syntheticFiles(), "synthetic (seeded)"
	}
	in := &benchInput{source: source, files: len(files)}
	var layers [][]byte
	per := (len(files) + 3) / 4
	for start := 0; start < len(files); start += per {
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		dirs := map[string]bool{}
		for _, f := range files[start:min(start+per, len(files))] {
			for d := path.Dir(f.name); d != "." && !dirs[d]; d = path.Dir(d) {
				dirs[d] = true
				tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755})
			}
			if err := tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
				return nil, err
			}
			tw.Write(f.data)
		}
		tw.Close()
		in.uncompressed += int64(tb.Len())
		var gb bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gb, gzip.DefaultCompression)
		zw.Write(tb.Bytes())
		zw.Close()
		layers = append(layers, gb.Bytes())
		in.compressed += int64(gb.Len())
	}
	dir, err := os.MkdirTemp("", "bulwark-image-bench")
	if err != nil {
		return nil, err
	}
	in.dir = dir
	if _, err := makeRawLayout(dir, layers, nil); err != nil {
		return nil, err
	}
	for _, b := range layers {
		in.blobs = append(in.blobs, filepath.Join(dir, "blobs", "sha256", sha(b).Hex))
	}
	return in, nil
}

func benchLayers(b *testing.B) *benchInput {
	b.Helper()
	benchOnce.Do(func() { bench, benchErr = buildBench() })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	b.Logf("input: %s, %d files, %d MB uncompressed, %d MB gzip in 4 layers",
		bench.source, bench.files, bench.uncompressed>>20, bench.compressed>>20)
	return bench
}

// reportCPU reports the CPU time per op since start (see cpuTime), in ms.
func reportCPU(b *testing.B, start time.Duration) {
	if used := cpuTime() - start; used > 0 {
		b.ReportMetric(float64(used.Milliseconds())/float64(b.N), "cpu-ms/op")
	}
}

// BenchmarkDecompressOnly is the floor: inflating every layer to io.Discard.
func BenchmarkDecompressOnly(b *testing.B) {
	in := benchLayers(b)
	for _, impl := range []struct {
		name string
		open func(io.Reader) (io.Reader, error)
	}{
		{"klauspost", func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
		{"stdlib", func(r io.Reader) (io.Reader, error) { return stdgzip.NewReader(r) }},
	} {
		b.Run(impl.name, func(b *testing.B) {
			b.SetBytes(in.uncompressed)
			defer reportCPU(b, cpuTime())
			for b.Loop() {
				for _, p := range in.blobs {
					f, err := os.Open(p)
					if err != nil {
						b.Fatal(err)
					}
					zr, err := impl.open(f)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, zr); err != nil {
						b.Fatal(err)
					}
					f.Close()
				}
			}
		})
	}
}

// benchRequired asks for what Bulwark's extractors ask for: package
// databases and manifests, and every executable (Go and Rust binaries).
func benchRequired(p string, info inventory.FileInfo) bool {
	base := path.Base(p)
	switch {
	case p == "var/lib/dpkg/status", strings.HasPrefix(p, "var/lib/dpkg/status.d/"), p == "lib/apk/db/installed",
		strings.HasPrefix(p, "var/lib/rpm/"), p == "etc/os-release", p == "usr/lib/os-release",
		base == "package.json", base == "METADATA", base == "PKG-INFO", base == "installed.json",
		strings.HasSuffix(base, ".jar"), strings.HasSuffix(base, ".gemspec"), strings.HasSuffix(base, ".deps.json"):
		return true
	}
	return info.Mode&0o111 != 0 && info.Size > 1024
}

// benchExtract reads what it is given the way extractors do: binaries
// through ReaderAt and debug/buildinfo, the rest streamed.
func benchExtract(_ context.Context, in *inventory.Input) (int, error) {
	var magic [4]byte
	n, _ := io.ReadFull(in.Reader, magic[:])
	if n == 4 && string(magic[:]) == "\x7fELF" {
		ra, size, err := in.ReaderAt()
		if err != nil {
			return 0, err
		}
		if bi, err := buildinfo.Read(io.NewSectionReader(ra, 0, size)); err == nil {
			return len(bi.Deps), nil
		}
		return 0, nil
	}
	m, err := io.Copy(io.Discard, in.Reader)
	return int(m), err
}

func BenchmarkWalk(b *testing.B) {
	in := benchLayers(b)
	im, err := Open(context.Background(), PrefixOCILayout+in.dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer im.Close()
	for _, c := range []struct {
		name     string
		required func(string, inventory.FileInfo) bool
	}{
		{"typical", benchRequired},
		{"nothing-required", func(string, inventory.FileInfo) bool { return false }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(in.uncompressed)
			b.ReportAllocs()
			defer reportCPU(b, cpuTime())
			var n int
			for b.Loop() {
				entries, _, err := Walk(context.Background(), im, Limits{}, c.required, benchExtract, nil)
				if err != nil {
					b.Fatal(err)
				}
				n = len(entries)
			}
			b.ReportMetric(float64(n), "files/op")
		})
	}
}
