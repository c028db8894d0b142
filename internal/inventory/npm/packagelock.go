package npm

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// packageLock is package-lock.json / npm-shrinkwrap.json. lockfileVersion 1
// has only the nested "dependencies" tree; 2 has both that and the flat
// "packages" map; 3 has only "packages". "packages" is preferred when
// present: it is what npm 7+ installs from.
type packageLock struct {
	LockfileVersion json.RawMessage         `json:"lockfileVersion"`
	Packages        map[string]lockPackage  `json:"packages"`
	Dependencies    map[string]lockV1Object `json:"dependencies"`
}

type lockPackage struct {
	// Name is only present when it differs from the path: aliases
	// (node_modules/foo installed from npm:bar) and the root.
	Name    string `json:"name"`
	Version string `json:"version"`
	Link    bool   `json:"link"`
	Dev     bool   `json:"dev"`
	// License is recorded by npm 7+ for each package.
	License json.RawMessage `json:"license"`
	// The dependency lists are only read for the root entry ""; kept raw so
	// that the thousands of other entries do not each build maps.
	Dependencies         json.RawMessage `json:"dependencies"`
	DevDependencies      json.RawMessage `json:"devDependencies"`
	OptionalDependencies json.RawMessage `json:"optionalDependencies"`
	PeerDependencies     json.RawMessage `json:"peerDependencies"`
}

// lockV1Object is an entry of the lockfileVersion 1 "dependencies" tree.
type lockV1Object struct {
	// Version is a version, or for aliases "npm:real-name@version", or for
	// git/file/tarball dependencies a URL.
	Version      string                  `json:"version"`
	Dev          bool                    `json:"dev"`
	Dependencies map[string]lockV1Object `json:"dependencies"`
}

func parsePackageLock(ctx context.Context, b []byte, location, extractor string) ([]inventory.Package, error) {
	var lock packageLock
	if err := json.Unmarshal(b, &lock); err != nil {
		return nil, fmt.Errorf("parse package lock %s: %w", location, err)
	}
	var d inventory.Dedup
	if lock.Packages != nil {
		direct, err := rootDependencies(lock.Packages[""])
		if err != nil {
			return nil, fmt.Errorf("parse package lock %s: root package: %w", location, err)
		}
		for key, e := range lock.Packages {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			// Keys are install paths: "" is the project itself, workspace
			// packages live outside node_modules; links point elsewhere
			// and that target has its own entry.
			i := strings.LastIndex(key, "node_modules/")
			if e.Link || i < 0 || (i > 0 && key[i-1] != '/') {
				continue
			}
			pathName := key[i+len("node_modules/"):]
			name := pathName
			if e.Name != "" {
				name = e.Name
			}
			if !validName(name) || !validVersion(e.Version) {
				continue
			}
			p := newPackage(name, e.Version, location, extractor)
			p.Dev = e.Dev
			// Only a package installed at the top level under the name the
			// root depends on it by is a direct dependency.
			p.Indirect = i != 0 || !direct[pathName]
			p.Licenses = licenses(e.License, nil)
			d.Add(p)
		}
		return d.Sorted(), nil
	}
	if err := walkLockV1(ctx, lock.Dependencies, location, extractor, &d); err != nil {
		return nil, err
	}
	return d.Sorted(), nil
}

// rootDependencies returns the names the project itself depends on.
func rootDependencies(root lockPackage) (map[string]bool, error) {
	direct := make(map[string]bool)
	for _, raw := range []json.RawMessage{root.Dependencies, root.DevDependencies, root.OptionalDependencies, root.PeerDependencies} {
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		for k := range m {
			direct[k] = true
		}
	}
	return direct, nil
}

// walkLockV1 walks the nested lockfileVersion 1 tree. The recursion depth is
// bounded by encoding/json's own nesting limit.
func walkLockV1(ctx context.Context, deps map[string]lockV1Object, location, extractor string, d *inventory.Dedup) error {
	for key, e := range deps {
		if err := ctx.Err(); err != nil {
			return err
		}
		name, version := key, e.Version
		if real, ok := strings.CutPrefix(version, "npm:"); ok {
			// Alias: "version": "npm:minimist@0.0.8".
			if at := strings.LastIndexByte(real, '@'); at > 0 {
				name, version = real[:at], real[at+1:]
			}
		}
		if validName(name) && validVersion(version) {
			p := newPackage(name, version, location, extractor)
			p.Dev = e.Dev
			d.Add(p)
		}
		if err := walkLockV1(ctx, e.Dependencies, location, extractor, d); err != nil {
			return err
		}
	}
	return nil
}
