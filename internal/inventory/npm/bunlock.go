package npm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// bunLock is bun.lock, the text lock file of Bun 1.2 and later
// (lockfileVersion 0, 1 and 2, which share one layout; 2 only made Bun's
// own reader stricter). The binary bun.lockb of older Bun versions is not
// read. Bun writes JSONC: JSON with trailing commas, which stripJSONC blanks
// out before encoding/json sees the file.
//
//	{
//	  "lockfileVersion": 1,
//	  "workspaces": {
//	    "": {"name": "app", "dependencies": {"express": "4.17.1"}, "devDependencies": {...}},
//	    "packages/web": {"name": "web", "dependencies": {...}},
//	  },
//	  "packages": {
//	    "express": ["express@4.17.1", "", {"dependencies": {"debug": "2.6.9", ...}}, "sha512-..."],
//	    "express/debug": ["debug@2.6.9", "", {...}, "sha512-..."],
//	    "minimist-old": ["minimist@0.0.8", "", {}, "sha512-..."],
//	    "web": ["web@workspace:packages/web"],
//	  },
//	}
//
// A "packages" key is the install path as package names joined by "/"
// ("express/debug" is node_modules/express/node_modules/debug); the first
// element of the value is what the package resolved to, under its real
// name (the alias minimist-old is keyed "minimist-old" and resolved
// "minimist@0.0.8").
type bunLock struct {
	LockfileVersion *int                    `json:"lockfileVersion"`
	Workspaces      map[string]bunWorkspace `json:"workspaces"`
	Packages        map[string]bunPackage   `json:"packages"`
}

// bunWorkspace is a workspace's package.json, keyed by its path in the
// project ("" is the root).
type bunWorkspace struct {
	Name                 string                `json:"name"`
	Dependencies         map[string]bunIgnored `json:"dependencies"`
	DevDependencies      map[string]bunIgnored `json:"devDependencies"`
	OptionalDependencies map[string]bunIgnored `json:"optionalDependencies"`
	PeerDependencies     map[string]bunIgnored `json:"peerDependencies"`
	// OptionalPeers lists the peer dependencies marked optional in
	// peerDependenciesMeta: Bun does not install them for this workspace.
	OptionalPeers []string `json:"optionalPeers"`
}

// bunPackage is one "packages" entry: an array whose first element is the
// resolution and whose first object is the package's metadata. Bun writes
//
//	npm        ["name@1.2.3", registry or "", {metadata}, "sha512-..."]
//	git        ["name@git+https://host/repo#sha", {metadata}, "bun-tag"]
//	github     ["name@github:owner/repo#sha", {metadata}, "owner-repo-sha"]
//	tarball    ["name@https://host/x.tgz", {metadata}] (or a local path)
//	file, link ["name@file:../x", {metadata}], ["name@link:../y", {metadata}]
//	workspace  ["name@workspace:packages/a"]
//	root       ["name@root:", {bin}]
//
// An entry of another shape is kept with an empty resolution, which
// bunResolution refuses: one odd entry does not cost the rest of the file.
type bunPackage struct {
	resolution string
	// deps are the names of the dependencies Bun installs with the
	// package: dependencies, optionalDependencies, and peerDependencies
	// that are not optionalPeers.
	deps []string
}

// bunMetadata is the metadata object of a "packages" entry; "bin", "os",
// "cpu" and the rest are not needed.
type bunMetadata struct {
	Dependencies         map[string]bunIgnored `json:"dependencies"`
	OptionalDependencies map[string]bunIgnored `json:"optionalDependencies"`
	PeerDependencies     map[string]bunIgnored `json:"peerDependencies"`
	OptionalPeers        []string              `json:"optionalPeers"`
}

// bunIgnored decodes any JSON value into nothing: of a dependency map only
// the names are needed, not the ranges.
type bunIgnored struct{}

func (*bunIgnored) UnmarshalJSON([]byte) error { return nil }

func (p *bunPackage) UnmarshalJSON(b []byte) error {
	var elems []json.RawMessage
	if json.Unmarshal(b, &elems) != nil || len(elems) == 0 || json.Unmarshal(elems[0], &p.resolution) != nil {
		*p = bunPackage{}
		return nil
	}
	for _, e := range elems[1:] {
		if len(e) == 0 || e[0] != '{' {
			continue
		}
		var m bunMetadata
		if json.Unmarshal(e, &m) == nil {
			p.deps = installedDeps(m.OptionalPeers, m.Dependencies, m.OptionalDependencies, m.PeerDependencies)
		}
		break
	}
	return nil
}

