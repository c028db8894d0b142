package admission

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
)

// A policy whose params are a custom resource (spec.paramKind), selected by
// label in the request's namespace, behind the real kube-apiserver: the
// rule must hold for every object the selector matches, a namespace with
// none is denied saying so, and a CRD installed after the webhook started
// is found (discovery is refreshed on a miss).
func TestParamKindKubeAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	cluster := k8stest.Start(t, k8stest.Options{})
	ctx := context.Background()
	for _, ns := range []string{"bulwark", "team-a", "team-b", "team-c"} {
		cluster.Namespace(t, ns)
	}
	pol := loadPolicies(t, policyDoc("team-registries", `  mode: deny
  scope: {namespaces: [team-*]}
  paramKind: {apiVersion: params.example.com/v1, kind: RegistryAllowList}
  paramRef:
    selector: {matchLabels: {bulwark.dev/params: registries}}
  rules:
    - name: registry
      expression: "object.spec.containers.all(c, params.spec.registries.exists(r, c.image.startsWith(r + '/')))"
      messageExpression: "'images must come from ' + params.spec.registries.join(', ')"`))
	params, err := NewClientParamObjects(cluster.Config, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	w := startWebhookWith(t, Config{Cluster: "e2e"}, pol, nil, false, func(d *Deps) { d.ParamObjects = params })
	installWebhook(t, cluster.Client, w)
	create := func(ns, name, img string) error { return tryPod(ctx, cluster.Client, ns, name, img) }
	// Before the CRD exists: the kind cannot be mapped, the rule denies.
	var last error
	waitFor(t, 30*time.Second, func() bool {
		last = create("team-a", "p0", "registry.example.com/app:1")
		return last != nil && strings.Contains(last.Error(), "denied the request")
	})
	if !strings.Contains(last.Error(), "RegistryAllowList") || !strings.Contains(last.Error(), "could not be read") {
		t.Errorf("no CRD yet: %v", last)
	}

	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "registryallowlists.params.example.com"},
		"spec": map[string]any{
			"group": "params.example.com", "scope": "Namespaced",
			"names": map[string]any{"plural": "registryallowlists", "singular": "registryallowlist", "kind": "RegistryAllowList"},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "properties": map[string]any{
					"spec": map[string]any{"type": "object", "properties": map[string]any{
						"registries": map[string]any{"type": "array", "items": map[string]any{"type": "string"}}}}}}}}},
		},
	}}
	if _, err := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).
		Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lists := schema.GroupVersionResource{Group: "params.example.com", Version: "v1", Resource: "registryallowlists"}
	allow := func(ns, name string, registries ...string) {
		regs := make([]any, len(registries))
		for i, r := range registries {
			regs[i] = r
		}
		obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "params.example.com/v1", "kind": "RegistryAllowList",
			"metadata": map[string]any{"name": name, "labels": map[string]any{"bulwark.dev/params": "registries"}},
			"spec":     map[string]any{"registries": regs}}}
		waitFor(t, 30*time.Second, func() bool { // until the CRD is established
			_, err := dyn.Resource(lists).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{})
			return err == nil
		})
	}
	allow("team-a", "base", "registry.example.com")
	allow("team-b", "base", "registry.example.com", "docker.io")
	allow("team-b", "strict", "registry.example.com")
	// An unlabelled list is not selected.
	other := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "params.example.com/v1", "kind": "RegistryAllowList",
		"metadata": map[string]any{"name": "unlabelled"}, "spec": map[string]any{"registries": []any{"docker.io"}}}}
	if _, err := dyn.Resource(lists).Namespace("team-c").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// team-a: its one list applies.
	waitFor(t, 30*time.Second, func() bool { return create("team-a", "p1", "registry.example.com/app:1") == nil })
	if err := create("team-a", "p2", "docker.io/library/nginx:1.27"); err == nil ||
		!strings.Contains(err.Error(), "images must come from registry.example.com (params: RegistryAllowList team-a/base)") {
		t.Errorf("team-a, docker.io: %v", err)
	}
	// team-b: two lists, the image must pass both; the failing one is named.
	if err := create("team-b", "p3", "docker.io/library/nginx:1.27"); err == nil ||
		!strings.Contains(err.Error(), "(params: RegistryAllowList team-b/strict)") {
		t.Errorf("team-b, docker.io: %v", err)
	}
	if err := create("team-b", "p4", "registry.example.com/app:1"); err != nil {
		t.Errorf("team-b, allowed registry: %v", err)
	}
	// team-c: nothing selected → denied, saying what is missing.
	if err := create("team-c", "p5", "registry.example.com/app:1"); err == nil || !strings.Contains(err.Error(), "do not exist") ||
		!strings.Contains(err.Error(), "create the RegistryAllowList") {
		t.Errorf("team-c, no list: %v", err)
	}
}
