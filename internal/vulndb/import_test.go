package vulndb

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

func TestImportTestdataStatus(t *testing.T) {
	dir := t.TempDir()
	var got []SourceStatus
	for _, p := range allTestdata {
		st, err := Import(context.Background(), dir, []string{filepath.Join("testdata", p)}, ImportOptions{})
		if err != nil {
			t.Fatalf("import %s: %v", p, err)
		}
		got = append(got, st...)
	}
	want := []SourceStatus{
		{Name: "go-vulndb", Format: "osv", Records: 7, Withdrawn: 1},
		{Name: "ghsa", Format: "osv", Records: 1},
		{Name: "rustsec", Format: "osv", Records: 4},
		{Name: "pypa", Format: "osv", Records: 4, Withdrawn: 1},
		{Name: "almalinux", Format: "osv", Records: 2},
		{Name: "nodejs-security-wg", Format: "nodejs-security-wg", Records: 5},
		// 1,110 IDs fixed in v3.10/main.yaml, counted independently of this code.
		{Name: "alpine-secdb", Format: "alpine-secdb", Records: 1110, Skipped: 1,
			Errors: []string{"v3.10/main.yaml: 1 fix lines without a usable ID (such as CVE-????-?????)"}},
		{Name: "cve5", Format: "cve5", Records: 3},
		{Name: "cisa-kev", Format: "cisa-kev", Records: 4},
		{Name: "epss", Format: "epss", Records: 4},
	}
	ignore := cmpopts.IgnoreFields(SourceStatus{}, "Origin", "Imported", "Newest")
	if diff := cmp.Diff(want, got, ignore); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	db, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := db.Status()
	if st.Vulnerabilities != 7+1+4+4+2+5+1110 || len(st.Sources) != len(want) || st.SchemaVersion != SchemaVersion || st.Built.IsZero() {
		t.Errorf("status: %d vulnerabilities, %d sources, schema %d, built %v", st.Vulnerabilities, len(st.Sources), st.SchemaVersion, st.Built)
	}
	for _, s := range st.Sources {
		if !filepath.IsAbs(s.Origin) || s.Imported.IsZero() {
			t.Errorf("source %s: origin %q imported %v", s.Name, s.Origin, s.Imported)
		}
	}
	// Leftover temporary files would mean a write was not atomic.
	for _, d := range []string{dir, filepath.Join(dir, sourcesDir)} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if strings.Contains(e.Name(), ".tmp-") {
				t.Errorf("temporary file left: %s", e.Name())
			}
		}
	}
}

