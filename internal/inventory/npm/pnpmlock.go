package npm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// pnpmLock is pnpm-lock.yaml. Three generations are in use:
//
//   - 5.x (pnpm 5–7): package keys "/name/1.2.3_peer@1.0.0"; top-level
//     dependencies map names to versions; "dev: true|false" per package.
//   - 6.0 (pnpm 8): keys "/name@1.2.3(peer@1.0.0)"; dependencies map names
//     to {specifier, version}; "dev" per package.
//   - 9.0 (pnpm 9+): keys "name@1.2.3" in "packages" (metadata only) and
//     "name@1.2.3(peer@1.0.0)" in "snapshots" (the dependency graph);
//     dependencies only under "importers"; no "dev" any more.
//
// The yaml tags document the mapping and let the tests decode the same
// struct with a YAML library, as a reference for readPnpmLock.
type pnpmLock struct {
	LockfileVersion string                  `yaml:"lockfileVersion"`
	Importers       map[string]pnpmImporter `yaml:"importers"`
	// Single-project lock files before 9.0 keep the root's dependencies at
	// the top level instead of under importers["."].
	pnpmImporter `yaml:",inline"`
	Packages     map[string]pnpmPackage  `yaml:"packages"`
	Snapshots    map[string]pnpmSnapshot `yaml:"snapshots"`
}

type pnpmImporter struct {
	Dependencies         map[string]pnpmRef `yaml:"dependencies"`
	DevDependencies      map[string]pnpmRef `yaml:"devDependencies"`
	OptionalDependencies map[string]pnpmRef `yaml:"optionalDependencies"`
}

// pnpmRef is what a dependency resolved to: "1.2.3", "1.2.3(peer@1.0.0)",
// an alias "real@1.2.3" (9.0) or "/real@1.2.3" / "/real/1.2.3" (5.x, 6.0),
// or "link:../dir". 5.x writes it as a scalar, later versions as
// {specifier, version}.
type pnpmRef struct{ Version string }

type pnpmPackage struct {
	// Name and Version are set for packages not from the registry (tarball,
	// git), whose keys are URLs.
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	Dev     *bool  `yaml:"dev"`
}

type pnpmSnapshot struct {
	Dependencies         map[string]string `yaml:"dependencies"`
	OptionalDependencies map[string]string `yaml:"optionalDependencies"`
}

// readPnpmLock reads the parts of pnpm-lock.yaml listed in pnpmLock with a
// line scanner instead of a YAML library. pnpm writes the file with one
// fixed serializer (block mappings indented by two spaces, single-quoted
// keys where needed, flow mappings only for leaf values such as
// "resolution: {integrity: ...}" and "{}"), and the structure needed is
// at fixed depths. A YAML decoder builds a node tree 20–30 times the size
// of the file first; lock files of large monorepos are tens of MiB, which
// would make one lock file cost more memory than the rest of an image scan.
// Anything not recognised is skipped. The tests check the result against
// gopkg.in/yaml.v3 on real lock files of all three generations.
func readPnpmLock(ctx context.Context, b []byte) (pnpmLock, error) {
	var (
		lock      pnpmLock
		section   string // top-level key
		entry     string // indent-2 key: importer, package or snapshot
		sub       string // indent-4 key below an importer or snapshot
		dep       string // indent-6 dependency name (6.0+ importers)
		depIndent int    // indent of dep's mapping keys
		n         int
	)
	root := &lock.pnpmImporter
	importer := func() *pnpmImporter {
		if section == "importers" {
			imp := lock.Importers[entry]
			return &imp
		}
		return root
	}
	setRef := func(imp *pnpmImporter, group, name, version string) {
		var m *map[string]pnpmRef
		switch group {
		case "dependencies":
			m = &imp.Dependencies
		case "devDependencies":
			m = &imp.DevDependencies
		case "optionalDependencies":
			m = &imp.OptionalDependencies
		default:
			return
		}
		if *m == nil {
			*m = make(map[string]pnpmRef)
		}
		(*m)[name] = pnpmRef{Version: version}
		if section == "importers" {
			lock.Importers[entry] = *imp
		}
	}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return lock, err
			}
		}
		line = bytes.TrimRight(line, " \t\r")
		indent := 0
		for indent < len(line) && line[indent] == ' ' {
			indent++
		}
		body := line[indent:]
		if len(body) == 0 || body[0] == '#' {
			continue
		}
		key, value, ok := yamlKeyValue(body)
		if !ok {
			continue
		}
		switch indent {
		case 0:
			section, entry, sub, dep = key, "", "", ""
			switch key {
			case "lockfileVersion":
				lock.LockfileVersion = value
			case "importers":
				if lock.Importers == nil {
					lock.Importers = make(map[string]pnpmImporter)
				}
			}
			continue
		case 2:
			entry, sub, dep = key, "", ""
			switch section {
			case "importers":
				if _, ok := lock.Importers[key]; !ok {
					lock.Importers[key] = pnpmImporter{}
				}
			case "packages":
				if lock.Packages == nil {
					lock.Packages = make(map[string]pnpmPackage)
				}
				var p pnpmPackage
				for k, v := range flowMap(value) {
					p.set(k, v)
				}
				lock.Packages[key] = p
			case "snapshots":
				if lock.Snapshots == nil {
					lock.Snapshots = make(map[string]pnpmSnapshot)
				}
				lock.Snapshots[key] = pnpmSnapshot{}
			case "dependencies", "devDependencies", "optionalDependencies":
				// Single project before 9.0: 5.x "name: version", 6.0
				// "name:" followed by specifier and version.
				switch {
				case strings.HasPrefix(value, "{"):
					setRef(root, section, key, flowMap(value)["version"])
				case value != "":
					setRef(root, section, key, value)
				default:
					dep, depIndent = key, 4
				}
			}
			continue
		}
		if entry == "" {
			continue
		}
		switch section {
		case "packages":
			if indent != 4 {
				continue
			}
			p := lock.Packages[entry]
			p.set(key, value)
			lock.Packages[entry] = p
		case "snapshots":
			switch {
			case indent == 4:
				sub = key
				if strings.HasPrefix(value, "{") {
					for k, v := range flowMap(value) {
						addSnapshotDep(&lock, entry, sub, k, v)
					}
				}
			case indent == 6 && value != "":
				addSnapshotDep(&lock, entry, sub, key, value)
			}
		case "importers":
			switch {
			case indent == 4:
				sub, dep = key, ""
			case indent == 6 && strings.HasPrefix(value, "{"):
				setRef(importer(), sub, key, flowMap(value)["version"])
			case indent == 6 && value != "":
				setRef(importer(), sub, key, value) // 5.x
			case indent == 6:
				dep, depIndent = key, 8
			case indent == depIndent && dep != "" && key == "version":
				setRef(importer(), sub, dep, value)
			}
		case "dependencies", "devDependencies", "optionalDependencies":
			if indent == depIndent && dep != "" && key == "version" {
				setRef(root, section, dep, value)
			}
		}
	}
	if pnpmMajor(lock.LockfileVersion) == 0 {
		return lock, errors.New("no lockfileVersion: not a pnpm lock file")
	}
	return lock, nil
}

