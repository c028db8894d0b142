package sbom

import (
	"errors"
	"fmt"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/osrelease"
)

// errUnsupportedType: a PURL type Bulwark has no advisories for (github,
// generic, oci, docker...). Such components are skipped, not errors.
var errUnsupportedType = errors.New("package URL type not matched by Bulwark")

func isOSType(t string) bool {
	return t == inventory.TypeDeb || t == inventory.TypeAPK || t == inventory.TypeRPM
}

// packageFromPURL builds a package from its Package URL alone: name,
// version, type, OSV ecosystem, architecture and (for OS packages) the
// source package the PURL's "upstream" qualifier names. The PURL is kept as
// written, so suppressions and VEX statements written against it match.
func packageFromPURL(purl string) (inventory.Package, error) {
	u, err := packageurl.FromString(purl)
	if err != nil {
		return inventory.Package{}, fmt.Errorf("invalid package URL: %w", err)
	}
	if u.Name == "" {
		return inventory.Package{}, errors.New("invalid package URL: no name")
	}
	q := u.Qualifiers.Map()
	p := inventory.Package{Type: u.Type, Version: u.Version, PURL: purl, Arch: q["arch"]}
	switch u.Type {
	case inventory.TypeNPM:
		p.Name, p.Ecosystem = joinNS(u.Namespace, u.Name, "/"), inventory.EcosystemNPM
	case inventory.TypePyPI:
		p.Name, p.Ecosystem = u.Name, inventory.EcosystemPyPI
	case inventory.TypeMaven:
		p.Name, p.Ecosystem = joinNS(u.Namespace, u.Name, ":"), inventory.EcosystemMaven
	case inventory.TypeGolang:
		p.Name, p.Ecosystem = joinNS(u.Namespace, u.Name, "/"), inventory.EcosystemGo
	case inventory.TypeCargo:
		p.Name, p.Ecosystem = u.Name, inventory.EcosystemCrates
	case inventory.TypeGem:
		p.Name, p.Ecosystem = u.Name, inventory.EcosystemRubyGems
	case inventory.TypeNuGet:
		p.Name, p.Ecosystem = u.Name, inventory.EcosystemNuGet
	case inventory.TypeComposer:
		p.Name, p.Ecosystem = joinNS(u.Namespace, u.Name, "/"), inventory.EcosystemPackagist
	case inventory.TypeDeb, inventory.TypeAPK, inventory.TypeRPM:
		p.Name = u.Name
		if u.Type == inventory.TypeRPM {
			// Bulwark keeps RPM epochs in the version, as rpm prints them;
			// the PURL carries them in a qualifier.
			if e := q["epoch"]; e != "" && strings.Trim(e, "0") != "" && !strings.Contains(p.Version, ":") {
				p.Version = e + ":" + p.Version
			}
		}
		p.SourceName, p.SourceVersion = upstream(u.Type, q["upstream"])
		p.Ecosystem = ecosystemFor(u.Type, purl, nil)
	default:
		return inventory.Package{}, fmt.Errorf("%w: %q", errUnsupportedType, u.Type)
	}
	if p.Version == "" {
		return inventory.Package{}, errors.New("package URL has no version")
	}
	return p, nil
}

func joinNS(ns, name, sep string) string {
	if ns == "" {
		return name
	}
	return ns + sep + name
}

// upstream reads the "upstream" qualifier tools write for OS packages:
// "glibc" or "glibc@2.36-9" for deb and apk, the source RPM file name
// ("openssl-3.0.7-24.el9.src.rpm") for rpm.
func upstream(typ, v string) (name, version string) {
	if v == "" {
		return "", ""
	}
	if typ == inventory.TypeRPM {
		s := strings.TrimSuffix(strings.TrimSuffix(v, ".rpm"), ".src")
		if s == v {
			// Not a file name: a plain source name.
			n, ver, _ := strings.Cut(v, "@")
			return n, ver
		}
		// name-version-release: the last two dashes.
		i := strings.LastIndexByte(s, '-')
		if i <= 0 {
			return s, ""
		}
		j := strings.LastIndexByte(s[:i], '-')
		if j <= 0 {
			return s, ""
		}
		return s[:j], s[j+1:]
	}
	n, ver, _ := strings.Cut(v, "@")
	return n, ver
}

// rpmVendors maps PURL namespaces of RPM distributions to os-release IDs.
var rpmVendors = map[string]string{
	"redhat": "rhel",
	"suse":   "sles",
	"oracle": "ol",
	"amazon": "amzn",
}

// ecosystemFor gives the OSV ecosystem of an OS package from the PURL's
// "distro" qualifier, falling back to the SBOM's OS. Distro qualifiers come
// as "debian-12", "debian-12.5", "ubuntu-22.04", "alpine-3.18.4",
// "almalinux-9.3", "rhel-9.3", a codename ("bookworm", "debian-bookworm"),
// or a bare version ("3.16.2", as Trivy writes for Alpine).
func ecosystemFor(typ, purl string, sbomOS *inventory.OS) string {
	u, err := packageurl.FromString(purl)
	if err != nil {
		return ""
	}
	id := strings.ToLower(u.Namespace)
	if v, ok := rpmVendors[id]; ok && typ == inventory.TypeRPM {
		id = v
	}
	os := &inventory.OS{ID: id}
	distro := strings.ToLower(u.Qualifiers.Map()["distro"])
	switch {
	case distro == "":
		if sbomOS == nil {
			return ""
		}
		if id != "" && !sameDistro(id, sbomOS.ID) {
			return "" // an SBOM OS of another distribution says nothing
		}
		os = sbomOS
	case startsWithDigit(distro):
		os.VersionID = distro
	default:
		did, rest, hasRest := strings.Cut(distro, "-")
		if hasRest && !startsWithDigit(rest) {
			// "debian-bookworm"
			os.ID, os.Codename = did, rest
		} else if hasRest {
			os.ID, os.VersionID = did, rest
		} else if r, ok := codenames[did]; ok {
			// "bookworm" alone
			os.ID, os.Codename, os.VersionID = r[0], did, r[1]
		} else {
			os.ID = did
		}
		if v, ok := rpmVendors[os.ID]; ok {
			os.ID = v
		}
		if os.VersionID == "" && os.Codename != "" {
			if r, ok := codenames[os.Codename]; ok && r[0] == os.ID {
				os.VersionID = r[1]
			}
		}
	}
	if os.ID == "" {
		return ""
	}
	return osrelease.Ecosystem(os)
}

func sameDistro(purlNamespace, osID string) bool {
	if purlNamespace == osID {
		return true
	}
	v, ok := rpmVendors[purlNamespace]
	return ok && v == osID
}

func startsWithDigit(s string) bool { return s != "" && s[0] >= '0' && s[0] <= '9' }

// codenames maps release codenames tools write into distro qualifiers to
// (os-release ID, VERSION_ID).
var codenames = map[string][2]string{
	"stretch":  {"debian", "9"},
	"buster":   {"debian", "10"},
	"bullseye": {"debian", "11"},
	"bookworm": {"debian", "12"},
	"trixie":   {"debian", "13"},
	"bionic":   {"ubuntu", "18.04"},
	"focal":    {"ubuntu", "20.04"},
	"jammy":    {"ubuntu", "22.04"},
	"noble":    {"ubuntu", "24.04"},
}
