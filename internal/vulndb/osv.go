package vulndb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// MaxRecordSize bounds one record (one file) read from an input. The
// largest real record seen (an AlmaLinux kernel advisory) is ~200 KiB; the
// bound keeps hostile inputs (huge strings, YAML bombs) from using memory
// without limit.
const MaxRecordSize = 4 << 20

// osvRecord is the subset of the OSV schema Bulwark reads
// (https://ossf.github.io/osv-schema/). Free-form objects
// (database_specific, ecosystem_specific) are read only for "severity",
// and ecosystem_specific also for go-vulndb's "imports".
type osvRecord struct {
	SchemaVersion    string        `json:"schema_version" yaml:"schema_version"`
	ID               string        `json:"id" yaml:"id"`
	Modified         string        `json:"modified" yaml:"modified"`
	Published        string        `json:"published" yaml:"published"`
	Withdrawn        string        `json:"withdrawn" yaml:"withdrawn"`
	Aliases          []string      `json:"aliases" yaml:"aliases"`
	Related          []string      `json:"related" yaml:"related"`
	Summary          string        `json:"summary" yaml:"summary"`
	Details          string        `json:"details" yaml:"details"`
	Severity         []osvSeverity `json:"severity" yaml:"severity"`
	Affected         []osvAffected `json:"affected" yaml:"affected"`
	References       []osvRef      `json:"references" yaml:"references"`
	DatabaseSpecific specific      `json:"database_specific" yaml:"database_specific"`
}

type osvSeverity struct {
	Type  string `json:"type" yaml:"type"`
	Score string `json:"score" yaml:"score"`
}

type osvAffected struct {
	Package struct {
		Ecosystem string `json:"ecosystem" yaml:"ecosystem"`
		Name      string `json:"name" yaml:"name"`
		PURL      string `json:"purl" yaml:"purl"`
	} `json:"package" yaml:"package"`
	Severity          []osvSeverity `json:"severity" yaml:"severity"`
	Ranges            []osvRange    `json:"ranges" yaml:"ranges"`
	Versions          []string      `json:"versions" yaml:"versions"`
	EcosystemSpecific ecoSpecific   `json:"ecosystem_specific" yaml:"ecosystem_specific"`
	DatabaseSpecific  specific      `json:"database_specific" yaml:"database_specific"`
}

// ecoSpecific is an affected package's ecosystem_specific object: the
// severity some databases write there, and the packages go-vulndb lists
// (https://go.dev/security/vuln/database#schema).
type ecoSpecific struct {
	Severity any        `json:"severity" yaml:"severity"`
	Imports  osvImports `json:"imports" yaml:"imports"`
}

// osvImport is one vulnerable package of a Go module: its import path,
// the platforms it is limited to (empty: all) and its vulnerable symbols
// (empty: all of them).
type osvImport struct {
	Path    string   `json:"path" yaml:"path"`
	GOOS    []string `json:"goos" yaml:"goos"`
	GOARCH  []string `json:"goarch" yaml:"goarch"`
	Symbols []string `json:"symbols" yaml:"symbols"`
}

// osvImports decodes leniently: ecosystem_specific is free-form, so an
// "imports" of another shape (another database's meaning) is ignored
// rather than failing the whole record.
type osvImports []osvImport

func (o *osvImports) UnmarshalJSON(b []byte) error {
	var v []osvImport
	if json.Unmarshal(b, &v) == nil {
		*o = v
	}
	return nil
}

func (o *osvImports) UnmarshalYAML(n *yaml.Node) error {
	var v []osvImport
	if n.Decode(&v) == nil {
		*o = v
	}
	return nil
}

type osvRange struct {
	Type   string              `json:"type" yaml:"type"`
	Events []map[string]string `json:"events" yaml:"events"`
}

type osvRef struct {
	Type string `json:"type" yaml:"type"`
	URL  string `json:"url" yaml:"url"`
}

