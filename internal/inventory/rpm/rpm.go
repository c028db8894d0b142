package rpm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/osrelease"
)

// Name is the extractor's stable name.
const Name = "os/rpm"

// Directories rpm keeps its database in, relative to the scanned root.
const (
	DirVarLib    = "var/lib/rpm/"
	DirSysimage  = "usr/lib/sysimage/rpm/"
	FileBDB      = "Packages"
	FileNDB      = "Packages.db"
	FileSQLite   = "rpmdb.sqlite"
	gpgPubkey    = "gpg-pubkey"
	modeTypeMask = 0o170000
	modeDir      = 0o040000
)

// Extractor reads rpm databases. The zero value is not usable; call New.
type Extractor struct{}

// New returns the rpm extractor.
func New() *Extractor { return &Extractor{} }

// Name implements inventory.Extractor.
func (*Extractor) Name() string { return Name }

// Version implements inventory.Extractor.
func (*Extractor) Version() int { return 1 }

// Required accepts the three database files in either directory.
func (*Extractor) Required(path string, _ inventory.FileInfo) bool {
	var file string
	switch {
	case strings.HasPrefix(path, DirVarLib):
		file = path[len(DirVarLib):]
	case strings.HasPrefix(path, DirSysimage):
		file = path[len(DirSysimage):]
	default:
		return false
	}
	return file == FileBDB || file == FileNDB || file == FileSQLite
}

// Extract implements inventory.Extractor. The database format is told from
// the file's first bytes, not its name. Packages whose headers decoded are
// returned together with an error listing the ones that did not; a
// database whose structure is damaged returns what was read before the
// damage and the error.
func (*Extractor) Extract(ctx context.Context, in *inventory.Input) (out inventory.Output, err error) {
	if err := ctx.Err(); err != nil {
		return inventory.Output{}, err
	}
	// Sniff the format on the stream first: an empty or foreign file is
	// not worth buffering.
	head := make([]byte, 512)
	n, err := io.ReadFull(in.Reader, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return inventory.Output{}, fmt.Errorf("read %s: %w", in.Path, err)
	}
	head = head[:n]
	var read func(context.Context, io.ReaderAt, int64, func([]byte) error) error
	switch {
	case isSQLite(head):
		read = readSQLite
	case isNDB(head):
		read = readNDB
	case isBDB(head):
		read = readBDB
	default:
		if n == 0 {
			return inventory.Output{}, nil // rpm leaves empty files behind
		}
		return inventory.Output{}, fmt.Errorf("read %s: not an rpm database (unknown format)", in.Path)
	}
	ra, size, err := in.ReaderAt()
	if err != nil {
		return inventory.Output{}, fmt.Errorf("read %s: %w", in.Path, err)
	}

	var (
		owned  = map[string]string{}
		prob   inventory.Problems
		blobNo int
	)
	rerr := read(ctx, ra, size, func(blob []byte) error {
		blobNo++
		h, err := parseHeader(blob)
		if err != nil {
			prob.Add("package %d: %v", blobNo, err)
			return nil
		}
		if h.name == gpgPubkey {
			return nil // an imported signing key, not a package
		}
		if h.name == "" || h.version == "" {
			prob.Add("package %d: no name or version", blobNo)
			return nil
		}
		out.Packages = append(out.Packages, h.pkg(in.Path))
		for i, f := range h.files {
			if h.modes != nil && h.modes[i]&modeTypeMask == modeDir {
				continue // directories are shared between packages
			}
			if p, ok := inventory.CleanPath(f); ok {
				owned[p] = h.name
			}
		}
		return nil
	})
	if len(owned) > 0 {
		out.OwnedFiles = owned
	}
	if rerr != nil {
		if ctx.Err() != nil {
			return inventory.Output{}, rerr
		}
		prob.Add("%v", rerr)
	}
	return out, prob.Err(in.Path)
}

// pkg turns a decoded header into a package.
func (h *header) pkg(location string) inventory.Package {
	p := inventory.Package{
		Name:      h.name,
		Version:   h.evr(),
		Type:      inventory.TypeRPM,
		Arch:      h.arch,
		Location:  location,
		Extractor: Name,
	}
	if name, vr, ok := parseSourceRPM(h.sourceRPM); ok {
		// All subpackages of a spec share its epoch, so the source
		// package's epoch is the binary's.
		p.SourceName, p.SourceVersion = name, vr
		if epoch, _, ok := strings.Cut(p.Version, ":"); ok {
			p.SourceVersion = epoch + ":" + vr
		}
	}
	if h.license != "" {
		p.Licenses = []string{h.license}
	}
	p.PURL = osrelease.PURL(&p, nil)
	return p
}
