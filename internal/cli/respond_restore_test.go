package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/google/uuid"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
	"github.com/bulwark-security/bulwark/internal/store"
)

// TestRespondRestoreScale: scale_to_zero requested through central's API
// and performed by `bulwark respond --once` records the replica count
// before it in the action; restore_scale, requested next, carries that
// count and the next round puts it back — a real central and a real
// kube-apiserver.
func TestRespondRestoreScale(t *testing.T) {
	kc := k8stest.Start(t, k8stest.Options{})
	ctx := context.Background()
	kc.Namespace(t, "shop")
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel.MatchLabels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.example/web:1"}}}}
	dep, err := kc.Client.AppsV1().Deployments("shop").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := kc.Client.AppsV1().ReplicaSets("shop").Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-6b7",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](3), Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Client.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-6b7-x", Labels: sel.MatchLabels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}},
		Spec: tmpl.Spec}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	replicas := func() int32 {
		t.Helper()
		d, err := kc.Client.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *d.Spec.Replicas
	}

	c := startRespondCentral(t)
	if _, _, err := c.st.IngestAlerts(ctx, []store.AlertIn{{ID: uuid.NewString(), Time: time.Now().UTC(), Source: "sensor", Rule: "Crypto miner",
		Severity: alerts.SeverityCritical, Title: "miner", Cluster: "prod", Namespace: "shop", Pod: "web-6b7-x", Workload: "Deployment/web"}}); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []struct{ ID int64 } `json:"items"`
	}
	c.call(t, "GET", "/api/v1/alerts", c.admin, nil, &list)
	if len(list.Items) != 1 {
		t.Fatalf("alerts: %+v", list)
	}
	alertID := list.Items[0].ID
	round := func() {
		t.Helper()
		if code, stderr := c.respondOnce(ctx, kc.Kubeconfig); code != ExitOK {
			t.Fatalf("respond exited %d: %s", code, stderr)
		}
	}
	action := func(id int64) alerts.Action {
		t.Helper()
		var all alerts.ActionList
		c.call(t, "GET", "/api/v1/actions?limit=100", c.admin, nil, &all)
		for _, a := range all.Actions {
			if a.ID == id {
				return a
			}
		}
		t.Fatalf("no action %d", id)
		return alerts.Action{}
	}

	var scale alerts.Action
	c.call(t, "POST", fmt.Sprintf("/api/v1/alerts/%d/actions", alertID), c.admin, alerts.ActionRequest{Action: alerts.ActionScaleToZero, Reason: "contain"}, &scale)
	round()
	scale = action(scale.ID)
	if scale.State != alerts.ActionDone || scale.Scaled != "Deployment/web" || scale.Replicas == nil || *scale.Replicas != 3 || replicas() != 0 {
		t.Fatalf("scale_to_zero: %+v (replicas %v), deployment at %d", scale, scale.Replicas, replicas())
	}
	var restore alerts.Action
	c.call(t, "POST", fmt.Sprintf("/api/v1/alerts/%d/actions", alertID), c.admin, alerts.ActionRequest{Action: alerts.ActionRestoreScale, Reason: "false positive"}, &restore)
	if restore.State != alerts.ActionPending || restore.Replicas == nil || *restore.Replicas != 3 || restore.Scaled != "Deployment/web" {
		t.Fatalf("restore request: %+v", restore)
	}
	round()
	restore = action(restore.ID)
	if restore.State != alerts.ActionDone || replicas() != 3 {
		t.Fatalf("restore: %+v, deployment at %d; want done and 3", restore, replicas())
	}
	// Nothing left to restore: central refuses a second one.
	st, raw := c.raw(t, "POST", fmt.Sprintf("/api/v1/alerts/%d/actions", alertID), c.admin, alerts.ActionRequest{Action: alerts.ActionRestoreScale})
	if st != 400 || !bytes.Contains(raw, []byte("nothing to undo")) {
		t.Errorf("second restore: %d %s", st, raw)
	}
	// Audited like every action request.
	var au struct {
		Items []struct{ Action, Target string } `json:"items"`
	}
	c.call(t, "GET", "/api/v1/audit?limit=100", c.admin, nil, &au)
	found := false
	for _, e := range au.Items {
		found = found || e.Target == fmt.Sprintf("action/%d", restore.ID)
	}
	if !found {
		t.Errorf("no audit entry for the restore action %d: %+v", restore.ID, au.Items)
	}
}

// raw sends a request and returns the status and body, whatever they are.
func (c *respondCentral) raw(t *testing.T, method, path, token string, in any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(in)
	req, err := http.NewRequest(method, c.url+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}
