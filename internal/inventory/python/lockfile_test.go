package python

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/inventorytest"
	"github.com/google/go-cmp/cmp"
)

func extractLock(path string, b []byte) (inventory.Output, error) {
	return inventorytest.Extract(NewLockfile(), path, b)
}

func TestLockfileRequired(t *testing.T) {
	ex := NewLockfile()
	inventorytest.CheckRequired(t, ex, inventory.FileInfo{}, map[string]bool{
		"app/poetry.lock":  true,
		"poetry.lock":      true,
		"app/Pipfile.lock": true,
		"app/uv.lock":      true,
		"usr/lib/python3/dist-packages/foo/poetry.lock":      false,
		"usr/local/lib/python3.11/site-packages/foo/uv.lock": false,
		"app/requirements.txt":                               false,
		"app/Pipfile":                                        false,
		"app/pyproject.toml":                                 false,
		"app/my-poetry.lock":                                 false,
	})
	inventorytest.CheckRequiredNoAllocs(t, []string{"app/node_modules/x/package.json"}, ex)
}

type lockRow struct {
	Version string
	Dev     bool
}

func lockRows(pkgs []inventory.Package) map[string]lockRow {
	m := make(map[string]lockRow)
	for _, p := range pkgs {
		m[p.Name+"@"+p.Version] = lockRow{p.Version, p.Dev}
	}
	return m
}

// TestLockfiles reads lock files from syft's test data (see
// testdata/README.md): Poetry 1.7.1 and uv output for requests.
func TestLockfiles(t *testing.T) {
	for _, dir := range []string{"poetry", "uv", "uv-forked", "pipenv"} {
		t.Run(dir, func(t *testing.T) {
			files, _ := filepath.Glob(filepath.Join("testdata", "lockfiles", dir, "*.lock"))
			if len(files) != 1 {
				t.Fatalf("files: %v", files)
			}
			rel := filepath.ToSlash(strings.TrimPrefix(files[0], "testdata/"))
			o := inventorytest.MustExtract(t, NewLockfile(), rel, inventorytest.ReadFile(t, files[0]))
			inventorytest.Golden(t, "lock-"+dir, o.Packages)
			for _, p := range o.Packages {
				if p.Name != NormalizeName(p.Name) || p.Extractor != "language/python/lockfile" || p.Location != rel {
					t.Errorf("bad package %+v", p)
				}
			}
		})
	}

	o, err := extractLock("uv.lock", inventorytest.ReadFile(t, "testdata/lockfiles/uv/uv.lock"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]lockRow{
		"certifi@2025.1.31": {"2025.1.31", false}, "charset-normalizer@3.4.1": {"3.4.1", false},
		"idna@3.10": {"3.10", false}, "requests@2.32.3": {"2.32.3", false}, "urllib3@2.3.0": {"2.3.0", false},
	}
	if diff := cmp.Diff(want, lockRows(o.Packages)); diff != "" {
		t.Errorf("uv.lock: the project itself must be skipped (-want +got):\n%s", diff)
	}
	o, err = extractLock("Pipfile.lock", inventorytest.ReadFile(t, "testdata/lockfiles/pipenv/Pipfile.lock"))
	if err != nil {
		t.Fatal(err)
	}
	if got := lockRows(o.Packages); !got["astroid@2.5.2"].Dev || got["aiohttp@3.7.4.post0"].Dev || len(got) != 6 {
		t.Errorf("Pipfile.lock: got %+v", got)
	}
}

// TestLockfileDev covers the dev rules of each format on small lock files
// written in their published shapes.
func TestLockfileDev(t *testing.T) {
	tests := []struct {
		path, in string
		want     map[string]lockRow
	}{
		{"poetry.lock", `
[[package]]
name = "Flask"
version = "2.0.1"
category = "main"

[[package]]
name = "pytest"
version = "7.0.0"
category = "dev"

[[package]]
name = "mylib"
version = "0.1.0"

[package.source]
type = "directory"
url = "../mylib"

[metadata]
lock-version = "1.1"
`, map[string]lockRow{"flask@2.0.1": {"2.0.1", false}, "pytest@7.0.0": {"7.0.0", true}}},
		{"poetry.lock", `
[[package]]
name = "requests"
version = "2.32.3"
groups = ["main", "dev"]

[[package]]
name = "ruff"
version = "0.5.0"
groups = ["dev"]

[metadata]
lock-version = "2.1"
`, map[string]lockRow{"requests@2.32.3": {"2.32.3", false}, "ruff@0.5.0": {"0.5.0", true}}},
		{"Pipfile.lock", `{"default": {"Django": {"version": "==3.2.0"}, "six": {"version": "==1.16.0"}, "mygit": {"git": "https://x/y.git", "ref": "abc"}},
"develop": {"six": {"version": "==1.16.0"}, "pytest": {"version": "==7.0.0"}, "weird": {"version": "===1.0"}}}`,
			map[string]lockRow{"django@3.2.0": {"3.2.0", false}, "six@1.16.0": {"1.16.0", false}, "pytest@7.0.0": {"7.0.0", true}}},
		{"uv.lock", `version = 1

[[package]]
name = "app"
version = "0.1.0"
source = { editable = "." }
dependencies = [{ name = "requests" }]

[package.optional-dependencies]
yaml = [{ name = "pyyaml" }]

[package.dev-dependencies]
dev = [{ name = "pytest" }]

[[package]]
name = "requests"
version = "2.32.3"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "urllib3" }]

[[package]]
name = "urllib3"
version = "2.3.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "PyYAML"
version = "6.0.1"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "pytest"
version = "8.0.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "urllib3" }, { name = "pluggy" }]

[[package]]
name = "pluggy"
version = "1.4.0"
source = { registry = "https://pypi.org/simple" }
`, map[string]lockRow{
			"requests@2.32.3": {"2.32.3", false}, "urllib3@2.3.0": {"2.3.0", false}, "pyyaml@6.0.1": {"6.0.1", false},
			"pytest@8.0.0": {"8.0.0", true}, "pluggy@1.4.0": {"1.4.0", true},
		}},
	}
	for _, tt := range tests {
		o, err := extractLock(tt.path, []byte(tt.in))
		if err != nil {
			t.Fatalf("%s: %v", tt.path, err)
		}
		if diff := cmp.Diff(tt.want, lockRows(o.Packages)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.path, diff)
		}
	}
}

