package sensor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor/enrich"
)

func TestParseSelector(t *testing.T) {
	good := map[string]Selector{
		"namespace=prod":                   {Namespace: "prod"},
		"ns=prod,image=registry.example/*": {Namespace: "prod", Image: "registry.example/*"},
		"container=3f9a*":                  {Container: "3f9a*"},
		"pod=web-*, namespace=shop":        {Pod: "web-*", Namespace: "shop"},
	}
	for in, want := range good {
		got, err := ParseSelector(in)
		if err != nil || got != want {
			t.Errorf("ParseSelector(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "prod", "colour=red", "namespace="} {
		if _, err := ParseSelector(bad); err == nil {
			t.Errorf("ParseSelector(%q) accepted", bad)
		}
	}
}

// recordingPreventer stands in for the probe's SetPrevention (the kernel
// side is exercised by the root test in probe_test.go); it records calls.
type recordingPreventer struct {
	mu    sync.Mutex
	calls map[uint64]bool
}

func (r *recordingPreventer) SetPrevention(cg uint64, on bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[uint64]bool{}
	}
	r.calls[cg] = on
	return nil
}

func TestPreventionSelectsAttributedContainers(t *testing.T) {
	sel, _ := ParseSelector("namespace=shop,image=registry.example.com/*")
	rp := &recordingPreventer{}
	cgroups := map[string]uint64{c1: 101, c2: 202}
	p := &Prevention{Selectors: []Selector{sel}, Preventer: rp,
		CgroupID: func(id string) (uint64, error) {
			if cg, ok := cgroups[id]; ok {
				return cg, nil
			}
			return 0, ErrNoCgroup
		}}
	k := enrich.NewKube(nil, "", nil)
	k.Observe(testPod(c1))
	en := enrich.New(enrich.Config{Resolvers: []enrich.Resolver{k}, OnAttributed: p.Consider})
	var sink collect
	s, _ := New(Config{Engine: defaultEngine(t), Enricher: en, Prevention: p, Sinks: []Sink{&sink}})
	evs := []rules.Event{
		{Type: rules.EventOpenat, Time: 1_790_000_000_000_000_000, Container: rules.Container{ID: c1}},
		// As the probe reports an exec it killed in a prevention cgroup.
		{Type: rules.EventExecve, Time: 1_790_000_000_000_000_001, Container: rules.Container{ID: c1}, Args: rules.Args{Flags: PreventedFlag},
			Proc: rules.Process{Name: "payload", ExePath: "/tmp/payload", Cmdline: "payload", ExeUpperLayer: true}},
		{Type: rules.EventExecve, Time: 1_790_000_000_000_000_002, Container: rules.Container{ID: c2},
			Proc: rules.Process{Name: "payload", ExePath: "/tmp/payload", Cmdline: "payload", ExeUpperLayer: true}},
	}
	src := sourceFunc(func(ctx context.Context, fn func(*rules.Event)) error {
		for i := range evs {
			fn(&evs[i])
		}
		return nil
	})
	if err := s.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if len(rp.calls) != 1 || !rp.calls[101] {
		t.Fatalf("prevention calls %v, want only cgroup 101 (the shop pod)", rp.calls)
	}
	var prevented, detected int
	for _, a := range sink.got {
		if a.Rule != driftRule {
			continue
		}
		switch {
		case a.ContainerID == c1 && strings.HasPrefix(a.Title, "Prevented: ") && strings.Contains(string(a.Evidence), `"prevented":true`):
			prevented++
		case a.ContainerID == c2 && !strings.HasPrefix(a.Title, "Prevented"):
			detected++
		}
	}
	if prevented != 1 || detected != 1 {
		t.Fatalf("want one prevented (shop pod) and one detected drift alert, got %v", sink.got)
	}
}

// The cgroup finder on a real directory tree: the id is the directory inode.
func TestCgroupIDFromFS(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "kubepods", "besteffort", "pod123", "cri-containerd-"+c1+".scope")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(dir)
	want := st.Sys().(*syscall.Stat_t).Ino
	got, err := CgroupIDFromFS(root)(c1)
	if err != nil || got != want {
		t.Fatalf("got %d, %v; want %d", got, err, want)
	}
	if _, err := CgroupIDFromFS(root)(c2); !errors.Is(err, ErrNoCgroup) {
		t.Fatalf("unknown container: %v", err)
	}
	if _, err := CgroupIDFromFS(root)("abc"); err == nil {
		t.Fatal("short id accepted")
	}
}

func TestListenerDetectorLearns(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	d := &ListenerDetector{LearnFor: time.Minute, Now: func() time.Time { return now }}
	if err := d.ParseAllowListeners([]string{"*/nginx:*=80,443"}); err != nil {
		t.Fatal(err)
	}
	listen := func(image string, port int64) int {
		ev := rules.Event{Type: rules.EventListen, Container: rules.Container{ID: c1, Image: image}, FD: rules.FD{SPort: port}}
		return len(d.Detect(&ev, nil))
	}
	if listen("docker.io/app:1", 8080) != 0 {
		t.Fatal("alert during the learning window")
	}
	now = now.Add(2 * time.Minute)
	if listen("docker.io/app:1", 8080) != 0 {
		t.Fatal("alert on a learned port")
	}
	if listen("docker.io/app:1", 31337) != 1 {
		t.Fatal("no alert on a new port after learning")
	}
	if listen("docker.io/app:1", 31337) != 0 {
		t.Fatal("second alert for the same image and port")
	}
	if listen("docker.io/library/nginx:1.25", 443) != 0 {
		t.Fatal("alert on an allowed port")
	}
	for _, bad := range []string{"nginx", "=80", "nginx=http", "x=99999"} {
		if err := (&ListenerDetector{}).ParseAllowListeners([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, v string
		want bool
	}{
		{"", "anything", true}, {"*", "", true}, {"registry.example.com/*", "registry.example.com/shop/web:1.2", true},
		{"*nginx*", "docker.io/library/nginx:1.25", true}, {"web-?", "web-1", true}, {"web-?", "web-12", false},
		{"prod", "production", false}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false},
	} {
		if got := glob(tc.p, tc.v); got != tc.want {
			t.Errorf("glob(%q, %q) = %v", tc.p, tc.v, got)
		}
	}
}
