package export

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

func TestAppendRFC5424(t *testing.T) {
	r := sampleRecord(1)
	r.Title = `quote " backslash \ bracket ] newline` + "\n" + `end`
	got := string(AppendRFC5424(nil, &r, 16, "central-1", "bulwark", 0))
	want := `<131>1 2026-11-27T16:30:00.000001Z central-1 bulwark - alert [bulwark@32473 id="0b7c6f2e-4d1a-4c8e-9f00-000000000001" kind="alert" source="sensor" rule="Terminal shell in container" severity="high" mitreTactic="TA0002" mitreTechnique="T1059.004" cluster="prod-eu" namespace="payments" pod="api-7d9c5b7f6-x2k4q" container="api" image="registry.example.com/payments/api:1.42.0" imageDigest="sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" node="node-3" workload="Deployment/api" fingerprint="` + r.Fingerprint() + `"] quote " backslash \ bracket ] newline end`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("RFC 5424 (-want +got):\n%s", diff)
	}
	// Escaping inside structured data.
	r.Rule = `a"b\c]d`
	got = string(AppendRFC5424(nil, &r, 16, "h", "a", 0))
	if !strings.Contains(got, `rule="a\"b\\c\]d"`) {
		t.Fatalf("SD value not escaped: %s", got)
	}
	// PRI: facility local0 (16) * 8 + severity.
	for sev, pri := range map[alerts.Severity]string{alerts.SeverityCritical: "<130>", alerts.SeverityInfo: "<134>", alerts.SeverityLow: "<133>"} {
		r.Severity = sev
		if got := string(AppendRFC5424(nil, &r, 16, "h", "a", 0)); !strings.HasPrefix(got, pri) {
			t.Errorf("severity %v: %s", sev, got[:6])
		}
	}
}

func TestAppendCEF(t *testing.T) {
	r := sampleRecord(2)
	r.Title = `pipe | equals = backslash \ nl` + "\n" + "x"
	got := string(AppendCEF(nil, &r, "1.0"))
	want := `CEF:0|Bulwark|Bulwark|1.0|Terminal shell in container|pipe \| equals = backslash \\ nl x|8|rt=1795797000000 externalId=0b7c6f2e-4d1a-4c8e-9f00-000000000002 cat=sensor msg=pipe | equals \= backslash \\ nl\nx dvchost=node-3 cs1Label=rule cs1=Terminal shell in container cs2Label=namespace cs2=payments cs3Label=pod cs3=api-7d9c5b7f6-x2k4q cs4Label=image cs4=registry.example.com/payments/api:1.42.0@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 cs5Label=cluster cs5=prod-eu cs6Label=mitre cs6=TA0002 T1059.004 dproc=api deviceExternalId=Deployment/api fileHash=` + r.Fingerprint()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("CEF (-want +got):\n%s", diff)
	}
}

// TestUDPTruncation: a record far larger than a datagram is shortened to
// the limit, stays valid UTF-8, keeps its header and, when possible, its
// structured data — it is never dropped.
func TestUDPTruncation(t *testing.T) {
	r := sampleRecord(3)
	r.Title = strings.Repeat("é long title ", 2000) // multi-byte characters at every cut point
	r.Workload = "Deployment/" + strings.Repeat("w", 500)
	for _, max := range []int{480, 1024, 2048} {
		got := AppendRFC5424(nil, &r, 16, "central-1", "bulwark", max)
		if len(got) > max || len(got) < max-8 {
			t.Errorf("max %d: %d bytes", max, len(got))
		}
		if !utf8.Valid(got) {
			t.Errorf("max %d: invalid UTF-8 after the cut", max)
		}
		s := string(got)
		if !strings.HasPrefix(s, "<131>1 2026-11-27T16:30:00.000003Z central-1 bulwark - alert [bulwark@32473 id=") {
			t.Errorf("max %d: header lost: %.80s", max, s)
		}
		if max >= 1024 && !strings.Contains(s, `"] é long`) {
			t.Errorf("max %d: structured data not kept whole: %s", max, s)
		}
		cef := AppendCEFSyslog(nil, &r, 16, "central-1", "bulwark", "1.0", max)
		if len(cef) > max || !utf8.Valid(cef) || !strings.Contains(string(cef), "CEF:0|Bulwark|") {
			t.Errorf("CEF max %d: %d bytes, %q…", max, len(cef), cef[:min(len(cef), 120)])
		}
	}
	// A cut never leaves a dangling escape backslash.
	r.Title = strings.Repeat(`\`, 5000)
	for max := 480; max < 520; max++ {
		cef := string(AppendCEFSyslog(nil, &r, 16, "h", "a", "1", max))
		n := len(cef) - len(strings.TrimRight(cef, `\`))
		if n%2 == 1 {
			t.Fatalf("max %d: ends in an odd run of %d backslashes", max, n)
		}
	}
}

func TestOCSF(t *testing.T) {
	r := sampleRecord(4)
	b, err := json.Marshal(OCSF(&r, "1.2.3"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	// The attributes OCSF 1.1 requires of a Detection Finding.
	for k, want := range map[string]any{"class_uid": 2004.0, "category_uid": 2.0, "type_uid": 200401.0, "activity_id": 1.0,
		"severity_id": 4.0, "severity": "High", "status_id": 1.0, "time": float64(r.Time.UnixMilli())} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	fi := got["finding_info"].(map[string]any)
	if fi["uid"] != r.ID || fi["title"] != r.Title {
		t.Errorf("finding_info = %v", fi)
	}
	att := fi["attacks"].([]any)[0].(map[string]any)
	if att["technique"].(map[string]any)["uid"] != "T1059.004" || att["tactic"].(map[string]any)["uid"] != "TA0002" {
		t.Errorf("attacks = %v", att)
	}
	md := got["metadata"].(map[string]any)
	if md["version"] != "1.1.0" || md["product"].(map[string]any)["vendor_name"] != "Bulwark" {
		t.Errorf("metadata = %v", md)
	}
	if ev := got["evidences"].([]any)[0].(map[string]any)["data"].(map[string]any); ev["proc.name"] != "bash" {
		t.Errorf("evidences = %v", ev)
	}
}

// Benchmarks of the per-record formatting (the syslog exporters' hot
// path); run with -benchmem for allocations.
func BenchmarkAppendRFC5424(b *testing.B) {
	r := sampleRecord(1)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRFC5424(buf[:0], &r, 16, "central-1", "bulwark", 2048)
	}
}

func BenchmarkAppendCEFSyslog(b *testing.B) {
	r := sampleRecord(1)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendCEFSyslog(buf[:0], &r, 16, "central-1", "bulwark", "1.0", 2048)
	}
}

func BenchmarkOCSFJSON(b *testing.B) {
	r := sampleRecord(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(OCSF(&r, "1.0")); err != nil {
			b.Fatal(err)
		}
	}
}
