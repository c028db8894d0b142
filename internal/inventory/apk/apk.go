package apk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/osrelease"
)

// Name is the extractor's stable name.
const Name = "os/apk"

// Paths of apk's installed database, relative to the scanned root.
const (
	PathInstalled    = "lib/apk/db/installed"
	PathUsrInstalled = "usr/lib/apk/db/installed"
)

// MaxLineLength bounds one line of the database. Real lines (a long
// dependency list) are well under 4 KiB; a longer line is skipped and
// reported, so a hostile file cannot make the parser buffer without bound.
const MaxLineLength = 64 << 10

// Extractor reads apk's installed database. The zero value is not usable;
// call New.
type Extractor struct{}

// New returns the apk extractor.
func New() *Extractor { return &Extractor{} }

// Name implements inventory.Extractor.
func (*Extractor) Name() string { return Name }

// Version implements inventory.Extractor.
func (*Extractor) Version() int { return 1 }

// Required accepts the installed database by exact path.
func (*Extractor) Required(path string, _ inventory.FileInfo) bool {
	return path == PathInstalled || path == PathUsrInstalled
}

// record is one package paragraph being read.
type record struct {
	line                                 int
	name, version, arch, origin, license string
	files                                []string
	fields                               int
}

// Extract implements inventory.Extractor. Packages that parsed are returned
// together with an error listing what did not (a paragraph without P or V,
// an overlong line), so a damaged database is reported, not silently
// shortened.
func (*Extractor) Extract(ctx context.Context, in *inventory.Input) (inventory.Output, error) {
	if err := ctx.Err(); err != nil {
		return inventory.Output{}, err
	}
	lr := inventory.NewLineReader(in.Reader, MaxLineLength)
	var (
		out    inventory.Output
		owned  = map[string]string{}
		cur    record
		dir    string
		badDir bool // the last F line was refused: skip its R lines
		prob   inventory.Problems
	)
	flush := func() {
		if cur.fields > 0 {
			switch {
			case cur.name == "":
				prob.Add("paragraph at line %d: no P (name) field", cur.line)
			case cur.version == "":
				prob.Add("package %s (line %d): no V (version) field", cur.name, cur.line)
			default:
				out.Packages = append(out.Packages, cur.pkg(in.Path))
				for _, f := range cur.files {
					owned[f] = cur.name
				}
			}
		}
		cur, dir, badDir = record{}, "", false
	}
	for {
		line, err := lr.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return out, fmt.Errorf("read %s: %w", in.Path, err)
			}
			break
		}
		n := lr.Line()
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return inventory.Output{}, err
			}
		}
		// apk writes "\n"; a damaged file may end lines in several "\r".
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			flush()
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			prob.Add("line %d: not a field", n)
			continue
		}
		if cur.fields == 0 {
			cur.line = n
		}
		cur.fields++
		// Only the fields used are turned into strings: most lines are
		// checksums (Z:) and modes (a:).
		val := line[2:]
		switch line[0] {
		case 'P':
			cur.name = string(val)
		case 'V':
			cur.version = string(val)
		case 'A':
			cur.arch = string(val)
		case 'o':
			cur.origin = string(val)
		case 'L':
			cur.license = string(val)
		case 'F':
			v := string(val)
			if d, ok := inventory.CleanPath(v); ok {
				dir, badDir = d, false
			} else {
				dir, badDir = "", true
				prob.Add("line %d: bad directory %q", n, v)
			}
		case 'R':
			// A file name, in the directory of the last F line (or the
			// root). It must be one path element.
			if badDir {
				continue
			}
			v := string(val)
			if v == "" || v == "." || v == ".." || strings.ContainsAny(v, "/\x00") {
				prob.Add("line %d: bad file name %q", n, v)
				continue
			}
			f := v
			if dir != "" {
				f = dir + "/" + v
			}
			if p, ok := inventory.CleanPath(f); ok {
				cur.files = append(cur.files, p)
			}
		}
	}
	flush()
	if len(owned) > 0 {
		out.OwnedFiles = owned
	}
	if n, _ := lr.Overlong(); n > 0 {
		prob.Add("%d line(s) over %d bytes skipped", n, MaxLineLength)
	}
	return out, prob.Err(in.Path)
}

// pkg turns a record into a package. The origin is the source package;
// apk builds every subpackage of an aport at the aport's version, so the
// source version is the package's.
func (r *record) pkg(location string) inventory.Package {
	p := inventory.Package{
		Name:          r.name,
		Version:       r.version,
		Type:          inventory.TypeAPK,
		Arch:          r.arch,
		SourceName:    r.origin,
		SourceVersion: r.version,
		Location:      location,
		Extractor:     Name,
	}
	if p.SourceName == "" {
		p.SourceName = r.name
	}
	if r.license != "" {
		p.Licenses = []string{r.license}
	}
	p.PURL = osrelease.PURL(&p, nil)
	return p
}
