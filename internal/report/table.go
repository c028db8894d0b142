package report

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// ANSI colour codes. Every code is exactly five bytes long and every table
// cell is painted exactly once when colour is on, so text/tabwriter (which
// counts the escape bytes as text) pads every cell of a column by the same
// amount and the columns stay aligned.
const (
	ansiReset    = "\x1b[0m"
	ansiBold     = "\x1b[01m"
	ansiPlain    = "\x1b[39m"
	ansiCritical = "\x1b[91m"
	ansiHigh     = "\x1b[31m"
	ansiMedium   = "\x1b[33m"
	ansiLow      = "\x1b[36m"
	ansiUnknown  = "\x1b[90m"
	ansiKEV      = "\x1b[35m"
)

// Column caps (in characters) before the terminal width is considered.
const (
	capID       = 32
	capPackage  = 40
	capVersion  = 30
	capFixed    = 32
	capTitle    = 80 // when the width is unknown
	wantTitle   = 30 // what other columns shrink for on a narrow terminal
	minTitle    = 12
	cellPadding = 2
)

// floors are the widths columns never shrink below to fit a terminal: an ID
// must stay whole ("RUSTSEC-2021-0045"), severity is short already, no
// column goes below its header's width (tabwriter would widen it again); the
// others can lose their tails.
var floors = []int{18, 0, 10, 9, 8}

var severityOrder = []vulndb.Severity{
	vulndb.SeverityCritical, vulndb.SeverityHigh, vulndb.SeverityMedium,
	vulndb.SeverityLow, vulndb.SeverityUnknown,
}

func severityColor(s vulndb.Severity) string {
	switch s {
	case vulndb.SeverityCritical:
		return ansiCritical
	case vulndb.SeverityHigh:
		return ansiHigh
	case vulndb.SeverityMedium:
		return ansiMedium
	case vulndb.SeverityLow:
		return ansiLow
	}
	return ansiUnknown
}

type painter bool

func (p painter) paint(code, s string) string {
	if !p || code == "" {
		return s
	}
	return code + s + ansiReset
}

func writeTable(buf *bytes.Buffer, res *scan.Result, opts Options) error {
	p := painter(opts.Color)
	var out bytes.Buffer

	writeHeader(&out, res, p)

	findings := sortedFindings(res.Findings)
	switch {
	case len(findings) > 0:
		out.WriteByte('\n')
		writeFindings(&out, findings, opts, p)
		writeNotes(&out, findings)
	case res.DB != nil:
		out.WriteString("\nNo vulnerabilities found.\n")
	}

	if opts.ListPackages {
		out.WriteByte('\n')
		writePackages(&out, res.Packages, opts, p)
	}

	out.WriteByte('\n')
	out.WriteString(summaryLine(res))
	out.WriteByte('\n')

	if len(res.Errors) > 0 {
		writeErrors(&out, res.Errors)
	}

	// tabwriter pads empty trailing cells; drop the trailing blanks so the
	// output diffs cleanly and golden files stay readable.
	for line := range bytes.Lines(out.Bytes()) {
		buf.Write(bytes.TrimRight(line, " \n"))
		buf.WriteByte('\n')
	}
	return nil
}

func writeHeader(out *bytes.Buffer, res *scan.Result, p painter) {
	tw := tabwriter.NewWriter(out, 0, 0, cellPadding, ' ', 0)
	row := func(k, v string) {
		fmt.Fprintf(tw, "%s\t%s\n", p.paint(ansiBold, k), v)
	}
	t := res.Target
	target := oneLine(t.Name)
	var extra []string
	if t.Kind != "" {
		extra = append(extra, oneLine(t.Kind))
	}
	if t.Platform != "" {
		extra = append(extra, oneLine(t.Platform))
	}
	if len(extra) > 0 {
		target += " (" + strings.Join(extra, ", ") + ")"
	}
	row("Target:", target)
	if t.Digest != "" {
		row("Digest:", oneLine(t.Digest))
	}
	row("OS:", osLine(res.OS))

	pk := strconv.Itoa(len(res.Packages))
	if n := countOSInstalled(res.Packages); n > 0 {
		pk += fmt.Sprintf(" (%d language %s installed by OS packages, matched through the OS advisories)", n, plural(n, "package", "packages"))
	}
	row("Packages:", pk)
	row("Database:", dbLine(res))
	_ = tw.Flush()
}

