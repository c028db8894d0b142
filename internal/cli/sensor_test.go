package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/sensor/probe"
	"github.com/bulwark-security/bulwark/internal/sensor/probe/runctest"
	"github.com/bulwark-security/bulwark/internal/sensor/spool"
)

// bulwark sensor replay over the sensor package's recorded events: real CLI
// in-process, default rules, an intel list, a user rule file.
func TestSensorReplay(t *testing.T) {
	events := filepath.Join("..", "sensor", "testdata", "events.jsonl")
	intelFile := filepath.Join("..", "sensor", "testdata", "intel.txt")
	dir := t.TempDir()
	userRules := filepath.Join(dir, "team.yaml")
	os.WriteFile(userRules, []byte(`- rule: Listing in a container
  desc: team rule
  condition: evt.type = execve and proc.name = ls and container.id != host
  output: ls ran (cmdline=%proc.cmdline container=%container.id)
  priority: NOTICE
  tags: [mitre_discovery, T1083]
`), 0o600)
	out := filepath.Join(dir, "alerts.jsonl")
	r := run(t, "sensor", "replay", "--no-kube", "--no-default-intel", "--intel", intelFile, "--listen-learn", "0s",
		"--rules", userRules, "--output", out, events)
	r.want(t, ExitError) // the file has malformed lines on purpose
	if !strings.Contains(r.stderr, "events.jsonl:11: bad event: unknown event type") || !strings.Contains(r.stderr, "replayed 8 events (5 bad lines): 8 alerts") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rulesSeen []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var a alerts.Alert
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatal(err)
		}
		if err := a.Validate(); err != nil {
			t.Error(err)
		}
		if a.RuleVersion == "" || a.RuleVersion == "builtin" && !strings.HasPrefix(a.Rule, "Connection to threat") && !strings.HasPrefix(a.Rule, "Unusual") {
			t.Errorf("%s: rule version %q", a.Rule, a.RuleVersion)
		}
		rulesSeen = append(rulesSeen, a.Rule)
	}
	sort.Strings(rulesSeen)
	want := []string{"Cloud metadata service contacted", "Connection to threat-intel indicator", "Drift - executable not in image",
		"Listing in a container", "Reverse shell", "Shadow file accessed", "Test alert", "Unusual listening port"}
	if diff := cmp.Diff(want, rulesSeen); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}

	// A clean file exits 0; alerts go to stdout by default.
	clean := filepath.Join(dir, "clean.jsonl")
	src, _ := os.ReadFile(events)
	var keep []string
	for _, l := range strings.Split(string(src), "\n") {
		if strings.HasPrefix(l, `{"time"`) && !strings.Contains(l, "nosuchcall") && !strings.Contains(l, "not-an-ip") && !strings.Contains(l, "colour") {
			keep = append(keep, l)
		}
	}
	os.WriteFile(clean, []byte(strings.Join(keep, "\n")+"\n"), 0o600)
	r = run(t, "sensor", "replay", "--no-kube", "--no-default-intel", clean).want(t, ExitOK)
	if n := strings.Count(r.stdout, `"source":"sensor"`); n != 5 {
		t.Errorf("want 5 alerts on stdout (no intel, listener learning), got %d:\n%s", n, r.stdout)
	}
}

func TestSensorFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"sensor", "replay", "--no-kube", "--no-default-rules", "x.jsonl"}, "no rules"},
		{[]string{"sensor", "replay", "--no-kube", "--intel", "/nonexistent", "x.jsonl"}, "--intel"},
		{[]string{"sensor", "replay", "--no-kube", "--allow-listener", "nginx", "x.jsonl"}, "--allow-listener"},
		{[]string{"sensor", "replay", "--no-kube", "--server", "http://example.com", "--token", "t", "x.jsonl"}, "plain HTTP"},
		{[]string{"sensor", "replay", "--no-kube", "--server", "https://example.com", "x.jsonl"}, "--token"},
		{[]string{"sensor", "--no-kube", "--drift-prevent", "colour=red"}, "--drift-prevent"},
		{[]string{"sensor", "--no-kube", "--drift-prevent-unknown"}, "needs at least one --drift-prevent"},
	} {
		r := run(t, tc.args...).want(t, ExitError)
		if !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, r.stderr, tc.msg)
		}
	}
	r := run(t, "sensor", "--help").want(t, ExitOK)
	for _, s := range []string{"--drift-prevent", "--spool-dir", "--metrics-addr", "sensor replay", "--runtime-state", "--state-dir",
		"--drift-prevent-unknown", "--no-script-drift", "--host-root"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("--help lacks %s", s)
		}
	}
}

// Flags come from the environment and the YAML file like every command's.
func TestSensorConfigSources(t *testing.T) {
	r := runWith(t, runOpts{env: map[string]string{"BULWARK_NO_KUBE": "true", "BULWARK_NO_DEFAULT_RULES": "true"}},
		"sensor", "replay", "x.jsonl").want(t, ExitError)
	if !strings.Contains(r.stderr, "no rules") {
		t.Errorf("env not applied: %s", r.stderr)
	}
	cfg := filepath.Join(t.TempDir(), "bulwark.yaml")
	os.WriteFile(cfg, []byte("sensor:\n  no-kube: true\n  allow-listener: [\"nginx\"]\n"), 0o600)
	r = run(t, "--config", cfg, "sensor", "replay", "x.jsonl").want(t, ExitError)
	if !strings.Contains(r.stderr, "--allow-listener") {
		t.Errorf("YAML not applied: %s", r.stderr)
	}
}

