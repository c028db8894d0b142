package npm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/inventorytest"
	"github.com/google/go-cmp/cmp"
)

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
	inventorytest.CheckRequiredNoAllocs(t, []string{
		"app/node_modules/@babel/traverse/package.json",
		"app/node_modules/workerpool/examples/embeddedWorker/package.json",
		"usr/lib/python3/dist-packages/foo.py",
		"app/package-lock.json",
		"app/node_modules/x/yarn.lock",
		"app/bun.lock",
		"app/bun.lockb",
	}, NewPackageJSON(), NewLockfile())
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
	got := inventorytest.Walk(t, NewPackageJSON(), filepath.Join("testdata", "installed"))
	slices.SortFunc(got, func(a, b inventory.Package) int { return strings.Compare(a.Location, b.Location) })
	inventorytest.Golden(t, "installed", got)

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
	lock := inventorytest.Walk(t, NewLockfile(), filepath.Join("testdata", "installed"))
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
	if err := json.Unmarshal(inventorytest.ReadFile(t, "testdata/installed/app/package-lock.json"), &raw); err != nil {
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
	{"bun-v1", "testdata/lockfiles/bun-v1/bun.lock"},
	{"bun-v2", "testdata/lockfiles/bun-v2/bun.lock"},
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
	return inventorytest.MustExtract(t, ex, rel, inventorytest.ReadFile(t, path)).Packages
}

