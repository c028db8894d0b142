package vulndb

import (
	"fmt"
	"strings"
)

// ParseSeverity reads a severity word in any case ("high", "CRITICAL",
// "moderate" as GitHub and npm spell medium, "important" as Red Hat spells high).
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "", "UNKNOWN", "NONE", "NEGLIGIBLE", "UNIMPORTANT":
		return SeverityUnknown, nil
	case "LOW":
		return SeverityLow, nil
	case "MEDIUM", "MODERATE":
		return SeverityMedium, nil
	case "HIGH", "IMPORTANT":
		return SeverityHigh, nil
	case "CRITICAL":
		return SeverityCritical, nil
	}
	return SeverityUnknown, fmt.Errorf("unknown severity %q (want low, medium, high or critical)", s)
}

// SeverityFromScore maps a CVSS base score to its qualitative rating
// (the same bands for CVSS 3.x and 4.0; CVSS 2 has no critical band but the
// same numbers are used by NVD's v3 mapping).
func SeverityFromScore(score float64) Severity {
	switch {
	case score >= 9.0:
		return SeverityCritical
	case score >= 7.0:
		return SeverityHigh
	case score >= 4.0:
		return SeverityMedium
	case score > 0:
		return SeverityLow
	}
	return SeverityUnknown
}
