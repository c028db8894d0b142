package report

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// Format names an output format.
type Format string

// The formats Write knows.
const (
	FormatTable     Format = "table"
	FormatJSON      Format = "json"
	FormatSARIF     Format = "sarif"
	FormatCycloneDX Format = "cyclonedx"
	FormatSPDX      Format = "spdx"
)

// ErrUnknownFormat is returned for a format name Write does not know.
var ErrUnknownFormat = errors.New("unknown report format")

// Formats lists the format names in the order --help shows them.
func Formats() []string {
	return []string{string(FormatTable), string(FormatJSON), string(FormatSARIF), string(FormatCycloneDX), string(FormatSPDX)}
}

// ParseFormat reads a --format value (case-insensitive). A few names other
// tools use are accepted too, so pipelines can switch scanners without
// rewriting flags.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "table", "text":
		return FormatTable, nil
	case "json":
		return FormatJSON, nil
	case "sarif":
		return FormatSARIF, nil
	case "cyclonedx", "cyclonedx-json", "cdx":
		return FormatCycloneDX, nil
	case "spdx", "spdx-json":
		return FormatSPDX, nil
	}
	return "", fmt.Errorf("%w %q (want %s)", ErrUnknownFormat, s, strings.Join(Formats(), ", "))
}

// Options shape the output. The zero value is right for a file or a pipe.
type Options struct {
	// Color turns on ANSI colours in the table. Set it only when the output
	// is a terminal: colour codes in a file or a CI log are noise.
	Color bool
	// Width is the terminal width the table should fit in; titles, then
	// other long cells, are cut with "…" to fit. 0 means no limit, and
	// titles are cut at 80 characters.
	Width int
	// ListPackages adds the inventory to the table output.
	ListPackages bool
}

// Write renders res in format to w. The report is built in memory and
// written with one Write call, so a rendering error never leaves half a
// document behind.
func Write(ctx context.Context, w io.Writer, res *scan.Result, format Format, opts Options) error {
	if res == nil {
		return errors.New("write report: no result")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write %s report: %w", format, err)
	}
	var buf bytes.Buffer
	var err error
	switch format {
	case FormatTable:
		err = writeTable(&buf, res, opts)
	case FormatJSON:
		err = writeJSON(&buf, res)
	case FormatSARIF:
		err = writeSARIF(&buf, res)
	case FormatCycloneDX:
		err = writeCycloneDX(&buf, res)
	case FormatSPDX:
		err = writeSPDX(&buf, res)
	default:
		return fmt.Errorf("write report: %w %q", ErrUnknownFormat, format)
	}
	if err != nil {
		return fmt.Errorf("write %s report: %w", format, err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write %s report: %w", format, err)
	}
	return nil
}

// severityOf is the severity a finding is reported and gated with.
func severityOf(f *scan.Finding) vulndb.Severity {
	if f.Vulnerability == nil {
		return vulndb.SeverityUnknown
	}
	return f.Vulnerability.Severity
}

// vulnOf never returns nil, so renderers need no nil checks for a finding
// the matcher left without its record.
func vulnOf(f *scan.Finding) *vulndb.Vulnerability {
	if f.Vulnerability == nil {
		return &vulndb.Vulnerability{}
	}
	return f.Vulnerability
}

func vulnID(f *scan.Finding) string {
	if f.Vulnerability == nil {
		return ""
	}
	return f.Vulnerability.ID
}

// primaryCVSS picks the one score shown next to a severity. CVSS 3.1 is
// preferred, then 3.0, 4.0 and 2.0: v3 is what most advisories carry, so the
// number lines up with what users see elsewhere, and GitHub's
// security-severity bands are defined on it. Within a version the highest
// score wins, as the conservative choice.
func primaryCVSS(v *vulndb.Vulnerability) *vulndb.CVSS {
	if v == nil {
		return nil
	}
	rank := func(version string) int {
		switch version {
		case "3.1":
			return 4
		case "3.0":
			return 3
		case "4.0":
			return 2
		case "2.0":
			return 1
		}
		return 0
	}
	var best *vulndb.CVSS
	for i := range v.CVSS {
		c := &v.CVSS[i]
		if c.Score <= 0 {
			continue
		}
		if best == nil || rank(c.Version) > rank(best.Version) ||
			(rank(c.Version) == rank(best.Version) && c.Score > best.Score) {
			best = c
		}
	}
	return best
}

// formatScore prints a CVSS score with one decimal, as every CVSS calculator
// does.
func formatScore(s float64) string { return strconv.FormatFloat(s, 'f', 1, 64) }

// title is the one-line description of a vulnerability: its summary, else
// the first sentence of its details, else its ID.
func title(v *vulndb.Vulnerability) string {
	if v == nil {
		return ""
	}
	if s := oneLine(v.Summary); s != "" {
		return s
	}
	d := oneLine(v.Details)
	if i := strings.Index(d, ". "); i > 0 {
		d = d[:i+1]
	}
	return d
}

// oneLine collapses runs of white space (newlines included) into one space
// and drops control characters, so advisory text cannot break a table row or
// smuggle terminal escape sequences into the user's terminal.
func oneLine(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case unicode.IsControl(r), r == unicode.ReplacementChar:
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sortedFindings returns the findings in report order: most severe first,
// known-exploited first within a severity, then by score, package, ID. It
// never reorders res.Findings itself.
func sortedFindings(fs []scan.Finding) []*scan.Finding {
	out := make([]*scan.Finding, len(fs))
	for i := range fs {
		out[i] = &fs[i]
	}
	slices.SortStableFunc(out, compareFindings)
	return out
}

func compareFindings(a, b *scan.Finding) int {
	if c := cmp.Compare(severityOf(b), severityOf(a)); c != 0 {
		return c
	}
	if c := cmp.Compare(isKEV(b), isKEV(a)); c != 0 {
		return c
	}
	if c := cmp.Compare(scoreOf(b), scoreOf(a)); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Package.Name, b.Package.Name); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Package.Version, b.Package.Version); c != 0 {
		return c
	}
	if c := cmp.Compare(vulnID(a), vulnID(b)); c != 0 {
		return c
	}
	return cmp.Compare(a.Package.Location, b.Package.Location)
}

func isKEV(f *scan.Finding) int {
	if f.Vulnerability != nil && f.Vulnerability.KEV != nil {
		return 1
	}
	return 0
}

func scoreOf(f *scan.Finding) float64 {
	if c := primaryCVSS(f.Vulnerability); c != nil {
		return c.Score
	}
	return 0
}

// osvURL is the page of a vulnerability on osv.dev, which serves every ID
// kind Bulwark imports (CVE, GHSA, GO, PYSEC, RUSTSEC, ALSA...), so it is
// one help link that always works.
func osvURL(id string) string {
	return "https://osv.dev/vulnerability/" + pathEscapeID(id)
}

// pathEscapeID escapes an advisory ID for a URL path. IDs are short ASCII
// strings ("ALSA-2024:1234"); anything else is percent-encoded.
func pathEscapeID(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-._~:", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
