package respond

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// Sentinel errors, for callers (and tests) that branch on the cause.
var (
	// ErrNotFound: the target object does not exist (for isolate and
	// scale, where a missing pod leaves nothing to act on).
	ErrNotFound = errors.New("not found")
	// ErrNotScalable: the pod's owner has no replica count to set
	// (DaemonSet, Job, bare pod, unknown controller).
	ErrNotScalable = errors.New("workload cannot be scaled")
	// ErrInvalid: the action lacks what it needs (namespace, pod, node) or
	// names an unknown kind.
	ErrInvalid = errors.New("invalid action")
)

// Label and names used by IsolatePod.
const (
	// IsolationLabel is added to an isolated pod with the pod's UID as the
	// value. A NetworkPolicy selects pods only by label, and the pod's own
	// labels are shared with its replicas (selecting app=web would cut off
	// the whole Deployment); the UID makes the selector match exactly this
	// pod. Adding a label keeps the pod in its ReplicaSet (no replacement
	// is started, the isolated pod stays for forensics).
	IsolationLabel = "bulwark.dev/isolated"
	// ManagedByLabel marks the NetworkPolicies Bulwark creates.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	managedBy      = "bulwark"
	policyPrefix   = "bulwark-isolate-"
)

// Outcome is what an action did: the message to report and, for
// scale_to_zero, the object scaled and its replica count before (what
// restore_scale puts back).
type Outcome struct {
	Message          string
	Scaled           string // "Deployment/web"
	PreviousReplicas *int32
}

// Result is the outcome as the report central records.
func (o Outcome) Result() alerts.ActionResult {
	return alerts.ActionResult{State: alerts.ActionDone, Message: o.Message, Scaled: o.Scaled, PreviousReplicas: o.PreviousReplicas}
}

// Perform runs one action from central and returns the message to report.
func Perform(ctx context.Context, cs kubernetes.Interface, a alerts.Action) (string, error) {
	o, err := Do(ctx, cs, a)
	return o.Message, err
}

// Do runs one action from central and returns its outcome.
func Do(ctx context.Context, cs kubernetes.Interface, a alerts.Action) (Outcome, error) {
	if a.Action.NeedsPod() && (a.Namespace == "" || a.Pod == "") {
		return Outcome{}, fmt.Errorf("%s: %w: no namespace/pod", a.Action, ErrInvalid)
	}
	msg := func(m string, err error) (Outcome, error) { return Outcome{Message: m}, err }
	switch a.Action {
	case alerts.ActionDeletePod:
		return msg(DeletePod(ctx, cs, a.Namespace, a.Pod))
	case alerts.ActionIsolatePod:
		return msg(IsolatePod(ctx, cs, a.Namespace, a.Pod))
	case alerts.ActionScaleToZero:
		o, err := scaleToZero(ctx, cs, a.Namespace, a.Pod)
		if errors.Is(err, ErrNotFound) && a.Workload != "" {
			// The pod is gone (maybe deleted by an earlier action) but
			// the alert named its workload: scale that.
			kind, name, ok := strings.Cut(a.Workload, "/")
			if ok {
				return scaleWorkload(ctx, cs, a.Namespace, kind, name)
			}
		}
		return o, err
	case alerts.ActionRestoreScale:
		if a.Namespace == "" || a.Scaled == "" || a.Replicas == nil {
			return Outcome{}, fmt.Errorf("restore_scale: %w: no namespace, workload or replica count", ErrInvalid)
		}
		kind, name, _ := strings.Cut(a.Scaled, "/")
		return msg(RestoreScale(ctx, cs, a.Namespace, kind, name, *a.Replicas))
	case alerts.ActionCordonNode:
		if a.Node == "" {
			return Outcome{}, fmt.Errorf("cordon_node: %w: no node", ErrInvalid)
		}
		return msg(CordonNode(ctx, cs, a.Node))
	case alerts.ActionUnisolatePod:
		return msg(UnisolatePod(ctx, cs, a.Namespace, a.Pod))
	case alerts.ActionUncordonNode:
		if a.Node == "" {
			return Outcome{}, fmt.Errorf("uncordon_node: %w: no node", ErrInvalid)
		}
		return msg(UncordonNode(ctx, cs, a.Node))
	}
	return Outcome{}, fmt.Errorf("%w: unknown action %q", ErrInvalid, a.Action)
}

// DeletePod deletes the pod; its controller (if any) starts a fresh one from
// the image. A pod already gone is success: the goal is reached.
func DeletePod(ctx context.Context, cs kubernetes.Interface, ns, name string) (string, error) {
	err := cs.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("pod %s/%s already gone", ns, name), nil
	case err != nil:
		return "", fmt.Errorf("delete pod %s/%s: %w", ns, name, err)
	}
	return fmt.Sprintf("pod %s/%s deleted", ns, name), nil
}

