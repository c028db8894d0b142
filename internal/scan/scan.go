package scan

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/image"
	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/osrelease"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// Scanner finds the inventory of a target and its vulnerabilities.
type Scanner struct {
	// Extractors are asked, for every file, whether they want it.
	Extractors []inventory.Extractor
	// Limits bound what a walk may read.
	Limits image.Limits
	// Version is the tool version recorded in results.
	Version string
	Log     *slog.Logger
}

// fileResult is what all interested extractors found in one file.
type fileResult struct {
	outputs []namedOutput
	errs    []FileError
}

type namedOutput struct {
	extractor string
	out       inventory.Output
}

// required reports whether any extractor wants the file.
func (s *Scanner) required(path string, info inventory.FileInfo) bool {
	for _, e := range s.Extractors {
		if e.Required(path, info) {
			return true
		}
	}
	return false
}

// extract runs every interested extractor on one file. When more than one
// wants it (an executable may be a Go or a Rust binary), the file is buffered
// once and each gets its own reader.
func (s *Scanner) extract(ctx context.Context, in *inventory.Input) (fileResult, error) {
	var want []inventory.Extractor
	for _, e := range s.Extractors {
		if e.Required(in.Path, in.Info) {
			want = append(want, e)
		}
	}
	var fr fileResult
	if len(want) > 1 {
		// Several extractors want the file (an executable may be a Go or a
		// Rust binary). Each reads through a replay buffer holding only
		// what has been read so far, so rejecting a shell script after its
		// first bytes costs no more than with one extractor.
		rp := &replay{src: in.Reader, full: in.ReaderAt, max: s.Limits.MaxFileSize, size: in.Info.Size}
		for _, e := range want {
			fr.run(ctx, e, rp.input(in))
		}
		return fr, nil
	}
	for _, e := range want {
		fr.run(ctx, e, in)
	}
	return fr, nil
}

func (fr *fileResult) run(ctx context.Context, e inventory.Extractor, in *inventory.Input) {
	out, err := safeExtract(ctx, e, in)
	if err != nil {
		fr.errs = append(fr.errs, FileError{Path: in.Path, Extractor: e.Name(), Error: err.Error()})
	}
	if len(out.Packages) > 0 || out.OS != nil || len(out.OwnedFiles) > 0 {
		fr.outputs = append(fr.outputs, namedOutput{extractor: e.Name(), out: out})
	}
}

// safeExtract turns an extractor panic into an error so one bad file or one
// buggy extractor cannot abort a scan.
func safeExtract(ctx context.Context, e inventory.Extractor, in *inventory.Input) (out inventory.Output, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = inventory.Output{}, fmt.Errorf("extractor %s panicked: %v", e.Name(), r)
		}
	}()
	return e.Extract(ctx, in)
}

func (s *Scanner) newResult(kind, name string) *Result {
	exts := make(map[string]int, len(s.Extractors))
	for _, e := range s.Extractors {
		exts[e.Name()] = e.Version()
	}
	return &Result{
		SchemaVersion: SchemaVersion,
		Tool:          Tool{Name: "bulwark", Version: s.Version, Extractors: exts},
		Target:        Target{Kind: kind, Name: name},
		StartedAt:     time.Now().UTC(),
		Packages:      []inventory.Package{},
		Findings:      []Finding{},
	}
}

// Image scans a container image. ref is anything image.Open accepts.
func (s *Scanner) Image(ctx context.Context, ref string, opts image.Options, progress func(done, total int64)) (*Result, error) {
	img, err := image.Open(ctx, ref, opts)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	res := s.newResult("image", ref)
	res.Target.Digest = img.Digest
	res.Target.ImageID = img.ID
	res.Target.Platform = img.Platform
	res.Target.RepoTags = img.RepoTags
	for _, l := range img.Layers {
		res.Target.Layers = append(res.Target.Layers, Layer{Digest: l.Digest, DiffID: l.DiffID, Size: l.Size, CreatedBy: l.CreatedBy})
		res.Target.Size += l.Size
	}
	entries, ferrs, err := image.Walk(ctx, img, s.Limits, s.required, s.extract, progress)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", ref, err)
	}
	for _, fe := range ferrs {
		res.Errors = append(res.Errors, FileError{Path: fe.Path, Layer: fe.Layer, Error: fe.Err.Error()})
	}
	s.assemble(res, entries)
	return res, nil
}

// Dir scans a directory: a root filesystem or a project.
func (s *Scanner) Dir(ctx context.Context, dir string) (*Result, error) {
	res := s.newResult("fs", dir)
	entries, ferrs, err := image.WalkDir(ctx, dir, s.Limits, s.required, s.extract)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", dir, err)
	}
	for _, fe := range ferrs {
		res.Errors = append(res.Errors, FileError{Path: fe.Path, Error: fe.Err.Error()})
	}
	s.assemble(res, entries)
	return res, nil
}