// installedDeps returns the names in deps, prod and optional, and in
// peers that are not in optionalPeers.
func installedDeps(optionalPeers []string, deps, optional, peers map[string]bunIgnored) []string {
	names := make([]string, 0, len(deps)+len(optional)+len(peers))
	names = slices.AppendSeq(names, maps.Keys(deps))
	names = slices.AppendSeq(names, maps.Keys(optional))
	if len(peers) > 0 {
		skip := make(map[string]bool, len(optionalPeers))
		for _, n := range optionalPeers {
			skip[n] = true
		}
		for n := range peers {
			if !skip[n] {
				names = append(names, n)
			}
		}
	}
	return names
}

// stripJSONC blanks out, in place and with spaces (so that error offsets
// still point into the file), what JSONC allows and encoding/json does
// not: a comma before a closing "}" or "]", and "//" and "/* */" comments.
// Bun writes trailing commas everywhere and never comments, but reads both.
// An unterminated string or comment is left for encoding/json to refuse.
func stripJSONC(b []byte) {
	comma := -1 // offset of a comma no value has followed yet
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			comma = -1
		case ',':
			comma = i
		case '}', ']':
			if comma >= 0 {
				b[comma] = ' '
			}
			comma = -1
		case ' ', '\t', '\n', '\r':
		case '/':
			end := -1
			switch {
			case i+1 < len(b) && b[i+1] == '/':
				end = len(b)
				if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
					end = i + j
				}
			case i+1 < len(b) && b[i+1] == '*':
				if j := bytes.Index(b[i+2:], []byte("*/")); j >= 0 {
					end = i + 2 + j + 2
				}
			}
			if end < 0 {
				comma = -1
				continue
			}
			for k := i; k < end; k++ {
				if b[k] != '\n' {
					b[k] = ' '
				}
			}
			i = end - 1
		default:
			comma = -1
		}
	}
}

// readBunLock decodes bun.lock, blanking out b's JSONC extras in place. The
// file's structure ("workspaces" an object of objects, "packages" an object)
// must be right; single "packages" entries of the wrong shape are skipped
// (see bunPackage).
func readBunLock(b []byte) (bunLock, error) {
	stripJSONC(b)
	var lock bunLock
	if err := json.Unmarshal(b, &lock); err != nil {
		return lock, err
	}
	switch {
	case lock.LockfileVersion == nil:
		return lock, errors.New("no lockfileVersion: not a bun lock file")
	case *lock.LockfileVersion < 0:
		return lock, fmt.Errorf("lockfileVersion %d", *lock.LockfileVersion)
	}
	return lock, nil
}

// parseBunLock reports the registry packages of bun.lock. It modifies b
// (see readBunLock); Extract owns the buffer.
func parseBunLock(ctx context.Context, b []byte, location, extractor string) ([]inventory.Package, error) {
	lock, err := readBunLock(b)
	if err != nil {
		return nil, fmt.Errorf("parse bun lock %s: %w", location, err)
	}
	// Sorted, so that keys naming the same place ("x" and "/x", in a file
	// Bun did not write) resolve the same way on every run.
	keys := slices.Sorted(maps.Keys(lock.Packages))
	// Without workspaces there is nothing to tell direct from indirect or
	// dev from production: both flags stay false, as for yarn.lock.
	flags := len(lock.Workspaces) > 0
	var prod, direct []bool
	if flags {
		if prod, direct, err = bunGraph(ctx, lock, keys); err != nil {
			return nil, err
		}
	}
	var d inventory.Dedup
	for i, key := range keys {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		name, version, ok := bunResolution(lock.Packages[key].resolution)
		if !ok {
			continue
		}
		p := newPackage(name, version, location, extractor)
		if flags {
			p.Dev = !prod[i]
			p.Indirect = !direct[i]
		}
		d.Add(p)
	}
	return d.Sorted(), nil
}

// bunResolution splits a resolution "name@1.2.3" ("@scope/name@1.2.3") at
// its first "@" after the first byte, and returns false for what is not a
// registry package: workspace:, link: and file: entries (the project's own
// code), root:, and git, github: and tarball sources, for which bun.lock
// records a commit or URL but not the version of the package (npm, yarn and
// pnpm lock files record it, and those packages are reported from them).
// An alias written "name@npm:real@1.2.3" is reported under the real name;
// Bun itself writes the real name in the resolution and the alias only in
// the key.
func bunResolution(res string) (name, version string, ok bool) {
	name, version = splitSpec(res)
	if real, alias := strings.CutPrefix(version, "npm:"); alias {
		name, version = splitSpec(real)
	}
	// A local tarball resolves to its path, which may start with a digit
	// ("name@1.0.0.tgz"); a registry version never ends so.
	if !validName(name) || !validVersion(version) ||
		strings.HasSuffix(version, ".tgz") || strings.HasSuffix(version, ".tar.gz") || strings.HasSuffix(version, ".tar") {
		return "", "", false
	}
	return name, version, true
}

