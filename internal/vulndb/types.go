package vulndb

import "time"

// Severity is a qualitative severity, ordered: compare with <.
type Severity int

const (
	SeverityUnknown Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return "UNKNOWN"
	}
	return severityNames[s]
}

// MarshalText makes severities read as words in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText accepts the words String returns, in any case.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	*s = v
	return err
}

// CVSS is one scored vector.
type CVSS struct {
	// Version is "2.0", "3.0", "3.1" or "4.0".
	Version string  `json:"version"`
	Vector  string  `json:"vector"`
	Score   float64 `json:"score"`
	// Source says who assigned it ("osv", "cisa-adp", "nvd", ...).
	Source string `json:"source,omitempty"`
}

// Vulnerability is one advisory, merged across the sources that describe it
// under different IDs (CVE, GHSA, GO-, RUSTSEC-, PYSEC-, DSA-...).
type Vulnerability struct {
	ID      string   `json:"id"`
	Aliases []string `json:"aliases,omitempty"`
	// Related lists IDs the record says are related but not the same
	// vulnerability (OSV "related"). AlmaLinux advisories list the CVEs they
	// fix there, so ignore files and VEX statements should check it too.
	Related   []string  `json:"related,omitempty"`
	Summary   string    `json:"summary,omitempty"`
	Details   string    `json:"details,omitempty"`
	Severity  Severity  `json:"severity"`
	CVSS      []CVSS    `json:"cvss,omitempty"`
	Published time.Time `json:"published,omitzero"`
	Modified  time.Time `json:"modified,omitzero"`
	// KEV is set when CISA lists one of the IDs as known exploited.
	KEV *KEV `json:"kev,omitempty"`
	// EPSS is the exploit prediction score (0..1) when known.
	EPSS       float64  `json:"epss,omitempty"`
	References []string `json:"references,omitempty"`
	// Source is the database the record came from ("go-vulndb", "rustsec"...).
	Source string `json:"source"`
}

// KEV is a CISA Known Exploited Vulnerabilities catalogue entry.
type KEV struct {
	DateAdded      string `json:"dateAdded"`
	DueDate        string `json:"dueDate,omitempty"`
	RansomwareUse  string `json:"knownRansomwareCampaignUse,omitempty"`
	RequiredAction string `json:"requiredAction,omitempty"`
}

// Match is one vulnerability affecting one package.
type Match struct {
	// Package is the index of the matched package in the slice given to Match.
	Package       int            `json:"-"`
	Vulnerability *Vulnerability `json:"vulnerability"`
	// InstalledVersion is the version that was compared (the source package
	// version for OS packages matched through their source).
	InstalledVersion string `json:"installedVersion"`
	// FixedVersions lists the versions that fix it in the matched range(s);
	// empty when no fix is known.
	FixedVersions []string `json:"fixedVersions,omitempty"`
	// MatchedBy explains the match: "Debian:12/openssl (source package)",
	// "Go/golang.org/x/net", "Go/stdlib".
	MatchedBy string `json:"matchedBy"`
	// Reachability says how much of the vulnerable code is in the binary
	// the package was found in, when its functions could be read (Go
	// binaries, stripped or not); empty when unknown, the match then rests
	// on the version alone. Like govulncheck -mode binary:
	//   - ReachabilitySymbol: a vulnerable function the advisory names is
	//     compiled in (or, where it names packages without functions or no
	//     packages at all, any function of those packages or of the module);
	//   - ReachabilityPackage: code of a vulnerable package is compiled in,
	//     but none of the vulnerable functions;
	//   - ReachabilityModule: the module version is affected, but none of
	//     its vulnerable packages is compiled in.
	// The linker drops functions nothing can call, so a function absent
	// from the binary cannot run; a present one may still never be called.
	// Policy (--fail-on) does not look at it: a vulnerable module version
	// is a finding whatever its reachability.
	Reachability string `json:"reachability,omitempty"`
	// Symbols are the vulnerable functions found in the binary, as
	// "import/path.Symbol" ("golang.org/x/net/html.Parse").
	Symbols []string `json:"symbols,omitempty"`
}