func TestReimportReplacesOnlyThatSource(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for _, p := range []string{"go-vulndb", "pypa"} {
		if _, err := Import(ctx, dir, []string{filepath.Join("testdata", p)}, ImportOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	old, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	// A smaller go-vulndb: only GO-2022-1059.
	small := t.TempDir()
	data, err := os.ReadFile(filepath.Join("testdata", "go-vulndb", "GO-2022-1059.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(small, "GO-2022-1059.json"), data, 0o644)
	st, err := Import(ctx, dir, []string{small}, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Name != "go-vulndb" || st[0].Records != 1 {
		t.Fatalf("re-import status %+v", st[0])
	}
	db, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pkgs := []inventory.Package{goMod("stdlib", "1.22.0"), goMod("golang.org/x/text", "0.3.7"), {Name: "urllib3", Version: "2.0.5", Ecosystem: "PyPI"}}
	ms, err := db.Match(ctx, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.Vulnerability.ID)
	}
	if diff := cmp.Diff([]string{"GO-2022-1059", "PYSEC-2023-192"}, ids); diff != "" {
		t.Errorf("after re-import (-want +got):\n%s", diff)
	}
	// A reader that opened the database before the import still sees the
	// old index, whole: the new one replaced it by rename.
	ms, err = old.Match(ctx, pkgs[:1])
	if err != nil || len(ms) != 2 {
		t.Errorf("old reader: %d matches, %v; want the 2 stdlib matches of the old index", len(ms), err)
	}
}

func TestImportOptions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kev := filepath.Join("testdata", "cisa-kev-subset.json")
	st, err := Import(ctx, dir, []string{kev}, ImportOptions{Format: FormatKEV, Name: "kev-mirror"})
	if err != nil || st[0].Name != "kev-mirror" || st[0].Records != 4 {
		t.Errorf("named import: %+v %v", st, err)
	}
	if _, err := Import(ctx, dir, []string{filepath.Join("testdata", "rustsec")}, ImportOptions{Format: FormatCVE5}); err == nil {
		t.Error("rustsec forced as CVE 5 imported something")
	}
	if _, err := Import(ctx, dir, []string{kev}, ImportOptions{Format: "nvd"}); err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Errorf("unknown format: %v", err)
	}
	if _, err := Import(ctx, dir, []string{kev, kev}, ImportOptions{}); err == nil || !strings.Contains(err.Error(), "both source") {
		t.Errorf("same source twice: %v", err)
	}
	if _, err := Import(ctx, dir, []string{kev}, ImportOptions{Name: "../evil"}); err == nil {
		t.Error("bad source name accepted")
	}
	if _, err := Import(ctx, dir, []string{filepath.Join("testdata", "missing")}, ImportOptions{}); err == nil {
		t.Error("missing input accepted")
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(t.TempDir(), OpenOptions{})
	if !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), "bulwark db import") {
		t.Errorf("empty dir: %v", err)
	}
	dir := t.TempDir()
	if _, err := Import(context.Background(), dir, []string{filepath.Join("testdata", "rustsec")}, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, indexFile)
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	mutate := map[string]func([]byte) []byte{
		"flipped byte":  func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b },
		"truncated":     func(b []byte) []byte { return b[:len(b)-100] },
		"header only":   func(b []byte) []byte { return b[:headerSize] },
		"empty":         func(b []byte) []byte { return nil },
		"bad magic":     func(b []byte) []byte { b[0] = 'X'; return b },
		"newer version": func(b []byte) []byte { b[8] = 99; return b },
	}
	for name, m := range mutate {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(p, m(bytes.Clone(good)), 0o644)
			_, err := Open(dir, OpenOptions{})
			if !errors.Is(err, ErrCorruptIndex) {
				t.Errorf("got %v, want ErrCorruptIndex", err)
			}
		})
	}
	// Rebuild repairs it from the stored sources.
	if err := Rebuild(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatalf("after rebuild: %v", err)
	}
	db.Close()
}

