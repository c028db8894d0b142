package posture

import (
	"fmt"
	"strconv"
	"strings"

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
	rules   []rbacv1.PolicyRule
	binding *bindingView
	svc     *corev1.Service
	// namespace targets: the namespace and whether the input holds a
	// NetworkPolicy in it.
	nsHasPolicy bool
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
	c      *corev1.Container
	ref    reference.Named // the parsed image, parsed once for every image control
	refErr error
	kind   string // containers, initContainers, ephemeralContainers
	path   string // JSON pointer of the container
}

func (c containerView) label() string {
	switch c.kind {
	case "initContainers":
		return fmt.Sprintf("init container %q", c.c.Name)
	case "ephemeralContainers":
		return fmt.Sprintf("ephemeral container %q", c.c.Name)
	}
	return fmt.Sprintf("container %q", c.c.Name)
}

// newTarget prepares obj, or returns nil and a reason when no control
// applies to its kind.
func newTarget(obj runtime.Object, ref *ObjectRef) (*target, string) {
	t := &target{ref: ref}
	switch o := obj.(type) {
	case *corev1.Pod:
		t.pod = newPodView(&o.ObjectMeta, &o.Spec, "/spec", o.Spec.RestartPolicy != corev1.RestartPolicyNever && o.Spec.RestartPolicy != corev1.RestartPolicyOnFailure)
	case *appsv1.Deployment:
		t.pod = newPodView(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, "/spec/template/spec", true)
	case *appsv1.ReplicaSet:
		t.pod = newPodView(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, "/spec/template/spec", true)
	case *appsv1.StatefulSet:
		t.pod = newPodView(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, "/spec/template/spec", true)
	case *appsv1.DaemonSet:
		t.pod = newPodView(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, "/spec/template/spec", true)
	case *corev1.ReplicationController:
		if o.Spec.Template == nil {
			return nil, "ReplicationController without a pod template"
		}
		t.pod = newPodView(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, "/spec/template/spec", true)
	case *batchv1.Job:
		t.pod = newPodView(&o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, "/spec/template/spec", false)
	case *batchv1.CronJob:
		t.pod = newPodView(&o.Spec.JobTemplate.Spec.Template.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec, "/spec/jobTemplate/spec/template/spec", false)
	case *rbacv1.Role:
		t.rules = o.Rules
	case *rbacv1.ClusterRole:
		t.rules = o.Rules
	case *rbacv1.RoleBinding:
		t.binding = &bindingView{roleRef: o.RoleRef, subjects: o.Subjects}
	case *rbacv1.ClusterRoleBinding:
		t.binding = &bindingView{roleRef: o.RoleRef, subjects: o.Subjects}
	case *corev1.Service:
		t.svc = o
	default:
		return nil, "no controls for kind " + ref.Kind
	}
	return t, ""
}

func newPodView(meta *metav1.ObjectMeta, spec *corev1.PodSpec, prefix string, long bool) *podView {
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
		p.containers = append(p.containers, newContainerView(&spec.InitContainers[i], "initContainers", prefix, i))
	}
	for i := range spec.Containers {
		p.containers = append(p.containers, newContainerView(&spec.Containers[i], "containers", prefix, i))
	}
	for i := range spec.EphemeralContainers {
		c := corev1.Container(spec.EphemeralContainers[i].EphemeralContainerCommon)
		p.containers = append(p.containers, newContainerView(&c, "ephemeralContainers", prefix, i))
	}
	return p
}

func newContainerView(c *corev1.Container, kind, prefix string, i int) containerView {
	cv := containerView{c: c, kind: kind, path: prefix + "/" + kind + "/" + strconv.Itoa(i)}
	cv.ref, cv.refErr = reference.ParseNormalizedNamed(c.Image)
	return cv
}

// failures gathers per-container problems into one outcome.
type failures struct {
	msgs  []string
	patch []PatchOp
}

func (f *failures) add(msg string, ops ...PatchOp) {
	f.msgs = append(f.msgs, msg)
	f.patch = append(f.patch, ops...)
}

func (f *failures) outcome() outcome {
	if len(f.msgs) == 0 {
		return pass()
	}
	return fail(strings.Join(f.msgs, "; "), f.patch)
}

// setSecurityContext is the patch that sets securityContext.<field> of a
// container, adding the securityContext object when the manifest has none.
func setSecurityContext(cv containerView, field string, value any) PatchOp {
	if cv.c.SecurityContext == nil {
		return PatchOp{Op: "add", Path: cv.path + "/securityContext", Value: map[string]any{field: value}}
	}
	return PatchOp{Op: "add", Path: cv.path + "/securityContext/" + field, Value: value}
}
