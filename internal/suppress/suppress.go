package suppress

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/package-url/packageurl-go"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// Suppression kinds recorded in scan.Suppression.Kind.
const (
	KindIgnoreFile = "ignore-file"
	KindVEX        = "vex"
	KindUnfixed    = "unfixed"
)

// Set is everything that can hide a finding. The zero value hides nothing.
type Set struct {
	// IgnoreUnfixed hides findings without a fixed version.
	IgnoreUnfixed bool
	Ignores       []*IgnoreFile
	VEX           []*VEXDocument
}

// LoadIgnoreFile reads and parses an ignore file and adds it to the set.
func (s *Set) LoadIgnoreFile(path string) error {
	data, err := readBounded(path, MaxIgnoreFileSize)
	if err != nil {
		return fmt.Errorf("read ignore file: %w", err)
	}
	f, err := ParseIgnoreFile(path, data)
	if err != nil {
		return err
	}
	s.Ignores = append(s.Ignores, f)
	return nil
}

// LoadVEX reads and parses an OpenVEX document and adds it to the set.
func (s *Set) LoadVEX(path string) error {
	data, err := readBounded(path, MaxVEXSize)
	if err != nil {
		return fmt.Errorf("read VEX document: %w", err)
	}
	d, err := ParseOpenVEX(path, data)
	if err != nil {
		return err
	}
	s.VEX = append(s.VEX, d)
	return nil
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, ErrInvalid, limit)
	}
	return data, nil
}

// Apply moves the findings the set hides from res.Findings to
// res.Suppressed, each with its reason, and returns warnings for the user:
// expired ignore entries (which no longer hide anything) and VEX
// statements that can never apply. An ignore entry is checked first, then
// VEX, then --ignore-unfixed; the first that hides a finding is recorded.
// now decides expiry.
func (s *Set) Apply(res *scan.Result, now time.Time) []string {
	if s == nil || res == nil {
		return nil
	}
	var warnings []string
	m := &matcher{
		target:     &res.Target,
		ignores:    map[string][]activeEntry{},
		statements: map[string][]vexRef{},
		purls:      map[string]*packageurl.PackageURL{},
	}
	order := 0
	for _, f := range s.Ignores {
		for i := range f.Entries {
			e := &f.Entries[i]
			if !e.Expires.IsZero() && !now.Before(e.Expires) {
				warnings = append(warnings, fmt.Sprintf("%s: line %d: the entry for %s expired on %s and no longer suppresses it",
					f.Source, e.Line, e.ID, e.Expires.UTC().Format(time.RFC3339)))
				continue
			}
			key := strings.ToUpper(e.ID)
			m.ignores[key] = append(m.ignores[key], activeEntry{file: f, entry: e, order: order})
			order++
		}
	}
	order = 0
	for _, d := range s.VEX {
		warnings = append(warnings, d.Warnings...)
		for i := range d.Statements {
			st := &d.Statements[i]
			ref := vexRef{doc: d, st: st, order: order}
			order++
			seen := map[string]bool{}
			for _, name := range append([]string{st.Vulnerability}, st.Aliases...) {
				key := strings.ToUpper(name)
				if key != "" && !seen[key] {
					seen[key] = true
					m.statements[key] = append(m.statements[key], ref)
				}
			}
		}
	}

	kept := res.Findings[:0:0]
	for i := range res.Findings {
		f := res.Findings[i]
		if sup := s.suppression(m, &f); sup != nil {
			f.Suppression = sup
			res.Suppressed = append(res.Suppressed, f)
			continue
		}
		kept = append(kept, f)
	}
	res.Findings = kept
	return warnings
}

// matcher holds what Apply looks up for every finding: active ignore
// entries and VEX statements indexed by upper-cased vulnerability name, and
// parsed PURLs, so a large result is matched in one pass.
type matcher struct {
	target     *scan.Target
	ignores    map[string][]activeEntry
	statements map[string][]vexRef
	purls      map[string]*packageurl.PackageURL // nil: unparsable
}

type activeEntry struct {
	file  *IgnoreFile
	entry *IgnoreEntry
	order int
}

