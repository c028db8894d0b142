package vulndb

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/gobinary"
)

// platformDB imports the records whose vulnerable packages are limited to
// some platforms or name symbols (testdata/go-platform) and go-vulndb's
// testdata, as two sources.
func platformDB(t *testing.T) *DB {
	t.Helper()
	dir := t.TempDir()
	for name, in := range map[string]string{"go-platform": "go-platform", "go-vulndb": "go-vulndb"} {
		if _, err := Import(context.Background(), dir, []string{filepath.Join("testdata", in)}, ImportOptions{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	db, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func ids(ms []Match) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Vulnerability.ID)
	}
	slices.Sort(out)
	return out
}

// TestMatchPlatform: an advisory whose every vulnerable package is limited
// to other platforms (go-vulndb's imports[].goos/goarch) does not match a
// binary built for this one, as govulncheck decides it.
func TestMatchPlatform(t *testing.T) {
	db := platformDB(t)
	// Affected by GO-2022-0209 (salsa20 assembly, amd64 only; fixed in
	// 0.0.0-20190320223903-b7391e95e576) and by GO-2024-2961
	// (acme/autocert, windows only; fixed in 0.0.0-20220525230936-793ad666bf5e).
	crypto := func(platform string) inventory.Package {
		p := goMod("golang.org/x/crypto", "v0.0.0-20190308221718-c2843e01d9a2")
		p.Platform = platform
		return p
	}
	// GO-2020-0009: go-jose on 32-bit and other architectures, not amd64.
	jose := func(platform string) inventory.Package {
		p := goMod("github.com/square/go-jose", "v0.0.0-20160101000000-aaaaaaaaaaaa")
		p.Platform = platform
		return p
	}
	for _, c := range []struct {
		pkg  inventory.Package
		want []string
	}{
		{crypto("linux/amd64"), []string{"GO-2022-0209"}},
		{crypto("windows/amd64"), []string{"GO-2022-0209", "GO-2024-2961"}},
		{crypto("windows/arm64"), []string{"GO-2024-2961"}},
		{crypto("linux/arm64"), nil},
		{crypto("linux/arm/v7"), nil},                                    // a variant does not change GOARCH
		{crypto(""), []string{"GO-2022-0209", "GO-2024-2961"}},           // unknown platform: every advisory
		{crypto("linux"), []string{"GO-2022-0209"}},                      // unknown GOARCH: only GOOS limits
		{crypto("/amd64"), []string{"GO-2022-0209", "GO-2024-2961"}},     // unknown GOOS: only GOARCH limits
		{jose("linux/amd64"), nil},                                       // both imports list other architectures
		{jose("linux/386"), []string{"GO-2020-0009"}},                    // ...and 386 is one of them
		{jose("windows/mips64p32le"), []string{"GO-2020-0009"}},          // the last of the list
		{goMod("golang.org/x/text", "v0.3.7"), []string{"GO-2022-1059"}}, // no platform limit
	} {
		ms, err := db.Match(context.Background(), []inventory.Package{c.pkg})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c.want, ids(ms)); diff != "" {
			t.Errorf("%s on %q (-want +got):\n%s", c.pkg.Name, c.pkg.Platform, diff)
		}
	}
}

// TestMatchReachability matches the packages of a real Go binary
// (testdata of internal/inventory/gobinary: x/net html, x/text language)
// and checks how much of each advisory's vulnerable code the binary holds.
func TestMatchReachability(t *testing.T) {
	db := platformDB(t)
	bin := filepath.Join("..", "inventory", "gobinary", "testdata", "vulnapp-go1.21.0-linux-amd64")
	pkgs := extractGo(t, bin)
	ms, err := db.Match(context.Background(), pkgs)
	if err != nil {
		t.Fatal(err)
	}
	type reach struct {
		Reachability string
		Symbols      []string
	}
	n := len(ms)
	got := map[string]reach{}
	for _, m := range ms {
		got[m.Vulnerability.ID] = reach{m.Reachability, m.Symbols}
	}
	for id, want := range map[string]reach{
		// language.ParseAcceptLanguage is called by main.
		"GO-2022-1059": {ReachabilitySymbol, []string{"golang.org/x/text/language.ParseAcceptLanguage"}},
		// x/net/html is linked (html.Parse), but not html.Render.
		"GO-2023-1988": {ReachabilityPackage, nil},
		// x/net/http2 is not linked at all.
		"GO-2023-2102": {ReachabilityModule, nil},
	} {
		if diff := cmp.Diff(want, got[id]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", id, diff)
		}
	}
	if _, ok := got["GO-2024-2961"]; ok {
		t.Error("GO-2024-2961 (windows only) matched a linux/amd64 binary")
	}

	// Without the binary's functions (a result read back from JSON, an
	// SBOM) the same findings come without reachability.
	for i := range pkgs {
		pkgs[i].Symbols = nil
	}
	ms, err = db.Match(context.Background(), pkgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != n {
		t.Errorf("%d matches without symbols, %d with: reachability must not change what matches", len(ms), n)
	}
	for _, m := range ms {
		if m.Reachability != "" || m.Symbols != nil {
			t.Errorf("%s: reachability %q %v without symbols", m.Vulnerability.ID, m.Reachability, m.Symbols)
		}
	}
}

func extractGo(t testing.TB, path string) []inventory.Package {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := gobinary.New().Extract(context.Background(), goInput(filepath.Base(path), data))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Packages) == 0 || out.Packages[0].Symbols == nil {
		t.Fatalf("%s: %d packages, symbols %v", path, len(out.Packages), out.Packages)
	}
	return out.Packages
}

// goInput hands a file to an extractor the way the scan core does.
func goInput(path string, data []byte) *inventory.Input {
	return &inventory.Input{
		Path:   path,
		Info:   inventory.FileInfo{Size: int64(len(data)), Mode: 0o755},
		Reader: bytes.NewReader(data),
		ReaderAt: func() (io.ReaderAt, int64, error) {
			return bytes.NewReader(data), int64(len(data)), nil
		},
	}
}
