package scan_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/bulwark-security/bulwark/internal/scan"
)

// BenchmarkPeakRSS1GB checks the memory target — peak RSS under
// 200 MB for a 1 GB image — on an image built here from real files: a
// deterministic sample of this machine's /usr (repeated in several layers
// to reach the size), this machine's dpkg database (status and the file
// lists, so OS ownership is computed over real data), and a last layer of
// big real files: Go toolchain binaries, large non-Go ELF files (cc1plus,
// libclang-cpp, libjvm), the jars of /usr/share/java and a war holding all
// of them. The image is scanned by the bulwark binary in a child process, so
// the figure is the peak of a real `bulwark scan image` and nothing of the
// test binary; it comes from the child's rusage (ru_maxrss), the child being
// started by a small launcher process (see runMeasured for why).
//
// Sub-benchmarks scan a small and the full image, so growth of RSS with
// image size shows as the difference:
//
//	go test ./internal/scan -run '^$' -bench PeakRSS1GB -benchtime 1x
func BenchmarkPeakRSS1GB(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("peak RSS is read from Linux rusage (ru_maxrss in KiB)")
	}
	if _, err := os.Stat("/usr/lib"); err != nil {
		b.Skipf("no /usr to build the image from: %v", err)
	}
	bin := bulwarkBinary(b)
	for _, c := range []struct {
		name   string
		copies int
	}{
		{"size=small", 1},
		{"size=1GB", 3},
	} {
		b.Run(c.name, func(b *testing.B) {
			img := rssImage(b, c.copies)
			b.Logf("image: %s, %d layers, %.0f MB uncompressed, %.0f MB compressed, %d files",
				img.path, img.layers, float64(img.uncompressed)/1e6, float64(img.compressed)/1e6, img.files)
			var peak int64
			var cpu time.Duration
			var res scan.Result
			for b.Loop() {
				out := filepath.Join(b.TempDir(), "result.json")
				ru := runMeasured(b, bin, "scan", "image", "--skip-db", "--no-progress",
					"--format", "json", "-o", out, "docker-archive:"+img.path)
				peak = max(peak, ru.Maxrss*1024)
				cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
				data, err := os.ReadFile(out)
				if err != nil {
					b.Fatal(err)
				}
				if err := json.Unmarshal(data, &res); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-MB")
			b.ReportMetric(cpu.Seconds()/float64(b.N), "child-cpu-s/op")
			b.ReportMetric(float64(img.uncompressed)/(1<<20), "image-MB")
			b.ReportMetric(float64(len(res.Packages)), "packages")
			// A scan that found nothing would make a meaningless figure.
			types := map[string]int{}
			for _, p := range res.Packages {
				types[p.Type]++
			}
			if types["deb"] < 100 || types["maven"] == 0 || types["golang"] == 0 || res.OS == nil {
				b.Errorf("the scan found %v, OS %v: expected this machine's dpkg packages, jars and Go binaries", types, res.OS)
			}
			if len(res.Errors) > 0 {
				b.Logf("%d file errors, first: %+v", len(res.Errors), res.Errors[0])
			}
			if peak > 200<<20 {
				b.Logf("peak RSS %.0f MB is over the 200 MB target", float64(peak)/(1<<20))
			}
		})
	}
}

// envLauncher makes the test binary a launcher (see runMeasured): it runs
// the command given as JSON in this variable and writes the command's
// rusage, as JSON, to the file named by envLauncherReport.
const (
	envLauncher       = "BULWARK_BENCH_LAUNCH"
	envLauncherReport = "BULWARK_BENCH_LAUNCH_REPORT"
)

// runMeasured runs a command and returns its rusage. It does not start the
// command itself: Go starts children with vfork semantics (CLONE_VM), and
// Linux then carries the parent's peak RSS into the child's ru_maxrss at
// exec — a benchmark process that has built a gigabyte image reports its
// own peak for every child. A fresh, small process (this test binary
// started as a launcher) starts the command instead, so ru_maxrss is the
// command's own peak, floored at the launcher's few MB.
func runMeasured(b *testing.B, args ...string) syscall.Rusage {
	b.Helper()
	argv, err := json.Marshal(args)
	if err != nil {
		b.Fatal(err)
	}
	report := filepath.Join(b.TempDir(), "rusage.json")
	cmd := exec.CommandContext(b.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envLauncher+"="+string(argv), envLauncherReport+"="+report)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		b.Fatalf("%v: %v\n%s", args, err, out.String())
	}
	data, err := os.ReadFile(report)
	if err != nil {
		b.Fatalf("launcher wrote no rusage: %v\n%s", err, out.String())
	}
	var ru syscall.Rusage
	if err := json.Unmarshal(data, &ru); err != nil {
		b.Fatal(err)
	}
	return ru
}

// launch is the launcher side of runMeasured, called from TestMain.
func launch(argvJSON, report string) int {
	var argv []string
	if err := json.Unmarshal([]byte(argvJSON), &argv); err != nil || len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "launcher: bad command:", argvJSON, err)
		return 2
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "launcher:", err)
		return 1
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		fmt.Fprintln(os.Stderr, "launcher: no rusage")
		return 2
	}
	data, err := json.Marshal(ru)
	if err == nil {
		err = os.WriteFile(report, data, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "launcher:", err)
		return 2
	}
	return 0
}