func (p *pnpmPackage) set(key, value string) {
	switch key {
	case "name":
		p.Name = value
	case "version":
		p.Version = value
	case "dev":
		dev := value == "true"
		p.Dev = &dev
	}
}

func addSnapshotDep(lock *pnpmLock, entry, group, name, ref string) {
	s := lock.Snapshots[entry]
	var m *map[string]string
	switch group {
	case "dependencies":
		m = &s.Dependencies
	case "optionalDependencies":
		m = &s.OptionalDependencies
	default:
		return
	}
	if *m == nil {
		*m = make(map[string]string)
	}
	(*m)[name] = ref
	lock.Snapshots[entry] = s
}

// flowMap reads a one-level YAML flow mapping "{a: 1, 'b': x}". Nested
// flow collections are not split correctly and yield nonsense keys, which
// the callers ignore.
func flowMap(v string) map[string]string {
	inner, ok := strings.CutPrefix(v, "{")
	if !ok {
		return nil
	}
	inner, ok = strings.CutSuffix(inner, "}")
	if !ok {
		return nil
	}
	m := make(map[string]string)
	for _, item := range strings.Split(inner, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := yamlKeyValue([]byte(item))
		if ok {
			m[k] = v
		}
	}
	return m
}

// yamlKeyValue splits a block mapping line "key: value" or "key:". Keys may
// be single- or double-quoted; values are unquoted. A flow mapping value
// ("{}", "{integrity: ...}") is returned as is.
func yamlKeyValue(line []byte) (key, value string, ok bool) {
	var rest []byte
	switch q := line[0]; q {
	case '\'', '"':
		end := closingQuote(line, q)
		if end < 0 {
			return "", "", false
		}
		key = unquoteYAML(string(line[:end+1]))
		rest = line[end+1:]
		if len(rest) == 0 || rest[0] != ':' {
			return "", "", false
		}
		rest = rest[1:]
	default:
		i := bytes.Index(line, []byte(": "))
		if i < 0 {
			if line[len(line)-1] != ':' {
				return "", "", false
			}
			i = len(line) - 1
		}
		key, rest = string(line[:i]), line[i+1:]
	}
	if len(rest) > 0 && rest[0] != ' ' {
		return "", "", false
	}
	return key, unquoteYAML(string(bytes.TrimSpace(rest))), true
}

// closingQuote returns the index of the quote closing line[0], honouring
// YAML's ” escape in single quotes and \ escapes in double quotes.
func closingQuote(line []byte, q byte) int {
	for i := 1; i < len(line); i++ {
		switch {
		case q == '"' && line[i] == '\\':
			i++
		case line[i] == q:
			if q == '\'' && i+1 < len(line) && line[i+1] == '\'' {
				i++
				continue
			}
			return i
		}
	}
	return -1
}

