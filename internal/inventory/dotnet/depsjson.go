package dotnet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/package-url/packageurl-go"
)

// MaxDepsJSONSize bounds how much of a deps.json is read. Large ASP.NET
// applications produce files of a few hundred KiB.
const MaxDepsJSONSize = 16 << 20

// DepsJSON reports the NuGet packages of a .NET application.
type DepsJSON struct{}

// NewDepsJSON returns the "language/dotnet/deps-json" extractor.
func NewDepsJSON() *DepsJSON { return &DepsJSON{} }

// Name implements inventory.Extractor.
func (*DepsJSON) Name() string { return "language/dotnet/deps-json" }

// Version implements inventory.Extractor.
func (*DepsJSON) Version() int { return 1 }

// Required implements inventory.Extractor.
func (*DepsJSON) Required(path string, _ inventory.FileInfo) bool {
	return strings.HasSuffix(path, ".deps.json")
}

type depsJSON struct {
	Targets   map[string]map[string]targetEntry `json:"targets"`
	Libraries map[string]library                `json:"libraries"`
}

type targetEntry struct {
	Dependencies map[string]string `json:"dependencies"`
}

type library struct {
	Type string `json:"type"`
}

// Extract implements inventory.Extractor.
func (e *DepsJSON) Extract(ctx context.Context, in *inventory.Input) (inventory.Output, error) {
	b, err := inventory.ReadAll(in, MaxDepsJSONSize)
	if err != nil {
		return inventory.Output{}, err
	}
	// The SDK can write a UTF-8 byte order mark; the host ignores it.
	b = inventory.TrimBOM(b)
	// Other tools use the same suffix: WordPress ships
	// wp-includes/assets/*.deps.json (and Gutenberg's editor.deps.json) as
	// JSON arrays of script handles. Only an object can be a .NET deps file.
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return inventory.Output{}, nil
	}
	var d depsJSON
	if err := json.Unmarshal(b, &d); err != nil {
		return inventory.Output{}, fmt.Errorf("parse deps.json %s: %w", in.Path, err)
	}

	// Direct dependencies: whatever a project entry depends on, in any
	// target (framework-only and runtime-specific targets list the same
	// projects).
	direct := make(map[string]bool)
	for _, entries := range d.Targets {
		for key, t := range entries {
			if d.Libraries[key].Type == "project" {
				for dep := range t.Dependencies {
					direct[strings.ToLower(dep)] = true
				}
			}
		}
	}

	var pkgs []inventory.Package
	for key, lib := range d.Libraries {
		if err := ctx.Err(); err != nil {
			return inventory.Output{}, err
		}
		name, version, ok := splitKey(key)
		if !ok {
			continue
		}
		switch lib.Type {
		case "package":
		case "runtimepack":
			name = strings.TrimPrefix(name, "runtimepack.")
		default:
			continue
		}
		if !validName(name) || !validVersion(version) {
			continue
		}
		pkgs = append(pkgs, inventory.Package{
			Name:      name,
			Version:   version,
			Type:      inventory.TypeNuGet,
			Ecosystem: inventory.EcosystemNuGet,
			PURL:      packageurl.NewPackageURL(packageurl.TypeNuget, "", name, version, nil, "").ToString(),
			Location:  in.Path,
			Extractor: e.Name(),
			Indirect:  lib.Type == "package" && len(direct) > 0 && !direct[strings.ToLower(name)],
		})
	}
	inventory.SortPackages(pkgs)
	return inventory.Output{Packages: pkgs}, nil
}

// splitKey splits a libraries/targets key "Name/Version".
func splitKey(key string) (name, version string, ok bool) {
	i := strings.LastIndexByte(key, '/')
	if i <= 0 || i == len(key)-1 {
		return "", "", false
	}
	return key[:i], key[i+1:], true
}

// validName accepts NuGet package IDs: letters, digits, ".", "-", "_".
func validName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '-' || c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return s[0] != '.'
}

// validVersion accepts NuGet (SemVer 2 with an optional fourth part)
// version characters, starting with a digit.
func validVersion(s string) bool {
	if s == "" || len(s) > 128 || s[0] < '0' || s[0] > '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '-' || c == '+' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
