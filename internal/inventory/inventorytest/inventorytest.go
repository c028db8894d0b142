package inventorytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// Input hands data to an extractor the way the scan core does: Reader
// streams it, and ReaderAt gives random access to the same bytes (a fresh
// reader on each call, like the core's buffer). The file is a regular one
// of len(data) bytes.
func Input(path string, data []byte) *inventory.Input {
	return &inventory.Input{
		Path:   path,
		Info:   inventory.FileInfo{Size: int64(len(data)), Mode: 0o644},
		Reader: bytes.NewReader(data),
		ReaderAt: func() (io.ReaderAt, int64, error) {
			return bytes.NewReader(data), int64(len(data)), nil
		},
	}
}

// Executable is Input for an executable file, as binary extractors get
// them.
func Executable(path string, data []byte) *inventory.Input {
	in := Input(path, data)
	in.Info.Mode = 0o755
	return in
}

// CountReaderAt makes in count the calls to its ReaderAt in *calls, so a
// test can check that a file was turned away from its first bytes, without
// being buffered.
func CountReaderAt(in *inventory.Input, calls *int) *inventory.Input {
	ra := in.ReaderAt
	in.ReaderAt = func() (io.ReaderAt, int64, error) {
		*calls++
		return ra()
	}
	return in
}

// Extract runs e on data as the file at path.
func Extract(e inventory.Extractor, path string, data []byte) (inventory.Output, error) {
	return e.Extract(context.Background(), Input(path, data))
}

// MustExtract is Extract for files that must parse: an error fails the
// test.
func MustExtract(tb testing.TB, e inventory.Extractor, path string, data []byte) inventory.Output {
	tb.Helper()
	out, err := Extract(e, path, data)
	if err != nil {
		tb.Fatalf("Extract(%s): %v", path, err)
	}
	return out
}

// ReadFile returns the content of the file at path, relative to the test's
// package directory ("testdata/..."); a file that cannot be read fails the
// test.
func ReadFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Walk hands every regular file below root that e requires to e, the way
// the scan core does: paths relative to root and slash-separated, with the
// file's real size and mode. An Extract error fails the test and the walk
// goes on. It returns the packages of all files, in path order.
func Walk(tb testing.TB, e inventory.Extractor, root string) []inventory.Package {
	tb.Helper()
	var out []inventory.Package
	for _, f := range required(tb, e, root) {
		o, err := e.Extract(context.Background(), f.input())
		if err != nil {
			tb.Errorf("Extract(%s): %v", f.path, err)
			continue
		}
		out = append(out, o.Packages...)
	}
	return out
}

// file is a file of a directory tree, as the scan core would hand it over.
type file struct {
	path string
	info inventory.FileInfo
	data []byte
}

func (f file) input() *inventory.Input {
	in := Input(f.path, f.data)
	in.Info = f.info
	return in
}

// required returns every regular file below root that e requires, in path
// order.
func required(tb testing.TB, e inventory.Extractor, root string) []file {
	tb.Helper()
	var files []file
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		fi := inventory.FileInfo{Size: info.Size(), Mode: info.Mode()}
		if !e.Required(rel, fi) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, file{rel, fi, data})
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return files
}

