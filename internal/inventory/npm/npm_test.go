package npm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// walk hands every regular file below root that ex requires to ex, as the
// scan core does, and returns everything found.
func walk(t testing.TB, ex inventory.Extractor, root string) []inventory.Package {
	t.Helper()
	var out []inventory.Package
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		fi := inventory.FileInfo{Size: info.Size(), Mode: info.Mode()}
		if !ex.Required(rel, fi) {
			return nil
		}
		o, err := extractFile(ex, p, rel, fi)
		if err != nil {
			t.Errorf("Extract(%s): %v", rel, err)
			return nil
		}
		out = append(out, o.Packages...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func extractFile(ex inventory.Extractor, file, rel string, fi inventory.FileInfo) (inventory.Output, error) {
	f, err := os.Open(file)
	if err != nil {
		return inventory.Output{}, err
	}
	defer f.Close()
	return ex.Extract(context.Background(), &inventory.Input{Path: rel, Info: fi, Reader: f})
}

func extractBytes(ex inventory.Extractor, rel string, b []byte) (inventory.Output, error) {
	return ex.Extract(context.Background(), &inventory.Input{
		Path: rel, Info: inventory.FileInfo{Size: int64(len(b))}, Reader: bytes.NewReader(b),
	})
}

// golden compares got with testdata/golden/name.json, rewriting it with -update.
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
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	var want []inventory.Package
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", file, diff)
	}
}

func ids(pkgs []inventory.Package) map[string]inventory.Package {
	m := make(map[string]inventory.Package, len(pkgs))
	for _, p := range pkgs {
		m[p.Name+"@"+p.Version] = p
	}
	return m
}

