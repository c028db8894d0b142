package npm

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/inventorytest"
)

type bunFlags struct{ Dev, Indirect bool }

func flagsByID(pkgs []inventory.Package) map[string]bunFlags {
	m := make(map[string]bunFlags, len(pkgs))
	for _, p := range pkgs {
		m[p.Name+"@"+p.Version] = bunFlags{p.Dev, p.Indirect}
	}
	return m
}

// TestBunWorkspace reads the lock file Bun 1.2 wrote for a project with two
// workspaces, a file: dependency, a tarball URL, an alias, scoped packages
// and nested copies (testdata/README.md). production.txt lists what
// `bun install --production` installed from it: exactly the packages not
// marked Dev, less the two this package does not report.
func TestBunWorkspace(t *testing.T) {
	const path = "testdata/lockfiles/bun-workspace/bun.lock"
	got := extractLock(t, path)
	inventorytest.Golden(t, "lock-bun-workspace", got)
	byID := ids(got)
	if len(byID) != len(got) {
		t.Errorf("duplicates: %d packages, %d distinct", len(got), len(byID))
	}
	for _, p := range got {
		want := newPackage(p.Name, p.Version, "lockfiles/bun-workspace/bun.lock", "language/javascript/lockfile")
		want.Dev, want.Indirect = p.Dev, p.Indirect
		if diff := cmp.Diff(want, p); diff != "" {
			t.Errorf("%s@%s (-want +got):\n%s", p.Name, p.Version, diff)
		}
	}
	if p := byID["@babel/code-frame@7.22.13"]; p.PURL != "pkg:npm/%40babel/code-frame@7.22.13" {
		t.Errorf("scoped PURL: %q", p.PURL)
	}

	// Dev against what Bun installed for production.
	production := make(map[string]bool)
	for _, id := range strings.Fields(string(inventorytest.ReadFile(t, "testdata/lockfiles/bun-workspace/production.txt"))) {
		production[id] = true
	}
	for id, p := range byID {
		if p.Dev == production[id] {
			t.Errorf("%s: Dev = %v, but bun install --production installs it: %v", id, p.Dev, production[id])
		}
	}
	var notReported []string
	for id := range production {
		if _, ok := byID[id]; !ok {
			notReported = append(notReported, id)
		}
	}
	// local-lib is a file: dependency (project code); ms@2.1.3 came from a
	// tarball URL, for which bun.lock records no version.
	if diff := cmp.Diff([]string{"local-lib@1.0.0", "ms@2.1.3"}, sortedStrings(notReported)); diff != "" {
		t.Errorf("installed for production but not reported (-want +got):\n%s", diff)
	}

	// Indirect: what some workspace names in its package.json, whichever
	// copy it resolved to.
	var direct []string
	for id, p := range byID {
		if !p.Indirect {
			direct = append(direct, id)
		}
	}
	wantDirect := []string{
		"@babel/code-frame@7.22.13", // packages/shared
		"@types/node@20.11.0",       // root, dev
		"debug@2.6.9",               // packages/web, dev (web/debug); also nested below express
		"debug@4.3.4",               // root, dev
		"express@4.17.1",
		"is-number@7.0.0", // root, optional
		"lodash@4.17.15",  // packages/shared
		"lodash@4.17.21",  // packages/web (web/lodash)
		"minimist@0.0.8",  // root, as minimist-old
		"minimist@1.2.8",  // packages/web
		"qs@6.7.0",        // root, dev; also express's: not Dev
		"react@18.3.1",    // packages/web, peer
		"typescript@5.4.5",
	}
	if diff := cmp.Diff(wantDirect, sortedStrings(direct)); diff != "" {
		t.Errorf("direct dependencies (-want +got):\n%s", diff)
	}

	for _, id := range []string{"left-pad", "web", "@bulwark-fixture/shared", "local-lib", "minimist-old", "ms-tarball"} {
		for _, p := range got {
			if p.Name == id {
				t.Errorf("%s reported: %+v", id, p)
			}
		}
	}
	if _, ok := byID["ms@2.1.3"]; ok {
		t.Error("tarball URL reported with a version")
	}
}

func sortedStrings(s []string) []string {
	m := make(map[string]bool, len(s))
	for _, x := range s {
		m[x] = true
	}
	return keys(m)
}