// Golden compares got with testdata/golden/<name>.json, after rewriting
// that file from got when the test runs with -update.
func Golden[T any](tb testing.TB, name string, got T) {
	tb.Helper()
	file := filepath.Join("testdata", "golden", name+".json")
	if *update {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		tb.Fatalf("%v (run with -update to create)", err)
	}
	var want T
	if err := json.Unmarshal(b, &want); err != nil {
		tb.Fatalf("%s: %v", file, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		tb.Errorf("%s mismatch (-want +got):\n%s", file, diff)
	}
}

// CheckRequired checks e.Required(path, info) for each path against want.
func CheckRequired(tb testing.TB, e inventory.Extractor, info inventory.FileInfo, want map[string]bool) {
	tb.Helper()
	for p, w := range want {
		if got := e.Required(p, info); got != w {
			tb.Errorf("Required(%q) = %v, want %v", p, got, w)
		}
	}
}

// CheckRequiredNoAllocs checks that Required allocates nothing on paths:
// the core calls it for every file of every layer.
func CheckRequiredNoAllocs(tb testing.TB, paths []string, es ...inventory.Extractor) {
	tb.Helper()
	n := testing.AllocsPerRun(100, func() {
		for _, p := range paths {
			for _, e := range es {
				e.Required(p, inventory.FileInfo{})
			}
		}
	})
	if n != 0 {
		tb.Errorf("Required allocates %v times", n)
	}
}

// CheckCancelled checks that Extract gives up on a cancelled context with
// context.Canceled.
func CheckCancelled(tb testing.TB, e inventory.Extractor, path string, data []byte) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Extract(ctx, Input(path, data)); !errors.Is(err, context.Canceled) {
		tb.Errorf("err = %v, want context.Canceled", err)
	}
}

// CheckReadError checks that a failing read is reported, not taken for the
// end of the file.
func CheckReadError(tb testing.TB, e inventory.Extractor, path string) {
	tb.Helper()
	boom := errors.New("boom")
	in := Input(path, nil)
	in.Reader = iotest.ErrReader(boom)
	if _, err := e.Extract(context.Background(), in); !errors.Is(err, boom) || !strings.Contains(err.Error(), "boom") {
		tb.Errorf("err = %v, want the read error", err)
	}
}

// CheckOutput returns what is wrong with out, the output of e for the file
// at path of size bytes, in the terms every extractor must meet for any
// input: packages have a name and a version, are located at path and name e
// as their extractor; an OS has an ID and is located at path; owned files
// are clean relative paths with an owner; and there are no more packages or
// owned files than the input has bytes, so output is bounded by input.
func CheckOutput(e inventory.Extractor, path string, size int, out inventory.Output) error {
	if len(out.Packages) > size+1 {
		return fmt.Errorf("%d packages from %d bytes", len(out.Packages), size)
	}
	if len(out.OwnedFiles) > size+1 {
		return fmt.Errorf("%d owned files from %d bytes", len(out.OwnedFiles), size)
	}
	for _, p := range out.Packages {
		if p.Name == "" || p.Version == "" || p.Location != path || p.Extractor != e.Name() {
			return fmt.Errorf("malformed package %+v", p)
		}
	}
	if out.OS != nil && (out.OS.ID == "" || out.OS.Location != path) {
		return fmt.Errorf("malformed OS %+v", out.OS)
	}
	for f, owner := range out.OwnedFiles {
		if !clean(f) || owner == "" {
			return fmt.Errorf("owned path %q (owner %q) is not a clean relative path", f, owner)
		}
	}
	return nil
}

// clean reports whether p is a path of the scan's form: relative,
// slash-separated, cleaned and not escaping the root.
func clean(p string) bool {
	return p != "" && p != "." && path.Clean(p) == p && !strings.HasPrefix(p, "/") &&
		p != ".." && !strings.HasPrefix(p, "../")
}

// Fuzz runs e on data as the file at path and fails the test on output
// CheckOutput refuses, or on a run of more than 10 s (an extractor must
// stop on its context; the fuzzer reports a hang or a panic by itself). It
// returns what Extract returned, for the format's own checks.
func Fuzz(t *testing.T, e inventory.Extractor, path string, data []byte) (inventory.Output, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.Extract(ctx, Input(path, data))
	if ctx.Err() != nil {
		t.Fatalf("%s: took over 10s on %d bytes", path, len(data))
	}
	if perr := CheckOutput(e, path, len(data), out); perr != nil {
		t.Fatalf("%s: %v", path, perr)
	}
	return out, err
}

// HostileTimeout bounds each hostile case: an extractor that needs longer
// on a small hostile file is looping or doing work the file does not
// justify.
const HostileTimeout = 20 * time.Second