func TestPackageJSONRequired(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"node_modules/lodash/package.json", true},
		{"app/node_modules/lodash/package.json", true},
		{"app/node_modules/@babel/traverse/package.json", true},
		{"app/node_modules/a/node_modules/b/package.json", true},
		{"app/node_modules/a/node_modules/@s/b/package.json", true},
		{"node_modules/.pnpm/lodash@4.17.15/node_modules/lodash/package.json", true},
		{"usr/lib/node_modules/npm/node_modules/semver/package.json", true},
		{"app/package.json", false},
		{"package.json", false},
		{"node_modules/package.json", false},
		{"node_modules/@babel/package.json", false},
		{"node_modules/.bin/package.json", false},
		{"node_modules/workerpool/examples/embeddedWorker/package.json", false},
		{"node_modules/@babel/runtime/helpers/esm/package.json", false},
		{"node_modules/@babel/runtime/helpers/package.json", false},
		{"node_modules/lodash/package.json.bak", false},
		{"node_modules/lodash/xpackage.json", false},
		{"xnode_modules/lodash/package.json", false},
		{"node_modules/lodash/package-lock.json", false},
	}
	ex := NewPackageJSON()
	for _, tt := range tests {
		if got := ex.Required(tt.path, inventory.FileInfo{}); got != tt.want {
			t.Errorf("Required(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestRequiredDoesNotAllocate(t *testing.T) {
	pj, lf := NewPackageJSON(), NewLockfile()
	paths := []string{
		"app/node_modules/@babel/traverse/package.json",
		"app/node_modules/workerpool/examples/embeddedWorker/package.json",
		"usr/lib/python3/dist-packages/foo.py",
		"app/package-lock.json",
		"app/node_modules/x/yarn.lock",
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, p := range paths {
			pj.Required(p, inventory.FileInfo{})
			lf.Required(p, inventory.FileInfo{})
		}
	})
	if allocs != 0 {
		t.Errorf("Required allocates %v times per run", allocs)
	}
}

func TestLockfileRequired(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"package-lock.json", true},
		{"app/package-lock.json", true},
		{"app/npm-shrinkwrap.json", true},
		{"app/yarn.lock", true},
		{"app/pnpm-lock.yaml", true},
		{"app/node_modules/.package-lock.json", false},
		{"app/node_modules/foo/package-lock.json", false},
		{"node_modules/foo/yarn.lock", false},
		{"app/node_modules/.pnpm/x/node_modules/y/pnpm-lock.yaml", false},
		{"app/package.json", false},
		{"app/yarn.lock.bak", false},
		{"app/my-yarn.lock", false},
	}
	ex := NewLockfile()
	for _, tt := range tests {
		if got := ex.Required(tt.path, inventory.FileInfo{}); got != tt.want {
			t.Errorf("Required(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

// TestInstalled extracts the real node_modules tree npm 11 installed for
// testdata/installed/app/package.json.
func TestInstalled(t *testing.T) {
	got := walk(t, NewPackageJSON(), filepath.Join("testdata", "installed"))
	slices.SortFunc(got, func(a, b inventory.Package) int { return strings.Compare(a.Location, b.Location) })
	golden(t, "installed", got)

	byID := ids(got)
	for _, id := range []string{"lodash@4.17.15", "minimist@1.2.0", "@babel/traverse@7.20.0", "express@4.17.1", "mocha@8.0.0"} {
		if _, ok := byID[id]; !ok {
			t.Errorf("%s not found", id)
		}
	}
	// The alias minimist-old@npm:minimist@0.0.8 is reported as minimist.
	alias := byID["minimist@0.0.8"]
	if alias.Location != "app/node_modules/minimist-old/package.json" {
		t.Errorf("alias: got %+v", alias)
	}
	if p := byID["@babel/traverse@7.20.0"]; p.PURL != "pkg:npm/%40babel/traverse@7.20.0" || !slices.Equal(p.Licenses, []string{"MIT"}) {
		t.Errorf("@babel/traverse: got %+v", p)
	}
	for _, p := range got {
		if strings.Contains(p.Location, "/examples/") {
			t.Errorf("fixture reported as a package: %+v", p)
		}
		if p.Ecosystem != inventory.EcosystemNPM || p.Type != inventory.TypeNPM || p.Extractor != "language/javascript/packagejson" {
			t.Errorf("bad identity fields: %+v", p)
		}
	}

	// npm wrote the lock file from the same install: both must list exactly
	// the same packages at the same places.
	lock := walk(t, NewLockfile(), filepath.Join("testdata", "installed"))
	if len(lock) == 0 {
		t.Fatal("no lock file packages")
	}
	for _, p := range lock {
		if p.Location != "app/package-lock.json" {
			t.Errorf("lock file below node_modules was read: %s", p.Location)
		}
	}
	// The lock file also lists optional packages for other platforms
	// (fsevents is macOS-only); npm marks those "optional": true.
	var raw struct {
		Packages map[string]struct {
			Version  string `json:"version"`
			Name     string `json:"name"`
			Optional bool   `json:"optional"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(readTestdata(t, "testdata/installed/app/package-lock.json"), &raw); err != nil {
		t.Fatal(err)
	}
	optional := make(map[string]bool)
	for k, e := range raw.Packages {
		if e.Optional {
			optional[k[strings.LastIndex(k, "node_modules/")+len("node_modules/"):]+"@"+e.Version] = true
		}
	}
	skipped, lockIDs := 0, ids(lock)
	for id := range lockIDs {
		if _, ok := byID[id]; !ok {
			if !optional[id] {
				t.Errorf("%s is locked, not optional, and not installed", id)
			}
			skipped++
		}
	}
	for id := range byID {
		if _, ok := lockIDs[id]; !ok {
			t.Errorf("%s is installed but not locked", id)
		}
	}
	if skipped == 0 || skipped > 2 {
		t.Errorf("%d locked packages not installed, want fsevents (and nothing else)", skipped)
	}
}

func keys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}

var lockfiles = []struct{ name, path string }{
	{"npm-v1", "testdata/lockfiles/npm-v1/package-lock.json"},
	{"npm-v2", "testdata/lockfiles/npm-v2/package-lock.json"},
	{"npm-v3", "testdata/installed/app/package-lock.json"},
	{"yarn-classic", "testdata/lockfiles/yarn-classic/yarn.lock"},
	{"yarn-berry", "testdata/lockfiles/yarn-berry/yarn.lock"},
	{"pnpm-v5", "testdata/lockfiles/pnpm-v5/pnpm-lock.yaml"},
	{"pnpm-v6", "testdata/lockfiles/pnpm-v6/pnpm-lock.yaml"},
	{"pnpm-v9", "testdata/lockfiles/pnpm-v9/pnpm-lock.yaml"},
}

func extractLock(t *testing.T, path string) []inventory.Package {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	ex := NewLockfile()
	rel := strings.TrimPrefix(path, "testdata/")
	if !ex.Required(rel, inventory.FileInfo{Size: fi.Size()}) {
		t.Fatalf("Required(%s) = false", rel)
	}
	o, err := extractFile(ex, path, rel, inventory.FileInfo{Size: fi.Size()})
	if err != nil {
		t.Fatal(err)
	}
	return o.Packages
}

// TestLockfiles reads lock files that npm 6, npm 11, yarn 1, yarn 4 and pnpm
// 7, 8 and 9 wrote for the same package.json.
func TestLockfiles(t *testing.T) {
	results := make(map[string]map[string]inventory.Package)
	for _, lf := range lockfiles {
		t.Run(lf.name, func(t *testing.T) {
			got := extractLock(t, lf.path)
			golden(t, "lock-"+lf.name, got)
			byID := ids(got)
			if len(byID) != len(got) {
				t.Errorf("duplicates: %d packages, %d distinct", len(got), len(byID))
			}
			results[lf.name] = byID

			// package.json pins these exactly.
			for id, dev := range map[string]bool{
				"lodash@4.17.15": false, "minimist@1.2.0": false, "minimist@0.0.8": false,
				"@babel/traverse@7.20.0": false, "express@4.17.1": false, "mocha@8.0.0": true,
			} {
				p, ok := byID[id]
				if !ok {
					t.Errorf("%s not found", id)
					continue
				}
				if recordsDev(lf.name) && p.Dev != dev {
					t.Errorf("%s: Dev = %v, want %v", id, p.Dev, dev)
				}
				if recordsIndirect(lf.name) && p.Indirect {
					t.Errorf("%s: Indirect, want direct", id)
				}
			}
			if _, ok := byID["minimist-old@0.0.8"]; ok {
				t.Error("alias reported under its alias name")
			}
			if _, ok := byID["bulwark-npm-fixture@1.0.0"]; ok {
				t.Error("the project itself reported as a package")
			}
			var dev, indirect int
			for _, p := range got {
				if p.Dev {
					dev++
				}
				if p.Indirect {
					indirect++
				}
			}
			if recordsDev(lf.name) && dev == 0 {
				t.Error("no dev packages")
			}
			if recordsIndirect(lf.name) && indirect == 0 {
				t.Error("no indirect packages")
			}
			t.Logf("%d packages, %d dev, %d indirect", len(got), dev, indirect)
		})
	}

	// Lock files of one package manager resolved the same registry state:
	// their package sets and dev flags must agree. pnpm 9 records no dev
	// flag at all, so its agreement with pnpm 5/6 checks the graph walk.
	same := func(a, b string) {
		t.Helper()
		x, y := results[a], results[b]
		if x == nil || y == nil {
			return
		}
		if diff := cmp.Diff(keys(x), keys(y)); diff != "" {
			t.Errorf("%s and %s list different packages (-%s +%s):\n%s", a, b, a, b, diff)
			return
		}
		for id, p := range x {
			if recordsDev(a) && recordsDev(b) && p.Dev != y[id].Dev {
				t.Errorf("%s: Dev %v in %s, %v in %s", id, p.Dev, a, y[id].Dev, b)
			}
			if recordsIndirect(a) && recordsIndirect(b) && p.Indirect != y[id].Indirect {
				t.Errorf("%s: Indirect %v in %s, %v in %s", id, p.Indirect, a, y[id].Indirect, b)
			}
		}
	}
	same("npm-v1", "npm-v2")
	same("npm-v2", "npm-v3")
	same("pnpm-v5", "pnpm-v6")
	same("pnpm-v6", "pnpm-v9")
	// Across package managers the resolutions differ a little (yarn 4 adds
	// node-gyp to packages with native builds, pnpm and npm place peer
	// dependencies differently), but a package both npm and pnpm lock must
	// be dev in both or in neither.
	if npm, pnpm := results["npm-v3"], results["pnpm-v9"]; npm != nil && pnpm != nil {
		common := 0
		for id, p := range npm {
			if q, ok := pnpm[id]; ok {
				common++
				if p.Dev != q.Dev {
					t.Errorf("%s: Dev %v in npm, %v in pnpm", id, p.Dev, q.Dev)
				}
			}
		}
		if common < len(npm)*9/10 {
			t.Errorf("npm and pnpm share only %d of %d packages", common, len(npm))
		}
	}
	if classic, berry := results["yarn-classic"], results["yarn-berry"]; classic != nil && berry != nil {
		for id := range classic {
			if _, ok := berry[id]; !ok {
				t.Errorf("%s in yarn 1's lock, not in yarn 4's", id)
			}
		}
		if _, ok := berry["node-gyp@13.1.0"]; !ok {
			t.Error("yarn 4's implicit node-gyp dependency not found")
		}
	}
}

func recordsDev(name string) bool      { return !strings.HasPrefix(name, "yarn") }
func recordsIndirect(name string) bool { return name != "npm-v1" && !strings.HasPrefix(name, "yarn") }

func TestHostilePackageJSON(t *testing.T) {
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	giant := `{"name":"a","version":"1.0.0","description":"` + strings.Repeat("x", 4<<20) + `"}`
	tests := []struct {
		name    string
		in      string
		wantErr bool
		wantPkg bool
	}{
		{"empty", "", true, false},
		{"truncated", `{"name":"lodash","vers`, true, false},
		{"not json", "\x00\x01\x02", true, false},
		{"deep nesting", `{"name":"a","version":"1.0.0","x":` + deep + `}`, true, false},
		{"giant string within bounds", giant, false, true},
		{"name wrong type", `{"name":1,"version":"1.0.0"}`, true, false},
		{"version wrong type", `{"name":"a","version":{"x":1}}`, true, false},
		{"license wrong type", `{"name":"a","version":"1.0.0","license":[1,{"type":7}],"licenses":{"x":1}}`, false, true},
		{"top-level array", `[1,2,3]`, true, false},
		{"no version", `{"name":"a"}`, false, false},
		{"path-like name", `{"name":"../../etc","version":"1.0.0"}`, false, false},
		{"url version", `{"name":"a","version":"git+https://x/y"}`, false, false},
		{"null", `null`, false, false},
		{"byte order mark", "\xef\xbb\xbf{\"name\":\"a\",\"version\":\"1.0.0\"}", false, true},
	}
	ex := NewPackageJSON()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := extractBytes(ex, "node_modules/a/package.json", []byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if (len(o.Packages) > 0) != tt.wantPkg {
				t.Errorf("packages = %+v, want some: %v", o.Packages, tt.wantPkg)
			}
		})
	}
}

// TestTooLarge checks both bounds: the declared size and the bytes actually
// streamed (a layer's header can lie about neither, but a directory file can
// grow while read).
func TestTooLarge(t *testing.T) {
	big := bytes.Repeat([]byte(" "), MaxPackageJSONSize+1)
	ex := NewPackageJSON()
	_, err := ex.Extract(context.Background(), &inventory.Input{
		Path: "node_modules/a/package.json", Info: inventory.FileInfo{Size: 1}, Reader: bytes.NewReader(big),
	})
	if !errors.Is(err, inventory.ErrTooLarge) {
		t.Errorf("streamed: err = %v, want ErrTooLarge", err)
	}
	_, err = NewLockfile().Extract(context.Background(), &inventory.Input{
		Path: "yarn.lock", Info: inventory.FileInfo{Size: MaxLockfileSize + 1}, Reader: strings.NewReader(""),
	})
	if !errors.Is(err, inventory.ErrTooLarge) {
		t.Errorf("declared: err = %v, want ErrTooLarge", err)
	}
}

func TestHostileLockfiles(t *testing.T) {
	deepJSON := `{"lockfileVersion":1,"dependencies":` + strings.Repeat(`{"a":{"version":"1.0.0","dependencies":`, 20000) + "{}" + strings.Repeat("}}", 20000) + "}"
	deepYAML := "lockfileVersion: '9.0'\npackages:\n  x: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n"
	aliasBomb := "lockfileVersion: '9.0'\na: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
	tests := []struct {
		name, path, in string
		wantErr        bool
	}{
		{"npm truncated", "package-lock.json", `{"lockfileVersion":3,"packages":{"node_modules/a":{"version":"1.`, true},
		{"npm deep nesting", "package-lock.json", deepJSON, true},
		{"npm packages wrong type", "package-lock.json", `{"lockfileVersion":3,"packages":[1,2]}`, true},
		{"npm entry wrong type", "package-lock.json", `{"lockfileVersion":3,"packages":{"node_modules/a":{"version":7}}}`, true},
		{"npm root deps wrong type", "package-lock.json", `{"lockfileVersion":3,"packages":{"":{"dependencies":[1]},"node_modules/a":{"version":"1.0.0"}}}`, true},
		{"npm v1 wrong type", "package-lock.json", `{"lockfileVersion":1,"dependencies":{"a":"1.0.0"}}`, true},
		{"npm empty object", "package-lock.json", `{}`, false},
		{"npm keys that escape", "package-lock.json", `{"lockfileVersion":3,"packages":{"node_modules/../../x":{"version":"1.0.0"},"node_modules/":{"version":"1.0.0"},"xnode_modules/a":{"version":"1.0.0"}}}`, false},
		{"yarn garbage", "yarn.lock", "\x00\xff\xfe:\n  version\n  version \"\n\"", false},
		{"yarn giant line", "yarn.lock", "a@^1:\n  version \"" + strings.Repeat("1", 8<<20) + "\"\n", false},
		{"yarn only keys", "yarn.lock", strings.Repeat("a@1:\n", 10000), false},
		// pnpm-lock.yaml is read line by line (see readPnpmLock): nesting
		// and aliases cost nothing; a file without lockfileVersion is not
		// a pnpm lock file.
		{"pnpm truncated", "pnpm-lock.yaml", "lockfileVersion: '9.0'\npackages:\n  'a@1.0.0':\n    resolution: {integ", false},
		{"pnpm deep nesting", "pnpm-lock.yaml", deepYAML, false},
		{"pnpm alias bomb", "pnpm-lock.yaml", aliasBomb, false},
		{"pnpm wrong types", "pnpm-lock.yaml", "lockfileVersion: [1]\npackages: [1, 2]\n", true},
		{"pnpm no version", "pnpm-lock.yaml", "packages:\n  /a@1.0.0:\n    dev: false\n", true},
		{"pnpm garbage", "pnpm-lock.yaml", "\x00\xff:\n  ': x\n  \"\\\n", true},
		{"pnpm giant line", "pnpm-lock.yaml", "lockfileVersion: '9.0'\npackages:\n  '" + strings.Repeat("a", 8<<20) + "@1.0.0': {}\n", false},
		{"pnpm dependency cycle", "pnpm-lock.yaml", "lockfileVersion: '9.0'\nimporters:\n  .:\n    dependencies:\n      a: {specifier: '1', version: 1.0.0}\npackages:\n  a@1.0.0: {}\n  b@1.0.0: {}\nsnapshots:\n  a@1.0.0:\n    dependencies: {b: 1.0.0}\n  b@1.0.0:\n    dependencies: {a: 1.0.0}\n", false},
	}
	ex := NewLockfile()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := extractBytes(ex, tt.path, []byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

// TestPnpmDevThroughGraph checks the 9.0 dev computation on a cycle and a
// package reachable from both a dev and a production dependency.
func TestPnpmDevThroughGraph(t *testing.T) {
	in := `lockfileVersion: '9.0'
importers:
  .:
    dependencies:
      a: {specifier: ^1.0.0, version: 1.0.0}
    devDependencies:
      d: {specifier: ^1.0.0, version: 1.0.0(a@1.0.0)}
packages:
  a@1.0.0: {}
  b@1.0.0: {}
  d@1.0.0: {}
  e@2.0.0: {}
snapshots:
  a@1.0.0:
    dependencies: {b: 1.0.0}
  b@1.0.0:
    dependencies: {a: 1.0.0}
  d@1.0.0(a@1.0.0):
    dependencies: {b: 1.0.0, e: 2.0.0}
  e@2.0.0: {}
`
	o, err := extractBytes(NewLockfile(), "pnpm-lock.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	type flags struct{ Dev, Indirect bool }
	got := make(map[string]flags)
	for _, p := range o.Packages {
		got[p.Name+"@"+p.Version] = flags{p.Dev, p.Indirect}
	}
	want := map[string]flags{
		"a@1.0.0": {false, false},
		"b@1.0.0": {false, true},
		"d@1.0.0": {true, false},
		"e@2.0.0": {true, true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func readTestdata(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func BenchmarkPackageLock(b *testing.B) {
	for _, lf := range lockfiles {
		data := readTestdata(b, lf.path)
		rel := strings.TrimPrefix(lf.path, "testdata/")
		b.Run(lf.name, func(b *testing.B) {
			ex := NewLockfile()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				o, err := extractBytes(ex, rel, data)
				if err != nil || len(o.Packages) == 0 {
					b.Fatal(err, len(o.Packages))
				}
			}
		})
	}
}

func BenchmarkPackageJSON(b *testing.B) {
	root := filepath.Join("testdata", "installed", "app", "node_modules")
	type file struct {
		rel  string
		data []byte
	}
	var files []file
	var total int64
	ex := NewPackageJSON()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := filepath.ToSlash(p)
		if ex.Required(rel, inventory.FileInfo{}) {
			data := readTestdata(b, p)
			files = append(files, file{rel, data})
			total += int64(len(data))
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ReportAllocs()
	b.ReportMetric(float64(len(files)), "files/op")
	for b.Loop() {
		for _, f := range files {
			if _, err := extractBytes(ex, f.rel, f.data); err != nil {
				b.Fatal(err)
			}
		}
	}
}
