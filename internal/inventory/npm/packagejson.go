package npm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// PackageJSON reports packages installed under node_modules.
type PackageJSON struct{}

// NewPackageJSON returns the "language/javascript/packagejson" extractor.
func NewPackageJSON() *PackageJSON { return &PackageJSON{} }

// Name implements inventory.Extractor.
func (*PackageJSON) Name() string { return "language/javascript/packagejson" }

// Version implements inventory.Extractor.
func (*PackageJSON) Version() int { return 1 }

// Required takes package.json files directly inside node_modules/<name>/ or
// node_modules/@scope/<name>/. Deeper package.json files are fixtures,
// examples or module-type markers of a package, not packages.
func (*PackageJSON) Required(path string, _ inventory.FileInfo) bool {
	return isInstalledPackageJSON(path)
}

func isInstalledPackageJSON(p string) bool {
	const suffix = "/package.json"
	if !strings.HasSuffix(p, suffix) {
		return false
	}
	dir := p[:len(p)-len(suffix)]
	i := strings.LastIndexByte(dir, '/')
	if i < 0 {
		return false
	}
	name, parent := dir[i+1:], dir[:i]
	if name == "" || name[0] == '.' || name[0] == '@' {
		// ".bin", ".pnpm", ".cache" are npm's and pnpm's own directories; a
		// package.json directly in @scope/ is not a package.
		return false
	}
	if isNodeModulesDir(parent) {
		return true
	}
	j := strings.LastIndexByte(parent, '/')
	if j < 0 {
		return false
	}
	scope := parent[j+1:]
	return len(scope) > 1 && scope[0] == '@' && isNodeModulesDir(parent[:j])
}

// isNodeModulesDir reports whether the last element of dir is node_modules.
func isNodeModulesDir(dir string) bool {
	const nm = "node_modules"
	return dir == nm || (strings.HasSuffix(dir, nm) && dir[len(dir)-len(nm)-1] == '/')
}

// packageJSON holds the fields read from a package.json. License fields take
// several shapes in the wild, so they are decoded by hand.
type packageJSON struct {
	Name     string          `json:"name"`
	Version  string          `json:"version"`
	License  json.RawMessage `json:"license"`
	Licenses json.RawMessage `json:"licenses"`
}

// Extract implements inventory.Extractor.
func (e *PackageJSON) Extract(_ context.Context, in *inventory.Input) (inventory.Output, error) {
	b, err := readLimited(in, MaxPackageJSONSize)
	if err != nil {
		return inventory.Output{}, fmt.Errorf("package.json: %w", err)
	}
	var pj packageJSON
	if err := json.Unmarshal(b, &pj); err != nil {
		return inventory.Output{}, fmt.Errorf("parse package.json %s: %w", in.Path, err)
	}
	// A directory under node_modules without name or version is not an
	// installed package (a leftover, or a workspace link target).
	if !validName(pj.Name) || !validVersion(pj.Version) {
		return inventory.Output{}, nil
	}
	p := newPackage(pj.Name, pj.Version, in.Path, e.Name())
	p.Licenses = licenses(pj.License, pj.Licenses)
	return inventory.Output{Packages: []inventory.Package{p}}, nil
}

// licenses reads "license" (an SPDX expression string, or the deprecated
// {"type": ...} object) and the deprecated "licenses" array (of objects or
// strings). Anything else is ignored: licenses are informational.
func licenses(license, list json.RawMessage) []string {
	var out []string
	add := func(raw json.RawMessage) {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			return
		}
		var s string
		if raw[0] == '"' {
			if json.Unmarshal(raw, &s) != nil {
				return
			}
		} else if raw[0] == '{' {
			var o struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(raw, &o) != nil {
				return
			}
			s = o.Type
		}
		if s = strings.TrimSpace(s); s != "" && len(s) <= 256 && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	add(license)
	if l := bytes.TrimSpace(list); len(l) > 0 && l[0] == '[' {
		var items []json.RawMessage
		if json.Unmarshal(l, &items) == nil {
			for _, it := range items {
				add(it)
			}
		}
	}
	return out
}
