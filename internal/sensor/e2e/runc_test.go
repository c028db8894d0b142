package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor"
	"github.com/bulwark-security/bulwark/internal/sensor/enrich"
	"github.com/bulwark-security/bulwark/internal/sensor/intel"
	"github.com/bulwark-security/bulwark/internal/sensor/probe"
	"github.com/bulwark-security/bulwark/internal/sensor/probe/runctest"
)

// needSensor skips (or fails under BULWARK_REQUIRE_SENSOR=1, as in CI)
// when the probe or runc containers cannot run here.
func needSensor(t *testing.T) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("BULWARK_REQUIRE_SENSOR") == "1" {
		skip = t.Fatalf
	}
	if err := probe.Supported(); err != nil {
		skip("eBPF sensor cannot run here (needs root and BTF): %v", err)
	}
	if err := runctest.Available(); err != nil {
		skip("runc containers cannot run here: %v", err)
	}
}

// sink keeps alerts and lets a test wait for one.
type sink struct {
	mu   sync.Mutex
	got  []alerts.Alert
	cond *sync.Cond
}

func newSink() *sink { s := &sink{}; s.cond = sync.NewCond(&s.mu); return s }

func (s *sink) WriteAlert(a *alerts.Alert, _ []byte) error {
	s.mu.Lock()
	s.got = append(s.got, *a)
	s.cond.Broadcast()
	s.mu.Unlock()
	return nil
}

func (s *sink) wait(t *testing.T, what string, match func(*alerts.Alert) bool) *alerts.Alert {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	go func() { time.Sleep(10 * time.Second); s.mu.Lock(); s.cond.Broadcast(); s.mu.Unlock() }()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for i := range s.got {
			if match(&s.got[i]) {
				a := s.got[i]
				return &a
			}
		}
		if time.Now().After(deadline) {
			var rs []string
			for _, a := range s.got {
				rs = append(rs, a.Rule+" @ "+a.ContainerID)
			}
			t.Errorf("no alert: %s (alerts so far: %v)", what, rs)
			return nil
		}
		s.cond.Wait()
	}
}

type pipeline struct {
	s    *sensor.Sensor
	sink *sink
	c    *sensor.Counters
	p    *probe.Probe
}

// runPipeline loads the real probe and runs the whole sensor pipeline on it
// until the test ends.
func runPipeline(t *testing.T, en *enrich.Enricher, prev *sensor.Prevention, set *intel.Set, opts ...func(*sensor.Config)) *pipeline {
	t.Helper()
	return runPipelineWith(t, probe.Config{}, en, prev, set, opts...)
}

// runPipelineWith is runPipeline with a probe configuration.
func runPipelineWith(t *testing.T, pcfg probe.Config, en *enrich.Enricher, prev *sensor.Prevention, set *intel.Set, opts ...func(*sensor.Config)) *pipeline {
	t.Helper()
	p, err := probe.Load(context.Background(), pcfg)
	if err != nil {
		t.Fatalf("load probe: %v", err)
	}
	c := &sensor.Counters{}
	sk := newSink()
	if prev != nil {
		prev.Preventer = p
		prev.OnEnable = func(string, uint64) { c.Prevented.Add(1) }
		prev.OnError = func(id string, err error) { t.Errorf("prevention for %s: %v", id, err) }
	}
	cfg := sensor.Config{Engine: defaultEngine(t), Enricher: en, Prevention: prev, Sinks: []sensor.Sink{sk}, Counters: c}
	if set != nil {
		cfg.Detectors = []sensor.Detector{&sensor.IntelDetector{Sets: func() *intel.Set { return set }}}
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := sensor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if en != nil {
		go en.Run(ctx)
	}
	go func() { done <- s.Run(ctx, p) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sensor run: %v", err)
		}
		p.Close()
	})
	return &pipeline{s: s, sink: sk, c: c, p: p}
}

func waitCounter(t *testing.T, v interface{ Load() uint64 }, want uint64, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if v.Load() >= want {
			return
		}
	}
	t.Fatalf("timeout waiting for %s", what)
}

