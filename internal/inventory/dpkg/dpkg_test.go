package dpkg

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/inventorytest"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	return inventorytest.ReadFile(t, filepath.Join("testdata", name))
}

func extract(t testing.TB, path string, data []byte) inventory.Output {
	t.Helper()
	return inventorytest.MustExtract(t, New(), path, data)
}

func TestRequired(t *testing.T) {
	inventorytest.CheckRequired(t, New(), inventory.FileInfo{Size: 100}, map[string]bool{
		"var/lib/dpkg/status":                           true,
		"var/lib/dpkg/status.d/libssl3":                 true,
		"var/lib/dpkg/status.d/libssl3.md5sums":         true,
		"var/lib/dpkg/info/libssl3:amd64.list":          true,
		"var/lib/dpkg/info/bash.list":                   true,
		"":                                              false,
		"var/lib/dpkg/status-old":                       false,
		"var/lib/dpkg/status.d/":                        false,
		"var/lib/dpkg/status.d/sub/libssl3":             false,
		"var/lib/dpkg/status.d/.hidden":                 false,
		"var/lib/dpkg/info/bash.md5sums":                false,
		"var/lib/dpkg/info/.list":                       false,
		"var/lib/dpkg/info/sub/bash.list":               false,
		"var/lib/dpkg/available":                        false,
		"usr/share/doc/bash/copyright":                  false,
		"x/var/lib/dpkg/status":                         false,
		"var/lib/dpkg/statusd/libssl3":                  false,
		"usr/lib/python3/dist-packages/foo/bash.list":   false,
		"var/lib/dpkg/info/libssl3:amd64.list.dpkg-new": false,
	})
}

type row struct{ Name, Version, Arch, SourceName, SourceVersion string }

func rows(pkgs []inventory.Package) []row {
	var r []row
	for _, p := range pkgs {
		r = append(r, row{p.Name, p.Version, p.Arch, p.SourceName, p.SourceVersion})
	}
	slices.SortFunc(r, func(a, b row) int { return strings.Compare(a.Name+"\t"+a.Arch, b.Name+"\t"+b.Arch) })
	return r
}

// TestStatusMatchesDpkgQuery parses this machine's real status file and
// compares every package with what the real dpkg-query printed for it.
func TestStatusMatchesDpkgQuery(t *testing.T) {
	out := extract(t, PathStatus, readTestdata(t, "status"))

	var want []row
	sc := bufio.NewScanner(bytes.NewReader(readTestdata(t, "status.dpkg-query.tsv")))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 5 {
			t.Fatalf("bad oracle line %q", sc.Text())
		}
		want = append(want, row{f[0], f[1], f[2], f[3], f[4]})
	}
	slices.SortFunc(want, func(a, b row) int { return strings.Compare(a.Name+"\t"+a.Arch, b.Name+"\t"+b.Arch) })
	if len(want) < 500 {
		t.Fatalf("oracle has only %d rows", len(want))
	}
	if diff := cmp.Diff(want, rows(out.Packages)); diff != "" {
		t.Errorf("packages differ from dpkg-query (-dpkg-query +parsed):\n%s", diff)
	}
	for _, p := range out.Packages {
		if p.Type != inventory.TypeDeb || p.Location != PathStatus || p.Extractor != Name || p.Ecosystem != "" {
			t.Fatalf("bad package metadata: %+v", p)
		}
	}
}

func TestStatusSourcePackages(t *testing.T) {
	out := extract(t, PathStatus, readTestdata(t, "status"))
	byName := map[string]inventory.Package{}
	for _, p := range out.Packages {
		byName[p.Name] = p
	}
	tests := []struct {
		name string
		want row
		purl string
	}{
		// "Source: openssl": the source has the binary's version.
		{"libssl3", row{"libssl3", "3.0.19-1~deb12u2", "amd64", "openssl", "3.0.19-1~deb12u2"},
			"pkg:deb/debian/libssl3@3.0.19-1~deb12u2?arch=amd64"},
		// "Source: bash (5.2.15-2)": a binNMU gave the binary "+b8".
		{"bash", row{"bash", "5.2.15-2+b8", "amd64", "bash", "5.2.15-2"},
			"pkg:deb/debian/bash@5.2.15-2%2Bb8?arch=amd64"},
		// An epoch, and a source with another name and version field.
		{"bsdutils", row{"bsdutils", "1:2.38.1-5+deb12u3", "amd64", "util-linux", "2.38.1-5+deb12u3"},
			"pkg:deb/debian/bsdutils@1:2.38.1-5%2Bdeb12u3?arch=amd64"},
		// No Source field: the source is the binary.
		{"base-files", row{"base-files", byName["base-files"].Version, "amd64", "base-files", byName["base-files"].Version},
			"pkg:deb/debian/base-files@" + strings.ReplaceAll(byName["base-files"].Version, "+", "%2B") + "?arch=amd64"},
	}
	for _, tt := range tests {
		p, ok := byName[tt.name]
		if !ok {
			t.Errorf("%s not found", tt.name)
			continue
		}
		if diff := cmp.Diff(tt.want, row{p.Name, p.Version, p.Arch, p.SourceName, p.SourceVersion}); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
		if p.PURL != tt.purl {
			t.Errorf("%s PURL = %q, want %q", tt.name, p.PURL, tt.purl)
		}
	}
	if byName["base-files"].Version == "" {
		t.Error("base-files has no version")
	}
}

