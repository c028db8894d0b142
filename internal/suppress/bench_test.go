package suppress

import (
	"fmt"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/scan"
)

// BenchmarkApply: 500 findings against a 200-entry ignore file and two VEX
// documents, all from the committed fixtures scaled up.
func BenchmarkApply(b *testing.B) {
	base := loadResult(b)
	var findings []scan.Finding
	for i := 0; len(findings) < 500; i++ {
		f := base.Findings[i%len(base.Findings)]
		v := *f.Vulnerability
		v.ID = fmt.Sprintf("%s-%d", v.ID, i)
		f.Vulnerability = &v
		findings = append(findings, f)
	}
	ignore := &IgnoreFile{Source: "bench.yaml", Format: "yaml"}
	for i := 0; i < 200; i++ {
		ignore.Entries = append(ignore.Entries, IgnoreEntry{ID: fmt.Sprintf("CVE-2099-%d", i), Reason: "r", Package: "pkg:npm/x"})
	}
	ignore.Entries = append(ignore.Entries, IgnoreEntry{ID: findings[7].Vulnerability.ID, Reason: "r"})
	vex := mustVEXB(b, "image.openvex.json", "later.openvex.json")
	s := &Set{IgnoreUnfixed: true, Ignores: []*IgnoreFile{ignore}, VEX: vex}
	now := time.Date(2026, 8, 24, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		res := *base
		res.Findings = append(findings[:0:0], findings...)
		res.Suppressed = nil
		s.Apply(&res, now)
	}
}

func mustVEXB(b *testing.B, names ...string) []*VEXDocument {
	s := &Set{}
	for _, n := range names {
		if err := s.LoadVEX("testdata/vex/" + n); err != nil {
			b.Fatal(err)
		}
	}
	return s.VEX
}
