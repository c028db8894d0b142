package enrich

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/rules"
)

const rtID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// stateRoot lays out a runtime state root holding the real state.json that
// runc 1.1.5 wrote for a container whose bundle carried containerd's CRI
// annotations (testdata/runc-1.1.5-state.json, recorded on this machine).
func stateRoot(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	b, err := os.ReadFile("testdata/runc-1.1.5-state.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, rtID), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, rtID, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestRuntimeRuncState(t *testing.T) {
	root := stateRoot(t)
	r := NewRuntime(RuntimeConfig{Roots: []string{filepath.Join(t.TempDir(), "absent"), root}})
	st, err := r.State(context.Background(), rtID)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Pod: "web-5f7b9-x2x4q", Namespace: "shop", ContainerName: "app", Image: "registry.example.com/shop/web:1.2",
		PodUID: "0d6c5b4a-3f2e-1d0c-9b8a-7f6e5d4c3b2a"}
	if diff := cmp.Diff(want, st.Info); diff != "" {
		t.Errorf("info (-want +got):\n%s", diff)
	}
	if st.Bundle != "/tmp/rt1/bundle" || st.InitPID <= 0 || st.InitStart == 0 || st.Root != root {
		t.Errorf("state: bundle %q pid %d start %d root %q", st.Bundle, st.InitPID, st.InitStart, st.Root)
	}
	// Second lookup: cache.
	if _, err := r.State(context.Background(), rtID); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s.Hits != 1 || s.Lookups != 2 {
		t.Errorf("stats %+v", s)
	}
	// Peek (Local) gives the same Info.
	if i, ok := r.Peek(rtID); !ok || i.Image != want.Image {
		t.Errorf("peek %+v %v", i, ok)
	}
}

// A crun container: status file + annotations from the bundle's config.json.
func TestRuntimeCrunStatusAndBundle(t *testing.T) {
	root, bundle := t.TempDir(), t.TempDir()
	cfg, err := os.ReadFile("testdata/containerd-cri-config.json")
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o600))
	must(t, os.MkdirAll(filepath.Join(root, "c1"), 0o700))
	must(t, os.WriteFile(filepath.Join(root, "c1", "status"),
		[]byte(`{"pid":4242,"process-start-time":99,"cgroup-path":"/x","rootfs":"/r","bundle":"`+bundle+`","created":"2026-11-27T00:00:00Z"}`), 0o600))
	r := NewRuntime(RuntimeConfig{Roots: []string{root}})
	st, err := r.State(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if st.InitPID != 4242 || st.Info.Image != "registry.example.com/shop/web:1.2" || st.Info.Pod != "web-5f7b9-x2x4q" {
		t.Errorf("crun state: %+v", st)
	}
}

