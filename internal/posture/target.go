package posture

import (
	"strconv"
	"strings"
	"sync"

	"github.com/distribution/reference"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// target is one object prepared once for every control: the pod spec found
// and its JSON pointer, the RBAC rules, the service, or a namespace.
type target struct {
	ref     *ObjectRef
	pod     *podView
	isRole  bool
	rules   []rbacv1.PolicyRule
	binding *bindingView
	svc     *corev1.Service
	sa      *corev1.ServiceAccount
	subject *subjectView
	// obj is the decoded object, kept when a custom control matches it.
	obj *Object
	// namespace targets: the namespace and whether the input holds a
	// NetworkPolicy in it.
	nsHasPolicy bool
	// unavailable says why the input lacks a kind the control needs
	// (cluster mode, list forbidden); the control is skipped.
	unavailable string
}

type bindingView struct {
	roleRef  rbacv1.RoleRef
	subjects []rbacv1.Subject
}

type podView struct {
	meta       *metav1.ObjectMeta
	spec       *corev1.PodSpec
	prefix     string // JSON pointer of the pod spec inside the object
	long       bool   // a long-running workload (probes make sense), not a Job
	containers []containerView
}

type containerView struct {
	c   *corev1.Container
	lbl string // `container "name"`, built once for every message
	// images parses the image reference on first use: only the image
	// controls need it (the webhook often runs none of them).
	images imageCache
	kind   string // containers, initContainers, ephemeralContainers
	path   string // JSON pointer of the container
}

func (c containerView) label() string { return c.lbl }

func containerLabel(kind, name string) string {
	switch kind {
	case "initContainers":
		return "init container " + strconv.Quote(name)
	case "ephemeralContainers":
		return "ephemeral container " + strconv.Quote(name)
	}
	return "container " + strconv.Quote(name)
}

// newTarget prepares obj, or returns nil and a reason when no control
// applies to its kind.
func newTarget(obj runtime.Object, ref *ObjectRef, images imageCache) (*target, string) {
	t := &target{ref: ref}
	switch o := obj.(type) {
	case *corev1.Pod:
		t.pod = images.newPodView(&o.ObjectMeta, &o.Spec, "/spec", o.Spec.RestartPolicy != corev1.RestartPolicyNever && o.Spec.RestartPolicy != corev1.RestartPolicyOnFailure)
	case *appsv1.Deployment:
		t.pod = images.newPodView(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, "/spec/template/spec", true)
	case *appsv1.ReplicaSet:
		t.pod = images.newPodView(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, "/spec/template/spec", true)
	case *appsv1.StatefulSet:
		t.pod = images.newPodView(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, "/spec/template/spec", true)
	case *appsv1.DaemonSet:
		t.pod = images.newPodView(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, "/spec/template/spec", true)
	case *corev1.ReplicationController:
		if o.Spec.Template == nil {
			return nil, "ReplicationController without a pod template"
		}
		t.pod = images.newPodView(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, "/spec/template/spec", true)
	case *batchv1.Job:
		t.pod = images.newPodView(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, "/spec/template/spec", false)
	case *batchv1.CronJob:
		t.pod = images.newPodView(&o.Spec.JobTemplate.Spec.Template.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec, "/spec/jobTemplate/spec/template/spec", false)
	case *rbacv1.Role:
		t.rules, t.isRole = o.Rules, true
	case *rbacv1.ClusterRole:
		t.rules, t.isRole = o.Rules, true
	case *rbacv1.RoleBinding:
		t.binding = &bindingView{roleRef: o.RoleRef, subjects: o.Subjects}
	case *rbacv1.ClusterRoleBinding:
		t.binding = &bindingView{roleRef: o.RoleRef, subjects: o.Subjects}
	case *corev1.Service:
		t.svc = o
	case *corev1.ServiceAccount:
		if o.Name != "default" {
			return nil, "no controls for a ServiceAccount other than default"
		}
		t.sa = o
	default:
		return nil, "no controls for kind " + ref.Kind
	}
	return t, ""
}

func (images imageCache) newPodView(meta *metav1.ObjectMeta, spec *corev1.PodSpec, prefix string, long bool) *podView {
	p := &podView{meta: meta, spec: spec, prefix: prefix, long: long}
	// The API server defaults a volume without a source to emptyDir
	// (SetDefaults_Volume); do the same so the verdicts are those of the
	// object the cluster would store.
	for i := range spec.Volumes {
		if spec.Volumes[i].VolumeSource == (corev1.VolumeSource{}) {
			spec.Volumes[i].EmptyDir = &corev1.EmptyDirVolumeSource{}
		}
	}
	n := len(spec.InitContainers) + len(spec.Containers) + len(spec.EphemeralContainers)
	p.containers = make([]containerView, 0, n)
	for i := range spec.InitContainers {
		p.containers = append(p.containers, images.newContainerView(&spec.InitContainers[i], "initContainers", prefix, i))
	}
	for i := range spec.Containers {
		p.containers = append(p.containers, images.newContainerView(&spec.Containers[i], "containers", prefix, i))
	}
	for i := range spec.EphemeralContainers {
		c := corev1.Container(spec.EphemeralContainers[i].EphemeralContainerCommon)
		p.containers = append(p.containers, images.newContainerView(&c, "ephemeralContainers", prefix, i))
	}
	return p
}

// imageCache holds each image reference parsed once per evaluation:
// replicas and repeated manifests name the same images again and again.
type imageCache struct {
	m map[string]parsedImage
	// shared outlives the evaluation (nil: none).
	shared *refCache
}

type parsedImage struct {
	ref reference.Named
	err error
}

func (images imageCache) newContainerView(c *corev1.Container, kind, prefix string, i int) containerView {
	return containerView{c: c, kind: kind, path: prefix + "/" + kind + "/" + strconv.Itoa(i), lbl: containerLabel(kind, c.Name), images: images}
}

// image is the container's parsed image reference, parsed once per
// evaluation for every image control, and taken from the evaluator's
// shared cache when an earlier evaluation parsed it (see refCache).
func (c containerView) image() (reference.Named, error) {
	p, ok := c.images.m[c.c.Image]
	if !ok {
		if p, ok = c.images.shared.get(c.c.Image); !ok {
			p.ref, p.err = reference.ParseNormalizedNamed(c.c.Image)
			c.images.shared.put(c.c.Image, p)
		}
		if c.images.m != nil && len(c.images.m) < 100_000 {
			c.images.m[c.c.Image] = p
		}
	}
	return p.ref, p.err
}

// refCache keeps parsed image references across evaluations, for the
// admission webhook, which evaluates every review of the same few images
// again: the reference grammar's regular expression was 6% of a review's
// CPU. A parsed reference (and its error) is immutable, so sharing is
// safe. Bounded: when full it starts over. A nil *refCache caches
// nothing.
type refCache struct {
	mu sync.Mutex
	m  map[string]parsedImage
}

// maxCachedRefs bounds refCache (a few hundred KB at most).
const maxCachedRefs = 4096

func (rc *refCache) get(image string) (parsedImage, bool) {
	if rc == nil {
		return parsedImage{}, false
	}
	rc.mu.Lock()
	p, ok := rc.m[image]
	rc.mu.Unlock()
	return p, ok
}

func (rc *refCache) put(image string, p parsedImage) {
	if rc == nil || len(image) > 4096 {
		return
	}
	rc.mu.Lock()
	if rc.m == nil || len(rc.m) >= maxCachedRefs {
		rc.m = make(map[string]parsedImage)
	}
	rc.m[image] = p
	rc.mu.Unlock()
}

// failures gathers per-container problems into one outcome.
type failures struct {
	msgs    []string
	details []Detail
	patch   []PatchOp
}

// add records a problem of the pod or object as a whole.
func (f *failures) add(msg string, ops ...PatchOp) {
	f.msgs = append(f.msgs, msg)
	f.details = append(f.details, Detail{Message: msg, Problem: msg})
	f.patch = append(f.patch, ops...)
}

// addC records a problem of container cv.
func (f *failures) addC(cv containerView, msg string, ops ...PatchOp) {
	f.msgs = append(f.msgs, msg)
	f.details = append(f.details, Detail{Container: cv.c.Name, ContainerKind: cv.kind, Image: cv.c.Image, Message: msg,
		Problem: strings.TrimPrefix(msg, cv.lbl+" ")})
	f.patch = append(f.patch, ops...)
}

func (f *failures) outcome() outcome {
	if len(f.msgs) == 0 {
		return pass()
	}
	o := fail(strings.Join(f.msgs, "; "), f.patch)
	o.details = f.details
	return o
}

// setSecurityContext is the patch that sets securityContext.<field> of a
// container, adding the securityContext object when the manifest has none.
func setSecurityContext(cv containerView, field string, value any) PatchOp {
	if cv.c.SecurityContext == nil {
		return PatchOp{Op: "add", Path: cv.path + "/securityContext", Value: map[string]any{field: value}}
	}
	return PatchOp{Op: "add", Path: cv.path + "/securityContext/" + field, Value: value}
}
