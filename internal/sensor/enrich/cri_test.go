package enrich

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/bulwark-security/bulwark/internal/rules"
)

// fakeCRI is a CRI RuntimeService served by a real gRPC server on a real
// unix socket, answering from maps. It is a stand-in used only to feed
// the resolver answers no real runtime would give (hostile, huge, hanging);
// the real thing — Debian's containerd 1.6 with its CRI plugin — is
// exercised by cri_containerd_test.go and internal/sensor/e2e.
type fakeCRI struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	mu         sync.Mutex
	containers map[string]*runtimeapi.ContainerStatus
	sandboxOf  map[string]string
	sandboxes  map[string]*runtimeapi.PodSandboxStatus
	hang       chan struct{} // when set, every call waits for it
	calls      atomic.Int64
}

func (f *fakeCRI) wait(ctx context.Context) error {
	f.calls.Add(1)
	f.mu.Lock()
	h := f.hang
	f.mu.Unlock()
	if h != nil {
		select {
		case <-h:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (f *fakeCRI) ContainerStatus(ctx context.Context, r *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.containers[r.ContainerId]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "an error occurred when try to find container %q: not found", r.ContainerId)
	}
	return &runtimeapi.ContainerStatusResponse{Status: st}, nil
}

func (f *fakeCRI) ListContainers(ctx context.Context, r *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &runtimeapi.ListContainersResponse{}
	if sb, ok := f.sandboxOf[r.GetFilter().GetId()]; ok {
		out.Containers = []*runtimeapi.Container{{Id: r.GetFilter().GetId(), PodSandboxId: sb}}
	}
	return out, nil
}

func (f *fakeCRI) PodSandboxStatus(ctx context.Context, r *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.sandboxes[r.PodSandboxId]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "an error occurred when try to find sandbox: not found")
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: st}, nil
}

// serveFake serves f on sock until the returned stop is called (or the test ends).
func serveFake(t testing.TB, f *fakeCRI, sock string) (stop func()) {
	t.Helper()
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.MaxSendMsgSize(64 << 20))
	runtimeapi.RegisterRuntimeServiceServer(s, f)
	go func() { _ = s.Serve(l) }()
	var once sync.Once
	stop = func() { once.Do(s.Stop) }
	t.Cleanup(stop)
	return stop
}

func shortSock(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "cri")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Join(d, "cri.sock")
}

