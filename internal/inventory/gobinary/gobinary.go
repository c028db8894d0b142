package gobinary

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// Name is the extractor's stable name.
const Name = "language/go/binary"

// MaxFileSize bounds the executables handed to the extractor. Build info is
// read through Input.ReaderAt, which buffers image files in memory; real Go
// binaries larger than this are vanishingly rare.
const MaxFileSize = 512 << 20

// minFileSize is below the size of any executable header, so smaller files
// cannot be binaries.
const minFileSize = 64

// Module paths go-vulndb uses for the Go distribution itself.
const (
	// StdlibName is the pseudo-module of the Go standard library. Every Go
	// binary links it, at the version of the toolchain that built it.
	StdlibName = "stdlib"
	// ToolchainName is the pseudo-module of the go command and the
	// compiler tools (cmd/go, cmd/cgo, cmd/link...), used by go-vulndb for
	// vulnerabilities that affect building code rather than running it.
	ToolchainName = "toolchain"
)

// Extractor reads Go build info from executables. The zero value is not
// usable; call New.
type Extractor struct{}

// New returns the Go binary extractor.
func New() *Extractor { return &Extractor{} }

// Name implements inventory.Extractor.
func (*Extractor) Name() string { return Name }

// Version implements inventory.Extractor.
//
// 2: packages carry the binary's Platform and Symbols.
func (*Extractor) Version() int { return 2 }

// Required accepts regular executable files of plausible size outside
// directories that only hold documentation or maintainer scripts. Any
// executable may be a Go binary whatever its name, so the path is only used
// to exclude.
func (*Extractor) Required(path string, info inventory.FileInfo) bool {
	return info.Size >= minFileSize && info.Size <= MaxFileSize && inventory.MaybeExecutable(path, info)
}

// Extract implements inventory.Extractor. A file that is not a Go
// executable yields an empty Output; a Go executable whose build info is
// corrupt yields an error.
func (*Extractor) Extract(ctx context.Context, in *inventory.Input) (inventory.Output, error) {
	if err := ctx.Err(); err != nil {
		return inventory.Output{}, err
	}
	var magic [4]byte
	if _, err := io.ReadFull(in.Reader, magic[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return inventory.Output{}, nil
		}
		return inventory.Output{}, fmt.Errorf("read header of %s: %w", in.Path, err)
	}
	if !executableMagic(magic) {
		return inventory.Output{}, nil
	}
	ra, _, err := in.ReaderAt()
	if err != nil {
		return inventory.Output{}, fmt.Errorf("read %s: %w", in.Path, err)
	}
	bi, err := buildinfo.Read(ra)
	if err != nil {
		if notGo(err) {
			return inventory.Output{}, nil
		}
		return inventory.Output{}, fmt.Errorf("read Go build info of %s: %w", in.Path, err)
	}
	pkgs := packages(bi, in.Path)
	if len(pkgs) > 0 {
		// One set for every package of the binary: the matcher asks it
		// about the packages each advisory names.
		syms := readSymbols(ra, bi)
		for i := range pkgs {
			pkgs[i].Symbols = syms
		}
	}
	return inventory.Output{Packages: pkgs}, nil
}

// executableMagic reports the first bytes of the formats debug/buildinfo
// reads: ELF, PE, Mach-O (thin and fat) and XCOFF. Checking them on the
// stream first spares buffering every executable script.
func executableMagic(m [4]byte) bool {
	s := string(m[:])
	switch {
	case s == "\x7fELF",
		s[:2] == "MZ",
		s[:3] == "\xfe\xed\xfa", s[1:] == "\xfa\xed\xfe",
		s == "\xca\xfe\xba\xbe", s == "\xca\xfe\xba\xbf",
		s[:2] == "\x01\xdf", s[:2] == "\x01\xf7":
		return true
	}
	return false
}

// notGo reports the two errors debug/buildinfo returns for files that are
// not Go executables (or not executables it can parse). They are not
// exported; their text is stable because other modules link to
// errNotGoExe by name (see debug/buildinfo).
func notGo(err error) bool {
	switch err.Error() {
	case "not a Go executable", "unrecognized file format":
		return true
	}
	return false
}