// IsolatePod cuts the pod off the network: it labels the pod with
// IsolationLabel=<pod UID> and creates a NetworkPolicy selecting exactly
// that label with both policy types and no rules, which denies all ingress
// and egress. It only takes effect where the cluster's network plugin
// enforces NetworkPolicy. Running it again finds both in place.
func IsolatePod(ctx context.Context, cs kubernetes.Interface, ns, name string) (string, error) {
	pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("isolate pod %s/%s: %w", ns, name, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("isolate pod %s/%s: get: %w", ns, name, err)
	}
	uid := string(pod.UID)
	// Policy first, label second: a failure in between leaves a policy
	// that selects nothing, never a pod labelled as isolated that is not.
	state, err := ensureIsolationPolicy(ctx, cs, ns, name, uid)
	if err != nil {
		return "", err
	}
	if pod.Labels[IsolationLabel] != uid {
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"labels": map[string]string{IsolationLabel: uid},
			// Only patch the pod we read: a pod re-created under the same
			// name is a different pod.
			"uid": uid,
		}})
		if _, err := cs.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return "", fmt.Errorf("isolate pod %s/%s: label: %w", ns, name, err)
		}
		if state == "already isolated" {
			state = "isolated"
		}
	}
	return fmt.Sprintf("pod %s/%s %s by NetworkPolicy %s", ns, name, state, PolicyName(name)), nil
}

// ensureIsolationPolicy creates or repairs the pod's deny-all policy and
// says what it found: "isolated", "already isolated" or "isolated
// (updated)".
func ensureIsolationPolicy(ctx context.Context, cs kubernetes.Interface, ns, name, uid string) (string, error) {
	want := isolationPolicy(ns, name, uid)
	np := cs.NetworkingV1().NetworkPolicies(ns)
	_, err := np.Create(ctx, want, metav1.CreateOptions{})
	switch {
	case err == nil:
		return "isolated", nil
	case !apierrors.IsAlreadyExists(err):
		return "", fmt.Errorf("isolate pod %s/%s: create NetworkPolicy %s: %w", ns, name, want.Name, err)
	}
	cur, err := np.Get(ctx, want.Name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("isolate pod %s/%s: get NetworkPolicy %s: %w", ns, name, want.Name, err)
	}
	if cur.Labels[ManagedByLabel] != managedBy {
		return "", fmt.Errorf("isolate pod %s/%s: NetworkPolicy %s exists and is not Bulwark's; not touching it", ns, name, want.Name)
	}
	if cur.Spec.PodSelector.MatchLabels[IsolationLabel] == uid && len(cur.Spec.Ingress) == 0 && len(cur.Spec.Egress) == 0 && len(cur.Spec.PolicyTypes) == 2 {
		return "already isolated", nil
	}
	// A policy left from an earlier pod of the same name: point it here.
	cur.Spec = want.Spec
	if _, err := np.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		return "", fmt.Errorf("isolate pod %s/%s: update NetworkPolicy %s: %w", ns, name, want.Name, err)
	}
	return "isolated (updated)", nil
}

// isolationPolicy is the deny-all policy for one pod.
func isolationPolicy(ns, pod, uid string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name:        PolicyName(pod),
			Namespace:   ns,
			Labels:      map[string]string{ManagedByLabel: managedBy},
			Annotations: map[string]string{"bulwark.dev/isolated-pod": pod},
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{IsolationLabel: uid}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
}

// PolicyName is the isolation NetworkPolicy's name for a pod: the pod name
// with a prefix, shortened with a hash when that would pass the 253-byte
// limit of object names.
func PolicyName(pod string) string {
	n := policyPrefix + pod
	if len(n) <= 253 {
		return n
	}
	sum := sha256.Sum256([]byte(pod))
	return n[:253-17] + "-" + hex.EncodeToString(sum[:8])
}

// ScaleToZero scales the pod's workload to zero replicas through the scale
// subresource (so the ClusterRole needs no update on the workloads
// themselves). The owner chain is followed: Pod → ReplicaSet → Deployment,
// Pod → StatefulSet, or Pod → ReplicaSet without a Deployment. DaemonSets,
// Jobs and bare pods have no replica count: ErrNotScalable, saying what to
// do instead.
func ScaleToZero(ctx context.Context, cs kubernetes.Interface, ns, name string) (string, error) {
	o, err := scaleToZero(ctx, cs, ns, name)
	return o.Message, err
}

