package npm

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/bulwark-security/bulwark/internal/inventory/inventorytest"
)

// UnmarshalYAML lets the reference decoder read both shapes of a
// dependency reference: a scalar (5.x) or {specifier, version}.
func (r *pnpmRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		r.Version = n.Value
		return nil
	}
	var v struct {
		Version string `yaml:"version"`
	}
	if err := n.Decode(&v); err != nil {
		return err
	}
	r.Version = v.Version
	return nil
}

// TestPnpmReaderMatchesYAML checks the line reader against a real YAML
// decoder on lock files pnpm 7, 8 and 9 wrote, and on hand-written
// workspace and tarball shapes.
func TestPnpmReaderMatchesYAML(t *testing.T) {
	inputs := map[string][]byte{}
	for _, lf := range lockfiles {
		if len(lf.name) > 4 && lf.name[:4] == "pnpm" {
			inputs[lf.name] = inventorytest.ReadFile(t, lf.path)
		}
	}
	inputs["workspace v5"] = []byte(`lockfileVersion: 5.4

importers:

  .:
    specifiers:
      a: ^1.0.0
    dependencies:
      a: 1.0.0
    devDependencies:
      b: /c/2.0.0

  packages/x:
    specifiers:
      d: ^1.0.0
    optionalDependencies:
      d: 1.0.0_p@1.0.0

packages:

  /a/1.0.0:
    resolution: {integrity: sha512-x}
    dev: false

  registry.example.com/e/1.0.0:
    resolution: {tarball: https://registry.example.com/e/-/e-1.0.0.tgz}
    name: e
    version: 1.0.0
    dev: true
`)
	inputs["workspace v9"] = []byte(`lockfileVersion: '9.0'

importers:

  .:
    dependencies:
      '@s/a':
        specifier: ^1.0.0
        version: 1.0.0(react@18.0.0)
      "q'":
        specifier: ^1.0.0
        version: link:../q

  packages/x:
    devDependencies:
      b:
        specifier: npm:c@2
        version: c@2.0.0

packages:

  '@s/a@1.0.0':
    resolution: {integrity: sha512-x}

  'it''s@1.0.0':
    resolution: {integrity: sha512-y}

snapshots:

  '@s/a@1.0.0(react@18.0.0)':
    dependencies:
      c: 2.0.0
    optionalDependencies:
      'it''s': 1.0.0

  c@2.0.0: {}
`)
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			var want pnpmLock
			if err := yaml.Unmarshal(in, &want); err != nil {
				t.Fatal(err)
			}
			got, err := readPnpmLock(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Packages) == 0 {
				t.Fatal("no packages read")
			}
			// yaml leaves an empty flow mapping "{}" as an empty, non-nil
			// snapshot; both readers agree on content, which is what counts.
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(pnpmLock{}), cmp.Comparer(func(a, b pnpmSnapshot) bool {
				return cmp.Equal(a.Dependencies, b.Dependencies, cmpEmpty) && cmp.Equal(a.OptionalDependencies, b.OptionalDependencies, cmpEmpty)
			})); diff != "" {
				t.Errorf("line reader differs from yaml.v3 (-yaml +line):\n%s", diff)
			}
		})
	}
}

var cmpEmpty = cmp.FilterValues(func(a, b map[string]string) bool { return len(a) == 0 && len(b) == 0 }, cmp.Comparer(func(_, _ map[string]string) bool { return true }))
