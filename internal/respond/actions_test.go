package respond_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
	"github.com/bulwark-security/bulwark/internal/respond"
)

const ns = "shop"

// world is a namespace with the owner chains a real cluster's controllers
// would have built (none run in the harness, so the test builds them):
// Deployment web → ReplicaSet web-5d4f → pods web-5d4f-a, web-5d4f-b;
// StatefulSet db → pod db-0; DaemonSet agent → pod agent-x; bare pods
// debug and victim; a node.
type world struct {
	c     *k8stest.Cluster
	admin kubernetes.Interface
}

func newWorld(t *testing.T) *world {
	t.Helper()
	c := k8stest.Start(t, k8stest.Options{})
	c.Namespace(t, ns)
	w := &world{c: c, admin: c.Client}
	ctx := context.Background()
	apps := w.admin.AppsV1()
	sel := func(app string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
	}
	tmpl := func(app string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}}, Spec: podSpec()}
	}
	dep, err := apps.Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Selector: sel("web"), Template: tmpl("web")},
	}, metav1.CreateOptions{})
	must(t, err)
	rs, err := apps.ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-5d4f", OwnerReferences: []metav1.OwnerReference{owner("Deployment", dep.Name, dep.UID)}},
		Spec:       appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](3), Selector: sel("web"), Template: tmpl("web")},
	}, metav1.CreateOptions{})
	must(t, err)
	sts, err := apps.StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2), Selector: sel("db"), Template: tmpl("db"), ServiceName: "db"},
	}, metav1.CreateOptions{})
	must(t, err)
	ds, err := apps.DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec:       appsv1.DaemonSetSpec{Selector: sel("agent"), Template: tmpl("agent")},
	}, metav1.CreateOptions{})
	must(t, err)
	w.pod(t, "web-5d4f-a", "web", owner("ReplicaSet", rs.Name, rs.UID))
	w.pod(t, "web-5d4f-b", "web", owner("ReplicaSet", rs.Name, rs.UID))
	w.pod(t, "db-0", "db", owner("StatefulSet", sts.Name, sts.UID))
	w.pod(t, "agent-x", "agent", owner("DaemonSet", ds.Name, ds.UID))
	w.pod(t, "debug", "debug")
	w.pod(t, "victim", "victim")
	_, err = w.admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}, metav1.CreateOptions{})
	must(t, err)
	return w
}

func podSpec() corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "registry.example/app:1"}}}
}

func owner(kind, name string, uid types.UID) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: ptr.To(true)}
}

func (w *world) pod(t *testing.T, name, app string, owners ...metav1.OwnerReference) {
	t.Helper()
	_, err := w.admin.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app}, OwnerReferences: owners},
		Spec:       podSpec(),
	}, metav1.CreateOptions{})
	must(t, err)
}

// responder returns a client authenticated as the ServiceAccount of
// deploy/respond-rbac.yaml, after applying that file unchanged.
func (w *world) responder(t *testing.T) kubernetes.Interface {
	t.Helper()
	w.c.Namespace(t, "bulwark")
	applyFile(t, w.admin, filepath.Join(repoRoot(t), "deploy", "respond-rbac.yaml"))
	// A client certificate with the ServiceAccount's user name and groups
	// is, to RBAC, that ServiceAccount (the harness runs no token
	// controller to mint a token).
	cfg := w.c.UserConfig(t, "system:serviceaccount:bulwark:bulwark-respond", "system:serviceaccounts", "system:serviceaccounts:bulwark")
	return kubernetes.NewForConfigOrDie(cfg)
}

