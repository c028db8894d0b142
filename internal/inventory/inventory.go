// Package inventory finds what is installed in a filesystem: the operating
// system and its packages, and language packages (Go modules, npm, PyPI,
// Maven, RubyGems, crates.io, NuGet, Packagist).
//
// The core (internal/scan together with internal/image) walks a filesystem —
// the layers of an image, streamed once, or a directory — and hands each file
// an Extractor asked for to that extractor. Extractors only parse; they never
// open files themselves, so the same code serves images and directories and
// can never read outside the scanned root. The extractors are listed
// explicitly in list.go.
//
// This package must not import internal/vulndb or anything that does I/O
// outside the Input it is handed.
package inventory

import (
	"context"
	"errors"
	"io"
	"io/fs"
)

// Ecosystem names follow the OSV schema (https://ossf.github.io/osv-schema/#affectedpackage-field)
// so that a package's ecosystem can be compared with an advisory's verbatim.
const (
	EcosystemGo        = "Go"
	EcosystemNPM       = "npm"
	EcosystemPyPI      = "PyPI"
	EcosystemMaven     = "Maven"
	EcosystemRubyGems  = "RubyGems"
	EcosystemCrates    = "crates.io"
	EcosystemNuGet     = "NuGet"
	EcosystemPackagist = "Packagist"
	// OS package ecosystems carry the release, e.g. "Debian:12", "Alpine:v3.18",
	// "AlmaLinux:9"; see OS.Ecosystem.
)

// Package types say which package manager a package comes from. They are the
// PURL types (https://github.com/package-url/purl-spec).
const (
	TypeDeb      = "deb"
	TypeAPK      = "apk"
	TypeRPM      = "rpm"
	TypeGolang   = "golang"
	TypeNPM      = "npm"
	TypePyPI     = "pypi"
	TypeMaven    = "maven"
	TypeGem      = "gem"
	TypeCargo    = "cargo"
	TypeNuGet    = "nuget"
	TypeComposer = "composer"
)

// Package is one installed package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Type is the PURL type (TypeDeb, TypeNPM, ...).
	Type string `json:"type"`
	// Ecosystem is the OSV ecosystem the package is matched in. For OS
	// packages it is filled in once the OS is known ("Debian:12").
	Ecosystem string `json:"ecosystem"`
	PURL      string `json:"purl"`

	// SourceName and SourceVersion are the OS source package, when it differs
	// from the binary package (dpkg "Source:", rpm SOURCERPM, apk origin).
	// Distribution advisories are written against source packages.
	SourceName    string `json:"sourceName,omitempty"`
	SourceVersion string `json:"sourceVersion,omitempty"`
	// Arch is the package architecture where the package manager records one.
	Arch string `json:"arch,omitempty"`
	// Platform is the "os/arch" the package was compiled for, where the
	// file records it ("linux/amd64" from a Go binary's GOOS and GOARCH build
	// settings). Advisories that only apply to some platforms (go-vulndb's
	// ecosystem_specific.imports[].goos/goarch) are matched against it; an
	// empty Platform matches every platform.
	Platform string `json:"platform,omitempty"`
	// Licenses as declared by the package, when cheap to read.
	Licenses []string `json:"licenses,omitempty"`

	// Location is the file the package was found in (slash-separated, relative
	// to the scanned root, without a leading slash).
	Location string `json:"location"`
	// LocationDetail locates the package inside Location when Location is
	// an archive holding other archives: the path of the nested archive,
	// "!"-separated for each level ("WEB-INF/lib/log4j-core-2.14.1.jar",
	// "app.war!WEB-INF/lib/a.jar" inside an ear). Empty when the package is
	// described by Location itself. Location stays the outer file, so
	// whiteouts and OS ownership apply to it.
	LocationDetail string `json:"locationDetail,omitempty"`
	// Layer is the digest of the image layer that introduced Location ("" when
	// scanning a directory).
	Layer string `json:"layer,omitempty"`
	// Extractor is the name of the extractor that found the package.
	Extractor string `json:"extractor"`

	// OSPackage is set on language packages that were installed by the OS
	// package manager: it names the OS package that owns Location. Such a
	// package is matched through the OS package's advisories, not the
	// language ecosystem's, because distributions backport fixes.
	OSPackage string `json:"osPackage,omitempty"`
	// Indirect is true for dependencies not required directly (lock files, Go
	// modules with "// indirect" are not distinguishable in binaries).
	Indirect bool `json:"indirect,omitempty"`
	// Dev is true for development-only dependencies recorded in lock files.
	Dev bool `json:"dev,omitempty"`

	// Symbols are the functions compiled into the executable at Location,
	// one set shared by every package found in it; nil when unknown (not an
	// executable, or its function table could not be read). The matcher
	// uses them to tell whether an advisory's vulnerable functions are in
	// the binary (vulndb.Match.Reachability). They are not serialised: a
	// result matched again later, from JSON or an SBOM, has module-level
	// precision only.
	Symbols *Symbols `json:"-"`
}

