package dpkg

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
const Name = "os/dpkg"

// Paths the extractor reads, relative to the scanned root.
const (
	PathStatus = "var/lib/dpkg/status"
	DirStatusD = "var/lib/dpkg/status.d/"
	DirInfo    = "var/lib/dpkg/info/"
)

// MaxLineLength bounds one line of a status or list file. The longest real
// lines (Depends of meta-packages, Description) are a few KiB; a longer line
// is skipped and reported, so a hostile file cannot make the parser buffer
// without bound.
const MaxLineLength = 64 << 10

// Extractor reads dpkg's database. The zero value is not usable; call New.
type Extractor struct{}

// New returns the dpkg extractor.
func New() *Extractor { return &Extractor{} }

// Name implements inventory.Extractor.
func (*Extractor) Name() string { return Name }

// Version implements inventory.Extractor.
func (*Extractor) Version() int { return 1 }

// Required accepts the status file, the files directly in status.d/ and the
// *.list files directly in info/.
func (*Extractor) Required(path string, _ inventory.FileInfo) bool {
	if path == PathStatus {
		return true
	}
	if rest, ok := strings.CutPrefix(path, DirStatusD); ok {
		return rest != "" && rest[0] != '.' && !strings.Contains(rest, "/")
	}
	if rest, ok := strings.CutPrefix(path, DirInfo); ok {
		return len(rest) > len(".list") && strings.HasSuffix(rest, ".list") && !strings.Contains(rest, "/")
	}
	return false
}

// Extract implements inventory.Extractor. Packages that parsed are returned
// together with an error that lists what did not (a stanza without a
// version, an overlong line), so a damaged database is reported, not
// silently shortened.
func (*Extractor) Extract(ctx context.Context, in *inventory.Input) (inventory.Output, error) {
	if err := ctx.Err(); err != nil {
		return inventory.Output{}, err
	}
	switch {
	case in.Path == PathStatus:
		return parseStatus(ctx, in, true)
	case strings.HasPrefix(in.Path, DirInfo):
		name := strings.TrimSuffix(in.Path[len(DirInfo):], ".list")
		return parseList(ctx, in, packageName(name))
	case strings.HasSuffix(in.Path, ".md5sums"):
		name := strings.TrimSuffix(in.Path[len(DirStatusD):], ".md5sums")
		return parseMD5Sums(ctx, in, packageName(name))
	default:
		return parseStatus(ctx, in, false)
	}
}

// packageName strips the ":arch" dpkg appends to the info file names of
// Multi-Arch: same packages ("libssl3:amd64.list").
func packageName(s string) string {
	name, _, _ := strings.Cut(s, ":")
	return name
}

// problemsErr reports prob, and the lines lr skipped for their length.
func problemsErr(prob *inventory.Problems, path string, lr *inventory.LineReader) error {
	if n, first := lr.Overlong(); n > 0 {
		prob.Add("%d line(s) over %d bytes skipped, first at line %d", n, MaxLineLength, first)
	}
	return prob.Err(path)
}

// stanza holds the fields of one deb822 paragraph the extractor uses.
type stanza struct {
	line                               int // first line
	fields                             int
	pkg, version, arch, source, status string
	hasStatus                          bool
}

// parseStatus reads deb822 stanzas. requireStatus is false for status.d
// files, whose stanzas carry no Status field (distroless writes only
// installed packages there).
func parseStatus(ctx context.Context, in *inventory.Input, requireStatus bool) (inventory.Output, error) {
	lr := inventory.NewLineReader(in.Reader, MaxLineLength)
	var (
		out  inventory.Output
		prob inventory.Problems
		cur  stanza
		// inField is set when the previous line was a field, for
		// continuation lines.
		inField bool
	)
	flush := func() {
		if cur.fields > 0 {
			if p, ok := cur.pkgInfo(in.Path, requireStatus, &prob); ok {
				out.Packages = append(out.Packages, p)
			}
		}
		cur, inField = stanza{}, false
	}
	for {
		line, err := lr.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return out, fmt.Errorf("read %s: %w", in.Path, err)
			}
			break
		}
		if lr.Line()%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return inventory.Output{}, err
			}
		}
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			// Continuation of a multi-line field (Description,
			// Conffiles...). None of the fields used here spans lines.
			if !inField {
				prob.Add("line %d: continuation line outside a field", lr.Line())
			}
			continue
		}
		if line[0] == '#' {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(k) == 0 || bytes.ContainsAny(k, " \t") {
			prob.Add("line %d: not a field", lr.Line())
			inField = false
			continue
		}
		if cur.fields == 0 {
			cur.line = lr.Line()
		}
		cur.fields++
		inField = true
		// Field names are case-insensitive (deb822); dpkg writes them
		// capitalised, so the exact compare almost always decides.
		switch {
		case fieldIs(k, "Package"):
			cur.pkg = string(bytes.TrimSpace(v))
		case fieldIs(k, "Version"):
			cur.version = string(bytes.TrimSpace(v))
		case fieldIs(k, "Architecture"):
			cur.arch = string(bytes.TrimSpace(v))
		case fieldIs(k, "Source"):
			cur.source = string(bytes.TrimSpace(v))
		case fieldIs(k, "Status"):
			cur.status, cur.hasStatus = string(bytes.TrimSpace(v)), true
		}
	}
	flush()
	return out, problemsErr(&prob, in.Path, lr)
}