type vexRef struct {
	doc   *VEXDocument
	st    *VEXStatement
	order int
}

// names are the finding's vulnerability IDs, upper-cased: ID, aliases and
// related IDs.
func names(f *scan.Finding) []string {
	v := f.Vulnerability
	if v == nil {
		return nil
	}
	out := make([]string, 0, 1+len(v.Aliases)+len(v.Related))
	out = append(out, strings.ToUpper(v.ID))
	for _, a := range v.Aliases {
		out = append(out, strings.ToUpper(a))
	}
	for _, a := range v.Related {
		out = append(out, strings.ToUpper(a))
	}
	return out
}

func (s *Set) suppression(m *matcher, f *scan.Finding) *scan.Suppression {
	ids := names(f)
	// The first matching entry in file order wins.
	var best *activeEntry
	for _, id := range ids {
		for i := range m.ignores[id] {
			a := &m.ignores[id][i]
			if (best == nil || a.order < best.order) && matchesPackage(&f.Package, a.entry.Package) {
				best = a
			}
		}
	}
	if best != nil {
		return &scan.Suppression{Kind: KindIgnoreFile, Reason: best.entry.Reason, Source: best.file.Source, Expires: best.entry.Expires}
	}
	if ref := m.latestStatement(ids, &f.Package); ref != nil && (ref.st.Status == StatusNotAffected || ref.st.Status == StatusFixed) {
		st := ref.st
		reason := st.Status
		if st.Justification != "" {
			reason += ": " + st.Justification
		}
		if st.Impact != "" {
			reason += ": " + st.Impact
		}
		return &scan.Suppression{Kind: KindVEX, Reason: reason, Source: ref.doc.Source}
	}
	if s.IgnoreUnfixed && len(f.FixedVersions) == 0 {
		return &scan.Suppression{Kind: KindUnfixed, Reason: "no fixed version is known"}
	}
	return nil
}

// latestStatement finds, across all documents, the statement about this
// vulnerability in this package or image with the latest timestamp; on a
// tie the one read last wins (a later document, a later statement), as
// OpenVEX statements override earlier ones.
func (m *matcher) latestStatement(ids []string, p *inventory.Package) *vexRef {
	var best *vexRef
	for _, id := range ids {
		for i := range m.statements[id] {
			ref := &m.statements[id][i]
			if best != nil && (ref.st.Timestamp.Before(best.st.Timestamp) ||
				ref.st.Timestamp.Equal(best.st.Timestamp) && ref.order <= best.order) {
				continue
			}
			if m.covers(ref.st, p) {
				best = ref
			}
		}
	}
	return best
}

func (m *matcher) purl(s string) *packageurl.PackageURL {
	if u, ok := m.purls[s]; ok {
		return u
	}
	var out *packageurl.PackageURL
	if u, err := packageurl.FromString(s); err == nil {
		out = &u
	}
	m.purls[s] = out
	return out
}

// statementCovers reports whether one of the statement's products is the
// package, or is the scanned image (and the package is among its
// subcomponents, when it lists any).
func (m *matcher) covers(st *VEXStatement, p *inventory.Package) bool {
	for i := range st.Products {
		prod := &st.Products[i]
		if m.isTargetImage(prod) {
			if len(prod.Subcomponents) == 0 {
				return true
			}
			for j := range prod.Subcomponents {
				if m.componentIsPackage(&prod.Subcomponents[j], p) {
					return true
				}
			}
			continue
		}
		if m.componentIsPackage(prod, p) {
			return true
		}
	}
	return false
}

// isTargetImage: the product names the scanned image by digest — a
// pkg:oci PURL whose version is the digest, an image reference or bare
// digest ending in it, or its sha-256 hash.
func (m *matcher) isTargetImage(prod *VEXProduct) bool {
	t := m.target
	if t.Kind != "image" {
		return false
	}
	for _, digest := range []string{t.Digest, t.ImageID} {
		_, hex, ok := strings.Cut(digest, ":")
		if !ok || hex == "" {
			continue
		}
		if prod.SHA256 == hex {
			return true
		}
		for _, id := range []string{prod.PURL, prod.ID} {
			if id == "" {
				continue
			}
			if strings.HasPrefix(id, "pkg:") {
				if u := m.purl(id); u != nil && u.Type == packageurl.TypeOCI && u.Version == digest {
					return true
				}
				continue
			}
			if id == digest || strings.HasSuffix(id, "@"+digest) {
				return true
			}
		}
	}
	return false
}