// assemble turns the surviving per-file results into the inventory.
func (s *Scanner) assemble(res *Result, entries []image.Entry[fileResult]) {
	owned := map[string]string{}
	var osCandidates []*inventory.OS
	for _, e := range entries {
		for _, fe := range e.Value.errs {
			fe.Layer = e.Layer
			res.Errors = append(res.Errors, fe)
		}
		for _, no := range e.Value.outputs {
			for _, p := range no.out.Packages {
				if p.Location == "" {
					p.Location = e.Path
				}
				p.Layer = e.Layer
				if p.Extractor == "" {
					p.Extractor = no.extractor
				}
				res.Packages = append(res.Packages, p)
			}
			for f, owner := range no.out.OwnedFiles {
				owned[f] = owner
			}
			if no.out.OS != nil {
				osCandidates = append(osCandidates, no.out.OS)
			}
		}
	}
	res.OS = pickOS(osCandidates)
	eco := ""
	if res.OS != nil {
		eco = osrelease.Ecosystem(res.OS)
	}
	for i := range res.Packages {
		p := &res.Packages[i]
		switch p.Type {
		case inventory.TypeDeb, inventory.TypeAPK, inventory.TypeRPM:
			if p.Ecosystem == "" {
				p.Ecosystem = eco
			}
			osrelease.FinalizePURL(p, res.OS)
		default:
			if owner, ok := ownerOf(owned, p.Location); ok {
				p.OSPackage = owner
			}
		}
	}
	slices.SortFunc(res.Packages, func(a, b inventory.Package) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Version, b.Version), cmp.Compare(a.Arch, b.Arch),
			cmp.Compare(a.Location, b.Location), cmp.Compare(a.LocationDetail, b.LocationDetail))
	})
	res.Packages = slices.CompactFunc(res.Packages, func(a, b inventory.Package) bool {
		return a.Type == b.Type && a.Name == b.Name && a.Version == b.Version && a.Arch == b.Arch &&
			a.Location == b.Location && a.LocationDetail == b.LocationDetail
	})
	slices.SortFunc(res.Errors, func(a, b FileError) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Extractor, b.Extractor))
	})
}

// ownerOf finds the OS package that installed the file at loc, or the
// metadata directory holding it. On merged-/usr systems a package manager may
// list /lib/x while the image holds usr/lib/x (and the reverse), so both
// spellings are tried.
func ownerOf(owned map[string]string, loc string) (string, bool) {
	if len(owned) == 0 {
		return "", false
	}
	alt := "usr/" + loc
	if rest, ok := strings.CutPrefix(loc, "usr/"); ok {
		alt = rest
	}
	for _, l := range [2]string{loc, alt} {
		if o, ok := owned[l]; ok {
			return o, true
		}
		if o, ok := ownerOfDir(owned, l); ok {
			return o, true
		}
	}
	return "", false
}

// ownerOfDir finds the OS package owning the directory a package's metadata
// lives in (dist-info and egg-info directories are listed, their files may
// not be in every package manager's list).
func ownerOfDir(owned map[string]string, loc string) (string, bool) {
	for dir := loc; ; {
		i := strings.LastIndexByte(dir, '/')
		if i <= 0 {
			return "", false
		}
		dir = dir[:i]
		if o, ok := owned[dir]; ok {
			return o, true
		}
		base := dir[strings.LastIndexByte(dir, '/')+1:]
		// Stop at the package's own metadata dir: owning a parent such as
		// /usr/lib/python3 says nothing about who installed the package.
		if strings.HasSuffix(base, ".dist-info") || strings.HasSuffix(base, ".egg-info") || base == "node_modules" {
			return "", false
		}
	}
}

// pickOS prefers etc/os-release over usr/lib/os-release over fallbacks.
func pickOS(c []*inventory.OS) *inventory.OS {
	rank := func(o *inventory.OS) int {
		switch o.Location {
		case "etc/os-release":
			return 0
		case "usr/lib/os-release":
			return 1
		}
		return 2
	}
	var best *inventory.OS
	for _, o := range c {
		if best == nil || rank(o) < rank(best) {
			best = o
		}
	}
	return best
}

// Match fills res.Findings from the database.
func Match(ctx context.Context, db *vulndb.DB, res *Result) error {
	matches, err := db.Match(ctx, res.Packages)
	if err != nil {
		return fmt.Errorf("match: %w", err)
	}
	st := db.Status()
	res.DB = &st
	// Language packages provided by an OS package, by owner name: shown on
	// that OS package's findings so the reader knows what else is affected.
	provides := map[string][]string{}
	for _, p := range res.Packages {
		if p.OSPackage != "" {
			provides[p.OSPackage] = append(provides[p.OSPackage], p.Ecosystem+"/"+p.Name+"@"+p.Version)
		}
	}
	res.Findings = make([]Finding, 0, len(matches))
	for _, m := range matches {
		f := Finding{Match: m, Package: res.Packages[m.Package]}
		if pv := provides[f.Package.Name]; len(pv) > 0 {
			f.Note = "also provides " + strings.Join(pv, ", ") + " (matched through this OS package: the distribution backports fixes)"
		}
		res.Findings = append(res.Findings, f)
	}
	SortFindings(res.Findings)
	res.FinishedAt = time.Now().UTC()
	return nil
}

// SortFindings orders findings by severity (highest first), then ID, then package.
func SortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(b.Vulnerability.Severity, a.Vulnerability.Severity),
			cmp.Compare(a.Vulnerability.ID, b.Vulnerability.ID),
			cmp.Compare(a.Package.Name, b.Package.Name),
			cmp.Compare(a.Package.Location, b.Package.Location))
	})
}
