package npm

import (
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/inventorytest"
)

// fuzz runs the fuzz target of ex on path: inventorytest.Fuzz's checks,
// and for files that parse, npm's own: valid names and versions, npm PURLs,
// and at most a package for every four bytes of input.
func fuzz(f *testing.F, ex inventory.Extractor, path string) {
	f.Fuzz(func(t *testing.T, in []byte) {
		o, err := inventorytest.Fuzz(t, ex, path, in)
		if err != nil {
			return
		}
		if len(o.Packages) > len(in)/4+1 {
			t.Fatalf("%d packages from %d bytes", len(o.Packages), len(in))
		}
		for _, p := range o.Packages {
			if !validName(p.Name) || !validVersion(p.Version) {
				t.Fatalf("invalid package %q@%q", p.Name, p.Version)
			}
			if !strings.HasPrefix(p.PURL, "pkg:npm/") || p.Ecosystem != inventory.EcosystemNPM {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}

func FuzzPackageJSON(f *testing.F) {
	f.Add([]byte(`{"name":"@babel/traverse","version":"7.20.0","license":"MIT"}`))
	f.Add([]byte(`{"name":"a","version":"1.0.0","license":{"type":"MIT"},"licenses":[{"type":"ISC"},"BSD"]}`))
	f.Add([]byte(`{"name":"a","version":"1.0.0","licenses":{"type":"MIT"}}`))
	f.Add([]byte(`{"name":1}`))
	f.Add(inventorytest.ReadFile(f, "testdata/installed/app/node_modules/minimist/package.json"))
	fuzz(f, NewPackageJSON(), "node_modules/a/package.json")
}

func FuzzPackageLock(f *testing.F) {
	f.Add([]byte(`{"lockfileVersion":3,"packages":{"":{"dependencies":{"a":"1"}},"node_modules/a":{"version":"1.0.0","license":"MIT"},"node_modules/a/node_modules/@s/b":{"name":"@s/c","version":"2.0.0","dev":true},"node_modules/l":{"link":true}}}`))
	f.Add([]byte(`{"lockfileVersion":1,"dependencies":{"a":{"version":"1.0.0","dev":true,"dependencies":{"b":{"version":"npm:c@2.0.0"}}}}}`))
	f.Add([]byte(`{"lockfileVersion":2,"packages":{},"dependencies":{}}`))
	fuzz(f, NewLockfile(), "app/package-lock.json")
}

func FuzzYarnLock(f *testing.F) {
	f.Add([]byte("# yarn lockfile v1\n\n\"@babel/code-frame@^7.0.0\", \"@babel/code-frame@^7.1.0\":\n  version \"7.29.7\"\n  resolved \"https://r/x.tgz\"\n  dependencies:\n    js-tokens \"^4.0.0\"\n\nminimist-old@npm:minimist@0.0.8:\n  version \"0.0.8\"\n"))
	f.Add([]byte("__metadata:\n  version: 10\n\n\"a@npm:^1.0.0\":\n  version: 1.0.1\n  resolution: \"a@npm:1.0.1\"\n  languageName: node\n\n\"x@workspace:.\":\n  version: 0.0.0-use.local\n  resolution: \"x@workspace:.\"\n\n\"f@patch:f@npm%3A2.1.3#builtin<compat/f>\":\n  version: 2.1.3\n  resolution: \"f@patch:f@npm%3A2.1.3#builtin<compat/f>::version=2.1.3\"\n"))
	fuzz(f, NewLockfile(), "app/yarn.lock")
}

func FuzzPnpmLock(f *testing.F) {
	f.Add([]byte("lockfileVersion: 5.4\ndependencies:\n  a: 1.0.0\n  b: /c/2.0.0\npackages:\n  /a/1.0.0:\n    dev: false\n  /c/2.0.0_p@1.0.0:\n    dev: true\n"))
	f.Add([]byte("lockfileVersion: '6.0'\ndependencies:\n  a:\n    specifier: ^1\n    version: 1.0.0(p@1.0.0)\npackages:\n  /a@1.0.0(p@1.0.0):\n    dev: false\n  /@s/b@2.0.0:\n    dev: true\n"))
	f.Add([]byte("lockfileVersion: '9.0'\nimporters:\n  .:\n    dependencies:\n      a: {specifier: '1', version: 1.0.0}\n    devDependencies:\n      b: {specifier: '1', version: c@2.0.0}\npackages:\n  a@1.0.0: {}\n  c@2.0.0: {}\nsnapshots:\n  a@1.0.0:\n    dependencies: {c: 2.0.0}\n  c@2.0.0: {}\n"))
	fuzz(f, NewLockfile(), "app/pnpm-lock.yaml")
}

func FuzzBunLock(f *testing.F) {
	f.Add([]byte(bunGraphLock))
	f.Add([]byte("{\n  \"lockfileVersion\": 1,\n  \"workspaces\": {\n    \"\": {\n      \"name\": \"x\",\n      \"dependencies\": {\n        \"a\": \"^1\",\n      },\n      \"devDependencies\": {\n        \"@s/b\": \"^2\",\n      },\n    },\n  },\n  \"packages\": {\n    \"a\": [\"a@1.0.0\", \"\", { \"dependencies\": { \"@s/b\": \"^2\" } }, \"sha512-x\"],\n\n    \"@s/b\": [\"@s/b@2.0.0\", \"\", {}, \"sha512-y\"],\n\n    \"a/@s/b\": [\"@s/b@2.1.0\", \"\", {}, \"sha512-z\"],\n  }\n}\n"))
	f.Add([]byte(`{"lockfileVersion":0,"workspaces":{"":{}},"packages":{"w":["w@workspace:w",{"dependencies":{"a":"1"}}],"a":["al@npm:a@1.0.0","",{},""],"g":["g@github:o/r#1",{},"o-r-1"]}}`))
	f.Add([]byte("// c\n{\"lockfileVersion\":2,/* c */\"packages\":{\"a,]\":[\"a@1.0.0\",],},}"))
	fuzz(f, NewLockfile(), "app/bun.lock")
}
