package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// scanDemo scans the demo image against the demo database with extra flags.
func scanDemo(t testing.TB, o runOpts, extra ...string) result {
	t.Helper()
	args := append([]string{"scan", "image", "--db-dir", demoDB(t), "--format", "json"}, extra...)
	return runWith(t, o, append(args, demoImage(t))...)
}

// baseline is the ungated scan the gate tests derive their expectations from.
func baseline(t testing.TB) *scan.Result {
	t.Helper()
	r := scanDemo(t, runOpts{}).want(t, ExitOK)
	// Off a terminal a clean scan writes nothing but the report: no
	// progress bar, no warnings.
	if r.stderr != "" {
		t.Errorf("stderr of a clean scan:\n%s", r.stderr)
	}
	return parseResult(t, r.stdout)
}

func atLeast(fs []scan.Finding, s vulndb.Severity) []scan.Finding {
	var out []scan.Finding
	for _, f := range fs {
		if f.Vulnerability.Severity >= s {
			out = append(out, f)
		}
	}
	return out
}

func TestGateFailOn(t *testing.T) {
	base := baseline(t)
	if len(atLeast(base.Findings, vulndb.SeverityHigh)) == 0 {
		t.Fatal("the demo data has no high or critical finding; the gate cannot be tested on it")
	}
	r := scanDemo(t, runOpts{}, "--fail-on", "high").want(t, ExitPolicyFailed)
	if !strings.Contains(r.stderr, "policy failed") {
		t.Errorf("stderr gives no reason for exit 1:\n%s", r.stderr)
	}
	// The report is still written in full: the pipeline log shows why.
	res := parseResult(t, r.stdout)
	if diff := len(res.Findings) - len(base.Findings); diff != 0 {
		t.Errorf("gated report has %d findings, ungated %d", len(res.Findings), len(base.Findings))
	}
	// Mentions at least one of the findings that failed it.
	if !slices.ContainsFunc(atLeast(base.Findings, vulndb.SeverityHigh), func(f scan.Finding) bool {
		return strings.Contains(r.stderr, f.Vulnerability.ID)
	}) && !strings.Contains(strings.ToLower(r.stderr), "high") {
		t.Errorf("policy failure reason names neither a finding nor the threshold:\n%s", r.stderr)
	}

	// --ignore-unfixed with --fail-on critical: the outcome follows the data.
	var fixedCritical, unfixed int
	for _, f := range base.Findings {
		if len(f.FixedVersions) == 0 {
			unfixed++
		} else if f.Vulnerability.Severity == vulndb.SeverityCritical {
			fixedCritical++
		}
	}
	want := ExitOK
	if fixedCritical > 0 {
		want = ExitPolicyFailed
	}
	r = scanDemo(t, runOpts{}, "--fail-on", "critical", "--ignore-unfixed").want(t, want)
	res = parseResult(t, r.stdout)
	var gotUnfixed int
	for _, f := range res.Suppressed {
		if f.Suppression == nil || f.Suppression.Kind != "unfixed" {
			t.Errorf("suppressed %s: %+v, want kind unfixed", f.Vulnerability.ID, f.Suppression)
			continue
		}
		if len(f.FixedVersions) != 0 {
			t.Errorf("%s suppressed as unfixed but has fixed versions %v", f.Vulnerability.ID, f.FixedVersions)
		}
		gotUnfixed++
	}
	if gotUnfixed != unfixed || len(res.Findings) != len(base.Findings)-unfixed {
		t.Errorf("--ignore-unfixed: %d suppressed, %d remaining; the data has %d unfixed of %d", gotUnfixed, len(res.Findings), unfixed, len(base.Findings))
	}

	// No threshold, no gate.
	scanDemo(t, runOpts{}).want(t, ExitOK)
	// A threshold that is not a severity is an error, not a pass.
	r = scanDemo(t, runOpts{}, "--fail-on", "severe").want(t, ExitError)
	if !strings.Contains(r.stderr, "--fail-on") || r.stdout != "" {
		t.Errorf("bad --fail-on: stderr %q, stdout %d bytes", r.stderr, len(r.stdout))
	}
}

// criticalIDs are the distinct IDs of the critical findings.
func criticalIDs(t testing.TB, base *scan.Result) []string {
	t.Helper()
	var ids []string
	for _, f := range atLeast(base.Findings, vulndb.SeverityCritical) {
		if !slices.Contains(ids, f.Vulnerability.ID) {
			ids = append(ids, f.Vulnerability.ID)
		}
	}
	if len(ids) == 0 {
		t.Fatal("the demo data has no critical finding")
	}
	return ids
}