func (m *matcher) componentIsPackage(c *VEXProduct, p *inventory.Package) bool {
	if c.PURL == "" || p.PURL == "" {
		return false
	}
	want, got := m.purl(c.PURL), m.purl(p.PURL)
	return want != nil && got != nil && purlMatches(want, got)
}

// purlMatches reports whether a PURL from a VEX statement names the
// package: same type, namespace and name; the same version unless the
// statement leaves it out (then every version); and every qualifier the
// statement gives present with the same value.
func purlMatches(want, got *packageurl.PackageURL) bool {
	if !strings.EqualFold(want.Type, got.Type) || !strings.EqualFold(want.Namespace, got.Namespace) || want.Name != got.Name {
		return false
	}
	if want.Version != "" && want.Version != got.Version {
		return false
	}
	have := got.Qualifiers.Map()
	for _, q := range want.Qualifiers {
		if have[q.Key] != q.Value {
			return false
		}
	}
	return true
}

// matchesPackage applies an ignore entry's package filter: a PURL prefix
// that ends at a component boundary, or a package or source package name.
func matchesPackage(p *inventory.Package, filter string) bool {
	switch {
	case filter == "":
		return true
	case strings.HasPrefix(filter, "pkg:"):
		rest, ok := strings.CutPrefix(p.PURL, filter)
		if !ok {
			return false
		}
		return rest == "" || strings.HasSuffix(filter, "/") || strings.ContainsRune("@?#&", rune(rest[0]))
	}
	return strings.EqualFold(p.Name, filter) || (p.SourceName != "" && strings.EqualFold(p.SourceName, filter))
}

// Verdict is the gate's decision.
type Verdict struct {
	Failed bool
	FailOn vulndb.Severity
	// Findings are the remaining findings at or above FailOn, most severe
	// first.
	Findings []Reason
	// Reason summarises the failure in one line for the CLI ("" when passed).
	Reason string
}

// Reason is one finding that failed the gate.
type Reason struct {
	ID       string
	Severity vulndb.Severity
	Package  string
	Version  string
}

func (r Reason) String() string {
	return fmt.Sprintf("%s (%s) in %s %s", r.ID, r.Severity, r.Package, r.Version)
}

// Evaluate is the policy gate: it fails when a finding that remains after
// suppression has a severity at or above failOn. Call it only when the user
// asked for a gate (--fail-on): failOn SeverityUnknown fails on any finding.
func Evaluate(res *scan.Result, failOn vulndb.Severity) Verdict {
	v := Verdict{FailOn: failOn}
	if res == nil {
		return v
	}
	for i := range res.Findings {
		f := &res.Findings[i]
		sev := vulndb.SeverityUnknown
		id := ""
		if f.Vulnerability != nil {
			sev, id = f.Vulnerability.Severity, f.Vulnerability.ID
		}
		if sev < failOn {
			continue
		}
		v.Findings = append(v.Findings, Reason{ID: id, Severity: sev, Package: f.Package.Name, Version: f.Package.Version})
	}
	if len(v.Findings) == 0 {
		return v
	}
	slices.SortStableFunc(v.Findings, func(a, b Reason) int {
		return cmp.Or(cmp.Compare(b.Severity, a.Severity), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Package, b.Package))
	})
	v.Failed = true
	const shown = 3
	var parts []string
	for _, r := range v.Findings[:min(shown, len(v.Findings))] {
		parts = append(parts, r.String())
	}
	more := ""
	if n := len(v.Findings) - shown; n > 0 {
		more = fmt.Sprintf(" and %d more", n)
	}
	noun := "findings"
	if len(v.Findings) == 1 {
		noun = "finding"
	}
	v.Reason = fmt.Sprintf("%d %s at or above %s: %s%s", len(v.Findings), noun, failOn, strings.Join(parts, ", "), more)
	return v
}
