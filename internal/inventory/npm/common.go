package npm

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
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

// readLimited reads all of r, failing with inventory.ErrTooLarge once more
// than limit bytes are seen, so a hostile file cannot exhaust memory.
func readLimited(in *inventory.Input, limit int64) ([]byte, error) {
	if in.Info.Size > limit {
		return nil, fmt.Errorf("%s: %d bytes, limit %d: %w", in.Path, in.Info.Size, limit, inventory.ErrTooLarge)
	}
	// Size the buffer from the declared size: package.json files are read
	// by the thousand, and io.ReadAll's doubling from 512 bytes dominates
	// their cost otherwise. bytes.Buffer wants MinRead spare bytes.
	n := in.Info.Size
	if n <= 0 || n > limit {
		n = 0
	}
	buf := bytes.NewBuffer(make([]byte, 0, n+bytes.MinRead))
	_, err := buf.ReadFrom(io.LimitReader(in.Reader, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", in.Path, err)
	}
	b := buf.Bytes()
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes: %w", in.Path, limit, inventory.ErrTooLarge)
	}
	// Editors on Windows write a UTF-8 byte order mark; npm and yarn
	// ignore it, encoding/json does not.
	return bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), nil
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

// dedup collects packages of one file, merging identical name@version pairs.
type dedup struct {
	index map[string]int
	pkgs  []inventory.Package
}

func (d *dedup) add(p inventory.Package) {
	if d.index == nil {
		d.index = make(map[string]int)
	}
	key := p.Name + "@" + p.Version
	if i, ok := d.index[key]; ok {
		q := &d.pkgs[i]
		q.Dev = q.Dev && p.Dev
		q.Indirect = q.Indirect && p.Indirect
		return
	}
	d.index[key] = len(d.pkgs)
	d.pkgs = append(d.pkgs, p)
}

// sorted returns the packages ordered by name and version, so results do not
// depend on map iteration order.
func (d *dedup) sorted() []inventory.Package {
	slices.SortFunc(d.pkgs, func(a, b inventory.Package) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Version, b.Version))
	})
	return d.pkgs
}

// isNodeModulesPath reports whether p lies below a node_modules directory.
func isNodeModulesPath(p string) bool {
	return strings.HasPrefix(p, "node_modules/") || strings.Contains(p, "/node_modules/")
}

// baseName is path.Base for cleaned slash paths without allocating.
func baseName(p string) string {
	return p[strings.LastIndexByte(p, '/')+1:]
}