func TestHostileLockfiles(t *testing.T) {
	deep := strings.Repeat("[", 50000) + strings.Repeat("]", 50000)
	inventorytest.RunHostile(t, NewLockfile(), "poetry.lock", []inventorytest.Case{
		{Name: "poetry truncated", In: "[[package]]\nname = \"a\nversion", WantErr: true},
		{Name: "poetry wrong type", In: "[[package]]\nname = 1\nversion = \"1.0\"\n", WantErr: true},
		{Name: "poetry deep", In: "x = " + deep + "\n", WantErr: true},
		{Name: "poetry package not a table", In: "package = 3\n", WantErr: true},
		{Name: "pipfile truncated", Path: "Pipfile.lock", In: `{"default": {"a": {"vers`, WantErr: true},
		{Name: "pipfile wrong type", Path: "Pipfile.lock", In: `{"default": ["a"]}`, WantErr: true},
		{Name: "uv wrong type", Path: "uv.lock", In: "[[package]]\nname = \"a\"\ndependencies = \"b\"\n", WantErr: true},
		{Name: "uv cycle", Path: "uv.lock", In: "[[package]]\nname = \"r\"\nversion = \"0\"\nsource = { virtual = \".\" }\ndependencies = [{ name = \"a\" }]\n[[package]]\nname = \"a\"\nversion = \"1\"\ndependencies = [{ name = \"a\" }, { name = \"r\" }]\n", Pkgs: 1},
		{Name: "uv deep inline tables", Path: "uv.lock", In: "x = " + strings.Repeat("{a=", 50000) + "1" + strings.Repeat("}", 50000) + "\n", WantErr: true},
		{Name: "brackets in strings are not nesting", In: "[[package]]\nname = \"a\"\nversion = \"1.0\"\ndescription = \"" + strings.Repeat("[", 100) + "\\\"\"\nlong = \"\"\"\n" + strings.Repeat("{", 100) + "\n\"\"\"\nlit = '" + strings.Repeat("[", 100) + "' # " + strings.Repeat("[", 100) + "\n", Pkgs: 1},
		{Name: "empty poetry", In: ""},
		{Name: "binary", Path: "uv.lock", In: "\x00\xff\xfe", WantErr: true},
	})
	in := inventorytest.Input("uv.lock", make([]byte, MaxLockfileSize+1))
	in.Info.Size = 0 // the bound holds on the bytes streamed, too
	if _, err := NewLockfile().Extract(context.Background(), in); err == nil {
		t.Error("oversized lock file accepted")
	}
}

func FuzzPythonLockfile(f *testing.F) {
	f.Add("poetry.lock", []byte("[[package]]\nname = \"a\"\nversion = \"1.0\"\ngroups = [\"dev\"]\n[package.source]\ntype = \"git\"\n"))
	f.Add("Pipfile.lock", []byte(`{"default":{"a":{"version":"==1.0"}},"develop":{"b":{"version":"==2"}}}`))
	f.Add("uv.lock", []byte("version = 1\n[[package]]\nname = \"r\"\nversion = \"0\"\nsource = { editable = \".\" }\ndependencies = [{ name = \"a\" }]\n[[package]]\nname = \"a\"\nversion = \"1\"\n"))
	f.Fuzz(func(t *testing.T, name string, in []byte) {
		switch name {
		case "poetry.lock", "Pipfile.lock", "uv.lock":
		default:
			name = "uv.lock"
		}
		o, err := inventorytest.Fuzz(t, NewLockfile(), name, in)
		if err != nil {
			return
		}
		for _, p := range o.Packages {
			if p.Name != NormalizeName(p.Name) || !validName(p.Name) || !validVersion(p.Version) {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}
