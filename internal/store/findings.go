package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// Finding is one vulnerability in one package of one image, as stored.
type Finding struct {
	ID          int64
	ImageDigest string
	VulnID      string
	Aliases     []string
	Ecosystem   string
	Package     string
	Version     string
	PackageType string
	// Location is the file the package was found in.
	Location         string
	InstalledVersion string
	FixedVersions    []string
	Severity         vulndb.Severity
	// CVSSScore is the highest base score among the advisory's vectors.
	CVSSScore float64
	KEV       bool
	EPSS      float64
	Summary   string
	MatchedBy string
	FirstSeen time.Time
	LastSeen  time.Time
	// ResolvedAt is set once a later scan or re-match no longer finds it.
	ResolvedAt time.Time
}

// Fixable reports whether a fixed version is known.
func (f *Finding) Fixable() bool { return len(f.FixedVersions) > 0 }

// findingKey identifies "the same finding" across scans.
type findingKey struct{ vuln, eco, pkg, ver, loc string }

func (f *Finding) key() findingKey {
	return findingKey{f.VulnID, f.Ecosystem, f.Package, f.Version, f.Location}
}

// fromScan flattens a scanner finding into its stored form.
func fromScan(sf *scan.Finding) (Finding, error) {
	f := Finding{
		Ecosystem:        sf.Package.Ecosystem,
		Package:          sf.Package.Name,
		Version:          sf.Package.Version,
		PackageType:      sf.Package.Type,
		Location:         sf.Package.Location,
		InstalledVersion: sf.InstalledVersion,
		FixedVersions:    slices.Clone(sf.FixedVersions),
		MatchedBy:        sf.MatchedBy,
	}
	v := sf.Vulnerability
	if v == nil || v.ID == "" {
		return f, invalid("finding for package %q has no vulnerability id", sf.Package.Name)
	}
	if f.Package == "" {
		return f, invalid("finding %s has no package name", v.ID)
	}
	if v.Severity < vulndb.SeverityUnknown || v.Severity > vulndb.SeverityCritical {
		return f, invalid("finding %s severity %d", v.ID, v.Severity)
	}
	f.VulnID, f.Aliases, f.Severity, f.KEV, f.EPSS = v.ID, slices.Clone(v.Aliases), v.Severity, v.KEV != nil, v.EPSS
	f.Summary = v.Summary
	for _, c := range v.CVSS {
		f.CVSSScore = max(f.CVSSScore, c.Score)
	}
	return f, nil
}

// FindingEventKind is what happened to a finding.
type FindingEventKind string

const (
	EventNew     FindingEventKind = "new"     // first found, or found again after being fixed
	EventFixed   FindingEventKind = "fixed"   // no longer found
	EventChanged FindingEventKind = "changed" // severity, KEV or fixed versions changed
)

// FindingEventSource says what caused an event.
type FindingEventSource string

const (
	SourceScan    FindingEventSource = "scan"    // the image was scanned
	SourceRematch FindingEventSource = "rematch" // the stored SBOM was matched against a newer DB
)

// FindingEvent records a change to an image's findings.
type FindingEvent struct {
	ID          int64
	ImageDigest string
	FindingID   int64
	Kind        FindingEventKind
	Source      FindingEventSource
	ScanID      int64 // 0 unless Source is "scan"
	VulnID      string
	Package     string
	Version     string
	Severity    vulndb.Severity
	KEV         bool
	At          time.Time
}

// FindingsDiff is what ReplaceFindings changed.
type FindingsDiff struct {
	New, Fixed, Changed []FindingEvent
	// Unchanged counts findings that were open before and still are.
	Unchanged int
	// Counts are the image's open findings afterwards.
	Counts FindingCounts
}