// OS is the detected operating system of the scanned root.
type OS struct {
	// ID is os-release ID ("debian", "ubuntu", "alpine", "almalinux", "rhel"...).
	ID string `json:"id"`
	// VersionID is os-release VERSION_ID ("12", "22.04", "3.18.4", "9.3").
	VersionID string `json:"versionId"`
	// Codename is VERSION_CODENAME where present ("bookworm").
	Codename   string `json:"codename,omitempty"`
	PrettyName string `json:"prettyName,omitempty"`
	// CPEName is os-release CPE_NAME where present
	// ("cpe:/o:redhat:enterprise_linux:9::baseos"): Red Hat's OSV ecosystem
	// is derived from it.
	CPEName string `json:"cpeName,omitempty"`
	// Location is the file the OS was detected from.
	Location string `json:"location"`
}

// FileInfo describes a file offered to extractors. It is small on purpose:
// extractors decide from the path first, and from the size and mode second.
type FileInfo struct {
	Size int64
	Mode fs.FileMode
}

// Input is one file handed to an extractor.
type Input struct {
	// Path is slash-separated, cleaned, relative to the scanned root and
	// never starts with "/" or "..".
	Path string
	Info FileInfo
	// Reader streams the file's content. It is valid only during Extract.
	Reader io.Reader
	// ReaderAt gives random access to the whole file, buffering it in memory
	// when the source is a stream (an image layer). Extractors that need it
	// (ELF/zip readers) call it only after cheap checks on Reader's first
	// bytes; after calling it, do not use Reader. The buffer is bounded by
	// the scan's maximum file size; ErrTooLarge is returned beyond it.
	ReaderAt func() (io.ReaderAt, int64, error)
}

// ErrTooLarge is returned when a file exceeds a configured bound.
var ErrTooLarge = errors.New("file too large")

// Output is what an extractor found in one file.
type Output struct {
	Packages []Package
	// OS is set by the os-release extractor.
	OS *OS
	// OwnedFiles lists files (relative paths as in Input.Path) that an OS
	// package manager installed, with the owning OS package name. It lets the
	// scan mark language packages the OS installed (Package.OSPackage).
	OwnedFiles map[string]string
}

// Extractor finds packages in the files it asks for.
type Extractor interface {
	// Name is stable and unique ("os/dpkg", "language/go/binary"...).
	Name() string
	// Version changes whenever the extractor's results could change, so
	// stored results can be re-evaluated.
	Version() int
	// Required reports whether the file at path should be passed to Extract.
	// It is called for every regular file of every layer: keep it cheap.
	Required(path string, info FileInfo) bool
	// Extract parses one file. A file that is not what it looked like (a
	// "package.json" that is a test fixture, an ELF without Go build info) is
	// not an error: return an empty Output. Return an error for a file that
	// should have parsed and did not; the scan records it and goes on.
	Extract(ctx context.Context, in *Input) (Output, error)
}
