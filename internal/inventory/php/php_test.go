package php

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/inventorytest"
	"github.com/google/go-cmp/cmp"
)

// walk hands every file below testdata that ex requires to ex, and groups
// the packages by the file they were found in.
func walk(t *testing.T, ex inventory.Extractor) map[string][]inventory.Package {
	t.Helper()
	out := make(map[string][]inventory.Package)
	for _, p := range inventorytest.Walk(t, ex, "testdata") {
		out[p.Location] = append(out[p.Location], p)
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
	var paths []string
	for _, tt := range tests {
		paths = append(paths, tt.path)
	}
	inventorytest.CheckRequiredNoAllocs(t, paths, in, lock)
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
		inventorytest.Golden(t, "installed-"+strings.SplitN(loc, "/", 2)[0], pkgs)
	}
	for loc, pkgs := range locked {
		inventorytest.Golden(t, "lock-"+strings.SplitN(loc, "/", 2)[0], pkgs)
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
	installed := []inventorytest.Case{
		{Name: "installed truncated", In: `{"packages":[{"name":"a/b","vers`, WantErr: true},
		{Name: "installed deep", In: deep, WantErr: true},
		{Name: "installed wrong type", In: `{"packages":{"a":1}}`, WantErr: true},
		{Name: "installed name wrong type", In: `[{"name":["a/b"],"version":"1.0"}]`, WantErr: true},
		{Name: "installed dev names wrong type", In: `{"packages":[],"dev-package-names":"a/b"}`, WantErr: true},
		{Name: "installed scalar", In: `"x"`, WantErr: true},
		{Name: "installed empty", In: ``, WantErr: true},
		{Name: "installed null", In: `null`},
		{Name: "installed bad names", In: `[{"name":"../x","version":"1"},{"name":"A/B","version":"1"},{"name":"a/b/c","version":"1"},{"name":"a/b","version":"1 || 2"},{"name":"a/b","version":""}]`},
		{Name: "installed license shapes", In: `[{"name":"a/b","version":"1.0","license":"MIT"},{"name":"a/c","version":"1.0","license":[1,{"x":1},"ISC"]},{"name":"a/d","version":"1.0","license":{"x":1}}]`, Pkgs: 3},
	}
	lock := []inventorytest.Case{
		{Name: "lock truncated", In: `{"packages":[`, WantErr: true},
		{Name: "lock dev wrong type", In: `{"packages":[],"packages-dev":{"a/b":"1"}}`, WantErr: true},
		{Name: "lock byte order mark", In: "\xef\xbb\xbf" + `{"packages":[{"name":"a/b","version":"1.0"}]}`, Pkgs: 1},
		{Name: "lock duplicate", In: `{"packages":[{"name":"a/b","version":"1.0"}],"packages-dev":[{"name":"a/b","version":"1.0"}]}`, Pkgs: 1},
		{Name: "lock giant", In: `{"packages":[{"name":"a/b","version":"1.0","description":"` + strings.Repeat("x", 8<<20) + `"}]}`, Pkgs: 1},
	}
	noDev := func(t testing.TB, o inventory.Output, _ error) {
		for _, p := range o.Packages {
			if p.Dev {
				t.Errorf("%s: a package listed as production must not be dev", p.Name)
			}
		}
	}
	for _, cases := range [][]inventorytest.Case{installed, lock} {
		for i := range cases {
			cases[i].Check = noDev
		}
	}
	inventorytest.RunHostile(t, NewInstalled(), "vendor/composer/installed.json", installed)
	inventorytest.RunHostile(t, NewLock(), "composer.lock", lock)

	// A stream longer than the bound, of undeclared size.
	in := inventorytest.Input("composer.lock", make([]byte, MaxFileSize+1))
	in.Info.Size = 0
	if _, err := NewLock().Extract(context.Background(), in); !errors.Is(err, inventory.ErrTooLarge) {
		t.Errorf("oversized: err = %v", err)
	}
}

func FuzzComposer(f *testing.F) {
	f.Add([]byte(`{"packages":[{"name":"a/b","version":"v1.0.0","license":["MIT"]}],"packages-dev":[{"name":"c/d","version":"dev-main"}],"dev-package-names":["c/d"]}`))
	f.Add([]byte(`[{"name":"a/b","version":"1.0","license":"MIT"}]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, ex := range []inventory.Extractor{NewInstalled(), NewLock()} {
			o, err := inventorytest.Fuzz(t, ex, "composer.lock", in)
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
	data := inventorytest.ReadFile(b, "testdata/app/vendor/composer/installed.json")
	inventorytest.Benchmark(b, NewInstalled(), "vendor/composer/installed.json", data, func(out inventory.Output) bool { return len(out.Packages) > 0 })
}