// ReplaceFindings makes findings the image's current (open) findings and
// records what changed as finding events: findings not open before are
// "new", open ones no longer present are "fixed" (resolved, kept for
// history), and ones whose severity, KEV flag or fixed versions moved are
// "changed". This is continuous re-matching's write: run the stored SBOM
// against a newer database and hand the matches here.
func (s *Store) ReplaceFindings(ctx context.Context, digest string, findings []scan.Finding, source FindingEventSource) (*FindingsDiff, error) {
	op := "replace findings of " + digest
	if source != SourceScan && source != SourceRematch {
		return nil, fmt.Errorf("%s: %w", op, invalid("event source %q (want scan or rematch)", source))
	}
	fs, err := flattenFindings(findings)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var diff *FindingsDiff
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var imageID int64
		// Lock the image row: concurrent replacements of one image's
		// findings (a scan and a re-match) run one after the other.
		err := s.queryRow(ctx, tx, `UPDATE images SET last_matched_at = ? WHERE digest = ? RETURNING id`,
			s.ts(s.now()), digest).Scan(&imageID)
		if err != nil {
			return err
		}
		diff, err = s.replaceFindings(ctx, tx, imageID, digest, fs, source, 0)
		return err
	})
	if err != nil {
		return nil, s.wrapErr(op, err)
	}
	return diff, nil
}

func flattenFindings(in []scan.Finding) ([]Finding, error) {
	out := make([]Finding, 0, len(in))
	seen := make(map[findingKey]int, len(in))
	for i := range in {
		f, err := fromScan(&in[i])
		if err != nil {
			return nil, err
		}
		if j, dup := seen[f.key()]; dup {
			// The same advisory matched twice (through two ranges): keep
			// the more severe, merged view.
			o := &out[j]
			o.Severity = max(o.Severity, f.Severity)
			o.KEV = o.KEV || f.KEV
			o.CVSSScore = max(o.CVSSScore, f.CVSSScore)
			for _, v := range f.FixedVersions {
				if !slices.Contains(o.FixedVersions, v) {
					o.FixedVersions = append(o.FixedVersions, v)
				}
			}
			continue
		}
		seen[f.key()] = len(out)
		out = append(out, f)
	}
	return out, nil
}

// storedFinding is a finding row as ReplaceFindings compares it.
type storedFinding struct {
	id       int64
	resolved bool
	severity vulndb.Severity
	kev      bool
	fixed    string // JSON
	// The rest only decide whether the row needs rewriting.
	aliases, pkgType, installed, summary, matchedBy string
	cvss, epss                                      float64
}

// same reports whether the row already holds f's attributes.
func (o *storedFinding) same(f *Finding, fixed string) bool {
	return o.severity == f.Severity && o.kev == f.KEV && jsonEqual(o.fixed, fixed) &&
		o.aliases == strings.Join(f.Aliases, " ") && o.pkgType == f.PackageType && o.installed == f.InstalledVersion &&
		o.summary == f.Summary && o.matchedBy == f.MatchedBy && o.cvss == f.CVSSScore && o.epss == f.EPSS
}

