package php

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func extract(ex inventory.Extractor, path string, b []byte) (inventory.Output, error) {
	return ex.Extract(context.Background(), &inventory.Input{
		Path: path, Info: inventory.FileInfo{Size: int64(len(b))}, Reader: bytes.NewReader(b),
	})
}

// walk hands every file below testdata that ex requires to ex.
func walk(t *testing.T, ex inventory.Extractor) map[string][]inventory.Package {
	t.Helper()
	out := make(map[string][]inventory.Package)
	err := filepath.WalkDir("testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, "testdata"+string(filepath.Separator)))
		if !ex.Required(rel, inventory.FileInfo{}) {
			return nil
		}
		o, err := extract(ex, rel, readFile(t, p))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
		}
		out[rel] = o.Packages
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRequired(t *testing.T) {
	in, lock := NewInstalled(), NewLock()
	tests := []struct {
		path            string
		installed, lock bool
	}{
		{"app/vendor/composer/installed.json", true, false},
		{"vendor/composer/installed.json", true, false},
		{"app/lib/composer/installed.json", true, false},
		{"app/composer.lock", false, true},
		{"composer.lock", false, true},
		{"app/vendor/guzzlehttp/guzzle/composer.lock", false, false},
		{"vendor/x/y/composer.lock", false, false},
		{"app/composer.json", false, false},
		{"app/vendor/composer/installed.php", false, false},
		{"app/vendor/composer/installed.json.bak", false, false},
		{"app/mycomposer.lock", false, false},
	}
	for _, tt := range tests {
		if got := in.Required(tt.path, inventory.FileInfo{}); got != tt.installed {
			t.Errorf("Installed.Required(%q) = %v", tt.path, got)
		}
		if got := lock.Required(tt.path, inventory.FileInfo{}); got != tt.lock {
			t.Errorf("Lock.Required(%q) = %v", tt.path, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		for _, tt := range tests {
			in.Required(tt.path, inventory.FileInfo{})
			lock.Required(tt.path, inventory.FileInfo{})
		}
	}); n != 0 {
		t.Errorf("Required allocates %v times", n)
	}
}

type row struct {
	Version string
	Dev     bool
}

func rows(pkgs []inventory.Package) map[string]row {
	m := make(map[string]row)
	for _, p := range pkgs {
		m[p.Name] = row{p.Version, p.Dev}
	}
	return m
}

// TestComposer reads what Composer 2.5.5 (Debian 12) wrote for
// testdata/app/composer.json, installed with and without --no-dev, and a
// Composer 1 installed.json derived from it (see testdata/README.md).
func TestComposer(t *testing.T) {
	installed := walk(t, NewInstalled())
	locked := walk(t, NewLock())
	for loc, pkgs := range installed {
		golden(t, "installed-"+strings.SplitN(loc, "/", 2)[0], pkgs)
	}
	for loc, pkgs := range locked {
		golden(t, "lock-"+strings.SplitN(loc, "/", 2)[0], pkgs)
	}

	prod := map[string]row{
		"guzzlehttp/guzzle": {"7.4.0", false}, "guzzlehttp/promises": {"1.5.1", false},
		"guzzlehttp/psr7": {"2.1.0", false}, "monolog/monolog": {"2.3.5", false},
		"symfony/http-kernel": {"v5.4.0", false}, "twig/twig": {"v3.4.2", false},
	}
	withDev := map[string]row{"phpunit/phpunit": {"9.5.10", true}, "sebastian/diff": {"4.0.4", true}}
	for k, v := range prod {
		withDev[k] = v
	}
	// Composer 1 has no dev-package-names: the same packages, none dev.
	composer1 := make(map[string]row)
	for k, v := range withDev {
		composer1[k] = row{v.Version, false}
	}
	for loc, want := range map[string]map[string]row{
		"app/vendor/composer/installed.json":           withDev,
		"app-nodev/vendor/composer/installed.json":     prod,
		"app-composer1/vendor/composer/installed.json": composer1,
	} {
		if diff := cmp.Diff(want, rows(installed[loc])); diff != "" {
			t.Errorf("%s (-want +got):\n%s", loc, diff)
		}
	}
	if diff := cmp.Diff(withDev, rows(locked["app/composer.lock"])); diff != "" {
		t.Errorf("composer.lock (-want +got):\n%s", diff)
	}
	for _, p := range installed["app/vendor/composer/installed.json"] {
		if p.Name == "symfony/http-kernel" && (p.PURL != "pkg:composer/symfony/http-kernel@v5.4.0" || !cmp.Equal(p.Licenses, []string{"MIT"})) {
			t.Errorf("got %+v", p)
		}
		if p.Ecosystem != inventory.EcosystemPackagist || p.Type != inventory.TypeComposer || p.Extractor != "language/php/composer" {
			t.Errorf("identity fields: %+v", p)
		}
	}
}

func TestHostile(t *testing.T) {
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	tests := []struct {
		name, path, in string
		wantErr        bool
		wantPkgs       int
	}{
		{"installed truncated", "vendor/composer/installed.json", `{"packages":[{"name":"a/b","vers`, true, 0},
		{"installed deep", "vendor/composer/installed.json", deep, true, 0},
		{"installed wrong type", "vendor/composer/installed.json", `{"packages":{"a":1}}`, true, 0},
		{"installed name wrong type", "vendor/composer/installed.json", `[{"name":["a/b"],"version":"1.0"}]`, true, 0},
		{"installed dev names wrong type", "vendor/composer/installed.json", `{"packages":[],"dev-package-names":"a/b"}`, true, 0},
		{"installed scalar", "vendor/composer/installed.json", `"x"`, true, 0},
		{"installed empty", "vendor/composer/installed.json", ``, true, 0},
		{"installed null", "vendor/composer/installed.json", `null`, false, 0},
		{"installed bad names", "vendor/composer/installed.json", `[{"name":"../x","version":"1"},{"name":"A/B","version":"1"},{"name":"a/b/c","version":"1"},{"name":"a/b","version":"1 || 2"},{"name":"a/b","version":""}]`, false, 0},
		{"installed license shapes", "vendor/composer/installed.json", `[{"name":"a/b","version":"1.0","license":"MIT"},{"name":"a/c","version":"1.0","license":[1,{"x":1},"ISC"]},{"name":"a/d","version":"1.0","license":{"x":1}}]`, false, 3},
		{"lock truncated", "composer.lock", `{"packages":[`, true, 0},
		{"lock dev wrong type", "composer.lock", `{"packages":[],"packages-dev":{"a/b":"1"}}`, true, 0},
		{"lock byte order mark", "composer.lock", "\xef\xbb\xbf" + `{"packages":[{"name":"a/b","version":"1.0"}]}`, false, 1},
		{"lock duplicate", "composer.lock", `{"packages":[{"name":"a/b","version":"1.0"}],"packages-dev":[{"name":"a/b","version":"1.0"}]}`, false, 1},
		{"lock giant", "composer.lock", `{"packages":[{"name":"a/b","version":"1.0","description":"` + strings.Repeat("x", 8<<20) + `"}]}`, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ex inventory.Extractor = NewInstalled()
			if strings.HasSuffix(tt.path, ".lock") {
				ex = NewLock()
			}
			o, err := extract(ex, tt.path, []byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(o.Packages) != tt.wantPkgs {
				t.Errorf("got %+v", o.Packages)
			}
			for _, p := range o.Packages {
				if p.Dev {
					t.Errorf("%s: a package listed as production must not be dev", p.Name)
				}
			}
		})
	}
	_, err := NewLock().Extract(context.Background(), &inventory.Input{
		Path: "composer.lock", Reader: bytes.NewReader(make([]byte, MaxFileSize+1)),
	})
	if !errors.Is(err, inventory.ErrTooLarge) {
		t.Errorf("oversized: err = %v", err)
	}
}

func golden(t *testing.T, name string, got []inventory.Package) {
	t.Helper()
	file := filepath.Join("testdata", "golden", name+".json")
	if *update {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var want []inventory.Package
	if err := json.Unmarshal(readFile(t, file), &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", file, diff)
	}
}

func FuzzComposer(f *testing.F) {
	f.Add([]byte(`{"packages":[{"name":"a/b","version":"v1.0.0","license":["MIT"]}],"packages-dev":[{"name":"c/d","version":"dev-main"}],"dev-package-names":["c/d"]}`))
	f.Add([]byte(`[{"name":"a/b","version":"1.0","license":"MIT"}]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, ex := range []inventory.Extractor{NewInstalled(), NewLock()} {
			o, err := extract(ex, "composer.lock", in)
			if err != nil {
				continue
			}
			for _, p := range o.Packages {
				v, n, ok := splitName(p.Name)
				if !ok || !validVersion(p.Version) || p.PURL == "" || !strings.HasPrefix(p.PURL, "pkg:composer/"+v+"/"+n+"@") {
					t.Fatalf("bad package %+v", p)
				}
			}
		}
	})
}

func BenchmarkComposer(b *testing.B) {
	data := readFile(b, "testdata/app/vendor/composer/installed.json")
	ex := NewInstalled()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := extract(ex, "vendor/composer/installed.json", data); err != nil {
			b.Fatal(err)
		}
	}
}