// TestRuncContainerAlerts: actions in a real runc container, seen by the
// real probe, become alerts through the whole pipeline: a rule alert with
// the container id, a threat-intel connect, and drift prevention by a
// container selector (the exec is killed and the alert says so).
func TestRuncContainerAlerts(t *testing.T) {
	needSensor(t)
	l, err := intel.Parse(strings.NewReader("# e2e list\n203.0.113.0/24\n"), "e2e-intel.txt")
	if err != nil {
		t.Fatal(err)
	}
	set := intel.Build(context.Background(), []*intel.List{l}, intel.BuildOptions{})
	c := runctest.Start(t, runctest.Options{})
	sel, err := sensor.ParseSelector("container=" + c.ID[:16] + "*")
	if err != nil {
		t.Fatal(err)
	}
	prev := &sensor.Prevention{Selectors: []sensor.Selector{sel}}
	pl := runPipeline(t, enrich.New(enrich.Config{}), prev, set)
	ctx := context.Background()

	if _, err := c.Sh(ctx, "ip link set lo up; cat /etc/shadow >/dev/null"); err != nil {
		t.Fatal(err)
	}
	if a := pl.sink.wait(t, "shadow read", func(a *alerts.Alert) bool { return a.Rule == "Shadow file accessed" && a.ContainerID == c.ID }); a != nil {
		if a.Severity != alerts.SeverityHigh || !strings.Contains(a.Title, "file=/etc/shadow") || a.MitreTechnique != "T1003.008" {
			t.Errorf("shadow alert: %+v", a)
		}
		var ev sensor.EventJSON
		if err := json.Unmarshal(a.Evidence, &ev); err != nil || ev.Proc.Name != "cat" || ev.Container.ID != c.ID {
			t.Errorf("evidence %s: %v", a.Evidence, err)
		}
	}

	if _, err := c.Sh(ctx, "nc -w 1 203.0.113.77 80 </dev/null; true"); err != nil {
		t.Fatal(err)
	}
	if a := pl.sink.wait(t, "intel connect", func(a *alerts.Alert) bool { return a.Rule == sensor.RuleIntel && a.ContainerID == c.ID }); a != nil {
		if !strings.Contains(a.Title, "203.0.113.77") || !strings.Contains(a.Title, "e2e-intel.txt") {
			t.Errorf("intel alert: %s", a.Title)
		}
	}

	// The container's first events switched prevention on (container selector).
	waitCounter(t, &pl.c.Prevented, 1, "drift prevention to be switched on")
	r, err := c.Sh(ctx, "cp /bin/busybox /tmp/dropped && /tmp/dropped touch /tmp/ran; echo rc=$?; ls /tmp")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.Stdout, "ran") || !strings.Contains(r.Stdout, "rc=137") {
		t.Errorf("drift binary was not killed before it ran: %+v", r)
	}
	if a := pl.sink.wait(t, "prevented drift", func(a *alerts.Alert) bool {
		return a.Rule == "Drift - executable not in image" && a.ContainerID == c.ID
	}); a != nil {
		if !strings.HasPrefix(a.Title, "Prevented: ") || !strings.Contains(string(a.Evidence), `"prevented":true`) {
			t.Errorf("drift alert does not record the prevention: %s %s", a.Title, a.Evidence)
		}
	}
	// The probe's own flag and the sensor's agree.
	ev := rules.Event{Type: rules.EventExecve, Args: rules.Args{Flags: sensor.PreventedFlag}}
	if !probe.Prevented(&ev) {
		t.Error("sensor.PreventedFlag is not the probe's prevented flag")
	}
	if d := pl.c.EventsDropped.Load(); d != 0 {
		t.Errorf("%d events dropped", d)
	}
}

// TestPodAttributionInRuncContainer: a Pod in a real kube-apiserver whose
// status names the runc container's id; the sensor's informer attributes
// the container's events to the pod (alert carries pod, namespace, image,
// digest, workload), the pod spec's privileged flag reaches the rules (the
// default rule set's 22nd rule, "Privileged command in container", fires
// for a mount run inside it), and a namespace selector turns drift
// prevention on.
func TestPodAttributionInRuncContainer(t *testing.T) {
	needSensor(t)
	cl := k8stest.Start(t, k8stest.Options{})
	const ns, node = "shop", "e2e-node"
	cl.Namespace(t, ns)
	c := runctest.Start(t, runctest.Options{})
	ctx := context.Background()
	yes := true
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-5f7b9-x2x4q", Namespace: ns,
			Labels:          map[string]string{"app": "web", "pod-template-hash": "5f7b9"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5f7b9", UID: "11111111-2222-3333-4444-555555555555", Controller: &yes}}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/shop/web:1.2",
			SecurityContext: &corev1.SecurityContext{Privileged: &yes}}}},
	}
	created, err := cl.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	digest := "sha256:" + strings.Repeat("c3", 32)
	created.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", ContainerID: "containerd://" + c.ID,
		Image: "registry.example.com/shop/web:1.2", ImageID: "registry.example.com/shop/web@" + digest, Ready: true}}
	if _, err := cl.Client.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	kube := enrich.NewKube(cl.Client, node, nil)
	prev := &sensor.Prevention{Selectors: []sensor.Selector{{Namespace: ns}}}
	en := enrich.New(enrich.Config{Resolvers: []enrich.Resolver{kube}, OnAttributed: prev.Consider})
	kube.OnChange = en.Invalidate
	kctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if err := kube.Start(kctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	pl := runPipeline(t, en, prev, nil)

	if _, err := c.Sh(ctx, "cat /etc/shadow >/dev/null"); err != nil {
		t.Fatal(err)
	}
	if a := pl.sink.wait(t, "shadow read in the pod", func(a *alerts.Alert) bool { return a.Rule == "Shadow file accessed" && a.ContainerID == c.ID }); a != nil {
		if a.Namespace != ns || a.Pod != "web-5f7b9-x2x4q" || a.Container != "app" || a.Image != "registry.example.com/shop/web:1.2" ||
			a.ImageDigest != digest || a.Workload != "Deployment/web" {
			t.Errorf("alert not attributed to the pod: %+v", a)
		}
	}
	if _, err := c.Exec(ctx, "/bin/mount"); err != nil {
		t.Fatal(err)
	}
	pl.sink.wait(t, "privileged command in the privileged pod", func(a *alerts.Alert) bool {
		return a.Rule == "Privileged command in container" && a.ContainerID == c.ID && a.Pod == "web-5f7b9-x2x4q"
	})
	waitCounter(t, &pl.c.Prevented, 1, "drift prevention from the namespace selector")
	r, err := c.Sh(ctx, "cp /bin/busybox /tmp/dropped && /tmp/dropped touch /tmp/ran; echo rc=$?; ls /tmp")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.Stdout, "ran") {
		t.Errorf("drift binary ran in a prevented namespace: %+v", r)
	}
	pl.sink.wait(t, "prevented drift in the pod", func(a *alerts.Alert) bool {
		return a.Rule == "Drift - executable not in image" && a.Namespace == ns && strings.HasPrefix(a.Title, "Prevented: ")
	})
}