// replaceFindings is ReplaceFindings inside a transaction that holds the
// image row.
func (s *Store) replaceFindings(ctx context.Context, tx *sql.Tx, imageID int64, digest string, fs []Finding,
	source FindingEventSource, scanID int64) (*FindingsDiff, error) {
	now := s.now()
	old := map[findingKey]storedFinding{}
	rows, err := s.query(ctx, tx, `SELECT id, vuln_id, ecosystem, package_name, package_version, location,
		resolved_at, severity, kev, fixed_versions, aliases, package_type, installed_version, summary, matched_by,
		cvss_score, epss FROM findings WHERE image_id = ?`, imageID)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var k findingKey
		var sf storedFinding
		var resolved time.Time
		if err := rows.Scan(&sf.id, &k.vuln, &k.eco, &k.pkg, &k.ver, &k.loc, tcol(&resolved), &sf.severity,
			boolCol{&sf.kev}, &sf.fixed, &sf.aliases, &sf.pkgType, &sf.installed, &sf.summary, &sf.matchedBy,
			&sf.cvss, &sf.epss); err != nil {
			rows.Close()
			return nil, err
		}
		sf.resolved = !resolved.IsZero()
		old[k] = sf
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	diff := &FindingsDiff{}
	event := func(kind FindingEventKind, id int64, f *Finding) {
		e := FindingEvent{ImageDigest: digest, FindingID: id, Kind: kind, Source: source, ScanID: scanID,
			VulnID: f.VulnID, Package: f.Package, Version: f.Version, Severity: f.Severity, KEV: f.KEV, At: now.UTC().Truncate(time.Microsecond)}
		switch kind {
		case EventNew:
			diff.New = append(diff.New, e)
		case EventFixed:
			diff.Fixed = append(diff.Fixed, e)
		case EventChanged:
			diff.Changed = append(diff.Changed, e)
		}
	}
	current := make(map[findingKey]bool, len(fs))
	var inserts []*Finding
	for i := range fs {
		f := &fs[i]
		k := f.key()
		current[k] = true
		c := &diff.Counts
		switch f.Severity {
		case vulndb.SeverityCritical:
			c.Critical++
		case vulndb.SeverityHigh:
			c.High++
		case vulndb.SeverityMedium:
			c.Medium++
		case vulndb.SeverityLow:
			c.Low++
		default:
			c.Unknown++
		}
		if f.KEV {
			c.KEV++
		}
		if f.Fixable() {
			c.Fixable++
		}
		fixed, _ := json.Marshal(nonNil(f.FixedVersions))
		o, ok := old[k]
		if !ok {
			inserts = append(inserts, f)
			continue
		}
		if !o.resolved && o.same(f, string(fixed)) {
			// last_seen of every open finding is refreshed below, in one
			// statement: a rescan that changes nothing writes nothing else.
			diff.Unchanged++
			continue
		}
		changed := !o.resolved && (o.severity != f.Severity || o.kev != f.KEV || !jsonEqual(o.fixed, string(fixed)))
		// Refresh the advisory's attributes; reopen if it had been fixed.
		firstSeen := "first_seen"
		if o.resolved {
			firstSeen = "?"
		}
		args := []any{}
		if o.resolved {
			args = append(args, s.ts(now))
		}
		args = append(args, strings.Join(f.Aliases, " "), f.PackageType, f.InstalledVersion, string(fixed), f.Fixable(),
			int(f.Severity), f.CVSSScore, f.KEV, f.EPSS, f.Summary, f.MatchedBy, s.ts(now), o.id)
		if _, err := s.exec(ctx, tx, `UPDATE findings SET first_seen = `+firstSeen+`, aliases = ?, package_type = ?,
			installed_version = ?, fixed_versions = ?, fixable = ?, severity = ?, cvss_score = ?, kev = ?, epss = ?,
			summary = ?, matched_by = ?, last_seen = ?, resolved_at = NULL WHERE id = ?`, args...); err != nil {
			return nil, fmt.Errorf("update finding %s: %w", f.VulnID, err)
		}
		switch {
		case o.resolved:
			event(EventNew, o.id, f)
		case changed:
			event(EventChanged, o.id, f)
		default:
			diff.Unchanged++
		}
	}
	if err := s.insertFindings(ctx, tx, imageID, inserts, now, func(id int64, f *Finding) { event(EventNew, id, f) }); err != nil {
		return nil, err
	}
	var gone []any
	for k, o := range old {
		if o.resolved || current[k] {
			continue
		}
		gone = append(gone, o.id)
		event(EventFixed, o.id, &Finding{VulnID: k.vuln, Package: k.pkg, Version: k.ver, Severity: o.severity, KEV: o.kev})
	}
	for len(gone) > 0 {
		n := min(len(gone), 500)
		args := append([]any{s.ts(now)}, gone[:n]...)
		if _, err := s.exec(ctx, tx, `UPDATE findings SET resolved_at = ? WHERE id IN (`+placeholders(n)+`)`, args...); err != nil {
			return nil, fmt.Errorf("resolve findings: %w", err)
		}
		gone = gone[n:]
	}
	if _, err := s.exec(ctx, tx, `UPDATE findings SET last_seen = ? WHERE image_id = ? AND resolved_at IS NULL AND last_seen < ?`,
		s.ts(now), imageID, s.ts(now)); err != nil {
		return nil, fmt.Errorf("refresh findings: %w", err)
	}
	// Events are written in one order whatever the map iteration did.
	slices.SortFunc(diff.Fixed, func(a, b FindingEvent) int { return int(a.FindingID - b.FindingID) })
	if err := s.insertEvents(ctx, tx, imageID, diff); err != nil {
		return nil, err
	}
	if err := s.enqueueKEVFindingExports(ctx, tx, diff); err != nil {
		return nil, fmt.Errorf("queue finding exports: %w", err)
	}
	c := diff.Counts
	if _, err := s.exec(ctx, tx, `UPDATE images SET critical = ?, high = ?, medium = ?, low = ?, unknown = ?, kev = ?,
		fixable = ?, last_matched_at = ? WHERE id = ?`,
		c.Critical, c.High, c.Medium, c.Low, c.Unknown, c.KEV, c.Fixable, s.ts(now), imageID); err != nil {
		return nil, fmt.Errorf("update image counts: %w", err)
	}
	return diff, nil
}