func TestRuntimeCRIOAndPodmanAnnotations(t *testing.T) {
	for name, tc := range map[string]struct {
		ann  map[string]string
		want Info
	}{
		"cri-o": {map[string]string{
			"io.kubernetes.cri-o.ContainerType": "container", "io.kubernetes.cri-o.ImageName": "quay.io/app/api:3",
			"io.kubernetes.cri-o.Image": "api:3", "io.kubernetes.pod.name": "api-0", "io.kubernetes.pod.namespace": "prod",
			"io.kubernetes.container.name": "api"},
			Info{Pod: "api-0", Namespace: "prod", ContainerName: "api", Image: "quay.io/app/api:3"}},
		"cri-o image by id only": {map[string]string{"io.kubernetes.cri-o.ImageName": "", "io.kubernetes.cri-o.Image": "api@sha256:ab",
			"io.kubernetes.pod.name": "api-0"}, Info{Pod: "api-0", Image: "api@sha256:ab"}},
		"containerd sandbox": {map[string]string{"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-name": "web-0",
			"io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.sandbox-uid": "u-1"},
			Info{Pod: "web-0", Namespace: "shop", PodUID: "u-1", Sandbox: true}},
		"cri-o sandbox": {map[string]string{"io.kubernetes.cri-o.ContainerType": "sandbox", "io.kubernetes.pod.name": "api-0",
			"io.kubernetes.pod.uid": "u-2"}, Info{Pod: "api-0", PodUID: "u-2", Sandbox: true}},
		"podman":       {map[string]string{"io.container.manager": "libpod", "io.podman.annotations.privileged": "TRUE"}, Info{Privileged: true}},
		"plain runc":   {map[string]string{}, Info{}},
		"unrelated":    {map[string]string{"org.opencontainers.image.stopSignal": "SIGTERM"}, Info{}},
		"blank values": {map[string]string{AnnContainerdImageName: "  ", AnnContainerdSandboxName: ""}, Info{}},
	} {
		if diff := cmp.Diff(tc.want, InfoFromAnnotations(tc.ann)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Hostile state directories: nothing is followed out of the root, nothing
// blocks, nothing large is read, bad JSON is a clear error.
func TestRuntimeHostileState(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "state.json")
	b, _ := os.ReadFile("testdata/runc-1.1.5-state.json")
	must(t, os.WriteFile(secret, b, 0o600))

	root := t.TempDir()
	mk := func(id string) string { d := filepath.Join(root, id); must(t, os.MkdirAll(d, 0o700)); return d }
	// symlinked file pointing out of the root
	must(t, os.Symlink(secret, filepath.Join(mk("link-file"), "state.json")))
	// symlinked container directory pointing out of the root
	must(t, os.Symlink(outside, filepath.Join(root, "link-dir")))
	// relative escape
	must(t, os.Symlink("../../../../../../.."+secret, filepath.Join(mk("link-rel"), "state.json")))
	// huge file (sparse: costs no disk)
	f, err := os.Create(filepath.Join(mk("huge"), "state.json"))
	must(t, err)
	must(t, f.Truncate(1<<40))
	f.Close()
	// invalid JSON
	must(t, os.WriteFile(filepath.Join(mk("badjson"), "state.json"), []byte(`{"init_process_pid": 12, "config": {"labels": [`), 0o600))
	must(t, os.WriteFile(filepath.Join(mk("badtype"), "state.json"), []byte(`{"init_process_pid": "x"}`), 0o600))
	// a FIFO must not block the lookup
	must(t, syscall.Mkfifo(filepath.Join(mk("fifo"), "state.json"), 0o600))
	// a directory where the file should be
	must(t, os.MkdirAll(filepath.Join(mk("dir"), "state.json"), 0o700))
	// a bundle path that is relative, and one that does not exist
	must(t, os.WriteFile(filepath.Join(mk("relbundle"), "status"), []byte(`{"pid":1,"bundle":"../../etc"}`), 0o600))
	must(t, os.WriteFile(filepath.Join(mk("gonebundle"), "status"), []byte(`{"pid":1,"bundle":"/nonexistent/bundle"}`), 0o600))

	r := NewRuntime(RuntimeConfig{Roots: []string{root}, MaxStateBytes: 64 << 10})
	for id, want := range map[string]error{
		"link-file": ErrNotFound, "link-dir": ErrNotFound, "link-rel": ErrNotFound,
		"huge": ErrStateTooLarge, "badjson": ErrBadState, "badtype": ErrBadState, "fifo": ErrBadState, "dir": ErrBadState,
		"../" + filepath.Base(outside): ErrBadContainerID, "a/b": ErrBadContainerID, "..": ErrBadContainerID, "": ErrBadContainerID,
		"absent": ErrNotFound,
	} {
		done := make(chan error, 1)
		go func() { _, err := r.State(context.Background(), id); done <- err }()
		select {
		case err := <-done:
			if want == ErrNotFound {
				// A symlink out of the root is refused by os.Root: an
				// error that is not a successful read of the outside file.
				if err == nil {
					t.Errorf("%s: read through a symlink out of the state root", id)
				}
				continue
			}
			if !errors.Is(err, want) {
				t.Errorf("%s: err %v, want %v", id, err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: lookup blocked", id)
		}
	}
	for _, id := range []string{"relbundle", "gonebundle"} {
		st, err := r.State(context.Background(), id)
		if err != nil || st.Info.Image != "" || st.Info.Pod != "" {
			t.Errorf("%s: %+v %v (want the pid, no names)", id, st, err)
		}
	}
}

// A container that exits between two lookups: the state directory is gone,
// the answer is ErrNotFound after the cache's TTL, nothing is kept open.
func TestRuntimeContainerExits(t *testing.T) {
	root := stateRoot(t)
	now := time.Unix(1_790_000_000, 0)
	r := NewRuntime(RuntimeConfig{Roots: []string{root}, TTL: time.Second, NegTTL: time.Second, Now: func() time.Time { return now }})
	if _, err := r.State(context.Background(), rtID); err != nil {
		t.Fatal(err)
	}
	must(t, os.RemoveAll(filepath.Join(root, rtID)))
	if _, err := r.State(context.Background(), rtID); err != nil {
		t.Fatalf("cached answer lost before the TTL: %v", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := r.State(context.Background(), rtID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("exited container: %v", err)
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if l, _ := os.Readlink("/proc/self/fd/" + fd.Name()); strings.HasPrefix(l, root) {
			t.Errorf("fd %s still open on %s", fd.Name(), l)
		}
	}
}

func TestRuntimeLRUBound(t *testing.T) {
	root := stateRoot(t)
	r := NewRuntime(RuntimeConfig{Roots: []string{root}, CacheSize: 8})
	for i := range 100 {
		_, _ = r.State(context.Background(), "c"+strings.Repeat("x", i%50)+string(rune('a'+i%26)))
	}
	r.cache.mu.Lock()
	n := r.cache.lru.Len()
	r.cache.mu.Unlock()
	if m := r.cache.len(); n > 8 || m > 8 {
		t.Errorf("cache holds %d/%d entries, cap 8", n, m)
	}
}

// Runtime state names the image and container; the informer adds the
// workload, labels and digest; the runtime wins where both answer.
func TestEnricherMergesRuntimeAndKube(t *testing.T) {
	root := stateRoot(t)
	rt := NewRuntime(RuntimeConfig{Roots: []string{root}})
	k := NewKube(nil, "", nil)
	p := pod(rtID)
	k.Observe(p)
	e := New(Config{Resolvers: []Resolver{rt, k}})
	ev := rules.Event{Container: rules.Container{ID: rtID}}
	i := e.Enrich(&ev)
	if i == nil {
		t.Fatal("not enriched")
	}
	want := Info{Pod: "web-5f7b9-x2x4q", Namespace: "shop", ContainerName: "app", Image: "registry.example.com/shop/web:1.2",
		ImageDigest: "sha256:abcd", Workload: "Deployment/web", Labels: []string{"app:web", "pod-template-hash:7d9f8"}, Privileged: true,
		PodUID: "0d6c5b4a-3f2e-1d0c-9b8a-7f6e5d4c3b2a"}
	if diff := cmp.Diff(want, *i); diff != "" {
		t.Errorf("merged (-want +got):\n%s", diff)
	}
	// A container the informer does not know (outside Kubernetes, or not
	// yet listed) still gets its names from the runtime.
	e2 := New(Config{Resolvers: []Resolver{rt, NewKube(nil, "", nil)}})
	ev = rules.Event{Container: rules.Container{ID: rtID}}
	if i := e2.Enrich(&ev); i == nil || ev.Container.Image != "registry.example.com/shop/web:1.2" || ev.K8s.PodName != "web-5f7b9-x2x4q" {
		t.Errorf("runtime-only attribution: %+v %+v", i, ev)
	}
}

// FuzzRuntimeState: the state parsers (runc state.json, crun status, OCI
// config annotations) on arbitrary bytes: no panic, bounded output.
func FuzzRuntimeState(f *testing.F) {
	for _, p := range []string{"testdata/runc-1.1.5-state.json", "testdata/containerd-cri-config.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"pid":1,"process-start-time":2,"bundle":"/b"}`))
	f.Add([]byte(`{"config":{"labels":["=","bundle=","a=b=c","noequals"]}}`))
	f.Add([]byte(`{"annotations":{"io.kubernetes.cri.image-name":"x"}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		if st, err := ParseRuncState(b); err == nil {
			if len(st.Annotations) > maxAnnotations+1 {
				t.Fatalf("%d annotations", len(st.Annotations))
			}
			_ = InfoFromAnnotations(st.Annotations)
		}
		_, _ = ParseCrunStatus(b)
		if a, err := ParseOCIAnnotations(b); err == nil {
			if len(a) > maxAnnotations {
				t.Fatalf("%d annotations", len(a))
			}
			_ = InfoFromAnnotations(a)
		}
	})
}

// BenchmarkRuntimeLookup: a new container (state.json read from disk and
// parsed: the cost paid once per container) and a cache hit.
func BenchmarkRuntimeLookup(b *testing.B) {
	root := stateRoot(b)
	b.Run("new-container", func(b *testing.B) {
		r := NewRuntime(RuntimeConfig{Roots: []string{"/run/containerd/runc/k8s.io", root}, TTL: time.Nanosecond, NegTTL: time.Nanosecond})
		b.ReportAllocs()
		for b.Loop() {
			r.Forget(rtID)
			if _, err := r.State(context.Background(), rtID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cache-hit", func(b *testing.B) {
		r := NewRuntime(RuntimeConfig{Roots: []string{root}})
		if _, err := r.State(context.Background(), rtID); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.State(context.Background(), rtID); err != nil {
				b.Fatal(err)
			}
		}
	})
}