func osLine(o *inventory.OS) string {
	if o == nil {
		return "not detected"
	}
	id := strings.TrimSpace(oneLine(o.ID) + " " + oneLine(o.VersionID))
	if o.PrettyName != "" {
		return fmt.Sprintf("%s [%s]", oneLine(o.PrettyName), id)
	}
	return id
}

func dbLine(res *scan.Result) string {
	db := res.DB
	if db == nil {
		return "none (inventory only, no vulnerability matching)"
	}
	s := fmt.Sprintf("%s vulnerabilities from %d %s", Thousands(db.Vulnerabilities), len(db.Sources), plural(len(db.Sources), "source", "sources"))
	if !db.Built.IsZero() {
		s += ", built " + db.Built.UTC().Format("2006-01-02 15:04 MST")
		if !res.FinishedAt.IsZero() && res.FinishedAt.After(db.Built) {
			s += " (" + age(res.FinishedAt.Sub(db.Built)) + " before the scan)"
		}
	}
	return s
}

// age says how old the database was at scan time, in the unit that matters:
// a CI gate on a week-old database misses a week of advisories.
func age(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	case d >= time.Hour:
		return "1 hour"
	}
	return "less than an hour"
}

func countOSInstalled(pkgs []inventory.Package) int {
	n := 0
	for i := range pkgs {
		if pkgs[i].OSPackage != "" {
			n++
		}
	}
	return n
}

// row is one table line: its cells and the colour each is painted with.
type row struct {
	cells  []string
	colors []string
}

func writeFindings(out *bytes.Buffer, findings []*scan.Finding, opts Options, p painter) {
	header := row{
		cells:  []string{"ID", "SEVERITY", "PACKAGE", "INSTALLED", "FIXED", "TITLE"},
		colors: []string{ansiBold, ansiBold, ansiBold, ansiBold, ansiBold, ansiBold},
	}
	caps := []int{capID, 0, capPackage, capVersion, capFixed}

	type group struct {
		sev  vulndb.Severity
		rows []row
	}
	var groups []group
	// The same vulnerability in the same package version found in several
	// files (the Go standard library of two binaries) is one row that says
	// how many files; --format json lists each.
	type rowKey struct{ id, pkg, installed, fixed string }
	var lastKey rowKey
	lastCount := 0
	for _, f := range findings {
		sev := severityOf(f)
		if len(groups) == 0 || groups[len(groups)-1].sev != sev {
			groups = append(groups, group{sev: sev})
		}
		id := oneLine(vulnID(f))
		idColor := ansiPlain
		if f.Vulnerability != nil && f.Vulnerability.KEV != nil {
			id += " [KEV]"
			idColor = ansiKEV
		}
		sevCell := sev.String()
		if c := primaryCVSS(f.Vulnerability); c != nil {
			sevCell += " " + formatScore(c.Score)
		}
		pkg := oneLine(f.Package.Name)
		if f.Package.OSPackage != "" {
			pkg += "*"
		}
		installed := f.InstalledVersion
		if installed == "" {
			installed = f.Package.Version
		}
		fixed := "no fix"
		if len(f.FixedVersions) > 0 {
			fixed = oneLine(strings.Join(f.FixedVersions, ", "))
		}
		g := &groups[len(groups)-1]
		key := rowKey{id, pkg, installed, fixed}
		if len(g.rows) > 0 && key == lastKey {
			lastCount++
			g.rows[len(g.rows)-1].cells[2] = fmt.Sprintf("%s (%d files)", pkg, lastCount)
			continue
		}
		lastKey, lastCount = key, 1
		g.rows = append(g.rows, row{
			cells:  []string{id, sevCell, pkg, oneLine(installed), fixed, title(f.Vulnerability)},
			colors: []string{idColor, severityColor(sev), ansiPlain, ansiPlain, ansiPlain, ansiPlain},
		})
	}

	// Cap the fixed columns, then give the title what the width leaves.
	var all []*row
	for gi := range groups {
		for ri := range groups[gi].rows {
			all = append(all, &groups[gi].rows[ri])
		}
	}
	widths := make([]int, len(header.cells)-1)
	for i := range widths {
		widths[i] = utf8.RuneCountInString(header.cells[i])
	}
	for _, r := range all {
		for i := range widths {
			if caps[i] > 0 {
				r.cells[i] = truncate(r.cells[i], caps[i])
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(r.cells[i]))
		}
	}
	for _, g := range groups {
		widths[0] = max(widths[0], utf8.RuneCountInString(groupHeading(g.sev, len(g.rows))))
	}
	titleWidth := capTitle
	if opts.Width > 0 {
		longest := 0
		for _, r := range all {
			longest = max(longest, utf8.RuneCountInString(r.cells[len(r.cells)-1]))
		}
		widths = fitWidths(widths, opts.Width, min(longest, wantTitle))
		for _, r := range all {
			for i := range widths {
				r.cells[i] = truncate(r.cells[i], widths[i])
			}
		}
		used := 0
		for _, w := range widths {
			used += w + cellPadding
		}
		titleWidth = max(opts.Width-used, minTitle)
	}
	for _, r := range all {
		r.cells[len(r.cells)-1] = truncate(r.cells[len(r.cells)-1], titleWidth)
	}

	tw := tabwriter.NewWriter(out, 0, 0, cellPadding, ' ', 0)
	emit := func(r row) {
		for i, c := range r.cells {
			tw.Write([]byte(p.paint(r.colors[i], c)))
			if i < len(r.cells)-1 {
				tw.Write([]byte{'\t'})
			}
		}
		tw.Write([]byte{'\n'})
	}
	emit(header)
	for _, g := range groups {
		// The heading row keeps the table's columns (a line without tabs
		// would end tabwriter's column block and realign every group on
		// its own); its empty cells stay unpainted so they trim away.
		heading := row{cells: make([]string, len(header.cells)), colors: make([]string, len(header.cells))}
		heading.cells[0] = groupHeading(g.sev, len(g.rows))
		heading.colors[0] = severityColor(g.sev)
		emit(heading)
		for _, r := range g.rows {
			emit(r)
		}
	}
	_ = tw.Flush()
}