func writeZip(t *testing.T, path string, files map[string][]byte) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImportHostileInputs(t *testing.T) {
	ctx := context.Background()
	good, err := os.ReadFile(filepath.Join("testdata", "rustsec", "RUSTSEC-2020-0070.json"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("malformed records are skipped and named", func(t *testing.T) {
		in := t.TempDir()
		os.WriteFile(filepath.Join(in, "good.json"), good, 0o644)
		os.WriteFile(filepath.Join(in, "broken.json"), []byte(`{"id":"RUSTSEC-0000-0001","modified":"2024-01-01T00:00:00Z","affected":[{`), 0o644)
		os.WriteFile(filepath.Join(in, "badevent.json"), []byte(`{"id":"RUSTSEC-0000-0002","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"crates.io","name":"x"},"ranges":[{"type":"SEMVER","events":[{"fixed":""}]}]}]}`), 0o644)
		os.WriteFile(filepath.Join(in, "package.json"), []byte(`{"name":"not an advisory"}`), 0o644)
		st, err := Import(ctx, t.TempDir(), []string{in}, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Records != 1 || st[0].Skipped != 2 || len(st[0].Errors) != 2 {
			t.Fatalf("status %+v", st[0])
		}
		joined := strings.Join(st[0].Errors, "\n")
		for _, want := range []string{"broken.json", "badevent.json", "RUSTSEC-0000-0002"} {
			if !strings.Contains(joined, want) {
				t.Errorf("errors %q do not name %s", joined, want)
			}
		}
	})

	t.Run("nothing parsed is an error", func(t *testing.T) {
		in := t.TempDir()
		os.WriteFile(filepath.Join(in, "broken.json"), []byte(`{"id":`), 0o644)
		dir := t.TempDir()
		if _, err := Import(ctx, dir, []string{in}, ImportOptions{}); err == nil || !strings.Contains(err.Error(), "broken.json") {
			t.Errorf("got %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, indexFile)); !errors.Is(err, os.ErrNotExist) {
			t.Error("a failed import wrote an index")
		}
	})

	t.Run("zip bomb", func(t *testing.T) {
		in := filepath.Join(t.TempDir(), "bomb.zip")
		bomb := append([]byte(`{"id":"X-1","modified":"2024-01-01T00:00:00Z","details":"`), bytes.Repeat([]byte("0"), 64<<20)...)
		writeZip(t, in, map[string][]byte{"bomb.json": bomb, "good.json": good})
		st, err := Import(ctx, t.TempDir(), []string{in}, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Records != 1 || st[0].Skipped != 1 || !strings.Contains(st[0].Errors[0], "too large") {
			t.Errorf("status %+v", st[0])
		}
		// Many records each under the record bound, together over the input's.
		many := map[string][]byte{}
		for i := range 8 {
			many[fmt.Sprintf("r%d.json", i)] = append([]byte(`{"id":"X-1","modified":"2024-01-01T00:00:00Z","details":"`), bytes.Repeat([]byte("0"), 200<<10)...)
		}
		in2 := filepath.Join(t.TempDir(), "many.zip")
		writeZip(t, in2, many)
		_, err = Import(ctx, t.TempDir(), []string{in2}, ImportOptions{Limits: Limits{MaxTotalBytes: 1 << 20}})
		if err == nil || !strings.Contains(err.Error(), "after decompression") {
			t.Errorf("total bound: %v", err)
		}
	})

	t.Run("zip slip names are only names", func(t *testing.T) {
		root := t.TempDir()
		in := filepath.Join(root, "a", "slip.zip")
		os.MkdirAll(filepath.Dir(in), 0o755)
		writeZip(t, in, map[string][]byte{"../../escaped.json": good, "/abs/x.json": good})
		st, err := Import(ctx, filepath.Join(root, "db"), []string{in}, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Records != 1 { // the same record twice, kept once
			t.Errorf("status %+v", st[0])
		}
		for _, p := range []string{filepath.Join(root, "escaped.json"), "/abs/x.json"} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s was written", p)
			}
		}
	})

	t.Run("nested zips and dirs", func(t *testing.T) {
		in := t.TempDir()
		inner := filepath.Join(t.TempDir(), "inner.zip")
		writeZip(t, inner, map[string][]byte{"deep/dir/RUSTSEC-2020-0070.json": good})
		innerBytes, _ := os.ReadFile(inner)
		other, _ := os.ReadFile(filepath.Join("testdata", "rustsec", "RUSTSEC-2021-0003.json"))
		writeZip(t, filepath.Join(in, "outer.zip"), map[string][]byte{"x/inner.zip": innerBytes, "y/RUSTSEC-2021-0003.json": other})
		os.MkdirAll(filepath.Join(in, "testdata"), 0o755)
		os.WriteFile(filepath.Join(in, "testdata", "ignored.json"), []byte(`{"id":`), 0o644)
		os.Symlink("/etc", filepath.Join(in, "link"))
		st, err := Import(ctx, t.TempDir(), []string{in}, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Records != 2 || st[0].Skipped != 0 || st[0].Name != "rustsec" {
			t.Errorf("status %+v", st[0])
		}
	})

	t.Run("corrupt zip", func(t *testing.T) {
		in := filepath.Join(t.TempDir(), "bad.zip")
		os.WriteFile(in, []byte("PK\x03\x04 not really a zip"), 0o644)
		if _, err := Import(ctx, t.TempDir(), []string{in}, ImportOptions{}); err == nil || !strings.Contains(err.Error(), "bad.zip") {
			t.Errorf("got %v", err)
		}
	})
}

func TestImportCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Import(ctx, t.TempDir(), []string{filepath.Join("testdata", "alpine")}, ImportOptions{Now: func() time.Time { return time.Unix(0, 0) }}); err == nil {
		t.Error("cancelled import succeeded")
	}
}
