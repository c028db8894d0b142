package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/posture"
)

// TestPostureNodeCLI runs `posture node --root` on the committed bad tree:
// failures at or above --fail-on exit 1, and the JSON report names the CIS
// sections.
func TestPostureNodeCLI(t *testing.T) {
	root := filepath.Join(repoRoot(t), "internal", "posture", "testdata", "node", "bad")
	r := run(t, "posture", "node", "--root", root, "--format", "json", "--fail-on", "critical").want(t, 1)
	var rep struct {
		Controls []struct {
			ID  string   `json:"id"`
			CIS []string `json:"cis"`
		} `json:"controls"`
		Results []struct {
			Control, Status, Message string
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, res := range rep.Results {
		if res.Control == "BW-NODE-0206" && res.Status == "fail" && strings.Contains(res.Message, "AlwaysAllow") {
			found = true
		}
	}
	if !found || len(rep.Controls) < 60 || rep.Controls[0].CIS[0] != "1.1.1" {
		t.Errorf("node report: %d controls, AlwaysAllow failure found %v", len(rep.Controls), found)
	}
	if !strings.Contains(r.stderr, "failed checks at or above CRITICAL") {
		t.Errorf("stderr: %s", r.stderr)
	}
	run(t, "posture", "node", "--root", filepath.Join(t.TempDir(), "missing")).want(t, 2)
}

// TestPostureFixCLI fixes a copy of the chart in place, then checks that
// the fixed file passes the fixed controls through `posture manifests`.
func TestPostureFixCLI(t *testing.T) {
	src := filepath.Join(repoRoot(t), "internal", "posture", "testdata", "fix", "chart.yaml")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "chart.yaml")
	if err := os.WriteFile(p, data, 0o640); err != nil {
		t.Fatal(err)
	}
	d := run(t, "posture", "fix", "--diff", "--controls", "BW-K8S-0040", p).want(t, 0)
	if !strings.Contains(d.stdout, "+  type: ClusterIP") {
		t.Fatalf("diff:\n%s", d.stdout)
	}
	if after, _ := os.ReadFile(p); string(after) != string(data) {
		t.Fatal("--diff wrote the file")
	}
	run(t, "posture", "fix", dir).want(t, 0)
	after, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v after fix", st.Mode().Perm())
	}
	if !strings.Contains(string(after), "# TODO(ops): move behind the VPN") || string(after) == string(data) {
		t.Fatalf("fixed file:\n%s", after)
	}
	m := run(t, "posture", "manifests", "--format", "json", p).want(t, 0)
	var rep posture.Report
	if err := json.Unmarshal([]byte(m.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, res := range rep.Results {
		switch res.Control {
		case "BW-K8S-0001", "BW-K8S-0002", "BW-K8S-0005", "BW-K8S-0008", "BW-K8S-0011", "BW-K8S-0040":
			checked++
			if res.Status != posture.StatusPass {
				t.Errorf("%s on %s after fix: %s %q", res.Control, rep.Objects[res.Object], res.Status, res.Message)
			}
		}
	}
	if checked < 6 {
		t.Errorf("only %d results re-checked", checked)
	}
	// An unparsable file is not touched and the exit code says so.
	bad := filepath.Join(dir, "broken.yaml")
	broken := []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n")
	if err := os.WriteFile(bad, broken, 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, "posture", "fix", bad).want(t, 2)
	if got, _ := os.ReadFile(bad); string(got) != string(broken) || !strings.Contains(r.stderr, "file not fixed") {
		t.Errorf("broken file touched or not reported: %s", r.stderr)
	}
}