const (
	criCID   = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	criBare  = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	criSB    = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	criUID   = "6a1d2c3b-4e5f-4071-8293-a4b5c6d7e8f9"
	criDigst = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

func newFake() *fakeCRI {
	return &fakeCRI{
		containers: map[string]*runtimeapi.ContainerStatus{
			criCID: {Id: criCID, Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
				Image:    &runtimeapi.ImageSpec{Image: "registry.example.com/shop/web:1.2"},
				ImageRef: "registry.example.com/shop/web@" + criDigst,
				Labels: map[string]string{LabelPodName: "web-5f7b9-x2x4q", LabelPodNamespace: "shop", LabelPodUID: criUID,
					LabelContainerName: "app"},
				Annotations: map[string]string{"io.kubernetes.container.restartCount": "0"}},
			// created without kubelet labels (crictl): the sandbox names the pod;
			// image_ref is an image id, not a manifest digest.
			criBare: {Id: criBare, Metadata: &runtimeapi.ContainerMetadata{Name: "debug"},
				Image: &runtimeapi.ImageSpec{Image: "busybox:1.36"}, ImageRef: "sha256:" + strings.Repeat("2", 64)},
		},
		sandboxOf: map[string]string{criCID: criSB, criBare: criSB},
		sandboxes: map[string]*runtimeapi.PodSandboxStatus{
			criSB: {Id: criSB, Metadata: &runtimeapi.PodSandboxMetadata{Name: "web-5f7b9-x2x4q", Namespace: "shop", Uid: criUID},
				Labels: map[string]string{"app": "web", "pod-template-hash": "5f7b9", LabelPodName: "web-5f7b9-x2x4q",
					LabelPodNamespace: "shop", LabelPodUID: criUID}},
		},
	}
}

func newTestCRI(t testing.TB, sock string, cfg CRIConfig) *CRI {
	t.Helper()
	cfg.Socket = sock
	c, err := NewCRI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCRIResolve(t *testing.T) {
	sock := shortSock(t)
	f := newFake()
	serveFake(t, f, sock)
	c := newTestCRI(t, sock, CRIConfig{})
	ctx := context.Background()
	podLabels := []string{"app:web", "pod-template-hash:5f7b9"}
	for _, tc := range []struct {
		name, id string
		want     Info
	}{
		{"kubelet container", criCID, Info{Pod: "web-5f7b9-x2x4q", Namespace: "shop", PodUID: criUID, ContainerName: "app",
			Image: "registry.example.com/shop/web:1.2", ImageDigest: criDigst, Labels: podLabels}},
		{"container without labels", criBare, Info{Pod: "web-5f7b9-x2x4q", Namespace: "shop", PodUID: criUID, ContainerName: "debug",
			Image: "busybox:1.36", Labels: podLabels}},
		{"sandbox", criSB, Info{Pod: "web-5f7b9-x2x4q", Namespace: "shop", PodUID: criUID, Labels: podLabels, Sandbox: true}},
	} {
		i, err := c.Resolve(ctx, tc.id)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, *i); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	// Cached: no call to the runtime.
	n := f.calls.Load()
	if _, err := c.Resolve(ctx, criCID); err != nil {
		t.Fatal(err)
	}
	if f.calls.Load() != n {
		t.Error("cached answer asked the runtime again")
	}
	if s := c.Stats(); s.Hits != 1 || s.Lookups != 4 || s.Errors != 0 {
		t.Errorf("stats %+v", s)
	}
}

// A container that exited before it was asked: a clear, cached miss; asked
// again after NegTTL; no descriptor leaks over many lookups.
func TestCRIContainerGone(t *testing.T) {
	sock := shortSock(t)
	f := newFake()
	serveFake(t, f, sock)
	now := time.Unix(1_790_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := newTestCRI(t, sock, CRIConfig{NegTTL: time.Second, Now: clock})
	ctx := context.Background()
	gone := strings.Repeat("d", 64)
	if _, err := c.Resolve(ctx, gone); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrCRIUnavailable) {
		t.Fatalf("gone container: %v", err)
	}
	n := f.calls.Load()
	if _, err := c.Resolve(ctx, gone); !errors.Is(err, ErrNotFound) || f.calls.Load() != n {
		t.Fatalf("miss not cached: %v (%d calls)", err, f.calls.Load()-n)
	}
	fds := func() int { e, _ := os.ReadDir("/proc/self/fd"); return len(e) }
	before := fds()
	for k := range 300 {
		mu.Lock()
		now = now.Add(2 * time.Second)
		mu.Unlock()
		if _, err := c.Resolve(ctx, gone); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup %d: %v", k, err)
		}
	}
	if s := c.Stats(); s.NotFound != 301 || s.Errors != 0 {
		t.Errorf("stats %+v", s)
	}
	if after := fds(); after > before+2 {
		t.Errorf("descriptors: %d before, %d after 300 lookups", before, after)
	}
	// The container exits between the calls of one lookup (status found,
	// then gone from the list): its own status still answers.
	f.mu.Lock()
	delete(f.sandboxOf, criCID)
	f.mu.Unlock()
	if i, err := c.Resolve(ctx, criCID); err != nil || i.Pod != "web-5f7b9-x2x4q" || len(i.Labels) != 0 {
		t.Errorf("half-gone container: %+v %v", i, err)
	}
}

// Answers no runtime should give: huge, malformed, too many labels, a
// message larger than the cap. Kept values are bounded; nothing panics.
func TestCRIHostileAnswers(t *testing.T) {
	sock := shortSock(t)
	huge := strings.Repeat("x", 1<<20)
	many := map[string]string{}
	for k := range 20_000 {
		many["example.com/label-"+strconv.Itoa(k)] = "v"
	}
	many["big"] = huge
	many["ctl"] = "a\x00b"
	f := &fakeCRI{
		containers: map[string]*runtimeapi.ContainerStatus{
			criCID: {Id: criCID, Metadata: &runtimeapi.ContainerMetadata{Name: huge},
				Image: &runtimeapi.ImageSpec{Image: "evil image\nname", UserSpecifiedImage: huge}, ImageRef: "x@sha256:zz",
				Labels: map[string]string{LabelPodName: huge, LabelPodNamespace: "ns\x1b[31m", LabelPodUID: criUID, LabelContainerName: "c\x7f"}},
			criBare: {Id: criBare, Annotations: map[string]string{"a": strings.Repeat("y", 6<<20)}},
		},
		sandboxOf: map[string]string{criCID: criSB},
		sandboxes: map[string]*runtimeapi.PodSandboxStatus{
			criSB: {Id: criSB, Metadata: &runtimeapi.PodSandboxMetadata{Name: "ok-pod", Namespace: huge}, Labels: many},
		},
	}
	serveFake(t, f, sock)
	c := newTestCRI(t, sock, CRIConfig{MaxMsgBytes: 4 << 20, CallTimeout: 10 * time.Second})
	i, err := c.Resolve(context.Background(), criCID)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Pod: "ok-pod", PodUID: criUID} // everything else was malformed or too big
	got := *i
	labels := got.Labels
	got.Labels = nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hostile answer (-want +got):\n%s", diff)
	}
	if len(labels) != maxCRILabels {
		t.Errorf("%d labels kept, cap %d", len(labels), maxCRILabels)
	}
	for _, l := range labels {
		if len(l) > maxCRILabelLen || strings.ContainsRune(l, 0) {
			t.Errorf("label kept: %q", trunc(l, 40))
		}
	}
	// A 6 MiB answer is refused by the message cap: an error, not a miss.
	_, err = c.Resolve(context.Background(), criBare)
	if err == nil || errors.Is(err, ErrNotFound) || status.Code(err) != codes.ResourceExhausted {
		t.Errorf("oversized answer: %v", err)
	}
}