// bulwarkBinary builds cmd/bulwark into a temporary directory.
var bulwarkBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func bulwarkBinary(b *testing.B) string {
	b.Helper()
	root := repoRoot(b)
	bulwarkBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "bulwark-bench-bin-")
		if err != nil {
			bulwarkBin.err = err
			return
		}
		bulwarkBin.dir = dir
		bulwarkBin.path = filepath.Join(dir, "bulwark")
		cmd := exec.Command("go", "build", "-o", bulwarkBin.path, "./cmd/bulwark")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			bulwarkBin.err = fmt.Errorf("go build ./cmd/bulwark: %v\n%s", err, out)
		}
	})
	if bulwarkBin.err != nil {
		b.Fatal(bulwarkBin.err)
	}
	return bulwarkBin.path
}

// builtImage is a docker-archive written by rssImage.
type builtImage struct {
	path                     string
	layers, files            int
	uncompressed, compressed int64
}

var rssImages struct {
	sync.Mutex
	dir    string
	images map[int]builtImage
}

// rssImage builds (once per process) the image with copies layers of
// sampled /usr files.
func rssImage(b *testing.B, copies int) builtImage {
	b.Helper()
	rssImages.Lock()
	defer rssImages.Unlock()
	if img, ok := rssImages.images[copies]; ok {
		return img
	}
	if rssImages.dir == "" {
		dir, err := os.MkdirTemp("", "bulwark-bench-rss-")
		if err != nil {
			b.Fatal(err)
		}
		rssImages.dir, rssImages.images = dir, map[int]builtImage{}
	}
	start := time.Now()
	img, err := buildRSSImage(filepath.Join(rssImages.dir, fmt.Sprintf("rss-%d.tar", copies)), copies)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("built %s in %s", img.path, time.Since(start).Round(time.Second))
	rssImages.images[copies] = img
	return img
}

// sampleTarget is how much of /usr one copy layer holds.
const sampleTarget = 240 << 20

// maxSampled skips files larger than this in the sample; the big files
// have their own layer.
const maxSampled = 4 << 20

// fileSpec is one file to put in a layer: its path in the image and where
// its content comes from (or the content itself).
type fileSpec struct {
	name string
	src  string
	data []byte
	mode int64
}

// usrSample picks every k-th regular file of /usr, in lexical order, k
// chosen so the sample weighs about sampleTarget: the same files on every
// run on the same machine.
func usrSample() ([]fileSpec, error) {
	type cand struct {
		path string
		size int64
		mode fs.FileMode
	}
	var all []cand
	var total int64
	err := filepath.WalkDir("/usr", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable parts of /usr are left out
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Size() > maxSampled {
			return nil
		}
		all = append(all, cand{p, info.Size(), info.Mode()})
		total += info.Size()
		return nil
	})
	if err != nil {
		return nil, err
	}
	k := max(1, int(total/sampleTarget))
	var out []fileSpec
	for i := 0; i < len(all); i += k {
		c := all[i]
		if f, err := os.Open(c.path); err == nil { // readable
			f.Close()
			out = append(out, fileSpec{name: strings.TrimPrefix(c.path, "/"), src: c.path, mode: int64(c.mode.Perm())})
		}
	}
	return out, nil
}

// dpkgFiles is this machine's dpkg database and os-release: real OS
// package data for the extractors and for file ownership.
func dpkgFiles() []fileSpec {
	var out []fileSpec
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release", "/var/lib/dpkg/status"} {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			out = append(out, fileSpec{name: strings.TrimPrefix(p, "/"), src: real, mode: 0o644})
		}
	}
	lists, _ := filepath.Glob("/var/lib/dpkg/info/*.list")
	sort.Strings(lists)
	for _, l := range lists {
		out = append(out, fileSpec{name: strings.TrimPrefix(l, "/"), src: l, mode: 0o644})
	}
	return out
}

// bigFiles are large real binaries and Java archives, where they exist.
func bigFiles() ([]fileSpec, error) {
	var out []fileSpec
	goroot := ""
	if b, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		goroot = strings.TrimSpace(string(b))
	}
	for _, p := range []string{
		filepath.Join(goroot, "bin", "go"),
		filepath.Join(goroot, "pkg", "tool", runtime.GOOS+"_"+runtime.GOARCH, "compile"),
		filepath.Join(goroot, "pkg", "tool", runtime.GOOS+"_"+runtime.GOARCH, "vet"),
	} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, fileSpec{name: "usr/local/bin/" + path.Base(p), src: p, mode: 0o755})
		}
	}
	for _, pattern := range []string{
		"/usr/lib/gcc/*/*/cc1plus",
		"/usr/lib/llvm-*/lib/libclang-cpp.so.*",
		"/usr/lib/jvm/*/lib/server/libjvm.so",
	} {
		m, _ := filepath.Glob(pattern)
		sort.Strings(m)
		for i, p := range m {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				out = append(out, fileSpec{name: fmt.Sprintf("opt/big/%d-%s", i, path.Base(p)), src: real, mode: 0o755})
			}
		}
	}
	jars, _ := filepath.Glob("/usr/share/java/*.jar")
	sort.Strings(jars)
	var war bytes.Buffer
	zw := zip.NewWriter(&war)
	for _, j := range jars {
		real, err := filepath.EvalSymlinks(j)
		if err != nil {
			continue
		}
		out = append(out, fileSpec{name: "app/lib/" + path.Base(j), src: real, mode: 0o644})
		data, err := os.ReadFile(real)
		if err != nil {
			continue
		}
		// Jars are compressed already: stored, as build tools do.
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "WEB-INF/lib/" + path.Base(j), Method: zip.Store, Modified: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if len(jars) > 0 {
		out = append(out, fileSpec{name: "app/app.war", data: war.Bytes(), mode: 0o644})
	}
	return out, nil
}