func TestGateIgnoreFile(t *testing.T) {
	base := baseline(t)
	ids := criticalIDs(t, base)
	dir := t.TempDir()
	var sb strings.Builder
	sb.WriteString("ignore:\n")
	for _, id := range ids {
		fmt.Fprintf(&sb, "  - id: %s\n    reason: accepted for the test\n    expires: %s\n", id, time.Now().AddDate(0, 1, 0).Format("2006-01-02"))
	}
	ignore := filepath.Join(dir, "ignore.yaml")
	if err := os.WriteFile(ignore, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r := scanDemo(t, runOpts{}, "--fail-on", "critical", "--ignore-file", ignore).want(t, ExitOK)
	res := parseResult(t, r.stdout)
	checkSuppressed(t, res, base, ids, "ignore-file", ignore)

	// An expired entry suppresses nothing, and says so.
	expired := filepath.Join(dir, "expired.yaml")
	data := strings.ReplaceAll(sb.String(), time.Now().AddDate(0, 1, 0).Format("2006-01-02"), "2020-01-01")
	if err := os.WriteFile(expired, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	r = scanDemo(t, runOpts{}, "--fail-on", "critical", "--ignore-file", expired).want(t, ExitPolicyFailed)
	if !strings.Contains(strings.ToLower(r.stderr), "expire") {
		t.Errorf("expired ignore entries are not warned about:\n%s", r.stderr)
	}

	// A malformed ignore file is an error (exit 2), never a silent pass.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("ignore:\n  - id: "+ids[0]+"\n"), 0o644); err != nil { // no reason
		t.Fatal(err)
	}
	r = scanDemo(t, runOpts{}, "--fail-on", "critical", "--ignore-file", bad).want(t, ExitError)
	if !strings.Contains(r.stderr, bad) || r.stdout != "" {
		t.Errorf("bad ignore file: stderr %q does not name it, or a report was written (%d bytes)", r.stderr, len(r.stdout))
	}
}

func TestGateVEX(t *testing.T) {
	base := baseline(t)
	ids := criticalIDs(t, base)
	// One OpenVEX statement per critical vulnerability, naming the affected
	// packages by PURL.
	type product struct {
		ID string `json:"@id"`
	}
	type statement struct {
		Vulnerability struct {
			Name string `json:"name"`
		} `json:"vulnerability"`
		Products      []product `json:"products"`
		Status        string    `json:"status"`
		Justification string    `json:"justification"`
	}
	doc := map[string]any{
		"@context":  "https://openvex.dev/ns/v0.2.0",
		"@id":       "https://example.com/vex/demo-1",
		"author":    "Bulwark tests",
		"timestamp": time.Now().UTC().Format(time.RFC3339),
		"version":   1,
	}
	var stmts []statement
	for _, id := range ids {
		var s statement
		s.Vulnerability.Name = id
		s.Status = "not_affected"
		s.Justification = "vulnerable_code_not_in_execute_path"
		for _, f := range base.Findings {
			if f.Vulnerability.ID == id && !slices.Contains(s.Products, product{f.Package.PURL}) {
				s.Products = append(s.Products, product{f.Package.PURL})
			}
		}
		stmts = append(stmts, s)
	}
	doc["statements"] = stmts
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	vex := filepath.Join(t.TempDir(), "demo.openvex.json")
	if err := os.WriteFile(vex, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := scanDemo(t, runOpts{}, "--fail-on", "critical", "--vex", vex).want(t, ExitOK)
	checkSuppressed(t, parseResult(t, r.stdout), base, ids, "vex", vex)

	// "affected" suppresses nothing.
	data = []byte(strings.ReplaceAll(string(data), `"not_affected"`, `"affected"`))
	data = []byte(strings.ReplaceAll(string(data), `"vulnerable_code_not_in_execute_path"`, `""`))
	if err := os.WriteFile(vex, data, 0o644); err != nil {
		t.Fatal(err)
	}
	scanDemo(t, runOpts{}, "--fail-on", "critical", "--vex", vex).want(t, ExitPolicyFailed)
}

// checkSuppressed: exactly the findings with ids moved from Findings to
// Suppressed, each saying which file suppressed it and how.
func checkSuppressed(t *testing.T, res, base *scan.Result, ids []string, kind, source string) {
	t.Helper()
	var want int
	for _, f := range base.Findings {
		if slices.Contains(ids, f.Vulnerability.ID) {
			want++
		}
	}
	if len(res.Suppressed) != want {
		t.Errorf("%d findings suppressed, want %d (%v)", len(res.Suppressed), want, ids)
	}
	for _, f := range res.Suppressed {
		if !slices.Contains(ids, f.Vulnerability.ID) {
			t.Errorf("%s suppressed, not listed", f.Vulnerability.ID)
		}
		if s := f.Suppression; s == nil || s.Kind != kind || !strings.Contains(s.Source, filepath.Base(source)) {
			t.Errorf("%s suppression %+v, want kind %q from %s", f.Vulnerability.ID, s, kind, source)
		}
	}
	for _, f := range res.Findings {
		if slices.Contains(ids, f.Vulnerability.ID) {
			t.Errorf("%s on %s still reported", f.Vulnerability.ID, f.Package.Name)
		}
	}
	if len(res.Findings)+len(res.Suppressed) != len(base.Findings) {
		t.Errorf("%d reported + %d suppressed != %d found", len(res.Findings), len(res.Suppressed), len(base.Findings))
	}
}
