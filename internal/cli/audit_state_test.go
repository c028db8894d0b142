package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/audit"
)

// TestAuditWatchAccountStateAcrossRestart: `bulwark audit watch` keeps the
// service-account detector's learned sources in a file next to its offset,
// so after a restart a request from a new address alerts at once — with
// the state in memory only, the restarted watcher would open a new 24 h
// learning period and learn the attacker's address as normal (shown by
// the same run with --account-state none).
func TestAuditWatchAccountStateAcrossRestart(t *testing.T) {
	now := time.Now().UTC()
	line := func(id, ip string, at time.Time) string {
		return fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":%q,"stage":"ResponseComplete","verb":"get",`+
			`"user":{"username":"system:serviceaccount:shop:deployer"},"sourceIPs":[%q],"requestURI":"/api/v1/namespaces/shop/pods",`+
			`"objectRef":{"resource":"pods","namespace":"shop"},"responseStatus":{"code":200},"stageTimestamp":%q}`, id, ip, at.Format(time.RFC3339Nano))
	}
	// Learning (48 h ago, from two node addresses), then — after the
	// restart — a known address and a new one 47 h later.
	learning := line("l-1", "10.0.0.1", now.Add(-48*time.Hour)) + "\n" + line("l-2", "10.0.0.2", now.Add(-48*time.Hour+time.Minute)) + "\n"
	later := line("k-1", "10.0.0.1", now.Add(-time.Hour)) + "\n" + line("x-1", "203.0.113.66", now.Add(-time.Hour+time.Second)) + "\n"

	run := func(t *testing.T, dir string, extra ...string) []alerts.Alert {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		var out, errb bytes.Buffer
		args := append([]string{"audit", "watch", filepath.Join(dir, "audit.log"), "--cluster", "prod", "--state",
			filepath.Join(dir, "offset.json"), "--poll", "20ms"}, extra...)
		if code := Main(ctx, Env{Version: "test", Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }, Args: args}); code != ExitOK {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var got []alerts.Alert
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if l == "" {
				continue
			}
			var a alerts.Alert
			if err := json.Unmarshal([]byte(l), &a); err != nil {
				t.Fatalf("output line %q: %v", l, err)
			}
			if a.Rule == audit.AccountRuleName {
				got = append(got, a)
			}
		}
		return got
	}
	appendLog := func(t *testing.T, dir, s string) {
		t.Helper()
		f, err := os.OpenFile(filepath.Join(dir, "audit.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("persistent", func(t *testing.T) {
		dir := t.TempDir()
		appendLog(t, dir, learning)
		if got := run(t, dir); len(got) != 0 {
			t.Fatalf("alerts while learning: %+v", got)
		}
		state := filepath.Join(dir, "offset.accounts.json")
		raw, err := os.ReadFile(state)
		if err != nil || !strings.Contains(string(raw), `"10.0.0.2"`) || !strings.Contains(string(raw), `"version":1`) {
			t.Fatalf("account state after the first run: %s %v", raw, err)
		}
		appendLog(t, dir, later)
		got := run(t, dir)
		if len(got) != 1 || !strings.Contains(got[0].Title+string(got[0].Evidence), "203.0.113.66") || got[0].Cluster != "prod" {
			t.Fatalf("after the restart: %d service-account alerts %+v, want one for 203.0.113.66", len(got), got)
		}
		// A third run reads nothing new and raises nothing.
		if got := run(t, dir); len(got) != 0 {
			t.Errorf("third run: %+v", got)
		}
		// An explicit path works the same; a corrupt one is set aside.
		if err := os.WriteFile(filepath.Join(dir, "custom.json"), []byte("{garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		appendLog(t, dir, line("l-9", "10.0.0.9", now)+"\n")
		run(t, dir, "--account-state", filepath.Join(dir, "custom.json"))
		if _, err := os.Stat(filepath.Join(dir, "custom.json.corrupt")); err != nil {
			t.Errorf("corrupt account state not set aside: %v", err)
		}
	})

	t.Run("memory only relearns", func(t *testing.T) {
		dir := t.TempDir()
		appendLog(t, dir, learning)
		run(t, dir, "--account-state", "none")
		appendLog(t, dir, later)
		if got := run(t, dir, "--account-state", "none"); len(got) != 0 {
			t.Errorf("memory-only watcher alerted after a restart (%+v): the test no longer shows what persistence buys", got)
		}
		if _, err := os.Stat(filepath.Join(dir, "offset.accounts.json")); err == nil {
			t.Error("--account-state none wrote a file")
		}
	})
}
