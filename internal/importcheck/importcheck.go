// Package importcheck lets a package's tests hold the promise of its doc.go
// about what it must not import (for example: the store never imports
// net/http, the server never imports the CLI that wires it). It is a
// test-support package: only _test.go files import it.
//
// It must not import anything of Bulwark.
package importcheck

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Forbid fails t for every import of the non-test .go files in dir (the
// package under test is ".") for which bad reports true.
func Forbid(t testing.TB, dir string, bad func(path string) bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no .go files in %s", dir)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range f.Imports {
			p, err := strconv.Unquote(im.Path.Value)
			if err != nil {
				t.Fatalf("%s: import %s: %v", name, im.Path.Value, err)
			}
			if bad(p) {
				t.Errorf("%s imports %s", name, p)
			}
		}
	}
}

// Internal reports whether path is the Bulwark package internal/name.
func Internal(path, name string) bool {
	return strings.HasSuffix(path, "/internal/"+name)
}
