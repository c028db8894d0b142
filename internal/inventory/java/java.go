package java

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// Name is the extractor's stable name.
const Name = "language/java/archive"

// MaxFileSize bounds the archives handed to the extractor; zip needs random
// access, so an archive from an image layer is buffered in memory.
const MaxFileSize = 512 << 20

// minZipSize is the size of an empty zip (its end-of-directory record).
const minZipSize = 22

// ErrNotZip is returned for a file with a Java archive name that is not a
// zip archive.
var ErrNotZip = errors.New("not a zip archive")

// limits bound the work done on one outer archive.
type limits struct {
	// depth is how many levels of nested archives are opened below the
	// outer one.
	depth int
	// nestedSize bounds one compressed nested archive, which is inflated
	// into memory to be opened.
	nestedSize int64
	// buffered bounds the nested archives held in memory at once (one per
	// level of nesting being walked).
	buffered int64
	// inflated bounds the bytes of nested archives read in total, against
	// bombs made of many small or overlapping entries.
	inflated int64
	// entries bounds the zip entries examined in total.
	entries int
	// metaSize bounds pom.properties and MANIFEST.MF files.
	metaSize int64
}

func defaultLimits() limits {
	return limits{
		depth:      4,
		nestedSize: 64 << 20,
		buffered:   96 << 20,
		inflated:   1 << 30,
		entries:    500_000,
		metaSize:   1 << 20,
	}
}

// Extractor reads Java archives. Call New.
type Extractor struct {
	lim limits
}

// New returns the Java archive extractor.
func New() *Extractor { return &Extractor{lim: defaultLimits()} }

// Name implements inventory.Extractor.
func (*Extractor) Name() string { return Name }

// Version implements inventory.Extractor.
func (*Extractor) Version() int { return 1 }

// Required accepts regular files with a Java archive extension, in any
// letter case.
func (*Extractor) Required(p string, info inventory.FileInfo) bool {
	return info.Mode.IsRegular() && info.Size >= minZipSize && info.Size <= MaxFileSize && isArchive(p)
}

// isArchive reports Java archive names: jar, web (war), enterprise (ear),
// Jenkins plugin (jpi, hpi), JPA persistence (par) and JBoss service (sar)
// archives.
func isArchive(p string) bool {
	i := strings.LastIndexByte(p, '.')
	if i < 0 || strings.IndexByte(p[i:], '/') >= 0 {
		return false
	}
	switch strings.ToLower(p[i+1:]) {
	case "jar", "war", "ear", "jpi", "hpi", "par", "sar":
		return true
	}
	return false
}

// Extract implements inventory.Extractor. The packages found are returned
// even when some nested archive could not be read; the error then lists
// what was skipped.
func (e *Extractor) Extract(ctx context.Context, in *inventory.Input) (inventory.Output, error) {
	if err := ctx.Err(); err != nil {
		return inventory.Output{}, err
	}
	var magic [4]byte
	if _, err := io.ReadFull(in.Reader, magic[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return inventory.Output{}, fmt.Errorf("read %s: %w", in.Path, ErrNotZip)
		}
		return inventory.Output{}, fmt.Errorf("read header of %s: %w", in.Path, err)
	}
	// A zip starts with a local file header, or with the end record when
	// empty. Executable jars (Spring Boot's "fully executable" ones) start
	// with a launch script; zip readers find the archive after it.
	switch {
	case string(magic[:]) == "PK\x03\x04", string(magic[:]) == "PK\x05\x06", string(magic[:2]) == "#!":
	default:
		return inventory.Output{}, fmt.Errorf("read %s: %w", in.Path, ErrNotZip)
	}
	ra, size, err := in.ReaderAt()
	if err != nil {
		return inventory.Output{}, fmt.Errorf("read %s: %w", in.Path, err)
	}
	w := &walker{ctx: ctx, lim: e.lim, location: in.Path, seen: map[pkgKey]bool{}}
	if err := w.archive(ra, size, path.Base(in.Path), "", 0); err != nil {
		return inventory.Output{Packages: w.pkgs}, fmt.Errorf("read %s: %w", in.Path, err)
	}
	if err := w.err(); err != nil {
		return inventory.Output{Packages: w.pkgs}, fmt.Errorf("read %s: %w", in.Path, err)
	}
	return inventory.Output{Packages: w.pkgs}, nil
}