// Case is one hostile input for RunHostile.
type Case struct {
	Name string
	// Path is the file's path; empty means RunHostile's path.
	Path string
	In   string
	// WantErr says Extract must fail. ErrContains and ErrIs, when set,
	// also say how, and imply WantErr.
	WantErr     bool
	ErrContains string
	ErrIs       error
	// Pkgs is how many packages Extract must return, with or without an
	// error; when MaxPkgs is set, Pkgs is the least and MaxPkgs the most.
	Pkgs, MaxPkgs int
	// Check, when set, makes the case's own checks.
	Check func(t testing.TB, out inventory.Output, err error)
}

// RunHostile runs e on each case, in a subtest named after it. Besides the
// case's expectations, every case must end within HostileTimeout and give
// output CheckOutput accepts: whatever a file holds, no panic, no escaping
// path, no unbounded output.
func RunHostile(t *testing.T, e inventory.Extractor, path string, cases []Case) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) { runCase(t, e, path, c) })
	}
}

func runCase(t testing.TB, e inventory.Extractor, path string, c Case) {
	t.Helper()
	p := c.Path
	if p == "" {
		p = path
	}
	ctx, cancel := context.WithTimeout(context.Background(), HostileTimeout)
	defer cancel()
	out, err := e.Extract(ctx, Input(p, []byte(c.In)))
	if ctx.Err() != nil {
		t.Errorf("took over %v", HostileTimeout)
	}
	wantErr := c.WantErr || c.ErrContains != "" || c.ErrIs != nil
	switch {
	case !wantErr && err != nil:
		t.Errorf("unexpected error: %v", err)
	case wantErr && err == nil:
		t.Error("no error, want one")
	case err != nil && !strings.Contains(err.Error(), c.ErrContains):
		t.Errorf("err = %v, want one containing %q", err, c.ErrContains)
	case err != nil && c.ErrIs != nil && !errors.Is(err, c.ErrIs):
		t.Errorf("err = %v, want %v", err, c.ErrIs)
	}
	if n, most := len(out.Packages), max(c.Pkgs, c.MaxPkgs); n < c.Pkgs || n > most {
		t.Errorf("%d packages, want %d..%d", n, c.Pkgs, most)
		for _, p := range out.Packages[:min(n, 10)] {
			t.Logf("got %.100s@%.100s", p.Name, p.Version)
		}
	}
	if perr := CheckOutput(e, p, len(c.In), out); perr != nil {
		t.Error(perr)
	}
	if c.Check != nil {
		c.Check(t, out, err)
	}
}

// Benchmark measures e on data as the file at path, reporting bytes per
// second and allocations. ok tells a right output from a wrong one: a
// benchmark of an extractor that stopped finding anything fails instead of
// measuring nothing.
func Benchmark(b *testing.B, e inventory.Extractor, path string, data []byte, ok func(inventory.Output) bool) {
	b.Helper()
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		out, err := e.Extract(ctx, Input(path, data))
		if err != nil || !ok(out) {
			b.Fatalf("%d packages, OS %v, %d owned files, err %v", len(out.Packages), out.OS, len(out.OwnedFiles), err)
		}
	}
}

// Packages returns an ok function for Benchmark that wants n packages.
func Packages(n int) func(inventory.Output) bool {
	return func(out inventory.Output) bool { return len(out.Packages) == n }
}

// BenchmarkWalk measures e on every file below root that it requires, all
// of them in each iteration, handed over as Walk hands them. It reports
// bytes per second and files per iteration; every file must parse.
func BenchmarkWalk(b *testing.B, e inventory.Extractor, root string) {
	b.Helper()
	files := required(b, e, root)
	if len(files) == 0 {
		b.Fatalf("no file below %s is required by %s", root, e.Name())
	}
	var total int64
	for _, f := range files {
		total += int64(len(f.data))
	}
	ctx := context.Background()
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range files {
			if _, err := e.Extract(ctx, f.input()); err != nil {
				b.Fatal(err)
			}
		}
	}
	// After the loop: b.Loop's first call resets the timer, which deletes
	// metrics reported before it.
	b.ReportMetric(float64(len(files)), "files/op")
}
