package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor"
	"github.com/bulwark-security/bulwark/internal/sensor/enrich"
	"github.com/bulwark-security/bulwark/internal/sensor/probe/runctest"
)

// TestScriptDriftInRuncContainer: in a real runc container on overlay, an
// interpreter running a script from the writable layer is an alert — both
// "./x.sh" (shebang: the kernel reports the script as the exec'd file and
// the interpreter as argv[0]) and "sh /tmp/y.sh" — while scripts of the
// image, inline code (sh -c) and a plain binary are not. The scripts exit
// at once, so the checks run after the exec'd processes are gone (the
// container's init pid, from the runtime state, is inspected instead). An
// image script modified in the container is reported as such.
func TestScriptDriftInRuncContainer(t *testing.T) {
	needSensor(t)
	state := filepath.Join(t.TempDir(), "runc")
	c := runctest.Start(t, runctest.Options{RuncRoot: state, Files: map[string]string{
		"/usr/local/bin/img.sh": "#!/bin/sh\ntrue\n",
		"/opt/app/job.sh":       "echo job\n",
	}})
	rt := enrich.NewRuntime(enrich.RuntimeConfig{Roots: []string{state}})
	sd := &sensor.ScriptDrift{Runtime: rt}
	pl := runPipeline(t, enrich.New(enrich.Config{Resolvers: []enrich.Resolver{rt}}), nil, nil,
		func(cfg *sensor.Config) { cfg.ScriptDrift = sd })
	ctx := context.Background()

	// Not drift: image scripts (both shapes), inline code, a binary.
	if r, err := c.Sh(ctx, "/usr/local/bin/img.sh; sh /opt/app/job.sh; sh -c 'true'; cd /opt/app && sh ./job.sh; ls / >/dev/null"); err != nil || r.ExitCode != 0 {
		t.Fatalf("image scripts: %+v %v", r, err)
	}
	// Drift: a dropped shebang script run as ./x.sh, and sh /tmp/y.sh.
	r, err := c.Sh(ctx, "printf '#!/bin/sh\\necho dropped\\n' > /tmp/x.sh && chmod +x /tmp/x.sh && cd /tmp && ./x.sh && "+
		"echo 'echo second' > /tmp/y.sh && sh /tmp/y.sh")
	if err != nil || !strings.Contains(r.Stdout, "dropped") || !strings.Contains(r.Stdout, "second") {
		t.Fatalf("drift scripts did not run: %+v %v", r, err)
	}
	shebang := pl.sink.wait(t, "shebang script drift", func(a *alerts.Alert) bool {
		return a.Rule == sensor.RuleScriptDrift && strings.Contains(a.Title, "script=/tmp/x.sh ")
	})
	operand := pl.sink.wait(t, "sh operand script drift", func(a *alerts.Alert) bool {
		return a.Rule == sensor.RuleScriptDrift && strings.Contains(a.Title, "script=/tmp/y.sh ")
	})
	for _, a := range []*alerts.Alert{shebang, operand} {
		if a == nil {
			continue
		}
		if a.ContainerID != c.ID || a.MitreTactic != "TA0002" || a.MitreTechnique != "T1059" || a.Severity != alerts.SeverityHigh ||
			!strings.Contains(a.Title, "written in the container") {
			t.Errorf("script drift alert: %+v", a)
		}
		var ev sensor.EventJSON
		if err := json.Unmarshal(a.Evidence, &ev); err != nil || ev.Extra["script_in_image"] != false {
			t.Errorf("evidence %s: %v", a.Evidence, err)
		}
	}
	// An image script modified in the container (copied up).
	if _, err := c.Sh(ctx, "echo '# changed' >> /usr/local/bin/img.sh && /usr/local/bin/img.sh"); err != nil {
		t.Fatal(err)
	}
	if a := pl.sink.wait(t, "modified image script", func(a *alerts.Alert) bool {
		return a.Rule == sensor.RuleScriptDrift && strings.Contains(a.Title, "script=/usr/local/bin/img.sh ")
	}); a != nil && !strings.Contains(a.Title, "image file modified in the container") {
		t.Errorf("modified image script: %s", a.Title)
	}
	// A script still running when it is checked: its own process is
	// inspected, and its exact argv (/proc/<pid>/cmdline) keeps the space in
	// its name that the event's space-joined args lose.
	if _, err := c.Sh(ctx, "echo 'sleep 3' > '/tmp/z z.sh' && (sh '/tmp/z z.sh' >/dev/null 2>&1 &)"); err != nil {
		t.Fatal(err)
	}
	pl.sink.wait(t, "running script", func(a *alerts.Alert) bool {
		return a.Rule == sensor.RuleScriptDrift && strings.Contains(a.Title, "script=/tmp/z z.sh ")
	})
	if sd.ViaInit.Load() >= sd.Checked.Load() {
		t.Errorf("the running script was not checked through its own process (%d of %d via init)", sd.ViaInit.Load(), sd.Checked.Load())
	}
	// Give late checks a moment, then make sure nothing else alerted.
	time.Sleep(500 * time.Millisecond)
	pl.sink.mu.Lock()
	defer pl.sink.mu.Unlock()
	var scripts []string
	for _, a := range pl.sink.got {
		if a.Rule == sensor.RuleScriptDrift {
			scripts = append(scripts, a.Title)
		}
	}
	if len(scripts) != 4 {
		t.Errorf("want 4 script drift alerts (x.sh, y.sh, modified img.sh, z z.sh), got %d:\n%s", len(scripts), strings.Join(scripts, "\n"))
	}
	t.Logf("checks %d, found %d, via init %d, unverifiable %d, dropped %d", sd.Checked.Load(), sd.Found.Load(), sd.ViaInit.Load(),
		sd.Unverifiable.Load(), sd.Dropped.Load())
	if sd.Unverifiable.Load() != 0 {
		t.Errorf("%d checks could not be made", sd.Unverifiable.Load())
	}
}

// BenchmarkScriptDriftCheck: one check of a script in a real container's
// writable layer (procfs reads, symlink resolution, mountinfo, two stats):
// the cost paid, off the event path, per interpreter exec with a script.
func BenchmarkScriptDriftCheck(b *testing.B) {
	if err := runctest.Available(); err != nil {
		b.Skip(err)
	}
	c := runctest.Start(b, runctest.Options{})
	if _, err := c.Sh(context.Background(), "echo 'echo x' > /tmp/x.sh"); err != nil {
		b.Fatal(err)
	}
	pid, err := c.InitPID()
	if err != nil {
		b.Fatal(err)
	}
	ev := rules.Event{Type: rules.EventExecve, Container: rules.Container{ID: c.ID},
		Proc: rules.Process{PID: int64(pid), ExePath: "/bin/sh", Exe: "sh", Args: "/tmp/x.sh", CWD: "/"}}
	sd := &sensor.ScriptDrift{}
	script, _, shebang, ok := sd.Candidate(&ev)
	if !ok {
		b.Fatal("not a candidate")
	}
	b.ReportAllocs()
	for b.Loop() {
		f, err := sd.Check(context.Background(), &ev, script, shebang)
		if err != nil || f == nil {
			b.Fatalf("check: %+v %v", f, err)
		}
	}
}
