package respond_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/respond"
)

// TestRestoreScaleWithMinimalRole: scale_to_zero reports what it scaled
// and the count before; restore_scale, given exactly that, puts the count
// back — as the ServiceAccount of deploy/respond-rbac.yaml, against the
// real API server — and never overrides a count someone set since.
func TestRestoreScaleWithMinimalRole(t *testing.T) {
	w := newWorld(t)
	r := w.responder(t)
	ctx := context.Background()
	dep, err := w.admin.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](4),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "api"}}, Spec: podSpec()}},
	}, metav1.CreateOptions{})
	must(t, err)
	rs, err := w.admin.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "api-7c9", OwnerReferences: []metav1.OwnerReference{owner("Deployment", dep.Name, dep.UID)}},
		Spec:       appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](4), Selector: dep.Spec.Selector, Template: dep.Spec.Template},
	}, metav1.CreateOptions{})
	must(t, err)
	w.pod(t, "api-7c9-a", "api", owner("ReplicaSet", rs.Name, rs.UID))
	replicas := func() int32 {
		t.Helper()
		d, err := w.admin.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{})
		must(t, err)
		return *d.Spec.Replicas
	}

	scale := alerts.Action{Action: alerts.ActionScaleToZero, Cluster: "prod", Namespace: ns, Pod: "api-7c9-a", Workload: "Deployment/api"}
	o, err := respond.Do(ctx, r, scale)
	must(t, err)
	if o.Scaled != "Deployment/api" || o.PreviousReplicas == nil || *o.PreviousReplicas != 4 || replicas() != 0 {
		t.Fatalf("scale_to_zero outcome %+v (previous %v), deployment at %d; want Deployment/api from 4, now 0", o, o.PreviousReplicas, replicas())
	}
	if res := o.Result(); res.Validate() != nil || res.State != alerts.ActionDone || *res.PreviousReplicas != 4 {
		t.Errorf("report %+v: %v", res, res.Validate())
	}
	// A second scale_to_zero finds it at zero and reports 0 before (so
	// central does not restore to zero).
	o2, err := respond.Do(ctx, r, scale)
	must(t, err)
	if o2.PreviousReplicas == nil || *o2.PreviousReplicas != 0 || !strings.Contains(o2.Message, "already at 0") {
		t.Errorf("second scale: %+v", o2)
	}

	restore := alerts.Action{Action: alerts.ActionRestoreScale, Cluster: "prod", Namespace: ns, Pod: "api-7c9-a",
		Workload: "Deployment/api", Scaled: o.Scaled, Replicas: o.PreviousReplicas}
	msg, err := respond.Perform(ctx, r, restore)
	must(t, err)
	if got := replicas(); got != 4 || !strings.Contains(msg, "restored from 0 to 4") {
		t.Fatalf("after restore: %d replicas (message %q), want 4", got, msg)
	}
	msg, err = respond.Perform(ctx, r, restore)
	must(t, err)
	if !strings.Contains(msg, "already at 4") || replicas() != 4 {
		t.Errorf("second restore: %q", msg)
	}

	// Scaled to zero, then someone sets 2 by hand: the restore leaves it.
	_, err = respond.Do(ctx, r, scale)
	must(t, err)
	_, err = w.admin.AppsV1().Deployments(ns).UpdateScale(ctx, "api", &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 2}}, metav1.UpdateOptions{})
	must(t, err)
	msg, err = respond.Perform(ctx, r, restore)
	must(t, err)
	if got := replicas(); got != 2 || !strings.Contains(msg, "left at 2") {
		t.Errorf("restore after a manual change: %d replicas (message %q), want 2 kept", got, msg)
	}

	// A StatefulSet too (the role's statefulsets/scale).
	o, err = respond.Do(ctx, r, alerts.Action{Action: alerts.ActionScaleToZero, Cluster: "prod", Namespace: ns, Pod: "db-0"})
	must(t, err)
	if o.Scaled != "StatefulSet/db" || *o.PreviousReplicas != 2 {
		t.Fatalf("statefulset scale outcome %+v", o)
	}
	_, err = respond.Perform(ctx, r, alerts.Action{Action: alerts.ActionRestoreScale, Namespace: ns, Scaled: o.Scaled, Replicas: o.PreviousReplicas})
	must(t, err)
	sts, err := w.admin.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
	must(t, err)
	if *sts.Spec.Replicas != 2 {
		t.Errorf("statefulset restored to %d, want 2", *sts.Spec.Replicas)
	}

	// What central would never send, refused before touching anything.
	for name, a := range map[string]alerts.Action{
		"no count":    {Action: alerts.ActionRestoreScale, Namespace: ns, Scaled: "Deployment/api"},
		"zero":        {Action: alerts.ActionRestoreScale, Namespace: ns, Scaled: "Deployment/api", Replicas: ptr.To[int32](0)},
		"no workload": {Action: alerts.ActionRestoreScale, Namespace: ns, Replicas: ptr.To[int32](3)},
	} {
		if _, err := respond.Perform(ctx, r, a); !errors.Is(err, respond.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := respond.Perform(ctx, r, alerts.Action{Action: alerts.ActionRestoreScale, Namespace: ns, Scaled: "DaemonSet/agent",
		Replicas: ptr.To[int32](1)}); !errors.Is(err, respond.ErrNotScalable) {
		t.Errorf("daemonset: err = %v, want ErrNotScalable", err)
	}
	if _, err := respond.Perform(ctx, r, alerts.Action{Action: alerts.ActionRestoreScale, Namespace: ns, Scaled: "Deployment/gone",
		Replicas: ptr.To[int32](1)}); !errors.Is(err, respond.ErrNotFound) {
		t.Errorf("missing deployment: err = %v, want ErrNotFound", err)
	}
	if got := replicas(); got != 2 {
		t.Errorf("deployment at %d after the refused restores, want 2", got)
	}
}
