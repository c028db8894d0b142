package apk

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

func input(path string, data []byte) *inventory.Input {
	return &inventory.Input{
		Path:   path,
		Info:   inventory.FileInfo{Size: int64(len(data)), Mode: 0o644},
		Reader: bytes.NewReader(data),
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRequired(t *testing.T) {
	e := New()
	for path, want := range map[string]bool{
		"lib/apk/db/installed":       true,
		"usr/lib/apk/db/installed":   true,
		"":                           false,
		"lib/apk/db/installed.new":   false,
		"lib/apk/db/triggers":        false,
		"x/lib/apk/db/installed":     false,
		"etc/apk/world":              false,
		"lib/apk/db/installed/x":     false,
		"var/lib/apk/db/installed":   false,
		"usr/local/lib/apk/db/other": false,
	} {
		if got := e.Required(path, inventory.FileInfo{Size: 10}); got != want {
			t.Errorf("Required(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestExtract(t *testing.T) {
	out, err := New().Extract(context.Background(), input(PathInstalled, readTestdata(t, "installed")))
	if err != nil {
		t.Fatal(err)
	}
	pkg := func(name, version, arch, origin, license string) inventory.Package {
		purlArch := "?arch=" + arch
		return inventory.Package{
			Name: name, Version: version, Type: inventory.TypeAPK, Arch: arch,
			SourceName: origin, SourceVersion: version, Licenses: []string{license},
			PURL:     "pkg:apk/alpine/" + name + "@" + version + purlArch,
			Location: PathInstalled, Extractor: Name,
		}
	}
	want := []inventory.Package{
		pkg("alpine-baselayout-data", "3.4.3-r1", "x86_64", "alpine-baselayout", "GPL-2.0-only"),
		pkg("alpine-baselayout", "3.4.3-r1", "x86_64", "alpine-baselayout", "GPL-2.0-only"),
		pkg("alpine-keys", "2.4-r1", "x86_64", "alpine-keys", "MIT"),
		pkg("musl", "1.2.4-r2", "x86_64", "musl", "MIT"),
		pkg("busybox", "1.36.1-r2", "x86_64", "busybox", "GPL-2.0-only"),
		pkg("busybox-binsh", "1.36.1-r2", "x86_64", "busybox", "GPL-2.0-only"),
		pkg("ca-certificates-bundle", "20230506-r0", "x86_64", "ca-certificates", "MPL-2.0 AND MIT"),
		pkg("libcrypto3", "3.1.3-r0", "x86_64", "openssl", "Apache-2.0"),
		pkg("libssl3", "3.1.3-r0", "x86_64", "openssl", "Apache-2.0"),
		pkg("ssl_client", "1.36.1-r2", "x86_64", "busybox", "GPL-2.0-only"),
		pkg("zlib", "1.2.13-r1", "x86_64", "zlib", "Zlib"),
		pkg("py3-urllib3", "1.26.18-r0", "noarch", "py3-urllib3", "MIT"),
	}
	if diff := cmp.Diff(want, out.Packages, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	for path, owner := range map[string]string{
		"lib/ld-musl-x86_64.so.1":           "musl",
		"lib/libc.musl-x86_64.so.1":         "musl",
		"bin/busybox":                       "busybox",
		"bin/sh":                            "busybox-binsh",
		"usr/lib/libcrypto.so.3":            "libcrypto3",
		"lib/libcrypto.so.3":                "libcrypto3",
		"usr/lib/ossl-modules/legacy.so":    "libcrypto3",
		"usr/lib/libssl.so.3":               "libssl3",
		"etc/ssl/certs/ca-certificates.crt": "ca-certificates-bundle",
		"etc/passwd":                        "alpine-baselayout-data",
		"var/run":                           "alpine-baselayout",
		"usr/lib/python3.11/site-packages/urllib3/__init__.py":                      "py3-urllib3",
		"usr/lib/python3.11/site-packages/urllib3-1.26.18-py3.11.egg-info/PKG-INFO": "py3-urllib3",
	} {
		if got := out.OwnedFiles[path]; got != owner {
			t.Errorf("owner of %s = %q, want %q", path, got, owner)
		}
	}
	// Directories (F lines) are shared and not owned.
	for _, dir := range []string{"lib", "usr/lib", "etc", "usr/lib/python3.11/site-packages/urllib3"} {
		if o, ok := out.OwnedFiles[dir]; ok {
			t.Errorf("directory %s owned by %s", dir, o)
		}
	}
	// Every R line is owned: count them independently.
	if n := bytes.Count(readTestdata(t, "installed"), []byte("\nR:")); len(out.OwnedFiles) != n {
		t.Errorf("%d owned files, the database has %d R: lines", len(out.OwnedFiles), n)
	}
}

func TestHostile(t *testing.T) {
	db := readTestdata(t, "installed")
	garbage := make([]byte, 1<<16)
	for i := range garbage {
		garbage[i] = byte(i * 7919 % 251)
	}
	tests := []struct {
		name             string
		data             []byte
		minPkgs, maxPkgs int
		wantErr          string
	}{
		{"empty", nil, 0, 0, ""},
		{"blank lines", []byte("\n\n\r\n"), 0, 0, ""},
		{"truncated", db[:len(db)/2], 5, 9, ""},
		{"no trailing newline", []byte("P:a\nV:1"), 1, 1, ""},
		{"binary garbage", garbage, 0, 0, "not a field"},
		{"giant line", append(append([]byte("P:a\nV:1\nT:"), bytes.Repeat([]byte("x"), 3*MaxLineLength)...), "\n\nP:b\nV:2\n"...), 2, 2, "over 65536 bytes"},
		{"giant line at EOF", append([]byte("P:a\nV:1\n\nT:"), bytes.Repeat([]byte("x"), 2*MaxLineLength)...), 1, 1, "over 65536 bytes"},
		{"long line under the limit", []byte("P:a\nD:" + strings.Repeat("so:libx.so.1 ", 4000) + "\nV:1\n"), 1, 1, ""},
		{"missing version", []byte("P:a\nA:x86_64\n\nP:b\nV:2\n"), 1, 1, "no V"},
		{"missing name", []byte("V:1\nA:x86_64\n"), 0, 0, "no P"},
		{"traversal", []byte("P:a\nV:1\nF:../../etc\nR:passwd\nF:usr\nR:../x\nR:ok\n"), 1, 1, "bad directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := New().Extract(context.Background(), input(PathInstalled, tt.data))
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if n := len(out.Packages); n < tt.minPkgs || n > tt.maxPkgs {
				t.Errorf("%d packages, want %d..%d", n, tt.minPkgs, tt.maxPkgs)
			}
			for f := range out.OwnedFiles {
				if strings.HasPrefix(f, "/") || strings.Contains("/"+f+"/", "/../") {
					t.Errorf("owned path %q escapes", f)
				}
			}
		})
	}
	// The traversal case keeps the one clean file.
	out, _ := New().Extract(context.Background(), input(PathInstalled, []byte("P:a\nV:1\nF:../../etc\nR:passwd\nF:usr\nR:../x\nR:ok\n")))
	if diff := cmp.Diff(map[string]string{"usr/ok": "a"}, out.OwnedFiles); diff != "" {
		t.Errorf("owned (-want +got):\n%s", diff)
	}
}

func TestReadError(t *testing.T) {
	in := input(PathInstalled, nil)
	in.Reader = iotest.ErrReader(errors.New("boom"))
	if _, err := New().Extract(context.Background(), in); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("err = %v, want the read error", err)
	}
}

func FuzzApkInstalled(f *testing.F) {
	f.Add(readTestdata(f, "installed"))
	f.Add([]byte("P:a\nV:1\nF:d\nR:f\n\nP:b\nV:2\n"))
	f.Add([]byte("P:a\nV:1\nF:/\nR:..\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, _ := New().Extract(context.Background(), input(PathInstalled, data))
		for _, p := range out.Packages {
			if p.Name == "" || p.Version == "" || p.SourceName == "" {
				t.Fatalf("incomplete package %+v", p)
			}
		}
		for f, o := range out.OwnedFiles {
			if f == "" || o == "" || strings.HasPrefix(f, "/") || strings.Contains("/"+f+"/", "/../") || strings.Contains("/"+f+"/", "//") {
				t.Fatalf("bad owned path %q (%q)", f, o)
			}
		}
	})
}

func BenchmarkApkInstalled(b *testing.B) {
	// Alpine images carry a few dozen packages; repeat the committed
	// database to the size of a real one with ~200 packages.
	one := readTestdata(b, "installed")
	data := bytes.Repeat(one, 16)
	e := New()
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		out, err := e.Extract(ctx, input(PathInstalled, data))
		if err != nil || len(out.Packages) != 16*12 {
			b.Fatalf("%d packages, err %v", len(out.Packages), err)
		}
	}
}