// replay --server: alerts reach central's ingest over TLS with the agent
// token (an httptest STAND-IN decoding with the contract's own strict
// decoder; the real central is exercised in internal/sensor/e2e), and the
// spool is empty afterwards.
func TestSensorReplayToServer(t *testing.T) {
	var mu sync.Mutex
	var got []alerts.Alert
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/alerts" || r.Header.Get("Authorization") != "Bearer agent-token" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		b, err := alerts.DecodeBatch(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, b.Alerts...)
		mu.Unlock()
		json.NewEncoder(w).Encode(alerts.IngestResult{Accepted: len(b.Alerts)})
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	events := filepath.Join("..", "sensor", "testdata", "events.jsonl")
	spoolDir := filepath.Join(dir, "spool")
	r := run(t, "sensor", "replay", "--no-kube", "--no-default-intel", "--output", "", "--server", srv.URL, "--token", "agent-token",
		"--server-ca", ca, "--spool-dir", spoolDir, "--cluster", "prod-eu", events)
	r.want(t, ExitError) // malformed lines in the file
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 5 { // 7 alerts minus intel (no --intel) and listener (still learning)
		t.Fatalf("central received %d alerts, want 5; stderr:\n%s", len(got), r.stderr)
	}
	for _, a := range got {
		if a.Cluster != "prod-eu" || a.Source != alerts.SourceSensor {
			t.Errorf("alert %+v", a)
		}
	}
	sp, err := spool.Open(spoolDir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if recs, _, err := sp.Read(100, 1<<20); err != nil || len(recs) != 0 {
		t.Errorf("spool still holds %d undelivered alerts (%v)", len(recs), err)
	}
}

// The live command end to end (root): load the real probe, run a host
// program named like the test binary, see its alert in --output, stop on
// cancel. Skips without root/BTF (runs in CI).
func TestSensorLive(t *testing.T) {
	if err := probe.Supported(); err != nil {
		if os.Getenv("BULWARK_REQUIRE_SENSOR") == "1" {
			t.Fatalf("sensor cannot run: %v", err)
		}
		t.Skipf("sensor cannot run here: %v", err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "alerts.jsonl")
	bin := filepath.Join(dir, "bulwark_alerttest_cli")
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bin, b, 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, Env{Version: "test", Args: []string{"sensor", "--no-kube", "--no-default-intel", "--output", out, "--metrics-addr", "127.0.0.1:0",
			"--state-dir", filepath.Join(dir, "state")},
			Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }})
	}()
	deadline := time.Now().Add(30 * time.Second)
	found := false
	for !found && time.Now().Before(deadline) {
		exec.Command(bin, "from-cli-test").Run()
		time.Sleep(300 * time.Millisecond)
		data, _ := os.ReadFile(out)
		found = strings.Contains(string(data), "bulwark_alerttest_cli from-cli-test")
	}
	stopSensor(t, cancel, done, &stderr)
	if !found {
		t.Fatalf("no Test alert for the host exec in --output; stderr:\n%s", stderr.String())
	}
}

// TestSensorRestartKeepsListenerBaseline (root, real probe + runc): the live
// command attributes a runc container from its runtime state (--runtime-state:
// the image comes from the containerd CRI annotation in its bundle), learns the
// port it listens on, saves the baseline in --state-dir at exit; a second run
// (after the learning window) loads it: the learned port stays quiet, a new
// one alerts.
func TestSensorRestartKeepsListenerBaseline(t *testing.T) {
	if err := probe.Supported(); err != nil {
		if os.Getenv("BULWARK_REQUIRE_SENSOR") == "1" {
			t.Fatalf("sensor cannot run: %v", err)
		}
		t.Skipf("sensor cannot run here: %v", err)
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "runc", "k8s.io")
	c := runctest.Start(t, runctest.Options{RuncRoot: state, Annotations: map[string]string{
		"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.image-name": "registry.example.com/listener:1"}})
	stateDir := filepath.Join(dir, "sensor-state")
	run := func(out string, action func()) string {
		ctx, cancel := context.WithCancel(context.Background())
		var stderr bytes.Buffer
		done := make(chan int, 1)
		go func() {
			done <- Main(ctx, Env{Version: "test", Args: []string{"sensor", "--no-kube", "--no-default-intel", "--output", out,
				"--runtime-state", state, "--state-dir", stateDir, "--listen-learn", "2s"},
				Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }})
		}()
		time.Sleep(1500 * time.Millisecond) // probe loaded
		action()
		time.Sleep(1500 * time.Millisecond) // events processed
		cancel()
		select {
		case code := <-done:
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatal("sensor did not stop")
		}
		b, _ := os.ReadFile(out)
		return string(b)
	}
	ctx := context.Background()
	first := run(filepath.Join(dir, "a1.jsonl"), func() {
		if _, err := c.Sh(ctx, "(nc -l -p 8080 >/dev/null 2>&1 &)"); err != nil {
			t.Fatal(err)
		}
	})
	if strings.Contains(first, "Unusual listening port") {
		t.Fatalf("alert while learning:\n%s", first)
	}
	b, err := os.ReadFile(filepath.Join(stateDir, "listeners.json"))
	if err != nil || !strings.Contains(string(b), `"registry.example.com/listener:1"`) || !strings.Contains(string(b), "8080") {
		t.Fatalf("baseline not saved with the runtime-attributed image: %s %v", b, err)
	}
	time.Sleep(2 * time.Second) // the learning window is over
	second := run(filepath.Join(dir, "a2.jsonl"), func() {
		if _, err := c.Sh(ctx, "pkill nc; (nc -l -p 8080 >/dev/null 2>&1 &); (nc -l -p 9090 >/dev/null 2>&1 &)"); err != nil {
			t.Fatal(err)
		}
	})
	if strings.Count(second, "Unusual listening port") != 1 || !strings.Contains(second, "port=9090") || strings.Contains(second, "port=8080") {
		t.Fatalf("after restart: want one listener alert for 9090:\n%s", second)
	}
}
