package vulndb

import (
	"errors"
	"strings"

	"github.com/google/osv-scalibr/semantic"
)

// splitEcosystem splits an OSV ecosystem into its base and release:
// "Debian:12" → ("Debian", "12"), "Alpine:v3.18" → ("Alpine", "v3.18"),
// "Ubuntu:22.04:LTS" → ("Ubuntu", "22.04:LTS"), "npm" → ("npm", "").
func splitEcosystem(eco string) (base, release string) {
	base, release, _ = strings.Cut(eco, ":")
	return base, release
}

// osFamily says how an OS ecosystem's advisories name packages.
type osFamily int

const (
	notOS osFamily = iota
	// osSource: advisories name source packages (dpkg Source:, apk origin).
	osSource
	// osBinary: advisories name binary packages (RPM distributions' OSV
	// records list every binary RPM of an update: openssl, openssl-libs...).
	osBinary
)

func familyOf(base string) osFamily {
	switch base {
	case "Debian", "Ubuntu", "Alpine", "Wolfi", "Chainguard", "MinimOS", "Alpaquita",
		"BellSoft Hardened Containers":
		return osSource
	case "AlmaLinux", "Rocky Linux", "Red Hat", "openSUSE", "SUSE", "Mageia", "openEuler":
		return osBinary
	}
	return notOS
}

// releaseKey normalises an OS release so that an inventory's "Alpine:3.18.4"
// or "Debian:12.4" meets an advisory's "Alpine:v3.18" or "Debian:12".
func releaseKey(base, release string) string {
	r := strings.ToLower(strings.TrimSpace(release))
	r = strings.TrimSuffix(r, ":lts")
	r = strings.TrimPrefix(r, "v")
	keep := 0
	switch base {
	case "Alpine", "Ubuntu", "Alpaquita":
		keep = 2
	case "Debian", "AlmaLinux", "Rocky Linux", "Red Hat":
		keep = 1
	}
	if keep > 0 && !strings.Contains(r, ":") {
		parts := strings.SplitN(r, ".", keep+1)
		if len(parts) > keep {
			parts = parts[:keep]
		}
		r = strings.Join(parts, ".")
	}
	return r
}

// normalizeName gives the name under which a package is indexed and looked
// up: PEP 503 for PyPI (case, runs of "-_." are equivalent), exact elsewhere
// (npm, Go, crates.io, Maven "group:artifact", RubyGems and OS names are
// case-sensitive in their ecosystems).
func normalizeName(base, name string) string {
	if base == "PyPI" {
		return pep503(name)
	}
	return name
}

func pep503(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	sep := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '-' || c == '_' || c == '.':
			sep = true
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		if sep && b.Len() > 0 {
			b.WriteByte('-')
		}
		sep = false
		b.WriteByte(c)
	}
	return b.String()
}

// normalizeVersion turns an installed version into the form advisories use.
// Go: OSV Go records write versions without the "v" ("0.3.8", "1.21.0");
// module versions from build info have it ("v0.3.7") and the toolchain
// writes "go1.21.0" or "go1.21rc2".
func normalizeVersion(base, name, version string) string {
	v := strings.TrimSpace(version)
	if base != "Go" {
		return v
	}
	if name == "stdlib" || name == "toolchain" {
		v = strings.TrimPrefix(v, "go")
		v = strings.TrimPrefix(v, "v")
		return goReleaseToSemver(v)
	}
	return strings.TrimPrefix(v, "v")
}

// goReleaseToSemver turns Go release names ("1.21", "1.21rc2", "1.9beta1")
// into the semver the Go vulnerability database uses ("1.21.0",
// "1.21.0-rc.2"), as golang.org/x/vuln does.
func goReleaseToSemver(v string) string {
	num := v
	pre := ""
	for _, tag := range []string{"rc", "beta", "alpha"} {
		if i := strings.Index(v, tag); i > 0 && !strings.Contains(v, "-") {
			num, pre = v[:i], tag+"."+v[i+len(tag):]
			break
		}
	}
	if strings.Count(num, ".") == 1 {
		num += ".0"
	}
	if pre != "" {
		return num + "-" + pre
	}
	return num
}

// ecosystemOfType maps a PURL type to its OSV ecosystem for language
// packages whose Ecosystem field was left empty.
func ecosystemOfType(typ string) string {
	switch typ {
	case "golang":
		return "Go"
	case "npm":
		return "npm"
	case "pypi":
		return "PyPI"
	case "maven":
		return "Maven"
	case "gem":
		return "RubyGems"
	case "cargo":
		return "crates.io"
	case "nuget":
		return "NuGet"
	case "composer":
		return "Packagist"
	}
	return ""
}

// nativePrefix is the ID prefix of the database native to an ecosystem; on
// duplicates, its record is the one reported (it usually carries the most
// precise ranges).
func nativePrefix(base string) string {
	switch base {
	case "Go":
		return "GO-"
	case "crates.io":
		return "RUSTSEC-"
	case "PyPI":
		return "PYSEC-"
	case "AlmaLinux":
		return "ALSA-"
	case "Debian":
		return "DSA-"
	case "Ubuntu":
		return "USN-"
	}
	return "GHSA-"
}

// parseVersion parses v for the ecosystem base, or as SemVer 2.0 when
// semver is set (OSV "SEMVER" ranges). A nil Version means v cannot be
// compared in this ecosystem.
func parseVersion(base, v string, semver bool) semantic.Version {
	if semver {
		return semantic.ParseSemverVersion(v)
	}
	pv, err := semantic.Parse(v, base)
	if err != nil {
		return nil
	}
	return pv
}

// compareSupported reports whether semantic knows how to compare versions
// of the ecosystem base.
func compareSupported(base string) bool {
	_, err := semantic.Parse("0", base)
	return !errors.Is(err, semantic.ErrUnsupportedEcosystem)
}
