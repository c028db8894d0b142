package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// SARIF 2.1.0 (OASIS), the subset GitHub code scanning reads:
// https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning
// The structs are our own: the format is small and stable, and a library
// would add a dependency for a dozen fields.
const (
	sarifSchema  = "https://json.schemastore.org/sarif-2.1.0.json"
	sarifVersion = "2.1.0"
	// informationURI is where users learn about the tool.
	informationURI = "https://github.com/bulwark-security/bulwark"
)

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool       sarifTool         `json:"tool"`
	Results    []sarifResult     `json:"results"`
	Properties *sarifRunProperty `json:"properties,omitempty"`
}

type sarifRunProperty struct {
	TargetKind string   `json:"bulwark.target.kind,omitempty"`
	TargetName string   `json:"bulwark.target.name,omitempty"`
	Digest     string   `json:"bulwark.target.digest,omitempty"`
	Platform   string   `json:"bulwark.target.platform,omitempty"`
	RepoTags   []string `json:"bulwark.target.repoTags,omitempty"`
	Suppressed int      `json:"bulwark.suppressed"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifMultiformat struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

type sarifRule struct {
	ID                   string              `json:"id"`
	Name                 string              `json:"name,omitempty"`
	ShortDescription     sarifMessage        `json:"shortDescription"`
	FullDescription      sarifMessage        `json:"fullDescription"`
	Help                 sarifMultiformat    `json:"help"`
	HelpURI              string              `json:"helpUri,omitempty"`
	DefaultConfiguration sarifConfiguration  `json:"defaultConfiguration"`
	Properties           sarifRuleProperties `json:"properties"`
}

type sarifConfiguration struct {
	Level string `json:"level"`
}

type sarifRuleProperties struct {
	// SecuritySeverity makes GitHub show the alert as a security alert with
	// a severity band (critical ≥ 9.0, high ≥ 7.0, medium ≥ 4.0, low > 0).
	SecuritySeverity string   `json:"security-severity,omitempty"`
	Precision        string   `json:"precision"`
	Tags             []string `json:"tags"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Level               string            `json:"level"`
	Message             sarifMessage      `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysicalLocation `json:"physicalLocation"`
	Message          *sarifMessage         `json:"message,omitempty"`
}

type sarifPhysicalLocation struct {
	ArtifactLocation sarifArtifactLocation `json:"artifactLocation"`
	Region           sarifRegion           `json:"region"`
}

type sarifArtifactLocation struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

// securitySeverity is the number GitHub bands alerts by. It is the primary
// CVSS score when that score's band agrees with the reported severity;
// otherwise (no score, or a distribution rating its own advisory differently
// from the score) it is a representative score of the reported severity's
// band, so GitHub's label always matches the table and the gate.
func securitySeverity(v *vulndb.Vulnerability) string {
	if v == nil {
		return ""
	}
	if c := primaryCVSS(v); c != nil && vulndb.SeverityFromScore(c.Score) == v.Severity {
		return formatScore(c.Score)
	}
	return v.Severity.BandScore()
}

func writeSARIF(buf *bytes.Buffer, res *scan.Result) error {
	findings := sortedFindings(res.Findings)

	// One rule per vulnerability ID, sorted by ID for a stable ruleIndex.
	byID := map[string]*scan.Finding{}
	var ids []string
	for _, f := range findings {
		id := vulnID(f)
		if _, ok := byID[id]; !ok {
			byID[id] = f
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	index := make(map[string]int, len(ids))
	rules := make([]sarifRule, 0, len(ids))
	for i, id := range ids {
		index[id] = i
		rules = append(rules, sarifRuleFor(byID[id], findings))
	}

	target := targetRef(&res.Target)
	results := make([]sarifResult, 0, len(findings))
	for _, f := range findings {
		id := vulnID(f)
		loc := sarifLocation{PhysicalLocation: sarifPhysicalLocation{
			ArtifactLocation: sarifArtifactLocation{URI: artifactURI(f.Package.Location, res.Target.Name)},
			Region:           sarifRegion{StartLine: 1},
		}}
		if res.Target.Kind == "image" {
			loc.Message = &sarifMessage{Text: "in image " + target}
		}
		results = append(results, sarifResult{
			RuleID:    id,
			RuleIndex: index[id],
			Level:     severityOf(f).SARIFLevel(),
			Message:   sarifMessage{Text: sarifResultText(f, res, target)},
			Locations: []sarifLocation{loc},
			PartialFingerprints: map[string]string{
				// GitHub de-duplicates alerts across runs by fingerprint; the
				// line hash it computes itself is meaningless for a package.
				"bulwarkFinding/v1": fingerprint(id, f.Package.PURL, f.Package.Name, fullLocation(&f.Package)),
			},
		})
	}

	log := sarifLog{
		Schema:  sarifSchema,
		Version: sarifVersion,
		Runs: []sarifRun{{
			Tool: sarifTool{Driver: sarifDriver{
				Name:           toolName(res),
				Version:        res.Tool.Version,
				InformationURI: informationURI,
				Rules:          rules,
			}},
			Results: results,
			Properties: &sarifRunProperty{
				TargetKind: res.Target.Kind,
				TargetName: res.Target.Name,
				Digest:     res.Target.Digest,
				Platform:   res.Target.Platform,
				RepoTags:   res.Target.RepoTags,
				Suppressed: len(res.Suppressed),
			},
		}},
	}
	enc := json.NewEncoder(buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(&log)
}

func toolName(res *scan.Result) string {
	if res.Tool.Name != "" {
		return res.Tool.Name
	}
	return "bulwark"
}

func sarifRuleFor(first *scan.Finding, all []*scan.Finding) sarifRule {
	v := vulnOf(first)
	id := vulnID(first)
	short := title(v)
	if short == "" {
		short = id
	}
	full := oneLine(v.Details)
	if full == "" {
		full = short
	}
	tags := []string{"security", "vulnerability", strings.ToLower(v.Severity.String())}
	if v.KEV != nil {
		tags = append(tags, "known-exploited")
	}

	// Help: what the vulnerability is and what to do, for every package it
	// was found in (a rule is per vulnerability, not per package).
	var text, md strings.Builder
	fmt.Fprintf(&text, "%s: %s\n", id, short)
	fmt.Fprintf(&md, "**%s**: %s\n\n", mdEscape(id), mdEscape(short))
	fmt.Fprintf(&md, "| Severity | CVSS | Known exploited | Aliases |\n| --- | --- | --- | --- |\n")
	score, vector := "", ""
	if c := primaryCVSS(v); c != nil {
		score, vector = formatScore(c.Score), c.Vector
	}
	kev := "no"
	if v.KEV != nil {
		kev = "yes (CISA KEV, added " + v.KEV.DateAdded + ")"
	}
	fmt.Fprintf(&md, "| %s | %s | %s | %s |\n\n", v.Severity, mdEscape(strings.TrimSpace(score+" "+vector)), mdEscape(kev), mdEscape(strings.Join(v.Aliases, ", ")))
	fmt.Fprintf(&text, "Severity: %s", v.Severity)
	if score != "" {
		fmt.Fprintf(&text, " (CVSS %s %s)", score, vector)
	}
	text.WriteString("\n")
	if v.KEV != nil {
		fmt.Fprintf(&text, "Known exploited: listed in CISA KEV since %s.\n", v.KEV.DateAdded)
	}
	if len(v.Aliases) > 0 {
		fmt.Fprintf(&text, "Aliases: %s\n", strings.Join(v.Aliases, ", "))
	}
	md.WriteString("| Package | Installed | Fixed in |\n| --- | --- | --- |\n")
	seen := map[string]bool{}
	for _, f := range all {
		if vulnID(f) != id {
			continue
		}
		fixed := "no fix yet"
		if len(f.FixedVersions) > 0 {
			fixed = strings.Join(f.FixedVersions, ", ")
		}
		key := f.Package.Name + "\x00" + f.InstalledVersion + "\x00" + fixed
		if seen[key] {
			continue
		}
		seen[key] = true
		fmt.Fprintf(&text, "%s %s: fixed in %s\n", f.Package.Name, f.InstalledVersion, fixed)
		fmt.Fprintf(&md, "| %s | %s | %s |\n", mdEscape(f.Package.Name), mdEscape(f.InstalledVersion), mdEscape(fixed))
	}
	if len(v.References) > 0 {
		text.WriteString("References:\n")
		md.WriteString("\nReferences:\n")
		for _, r := range v.References {
			fmt.Fprintf(&text, "  %s\n", r)
			fmt.Fprintf(&md, "- %s\n", mdEscape(r))
		}
	}
	return sarifRule{
		ID:                   id,
		Name:                 ruleName(id),
		ShortDescription:     sarifMessage{Text: short},
		FullDescription:      sarifMessage{Text: full},
		Help:                 sarifMultiformat{Text: text.String(), Markdown: md.String()},
		HelpURI:              osvURL(id),
		DefaultConfiguration: sarifConfiguration{Level: v.Severity.SARIFLevel()},
		Properties: sarifRuleProperties{
			SecuritySeverity: securitySeverity(v),
			Precision:        "very-high",
			Tags:             tags,
		},
	}
}

// ruleName is an identifier-like name, as SARIF suggests for rule names.
func ruleName(id string) string {
	var b strings.Builder
	b.WriteString("Vulnerability")
	for _, r := range id {
		if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func sarifResultText(f *scan.Finding, res *scan.Result, target string) string {
	v := vulnOf(f)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s is affected by %s (%s", f.Package.Name, f.InstalledVersion, vulnID(f), v.Severity)
	if c := primaryCVSS(v); c != nil {
		fmt.Fprintf(&b, ", CVSS %s", formatScore(c.Score))
	}
	if v.KEV != nil {
		b.WriteString(", known exploited")
	}
	b.WriteString(")")
	if t := title(v); t != "" {
		fmt.Fprintf(&b, ": %s", t)
	}
	if !strings.HasSuffix(b.String(), ".") {
		b.WriteString(".")
	}
	if len(f.FixedVersions) > 0 {
		fmt.Fprintf(&b, " Fixed in %s.", strings.Join(f.FixedVersions, ", "))
	} else {
		b.WriteString(" No fixed version yet.")
	}
	if f.Package.OSPackage != "" {
		fmt.Fprintf(&b, " Installed by the OS package %s.", f.Package.OSPackage)
	}
	if f.Package.Location != "" {
		fmt.Fprintf(&b, " Found in %s", fullLocation(&f.Package))
		if res.Target.Kind == "image" {
			fmt.Fprintf(&b, " in image %s", target)
		}
		b.WriteString(".")
	}
	return b.String()
}

// targetRef names the target precisely: an image by name and digest.
func targetRef(t *scan.Target) string {
	if t.Digest != "" && !strings.Contains(t.Name, "@") {
		return t.Name + "@" + t.Digest
	}
	return t.Name
}

// artifactURI turns a package location (a slash path relative to the
// scanned root) into a relative URI reference. GitHub needs a file for every
// alert; for an image it cannot open it, but the path still tells the reader
// where the package lives. An SBOM package without a location points at the
// SBOM itself.
func artifactURI(location, fallback string) string {
	p := strings.TrimLeft(location, "/")
	if p == "" {
		p = strings.TrimLeft(fallback, "/")
	}
	if p == "" || p == "-" {
		p = "."
	}
	u := url.URL{Path: p}
	return u.String()
}

func fingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// mdEscape keeps advisory text from being read as Markdown (or HTML) by
// GitHub's renderer.
func mdEscape(s string) string {
	s = oneLine(s)
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_{}[]<>()#+!|", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