func fieldIs(k []byte, name string) bool {
	return len(k) == len(name) && (string(k) == name || bytes.EqualFold(k, []byte(name)))
}

// installed reports whether a Status value ("want flag status") says the
// package's files are on disk and configured. The want flag does not
// matter: "hold ok installed" and "deinstall ok installed" (selected for
// removal, not yet removed) are as installed as "install ok installed". A
// package waiting only for triggers is configured too.
func installed(status string) bool {
	f := strings.Fields(status)
	if len(f) != 3 {
		return false
	}
	switch f[2] {
	case "installed", "triggers-awaited", "triggers-pending":
		return true
	}
	return false
}

// pkgInfo turns a stanza into a package; ok is false for stanzas that are
// not installed packages.
func (s *stanza) pkgInfo(path string, requireStatus bool, prob *inventory.Problems) (inventory.Package, bool) {
	if s.pkg == "" {
		prob.Add("stanza at line %d: no Package field", s.line)
		return inventory.Package{}, false
	}
	if (requireStatus || s.hasStatus) && !installed(s.status) {
		return inventory.Package{}, false
	}
	if s.version == "" {
		prob.Add("package %s (line %d): no Version field", s.pkg, s.line)
		return inventory.Package{}, false
	}
	p := inventory.Package{
		Name:          s.pkg,
		Version:       s.version,
		Type:          inventory.TypeDeb,
		Arch:          s.arch,
		SourceName:    s.pkg,
		SourceVersion: s.version,
		Location:      path,
		Extractor:     Name,
	}
	if s.source != "" {
		name, rest, hasVersion := strings.Cut(s.source, " ")
		p.SourceName = name
		if hasVersion {
			v := strings.TrimSpace(rest)
			if strings.HasPrefix(v, "(") && strings.HasSuffix(v, ")") && len(v) > 2 {
				p.SourceVersion = strings.TrimSpace(v[1 : len(v)-1])
			} else {
				prob.Add("package %s (line %d): malformed Source %q", s.pkg, s.line, s.source)
			}
		}
	}
	p.PURL = osrelease.PURL(&p, nil)
	return p, true
}

// parseList reads a dpkg info/*.list file: one absolute path per line, every
// directory before its contents. Directories are left out where the next
// line shows them to be one (they are shared by many packages, so their
// owner means nothing); an empty directory a package ships stays in.
func parseList(ctx context.Context, in *inventory.Input, pkg string) (inventory.Output, error) {
	if pkg == "" {
		return inventory.Output{}, nil
	}
	lr := inventory.NewLineReader(in.Reader, MaxLineLength)
	var prob inventory.Problems
	owned := map[string]string{}
	prev := ""
	for {
		line, err := lr.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return inventory.Output{}, fmt.Errorf("read %s: %w", in.Path, err)
			}
			break
		}
		if lr.Line()%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return inventory.Output{}, err
			}
		}
		p, ok := inventory.CleanPath(string(line))
		if !ok {
			if len(line) > 0 && string(line) != "/." {
				prob.Add("line %d: not a path", lr.Line())
			}
			continue
		}
		if prev != "" && !isDirOf(prev, p) {
			owned[prev] = pkg
		}
		prev = p
	}
	if prev != "" {
		owned[prev] = pkg
	}
	out := inventory.Output{}
	if len(owned) > 0 {
		out.OwnedFiles = owned
	}
	return out, problemsErr(&prob, in.Path, lr)
}

// parseMD5Sums reads a status.d/*.md5sums file ("<md5>  <path>" per line,
// paths relative to the root), the ownership record of distroless images.
func parseMD5Sums(ctx context.Context, in *inventory.Input, pkg string) (inventory.Output, error) {
	if pkg == "" {
		return inventory.Output{}, nil
	}
	lr := inventory.NewLineReader(in.Reader, MaxLineLength)
	var prob inventory.Problems
	owned := map[string]string{}
	for {
		line, err := lr.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return inventory.Output{}, fmt.Errorf("read %s: %w", in.Path, err)
			}
			break
		}
		if lr.Line()%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return inventory.Output{}, err
			}
		}
		if len(line) == 0 {
			continue
		}
		_, file, ok := bytes.Cut(line, []byte("  "))
		if !ok {
			prob.Add("line %d: not an md5sums line", lr.Line())
			continue
		}
		if p, ok := inventory.CleanPath(string(file)); ok {
			owned[p] = pkg
		} else {
			prob.Add("line %d: not a path", lr.Line())
		}
	}
	out := inventory.Output{}
	if len(owned) > 0 {
		out.OwnedFiles = owned
	}
	return out, problemsErr(&prob, in.Path, lr)
}

// isDirOf reports whether next lies inside dir.
func isDirOf(dir, next string) bool {
	return len(next) > len(dir) && next[len(dir)] == '/' && next[:len(dir)] == dir
}
