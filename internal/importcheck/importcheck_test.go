package importcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder catches the failures Forbid reports instead of failing the test.
type recorder struct {
	testing.TB
	errors int
}

func (r *recorder) Errorf(string, ...any) { r.errors++ }
func (r *recorder) Helper()               {}

func TestForbid(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.go", "package p\n\nimport (\n\t\"net/http\"\n\t\"example.com/m/internal/cli\"\n)\n")
	write("a_test.go", "package p\n\nimport \"example.com/m/internal/server\"\n")
	for _, tc := range []struct {
		name string
		bad  func(string) bool
		want int
	}{
		{"net/http", func(p string) bool { return p == "net/http" }, 1},
		{"cli", func(p string) bool { return Internal(p, "cli") }, 1},
		{"test files are not checked", func(p string) bool { return Internal(p, "server") }, 0},
		{"nothing", func(string) bool { return false }, 0},
	} {
		r := &recorder{TB: t}
		Forbid(r, dir, tc.bad)
		if r.errors != tc.want {
			t.Errorf("%s: %d errors, want %d", tc.name, r.errors, tc.want)
		}
	}
}

// The checker holds its own promise.
func TestImports(t *testing.T) {
	Forbid(t, ".", func(p string) bool { return strings.HasPrefix(p, "github.com/bulwark-security/") })
}