// unquoteYAML removes YAML scalar quotes. Double-quoted escapes other than
// \" and \\ never occur in what pnpm writes for names and versions; a value
// containing one is kept escaped and then fails name or version checks.
func unquoteYAML(s string) string {
	if len(s) < 2 {
		return s
	}
	switch {
	case s[0] == '\'' && s[len(s)-1] == '\'':
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'")
	case s[0] == '"' && s[len(s)-1] == '"':
		return strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(s[1 : len(s)-1])
	}
	return s
}

func parsePnpmLock(ctx context.Context, b []byte, location, extractor string) ([]inventory.Package, error) {
	lock, err := readPnpmLock(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("parse pnpm lock %s: %w", location, err)
	}
	major := pnpmMajor(lock.LockfileVersion)
	if lock.Importers == nil {
		lock.Importers = map[string]pnpmImporter{".": lock.pnpmImporter}
	}

	direct := make(map[string]bool)
	for _, imp := range lock.Importers {
		for _, deps := range []map[string]pnpmRef{imp.Dependencies, imp.DevDependencies, imp.OptionalDependencies} {
			for name, ref := range deps {
				if key, ok := pnpmRefKey(major, name, ref.Version); ok {
					n, v := pnpmSplitKey(major, key)
					direct[n+"@"+v] = true
				}
			}
		}
	}

	// 9.0 records no dev flag: a package is dev when no production
	// dependency of any importer reaches it through the snapshots graph.
	var prod map[string]bool
	if major >= 9 {
		var err error
		if prod, err = pnpmProduction(ctx, major, lock); err != nil {
			return nil, err
		}
	}

	var d inventory.Dedup
	for key, e := range lock.Packages {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name, version := pnpmSplitKey(major, key)
		if e.Name != "" && e.Version != "" {
			name, version = e.Name, e.Version
		}
		if !validName(name) || !validVersion(version) {
			continue
		}
		p := newPackage(name, version, location, extractor)
		id := name + "@" + version
		p.Indirect = !direct[id]
		if major >= 9 {
			p.Dev = prod != nil && !prod[id]
		} else {
			p.Dev = e.Dev != nil && *e.Dev
		}
		d.Add(p)
	}
	return d.Sorted(), nil
}

// pnpmProduction returns the name@version of every package reachable from a
// production or optional dependency of an importer, or nil when the lock
// file has no graph to walk.
func pnpmProduction(ctx context.Context, major int, lock pnpmLock) (map[string]bool, error) {
	if len(lock.Snapshots) == 0 {
		return nil, nil
	}
	seen := make(map[string]bool)
	var queue []string
	push := func(name, ref string) {
		if key, ok := pnpmRefKey(major, name, ref); ok && !seen[key] {
			seen[key] = true
			queue = append(queue, key)
		}
	}
	for _, imp := range lock.Importers {
		for _, deps := range []map[string]pnpmRef{imp.Dependencies, imp.OptionalDependencies} {
			for name, ref := range deps {
				push(name, ref.Version)
			}
		}
	}
	prod := make(map[string]bool)
	for n := 0; len(queue) > 0; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		key := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		name, version := pnpmSplitKey(major, key)
		prod[name+"@"+version] = true
		s := lock.Snapshots[key]
		for dn, ref := range s.Dependencies {
			push(dn, ref)
		}
		for dn, ref := range s.OptionalDependencies {
			push(dn, ref)
		}
	}
	return prod, nil
}

// pnpmRefKey turns a dependency reference into the key of the package it
// resolved to (a "snapshots" key for 9.0, a "packages" key before).
func pnpmRefKey(major int, name, ref string) (string, bool) {
	switch {
	case ref == "" || strings.HasPrefix(ref, "link:"):
		return "", false
	case ref[0] == '/':
		return ref, true // 5.x / 6.0 alias or non-registry: a packages key
	case ref[0] >= '0' && ref[0] <= '9':
		if major >= 6 {
			return name + "@" + ref, true
		}
		return name + "/" + ref, true
	default:
		return ref, true // 9.0 alias "real@1.2.3"
	}
}

// pnpmSplitKey splits a package key into name and version, dropping the
// leading "/" (before 9.0) and the peer-dependency suffix.
func pnpmSplitKey(major int, key string) (name, version string) {
	k := strings.TrimPrefix(key, "/")
	if major > 0 && major < 6 {
		i := strings.LastIndexByte(k, '/')
		if i <= 0 {
			return "", ""
		}
		name, version = k[:i], k[i+1:]
		if j := strings.IndexByte(version, '_'); j >= 0 {
			version = version[:j]
		}
		return name, version
	}
	if i := strings.IndexByte(k, '('); i >= 0 {
		k = k[:i]
	}
	i := strings.LastIndexByte(k, '@')
	if i <= 0 {
		return "", ""
	}
	return k[:i], k[i+1:]
}

// pnpmMajor reads lockfileVersion, a YAML number in 5.x ("5.4") and a
// string from 6.0 on ('6.0', '9.0'). 0 means unknown; it is treated as the
// newest layout.
func pnpmMajor(s string) int {
	n := 0
	for i := 0; i < len(s) && i < 4 && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}