// bunGraphLock exercises resolution and the dev walk: nested copies found
// one and two levels up, scoped keys, a cycle, a github package whose
// dependencies count, required and optional peers, and a workspace whose
// own copy wins over the top-level one.
const bunGraphLock = `{
  "lockfileVersion": 1,
  "workspaces": {
    "": {
      "name": "root",
      "dependencies": {
        "a": "^1.0.0",
        "al": "npm:real@1",
        "al2": "npm:real@2",
        "fil": "file:../fil",
        "gh": "github:o/gh",
        "lnk": "link:lnk",
        "tb": "https://example.com/tb.tgz",
        "w": "workspace:*",
      },
      "devDependencies": {
        "a": "^1.0.0",
        "d": "^1.0.0",
      },
      "peerDependencies": {
        "op": "^1.0.0",
        "p": "^1.0.0",
      },
      "optionalPeers": [
        "op",
      ],
    },
    "packages/w": {
      "name": "w",
      "dependencies": {
        "c": "^2.0.0",
      },
    },
  },
  "packages": {
    "@s/x": ["@s/x@1.0.0", "", { "dependencies": { "y": "3" } }, "sha512-sx"],

    "a": ["a@1.0.0", "", { "dependencies": { "@s/x": "^1", "b": "^2" } }, "sha512-a"],

    "al": ["real@1.0.0", "", {}, "sha512-al"],

    "al2": ["al2@npm:real@2.0.0", "", {}, "sha512-al2"],

    "b": ["b@1.0.0", "", {}, "sha512-b"],

    "c": ["c@1.0.0", "", {}, "sha512-c"],

    "d": ["d@1.0.0", "", { "dependencies": { "b": "^1", "c": "^1", "y": "^1" } }, "sha512-d"],

    "e": ["e@1.0.0", "", {}, "sha512-e"],

    "f": ["f@1.0.0", "", {}, "sha512-f"],

    "fil": ["fil@file:../fil", { "dependencies": { "f": "^1" } }],

    "gh": ["gh@github:o/gh#abc1234", { "dependencies": { "e": "^1" } }, "o-gh-abc1234"],

    "lnk": ["lnk@link:lnk", {}],

    "ltb": ["ltb@1.0.0.tgz", {}],

    "op": ["op@1.0.0", "", {}, "sha512-op"],

    "oq": ["oq@1.0.0", "", {}, "sha512-oq"],

    "p": ["p@1.0.0", "", { "peerDependencies": { "oq": "^1", "q": "^1" }, "optionalPeers": ["oq"] }, "sha512-p"],

    "q": ["q@1.0.0", "", {}, "sha512-q"],

    "tb": ["tb@https://example.com/tb.tgz", {}],

    "w": ["w@workspace:packages/w"],

    "y": ["y@1.0.0", "", {}, "sha512-y"],

    "@s/x/y": ["y@3.0.0", "", { "dependencies": { "a": "^1" } }, "sha512-y3"],

    "a/b": ["b@2.0.0", "", { "dependencies": { "c": "^3" } }, "sha512-b2"],

    "a/c": ["c@3.0.0", "", {}, "sha512-c3"],

    "w/c": ["c@2.0.0", "", {}, "sha512-c2"],
  }
}
`

