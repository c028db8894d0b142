package osrelease

import (
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// debianReleases maps Debian codenames to release numbers, from Debian's
// distro-info-data. It is needed for testing (and unstable, which carries
// testing's os-release), whose os-release has VERSION_CODENAME but no
// VERSION_ID.
var debianReleases = map[string]string{
	"wheezy":   "7",
	"jessie":   "8",
	"stretch":  "9",
	"buster":   "10",
	"bullseye": "11",
	"bookworm": "12",
	"trixie":   "13",
	"forky":    "14",
	"duke":     "15",
}

// Ecosystem returns the OSV ecosystem the OS's packages are matched in, or
// "" when OSV has no ecosystem for the OS or the release cannot be told (an
// unknown ID, a Debian without a release number or known codename). The
// spellings follow the OSV schema's ecosystem list:
//
//   - Debian: "Debian:<major>" ("Debian:12"); testing by codename ("trixie" → "Debian:13").
//   - Ubuntu: "Ubuntu:<YY.MM>", with ":LTS" for LTS releases ("Ubuntu:22.04:LTS").
//     Ubuntu Pro ("Ubuntu:Pro:18.04:LTS") cannot be told from os-release.
//   - Alpine: "Alpine:v<major.minor>" ("3.18.4" → "Alpine:v3.18").
//   - AlmaLinux, Rocky Linux: "<name>:<major>" ("AlmaLinux:9", "Rocky Linux:9").
//   - RHEL: "Red Hat:" + CPE_NAME without "cpe:/o:redhat:"
//     ("Red Hat:enterprise_linux:9::baseos"). Red Hat scopes advisories per
//     repository (baseos, appstream...) and a package does not say which one it
//     came from, so a matcher should compare Red Hat ecosystems up to the
//     release ("Red Hat:enterprise_linux:9").
//   - SUSE: "SUSE:" + PRETTY_NAME without "SUSE " ("SUSE:Linux Enterprise Server 15 SP5");
//     openSUSE Leap: "openSUSE:Leap <VERSION_ID>".
//   - Mageia, Photon OS: "<name>:<VERSION_ID>"; Wolfi, Chainguard: unversioned.
func Ecosystem(os *inventory.OS) string {
	if os == nil {
		return ""
	}
	major := majorOf(os.VersionID)
	switch os.ID {
	case "debian":
		if major == "" {
			major = debianReleases[os.Codename]
		}
		if major == "" {
			return ""
		}
		return "Debian:" + major
	case "ubuntu":
		yy, mm, ok := strings.Cut(os.VersionID, ".")
		if !ok || !digits(yy) || len(mm) < 2 || !digits(mm[:2]) {
			return ""
		}
		release := yy + "." + mm[:2]
		if ubuntuLTS(yy, mm[:2]) {
			return "Ubuntu:" + release + ":LTS"
		}
		return "Ubuntu:" + release
	case "alpine":
		v, _, _ := strings.Cut(os.VersionID, "_") // "3.19_alpha20230901" on edge
		parts := strings.SplitN(v, ".", 3)
		if len(parts) < 2 || !digits(parts[0]) || !digits(parts[1]) {
			return ""
		}
		return "Alpine:v" + parts[0] + "." + parts[1]
	case "almalinux":
		return withMajor("AlmaLinux", major)
	case "rocky":
		return withMajor("Rocky Linux", major)
	case "rhel":
		for _, p := range []string{"cpe:/o:redhat:", "cpe:/a:redhat:"} {
			if s, ok := strings.CutPrefix(os.CPEName, p); ok && s != "" {
				return "Red Hat:" + s
			}
		}
		// Release files older than os-release carry no CPE; RHEL's base
		// repository is the one every image has.
		return withMajor("Red Hat:enterprise_linux", major+"::baseos")
	case "sles", "sled", "sle-micro":
		name, ok := strings.CutPrefix(os.PrettyName, "SUSE ")
		if !ok || name == "" {
			return ""
		}
		return "SUSE:" + name
	case "opensuse-leap":
		if os.VersionID == "" {
			return ""
		}
		return "openSUSE:Leap " + os.VersionID
	case "mageia":
		return withMajor("Mageia", os.VersionID)
	case "photon":
		return withMajor("Photon OS", os.VersionID)
	case "wolfi":
		return "Wolfi"
	case "chainguard":
		return "Chainguard"
	}
	return ""
}

// ubuntuLTS reports whether YY.MM is an LTS release: every April release of
// an even year since 8.04 (6.06 was the first, and the only one not in April).
func ubuntuLTS(yy, mm string) bool {
	if yy == "6" && mm == "06" {
		return true
	}
	if mm != "04" {
		return false
	}
	n := 0
	for _, c := range yy {
		n = n*10 + int(c-'0')
	}
	return n >= 8 && n%2 == 0
}

func withMajor(name, v string) string {
	if v == "" || v[0] == ':' {
		return ""
	}
	return name + ":" + v
}

// majorOf returns the leading number of a version ("9.3" → "9"), or "".
func majorOf(v string) string {
	i := 0
	for i < len(v) && isDigit(v[i]) {
		i++
	}
	return v[:i]
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// PURLDistro returns the PURL "distro" qualifier for an OS: ID-VERSION_ID
// ("debian-12", "alpine-3.18.4", "almalinux-9.3"), ID-codename when there is
// no VERSION_ID ("debian-trixie"), "" for no OS.
func PURLDistro(os *inventory.OS) string {
	switch {
	case os == nil || os.ID == "":
		return ""
	case os.VersionID != "":
		return os.ID + "-" + os.VersionID
	case os.Codename != "":
		return os.ID + "-" + os.Codename
	}
	return os.ID
}

// rpmNamespaces maps os-release IDs to the PURL namespaces (vendors) of RPM
// distributions where they differ.
var rpmNamespaces = map[string]string{
	"rhel":                "redhat",
	"sles":                "suse",
	"sled":                "suse",
	"sle-micro":           "suse",
	"opensuse-leap":       "opensuse",
	"opensuse-tumbleweed": "opensuse",
	"ol":                  "oracle",
	"amzn":                "amazon",
}

// namespace returns the PURL namespace of an OS package: the distribution
// that built it. Before the OS is known it is the usual distribution for
// the package type (deb: debian, apk: alpine; rpm: none).
func namespace(typ string, os *inventory.OS) string {
	if os != nil && os.ID != "" && os.ID != "linux" {
		if typ == inventory.TypeRPM {
			if ns, ok := rpmNamespaces[os.ID]; ok {
				return ns
			}
		}
		return os.ID
	}
	switch typ {
	case inventory.TypeDeb:
		return "debian"
	case inventory.TypeAPK:
		return "alpine"
	}
	return ""
}

// PURL returns the package URL of an OS package (p.Type deb, apk or rpm)
// from its fields: pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12.
// os may be nil before the OS is known; the distro qualifier is then left
// out. RPM epochs go into the "epoch" qualifier and out of the version, as
// the PURL specification says; Debian epochs stay in the version.
func PURL(p *inventory.Package, os *inventory.OS) string {
	q := map[string]string{}
	if p.Arch != "" {
		q["arch"] = p.Arch
	}
	if d := PURLDistro(os); d != "" {
		q["distro"] = d
	}
	version := p.Version
	if p.Type == inventory.TypeRPM {
		if e, rest, ok := strings.Cut(version, ":"); ok && digits(e) {
			version = rest
			if strings.Trim(e, "0") != "" {
				q["epoch"] = e
			}
		}
	}
	u := packageurl.NewPackageURL(p.Type, namespace(p.Type, os), p.Name, version, packageurl.QualifiersFromMap(q), "")
	return u.ToString()
}

// FinalizePURL rewrites the PURL of an OS package once the scan knows the
// OS: the namespace becomes the distribution and the distro qualifier is
// added. Other packages are left alone.
func FinalizePURL(p *inventory.Package, os *inventory.OS) {
	switch p.Type {
	case inventory.TypeDeb, inventory.TypeAPK, inventory.TypeRPM:
		p.PURL = PURL(p, os)
	}
}