// bunGraph resolves every dependency the way Bun does when it reads the
// file, and returns, by index in keys, which packages a production
// dependency of a workspace reaches (prod) and which a workspace depends on
// itself (direct).
//
// Resolution follows Node's module lookup over the keys: dependency d of the
// package at key k resolves to "k/d" if there is one, else to d below k's
// parent, and so on up to the top-level "d"; a workspace named w resolves
// "w/d", then "d"; the root workspace resolves "d". Instead of building
// candidate keys (which costs the key's length for each level, quadratic on
// a hostile file with deep keys), bunGraph walks the tree of keys depth
// first and keeps, for each name, a stack of the packages of that name
// visible from the current key: the top one is the resolution. Each key,
// dependency and tree edge costs one map operation.
//
// Production roots are the dependencies, optionalDependencies and
// non-optional peerDependencies of every workspace; from a package, the same
// groups of its metadata are followed (a package's devDependencies are never
// installed). A package is dev when no production root reaches it: Bun, like
// pnpm 9, records no dev flag.
func bunGraph(ctx context.Context, lock bunLock, keys []string) (prod, direct []bool, err error) {
	n := len(keys)
	root := n
	index := make(map[string]int, n)
	for i, k := range keys {
		index[k] = i
	}
	// The tree: children by node, root last. A key whose parent has no entry
	// ("a/b" without "a") cannot be reached by any lookup and is left out.
	children := make([][]int, n+1)
	names := make([]string, n)
	for i, k := range keys {
		parent, name := bunParent(k)
		names[i] = name
		p := root
		if parent != "" {
			var ok bool
			if p, ok = index[parent]; !ok {
				continue
			}
		}
		children[p] = append(children[p], i)
	}
	wsAt := make(map[int][]*bunWorkspace)
	for _, path := range slices.Sorted(maps.Keys(lock.Workspaces)) {
		ws := lock.Workspaces[path]
		at := root
		if path != "" {
			if i, ok := index[ws.Name]; ok {
				at = i
			}
		}
		wsAt[at] = append(wsAt[at], &ws)
	}

	direct = make([]bool, n)
	edges := make([][]int, n) // production dependencies, resolved
	var roots []int
	visible := make(map[string][]int)
	resolve := func(name string) (int, bool) {
		s := visible[name]
		if len(s) == 0 {
			return 0, false
		}
		return s[len(s)-1], true
	}
	enter := func(node int) {
		for _, c := range children[node] {
			visible[names[c]] = append(visible[names[c]], c)
		}
		for _, ws := range wsAt[node] {
			optionalPeer := make(map[string]bool, len(ws.OptionalPeers))
			for _, p := range ws.OptionalPeers {
				optionalPeer[p] = true
			}
			for g, deps := range []map[string]bunIgnored{ws.Dependencies, ws.OptionalDependencies, ws.PeerDependencies, ws.DevDependencies} {
				for dep := range deps {
					t, ok := resolve(dep)
					if !ok {
						continue
					}
					direct[t] = true
					if g < 2 || g == 2 && !optionalPeer[dep] {
						roots = append(roots, t)
					}
				}
			}
		}
		if node != root {
			for _, dep := range lock.Packages[keys[node]].deps {
				if t, ok := resolve(dep); ok {
					edges[node] = append(edges[node], t)
				}
			}
		}
	}

	type frame struct{ node, next int }
	enter(root)
	stack := []frame{{node: root}}
	for steps := 0; len(stack) > 0; steps++ {
		if steps%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
		}
		top := len(stack) - 1
		if f := stack[top]; f.next < len(children[f.node]) {
			c := children[f.node][f.next]
			stack[top].next++
			enter(c)
			stack = append(stack, frame{node: c})
			continue
		}
		for _, c := range children[stack[top].node] {
			s := visible[names[c]]
			visible[names[c]] = s[:len(s)-1]
		}
		stack = stack[:top]
	}

	prod = make([]bool, n)
	var queue []int
	for _, r := range roots {
		if !prod[r] {
			prod[r] = true
			queue = append(queue, r)
		}
	}
	for steps := 0; len(queue) > 0; steps++ {
		if steps%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
		}
		node := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, t := range edges[node] {
			if !prod[t] {
				prod[t] = true
				queue = append(queue, t)
			}
		}
	}
	return prod, direct, nil
}

// bunParent splits a "packages" key into the key of the package it is
// installed below and its own name: "express/debug" → "express", "debug";
// "a/@s/b" → "a", "@s/b"; "@s/b" → "", "@s/b".
func bunParent(key string) (parent, name string) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return "", key
	}
	j := strings.LastIndexByte(key[:i], '/') // -1 when the name is first
	if key[j+1] == '@' {
		if j < 0 {
			return "", key
		}
		return key[:j], key[j+1:]
	}
	return key[:i], key[i+1:]
}