type pkgKey struct{ name, version, detail string }

// walker walks one outer archive and the archives nested in it.
type walker struct {
	ctx      context.Context
	lim      limits
	location string

	entries  int   // zip entries seen
	inflated int64 // bytes of nested archives read
	buffered int64 // bytes of nested archives held in memory now

	pkgs []inventory.Package
	seen map[pkgKey]bool
	// errs are failures in nested archives: the walk goes on without them.
	// Only the first maxErrs are kept; dropped counts the others.
	errs    []error
	dropped int
	// exhausted is set once a total bound (entries, bytes inflated) is
	// reached: the walk stops there.
	exhausted error
}

const maxErrs = 20

func (w *walker) fail(err error) {
	if len(w.errs) < maxErrs {
		w.errs = append(w.errs, err)
		return
	}
	w.dropped++
}

// err is what the walk reports besides its packages.
func (w *walker) err() error {
	errs := w.errs
	if w.dropped > 0 {
		errs = append(errs, fmt.Errorf("and %d more errors", w.dropped))
	}
	if w.exhausted != nil {
		errs = append(errs, w.exhausted)
	}
	return errors.Join(errs...)
}

// archive reads one zip. name is its file name (for the fallback), detail
// its path inside the outer file ("" for the outer file itself).
func (w *walker) archive(ra io.ReaderAt, size int64, name, detail string, depth int) error {
	zr, err := zip.NewReader(ra, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		// Names are never used as file paths here, so "insecure" ones
		// are harmless; anything else means the archive is unreadable.
		return fmt.Errorf("%w: %w", ErrNotZip, err)
	}
	w.entries += len(zr.File)
	if w.entries > w.lim.entries {
		w.exhausted = fmt.Errorf("more than %d zip entries: %w", w.lim.entries, inventory.ErrTooLarge)
		return nil
	}
	var (
		manifest *zip.File
		nested   []*zip.File
		poms     []coords
	)
	for i, f := range zr.File {
		if i%1024 == 0 {
			if err := w.ctx.Err(); err != nil {
				return err
			}
		}
		switch {
		case isPomProperties(f.Name):
			c, ok, err := w.pomProperties(f)
			if err != nil {
				w.fail(fmt.Errorf("%s: %w", join(detail, f.Name), err))
			}
			if ok {
				w.add(c, detail)
				poms = append(poms, c)
			}
		case strings.EqualFold(f.Name, "META-INF/MANIFEST.MF"):
			manifest = f
		case isArchive(f.Name) && !strings.HasSuffix(f.Name, "/"):
			nested = append(nested, f)
		}
	}
	var m map[string]string
	if manifest != nil {
		data, err := w.readMeta(manifest)
		if err != nil {
			w.fail(fmt.Errorf("%s: %w", join(detail, manifest.Name), err))
		}
		m = parseManifest(data)
	}
	if c, ok := fallback(m, name); ok && !describedBy(c, poms) {
		w.add(c, detail)
	}
	for _, f := range nested {
		if w.exhausted != nil {
			return nil
		}
		inner := join(detail, f.Name)
		if depth >= w.lim.depth {
			w.fail(fmt.Errorf("%s: nested more than %d archives deep: not read", inner, w.lim.depth))
			continue
		}
		if err := w.nested(ra, size, f, inner, depth+1); err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			w.fail(fmt.Errorf("%s: %w", inner, err))
		}
	}
	return nil
}

func join(detail, name string) string {
	if detail == "" {
		return name
	}
	return detail + "!" + name
}

