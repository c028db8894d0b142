package vulndb

// SARIF renderings of a Severity, shared by every SARIF writer (scan reports,
// policy check, posture) so that GitHub code scanning labels and fails a
// finding the same way whichever command produced it.

// SARIFLevel is the SARIF result level of s: critical and high are "error"
// (GitHub shows a failing check), medium "warning", anything else "note".
func (s Severity) SARIFLevel() string {
	switch s {
	case SeverityCritical, SeverityHigh:
		return "error"
	case SeverityMedium:
		return "warning"
	}
	return "note"
}

// BandScore is a representative CVSS score inside s's band, as the string
// GitHub reads from a rule's "security-severity" property to band it:
// "9.5", "8.0", "5.5" or "2.0"; "" for an unknown severity (the caller
// picks its own default, or none).
func (s Severity) BandScore() string {
	switch s {
	case SeverityCritical:
		return "9.5"
	case SeverityHigh:
		return "8.0"
	case SeverityMedium:
		return "5.5"
	case SeverityLow:
		return "2.0"
	}
	return ""
}
