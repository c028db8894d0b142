package enrich

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulwark-security/bulwark/internal/rules"
)

const cid = "3f9a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"

// slowResolver stands in for a slow remote lookup, to test the Enricher's
// queueing and timing (the real remote resolver, CRI, is tested against a
// real containerd in cri_containerd_test.go): it answers after a delay, and
// counts calls.
type slowResolver struct {
	delay time.Duration
	calls atomic.Int32
	info  *Info
	block chan struct{}
}

func (s *slowResolver) Name() string { return "slow" }
func (s *slowResolver) Resolve(ctx context.Context, id string) (*Info, error) {
	s.calls.Add(1)
	if s.block != nil {
		<-s.block
	}
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if s.info == nil || id != cid {
		return nil, ErrNotFound
	}
	return s.info, nil
}

func TestMissDoesNotBlockAndFillsLater(t *testing.T) {
	r := &slowResolver{delay: 200 * time.Millisecond, info: &Info{Pod: "web-1", Namespace: "shop", Image: "nginx:1.25"}}
	var attributed sync.Map
	e := New(Config{Resolvers: []Resolver{r}, OnAttributed: func(id string, i *Info) { attributed.Store(id, i) }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx)
	ev := rules.Event{Container: rules.Container{ID: cid}}
	start := time.Now()
	if info := e.Enrich(&ev); info != nil || ev.K8s.PodName != "" {
		t.Fatal("first event enriched before the lookup finished")
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("a miss blocked the event for %v", d)
	}
	for range 10 { // while pending: no second lookup
		e.Enrich(&rules.Event{Container: rules.Container{ID: cid}})
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ev = rules.Event{Container: rules.Container{ID: cid}}
		if e.Enrich(&ev) != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ev.K8s.PodName != "web-1" || ev.K8s.Namespace != "shop" || ev.Container.ImageRepository != "nginx" {
		t.Fatalf("not enriched: %+v", ev)
	}
	if n := r.calls.Load(); n != 1 {
		t.Errorf("%d lookups for one container, want 1", n)
	}
	if _, ok := attributed.Load(cid); !ok {
		t.Error("OnAttributed not called")
	}
	host := rules.Event{}
	if e.Enrich(&host) != nil || host.Container.ID != "host" {
		t.Errorf("host event: %+v", host.Container)
	}
}

func TestQueueFullCountsDrops(t *testing.T) {
	r := &slowResolver{block: make(chan struct{})}
	defer close(r.block)
	e := New(Config{Resolvers: []Resolver{r}, QueueSize: 2, Workers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx)
	for i := range 50 {
		id := cid[:60] + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "xx"
		e.Enrich(&rules.Event{Container: rules.Container{ID: id}})
	}
	if d := e.Stats().QueueDrops; d < 40 {
		t.Fatalf("want most lookups dropped with a queue of 2 and a blocked worker, got %d drops", d)
	}
}

func TestTTLExpiry(t *testing.T) {
	now := time.Unix(1_790_000_000, 0)
	k := NewKube(nil, "", nil)
	k.Observe(pod(cid))
	e := New(Config{Resolvers: []Resolver{k}, TTL: time.Minute, NegTTL: time.Second, Now: func() time.Time { return now }})
	ev := rules.Event{Container: rules.Container{ID: cid}}
	if e.Enrich(&ev) == nil {
		t.Fatal("local resolver not asked inline")
	}
	// The pod goes away; the cached answer holds until the TTL.
	k.forget("uid-1")
	ev = rules.Event{Container: rules.Container{ID: cid}}
	if e.Enrich(&ev) == nil {
		t.Fatal("cache hit lost")
	}
	now = now.Add(2 * time.Minute)
	ev = rules.Event{Container: rules.Container{ID: cid}}
	e.Enrich(&ev)
	now = now.Add(2 * time.Second)
	ev = rules.Event{Container: rules.Container{ID: cid}}
	if e.Enrich(&ev) != nil || ev.K8s.PodName != "" {
		t.Fatalf("expired entry still used: %+v", ev.K8s)
	}
	// Invalidate (the informer's change hook) makes the next event ask again.
	k.Observe(pod(cid))
	e.Invalidate(cid)
	ev = rules.Event{Container: rules.Container{ID: cid}}
	if e.Enrich(&ev) == nil || ev.K8s.PodName != "web-7d9f8-abcde" {
		t.Fatal("not re-resolved after Invalidate")
	}
}

func pod(id string) *corev1.Pod {
	yes := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-7d9f8-abcde", Namespace: "shop", UID: "uid-1",
			Labels:          map[string]string{"app": "web", "pod-template-hash": "7d9f8"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-7d9f8", Controller: &yes}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.25",
			SecurityContext: &corev1.SecurityContext{Privileged: &yes}}}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", ContainerID: "cri-o://" + id,
			Image: "docker.io/library/nginx:1.25", ImageID: "docker.io/library/nginx@sha256:abcd"}}},
	}
}

func TestKubeIndex(t *testing.T) {
	k := NewKube(nil, "", nil)
	var changed []string
	k.OnChange = func(id string) { changed = append(changed, id) }
	k.Observe(pod(cid))
	i, ok := k.Peek(cid)
	if !ok || i.Pod != "web-7d9f8-abcde" || i.Workload != "Deployment/web" || !i.Privileged || i.ImageDigest != "sha256:abcd" ||
		len(i.Labels) != 2 || i.Labels[0] != "app:web" || i.ContainerName != "app" {
		t.Fatalf("index: %+v %v", i, ok)
	}
	// The container restarts with a new id: the old one is forgotten.
	p := pod("beef" + cid[4:])
	k.Observe(p)
	if _, ok := k.Peek(cid); ok {
		t.Error("old container id still indexed")
	}
	if _, err := k.Resolve(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	if len(changed) != 3 {
		t.Errorf("OnChange calls %v", changed)
	}
}

func TestWorkloadAndRepository(t *testing.T) {
	yes := true
	for _, tc := range []struct {
		owner, name, hash, want string
	}{
		{"ReplicaSet", "web-7d9f8", "7d9f8", "Deployment/web"},
		{"ReplicaSet", "standalone", "", "ReplicaSet/standalone"},
		{"StatefulSet", "db", "", "StatefulSet/db"},
		{"Job", "backup-2903", "", "Job/backup-2903"},
	} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"pod-template-hash": tc.hash},
			OwnerReferences: []metav1.OwnerReference{{Kind: tc.owner, Name: tc.name, Controller: &yes}}}}
		if got := Workload(p); got != tc.want {
			t.Errorf("Workload(%s/%s) = %q, want %q", tc.owner, tc.name, got, tc.want)
		}
	}
	if Workload(&corev1.Pod{}) != "" {
		t.Error("bare pod has a workload")
	}
	for in, want := range map[string]string{
		"docker.io/library/nginx:1.25":              "docker.io/library/nginx",
		"localhost:5000/app":                        "localhost:5000/app",
		"localhost:5000/app:v1@sha256:abc":          "localhost:5000/app",
		"registry.example.com/shop/web@sha256:abcd": "registry.example.com/shop/web",
	} {
		if got := Repository(in); got != want {
			t.Errorf("Repository(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkEnrichHit is the hot path: a cached container.
func BenchmarkEnrichHit(b *testing.B) {
	k := NewKube(nil, "", nil)
	k.Observe(pod(cid))
	e := New(Config{Resolvers: []Resolver{k}})
	ev := rules.Event{Container: rules.Container{ID: cid}}
	e.Enrich(&ev)
	b.ReportAllocs()
	for b.Loop() {
		ev.K8s = rules.K8s{}
		e.Enrich(&ev)
	}
}