// nested opens an archive stored inside another. Stored (uncompressed)
// entries, as Spring Boot writes its BOOT-INF/lib, are read in place;
// compressed ones are inflated into memory within the limits.
func (w *walker) nested(parent io.ReaderAt, parentSize int64, f *zip.File, inner string, depth int) error {
	name := path.Base(f.Name)
	if w.inflated >= w.lim.inflated {
		w.exhausted = fmt.Errorf("more than %d bytes of nested archives: %w", w.lim.inflated, inventory.ErrTooLarge)
		return nil
	}
	if f.Method == zip.Store && f.CompressedSize64 == f.UncompressedSize64 {
		off, err := f.DataOffset()
		if err != nil {
			return err
		}
		size := int64(f.UncompressedSize64)
		if size < 0 || off < 0 || off > parentSize || size > parentSize-off {
			return fmt.Errorf("%w: entry extends past the archive", ErrNotZip)
		}
		if w.inflated += size; w.inflated > w.lim.inflated {
			w.exhausted = fmt.Errorf("more than %d bytes of nested archives: %w", w.lim.inflated, inventory.ErrTooLarge)
			return nil
		}
		return w.archive(io.NewSectionReader(parent, off, size), size, name, inner, depth)
	}
	limit := min(w.lim.nestedSize, w.lim.buffered-w.buffered, w.lim.inflated-w.inflated)
	if f.UncompressedSize64 > uint64(max(limit, 0)) {
		return fmt.Errorf("%d bytes: %w", f.UncompressedSize64, inventory.ErrTooLarge)
	}
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	// The size in the header is not trusted: the read is bounded too.
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("inflates beyond %d bytes: %w", limit, inventory.ErrTooLarge)
	}
	n := int64(len(data))
	w.inflated += n
	w.buffered += n
	defer func() { w.buffered -= n }()
	return w.archive(bytes.NewReader(data), n, name, inner, depth)
}

// readMeta reads a small metadata entry within the size bound.
func (w *walker) readMeta(f *zip.File) ([]byte, error) {
	if f.UncompressedSize64 > uint64(w.lim.metaSize) {
		return nil, fmt.Errorf("%d bytes: %w", f.UncompressedSize64, inventory.ErrTooLarge)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, w.lim.metaSize+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > w.lim.metaSize {
		return nil, fmt.Errorf("inflates beyond %d bytes: %w", w.lim.metaSize, inventory.ErrTooLarge)
	}
	return data, nil
}

// isPomProperties reports META-INF/maven/<groupId>/<artifactId>/pom.properties.
func isPomProperties(name string) bool {
	rest, ok := strings.CutPrefix(name, "META-INF/maven/")
	if !ok || !strings.HasSuffix(rest, "/pom.properties") {
		return false
	}
	return strings.Count(rest, "/") == 2
}

// describedBy reports whether the archive's own artifact, as the fallback
// names it, is among its pom.properties. Usually it is, or there are none.
// When all of them describe other artifacts at other versions, they are
// dependencies shaded into the archive (guice.jar carries only cglib's) and
// the archive itself is reported from its manifest and name as well.
func describedBy(c coords, poms []coords) bool {
	if len(poms) == 0 {
		return false
	}
	for _, p := range poms {
		if normName(p.artifact) == normName(c.artifact) || p.version == c.version {
			return true
		}
	}
	return false
}

// pomProperties reads the artifact a pom.properties describes; ok is false
// when it names none.
func (w *walker) pomProperties(f *zip.File) (c coords, ok bool, err error) {
	data, err := w.readMeta(f)
	if err != nil {
		return coords{}, false, err
	}
	props := parseProperties(data)
	// The path names the artifact too; the file's values win, as Maven
	// wrote both from the same POM.
	parts := strings.Split(f.Name, "/")
	group := cmpOr(props["groupId"], parts[2])
	artifact := cmpOr(props["artifactId"], parts[3])
	version := props["version"]
	if group == "" || artifact == "" || !plausibleVersion(version) {
		return coords{}, false, nil
	}
	return maven(group, artifact, version), true, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// plausibleVersion rejects empty versions and unexpanded Maven properties
// ("${project.version}"), which some broken builds leave in.
func plausibleVersion(v string) bool {
	return v != "" && !strings.Contains(v, "${") && len(v) <= 128
}

type coords struct{ group, artifact, version string }

func maven(group, artifact, version string) coords {
	return coords{group: strings.TrimSpace(group), artifact: strings.TrimSpace(artifact), version: strings.TrimSpace(version)}
}

func (w *walker) add(c coords, detail string) {
	name := c.artifact
	if c.group != "" {
		name = c.group + ":" + c.artifact
	}
	k := pkgKey{name, c.version, detail}
	if w.seen[k] {
		return
	}
	w.seen[k] = true
	w.pkgs = append(w.pkgs, inventory.Package{
		Name:           name,
		Version:        c.version,
		Type:           inventory.TypeMaven,
		Ecosystem:      inventory.EcosystemMaven,
		PURL:           packageurl.NewPackageURL(packageurl.TypeMaven, c.group, c.artifact, c.version, nil, "").ToString(),
		Location:       w.location,
		LocationDetail: detail,
		Extractor:      Name,
	})
}