// fitWidths shrinks the widest shrinkable columns, one character at a
// time, until the title gets title characters of a terminal width
// characters wide, or every column is at its floor (the title then gets
// what is left, at least minTitle; a very narrow terminal wraps lines,
// which beats unreadable cells).
func fitWidths(widths []int, width, title int) []int {
	w := slices.Clone(widths)
	total := func() int {
		t := max(title, minTitle)
		for _, x := range w {
			t += x + cellPadding
		}
		return t
	}
	for total() > width {
		widest := -1
		for i := range w {
			if floors[i] > 0 && w[i] > floors[i] && (widest < 0 || w[i] > w[widest]) {
				widest = i
			}
		}
		if widest < 0 {
			break
		}
		w[widest]--
	}
	return w
}

func groupHeading(s vulndb.Severity, n int) string {
	return fmt.Sprintf("%s (%d)", s, n)
}

// writeNotes explains the marked rows: language packages the OS installed,
// and how a match was made where the matcher said so.
func writeNotes(out *bytes.Buffer, findings []*scan.Finding) {
	var notes []string
	marked := false
	for _, f := range findings {
		var parts []string
		if f.Package.OSPackage != "" {
			marked = true
			parts = append(parts, "installed by the OS package "+oneLine(f.Package.OSPackage))
		}
		if f.Note != "" {
			parts = append(parts, oneLine(f.Note))
		}
		if len(parts) == 0 {
			continue
		}
		notes = append(notes, fmt.Sprintf("  %s in %s %s: %s", oneLine(vulnID(f)),
			oneLine(f.Package.Name), oneLine(f.Package.Version), strings.Join(parts, "; ")))
	}
	if len(notes) == 0 {
		return
	}
	out.WriteByte('\n')
	if marked {
		out.WriteString("* a language package installed by an OS package: distributions backport fixes, so its OS package's advisories apply.\n")
	}
	out.WriteString("Notes:\n")
	for _, n := range slices.Compact(notes) {
		out.WriteString(n)
		out.WriteByte('\n')
	}
}