func TestActionsWithMinimalRole(t *testing.T) {
	w := newWorld(t)
	r := w.responder(t)
	ctx := context.Background()

	t.Run("delete_pod", func(t *testing.T) {
		msg, err := respond.DeletePod(ctx, r, ns, "victim")
		must(t, err)
		if !strings.Contains(msg, "deleted") {
			t.Errorf("message %q", msg)
		}
		if _, err := w.admin.CoreV1().Pods(ns).Get(ctx, "victim", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("pod still there: %v", err)
		}
		msg, err = respond.DeletePod(ctx, r, ns, "victim")
		must(t, err)
		if !strings.Contains(msg, "already gone") {
			t.Errorf("second delete: message %q, want already gone", msg)
		}
	})

	t.Run("isolate_pod", func(t *testing.T) {
		msg, err := respond.IsolatePod(ctx, r, ns, "web-5d4f-a")
		must(t, err)
		pod, err := w.admin.CoreV1().Pods(ns).Get(ctx, "web-5d4f-a", metav1.GetOptions{})
		must(t, err)
		if pod.Labels[respond.IsolationLabel] != string(pod.UID) || pod.Labels["app"] != "web" {
			t.Fatalf("pod labels %v: want the isolation label = uid %s, app label kept", pod.Labels, pod.UID)
		}
		np, err := w.admin.NetworkingV1().NetworkPolicies(ns).Get(ctx, respond.PolicyName("web-5d4f-a"), metav1.GetOptions{})
		must(t, err)
		if len(np.Spec.Ingress) != 0 || len(np.Spec.Egress) != 0 || len(np.Spec.PolicyTypes) != 2 {
			t.Errorf("policy %+v is not deny-all ingress+egress", np.Spec)
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		must(t, err)
		pods, err := w.admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		must(t, err)
		var selected []string
		for _, p := range pods.Items {
			if sel.Matches(labels.Set(p.Labels)) {
				selected = append(selected, p.Name)
			}
		}
		if strings.Join(selected, ",") != "web-5d4f-a" {
			t.Errorf("policy selects %v, want exactly web-5d4f-a (its replica web-5d4f-b must keep serving)", selected)
		}
		if !strings.Contains(msg, np.Name) {
			t.Errorf("message %q does not name the policy", msg)
		}
		msg, err = respond.IsolatePod(ctx, r, ns, "web-5d4f-a")
		must(t, err)
		if !strings.Contains(msg, "already isolated") {
			t.Errorf("second isolate: message %q", msg)
		}
		// A new pod under the same name (a StatefulSet's, say): the stale
		// policy is pointed at it.
		must(t, w.admin.CoreV1().Pods(ns).Delete(ctx, "web-5d4f-a", metav1.DeleteOptions{}))
		w.pod(t, "web-5d4f-a", "web")
		msg, err = respond.IsolatePod(ctx, r, ns, "web-5d4f-a")
		must(t, err)
		pod, err = w.admin.CoreV1().Pods(ns).Get(ctx, "web-5d4f-a", metav1.GetOptions{})
		must(t, err)
		np, err = w.admin.NetworkingV1().NetworkPolicies(ns).Get(ctx, respond.PolicyName("web-5d4f-a"), metav1.GetOptions{})
		must(t, err)
		if !strings.Contains(msg, "isolated (updated) by") || np.Spec.PodSelector.MatchLabels[respond.IsolationLabel] != string(pod.UID) {
			t.Errorf("re-created pod: message %q, policy selects %v, want the new uid %s", msg, np.Spec.PodSelector.MatchLabels, pod.UID)
		}
		// A policy of that name that Bulwark did not create is left alone.
		_, err = w.admin.NetworkingV1().NetworkPolicies(ns).Create(ctx, &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: respond.PolicyName("db-0")},
			Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}},
		}, metav1.CreateOptions{})
		must(t, err)
		if _, err := respond.IsolatePod(ctx, r, ns, "db-0"); err == nil || !strings.Contains(err.Error(), "not Bulwark's") {
			t.Errorf("foreign policy: err = %v, want a refusal", err)
		}
		db, err := w.admin.CoreV1().Pods(ns).Get(ctx, "db-0", metav1.GetOptions{})
		must(t, err)
		if db.Labels[respond.IsolationLabel] != "" {
			t.Errorf("refused isolation labelled the pod anyway: %v", db.Labels)
		}
		if _, err := respond.IsolatePod(ctx, r, ns, "nope"); !errors.Is(err, respond.ErrNotFound) {
			t.Errorf("isolate missing pod: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("unisolate_pod", func(t *testing.T) {
		// isolate_pod left web-5d4f-a isolated (by the updated policy).
		msg, err := respond.UnisolatePod(ctx, r, ns, "web-5d4f-a")
		must(t, err)
		pod, err := w.admin.CoreV1().Pods(ns).Get(ctx, "web-5d4f-a", metav1.GetOptions{})
		must(t, err)
		if _, ok := pod.Labels[respond.IsolationLabel]; ok || pod.Labels["app"] != "web" {
			t.Errorf("pod labels %v: want the isolation label gone, app kept", pod.Labels)
		}
		if _, err := w.admin.NetworkingV1().NetworkPolicies(ns).Get(ctx, respond.PolicyName("web-5d4f-a"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("policy still there: %v", err)
		}
		if !strings.Contains(msg, "unisolated") || !strings.Contains(msg, "label") || !strings.Contains(msg, "deleted") {
			t.Errorf("message %q", msg)
		}
		msg, err = respond.UnisolatePod(ctx, r, ns, "web-5d4f-a")
		must(t, err)
		if !strings.Contains(msg, "was not isolated") {
			t.Errorf("second unisolate: message %q", msg)
		}
		// Isolate again, then undo through Perform as the responder does.
		_, err = respond.IsolatePod(ctx, r, ns, "web-5d4f-a")
		must(t, err)
		_, err = respond.Perform(ctx, r, alerts.Action{Action: alerts.ActionUnisolatePod, Namespace: ns, Pod: "web-5d4f-a"})
		must(t, err)
		pod, err = w.admin.CoreV1().Pods(ns).Get(ctx, "web-5d4f-a", metav1.GetOptions{})
		must(t, err)
		if _, ok := pod.Labels[respond.IsolationLabel]; ok {
			t.Errorf("Perform(unisolate_pod) left the label: %v", pod.Labels)
		}
		// The foreign policy named like Bulwark's (made by isolate_pod's
		// subtest for db-0) is refused and left in place.
		if _, err := respond.UnisolatePod(ctx, r, ns, "db-0"); err == nil || !strings.Contains(err.Error(), "not Bulwark's") {
			t.Errorf("foreign policy: err = %v, want a refusal", err)
		}
		if _, err := w.admin.NetworkingV1().NetworkPolicies(ns).Get(ctx, respond.PolicyName("db-0"), metav1.GetOptions{}); err != nil {
			t.Errorf("foreign policy deleted: %v", err)
		}
		// The pod is gone but its policy is still there: the policy goes.
		_, err = respond.IsolatePod(ctx, r, ns, "debug")
		must(t, err)
		must(t, w.admin.CoreV1().Pods(ns).Delete(ctx, "debug", metav1.DeleteOptions{}))
		msg, err = respond.UnisolatePod(ctx, r, ns, "debug")
		must(t, err)
		if _, err := w.admin.NetworkingV1().NetworkPolicies(ns).Get(ctx, respond.PolicyName("debug"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("orphan policy kept (%q): %v", msg, err)
		}
		w.pod(t, "debug", "debug")
	})

	t.Run("scale_to_zero", func(t *testing.T) {
		for _, tc := range []struct{ pod, kind, name string }{
			{"web-5d4f-b", "Deployment", "web"},
			{"db-0", "StatefulSet", "db"},
		} {
			msg, err := respond.ScaleToZero(ctx, r, ns, tc.pod)
			must(t, err)
			if !strings.Contains(msg, tc.kind+" "+ns+"/"+tc.name+" scaled from") {
				t.Errorf("%s: message %q", tc.pod, msg)
			}
			msg, err = respond.ScaleToZero(ctx, r, ns, tc.pod)
			must(t, err)
			if !strings.Contains(msg, "already at 0") {
				t.Errorf("%s: second scale: message %q", tc.pod, msg)
			}
		}
		dep, err := w.admin.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		must(t, err)
		sts, err := w.admin.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
		must(t, err)
		rs, err := w.admin.AppsV1().ReplicaSets(ns).Get(ctx, "web-5d4f", metav1.GetOptions{})
		must(t, err)
		if *dep.Spec.Replicas != 0 || *sts.Spec.Replicas != 0 {
			t.Errorf("replicas: deployment %d, statefulset %d; want 0, 0", *dep.Spec.Replicas, *sts.Spec.Replicas)
		}
		if *rs.Spec.Replicas != 3 {
			t.Errorf("the ReplicaSet was scaled (%d), not its Deployment", *rs.Spec.Replicas)
		}
		for _, pod := range []string{"agent-x", "debug"} {
			if _, err := respond.ScaleToZero(ctx, r, ns, pod); !errors.Is(err, respond.ErrNotScalable) {
				t.Errorf("%s: err = %v, want ErrNotScalable", pod, err)
			}
		}
	})

	t.Run("cordon_node", func(t *testing.T) {
		_, err := respond.CordonNode(ctx, r, "node-1")
		must(t, err)
		node, err := w.admin.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
		must(t, err)
		if !node.Spec.Unschedulable {
			t.Fatal("node not cordoned")
		}
		msg, err := respond.CordonNode(ctx, r, "node-1")
		must(t, err)
		if !strings.Contains(msg, "already cordoned") {
			t.Errorf("second cordon: message %q", msg)
		}
		if _, err := respond.CordonNode(ctx, r, "node-2"); !errors.Is(err, respond.ErrNotFound) {
			t.Errorf("cordon missing node: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("uncordon_node", func(t *testing.T) {
		msg, err := respond.Perform(ctx, r, alerts.Action{Action: alerts.ActionUncordonNode, Node: "node-1"})
		must(t, err)
		node, err := w.admin.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
		must(t, err)
		if node.Spec.Unschedulable || !strings.Contains(msg, "uncordoned") {
			t.Fatalf("node unschedulable=%v after uncordon (message %q)", node.Spec.Unschedulable, msg)
		}
		msg, err = respond.UncordonNode(ctx, r, "node-1")
		must(t, err)
		if !strings.Contains(msg, "already schedulable") {
			t.Errorf("second uncordon: message %q", msg)
		}
		if _, err := respond.UncordonNode(ctx, r, "node-2"); !errors.Is(err, respond.ErrNotFound) {
			t.Errorf("uncordon missing node: err = %v, want ErrNotFound", err)
		}
		if _, err := respond.Perform(ctx, r, alerts.Action{Action: alerts.ActionUncordonNode}); !errors.Is(err, respond.ErrInvalid) {
			t.Errorf("no node: err = %v, want ErrInvalid", err)
		}
	})

	t.Run("perform", func(t *testing.T) {
		// The pod is gone but the alert named its workload: scale that.
		w.pod(t, "web-5d4f-c", "web")
		_, err := respond.DeletePod(ctx, r, ns, "web-5d4f-c")
		must(t, err)
		_, err = w.admin.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "cache"},
			Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1), ServiceName: "cache",
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cache"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "cache"}}, Spec: podSpec()}},
		}, metav1.CreateOptions{})
		must(t, err)
		msg, err := respond.Perform(ctx, r, alerts.Action{Action: alerts.ActionScaleToZero, Namespace: ns, Pod: "web-5d4f-c", Workload: "StatefulSet/cache"})
		must(t, err)
		if !strings.Contains(msg, "StatefulSet shop/cache scaled from 1 to 0") {
			t.Errorf("message %q", msg)
		}
		if _, err := respond.Perform(ctx, r, alerts.Action{Action: alerts.ActionDeletePod, Namespace: ns}); !errors.Is(err, respond.ErrInvalid) {
			t.Errorf("no pod: err = %v, want ErrInvalid", err)
		}
		if _, err := respond.Perform(ctx, r, alerts.Action{Action: "reboot_node", Node: "node-1"}); !errors.Is(err, respond.ErrInvalid) {
			t.Errorf("unknown action: err = %v, want ErrInvalid", err)
		}
	})

	t.Run("role is minimal", func(t *testing.T) {
		// The role reaches workloads only through the scale subresource
		// and cannot read secrets or create pods.
		_, err := r.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("list secrets: err = %v, want Forbidden", err)
		}
		_, err = r.AppsV1().Deployments(ns).Patch(ctx, "web", "application/merge-patch+json", []byte(`{"spec":{"paused":true}}`), metav1.PatchOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("patch deployment: err = %v, want Forbidden", err)
		}
		_, err = r.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: podSpec()}, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("create pod: err = %v, want Forbidden", err)
		}
	})
}

