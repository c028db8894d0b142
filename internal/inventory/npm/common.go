package npm

import (
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/package-url/packageurl-go"
)

// Size bounds. package.json files of installed packages are small (old npm
// versions embedded the README, which makes a few of them reach hundreds of
// KiB); lock files of large monorepos reach tens of MiB.
const (
	MaxPackageJSONSize = 8 << 20
	MaxLockfileSize    = 64 << 20
)

// readLimited reads the whole file, at most limit bytes of it (see
// inventory.ReadAll). Editors on Windows write a UTF-8 byte order mark; npm
// and yarn ignore it, encoding/json does not.
func readLimited(in *inventory.Input, limit int64) ([]byte, error) {
	b, err := inventory.ReadAll(in, limit)
	return inventory.TrimBOM(b), err
}

// purl returns the package URL of an npm package; a scope becomes the PURL
// namespace ("@babel/traverse" → "pkg:npm/%40babel/traverse@7.20.0").
func purl(name, version string) string {
	ns, n := "", name
	if strings.HasPrefix(name, "@") {
		if i := strings.IndexByte(name, '/'); i > 0 {
			ns, n = name[:i], name[i+1:]
		}
	}
	return packageurl.NewPackageURL(packageurl.TypeNPM, ns, n, version, nil, "").ToString()
}

func newPackage(name, version, location, extractor string) inventory.Package {
	return inventory.Package{
		Name:      name,
		Version:   version,
		Type:      inventory.TypeNPM,
		Ecosystem: inventory.EcosystemNPM,
		PURL:      purl(name, version),
		Location:  location,
		Extractor: extractor,
	}
}

// validName reports whether s can be an npm package name. It rejects what
// would make a nonsense PURL or a misleading finding (empty, whitespace,
// path tricks, absurd length), not everything npm's stricter rules reject:
// legacy packages with capital letters still exist.
func validName(s string) bool {
	if s == "" || len(s) > 214 || s[0] == '.' || s[0] == '_' {
		return false
	}
	slash := strings.IndexByte(s, '/')
	if s[0] == '@' {
		if slash < 2 || slash == len(s)-1 || strings.IndexByte(s[slash+1:], '/') >= 0 {
			return false
		}
	} else if slash >= 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// validVersion reports whether s looks like a registry version (semver-ish:
// starts with a digit, no spaces or protocol). Lock files also record git,
// file and tarball "versions" that no advisory range can match.
func validVersion(s string) bool {
	if s == "" || len(s) > 256 || s[0] < '0' || s[0] > '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == ':' || c == '/' || c == '\\' {
			return false
		}
	}
	return true
}

// isNodeModulesPath reports whether p lies below a node_modules directory.
func isNodeModulesPath(p string) bool {
	return strings.HasPrefix(p, "node_modules/") || strings.Contains(p, "/node_modules/")
}

// baseName is path.Base for cleaned slash paths without allocating.
func baseName(p string) string {
	return p[strings.LastIndexByte(p, '/')+1:]
}
