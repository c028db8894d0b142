package vulndb

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/mod/semver"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// govulncheckVersion is the govulncheck release Bulwark's Go findings are
// compared with.
const govulncheckVersion = "v1.9.0"

// pair is one vulnerability in one module, the unit govulncheck reports.
type pair struct{ ID, Module string }

func (p pair) String() string { return p.ID + " " + p.Module }

// levels are the pairs found at each of govulncheck's scan levels: every
// finding is module-level; some reach a vulnerable package; some a
// vulnerable symbol.
type levels struct{ module, pkg, symbol []pair }

// govulncheckDiff is an explained difference between Bulwark and
// govulncheck. Every entry must occur: an explanation for a difference
// that is gone fails the test, so none outlives its reason.
type govulncheckDiff struct {
	binary, level string
	pair          pair
	bulwarkOnly   bool
	reason        string
}

// explainedDiffs lists the differences that remain, with their reason.
// None do for the committed binaries and this database.
var explainedDiffs = []govulncheckDiff{}

// TestAgreesWithGovulncheck runs the real govulncheck in binary mode on the
// committed Go binaries and Bulwark on the same binaries with the same
// records, and compares the (vulnerability, module) pairs:
//
//   - module level, every binary: what govulncheck reports as affecting the
//     required modules (its "finding" messages; -show verbose prints them)
//     against every Bulwark match. This is the set Bulwark reports.
//   - package and symbol level, for the binary that keeps its symbol table
//     (govulncheck reads symbols only from those; for a stripped binary it
//     reports every module-level finding at every level): govulncheck's
//     findings with a package, and with a function, against Bulwark's
//     Match.Reachability "package" or "symbol", and "symbol". Bulwark reads
//     the function table that stripping keeps, so for stripped binaries it
//     is checked only to find a subset.
//
// The records are the golang.org/x/vulndb module's data/osv (the version
// the tests and the demo use), laid out for govulncheck's -db file:// as
// the v1 database its cmd/indexdb writes (see writeGoVulnDB). Bulwark
// imports the same directory. Needs the go command and the Go module proxy
// (or a module cache holding both modules); skipped without them.
func TestAgreesWithGovulncheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs govulncheck over 4,789 records")
	}
	start := time.Now()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not on PATH: cannot build govulncheck")
	}
	tmp := t.TempDir()
	mod := goModDownload(t, goCmd, tmp, goVulndbModule)
	osvDir := filepath.Join(mod, "data", "osv")
	govulncheck := installGovulncheck(t, goCmd, tmp)

	dbDir := filepath.Join(tmp, "govulndb")
	n, err := writeGoVulnDB(osvDir, dbDir)
	if err != nil {
		t.Fatal(err)
	}
	if n < 4000 {
		t.Fatalf("only %d records in %s", n, osvDir)
	}
	bwDir := filepath.Join(tmp, "bulwark-db")
	if _, err := Import(context.Background(), bwDir, []string{osvDir}, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	db, err := Open(bwDir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	gobinTestdata := filepath.Join("..", "inventory", "gobinary", "testdata")
	binaries := map[string]bool{ // path → keeps its symbol table
		filepath.Join(gobinTestdata, "vulnapp-go1.21.0-linux-amd64"):        false,
		filepath.Join(gobinTestdata, "vulnapp-go1.21.0-linux-amd64-symtab"): true,
		filepath.Join(gobinTestdata, "hello-go1.22rc1-linux-amd64"):         false,
	}
	// internal/testimage's Go programs, as the committed demo image holds
	// them (stripped).
	for _, p := range demoGoBinaries(t, filepath.Join(repoRoot(t), "internal", "demo", "data", "demo-image.tar"), tmp) {
		binaries[p] = false
	}

	seen := map[*govulncheckDiff]bool{}
	paths := make([]string, 0, len(binaries))
	for p := range binaries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, bin := range paths {
		name := filepath.Base(bin)
		t.Run(name, func(t *testing.T) {
			want := runGovulncheck(t, govulncheck, dbDir, bin)
			pkgs := extractGo(t, bin)
			for _, p := range pkgs {
				if p.Platform != "linux/amd64" {
					t.Errorf("%s: platform %q, want linux/amd64", p.Name, p.Platform)
				}
			}
			got := bulwarkLevels(t, db, pkgs)
			compare := func(level string, want, got []pair) {
				for _, d := range pairDiff(want, got) {
					if e := explained(name, level, d); e != nil {
						seen[e] = true
						continue
					}
					who := "govulncheck only"
					if d.bulwarkOnly {
						who = "Bulwark only"
					}
					t.Errorf("%s level: %s (%s)", level, d.pair, who)
				}
			}
			compare("module", want.module, got.module)
			if binaries[bin] {
				compare("package", want.pkg, got.pkg)
				compare("symbol", want.symbol, got.symbol)
				checkExtract(t, govulncheck, bin, pkgs[0].Symbols)
			} else {
				for _, p := range pairDiff(want.symbol, got.symbol) {
					if p.bulwarkOnly {
						t.Errorf("symbol level: %s found by Bulwark in a stripped binary, not by govulncheck", p.pair)
					}
				}
			}
			t.Logf("%d findings (module level); %d reach a vulnerable package, %d a vulnerable symbol (Bulwark); govulncheck: %d, %d, %d",
				len(got.module), len(got.pkg), len(got.symbol), len(want.module), len(want.pkg), len(want.symbol))
		})
	}
	for i := range explainedDiffs {
		if e := &explainedDiffs[i]; !seen[e] {
			t.Errorf("explained difference %s %s level %s did not occur: remove it (%s)", e.binary, e.level, e.pair, e.reason)
		}
	}
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

// TestPlatformExampleFromTheIssue: the demo's jwtssh (linux/amd64) links
// an x/crypto version GO-2024-2961 names, but that advisory is for
// Windows only; neither govulncheck (checked above) nor Bulwark reports it.
func TestPlatformExampleFromTheIssue(t *testing.T) {
	db := platformDB(t)
	tmp := t.TempDir()
	var jwtssh string
	for _, p := range demoGoBinaries(t, filepath.Join(repoRoot(t), "internal", "demo", "data", "demo-image.tar"), tmp) {
		if filepath.Base(p) == "demo-jwtssh" {
			jwtssh = p
		}
	}
	pkgs := extractGo(t, jwtssh)
	ms, err := db.Match(context.Background(), pkgs)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(ids(ms), "GO-2024-2961") {
		t.Error("GO-2024-2961 (Windows only) reported for a linux/amd64 binary")
	}
	for i := range pkgs {
		pkgs[i].Platform = "windows/amd64"
	}
	if ms, err = db.Match(context.Background(), pkgs); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ids(ms), "GO-2024-2961") {
		t.Error("GO-2024-2961 not reported for the same modules built for windows/amd64")
	}
}

func explained(binary, level string, d govulncheckDiff) *govulncheckDiff {
	for i := range explainedDiffs {
		e := &explainedDiffs[i]
		if e.binary == binary && e.level == level && e.pair == d.pair && e.bulwarkOnly == d.bulwarkOnly {
			return e
		}
	}
	return nil
}

func pairDiff(want, got []pair) []govulncheckDiff {
	var out []govulncheckDiff
	for _, p := range want {
		if !slices.Contains(got, p) {
			out = append(out, govulncheckDiff{pair: p})
		}
	}
	for _, p := range got {
		if !slices.Contains(want, p) {
			out = append(out, govulncheckDiff{pair: p, bulwarkOnly: true})
		}
	}
	return out
}

func sortedPairs(m map[pair]bool) []pair {
	out := make([]pair, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b pair) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// bulwarkLevels matches pkgs and sorts the pairs by reachability. A Match
// merges records that alias each other; every GO- ID of the merged
// records counts, as govulncheck reports each record.
func bulwarkLevels(t *testing.T, db *DB, pkgs []inventory.Package) levels {
	t.Helper()
	ms, err := db.Match(context.Background(), pkgs)
	if err != nil {
		t.Fatal(err)
	}
	mod, pkg, sym := map[pair]bool{}, map[pair]bool{}, map[pair]bool{}
	for _, m := range ms {
		if m.Reachability == "" {
			t.Errorf("%s in %s: no reachability although the binary's functions were read", m.Vulnerability.ID, pkgs[m.Package].Name)
		}
		for _, id := range append([]string{m.Vulnerability.ID}, m.Vulnerability.Aliases...) {
			if !strings.HasPrefix(id, "GO-") {
				continue
			}
			p := pair{id, pkgs[m.Package].Name}
			mod[p] = true
			if m.Reachability == ReachabilityPackage || m.Reachability == ReachabilitySymbol {
				pkg[p] = true
			}
			if m.Reachability == ReachabilitySymbol {
				sym[p] = true
			}
		}
	}
	return levels{sortedPairs(mod), sortedPairs(pkg), sortedPairs(sym)}
}

// runGovulncheck runs govulncheck -mode binary -format json and sorts its
// findings by level: a finding's first trace entry names the module, and
// also the package, and also the function, at deeper levels.
func runGovulncheck(t *testing.T, govulncheck, dbDir, bin string) levels {
	t.Helper()
	cmd := exec.Command(govulncheck, "-mode", "binary", "-db", "file://"+dbDir, "-format", "json", bin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("govulncheck %s: %v\n%s", bin, err, stderr.Bytes())
	}
	mod, pkg, sym := map[pair]bool{}, map[pair]bool{}, map[pair]bool{}
	dec := json.NewDecoder(bytes.NewReader(out))
	sawConfig := false
	for {
		var msg struct {
			Config *struct {
				ScannerVersion string `json:"scanner_version"`
				ScanMode       string `json:"scan_mode"`
			} `json:"config"`
			Finding *struct {
				OSV   string `json:"osv"`
				Trace []struct {
					Module   string `json:"module"`
					Package  string `json:"package"`
					Function string `json:"function"`
				} `json:"trace"`
			} `json:"finding"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("govulncheck output: %v", err)
		}
		if c := msg.Config; c != nil {
			if c.ScannerVersion != govulncheckVersion || c.ScanMode != "binary" {
				t.Fatalf("govulncheck %s in %s mode, want %s in binary mode", c.ScannerVersion, c.ScanMode, govulncheckVersion)
			}
			sawConfig = true
		}
		f := msg.Finding
		if f == nil || len(f.Trace) == 0 {
			continue
		}
		p := pair{f.OSV, f.Trace[0].Module}
		mod[p] = true
		if f.Trace[0].Package != "" {
			pkg[p] = true
		}
		if f.Trace[0].Function != "" {
			sym[p] = true
		}
	}
	if !sawConfig {
		t.Fatal("govulncheck printed no config message")
	}
	return levels{sortedPairs(mod), sortedPairs(pkg), sortedPairs(sym)}
}

// checkExtract compares the binary's functions as the gobinary extractor
// read them with the symbols govulncheck extracts from the same binary
// (`govulncheck -mode extract`: its symbol table functions and their
// inline trees). Functions without a package (compiler-generated) are
// not named by advisories and are left out by Bulwark.
func checkExtract(t *testing.T, govulncheck, bin string, syms *inventory.Symbols) {
	t.Helper()
	out, err := exec.Command(govulncheck, "-mode", "extract", bin).Output()
	if err != nil {
		t.Fatalf("govulncheck -mode extract: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	var header struct{ Name string }
	var body struct {
		Path       string `json:"path"`
		PkgSymbols []struct {
			Pkg, Name string
		} `json:"pkgSymbols"`
	}
	if err := dec.Decode(&header); err != nil || header.Name != "govulncheck-extract" {
		t.Fatalf("govulncheck -mode extract: header %+v, %v", header, err)
	}
	if err := dec.Decode(&body); err != nil {
		t.Fatal(err)
	}
	distinct := map[[2]string]bool{}
	for _, s := range body.PkgSymbols {
		if s.Pkg == "" {
			continue
		}
		pkg := s.Pkg
		if pkg == "main" {
			pkg = body.Path
		}
		distinct[[2]string{pkg, s.Name}] = true
		if !syms.HasFunc(pkg, s.Name) {
			t.Errorf("govulncheck extracts %s.%s; Bulwark's function set lacks it", pkg, s.Name)
		}
	}
	if len(distinct) != syms.Len() || len(distinct) < 1000 {
		t.Errorf("govulncheck extracts %d functions, Bulwark %d", len(distinct), syms.Len())
	}
}

// goModDownload fetches a module through the module proxy (or the module
// cache) and returns its directory; it skips when the proxy cannot be
// reached.
func goModDownload(t *testing.T, goCmd, dir, module string) string {
	t.Helper()
	cmd := exec.Command(goCmd, "mod", "download", "-json", module)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("go mod download %s failed (Go module proxy unreachable?): %v %s", module, err, out)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go mod download -json %s: %v %s", module, err, out)
	}
	return m.Dir
}

// installGovulncheck builds govulncheck from the module proxy into dir.
// Network failures skip; any other failure is an error.
func installGovulncheck(t *testing.T, goCmd, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	cmd := exec.Command(goCmd, "install", "golang.org/x/vuln/cmd/govulncheck@"+govulncheckVersion)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		for _, s := range []string{"dial tcp", "no such host", "connection refused", "i/o timeout", "TLS handshake", "proxy"} {
			if strings.Contains(string(out), s) {
				t.Skipf("cannot fetch govulncheck %s (Go module proxy unreachable): %s", govulncheckVersion, out)
			}
		}
		t.Fatalf("go install govulncheck@%s: %v\n%s", govulncheckVersion, err, out)
	}
	return filepath.Join(bin, "govulncheck")
}

// writeGoVulnDB lays the OSV records of osvDir out as the v1 Go
// vulnerability database that govulncheck's -db file://DIR reads
// (https://go.dev/security/vuln/database#api):
//
//	index/db.json       {"modified": newest "modified" of any record}
//	index/modules.json  [{"path", "vulns": [{"id", "modified", "fixed"}]}]
//	ID/GO-….json        the records, byte for byte
//
// The golang.org/x/vulndb module ships only data/osv; the vulndb
// repository builds the rest with its cmd/indexdb
// (internal/database.RawLoad + Write), which needs that module's many
// dependencies. This is the same computation: every record (withdrawn
// ones too), modules sorted by path, vulns by ID, "fixed" the latest fix
// of the entry's SEMVER ranges, or none when a later "introduced"
// re-opens it (internal/osvutils.LatestFixed; govulncheck only uses it to
// skip fetching records that cannot affect a version). The uncompressed
// files suffice: govulncheck's local source reads ENDPOINT.json. Checked
// once against `go run golang.org/x/vulndb/cmd/indexdb` on the same
// directory: index/modules.json and index/db.json came out identical. It
// returns the number of records.
func writeGoVulnDB(osvDir, dir string) (int, error) {
	files, err := filepath.Glob(filepath.Join(osvDir, "*.json"))
	if err != nil {
		return 0, err
	}
	type modVuln struct {
		ID       string `json:"id"`
		Modified string `json:"modified"`
		Fixed    string `json:"fixed,omitempty"`
	}
	type module struct {
		Path  string    `json:"path"`
		Vulns []modVuln `json:"vulns"`
	}
	modules := map[string]*module{}
	var newest time.Time
	for _, dirName := range []string{"index", "ID"} {
		if err := os.MkdirAll(filepath.Join(dir, dirName), 0o755); err != nil {
			return 0, err
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		var rec struct {
			ID       string `json:"id"`
			Modified string `json:"modified"`
			Affected []struct {
				Package struct{ Name string } `json:"package"`
				Ranges  []struct {
					Type   string              `json:"type"`
					Events []map[string]string `json:"events"`
				} `json:"ranges"`
			} `json:"affected"`
		}
		if err := json.Unmarshal(data, &rec); err != nil {
			return 0, fmt.Errorf("%s: %w", f, err)
		}
		if filepath.Base(f) != rec.ID+".json" {
			return 0, fmt.Errorf("%s holds record %s", f, rec.ID)
		}
		mt, err := time.Parse(time.RFC3339, rec.Modified)
		if err != nil {
			return 0, fmt.Errorf("%s: modified: %w", f, err)
		}
		if mt.After(newest) {
			newest = mt
		}
		for _, a := range rec.Affected {
			latest := ""
			for _, r := range a.Ranges {
				if r.Type != "SEMVER" {
					continue
				}
				for _, e := range r.Events {
					if fx := e["fixed"]; fx != "" && (latest == "" || semver.Compare("v"+latest, "v"+fx) < 0) {
						latest = fx
					}
				}
				for _, e := range r.Events {
					if in := e["introduced"]; in != "" && in != "0" && (latest == "" || semver.Compare("v"+latest, "v"+in) < 0) {
						latest = ""
						break
					}
				}
			}
			m := modules[a.Package.Name]
			if m == nil {
				m = &module{Path: a.Package.Name, Vulns: []modVuln{}}
				modules[a.Package.Name] = m
			}
			m.Vulns = append(m.Vulns, modVuln{ID: rec.ID, Modified: rec.Modified, Fixed: latest})
		}
		if err := os.WriteFile(filepath.Join(dir, "ID", rec.ID+".json"), data, 0o644); err != nil {
			return 0, err
		}
	}
	var list []*module
	for _, m := range modules {
		slices.SortFunc(m.Vulns, func(a, b modVuln) int { return strings.Compare(a.ID, b.ID) })
		list = append(list, m)
	}
	slices.SortFunc(list, func(a, b *module) int { return strings.Compare(a.Path, b.Path) })
	for name, v := range map[string]any{
		"db.json":      map[string]string{"modified": newest.UTC().Format(time.RFC3339)},
		"modules.json": list,
	} {
		data, err := json.Marshal(v)
		if err != nil {
			return 0, err
		}
		if err := os.WriteFile(filepath.Join(dir, "index", name), data, 0o644); err != nil {
			return 0, err
		}
	}
	return len(files), nil
}

// demoGoBinaries writes the Go programs of the committed demo image
// (/usr/local/bin/*, built by internal/testimage) to files in dir, for
// govulncheck, which reads a path.
func demoGoBinaries(t testing.TB, archive, dir string) []string {
	t.Helper()
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, "/")
		if h.Typeflag != tar.TypeReg || !strings.HasPrefix(name, "usr/local/bin/") {
			continue
		}
		p := filepath.Join(dir, "demo-"+filepath.Base(name))
		data, err := io.ReadAll(io.LimitReader(tr, 64<<20))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	if len(out) < 2 {
		t.Fatalf("%d Go programs in %s, want jwtssh and textnet", len(out), archive)
	}
	return out
}
