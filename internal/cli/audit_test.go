package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/server"
)

// `bulwark audit watch` without --server prints the alerts of the followed
// file as JSON lines; a second run with the same state prints nothing new.
func TestAuditWatchPrints(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit.log")
	line := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"cli-1","stage":"ResponseComplete","verb":"create",` +
		`"user":{"username":"alice"},"sourceIPs":["192.0.2.1"],"objectRef":{"resource":"pods","namespace":"web","name":"p"},` +
		`"responseStatus":{"code":201},"requestObject":{"kind":"Pod","spec":{"containers":[{"image":"busybox","securityContext":{"privileged":true}}]}}}`
	if err := os.WriteFile(logPath, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	watch := func() (int, string, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		var out, errb bytes.Buffer
		code := Main(ctx, Env{Version: "test", Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" },
			Args: []string{"audit", "watch", logPath, "--cluster", "cli-test", "--state", filepath.Join(dir, "state.json"), "--poll", "20ms"}})
		return code, out.String(), errb.String()
	}
	code, out, errs := watch()
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var a alerts.Alert
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &a); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if a.Rule != "Privileged container created" || a.Cluster != "cli-test" || a.Namespace != "web" || a.Source != alerts.SourceAudit {
		t.Errorf("alert %+v", a)
	}
	if code, out, errs = watch(); code != ExitOK || out != "" {
		t.Errorf("second run: exit %d, output %q (%s): the line was read again", code, out, errs)
	}
	if code, _, errs := func() (int, string, string) {
		var o, e bytes.Buffer
		c := Main(context.Background(), Env{Stdout: &o, Stderr: &e, Getenv: func(string) string { return "" }, Args: []string{"audit", "watch", logPath}})
		return c, o.String(), e.String()
	}(); code != ExitError || !strings.Contains(errs, "--cluster") {
		t.Errorf("missing --cluster: exit %d: %s", code, errs)
	}
}

// The receiver's rate flags reach the server's configuration; bad values
// are refused with the flag's name.
func TestAuditRateFlags(t *testing.T) {
	f := auditServerFlags{rate: 2000, burst: 5000, clusterRates: []string{"prod=10000", "lab=0"}}
	var c server.AuditConfig
	if err := f.apply(&c); err != nil {
		t.Fatal(err)
	}
	if c.ClusterRate != 2000 || c.ClusterBurst != 5000 || c.ClusterRates["prod"] != 10000 || c.ClusterRates["lab"] != 0 || len(c.ClusterRates) != 2 {
		t.Fatalf("config %+v", c)
	}
	for _, bad := range []auditServerFlags{
		{rate: -1},
		{burst: -3},
		{clusterRates: []string{"prod"}},
		{clusterRates: []string{"=5"}},
		{clusterRates: []string{"prod=fast"}},
		{clusterRates: []string{"prod=-2"}},
	} {
		if err := bad.apply(&server.AuditConfig{}); err == nil || !strings.Contains(err.Error(), "--audit-") {
			t.Errorf("%+v: err %v, want one naming the flag", bad, err)
		}
	}
}

// A retention of alert ids too short to recognize a replay is refused
// before central starts.
func TestServerAlertIDRetentionFlag(t *testing.T) {
	r := run(t, "server", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--alert-id-retention", "5m").want(t, ExitError)
	if !strings.Contains(r.stderr, "--alert-id-retention 5m0s: at least 1h") {
		t.Errorf("stderr: %s", r.stderr)
	}
}