// buildRSSImage writes a docker-archive: layer 0 the dpkg database and the
// /usr sample, layers 1..copies-1 the same sample under opt/copyN/, a last
// layer of big files. Layers are gzip'd (fastest level, klauspost).
func buildRSSImage(dst string, copies int) (builtImage, error) {
	img := builtImage{path: dst}
	sample, err := usrSample()
	if err != nil {
		return img, err
	}
	big, err := bigFiles()
	if err != nil {
		return img, err
	}
	var layers [][]fileSpec
	layers = append(layers, append(dpkgFiles(), sample...))
	for c := 1; c < copies; c++ {
		cp := make([]fileSpec, len(sample))
		for i, f := range sample {
			f.name = fmt.Sprintf("opt/copy%d/%s", c, f.name)
			cp[i] = f
		}
		layers = append(layers, cp)
	}
	layers = append(layers, big)

	tmp := dst + ".layers"
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return img, err
	}
	defer os.RemoveAll(tmp)
	var names, diffIDs []string
	for i, files := range layers {
		name := fmt.Sprintf("layer%d.tar.gz", i)
		diffID, raw, comp, err := writeLayer(filepath.Join(tmp, name), files)
		if err != nil {
			return img, fmt.Errorf("layer %d: %w", i, err)
		}
		names = append(names, name)
		diffIDs = append(diffIDs, diffID)
		img.uncompressed += raw
		img.compressed += comp
		img.files += len(files)
	}
	img.layers = len(layers)

	cfg, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      "2025-01-01T00:00:00Z",
		"config":       map[string]any{},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return img, err
	}
	manifest, err := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{"bulwark.bench/rss:latest"}, "Layers": names}})
	if err != nil {
		return img, err
	}
	f, err := os.Create(dst)
	if err != nil {
		return img, err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, r io.Reader, size int64) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, ModTime: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	if err := add("manifest.json", bytes.NewReader(manifest), int64(len(manifest))); err != nil {
		return img, err
	}
	if err := add("config.json", bytes.NewReader(cfg), int64(len(cfg))); err != nil {
		return img, err
	}
	for _, name := range names {
		lf, err := os.Open(filepath.Join(tmp, name))
		if err != nil {
			return img, err
		}
		st, err := lf.Stat()
		if err == nil {
			err = add(name, lf, st.Size())
		}
		lf.Close()
		if err != nil {
			return img, err
		}
	}
	if err := tw.Close(); err != nil {
		return img, err
	}
	return img, f.Close()
}

// writeLayer writes files as a gzip'd tar, with their parent directories,
// and returns the diff ID and the uncompressed and compressed sizes.
func writeLayer(dst string, files []fileSpec) (diffID string, raw, comp int64, err error) {
	f, err := os.Create(dst)
	if err != nil {
		return "", 0, 0, err
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		return "", 0, 0, err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(zw, h)}
	tw := tar.NewWriter(cw)
	mtime := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	dirs := map[string]bool{}
	var mkdirs func(d string) error
	mkdirs = func(d string) error {
		if d == "." || d == "" || dirs[d] {
			return nil
		}
		if err := mkdirs(path.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime})
	}
	for _, spec := range files {
		if err := mkdirs(path.Dir(spec.name)); err != nil {
			return "", 0, 0, err
		}
		if err := writeEntry(tw, spec, mtime); err != nil {
			return "", 0, 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return "", 0, 0, err
	}
	if err := zw.Close(); err != nil {
		return "", 0, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return "", 0, 0, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), cw.n, st.Size(), f.Close()
}

func writeEntry(tw *tar.Writer, spec fileSpec, mtime time.Time) error {
	var r io.Reader
	var size int64
	if spec.data != nil {
		r, size = bytes.NewReader(spec.data), int64(len(spec.data))
	} else {
		f, err := os.Open(spec.src)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		r, size = f, st.Size()
	}
	if err := tw.WriteHeader(&tar.Header{Name: spec.name, Typeflag: tar.TypeReg, Mode: spec.mode, Size: size, ModTime: mtime}); err != nil {
		return err
	}
	_, err := io.CopyN(tw, r, size)
	return err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