func TestActionsForbiddenWithoutRole(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	nobody := kubernetes.NewForConfigOrDie(w.c.UserConfig(t, "mallory", "system:authenticated"))
	for name, f := range map[string]func() (string, error){
		"delete_pod":    func() (string, error) { return respond.DeletePod(ctx, nobody, ns, "debug") },
		"isolate_pod":   func() (string, error) { return respond.IsolatePod(ctx, nobody, ns, "debug") },
		"scale_to_zero": func() (string, error) { return respond.ScaleToZero(ctx, nobody, ns, "db-0") },
		"cordon_node":   func() (string, error) { return respond.CordonNode(ctx, nobody, "node-1") },
		"unisolate_pod": func() (string, error) { return respond.UnisolatePod(ctx, nobody, ns, "debug") },
		"uncordon_node": func() (string, error) { return respond.UncordonNode(ctx, nobody, "node-1") },
	} {
		_, err := f()
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: err = %v, want Forbidden", name, err)
		}
	}
	// Nothing changed.
	if _, err := w.admin.CoreV1().Pods(ns).Get(ctx, "debug", metav1.GetOptions{}); err != nil {
		t.Errorf("debug pod: %v", err)
	}
	sts, err := w.admin.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
	must(t, err)
	if *sts.Spec.Replicas != 2 {
		t.Errorf("statefulset scaled to %d by a forbidden user", *sts.Spec.Replicas)
	}
}

// applyFile creates every object of a multi-document YAML file.
func applyFile(t *testing.T, cs kubernetes.Interface, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	ctx := context.Background()
	n := 0
	for {
		doc, err := rd.Read()
		if err == io.EOF {
			break
		}
		must(t, err)
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		must(t, err)
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = cs.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("%s: unexpected object %T", path, runtime.Object(o))
		}
		must(t, err)
		n++
	}
	if n != 3 {
		t.Fatalf("%s: applied %d objects, want ServiceAccount, ClusterRole, ClusterRoleBinding", path, n)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := k8stest.RepoRoot()
	must(t, err)
	return root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