func TestStatusStates(t *testing.T) {
	out := extract(t, PathStatus, readTestdata(t, "status-states"))
	var got []string
	for _, p := range out.Packages {
		got = append(got, p.Name)
	}
	// tzdata (config-files), netbase (half-installed) and bsdutils
	// (not-installed) have no files on disk; held and deinstall-selected
	// packages still do.
	want := []string{"libssl3", "bzip2", "bash", "bc"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("installed packages (-want +got):\n%s", diff)
	}
}

func TestStatusD(t *testing.T) {
	dir := filepath.Join("testdata", "status.d")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := New()
	var pkgs []inventory.Package
	owned := map[string]string{}
	for _, ent := range entries {
		path := DirStatusD + ent.Name()
		if !e.Required(path, inventory.FileInfo{}) {
			t.Fatalf("Required(%s) = false", path)
		}
		out := extract(t, path, readTestdata(t, filepath.Join("status.d", ent.Name())))
		if strings.HasSuffix(ent.Name(), ".md5sums") && len(out.Packages) > 0 {
			t.Errorf("%s yielded packages: md5sums files list files, not packages", ent.Name())
		}
		for _, p := range out.Packages {
			if p.Location != path {
				t.Errorf("%s: Location %q", p.Name, p.Location)
			}
		}
		pkgs = append(pkgs, out.Packages...)
		for f, o := range out.OwnedFiles {
			owned[f] = o
		}
	}
	// The same packages, parsed out of the full status file, are the
	// expectation: status.d holds their stanzas without Status.
	full := extract(t, PathStatus, readTestdata(t, "status"))
	var want []inventory.Package
	for _, p := range full.Packages {
		switch p.Name {
		case "base-files", "libc6", "libssl3", "tzdata", "netbase":
			want = append(want, p)
		}
	}
	if len(want) != 5 {
		t.Fatalf("found %d of the 5 packages in the status file", len(want))
	}
	if diff := cmp.Diff(rows(want), rows(pkgs)); diff != "" {
		t.Errorf("status.d packages (-want +got):\n%s", diff)
	}
	for path, pkg := range map[string]string{
		"usr/lib/x86_64-linux-gnu/libssl.so.3":    "libssl3",
		"usr/lib/x86_64-linux-gnu/libcrypto.so.3": "libssl3",
		"etc/debian_version":                      "",
		"usr/share/zoneinfo/Europe/Paris":         "tzdata",
	} {
		if got := owned[path]; got != pkg {
			t.Errorf("owner of %s = %q, want %q", path, got, pkg)
		}
	}
	if len(owned) < 1000 {
		t.Errorf("only %d owned files from md5sums", len(owned))
	}
}

func TestList(t *testing.T) {
	tests := []struct {
		file, pkg string
		owns      []string
		notOwns   []string
	}{
		// The testdata file is libssl3_amd64.list: ":" is not allowed in
		// module file names.
		{"libssl3:amd64.list", "libssl3",
			[]string{"usr/lib/x86_64-linux-gnu/libssl.so.3", "usr/lib/x86_64-linux-gnu/engines-3/afalg.so", "usr/share/doc/libssl3/changelog.Debian.gz"},
			[]string{"usr", "usr/lib", "usr/lib/x86_64-linux-gnu", ".", ""}},
		{"python3.11-minimal.list", "python3.11-minimal",
			[]string{"usr/bin/python3.11"},
			[]string{"usr/bin"}},
		{"bash.list", "bash",
			[]string{"bin/bash", "etc/bash.bashrc"},
			[]string{"bin", "etc"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data := readTestdata(t, filepath.Join("info", strings.ReplaceAll(tt.file, ":", "_")))
			out := extract(t, DirInfo+tt.file, data)
			if len(out.Packages) != 0 {
				t.Errorf("list file yielded packages")
			}
			for _, f := range tt.owns {
				if out.OwnedFiles[f] != tt.pkg {
					t.Errorf("owner of %s = %q, want %q", f, out.OwnedFiles[f], tt.pkg)
				}
			}
			for _, f := range tt.notOwns {
				if o, ok := out.OwnedFiles[f]; ok {
					t.Errorf("directory %q listed as owned by %s", f, o)
				}
			}
			// Every non-directory line of the real file is owned.
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			for i, l := range lines {
				p := strings.TrimPrefix(l, "/")
				if p == "." || (i+1 < len(lines) && strings.HasPrefix(lines[i+1], l+"/")) {
					continue
				}
				if out.OwnedFiles[p] != tt.pkg {
					t.Errorf("%s not owned", p)
				}
			}
		})
	}
}

