package enrich

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Kube indexes this node's pods by container id, fed by a client-go
// informer on pods with fieldSelector spec.nodeName=<node> (a DaemonSet
// needs only get/list/watch on pods). It is a Local resolver: lookups are a
// map read.
type Kube struct {
	client kubernetes.Interface
	node   string
	log    *slog.Logger
	// OnChange is called with the container ids of a pod that was added,
	// changed or deleted (e.g. Enricher.Invalidate). Set before Start.
	OnChange func(containerID string)

	mu   sync.RWMutex
	byID map[string]*Info
	ids  map[string][]string // pod uid → container ids, to forget them on delete
}

// NewKube returns a resolver for the pods of node (all pods when node is
// empty, for tests and single-node setups).
func NewKube(client kubernetes.Interface, node string, log *slog.Logger) *Kube {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Kube{client: client, node: node, log: log, byID: map[string]*Info{}, ids: map[string][]string{}}
}

// Name implements Resolver.
func (k *Kube) Name() string { return "kubernetes" }

// Resolve implements Resolver from the index.
func (k *Kube) Resolve(_ context.Context, id string) (*Info, error) {
	if i, ok := k.Peek(id); ok {
		return i, nil
	}
	return nil, ErrNotFound
}

// Peek implements Local.
func (k *Kube) Peek(id string) (*Info, bool) {
	k.mu.RLock()
	i, ok := k.byID[id]
	k.mu.RUnlock()
	return i, ok
}

// Start runs the informer until ctx ends and waits (up to wait) for its
// first list, so events right after start are attributed.
func (k *Kube) Start(ctx context.Context, wait time.Duration) error {
	opts := []informers.SharedInformerOption{}
	if k.node != "" {
		sel := fields.OneTermEqualSelector("spec.nodeName", k.node).String()
		opts = append(opts, informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = sel }))
	}
	f := informers.NewSharedInformerFactoryWithOptions(k.client, 10*time.Minute, opts...)
	inf := f.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { k.update(o) },
		UpdateFunc: func(_, o any) { k.update(o) },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				k.forget(string(p.UID))
			}
		},
	})
	if err != nil {
		return fmt.Errorf("pod informer: %w", err)
	}
	f.Start(ctx.Done())
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if !cache.WaitForCacheSync(wctx.Done(), inf.HasSynced) {
		return fmt.Errorf("pod informer: first list of pods: %w", wctx.Err())
	}
	return nil
}

// ContainerID strips the runtime scheme from a status containerID
// ("containerd://abc" → "abc").
func ContainerID(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		return s[i+3:]
	}
	return s
}

func (k *Kube) update(o any) {
	if p, ok := o.(*corev1.Pod); ok {
		k.Observe(p)
	}
}

// Observe indexes (or re-indexes) one pod's containers; the informer calls
// it for every added or changed pod.
func (k *Kube) Observe(p *corev1.Pod) {
	uid := string(p.UID)
	labels := make([]string, 0, len(p.Labels))
	for key, v := range p.Labels {
		labels = append(labels, key+":"+v)
	}
	sort.Strings(labels)
	privileged := map[string]bool{}
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			privileged[c.Name] = true
		}
	}
	workload := Workload(p)
	infos := map[string]*Info{}
	statuses := append(append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...), p.Status.EphemeralContainerStatuses...)
	for _, cs := range statuses {
		id := ContainerID(cs.ContainerID)
		if id == "" {
			continue
		}
		infos[id] = &Info{ContainerName: cs.Name, Pod: p.Name, Namespace: p.Namespace, Image: cs.Image,
			ImageDigest: digest(cs.ImageID), Labels: labels, Workload: workload, Privileged: privileged[cs.Name], PodUID: uid}
	}
	k.mu.Lock()
	old := k.ids[uid]
	for _, id := range old {
		delete(k.byID, id)
	}
	ids := make([]string, 0, len(infos))
	for id, i := range infos {
		k.byID[id] = i
		ids = append(ids, id)
	}
	k.ids[uid] = ids
	k.mu.Unlock()
	if k.OnChange != nil {
		for _, id := range old {
			k.OnChange(id)
		}
		for _, id := range ids {
			k.OnChange(id)
		}
	}
}

func (k *Kube) forget(uid string) {
	k.mu.Lock()
	old := k.ids[uid]
	for _, id := range old {
		delete(k.byID, id)
	}
	delete(k.ids, uid)
	k.mu.Unlock()
	if k.OnChange != nil {
		for _, id := range old {
			k.OnChange(id)
		}
	}
}

// digest takes the digest out of a status imageID
// ("docker.io/library/nginx@sha256:ab..", "sha256:ab..", "docker-pullable://...@sha256:..").
func digest(imageID string) string {
	if i := strings.LastIndex(imageID, "sha256:"); i >= 0 {
		return imageID[i:]
	}
	return ""
}

// Workload names the pod's controller as Kind/name; a ReplicaSet created by
// a Deployment (pod-template-hash label) is reported as the Deployment, a
// Job created by a CronJob stays the Job (its name carries the schedule).
func Workload(p *corev1.Pod) string {
	for _, o := range p.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		if o.Kind == "ReplicaSet" {
			if h := p.Labels["pod-template-hash"]; h != "" && strings.HasSuffix(o.Name, "-"+h) {
				return "Deployment/" + strings.TrimSuffix(o.Name, "-"+h)
			}
		}
		return o.Kind + "/" + o.Name
	}
	return ""
}
