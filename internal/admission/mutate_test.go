package admission

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
)

const fixPolicy = `  mode: deny
  scope: {namespaces: [prod]}
  configuration:
    controls: [BW-K8S-0002, BW-K8S-0005, BW-K8S-0014, BW-K8S-0001]
    mutate: [BW-K8S-0002, BW-K8S-0005, BW-K8S-0014]`

// TestMutateKubeAPIServer: with the mutating configuration installed next
// to the validating one, a real kube-apiserver sends a pod lacking
// allowPrivilegeEscalation: false, a dropped ALL and
// automountServiceAccountToken: false to /mutate first: it is stored fixed
// and annotated, the client sees the warning, and the validating webhook
// admits the fixed pod. A privileged pod is not fixable by this policy
// (BW-K8S-0001 is judged, not mutated) and is still denied. Outside the
// policy's scope nothing is changed.
func TestMutateKubeAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	cluster := k8stest.Start(t, k8stest.Options{})
	ctx := context.Background()
	for _, ns := range []string{"prod", "dev"} {
		cluster.Namespace(t, ns)
	}
	w := startWebhook(t, Config{Cluster: "e2e"}, loadPolicies(t, policyDoc("harden", fixPolicy)), nil, false)
	opts := InstallOptions{URL: w.URL, CABundle: w.Certs.CABundle(), FailurePolicy: "Fail",
		ExcludeNamespaces: []string{"kube-system", "bulwark"}, TimeoutSeconds: 5}
	mcfg, err := MutatingWebhookConfiguration(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := ApplyMutating(ctx, cluster.Client, mcfg); err != nil {
		t.Fatal(err)
	}
	installWebhook(t, cluster.Client, w)

	wc, ws := warningClient(t, cluster.Config)
	var got *corev1.Pod
	waitFor(t, 30*time.Second, func() bool {
		got, err = wc.CoreV1().Pods("prod").Create(ctx, pod("web", "registry.example.com/web:1.0"), metav1.CreateOptions{})
		if err != nil {
			return false
		}
		if got.Annotations[AnnotationFixed] == "" { // the configurations were not in force yet
			_ = wc.CoreV1().Pods("prod").Delete(ctx, "web", metav1.DeleteOptions{})
			return false
		}
		return true
	})
	sc := got.Spec.Containers[0].SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
		got.Spec.AutomountServiceAccountToken == nil || *got.Spec.AutomountServiceAccountToken {
		t.Errorf("stored pod not fixed: %+v automount %v", sc, got.Spec.AutomountServiceAccountToken)
	}
	if a := got.Annotations[AnnotationFixed]; a != "BW-K8S-0002,BW-K8S-0005,BW-K8S-0014" {
		t.Errorf("annotation %q", a)
	}
	if s := ws.all(); !strings.Contains(s, "Bulwark fixed Pod prod/web: BW-K8S-0002, BW-K8S-0005, BW-K8S-0014 (policies harden)") {
		t.Errorf("warnings: %q", s)
	}
	// What cannot be fixed is still judged.
	priv := pod("priv", "registry.example.com/web:1.0")
	yes := true
	priv.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &yes}
	if _, err := cluster.Client.CoreV1().Pods("prod").Create(ctx, priv, metav1.CreateOptions{}); err == nil ||
		!strings.Contains(err.Error(), "privileged=true") || !strings.Contains(err.Error(), "cannot while privileged") {
		t.Errorf("privileged pod: %v", err)
	}
	// Out of scope: stored as sent.
	dev, err := cluster.Client.CoreV1().Pods("dev").Create(ctx, pod("web", "registry.example.com/web:1.0"), metav1.CreateOptions{})
	if err != nil || dev.Annotations[AnnotationFixed] != "" || dev.Spec.Containers[0].SecurityContext != nil {
		t.Errorf("out of scope: %v %+v", err, dev)
	}
}

// TestMutateReview: the /mutate answer's shape, a review that needs no
// fix, and bad input (never a denial).
func TestMutateReview(t *testing.T) {
	w := startWebhook(t, Config{}, loadPolicies(t, policyDoc("harden", fixPolicy)), nil, false)
	post := func(body []byte) (int, map[string]any) {
		t.Helper()
		resp, err := w.Client.Post(w.URL+PathMutate, "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		json.Unmarshal(b, &out)
		return resp.StatusCode, out
	}
	p := pod("web", "registry.example.com/web:1.0")
	p.Namespace = "prod"
	code, out := post(review("u1", "CREATE", "Pod", "prod", "web", p))
	r, _ := out["response"].(map[string]any)
	if code != 200 || r["allowed"] != true || r["patchType"] != "JSONPatch" || r["uid"] != "u1" {
		t.Fatalf("mutate: %d %v", code, out)
	}
	patch := r["patch"].(string) // base64 in JSON
	if len(patch) == 0 {
		t.Fatal("no patch")
	}
	// Fixed already: no patch.
	no := false
	p.Spec.AutomountServiceAccountToken = &no
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: &no,
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	_, out = post(review("u2", "CREATE", "Pod", "prod", "web", p))
	if r := out["response"].(map[string]any); r["allowed"] != true || r["patch"] != nil {
		t.Errorf("compliant pod patched: %v", out)
	}
	for _, bad := range []string{``, `{}`, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, `not json`} {
		if code, _ := post([]byte(bad)); code != http.StatusBadRequest {
			t.Errorf("%q: status %d, want 400", bad, code)
		}
	}
}