// specific reads "severity" from a free-form object, whatever its other
// fields hold. GHSA, Ubuntu and others write a word there.
type specific struct {
	Severity any `json:"severity" yaml:"severity"`
}

// errNotRecord marks a well-formed file that is not an OSV record (a
// package.json, a Go report YAML, a README in JSON): it is ignored, not
// counted as malformed.
var errNotRecord = errors.New("not an OSV record")

// parseOSV decodes one OSV record from JSON or YAML (isYAML). withdrawn is
// true for a withdrawn record (returned without affected packages).
func parseOSV(data []byte, isYAML bool, source string) (rec *record, withdrawn bool, err error) {
	if len(data) > MaxRecordSize {
		return nil, false, fmt.Errorf("record is %d bytes, over the %d limit", len(data), MaxRecordSize)
	}
	var o osvRecord
	if isYAML {
		if err := decodeYAML(data, &o); err != nil {
			return nil, false, err // errNotRecord passes through
		}
	} else {
		trimmed := bytes.TrimSpace(data)
		if len(trimmed) == 0 || trimmed[0] != '{' {
			if json.Valid(trimmed) {
				return nil, false, errNotRecord
			}
		}
		if err := json.Unmarshal(data, &o); err != nil {
			return nil, false, fmt.Errorf("decode JSON: %w", err)
		}
	}
	if o.ID == "" && o.Modified == "" {
		return nil, false, errNotRecord
	}
	if err := checkID(o.ID); err != nil {
		return nil, false, err
	}
	r := &record{ID: o.ID, Summary: o.Summary, Details: o.Details}
	if r.Modified, err = parseTime(o.Modified); err != nil {
		return nil, false, fmt.Errorf("record %s: modified: %w", o.ID, err)
	}
	if o.Published != "" {
		if r.Published, err = parseTime(o.Published); err != nil {
			return nil, false, fmt.Errorf("record %s: published: %w", o.ID, err)
		}
	}
	if o.Withdrawn != "" {
		return r, true, nil
	}
	for _, a := range o.Aliases {
		if checkID(a) == nil && a != o.ID {
			r.Aliases = append(r.Aliases, a)
		}
	}
	for _, a := range o.Related {
		if checkID(a) == nil && a != o.ID {
			r.Related = append(r.Related, a)
		}
	}
	for _, ref := range o.References {
		if ref.URL != "" {
			r.References = append(r.References, ref.URL)
		}
	}
	for _, s := range o.Severity {
		if c, ok := scoreOSVSeverity(s, "osv"); ok {
			r.CVSS = append(r.CVSS, c)
		} else if s.Type == "Ubuntu" {
			r.Severity = max(r.Severity, severityWord(s.Score))
		}
	}
	r.Severity = max(r.Severity, severityWord(o.DatabaseSpecific.Severity))
	if strings.HasPrefix(o.ID, "ALSA-") || strings.HasPrefix(o.ID, "RHSA-") || strings.HasPrefix(o.ID, "RLSA-") {
		// Red Hat style advisories put their rating first in the summary:
		// "Important: gupnp security update".
		if word, _, ok := strings.Cut(o.Summary, ":"); ok {
			r.Severity = max(r.Severity, severityWord(word))
		}
	}
	for i, a := range o.Affected {
		r.Severity = max(r.Severity, severityWord(a.EcosystemSpecific.Severity), severityWord(a.DatabaseSpecific.Severity))
		for _, s := range a.Severity {
			if c, ok := scoreOSVSeverity(s, "osv"); ok {
				r.CVSS = append(r.CVSS, c)
			}
		}
		if a.Package.Name == "" || a.Package.Ecosystem == "" {
			continue // GIT-only entries name a repository, not a package
		}
		af := affected{Ecosystem: a.Package.Ecosystem, Name: a.Package.Name, Imports: goImports(a.EcosystemSpecific.Imports)}
		base, _ := splitEcosystem(af.Ecosystem)
		for j, rg := range a.Ranges {
			if rg.Type != "ECOSYSTEM" && rg.Type != "SEMVER" {
				continue // GIT ranges are commits: they cannot match a version
			}
			var evs []osvEvent
			for _, e := range rg.Events {
				for k, v := range e {
					switch k {
					case "introduced", "fixed", "last_affected", "limit":
						if v == "" || len(v) > 256 {
							return nil, false, fmt.Errorf("record %s: affected[%d].ranges[%d]: bad %s version %q", o.ID, i, j, k, truncate(v))
						}
						evs = append(evs, osvEvent{kind: k, version: v})
					}
				}
			}
			af.Ranges = append(af.Ranges, eventsToIntervals(base, rg.Type == "SEMVER", evs)...)
		}
		// Explicit versions add to the ranges; most lists (PyPA, GHSA)
		// enumerate what the ranges already cover, so keep only the rest.
		covered := rangesCover(base, af.Ranges)
		for _, v := range a.Versions {
			if v == "" || len(v) > 256 {
				continue
			}
			if !covered(v) {
				af.Versions = append(af.Versions, v)
			}
		}
		if len(af.Ranges) == 0 && len(af.Versions) == 0 {
			if len(a.Ranges) == 0 && len(a.Versions) == 0 {
				// OSV: no ranges and no versions means every version.
				af.Ranges = []interval{{}}
			} else {
				continue
			}
		}
		r.Affected = append(r.Affected, af)
	}
	return r, false, nil
}