func jsonEqual(a, b string) bool {
	if a == b {
		return true
	}
	var x, y []string
	// jsonb re-spaces arrays ("[\"1\", \"2\"]"); compare values.
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && slices.Equal(x, y)
}

// insertFindings inserts in batches with RETURNING, mapping ids back by key
// (row order of a multi-row RETURNING is not promised).
func (s *Store) insertFindings(ctx context.Context, tx *sql.Tx, imageID int64, fs []*Finding, now time.Time, inserted func(int64, *Finding)) error {
	const batch = 100
	for len(fs) > 0 {
		n := min(len(fs), batch)
		chunk := fs[:n]
		fs = fs[n:]
		args := make([]any, 0, n*18)
		byKey := make(map[findingKey]*Finding, n)
		for _, f := range chunk {
			fixed, _ := json.Marshal(nonNil(f.FixedVersions))
			args = append(args, imageID, f.VulnID, strings.Join(f.Aliases, " "), f.Ecosystem, f.Package, f.Version, f.PackageType,
				f.Location, f.InstalledVersion, string(fixed), f.Fixable(), int(f.Severity), f.CVSSScore, f.KEV, f.EPSS,
				f.Summary, f.MatchedBy, s.ts(now), s.ts(now))
			byKey[f.key()] = f
		}
		rows, err := s.query(ctx, tx, `INSERT INTO findings (image_id, vuln_id, aliases, ecosystem, package_name, package_version,
			package_type, location, installed_version, fixed_versions, fixable, severity, cvss_score, kev, epss, summary,
			matched_by, first_seen, last_seen) VALUES `+
			strings.TrimSuffix(strings.Repeat("("+placeholders(19)+"), ", n), ", ")+
			` RETURNING id, vuln_id, ecosystem, package_name, package_version, location`, args...)
		if err != nil {
			return fmt.Errorf("insert findings: %w", err)
		}
		type got struct {
			id int64
			f  *Finding
		}
		var ids []got
		for rows.Next() {
			var id int64
			var k findingKey
			if err := rows.Scan(&id, &k.vuln, &k.eco, &k.pkg, &k.ver, &k.loc); err != nil {
				rows.Close()
				return fmt.Errorf("insert findings: %w", err)
			}
			ids = append(ids, got{id, byKey[k]})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("insert findings: %w", err)
		}
		slices.SortFunc(ids, func(a, b got) int { return int(a.id - b.id) })
		for _, g := range ids {
			if g.f != nil {
				inserted(g.id, g.f)
			}
		}
	}
	return nil
}

