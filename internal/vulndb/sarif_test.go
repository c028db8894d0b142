package vulndb

import (
	"strconv"
	"testing"
)

// Each representative score lies in the band of its own severity (so GitHub's
// label matches the reported severity), and the level follows the severity.
func TestSARIFRenderings(t *testing.T) {
	for _, tc := range []struct {
		s     Severity
		level string
	}{
		{SeverityCritical, "error"}, {SeverityHigh, "error"}, {SeverityMedium, "warning"}, {SeverityLow, "note"}, {SeverityUnknown, "note"},
	} {
		if got := tc.s.SARIFLevel(); got != tc.level {
			t.Errorf("%v.SARIFLevel() = %q, want %q", tc.s, got, tc.level)
		}
		score := tc.s.BandScore()
		if tc.s == SeverityUnknown {
			if score != "" {
				t.Errorf("unknown BandScore() = %q, want empty", score)
			}
			continue
		}
		f, err := strconv.ParseFloat(score, 64)
		if err != nil {
			t.Fatalf("%v.BandScore() = %q: %v", tc.s, score, err)
		}
		if SeverityFromScore(f) != tc.s {
			t.Errorf("%v.BandScore() = %s, which is in band %v", tc.s, score, SeverityFromScore(f))
		}
	}
}