// A runtime that accepts the call and never answers: the per-call deadline
// ends the lookup.
func TestCRIHangingRuntime(t *testing.T) {
	sock := shortSock(t)
	f := newFake()
	f.hang = make(chan struct{})
	t.Cleanup(func() { close(f.hang) })
	serveFake(t, f, sock)
	c := newTestCRI(t, sock, CRIConfig{CallTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := c.Resolve(context.Background(), criCID)
	if !errors.Is(err, ErrCRIUnavailable) {
		t.Fatalf("hanging runtime: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("lookup took %v with a 200ms call deadline", d)
	}
}

// The runtime goes away (socket closed and removed) and comes back on the
// same path: lookups fail cleanly while it is gone and succeed again
// without a new resolver.
func TestCRIRuntimeRestart(t *testing.T) {
	sock := shortSock(t)
	f := newFake()
	stop := serveFake(t, f, sock)
	c := newTestCRI(t, sock, CRIConfig{NegTTL: time.Millisecond, CallTimeout: time.Second})
	ctx := context.Background()
	if _, err := c.Resolve(ctx, criCID); err != nil {
		t.Fatal(err)
	}
	stop()
	_ = os.Remove(sock)
	if _, err := c.Resolve(ctx, criBare); !errors.Is(err, ErrCRIUnavailable) {
		t.Fatalf("runtime gone: %v", err)
	}
	serveFake(t, newFake(), sock)
	deadline := time.Now().Add(10 * time.Second)
	for {
		i, err := c.Resolve(ctx, criBare)
		if err == nil {
			if i.ContainerName != "debug" {
				t.Errorf("after restart: %+v", i)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconnect within 10s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCRIBadIDAndSockets(t *testing.T) {
	sock := shortSock(t)
	f := newFake()
	serveFake(t, f, sock)
	c := newTestCRI(t, sock, CRIConfig{})
	for _, id := range []string{"", "../x", "a/b", strings.Repeat("a", 300)} {
		if _, err := c.Resolve(context.Background(), id); !errors.Is(err, ErrBadContainerID) {
			t.Errorf("%q: %v", trunc(id, 20), err)
		}
	}
	if f.calls.Load() != 0 {
		t.Error("a bad id reached the runtime")
	}
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.sock")
	must(t, os.WriteFile(plain, nil, 0o600))
	if got, err := FindCRISocket([]string{filepath.Join(dir, "absent.sock"), plain, sock}); err != nil || got != sock {
		t.Errorf("FindCRISocket: %q %v", got, err)
	}
	if _, err := FindCRISocket([]string{plain}); !errors.Is(err, ErrNoCRISocket) {
		t.Errorf("no socket: %v", err)
	}
	if _, err := NewCRI(CRIConfig{}); err == nil {
		t.Error("NewCRI without a socket")
	}
}

// The sensor's order: runtime state (Local), CRI (async), Kubernetes API
// (Local), merged field by field, earlier resolver first.
func TestEnricherRuntimeCRIKube(t *testing.T) {
	sock := shortSock(t)
	f := newFake()
	f.containers[rtID] = &runtimeapi.ContainerStatus{Id: rtID, Metadata: &runtimeapi.ContainerMetadata{Name: "app-from-cri"},
		Image: &runtimeapi.ImageSpec{Image: "registry.example.com/shop/web:1.2"}, ImageRef: "registry.example.com/shop/web@" + criDigst}
	f.sandboxOf[rtID] = criSB
	serveFake(t, f, sock)
	rt := NewRuntime(RuntimeConfig{Roots: []string{stateRoot(t)}})
	cri := newTestCRI(t, sock, CRIConfig{})
	k := NewKube(nil, "", nil)
	e := New(Config{Resolvers: []Resolver{rt, cri, k}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx)
	var i *Info
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		ev := rules.Event{Container: rules.Container{ID: rtID}}
		if i = e.Enrich(&ev); i != nil && i.ImageDigest != "" {
			break
		}
	}
	want := Info{Pod: "web-5f7b9-x2x4q", Namespace: "shop", ContainerName: "app", Image: "registry.example.com/shop/web:1.2",
		PodUID: "0d6c5b4a-3f2e-1d0c-9b8a-7f6e5d4c3b2a", ImageDigest: criDigst, Labels: []string{"app:web", "pod-template-hash:5f7b9"}}
	if i == nil {
		t.Fatal("not enriched")
	}
	if diff := cmp.Diff(want, *i); diff != "" {
		t.Errorf("merged (-want +got):\n%s", diff)
	}
}

// FuzzCRIInfo: the mapping of CRI answers (protobuf bytes as a runtime
// would send them) to Info: no panic, bounded output.
func FuzzCRIInfo(f *testing.F) {
	fk := newFake()
	for _, st := range fk.containers {
		b, _ := proto.Marshal(st)
		f.Add(b)
	}
	for _, st := range fk.sandboxes {
		b, _ := proto.Marshal(st)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x62, 0x03, 0x0a, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(i *Info) {
			for _, s := range []string{i.Pod, i.Namespace, i.PodUID, i.ContainerName} {
				if len(s) > maxCRIName || !printable(s) {
					t.Fatalf("name kept: %q", trunc(s, 40))
				}
			}
			if len(i.Image) > maxCRIImage || len(i.Labels) > maxCRILabels {
				t.Fatalf("unbounded: %d %d", len(i.Image), len(i.Labels))
			}
			if i.ImageDigest != "" && !isHex(strings.TrimPrefix(i.ImageDigest, "sha256:"), 64) {
				t.Fatalf("digest %q", i.ImageDigest)
			}
		}
		var st runtimeapi.ContainerStatus
		if proto.Unmarshal(b, &st) == nil {
			check(InfoFromContainerStatus(&st))
		}
		var sb runtimeapi.PodSandboxStatus
		if proto.Unmarshal(b, &sb) == nil {
			check(InfoFromSandboxStatus(&sb))
		}
	})
}

// BenchmarkCRIResolveCached: the resolver's cache hit (what every lookup
// of a known container costs after its first).
func BenchmarkCRIResolveCached(b *testing.B) {
	sock := shortSock(b)
	serveFake(b, newFake(), sock)
	c := newTestCRI(b, sock, CRIConfig{})
	if _, err := c.Resolve(context.Background(), criCID); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Resolve(context.Background(), criCID); err != nil {
			b.Fatal(err)
		}
	}
}