func scaleToZero(ctx context.Context, cs kubernetes.Interface, ns, name string) (Outcome, error) {
	pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Outcome{}, fmt.Errorf("scale workload of pod %s/%s: %w", ns, name, ErrNotFound)
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("scale workload of pod %s/%s: get pod: %w", ns, name, err)
	}
	owner := metav1.GetControllerOf(pod)
	if owner == nil {
		return Outcome{}, fmt.Errorf("scale workload of pod %s/%s: %w: a bare pod has no controller (delete it instead)", ns, name, ErrNotScalable)
	}
	kind, oname := owner.Kind, owner.Name
	if kind == "ReplicaSet" && apiGroup(owner.APIVersion) == "apps" {
		rs, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, oname, metav1.GetOptions{})
		if err != nil {
			return Outcome{}, fmt.Errorf("scale workload of pod %s/%s: get ReplicaSet %s: %w", ns, name, oname, err)
		}
		if d := metav1.GetControllerOf(rs); d != nil && d.Kind == "Deployment" && apiGroup(d.APIVersion) == "apps" {
			kind, oname = d.Kind, d.Name
		}
	} else if apiGroup(owner.APIVersion) != "apps" {
		kind = owner.APIVersion + " " + owner.Kind
	}
	return scaleWorkload(ctx, cs, ns, kind, oname)
}

// ScaleWorkload sets an apps/v1 Deployment, StatefulSet or ReplicaSet to
// zero replicas; already at zero is success.
func ScaleWorkload(ctx context.Context, cs kubernetes.Interface, ns, kind, name string) (string, error) {
	o, err := scaleWorkload(ctx, cs, ns, kind, name)
	return o.Message, err
}

type scaler interface {
	GetScale(ctx context.Context, name string, opts metav1.GetOptions) (*autoscalingv1.Scale, error)
	UpdateScale(ctx context.Context, name string, scale *autoscalingv1.Scale, opts metav1.UpdateOptions) (*autoscalingv1.Scale, error)
}

// scalerFor is the scale subresource of a scalable workload kind.
func scalerFor(cs kubernetes.Interface, ns, kind, name string) (scaler, error) {
	switch kind {
	case "Deployment":
		return cs.AppsV1().Deployments(ns), nil
	case "StatefulSet":
		return cs.AppsV1().StatefulSets(ns), nil
	case "ReplicaSet":
		return cs.AppsV1().ReplicaSets(ns), nil
	case "DaemonSet":
		return nil, fmt.Errorf("scale %s %s/%s: %w: a DaemonSet runs one pod per node (cordon the node or delete the DaemonSet)", kind, ns, name, ErrNotScalable)
	case "Job", "CronJob":
		return nil, fmt.Errorf("scale %s %s/%s: %w: suspend or delete the %s instead", kind, ns, name, ErrNotScalable, kind)
	}
	return nil, fmt.Errorf("scale %s %s/%s: %w: unsupported controller", kind, ns, name, ErrNotScalable)
}

func scaleWorkload(ctx context.Context, cs kubernetes.Interface, ns, kind, name string) (Outcome, error) {
	s, err := scalerFor(cs, ns, kind, name)
	if err != nil {
		return Outcome{}, err
	}
	sc, err := s.GetScale(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Outcome{}, fmt.Errorf("scale %s %s/%s: %w", kind, ns, name, ErrNotFound)
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("scale %s %s/%s: get scale: %w", kind, ns, name, err)
	}
	was := sc.Spec.Replicas
	o := Outcome{Scaled: kind + "/" + name, PreviousReplicas: &was}
	if was == 0 {
		o.Message = fmt.Sprintf("%s %s/%s already at 0 replicas", kind, ns, name)
		return o, nil
	}
	sc.Spec.Replicas = 0 // resourceVersion kept: a concurrent change makes this a conflict, not a lost update
	if _, err := s.UpdateScale(ctx, name, sc, metav1.UpdateOptions{}); err != nil {
		return Outcome{}, fmt.Errorf("scale %s %s/%s to 0: %w", kind, ns, name, err)
	}
	o.Message = fmt.Sprintf("%s %s/%s scaled from %d to 0 replicas", kind, ns, name, was)
	return o, nil
}