// TestHostile feeds damaged and hostile files. None may panic; truncation
// must keep what parsed; problems must be reported, not swallowed.
// inventorytest checks that every package has a name and a version and
// that owned paths are clean.
func TestHostile(t *testing.T) {
	status := string(readTestdata(t, "status"))
	b := make([]byte, 1<<16)
	for i := range b {
		b[i] = byte(i*7919%251) | 0x80
		if i%97 == 0 {
			b[i] = '\n'
		}
	}
	garbage := string(b)
	inventorytest.RunHostile(t, New(), PathStatus, []inventorytest.Case{
		{Name: "empty"},
		{Name: "only blank lines", In: "\n\n\n\n"},
		// Cut inside a stanza before its Version: the packages before it are
		// kept and the cut one is reported.
		{Name: "truncated mid-stanza", In: status[:len(status)/2], Pkgs: 300, MaxPkgs: 400, ErrContains: "no Version"},
		{Name: "binary garbage", In: garbage, ErrContains: "not a field"},
		{Name: "giant line", Path: DirStatusD + "a", In: "Package: a\nVersion: 1\nDescription: " + strings.Repeat("x", 3*MaxLineLength) + "\n\nPackage: b\nVersion: 2\n", Pkgs: 2, ErrContains: "over 65536 bytes"},
		{Name: "giant line at EOF", Path: DirStatusD + "a", In: "Package: a\nVersion: 1\n\nX: " + strings.Repeat("y", 2*MaxLineLength), Pkgs: 1, ErrContains: "over 65536 bytes"},
		{Name: "missing version", In: "Package: a\nStatus: install ok installed\n\nPackage: b\nStatus: install ok installed\nVersion: 2\n", Pkgs: 1, ErrContains: "no Version"},
		{Name: "missing package", In: "Status: install ok installed\nVersion: 2\n", ErrContains: "no Package"},
		{Name: "missing status in status file", In: "Package: a\nVersion: 1\n"},
		{Name: "bad source", In: "Package: a\nStatus: install ok installed\nVersion: 1\nSource: b (2\n", Pkgs: 1, ErrContains: "malformed Source"},
		{Name: "continuation first", In: " orphan\nPackage: a\nStatus: install ok installed\nVersion: 1\n", Pkgs: 1, ErrContains: "continuation"},
		{Name: "long line under the limit", Path: DirStatusD + "a", In: "Package: a\nDepends: " + strings.Repeat("libx (>= 1), ", 3000) + "\nVersion: 1\n", Pkgs: 1},
		{Name: "CRLF", Path: DirStatusD + "a", In: "Package: a\r\nVersion: 1\r\nArchitecture: amd64\r\n", Pkgs: 1},
		{Name: "status.d not installed", Path: DirStatusD + "a", In: "Package: a\nStatus: deinstall ok config-files\nVersion: 1\n"},
		// High bytes are legal in paths: garbage lines become owned paths,
		// harmless map keys.
		{Name: "list garbage", Path: DirInfo + "a.list", In: garbage},
		{Name: "list traversal", Path: DirInfo + "a.list", In: "/.\n/../etc/passwd\n/usr/./x\n/ok\n", ErrContains: "not a path"},
		{Name: "md5sums garbage", Path: DirStatusD + "a.md5sums", In: garbage, ErrContains: "not an md5sums line"},
	})
}

func TestReadError(t *testing.T) {
	inventorytest.CheckReadError(t, New(), PathStatus)
}

func TestCancelled(t *testing.T) {
	inventorytest.CheckCancelled(t, New(), PathStatus, readTestdata(t, "status"))
}

func FuzzDpkgStatus(f *testing.F) {
	f.Add(readTestdata(f, "status-states"))
	f.Add(readTestdata(f, "status.d/libssl3"))
	f.Add(readTestdata(f, "info/libssl3_amd64.list"))
	f.Add([]byte("Package: a\nVersion: 1\nSource: b (2)\n"))
	paths := []string{PathStatus, DirStatusD + "x", DirInfo + "x.list", DirStatusD + "x.md5sums"}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, path := range paths {
			// Names, versions and owned paths are checked by
			// inventorytest.Fuzz.
			out, _ := inventorytest.Fuzz(t, New(), path, data)
			for _, p := range out.Packages {
				if p.SourceName == "" || p.SourceVersion == "" {
					t.Fatalf("%s: incomplete package %+v", path, p)
				}
			}
		}
	})
}

func BenchmarkDpkgStatus(b *testing.B) {
	inventorytest.Benchmark(b, New(), PathStatus, readTestdata(b, "status"), func(out inventory.Output) bool { return len(out.Packages) >= 500 })
}

func BenchmarkDpkgList(b *testing.B) {
	inventorytest.Benchmark(b, New(), DirInfo+"bash.list", readTestdata(b, "info/bash.list"), func(out inventory.Output) bool { return len(out.OwnedFiles) > 0 })
}