// packages turns build info into packages found at location: the main
// module when it carries a real version, every dependency (the replacement
// when one is set), the standard library, and the toolchain when the binary
// is the go command itself. Each carries the binary's platform.
//
// Dependencies replaced by a local directory ("=> ../fork") are left out:
// they have no version, and their code is whatever the directory held, so no
// advisory can be matched against them. The main module of a plain
// `go build` has version "(devel)" and is left out for the same reason.
func packages(bi *debug.BuildInfo, location string) []inventory.Package {
	var pkgs []inventory.Package
	pl := platform(bi)
	if bi.Main.Path != "" && realVersion(bi.Main.Version) {
		pkgs = append(pkgs, module(bi.Main.Path, bi.Main.Version, location, pl))
	}
	for _, dep := range bi.Deps {
		m := dep
		if dep.Replace != nil {
			m = dep.Replace
		}
		if m.Path == "" || !realVersion(m.Version) {
			continue
		}
		pkgs = append(pkgs, module(m.Path, m.Version, location, pl))
	}
	if v, ok := stdlibVersion(bi.GoVersion); ok {
		pkgs = append(pkgs, module(StdlibName, "v"+v, location, pl))
		// go-vulndb files vulnerabilities of the go command under
		// "toolchain". Only the go command itself carries them: the other
		// tools (cmd/compile, cmd/link...) run under it, so reporting each
		// would repeat the same findings.
		if bi.Path == "cmd/go" {
			pkgs = append(pkgs, module(ToolchainName, "v"+v, location, pl))
		}
	}
	return pkgs
}

// platform is "GOOS/GOARCH" from the build settings the go command
// records (Go 1.18 and later), the same settings govulncheck reads to skip
// advisories for other platforms; "" when either is missing.
func platform(bi *debug.BuildInfo) string {
	var goos, goarch string
	for _, s := range bi.Settings {
		switch s.Key {
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	if goos == "" || goarch == "" || strings.Contains(goos, "/") || strings.Contains(goarch, "/") {
		return ""
	}
	return goos + "/" + goarch
}

func realVersion(v string) bool {
	return v != "" && v != "(devel)"
}

// module builds the package for a module path and a Go module version
// ("v1.2.3") of a binary built for platform. The version is stored without
// "v", as OSV records write it.
func module(path, version, location, platform string) inventory.Package {
	ns, name := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		ns, name = path[:i], path[i+1:]
	}
	return inventory.Package{
		Name:      path,
		Version:   strings.TrimPrefix(version, "v"),
		Type:      inventory.TypeGolang,
		Ecosystem: inventory.EcosystemGo,
		PURL:      packageurl.NewPackageURL(packageurl.TypeGolang, ns, name, version, nil, "").ToString(),
		Platform:  platform,
		Location:  location,
		Extractor: Name,
	}
}

// stdlibVersion turns a Go release tag, as runtime.Version() and build info
// write it, into the semantic version go-vulndb uses for the "stdlib" and
// "toolchain" modules, without the "v": "go1.21.3" → "1.21.3", "go1.21" →
// "1.21.0", "go1.22rc1" → "1.22.0-rc.1", "go1.9beta2" → "1.9.0-beta.2".
// It follows govulncheck (golang.org/x/vuln/internal/semver.GoTagToSemver)
// so that Bulwark and govulncheck agree on the same binary.
//
// Words after the tag ("go1.21.0 X:boringcrypto") are ignored. A vendor
// suffix after a complete release ("go1.22.5-bigcorp") is dropped too: such
// toolchains are built from that upstream release, and hiding their
// standard library would hide its vulnerabilities. Development builds
// ("devel go1.23-abc123 ...") have no release and return false.
func stdlibVersion(goVersion string) (string, bool) {
	tag, _, _ := strings.Cut(strings.TrimSpace(goVersion), " ")
	rest, ok := strings.CutPrefix(tag, "go")
	if !ok {
		return "", false
	}
	if rest == "1" {
		return "1.0.0", true
	}
	var nums [3]string
	for i := range nums {
		n := leadingDigits(rest)
		if n == "" {
			return "", false
		}
		nums[i], rest = n, rest[len(n):]
		if i == 2 || !strings.HasPrefix(rest, ".") {
			break
		}
		rest = rest[1:]
	}
	if nums[1] == "" {
		return "", false
	}
	if nums[2] == "" {
		nums[2] = "0"
	}
	v := nums[0] + "." + nums[1] + "." + nums[2]
	for _, pre := range [...]string{"rc", "beta", "-pre"} {
		after, ok := strings.CutPrefix(rest, pre)
		if !ok {
			continue
		}
		n := leadingDigits(after)
		if n == "" {
			return "", false
		}
		v += "-" + strings.TrimPrefix(pre, "-") + "." + n
		rest = after[len(n):]
		break
	}
	if rest != "" && rest[0] != '-' && rest[0] != '+' {
		return "", false
	}
	return v, true
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}