func (s *Store) insertEvents(ctx context.Context, tx *sql.Tx, imageID int64, d *FindingsDiff) error {
	all := make([]*FindingEvent, 0, len(d.New)+len(d.Fixed)+len(d.Changed))
	for _, l := range [][]FindingEvent{d.New, d.Fixed, d.Changed} {
		for i := range l {
			all = append(all, &l[i])
		}
	}
	const batch = 100
	for len(all) > 0 {
		n := min(len(all), batch)
		args := make([]any, 0, n*11)
		for _, e := range all[:n] {
			var scanID any
			if e.ScanID != 0 {
				scanID = e.ScanID
			}
			args = append(args, imageID, e.FindingID, string(e.Kind), string(e.Source), scanID, e.VulnID, e.Package, e.Version,
				int(e.Severity), e.KEV, s.ts(e.At))
		}
		rows, err := s.query(ctx, tx, `INSERT INTO finding_events (image_id, finding_id, kind, source, scan_id, vuln_id,
			package_name, package_version, severity, kev, at) VALUES `+
			strings.TrimSuffix(strings.Repeat("("+placeholders(11)+"), ", n), ", ")+` RETURNING id`, args...)
		if err != nil {
			return fmt.Errorf("insert finding events: %w", err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("insert finding events: %w", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("insert finding events: %w", err)
		}
		// Identity values are assigned in VALUES order within one
		// statement in both backends; sort to be independent of the order
		// RETURNING reports them in.
		slices.Sort(ids)
		for i, e := range all[:n] {
			if i < len(ids) {
				e.ID = ids[i]
			}
		}
		all = all[n:]
	}
	return nil
}

// FindingFilter narrows ListFindings. Zero fields do not filter.
type FindingFilter struct {
	ImageDigest string
	// VulnID matches the advisory id or any of its aliases ("CVE-…").
	VulnID      string
	Package     string
	Ecosystem   string
	MinSeverity vulndb.Severity
	KEV         bool
	Fixable     bool
	// IncludeResolved lists fixed findings too (history).
	IncludeResolved bool
}

var findingSorts = map[string]string{
	"severity":   "f.severity",
	"cvss":       "f.cvss_score",
	"epss":       "f.epss",
	"vuln":       "f.vuln_id",
	"package":    "f.package_name",
	"first_seen": "f.first_seen",
	"last_seen":  "f.last_seen",
	"image":      "i.digest",
}

const findingCols = `f.id, i.digest, f.vuln_id, f.aliases, f.ecosystem, f.package_name, f.package_version, f.package_type,
	f.location, f.installed_version, f.fixed_versions, f.severity, f.cvss_score, f.kev, f.epss, f.summary, f.matched_by,
	f.first_seen, f.last_seen, f.resolved_at`

func scanFinding(sc scanner) (*Finding, error) {
	var f Finding
	var aliases, fixed string
	if err := sc.Scan(&f.ID, &f.ImageDigest, &f.VulnID, &aliases, &f.Ecosystem, &f.Package, &f.Version, &f.PackageType,
		&f.Location, &f.InstalledVersion, &fixed, &f.Severity, &f.CVSSScore, boolCol{&f.KEV}, &f.EPSS, &f.Summary,
		&f.MatchedBy, tcol(&f.FirstSeen), tcol(&f.LastSeen), tcol(&f.ResolvedAt)); err != nil {
		return nil, err
	}
	f.Aliases = strings.Fields(aliases)
	if err := json.Unmarshal([]byte(fixed), &f.FixedVersions); err != nil {
		return nil, fmt.Errorf("finding %d fixed versions: %w", f.ID, err)
	}
	if len(f.FixedVersions) == 0 {
		f.FixedVersions = nil
	}
	return &f, nil
}

// ListFindings returns a page of findings and the total matching. Open
// findings only unless IncludeResolved. Sort keys: severity (default
// -severity), cvss, epss, vuln, package, first_seen, last_seen, image.
func (s *Store) ListFindings(ctx context.Context, ff FindingFilter, p Page) ([]Finding, int, error) {
	order, err := p.orderBy(findingSorts, "-severity", "f.id")
	if err != nil {
		return nil, 0, fmt.Errorf("list findings: %w", err)
	}
	if ff.MinSeverity < vulndb.SeverityUnknown || ff.MinSeverity > vulndb.SeverityCritical {
		return nil, 0, fmt.Errorf("list findings: %w", invalid("severity %d", ff.MinSeverity))
	}
	var w where
	if !ff.IncludeResolved {
		w.add(`f.resolved_at IS NULL`)
	}
	if ff.ImageDigest != "" {
		w.add(`i.digest = ?`, ff.ImageDigest)
	}
	if ff.VulnID != "" {
		w.add(`(f.vuln_id = ? OR (' ' || f.aliases || ' ') LIKE ? ESCAPE '\')`, ff.VulnID, "% "+likeEscape(ff.VulnID)+" %")
	}
	if ff.Package != "" {
		w.add(`f.package_name = ?`, ff.Package)
	}
	if ff.Ecosystem != "" {
		w.add(`f.ecosystem = ?`, ff.Ecosystem)
	}
	if ff.MinSeverity > vulndb.SeverityUnknown {
		w.add(`f.severity >= ?`, int(ff.MinSeverity))
	}
	if ff.KEV {
		w.add(`f.kev = ?`, true)
	}
	if ff.Fixable {
		w.add(`f.fixable = ?`, true)
	}
	var out []Finding
	total, err := s.list(ctx, findingCols, "findings f JOIN images i ON i.id = f.image_id", &w, order, p, func(sc scanner) error {
		f, err := scanFinding(sc)
		if err == nil {
			out = append(out, *f)
		}
		return err
	})
	if err != nil {
		return nil, 0, s.wrapErr("list findings", err)
	}
	return out, total, nil
}

// EventFilter narrows ListFindingEvents.
type EventFilter struct {
	ImageDigest string
	Kind        FindingEventKind
	Source      FindingEventSource
	VulnID      string
	Since       time.Time
	// AfterID returns events with a larger id: a consumer (alerting, an
	// exporter) polls with the last id it saw.
	AfterID int64
}

var eventSorts = map[string]string{"id": "e.id", "at": "e.at", "severity": "e.severity"}

// ListFindingEvents returns a page of finding events. Sort keys: id
// (default -id), at, severity.
func (s *Store) ListFindingEvents(ctx context.Context, ef EventFilter, p Page) ([]FindingEvent, int, error) {
	order, err := p.orderBy(eventSorts, "-id", "e.id")
	if err != nil {
		return nil, 0, fmt.Errorf("list finding events: %w", err)
	}
	var w where
	if ef.ImageDigest != "" {
		w.add(`i.digest = ?`, ef.ImageDigest)
	}
	if ef.Kind != "" {
		if ef.Kind != EventNew && ef.Kind != EventFixed && ef.Kind != EventChanged {
			return nil, 0, fmt.Errorf("list finding events: %w", invalid("event kind %q (want new, fixed or changed)", ef.Kind))
		}
		w.add(`e.kind = ?`, string(ef.Kind))
	}
	if ef.Source != "" {
		if ef.Source != SourceScan && ef.Source != SourceRematch {
			return nil, 0, fmt.Errorf("list finding events: %w", invalid("event source %q (want scan or rematch)", ef.Source))
		}
		w.add(`e.source = ?`, string(ef.Source))
	}
	if ef.VulnID != "" {
		w.add(`e.vuln_id = ?`, ef.VulnID)
	}
	if !ef.Since.IsZero() {
		w.add(`e.at >= ?`, s.ts(ef.Since))
	}
	if ef.AfterID > 0 {
		w.add(`e.id > ?`, ef.AfterID)
	}
	var out []FindingEvent
	total, err := s.list(ctx, `e.id, i.digest, e.finding_id, e.kind, e.source, e.scan_id, e.vuln_id, e.package_name,
		e.package_version, e.severity, e.kev, e.at`, "finding_events e JOIN images i ON i.id = e.image_id", &w, order, p,
		func(sc scanner) error {
			var e FindingEvent
			var kind, src string
			var scanID sql.NullInt64
			if err := sc.Scan(&e.ID, &e.ImageDigest, &e.FindingID, &kind, &src, &scanID, &e.VulnID, &e.Package, &e.Version,
				&e.Severity, boolCol{&e.KEV}, tcol(&e.At)); err != nil {
				return err
			}
			e.Kind, e.Source, e.ScanID = FindingEventKind(kind), FindingEventSource(src), scanID.Int64
			out = append(out, e)
			return nil
		})
	if err != nil {
		return nil, 0, s.wrapErr("list finding events", err)
	}
	return out, total, nil
}
