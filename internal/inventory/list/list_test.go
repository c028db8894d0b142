package list

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

func TestNamesUniqueAndVersioned(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range All() {
		name := e.Name()
		if name == "" || strings.TrimSpace(name) != name {
			t.Errorf("%T: bad name %q", e, name)
		}
		if seen[name] {
			t.Errorf("name %q used twice", name)
		}
		seen[name] = true
		if e.Version() < 1 {
			t.Errorf("%s: version %d, want ≥ 1", name, e.Version())
		}
	}
}

// TestRequiredRejects checks that no extractor asks for every file: the
// empty path and random paths that look like nothing must be refused.
func TestRequiredRejects(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{""}
	for range 20 {
		var b strings.Builder
		for i := range 1 + rng.IntN(4) {
			if i > 0 {
				b.WriteByte('/')
			}
			for range 3 + rng.IntN(10) {
				b.WriteByte(byte('a' + rng.IntN(26)))
			}
		}
		paths = append(paths, b.String())
	}
	for _, e := range All() {
		for _, p := range paths {
			for _, info := range []inventory.FileInfo{{Size: 0, Mode: 0o644}, {Size: 4096, Mode: 0o644}} {
				if e.Required(p, info) {
					t.Errorf("%s: Required(%q, %+v) = true", e.Name(), p, info)
				}
			}
		}
	}
}

// TestEveryExtractorPackageListed fails when a package under
// internal/inventory defines an extractor that All does not return.
func TestEveryExtractorPackageListed(t *testing.T) {
	listed := map[string]bool{}
	for _, e := range All() {
		typ := reflect.TypeOf(e)
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		listed[filepath.Base(typ.PkgPath())] = true
	}
	found := 0
	dirs, err := os.ReadDir("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !d.IsDir() || d.Name() == "list" {
			continue
		}
		files, _ := filepath.Glob(filepath.Join("..", d.Name(), "*.go"))
		hasExtractor := false
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if extractMethod.Match(src) {
				hasExtractor = true
			}
		}
		if hasExtractor {
			found++
			if !listed[d.Name()] {
				t.Errorf("package %s defines an extractor that All does not return", d.Name())
			}
		}
	}
	if found < 4 {
		t.Errorf("found extractors in only %d packages: the source pattern no longer matches", found)
	}
}

var extractMethod = regexp.MustCompile(`(?m)^func \([^)]*\) Extract\([^)]*\*inventory\.Input\)`)
