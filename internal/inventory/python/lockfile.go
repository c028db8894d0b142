package python

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/package-url/packageurl-go"
)

// MaxLockfileSize bounds how much of a lock file is read.
const MaxLockfileSize = 32 << 20

// Lockfile reports the packages a Python project locked: poetry.lock,
// Pipfile.lock and uv.lock. These describe a project directory (`scan fs`);
// in an image the installed dist-info is the truth, and both are reported.
type Lockfile struct{}

// NewLockfile returns the "language/python/lockfile" extractor.
func NewLockfile() *Lockfile { return &Lockfile{} }

// Name implements inventory.Extractor.
func (*Lockfile) Name() string { return "language/python/lockfile" }

// Version implements inventory.Extractor.
func (*Lockfile) Version() int { return 1 }

// Required takes the three lock files by base name, except inside installed
// packages (site-packages, dist-packages), where they are a dependency's own
// development files.
func (*Lockfile) Required(path string, _ inventory.FileInfo) bool {
	switch path[strings.LastIndexByte(path, '/')+1:] {
	case "poetry.lock", "Pipfile.lock", "uv.lock":
		return !strings.Contains(path, "/site-packages/") && !strings.Contains(path, "/dist-packages/")
	}
	return false
}

// Extract implements inventory.Extractor.
func (e *Lockfile) Extract(ctx context.Context, in *inventory.Input) (inventory.Output, error) {
	b, err := inventory.ReadAll(in, MaxLockfileSize)
	if err != nil {
		return inventory.Output{}, err
	}
	b = inventory.TrimBOM(b) // written by Windows editors, ignored by the tools
	var entries []lockEntry
	switch in.Path[strings.LastIndexByte(in.Path, '/')+1:] {
	case "poetry.lock":
		entries, err = parsePoetry(b)
	case "Pipfile.lock":
		entries, err = parsePipfile(b)
	case "uv.lock":
		entries, err = parseUV(ctx, b)
	default:
		return inventory.Output{}, nil
	}
	if err != nil {
		return inventory.Output{}, fmt.Errorf("parse %s: %w", in.Path, err)
	}

	// De-duplicate name@version (uv forks, Pipfile default+develop); a
	// package is dev only if every occurrence is.
	var d inventory.Dedup
	for _, le := range entries {
		if !validName(le.name) || !validVersion(le.version) {
			continue
		}
		name := NormalizeName(le.name)
		d.Add(inventory.Package{
			Name:      name,
			Version:   le.version,
			Type:      inventory.TypePyPI,
			Ecosystem: inventory.EcosystemPyPI,
			PURL:      packageurl.NewPackageURL(packageurl.TypePyPi, "", name, le.version, nil, "").ToString(),
			Location:  in.Path,
			Extractor: e.Name(),
			Dev:       le.dev,
		})
	}
	return inventory.Output{Packages: d.Sorted()}, nil
}

type lockEntry struct {
	name, version string
	dev           bool
}

// localSource reports source types that are the project's own code, not a
// published distribution.
func localSource(t string) bool {
	switch t {
	case "directory", "file", "editable", "virtual", "path":
		return true
	}
	return false
}

// parsePoetry reads poetry.lock. Poetry before 1.5 wrote category = "dev";
// lock-version 2.1 writes groups = ["dev"]; lock-version 2.0 records
// neither, so dev dependencies cannot be told apart there.
func parsePoetry(b []byte) ([]lockEntry, error) {
	if err := checkTOMLDepth(b); err != nil {
		return nil, err
	}
	var lock struct {
		Package []struct {
			Name     string   `toml:"name"`
			Version  string   `toml:"version"`
			Category string   `toml:"category"`
			Groups   []string `toml:"groups"`
			Source   struct {
				Type string `toml:"type"`
			} `toml:"source"`
		} `toml:"package"`
	}
	if _, err := toml.Decode(string(b), &lock); err != nil {
		return nil, err
	}
	var out []lockEntry
	for _, p := range lock.Package {
		if localSource(p.Source.Type) {
			continue
		}
		dev := p.Category == "dev" || (len(p.Groups) > 0 && !slices.Contains(p.Groups, "main"))
		out = append(out, lockEntry{p.Name, p.Version, dev})
	}
	return out, nil
}