// RestoreScale undoes ScaleToZero: it sets the workload back to replicas
// through the scale subresource — only while it is still at zero. A
// workload someone scaled since (to any other count) is left as it is:
// the undo must not override a later decision, and its goal (the workload
// no longer held at zero by Bulwark) is reached. A workload at the count
// already is success too, so a repeated restore is harmless.
func RestoreScale(ctx context.Context, cs kubernetes.Interface, ns, kind, name string, replicas int32) (string, error) {
	if replicas <= 0 {
		return "", fmt.Errorf("restore %s %s/%s: %w: replica count %d", kind, ns, name, ErrInvalid, replicas)
	}
	s, err := scalerFor(cs, ns, kind, name)
	if err != nil {
		return "", err
	}
	sc, err := s.GetScale(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("restore %s %s/%s: %w", kind, ns, name, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("restore %s %s/%s: get scale: %w", kind, ns, name, err)
	}
	switch cur := sc.Spec.Replicas; {
	case cur == replicas:
		return fmt.Sprintf("%s %s/%s already at %d replicas", kind, ns, name, replicas), nil
	case cur != 0:
		return fmt.Sprintf("%s %s/%s left at %d replicas: scaled by someone else since it was scaled to zero (not restored to %d)",
			kind, ns, name, cur, replicas), nil
	}
	sc.Spec.Replicas = replicas // resourceVersion kept: a concurrent change is a conflict
	if _, err := s.UpdateScale(ctx, name, sc, metav1.UpdateOptions{}); err != nil {
		return "", fmt.Errorf("restore %s %s/%s to %d replicas: %w", kind, ns, name, replicas, err)
	}
	return fmt.Sprintf("%s %s/%s restored from 0 to %d replicas", kind, ns, name, replicas), nil
}

// CordonNode marks the node unschedulable, as `kubectl cordon` does; its
// running pods stay (drain is a separate, more disruptive decision).
func CordonNode(ctx context.Context, cs kubernetes.Interface, name string) (string, error) {
	node, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("cordon node %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("cordon node %s: get: %w", name, err)
	}
	if node.Spec.Unschedulable {
		return fmt.Sprintf("node %s already cordoned", name), nil
	}
	patch := []byte(`{"spec":{"unschedulable":true}}`)
	if _, err := cs.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return "", fmt.Errorf("cordon node %s: %w", name, err)
	}
	return fmt.Sprintf("node %s cordoned", name), nil
}

// UnisolatePod undoes IsolatePod: it deletes the pod's deny-all
// NetworkPolicy (only if Bulwark created it: a policy of that name someone
// else made is not touched) and removes the pod's isolation label. Label
// first, policy second — the reverse of IsolatePod — so a failure in
// between leaves a policy selecting nothing, never a labelled pod whose
// policy is gone without anyone knowing. Nothing to undo (pod or policy
// already gone) is success: the goal, a pod not isolated by Bulwark, is
// reached.
func UnisolatePod(ctx context.Context, cs kubernetes.Interface, ns, name string) (string, error) {
	np := cs.NetworkingV1().NetworkPolicies(ns)
	pname := PolicyName(name)
	cur, err := np.Get(ctx, pname, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		cur = nil
	case err != nil:
		return "", fmt.Errorf("unisolate pod %s/%s: get NetworkPolicy %s: %w", ns, name, pname, err)
	case cur.Labels[ManagedByLabel] != managedBy:
		return "", fmt.Errorf("unisolate pod %s/%s: NetworkPolicy %s exists and is not Bulwark's; not touching it", ns, name, pname)
	}
	var did []string
	pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return "", fmt.Errorf("unisolate pod %s/%s: get: %w", ns, name, err)
	case pod.Labels[IsolationLabel] != "":
		// A JSON merge patch with null deletes the label; the uid
		// precondition keeps a re-created pod of the same name untouched.
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"labels": map[string]any{IsolationLabel: nil},
			"uid":    string(pod.UID),
		}})
		if _, err := cs.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return "", fmt.Errorf("unisolate pod %s/%s: remove label: %w", ns, name, err)
		}
		did = append(did, "label "+IsolationLabel+" removed")
	}
	if cur != nil {
		// Delete exactly the policy read (uid precondition): a policy
		// re-created meanwhile by a new isolate request stays.
		err := np.Delete(ctx, pname, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("unisolate pod %s/%s: delete NetworkPolicy %s: %w", ns, name, pname, err)
		}
		did = append(did, "NetworkPolicy "+pname+" deleted")
	}
	if len(did) == 0 {
		return fmt.Sprintf("pod %s/%s was not isolated", ns, name), nil
	}
	return fmt.Sprintf("pod %s/%s unisolated: %s", ns, name, strings.Join(did, ", ")), nil
}

// UncordonNode undoes CordonNode, as `kubectl uncordon` does.
func UncordonNode(ctx context.Context, cs kubernetes.Interface, name string) (string, error) {
	node, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("uncordon node %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("uncordon node %s: get: %w", name, err)
	}
	if !node.Spec.Unschedulable {
		return fmt.Sprintf("node %s already schedulable", name), nil
	}
	// Strategic merge drops a false bool (omitempty); null deletes the
	// field, which is what kubectl uncordon sends too.
	patch := []byte(`{"spec":{"unschedulable":null}}`)
	if _, err := cs.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return "", fmt.Errorf("uncordon node %s: %w", name, err)
	}
	return fmt.Sprintf("node %s uncordoned", name), nil
}

func apiGroup(apiVersion string) string {
	g, _, ok := strings.Cut(apiVersion, "/")
	if !ok {
		return ""
	}
	return g
}