func writePackages(out *bytes.Buffer, pkgs []inventory.Package, opts Options, p painter) {
	sorted := make([]*inventory.Package, len(pkgs))
	for i := range pkgs {
		sorted[i] = &pkgs[i]
	}
	slices.SortStableFunc(sorted, func(a, b *inventory.Package) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Version, b.Version), cmp.Compare(a.Location, b.Location))
	})
	fmt.Fprintf(out, "%s\n", p.paint(ansiBold, fmt.Sprintf("Packages (%d):", len(pkgs))))
	tw := tabwriter.NewWriter(out, 0, 0, cellPadding, ' ', 0)
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.paint(ansiBold, "TYPE"), p.paint(ansiBold, "NAME"), p.paint(ansiBold, "VERSION"), p.paint(ansiBold, "LOCATION"))
	locWidth := 0 // unlimited
	if opts.Width > 0 {
		locWidth = max(opts.Width-60, minTitle)
	}
	for _, pk := range sorted {
		loc := oneLine(fullLocation(pk))
		if pk.OSPackage != "" {
			loc += " (installed by " + oneLine(pk.OSPackage) + ")"
		}
		if locWidth > 0 {
			loc = truncate(loc, locWidth)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n",
			p.paint(ansiPlain, oneLine(pk.Type)),
			p.paint(ansiPlain, truncate(oneLine(pk.Name), capPackage)),
			p.paint(ansiPlain, truncate(oneLine(pk.Version), capVersion)),
			p.paint(ansiPlain, loc))
	}
	_ = tw.Flush()
}

// summaryLine is the last word of the table: what remains, what could be
// fixed, what was hidden.
func summaryLine(res *scan.Result) string {
	counts := map[vulndb.Severity]int{}
	fixable := 0
	for i := range res.Findings {
		f := &res.Findings[i]
		counts[severityOf(f)]++
		if len(f.FixedVersions) > 0 {
			fixable++
		}
	}
	var parts []string
	for _, s := range severityOrder {
		if s == vulndb.SeverityUnknown && counts[s] == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%d %s", counts[s], strings.ToLower(s.String())))
	}
	n := len(res.Findings)
	line := fmt.Sprintf("%d %s (%s), %d fixable; %d suppressed",
		n, plural(n, "vulnerability", "vulnerabilities"), strings.Join(parts, ", "), fixable, len(res.Suppressed))
	if len(res.Suppressed) > 0 {
		kinds := map[string]int{}
		for i := range res.Suppressed {
			k := "unknown"
			if s := res.Suppressed[i].Suppression; s != nil && s.Kind != "" {
				k = oneLine(s.Kind)
			}
			kinds[k]++
		}
		var ks []string
		for k, c := range kinds {
			ks = append(ks, fmt.Sprintf("%d %s", c, k))
		}
		slices.SortFunc(ks, func(a, b string) int {
			_, ka, _ := strings.Cut(a, " ")
			_, kb, _ := strings.Cut(b, " ")
			return cmp.Compare(ka, kb)
		})
		line += " (" + strings.Join(ks, ", ") + ")"
	}
	return line
}

func writeErrors(out *bytes.Buffer, errs []scan.FileError) {
	fmt.Fprintf(out, "\n%d %s while reading the target; the inventory may be incomplete:\n",
		len(errs), plural(len(errs), "error", "errors"))
	for _, e := range errs {
		var where []string
		if e.Path != "" {
			where = append(where, oneLine(e.Path))
		}
		if e.Layer != "" {
			where = append(where, "layer "+shortDigest(oneLine(e.Layer)))
		}
		if e.Extractor != "" {
			where = append(where, oneLine(e.Extractor))
		}
		prefix := ""
		if len(where) > 0 {
			prefix = strings.Join(where, ", ") + ": "
		}
		fmt.Fprintf(out, "  %s%s\n", prefix, oneLine(e.Error))
	}
}

// shortDigest keeps "sha256:" and 12 hex digits, as docker does.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}

// truncate cuts s to at most n characters, marking the cut with "…".
func truncate(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	if n == 1 {
		return "…"
	}
	i := 0
	for j := range s {
		if i == n-1 {
			return s[:j] + "…"
		}
		i++
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Thousands formats an integer with comma thousands separators (12,345),
// for the table report and the web console alike.
func Thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