// parsePipfile reads Pipfile.lock: "default" and "develop" map names to
// {"version": "==1.2.3"}; VCS and path entries have no version.
func parsePipfile(b []byte) ([]lockEntry, error) {
	var lock struct {
		Default map[string]pipfileEntry `json:"default"`
		Develop map[string]pipfileEntry `json:"develop"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return nil, err
	}
	var out []lockEntry
	for i, m := range []map[string]pipfileEntry{lock.Default, lock.Develop} {
		for name, e := range m {
			if v, ok := strings.CutPrefix(e.Version, "=="); ok && !strings.HasPrefix(v, "=") {
				out = append(out, lockEntry{name, v, i == 1})
			}
		}
	}
	return out, nil
}

type pipfileEntry struct {
	Version string `json:"version"`
}

type uvDep struct {
	Name string `toml:"name"`
}

type uvPackage struct {
	Name    string `toml:"name"`
	Version string `toml:"version"`
	Source  struct {
		Registry  string `toml:"registry"`
		Editable  string `toml:"editable"`
		Virtual   string `toml:"virtual"`
		Directory string `toml:"directory"`
		Path      string `toml:"path"`
	} `toml:"source"`
	Dependencies         []uvDep            `toml:"dependencies"`
	OptionalDependencies map[string][]uvDep `toml:"optional-dependencies"`
	DevDependencies      map[string][]uvDep `toml:"dev-dependencies"`
}

func (p *uvPackage) local() bool {
	s := p.Source
	return s.Editable != "" || s.Virtual != "" || s.Directory != "" || s.Path != ""
}

// parseUV reads uv.lock. uv records no dev flag per package: the
// project's own packages (editable or virtual sources) list their
// dependencies and dev-dependencies, and a package is dev when no
// production or optional dependency of a project reaches it.
func parseUV(ctx context.Context, b []byte) ([]lockEntry, error) {
	if err := checkTOMLDepth(b); err != nil {
		return nil, err
	}
	var lock struct {
		Package []uvPackage `toml:"package"`
	}
	if _, err := toml.Decode(string(b), &lock); err != nil {
		return nil, err
	}
	byName := make(map[string][]int)
	for i, p := range lock.Package {
		n := NormalizeName(p.Name)
		byName[n] = append(byName[n], i)
	}
	// Walk names, not versions: uv may lock one name at several versions
	// (forks by marker), and its dependency edges then carry markers this
	// walk does not evaluate, so every version of a reached name counts.
	prod := make(map[string]bool)
	var queue []string
	push := func(deps []uvDep) {
		for _, d := range deps {
			if n := NormalizeName(d.Name); !prod[n] {
				prod[n] = true
				queue = append(queue, n)
			}
		}
	}
	roots := false
	for _, p := range lock.Package {
		if p.local() {
			roots = true
			push(p.Dependencies)
			for _, deps := range p.OptionalDependencies {
				push(deps)
			}
		}
	}
	for n := 0; len(queue) > 0; n++ {
		if n%1024 == 1023 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		name := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, i := range byName[name] {
			push(lock.Package[i].Dependencies)
			for _, deps := range lock.Package[i].OptionalDependencies {
				push(deps)
			}
		}
	}
	var out []lockEntry
	for _, p := range lock.Package {
		if p.local() {
			continue
		}
		out = append(out, lockEntry{p.Name, p.Version, roots && !prod[NormalizeName(p.Name)]})
	}
	return out, nil
}

// maxTOMLDepth bounds array and inline-table nesting. Lock files nest three
// or four levels; the TOML decoder recurses per level and slows down
// super-linearly, so a file of nothing but "[" must be refused up front.
const maxTOMLDepth = 64

var errTooDeep = errors.New("TOML nested too deeply")

// checkTOMLDepth scans b for "[" and "{" nesting outside strings and
// comments. Table headers ("[[package]]") open and close on one line and
// never count for more than two.
func checkTOMLDepth(b []byte) error {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '#':
			for i < len(b) && b[i] != '\n' {
				i++
			}
		case '"', '\'':
			i = skipTOMLString(b, i)
		case '[', '{':
			if depth++; depth > maxTOMLDepth {
				return errTooDeep
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return nil
}

// skipTOMLString returns the index of the last byte of the string starting
// at b[i] (basic or literal, single- or multi-line).
func skipTOMLString(b []byte, i int) int {
	q := b[i]
	if i+2 < len(b) && b[i+1] == q && b[i+2] == q { // multi-line
		for j := i + 3; j+2 < len(b); j++ {
			if q == '"' && b[j] == '\\' {
				j++
				continue
			}
			if b[j] == q && b[j+1] == q && b[j+2] == q {
				return j + 2
			}
		}
		return len(b)
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			if q == '"' {
				j++
			}
		case q, '\n':
			return j
		}
	}
	return len(b)
}