func TestBunGraph(t *testing.T) {
	o := inventorytest.MustExtract(t, NewLockfile(), "bun.lock", []byte(bunGraphLock))
	want := map[string]bunFlags{
		"a@1.0.0":    {false, false}, // dev and prod: prod
		"@s/x@1.0.0": {false, true},
		"y@3.0.0":    {false, true}, // @s/x/y, depends back on a
		"b@2.0.0":    {false, true}, // a/b
		"c@3.0.0":    {false, true}, // a/b → a/c, one level up
		"b@1.0.0":    {true, true},  // only d's
		"c@1.0.0":    {true, true},  // only d's: a/b found a/c first
		"y@1.0.0":    {true, true},
		"d@1.0.0":    {true, false},
		"c@2.0.0":    {false, false}, // w/c, for workspace w
		"real@1.0.0": {false, false},
		"real@2.0.0": {false, false},
		"e@1.0.0":    {false, true}, // through the github package
		"f@1.0.0":    {false, true}, // through the file: package
		"p@1.0.0":    {false, false},
		"q@1.0.0":    {false, true}, // p's required peer
		"oq@1.0.0":   {true, true},  // p's optional peer: not installed for p
		"op@1.0.0":   {true, false}, // the root's optional peer
	}
	if diff := cmp.Diff(want, flagsByID(o.Packages)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestBunDedup checks that a version installed at several paths is
// reported once, production and direct if any copy is.
func TestBunDedup(t *testing.T) {
	in := `{"lockfileVersion": 1, "workspaces": {"": {"dependencies": {"a": "1", "ms": "2.0.0"}, "devDependencies": {"b": "1"}}},
  "packages": {
    "a": ["a@1.0.0", "", {"dependencies": {"ms": "2.1.0"}}, ""],
    "a/ms": ["ms@2.1.0", "", {}, ""],
    "b": ["b@1.0.0", "", {"dependencies": {"ms": "2.1.0"}}, ""],
    "b/ms": ["ms@2.1.0", "", {}, ""],
    "ms": ["ms@2.0.0", "", {}, ""],
    "b/c": ["c@1.0.0", "", {}, ""],
    "c": ["c@1.0.0", "", {}, ""],
  }}`
	o := inventorytest.MustExtract(t, NewLockfile(), "app/bun.lock", []byte(in))
	want := map[string]bunFlags{
		"a@1.0.0":  {false, false},
		"b@1.0.0":  {true, false},
		"ms@2.0.0": {false, false},
		"ms@2.1.0": {false, true}, // a/ms is production
		"c@1.0.0":  {true, true},  // nobody needs either copy
	}
	if diff := cmp.Diff(want, flagsByID(o.Packages)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if len(o.Packages) != len(want) {
		t.Errorf("%d packages, want %d", len(o.Packages), len(want))
	}
}

func TestBunResolution(t *testing.T) {
	tests := []struct {
		in, name, version string
	}{
		{"lodash@4.17.21", "lodash", "4.17.21"},
		{"@babel/core@7.24.0", "@babel/core", "7.24.0"},
		{"react@19.0.0-rc-66855b96-20241106", "react", "19.0.0-rc-66855b96-20241106"},
		{"alias@npm:real@1.2.3", "real", "1.2.3"},
		{"alias@npm:@s/real@1.2.3", "@s/real", "1.2.3"},
		{"x@github:user/repo#abc1234", "", ""},
		{"x@git+https://github.com/user/repo.git#abc1234", "", ""},
		{"x@git+ssh://git@github.com/user/repo.git#abc", "", ""},
		{"x@https://example.com/x-1.0.0.tgz", "", ""},
		{"x@file:../x", "", ""},
		{"x@link:../x", "", ""},
		{"x@workspace:packages/x", "", ""},
		{"x@root:", "", ""},
		{"@root:", "", ""},
		{"x@1.0.0.tgz", "", ""},
		{"x@./vendor/x.tgz", "", ""},
		{"lodash", "", ""},
		{"@scope/x", "", ""},
		{"@", "", ""},
		{"@@", "", ""},
		{"", "", ""},
		{"x@", "", ""},
		{"@s/x@", "", ""},
		{"alias@npm:real", "", ""},
		{"alias@npm:", "", ""},
		{"../x@1.0.0", "", ""},
	}
	for _, tt := range tests {
		name, version, ok := bunResolution(tt.in)
		if name != tt.name || version != tt.version || ok != (tt.name != "") {
			t.Errorf("bunResolution(%q) = %q, %q, %v; want %q, %q", tt.in, name, version, ok, tt.name, tt.version)
		}
	}
}

func TestBunParent(t *testing.T) {
	tests := []struct{ key, parent, name string }{
		{"lodash", "", "lodash"},
		{"@babel/core", "", "@babel/core"},
		{"express/debug", "express", "debug"},
		{"express/debug/ms", "express/debug", "ms"},
		{"@babel/traverse/debug", "@babel/traverse", "debug"},
		{"a/@s/b", "a", "@s/b"},
		{"@a/b/@c/d/e", "@a/b/@c/d", "e"},
		{"@a/b/@c/d", "@a/b", "@c/d"},
		{"", "", ""},
		{"/", "", ""},
		{"a/", "a", ""},
		{"@", "", "@"},
		{"@/", "", "@/"},
		{"a//b", "a/", "b"},
	}
	for _, tt := range tests {
		if p, n := bunParent(tt.key); p != tt.parent || n != tt.name {
			t.Errorf("bunParent(%q) = %q, %q; want %q, %q", tt.key, p, n, tt.parent, tt.name)
		}
	}
}

func TestStripJSONC(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a": [1, 2,], "b": {"c": 1,},}`, `{"a": [1, 2 ], "b": {"c": 1 } }`},
		{"{\"a\": 1,\n  }", "{\"a\": 1 \n  }"},
		{`{"a,]": "x,}", "b\",]": 1,}`, `{"a,]": "x,}", "b\",]": 1 }`},
		{`{"a": "\\",}`, `{"a": "\\" }`},
		{"{\"a\": 1, // c\n}", `{"a": 1` + strings.Repeat(" ", 6) + "\n}"},
		{`{"a": 1, /* ,} */ }`, `{"a": 1` + strings.Repeat(" ", 11) + "}"},
		{`{"a": "// not a comment"}`, `{"a": "// not a comment"}`},
		{`[1,,]`, `[1, ]`},
		{`{"a": 1 /* open`, `{"a": 1 /* open`},
		{`{"a": "open,}`, `{"a": "open,}`},
		{`/`, `/`},
		{`,`, `,`},
	}
	for _, tt := range tests {
		b := []byte(tt.in)
		stripJSONC(b)
		if string(b) != tt.want {
			t.Errorf("stripJSONC(%q) = %q, want %q", tt.in, b, tt.want)
		}
	}
}

func TestBunLockfileRequired(t *testing.T) {
	inventorytest.CheckRequired(t, NewLockfile(), inventory.FileInfo{Size: 100}, map[string]bool{
		"bun.lock":                         true,
		"app/bun.lock":                     true,
		"app/bun.lockb":                    false,
		"app/node_modules/x/bun.lock":      false,
		"node_modules/bun.lock":            false,
		"app/node_modules/@s/x/bun.lock":   false,
		"app/bun.lock.bak":                 false,
		"app/my-bun.lock":                  false,
		"app/packages/web/bun.lock":        true,
		"app/node_modules/.cache/bun.lock": false,
	})
	// The binary lock file is not parsed even when handed over.
	o, err := inventorytest.Extract(NewLockfile(), "app/bun.lockb", []byte("#!/usr/bin/env bun\nbun-lockfile-format-v0\n\x02\x00\x00\x00"))
	if err != nil || len(o.Packages) != 0 {
		t.Errorf("bun.lockb: %d packages, err %v", len(o.Packages), err)
	}
}

func TestBunCancelled(t *testing.T) {
	inventorytest.CheckCancelled(t, NewLockfile(), "bun.lock", []byte(bunGraphLock))
}

func TestBunTooLarge(t *testing.T) {
	in := inventorytest.Input("bun.lock", nil)
	in.Info.Size = MaxLockfileSize + 1
	if _, err := NewLockfile().Extract(context.Background(), in); !errors.Is(err, inventory.ErrTooLarge) {
		t.Errorf("err = %v, want ErrTooLarge", err)
	}
}

func TestHostileBunLock(t *testing.T) {
	const head = `{"lockfileVersion": 1, "workspaces": {"": {"dependencies": {"a": "1"}}}, "packages": `
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	shallowDeep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	// Every prefix of a 2,000-level key exists, each depending on "a": the
	// tree walk goes 2,000 deep and each lookup finds the next level.
	var chain strings.Builder
	chain.WriteString(head + "{")
	key := "a"
	for i := 0; i < 2000; i++ {
		if i > 0 {
			key += "/a"
			chain.WriteString(",")
		}
		chain.WriteString(`"` + key + `": ["a@1.0.0", "", {"dependencies": {"a": "1"}}, ""]`)
	}
	chain.WriteString("}}")
	// One key of a million levels with no parents: left out of the tree.
	orphan := head + `{"a": ["a@1.0.0"], "` + strings.Repeat("a/", 1<<20) + `a": ["b@1.0.0", "", {"dependencies": {"a": "1"}}, ""]}}`
	var manyDeps strings.Builder
	manyDeps.WriteString(head + `{"a": ["a@1.0.0", "", {"dependencies": {`)
	for i := 0; i < 100000; i++ {
		if i > 0 {
			manyDeps.WriteString(",")
		}
		manyDeps.WriteString(`"d` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + `": "1"`)
	}
	manyDeps.WriteString("}}, \"\"]}}")

	inventorytest.RunHostile(t, NewLockfile(), "app/bun.lock", []inventorytest.Case{
		{Name: "empty", In: "", WantErr: true},
		{Name: "truncated", In: head + `{"a": ["a@1.0.0", "", {`, WantErr: true},
		{Name: "truncated after comma", In: head + `{"a": ["a@1.0.0",`, WantErr: true},
		{Name: "garbage", In: "\x00\xff\xfe{,]", WantErr: true},
		{Name: "null", In: "null", ErrContains: "lockfileVersion"},
		{Name: "top-level array", In: `[1, 2,]`, WantErr: true},
		{Name: "no lockfileVersion", In: `{"packages": {"a": ["a@1.0.0", "", {}, ""]}}`, ErrContains: "lockfileVersion"},
		{Name: "lockfileVersion wrong type", In: `{"lockfileVersion": "1", "packages": {}}`, WantErr: true},
		{Name: "lockfileVersion negative", In: `{"lockfileVersion": -1, "packages": {}}`, WantErr: true},
		{Name: "lockfileVersion fraction", In: `{"lockfileVersion": 1.5, "packages": {}}`, WantErr: true},
		{Name: "future lockfileVersion", In: `{"lockfileVersion": 7, "workspaces": {"": {}}, "packages": {"a": ["a@1.0.0", "", {}, ""]}}`, Pkgs: 1},
		{Name: "packages wrong type", In: head + `[1, 2]}`, WantErr: true},
		{Name: "workspaces wrong type", In: `{"lockfileVersion": 1, "workspaces": [1], "packages": {}}`, WantErr: true},
		{Name: "workspace wrong type", In: `{"lockfileVersion": 1, "workspaces": {"": 5}, "packages": {}}`, WantErr: true},
		{Name: "workspace deps wrong type", In: `{"lockfileVersion": 1, "workspaces": {"": {"dependencies": [1]}}, "packages": {}}`, WantErr: true},
		{Name: "entries not arrays", In: head + `{"a": 5, "b": {"0": "b@1.0.0"}, "c": "c@1.0.0", "d": null, "e": true, "f": ["f@1.0.0", "", {}, ""]}}`, Pkgs: 1},
		{Name: "empty arrays", In: head + `{"a": [], "b": [[]], "c": [{}]}}`},
		{Name: "resolution not a string", In: head + `{"a": [1, "", {}, ""], "b": [null], "c": [["a@1.0.0"]]}}`},
		{Name: "identifiers without version", In: head + `{"a": ["lodash"], "b": ["@scope/x"], "c": ["@"], "d": ["@@"], "e": ["a@"], "f": ["@s/x@"], "g": [""], "h": ["a@1.0.0"]}}`, Pkgs: 1},
		{Name: "metadata wrong types", In: head + `{"a": ["a@1.0.0", "", {"dependencies": [1], "optionalPeers": 5}, ""], "b": ["b@1.0.0", "", "x", 7, {"dependencies": {"a": 1}}]}}`, Pkgs: 2},
		{Name: "deep nesting", In: head + `{"a": ["a@1.0.0", "", {"x": ` + deep + `}, ""]}}`, WantErr: true},
		{Name: "nesting within bounds", In: head + `{"a": ["a@1.0.0", "", {"dependencies": {"b": ` + shallowDeep + `}}, ""]}}`, Pkgs: 1},
		{Name: "giant name", In: head + `{"a": ["` + strings.Repeat("a", 8<<20) + `@1.0.0", "", {}, ""]}}`},
		{Name: "giant version", In: head + `{"a": ["a@1.` + strings.Repeat("1", 8<<20) + `", "", {}, ""]}}`},
		{Name: "giant key", In: head + `{"` + strings.Repeat("a", 8<<20) + `": ["a@1.0.0", "", {}, ""]}}`, Pkgs: 1},
		{Name: "deep key chain", In: chain.String(), Pkgs: 1},
		{Name: "deep orphan key", In: orphan, Pkgs: 2},
		{Name: "many dependencies", In: manyDeps.String(), Pkgs: 1},
		{Name: "dependency cycle", In: head + `{"a": ["a@1.0.0", "", {"dependencies": {"b": "1"}}, ""], "b": ["b@1.0.0", "", {"dependencies": {"a": "1", "b": "1"}}, ""]}}`, Pkgs: 2},
		{Name: "no workspaces", In: `{"lockfileVersion": 1, "packages": {"a": ["a@1.0.0", "", {}, ""]}}`, Pkgs: 1, Check: func(t testing.TB, o inventory.Output, _ error) {
			if p := o.Packages[0]; p.Dev || p.Indirect {
				t.Errorf("flags without workspaces: %+v", p)
			}
		}},
		{Name: "comments and commas in strings", In: "// bun.lock\n{\"lockfileVersion\": 1, /* v */ \"packages\": {\"a,]\": [\"a@1.0.0\", \"\", {}, \"x,}\",], /* x */},}", Pkgs: 1},
		{Name: "unterminated comment", In: head + `{} /* `, WantErr: true},
		{Name: "byte order mark", In: "\xef\xbb\xbf" + head + `{"a": ["a@1.0.0", "", {}, ""],},}`, Pkgs: 1},
		{Name: "path-like names", In: head + `{"a": ["../../etc@1.0.0"], "b": ["a/b/c@1.0.0"], "c": [" a@1.0.0"], "d": ["a@1.0.0 "]}}`},
		{Name: "binary lock file content", Path: "app/bun.lockb", In: "#!/usr/bin/env bun\nbun-lockfile-format-v0\n"},
	})
}
