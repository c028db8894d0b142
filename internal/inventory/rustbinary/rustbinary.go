package rustbinary

import (
	"bytes"
	"compress/zlib"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/package-url/packageurl-go"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// Name is the extractor's stable name.
const Name = "language/rust/cargo-auditable"

// MaxFileSize bounds the executables handed to the extractor; the file is
// buffered in memory to read its section table.
const MaxFileSize = 512 << 20

// MaxDepInfoSize bounds both the compressed section and the JSON it
// inflates to. Real dependency lists are a few kilobytes (about 100 bytes a
// crate); the bound stops zlib bombs.
const MaxDepInfoSize = 8 << 20

const minFileSize = 64

// sectionName is where cargo-auditable puts the data in ELF files. (Its
// 2020 prototype, rust-audit, used ".rust-deps-v0"; no known images carry
// it, so it is not read.)
const sectionName = ".dep-v0"

// Extractor reads cargo-auditable dependency lists. Call New.
type Extractor struct{}

// New returns the cargo-auditable extractor.
func New() *Extractor { return &Extractor{} }

// Name implements inventory.Extractor.
func (*Extractor) Name() string { return Name }

// Version implements inventory.Extractor.
func (*Extractor) Version() int { return 1 }

// Required accepts regular executable files of plausible size outside
// directories that hold only documentation or maintainer scripts.
func (*Extractor) Required(path string, info inventory.FileInfo) bool {
	return info.Size >= minFileSize && info.Size <= MaxFileSize && inventory.MaybeExecutable(path, info)
}

// versionInfo is cargo-auditable's VersionInfo (auditable-serde).
type versionInfo struct {
	Packages []crate `json:"packages"`
	// Format 0 and 1 come from `cargo metadata`, 8 from Cargo's SBOM
	// precursor; all share this shape.
	Format int `json:"format"`
}

type crate struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Source is "crates.io", "registry", "git", "local" or another word.
	Source string `json:"source"`
	// Kind is "runtime" (the default when absent) or "build": build scripts
	// and proc-macros, which run while compiling and are not linked in.
	Kind string `json:"kind"`
	// Dependencies index Packages.
	Dependencies []int `json:"dependencies"`
	Root         bool  `json:"root"`
}

// ErrMalformed is returned for a dependency section that does not decode.
var ErrMalformed = errors.New("malformed cargo-auditable data")

// Extract implements inventory.Extractor. An executable without the
// section yields an empty Output; a section that does not decode is an
// error.
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
	if string(magic[:]) != elf.ELFMAG {
		return inventory.Output{}, nil
	}
	ra, _, err := in.ReaderAt()
	if err != nil {
		return inventory.Output{}, fmt.Errorf("read %s: %w", in.Path, err)
	}
	f, err := elf.NewFile(ra)
	if err != nil {
		// Damaged or exotic ELF files are common in images (firmware,
		// test data) and cannot be Rust programs we could read.
		return inventory.Output{}, nil
	}
	sec := f.Section(sectionName)
	if sec == nil {
		return inventory.Output{}, nil
	}
	info, err := readSection(sec)
	if err != nil {
		return inventory.Output{}, fmt.Errorf("read %s section of %s: %w", sectionName, in.Path, err)
	}
	return inventory.Output{Packages: packages(info, in.Path)}, nil
}

func readSection(sec *elf.Section) (*versionInfo, error) {
	if sec.Type == elf.SHT_NOBITS {
		return nil, fmt.Errorf("%w: section holds no data", ErrMalformed)
	}
	if sec.Size > MaxDepInfoSize {
		return nil, fmt.Errorf("section of %d bytes: %w", sec.Size, inventory.ErrTooLarge)
	}
	compressed, err := io.ReadAll(io.LimitReader(sec.Open(), MaxDepInfoSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return decode(compressed)
}

// decode inflates and parses the section content.
func decode(compressed []byte) (*versionInfo, error) {
	zr, err := zlib.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	defer zr.Close()
	js, err := io.ReadAll(io.LimitReader(zr, MaxDepInfoSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: inflate: %w", ErrMalformed, err)
	}
	if len(js) > MaxDepInfoSize {
		return nil, fmt.Errorf("dependency list inflates beyond %d bytes: %w", MaxDepInfoSize, inventory.ErrTooLarge)
	}
	var info versionInfo
	if err := json.Unmarshal(js, &info); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	for i, c := range info.Packages {
		if c.Name == "" || c.Version == "" {
			return nil, fmt.Errorf("%w: package %d has no name or version", ErrMalformed, i)
		}
	}
	return &info, nil
}

// packages turns the dependency list into packages. Packages the root does
// not depend on directly are Indirect; build-time crates are marked Dev,
// because they ran while compiling but are not part of the executable.
func packages(info *versionInfo, location string) []inventory.Package {
	direct := make([]bool, len(info.Packages))
	haveRoot := false
	for _, c := range info.Packages {
		if !c.Root {
			continue
		}
		haveRoot = true
		for _, d := range c.Dependencies {
			if d >= 0 && d < len(direct) {
				direct[d] = true
			}
		}
	}
	pkgs := make([]inventory.Package, 0, len(info.Packages))
	for i, c := range info.Packages {
		p := inventory.Package{
			Name:      c.Name,
			Version:   c.Version,
			Type:      inventory.TypeCargo,
			Location:  location,
			Extractor: Name,
			Indirect:  haveRoot && !c.Root && !direct[i],
			Dev:       c.Kind == "build",
		}
		if c.Source == "crates.io" {
			p.Ecosystem = inventory.EcosystemCrates
			p.PURL = packageurl.NewPackageURL(packageurl.TypeCargo, "", c.Name, c.Version, nil, "").ToString()
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}
