package apk

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/inventorytest"
)

func TestRequired(t *testing.T) {
	inventorytest.CheckRequired(t, New(), inventory.FileInfo{Size: 10}, map[string]bool{
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
	})
}

func TestExtract(t *testing.T) {
	out := inventorytest.MustExtract(t, New(), PathInstalled, inventorytest.ReadFile(t, "testdata/installed"))
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
	if n := bytes.Count(inventorytest.ReadFile(t, "testdata/installed"), []byte("\nR:")); len(out.OwnedFiles) != n {
		t.Errorf("%d owned files, the database has %d R: lines", len(out.OwnedFiles), n)
	}
}

func TestHostile(t *testing.T) {
	db := string(inventorytest.ReadFile(t, "testdata/installed"))
	garbage := make([]byte, 1<<16)
	for i := range garbage {
		garbage[i] = byte(i * 7919 % 251)
	}
	giant := strings.Repeat("x", 3*MaxLineLength)
	inventorytest.RunHostile(t, New(), PathInstalled, []inventorytest.Case{
		{Name: "empty"},
		{Name: "blank lines", In: "\n\n\r\n"},
		{Name: "truncated", In: db[:len(db)/2], Pkgs: 5, MaxPkgs: 9},
		{Name: "no trailing newline", In: "P:a\nV:1", Pkgs: 1},
		{Name: "binary garbage", In: string(garbage), ErrContains: "not a field"},
		{Name: "giant line", In: "P:a\nV:1\nT:" + giant + "\n\nP:b\nV:2\n", Pkgs: 2, ErrContains: "over 65536 bytes"},
		{Name: "giant line at EOF", In: "P:a\nV:1\n\nT:" + giant[:2*MaxLineLength], Pkgs: 1, ErrContains: "over 65536 bytes"},
		{Name: "long line under the limit", In: "P:a\nD:" + strings.Repeat("so:libx.so.1 ", 4000) + "\nV:1\n", Pkgs: 1},
		{Name: "missing version", In: "P:a\nA:x86_64\n\nP:b\nV:2\n", Pkgs: 1, ErrContains: "no V"},
		{Name: "missing name", In: "V:1\nA:x86_64\n", ErrContains: "no P"},
		// The traversal case keeps the one clean file.
		{Name: "traversal", In: "P:a\nV:1\nF:../../etc\nR:passwd\nF:usr\nR:../x\nR:ok\n", Pkgs: 1, ErrContains: "bad directory",
			Check: func(t testing.TB, out inventory.Output, _ error) {
				if diff := cmp.Diff(map[string]string{"usr/ok": "a"}, out.OwnedFiles); diff != "" {
					t.Errorf("owned (-want +got):\n%s", diff)
				}
			}},
	})
}

func TestReadError(t *testing.T) {
	inventorytest.CheckReadError(t, New(), PathInstalled)
}

func FuzzApkInstalled(f *testing.F) {
	f.Add(inventorytest.ReadFile(f, "testdata/installed"))
	f.Add([]byte("P:a\nV:1\nF:d\nR:f\n\nP:b\nV:2\n"))
	f.Add([]byte("P:a\nV:1\nF:/\nR:..\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Owned paths are checked by inventorytest.Fuzz.
		out, _ := inventorytest.Fuzz(t, New(), PathInstalled, data)
		for _, p := range out.Packages {
			if p.SourceName == "" {
				t.Fatalf("incomplete package %+v", p)
			}
		}
	})
}

func BenchmarkApkInstalled(b *testing.B) {
	// Alpine images carry a few dozen packages; repeat the committed
	// database to the size of a real one with ~200 packages.
	data := bytes.Repeat(inventorytest.ReadFile(b, "testdata/installed"), 16)
	inventorytest.Benchmark(b, New(), PathInstalled, data, inventorytest.Packages(16*12))
}
