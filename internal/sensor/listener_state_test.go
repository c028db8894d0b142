package sensor

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/rules"
)

func listenEvent(image string, port int64) string {
	return `{"time":"2026-11-27T10:00:00Z","type":"listen","proc":{"name":"srv","exepath":"/srv"},"user":{"uid":0,"loginuid":-1,"gid":0},` +
		`"fd":{"sport":` + strconv.FormatInt(port, 10) + `,"l4proto":"tcp"},"container":{"id":"` + c1 + `","image":"` + image + `"}}` + "\n"
}

// runListener replays events through a whole pipeline whose listener
// detector persists to path (RunPersistence, saved on stop), as the sensor
// process does, and returns the listener alerts raised.
func runListener(t *testing.T, path string, now func() time.Time, events string) []string {
	t.Helper()
	ld := &ListenerDetector{LearnFor: time.Minute, Now: now}
	if err := ld.Load(path); err != nil {
		t.Fatalf("load: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ld.RunPersistence(ctx, path, time.Hour, nil) }()
	sk := &collect{}
	s, err := New(Config{Engine: defaultEngine(t), Detectors: []Detector{ld}, Sinks: []Sink{sk}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background(), &Replay{R: strings.NewReader(events)}); err != nil {
		t.Fatal(err)
	}
	cancel() // the process stops: the baseline is saved
	<-done
	var got []string
	sk.mu.Lock()
	defer sk.mu.Unlock()
	for _, a := range sk.got {
		if a.Rule == RuleListener {
			got = append(got, a.Title)
		}
	}
	return got
}

// TestListenerBaselineSurvivesRestart: ports learned before a restart are
// not alerted after it, the learning window is not reopened by the restart
// (a new port alerts at once), and a corrupt state file is set aside with a
// clear error while the detector starts fresh.
func TestListenerBaselineSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "listeners.json")
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }

	// First run: the image listens on 8080 and 9090 during its learning window.
	if got := runListener(t, path, clock, listenEvent("docker.io/app:1", 8080)+listenEvent("docker.io/app:1", 9090)); len(got) != 0 {
		t.Fatalf("alerts while learning: %v", got)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("baseline not saved: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}

	// Restart after the window: learned ports are quiet, a new port alerts.
	now = now.Add(10 * time.Minute)
	got := runListener(t, path, clock, listenEvent("docker.io/app:1", 8080)+listenEvent("docker.io/app:1", 9090)+listenEvent("docker.io/app:1", 4444))
	if len(got) != 1 || !strings.Contains(got[0], "port=4444") {
		t.Fatalf("after restart: want one alert for 4444, got %v", got)
	}
	// Without the saved baseline the restart would have reopened learning:
	// the same events on a fresh detector raise nothing.
	if got := runListener(t, filepath.Join(t.TempDir(), "none.json"), clock, listenEvent("docker.io/app:1", 4444)); len(got) != 0 {
		t.Fatalf("control: fresh detector alerted: %v", got)
	}
	// 4444 was learned (alerted once) and persisted too.
	now = now.Add(time.Minute)
	if got := runListener(t, path, clock, listenEvent("docker.io/app:1", 4444)); len(got) != 0 {
		t.Fatalf("4444 alerted twice across restarts: %v", got)
	}

	// Corrupt file: clear error, set aside, fresh start, next save works.
	if err := os.WriteFile(path, []byte(`{"version":1,"images":{"x":`), 0o600); err != nil {
		t.Fatal(err)
	}
	ld := &ListenerDetector{LearnFor: time.Minute, Now: clock}
	err := ld.Load(path)
	if !errors.Is(err, ErrListenerState) || !strings.Contains(err.Error(), "learning from scratch") {
		t.Fatalf("corrupt file: %v", err)
	}
	if _, err := os.Stat(path + ".corrupt"); err != nil {
		t.Errorf("corrupt file not set aside: %v", err)
	}
	ev := rules.Event{Type: rules.EventListen, Container: rules.Container{ID: c1, Image: "docker.io/app:1"}, FD: rules.FD{SPort: 1234}}
	if n := len(ld.Detect(&ev, nil)); n != 0 {
		t.Errorf("fresh detector alerted %d times inside its learning window", n)
	}
	if wrote, err := ld.Save(path); err != nil || !wrote {
		t.Fatalf("save after a corrupt load: %v %v", wrote, err)
	}
	if err := (&ListenerDetector{}).Load(path); err != nil {
		t.Fatalf("reload: %v", err)
	}
}

func TestListenerStateRejects(t *testing.T) {
	for name, in := range map[string]string{
		"garbage":      "\x00\x01not json",
		"version 2":    `{"version":2,"images":{}}`,
		"no version":   `{"images":{}}`,
		"empty key":    `{"version":1,"images":{"":{"since":"2026-01-01T00:00:00Z","ports":[1]}}}`,
		"zero since":   `{"version":1,"images":{"a":{"ports":[1]}}}`,
		"ports string": `{"version":1,"images":{"a":{"since":"2026-01-01T00:00:00Z","ports":"80"}}}`,
		"huge":         `{"version":1,"pad":"` + strings.Repeat("a", MaxListenerStateBytes) + `"}`,
	} {
		if _, err := parseListenerState(strings.NewReader(in)); !errors.Is(err, ErrListenerState) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Out-of-range ports are dropped on load, not trusted.
	path := filepath.Join(t.TempDir(), "l.json")
	if err := os.WriteFile(path, []byte(`{"version":1,"images":{"a":{"since":"2026-01-01T00:00:00Z","ports":[0,-1,70000,80]}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &ListenerDetector{}
	if err := d.Load(path); err != nil {
		t.Fatal(err)
	}
	if p := d.images["a"].ports; len(p) != 1 || !p[80] {
		t.Errorf("ports loaded: %v", p)
	}
}

// FuzzListenerState: the state-file parser on arbitrary bytes.
func FuzzListenerState(f *testing.F) {
	f.Add([]byte(`{"version":1,"saved":"2026-11-27T21:00:00Z","images":{"docker.io/library/nginx:1.25":{"since":"2026-11-27T20:00:00Z","ports":[80,443]}}}`))
	f.Add([]byte(`{"version":1,"images":null}`))
	f.Add([]byte(`{"version":1,"images":{"a":{"since":"0001-01-01T00:00:00Z"}}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseListenerState(bytes.NewReader(b))
		if err == nil && st.Version != ListenerStateVersion {
			t.Fatalf("accepted version %d", st.Version)
		}
	})
}
