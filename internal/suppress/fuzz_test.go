package suppress

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func addFiles(f *testing.F, pattern string) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// FuzzIgnoreFile: no input panics or hangs, and whatever parses can be
// applied to a real result without losing findings.
func FuzzIgnoreFile(f *testing.F) {
	addFiles(f, filepath.Join("testdata", "*ignore*"))
	f.Add([]byte("ignore:\n  - id: GO-2023-2153\n    package: pkg:golang/\n    reason: r\n    expires: 2026-08-24T09:00:00+02:00\n"))
	f.Add([]byte("ALSA-2026:25239 exp:2030-01-01 # c\n\n#x\n"))
	res := loadResult(f)
	n := len(res.Findings)
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseIgnoreFile("fuzz", data)
		if err != nil {
			return
		}
		for _, e := range file.Entries {
			if e.ID == "" || e.Reason == "" {
				t.Fatalf("entry without id or reason: %+v", e)
			}
		}
		r := *res
		r.Findings = append(r.Findings[:0:0], res.Findings...)
		r.Suppressed = nil
		(&Set{Ignores: []*IgnoreFile{file}}).Apply(&r, time.Date(2026, 8, 24, 0, 0, 0, 0, time.UTC))
		if len(r.Findings)+len(r.Suppressed) != n {
			t.Fatal("findings lost or duplicated")
		}
	})
}

// FuzzOpenVEX: no input panics or hangs; statements that parse are valid
// and applying them never loses findings.
func FuzzOpenVEX(f *testing.F) {
	addFiles(f, filepath.Join("testdata", "vex", "*.json"))
	addFiles(f, filepath.Join("testdata", "vex", "go-vex", "*.json"))
	f.Add([]byte(`{"@context":"https://openvex.dev/ns","statements":[{"vulnerability":"CVE-1","products":["sha256:5d0e"],"status":"fixed"}]}`))
	res := loadResult(f)
	n := len(res.Findings)
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := ParseOpenVEX("fuzz", data)
		if err != nil {
			return
		}
		for _, st := range doc.Statements {
			if st.Vulnerability == "" || st.Status == "" {
				t.Fatalf("invalid statement accepted: %+v", st)
			}
			if st.Status == StatusNotAffected && st.Justification == "" && st.Impact == "" {
				t.Fatalf("not_affected without justification accepted: %+v", st)
			}
		}
		r := *res
		r.Findings = append(r.Findings[:0:0], res.Findings...)
		r.Suppressed = nil
		(&Set{VEX: []*VEXDocument{doc}}).Apply(&r, time.Time{})
		if len(r.Findings)+len(r.Suppressed) != n {
			t.Fatal("findings lost or duplicated")
		}
	})
}