// maxImportField bounds the strings of an import (paths, platform names,
// symbols); longer ones are not Go identifiers or import paths.
const maxImportField = 512

// goImports keeps the well-formed entries of go-vulndb's imports list.
func goImports(in osvImports) []goImport {
	var out []goImport
	clean := func(ss []string) []string {
		var out []string
		for _, s := range ss {
			if s != "" && len(s) <= maxImportField {
				out = append(out, s)
			}
		}
		return out
	}
	for _, imp := range in {
		if imp.Path == "" || len(imp.Path) > maxImportField {
			continue
		}
		out = append(out, goImport{Path: imp.Path, GOOS: clean(imp.GOOS), GOARCH: clean(imp.GOARCH), Symbols: clean(imp.Symbols)})
	}
	return out
}

// decodeYAML decodes data into v after checking that the document holds no
// aliases: OSV records never use them, and refusing them outright removes
// the "billion laughs" expansion. Parsing to a node tree first keeps memory
// proportional to the input (bounded by MaxRecordSize); yaml.v3 also caps
// nesting depth.
func decodeYAML(data []byte, v any) error {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("decode YAML: %w", err)
	}
	if len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
		return errNotRecord
	}
	if hasAlias(&n, 0) {
		return errors.New("decode YAML: aliases are not allowed in advisories")
	}
	if err := n.Decode(v); err != nil {
		return fmt.Errorf("decode YAML: %w", err)
	}
	return nil
}

func hasAlias(n *yaml.Node, depth int) bool {
	if n.Kind == yaml.AliasNode || n.Anchor != "" || depth > 10000 {
		return true
	}
	for _, c := range n.Content {
		if hasAlias(c, depth+1) {
			return true
		}
	}
	return false
}

// checkID accepts the IDs advisories use: short, printable, no spaces.
func checkID(id string) error {
	if id == "" {
		return errors.New("record has no id")
	}
	if len(id) > 128 {
		return fmt.Errorf("id %q is too long", truncate(id))
	}
	for _, r := range id {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("id %q has a blank or control character", truncate(id))
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("bad time %q", truncate(s))
}

// severityWord reads a qualitative rating from a free-form value; anything
// else (numbers, objects, unknown words) reads as unknown.
func severityWord(v any) Severity {
	s, ok := v.(string)
	if !ok {
		return SeverityUnknown
	}
	sev, err := ParseSeverity(s)
	if err != nil {
		return SeverityUnknown
	}
	return sev
}