// TestLockfiles reads lock files that npm 6, npm 11, yarn 1, yarn 4, pnpm
// 7, 8 and 9, and Bun 1.2 and 1.4 wrote for the same package.json.
func TestLockfiles(t *testing.T) {
	results := make(map[string]map[string]inventory.Package)
	for _, lf := range lockfiles {
		t.Run(lf.name, func(t *testing.T) {
			got := extractLock(t, lf.path)
			inventorytest.Golden(t, "lock-"+lf.name, got)
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
	same("bun-v1", "bun-v2")
	// Across package managers the resolutions differ a little (yarn 4 adds
	// node-gyp to packages with native builds, pnpm and npm place peer
	// dependencies differently), but a package both npm and pnpm (or Bun)
	// lock must be dev in both or in neither. pnpm 9 and Bun record no dev
	// flag: this checks their graph walks against npm's own flags.
	for _, other := range []string{"pnpm-v9", "bun-v1"} {
		npm, o := results["npm-v3"], results[other]
		if npm == nil || o == nil {
			continue
		}
		common := 0
		for id, p := range npm {
			if q, ok := o[id]; ok {
				common++
				if p.Dev != q.Dev {
					t.Errorf("%s: Dev %v in npm, %v in %s", id, p.Dev, q.Dev, other)
				}
			}
		}
		if common < len(npm)*9/10 {
			t.Errorf("npm and %s share only %d of %d packages", other, common, len(npm))
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
	inventorytest.RunHostile(t, NewPackageJSON(), "node_modules/a/package.json", []inventorytest.Case{
		{Name: "empty", In: "", WantErr: true},
		{Name: "truncated", In: `{"name":"lodash","vers`, WantErr: true},
		{Name: "not json", In: "\x00\x01\x02", WantErr: true},
		{Name: "deep nesting", In: `{"name":"a","version":"1.0.0","x":` + deep + `}`, WantErr: true},
		{Name: "giant string within bounds", In: giant, Pkgs: 1},
		{Name: "name wrong type", In: `{"name":1,"version":"1.0.0"}`, WantErr: true},
		{Name: "version wrong type", In: `{"name":"a","version":{"x":1}}`, WantErr: true},
		{Name: "license wrong type", In: `{"name":"a","version":"1.0.0","license":[1,{"type":7}],"licenses":{"x":1}}`, Pkgs: 1},
		{Name: "top-level array", In: `[1,2,3]`, WantErr: true},
		{Name: "no version", In: `{"name":"a"}`},
		{Name: "path-like name", In: `{"name":"../../etc","version":"1.0.0"}`},
		{Name: "url version", In: `{"name":"a","version":"git+https://x/y"}`},
		{Name: "null", In: `null`},
		{Name: "byte order mark", In: "\xef\xbb\xbf{\"name\":\"a\",\"version\":\"1.0.0\"}", Pkgs: 1},
	})
}

// TestTooLarge checks both bounds: the declared size and the bytes actually
// streamed (a layer's header can lie about neither, but a directory file can
// grow while read).
func TestTooLarge(t *testing.T) {
	big := bytes.Repeat([]byte(" "), MaxPackageJSONSize+1)
	ex := NewPackageJSON()
	in := inventorytest.Input("node_modules/a/package.json", big)
	in.Info.Size = 1
	_, err := ex.Extract(context.Background(), in)
	if !errors.Is(err, inventory.ErrTooLarge) {
		t.Errorf("streamed: err = %v, want ErrTooLarge", err)
	}
	in = inventorytest.Input("yarn.lock", nil)
	in.Info.Size = MaxLockfileSize + 1
	_, err = NewLockfile().Extract(context.Background(), in)
	if !errors.Is(err, inventory.ErrTooLarge) {
		t.Errorf("declared: err = %v, want ErrTooLarge", err)
	}
}

func TestHostileLockfiles(t *testing.T) {
	deepJSON := `{"lockfileVersion":1,"dependencies":` + strings.Repeat(`{"a":{"version":"1.0.0","dependencies":`, 20000) + "{}" + strings.Repeat("}}", 20000) + "}"
	deepYAML := "lockfileVersion: '9.0'\npackages:\n  x: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n"
	aliasBomb := "lockfileVersion: '9.0'\na: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
	inventorytest.RunHostile(t, NewLockfile(), "package-lock.json", []inventorytest.Case{
		{Name: "npm truncated", In: `{"lockfileVersion":3,"packages":{"node_modules/a":{"version":"1.`, WantErr: true},
		{Name: "npm deep nesting", In: deepJSON, WantErr: true},
		{Name: "npm packages wrong type", In: `{"lockfileVersion":3,"packages":[1,2]}`, WantErr: true},
		{Name: "npm entry wrong type", In: `{"lockfileVersion":3,"packages":{"node_modules/a":{"version":7}}}`, WantErr: true},
		{Name: "npm root deps wrong type", In: `{"lockfileVersion":3,"packages":{"":{"dependencies":[1]},"node_modules/a":{"version":"1.0.0"}}}`, WantErr: true},
		{Name: "npm v1 wrong type", In: `{"lockfileVersion":1,"dependencies":{"a":"1.0.0"}}`, WantErr: true},
		{Name: "npm empty object", In: `{}`},
		{Name: "npm keys that escape", In: `{"lockfileVersion":3,"packages":{"node_modules/../../x":{"version":"1.0.0"},"node_modules/":{"version":"1.0.0"},"xnode_modules/a":{"version":"1.0.0"}}}`},
		{Name: "yarn garbage", Path: "yarn.lock", In: "\x00\xff\xfe:\n  version\n  version \"\n\""},
		{Name: "yarn giant line", Path: "yarn.lock", In: "a@^1:\n  version \"" + strings.Repeat("1", 8<<20) + "\"\n"},
		{Name: "yarn only keys", Path: "yarn.lock", In: strings.Repeat("a@1:\n", 10000)},
		// pnpm-lock.yaml is read line by line (see readPnpmLock): nesting
		// and aliases cost nothing; a file without lockfileVersion is not
		// a pnpm lock file.
		{Name: "pnpm truncated", Path: "pnpm-lock.yaml", In: "lockfileVersion: '9.0'\npackages:\n  'a@1.0.0':\n    resolution: {integ", Pkgs: 1},
		{Name: "pnpm deep nesting", Path: "pnpm-lock.yaml", In: deepYAML},
		{Name: "pnpm alias bomb", Path: "pnpm-lock.yaml", In: aliasBomb},
		{Name: "pnpm wrong types", Path: "pnpm-lock.yaml", In: "lockfileVersion: [1]\npackages: [1, 2]\n", WantErr: true},
		{Name: "pnpm no version", Path: "pnpm-lock.yaml", In: "packages:\n  /a@1.0.0:\n    dev: false\n", WantErr: true},
		{Name: "pnpm garbage", Path: "pnpm-lock.yaml", In: "\x00\xff:\n  ': x\n  \"\\\n", WantErr: true},
		{Name: "pnpm giant line", Path: "pnpm-lock.yaml", In: "lockfileVersion: '9.0'\npackages:\n  '" + strings.Repeat("a", 8<<20) + "@1.0.0': {}\n"},
		{Name: "pnpm dependency cycle", Path: "pnpm-lock.yaml", In: "lockfileVersion: '9.0'\nimporters:\n  .:\n    dependencies:\n      a: {specifier: '1', version: 1.0.0}\npackages:\n  a@1.0.0: {}\n  b@1.0.0: {}\nsnapshots:\n  a@1.0.0:\n    dependencies: {b: 1.0.0}\n  b@1.0.0:\n    dependencies: {a: 1.0.0}\n", Pkgs: 2},
	})
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
	o, err := inventorytest.Extract(NewLockfile(), "pnpm-lock.yaml", []byte(in))
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

func BenchmarkPackageLock(b *testing.B) {
	for _, lf := range lockfiles {
		data := inventorytest.ReadFile(b, lf.path)
		rel := strings.TrimPrefix(lf.path, "testdata/")
		b.Run(lf.name, func(b *testing.B) {
			inventorytest.Benchmark(b, NewLockfile(), rel, data, func(o inventory.Output) bool { return len(o.Packages) > 0 })
		})
	}
}

func BenchmarkPackageJSON(b *testing.B) {
	inventorytest.BenchmarkWalk(b, NewPackageJSON(), filepath.Join("testdata", "installed"))
}
