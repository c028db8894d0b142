package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// outputFormat tells which of the machine formats a report is in.
func outputFormat(t *testing.T, out string) string {
	t.Helper()
	switch {
	case strings.Contains(out, `"bomFormat": "CycloneDX"`):
		return "cyclonedx"
	case strings.Contains(out, `"spdxVersion"`):
		return "spdx"
	case strings.Contains(out, `"$schema": "https://json.schemastore.org/sarif`):
		return "sarif"
	case strings.Contains(out, `"schemaVersion"`):
		return "json"
	}
	t.Fatalf("unrecognised report:\n%.300s", out)
	return ""
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bulwark.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFailOn(t *testing.T) {
	db := demoDB(t)
	scanArgs := []string{"scan", "image", "--db-dir", db, "--format", "json", demoImage(t)}

	r := runWith(t, runOpts{env: map[string]string{"BULWARK_FAIL_ON": "high"}}, scanArgs...).want(t, ExitPolicyFailed)
	if !strings.Contains(r.stderr, "policy failed") {
		t.Errorf("BULWARK_FAIL_ON: no reason on stderr:\n%s", r.stderr)
	}
	for _, yaml := range []string{
		"fail-on: high\n",
		"scan:\n  fail-on: high\n",
		"scan:\n  image:\n    fail-on: critical\n",
	} {
		cfg := writeConfig(t, yaml)
		run(t, append([]string{"--config", cfg}, scanArgs...)...).want(t, ExitPolicyFailed)
		// BULWARK_CONFIG names the file as well.
		runWith(t, runOpts{env: map[string]string{"BULWARK_CONFIG": cfg}}, scanArgs...).want(t, ExitPolicyFailed)
	}
	// A key for another command does not apply.
	run(t, append([]string{"--config", writeConfig(t, "scan:\n  fs:\n    fail-on: high\n")}, scanArgs...)...).want(t, ExitOK)
	// The database directory can come from the file too.
	cfg := writeConfig(t, "db-dir: "+db+"\n")
	run(t, "--config", cfg, "scan", "image", "--format", "json", "--fail-on", "high", demoImage(t)).want(t, ExitPolicyFailed)

	// Bad values name where they came from.
	r = runWith(t, runOpts{env: map[string]string{"BULWARK_FAIL_ON": "severe"}}, scanArgs...).want(t, ExitError)
	if !strings.Contains(r.stderr, "fail-on") {
		t.Errorf("bad BULWARK_FAIL_ON: %s", r.stderr)
	}
	bad := writeConfig(t, "scan: [unclosed\n")
	r = run(t, append([]string{"--config", bad}, scanArgs...)...).want(t, ExitError)
	if !strings.Contains(r.stderr, bad) || r.stdout != "" {
		t.Errorf("bad config file: stderr %q, stdout %d bytes", r.stderr, len(r.stdout))
	}
	r = run(t, append([]string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}, scanArgs...)...).want(t, ExitError)
	if !strings.Contains(r.stderr, "missing.yaml") {
		t.Errorf("missing config file: %s", r.stderr)
	}
}

// TestConfigPrecedence: a flag beats the environment, which beats the file.
func TestConfigPrecedence(t *testing.T) {
	db := demoDB(t)
	cfg := writeConfig(t, "scan:\n  format: spdx\n")
	env := map[string]string{"BULWARK_FORMAT": "sarif"}
	base := []string{"--config", cfg, "scan", "image", "--db-dir", db}
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"file", nil, nil, "spdx"},
		{"env beats file", env, nil, "sarif"},
		{"flag beats env and file", env, []string{"--format", "cyclonedx"}, "cyclonedx"},
		{"short flag beats env", env, []string{"-f", "json"}, "json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append(append(append([]string{}, base...), c.args...), demoImage(t))
			r := runWith(t, runOpts{env: c.env}, args...).want(t, ExitOK)
			if got := outputFormat(t, r.stdout); got != c.want {
				t.Errorf("format %s, want %s", got, c.want)
			}
		})
	}
}
