package vulndb

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/bulwark-security/bulwark/internal/testimage"
)

// repoRoot walks up from the package directory to the directory holding go.mod.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := testimage.RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return dir
}

// sharedData returns ../shared/vulndata/NAME next to the repository, or
// skips: the full databases are not committed.
func sharedData(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join(repoRoot(tb), "..", "shared", "vulndata", name)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("real data %s not present (expected next to the repository in ../shared/vulndata): %v", name, err)
	}
	return p
}

const goVulndbModule = "golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018"

var goVulndbZip = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", goVulndbModule).Output()
	if err != nil {
		return "", err
	}
	var m struct{ Zip string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", err
	}
	return m.Zip, nil
})

// goVulndb returns the golang.org/x/vulndb module zip from the Go module
// proxy (through the module cache), or skips.
func goVulndb(tb testing.TB) string {
	tb.Helper()
	p, err := goVulndbZip()
	if err != nil || p == "" {
		tb.Skipf("cannot get %s from the Go module proxy: %v", goVulndbModule, err)
	}
	return p
}

// importDirs imports each testdata path as its own source into a new
// database and opens it.
func importDirs(tb testing.TB, paths ...string) *DB {
	tb.Helper()
	dir := tb.TempDir()
	for _, p := range paths {
		if _, err := Import(context.Background(), dir, []string{filepath.Join("testdata", p)}, ImportOptions{}); err != nil {
			tb.Fatalf("import %s: %v", p, err)
		}
	}
	db, err := Open(dir, OpenOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

var allTestdata = []string{"go-vulndb", "ghsa", "rustsec", "pypa", "almalinux", "nodejs", "alpine", "cve5", "cisa-kev-subset.json", "epss"}
