package admission

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
	"github.com/bulwark-security/bulwark/internal/store"
)

// warningLog collects the Warning headers the API server relays.
type warningLog struct {
	mu  sync.Mutex
	got []string
}

func (w *warningLog) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	w.got = append(w.got, text)
	w.mu.Unlock()
}

func (w *warningLog) all() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.got, "\n")
}

// warningClient is a client whose warnings (the API server relays the
// webhook's) are collected.
func warningClient(t *testing.T, cfg *rest.Config) (kubernetes.Interface, *warningLog) {
	t.Helper()
	ws := &warningLog{}
	wcfg := rest.CopyConfig(cfg)
	wcfg.WarningHandler = ws
	wc, err := kubernetes.NewForConfig(wcfg)
	if err != nil {
		t.Fatal(err)
	}
	return wc, ws
}

func pod(name, img string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: img}}}}
}

// installWebhook points the API server at w (failure policy Fail,
// kube-system and bulwark excluded).
func installWebhook(t *testing.T, c kubernetes.Interface, w *webhook) {
	t.Helper()
	cfg, err := WebhookConfiguration(InstallOptions{URL: w.URL, CABundle: w.Certs.CABundle(), FailurePolicy: "Fail",
		ExcludeNamespaces: []string{"kube-system", "bulwark"}, TimeoutSeconds: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(context.Background(), c, cfg); err != nil {
		t.Fatal(err)
	}
}

// tryPod creates a pod and deletes it again when admitted: the
// webhook's verdict is the error.
func tryPod(ctx context.Context, c kubernetes.Interface, ns, name, img string) error {
	pods := c.CoreV1().Pods(ns)
	_, err := pods.Create(ctx, pod(name, img), metav1.CreateOptions{})
	if err == nil {
		_ = pods.Delete(ctx, name, metav1.DeleteOptions{})
	}
	return err
}

// TestEndToEndKubeAPIServer runs the webhook behind a real kube-apiserver
// (internal/k8s/k8stest), with findings from a real central holding a real
// scan, and drives it with client-go as kubectl would.
func TestEndToEndKubeAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, kube-apiserver and central")
	}
	cluster := k8stest.Start(t, k8stest.Options{})
	c := startCentral(t)
	kev := c.kevFinding(t)
	clean := c.pushClean(t)
	w := startWebhook(t, Config{Cluster: "e2e"}, loadPolicies(t, testPolicies), c, false)
	ctx := context.Background()
	for _, ns := range []string{"prod", "audit", "warn"} {
		cluster.Namespace(t, ns)
	}
	install := func(failurePolicy string) {
		t.Helper()
		cfg, err := WebhookConfiguration(InstallOptions{URL: w.URL, CABundle: w.Certs.CABundle(), FailurePolicy: failurePolicy,
			Connect: true, ExcludeNamespaces: []string{"kube-system"}, TimeoutSeconds: 5})
		if err != nil {
			t.Fatal(err)
		}
		if err := Apply(ctx, cluster.Client, cfg); err != nil {
			t.Fatal(err)
		}
	}
	install("Fail")
	pods := cluster.Client.CoreV1().Pods("prod")

	// The API server picks the configuration up within a second or two:
	// retry until the vulnerable pod is refused by the webhook.
	var err error
	waitFor(t, 30*time.Second, func() bool {
		_, err = pods.Create(ctx, pod("vulnerable", c.Ref), metav1.CreateOptions{})
		if err == nil {
			_ = pods.Delete(ctx, "vulnerable", metav1.DeleteOptions{})
			return false
		}
		return strings.Contains(err.Error(), "denied the request")
	})
	for _, want := range []string{`admission webhook "workloads.admission.bulwark.dev" denied the request`, "Bulwark denied Pod prod/vulnerable",
		`container "app"`, kev.Vulnerability.ID, "known exploited", "fix:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("denial lacks %q:\n%v", want, err)
		}
	}
	t.Logf("kube-apiserver answered: %v", err)
	// A Deployment with the image is refused too.
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: pod("x", c.Ref).Spec}}}
	if _, err := cluster.Client.AppsV1().Deployments("prod").Create(ctx, dep, metav1.CreateOptions{}); err == nil ||
		!strings.Contains(err.Error(), "Bulwark denied Deployment prod/web") {
		t.Errorf("vulnerable deployment: %v", err)
	}
	// A compliant (clean, scanned) image is admitted.
	if _, err := pods.Create(ctx, pod("clean", clean), metav1.CreateOptions{}); err != nil {
		t.Fatalf("clean pod refused: %v", err)
	}
	// Audit mode admits; the decision is recorded in central.
	if _, err := cluster.Client.CoreV1().Pods("audit").Create(ctx, pod("vulnerable", c.Ref), metav1.CreateOptions{}); err != nil {
		t.Fatalf("audit mode refused: %v", err)
	}
	waitFor(t, 10*time.Second, func() bool {
		ds, _, err := c.Store.ListAdmissionDecisions(ctx, store.AdmissionFilter{Verdict: "audit", Namespace: "audit"}, store.Page{})
		return err == nil && len(ds) == 1 && ds[0].Name == "vulnerable" && ds[0].Violations > 0
	})
	// Warn mode admits and the client sees the warnings.
	wc, ws := warningClient(t, cluster.Config)
	if _, err := wc.CoreV1().Pods("warn").Create(ctx, pod("latest", "nginx"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("warn mode refused: %v", err)
	}
	if got := ws.all(); !strings.Contains(got, "warn-latest/provenance") || !strings.Contains(got, "latest") {
		t.Errorf("warnings seen by the client: %q", got)
	} else {
		t.Logf("warning seen by client-go: %s", got)
	}
	// exec is refused in prod (CONNECT pods/exec) and not judged elsewhere.
	execErr := func(ns, name string) error {
		return cluster.Client.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name(name).SubResource("exec").
			Param("command", "sh").Param("stdout", "true").Do(ctx).Error()
	}
	if err := execErr("prod", "clean"); err == nil || !strings.Contains(err.Error(), "exec into pod prod/clean") {
		t.Errorf("exec in prod: %v", err)
	}
	if err := execErr("warn", "latest"); err != nil && strings.Contains(err.Error(), "denied the request") {
		t.Errorf("exec in warn was denied: %v", err)
	}
	// The webhook goes down: failurePolicy Fail refuses, Ignore admits.
	w.Stop()
	if _, err := pods.Create(ctx, pod("while-down", clean), metav1.CreateOptions{}); err == nil ||
		!strings.Contains(err.Error(), "failed calling webhook") {
		t.Errorf("webhook down, failurePolicy Fail: %v", err)
	}
	install("Ignore")
	waitFor(t, 30*time.Second, func() bool {
		_, err := pods.Create(ctx, pod("while-down", clean), metav1.CreateOptions{})
		return err == nil
	})
}

// TestParamRefKubeAPIServer: a policy's custom rules read their params
// from a ConfigMap in Bulwark's namespace through a real kube-apiserver
// (ClientConfigMaps): the API server's admissions follow the ConfigMap as
// it is created and changed, a ConfigMap elsewhere is not read, and a
// missing one denies with what to do.
func TestParamRefKubeAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	cluster := k8stest.Start(t, k8stest.Options{})
	ctx := context.Background()
	for _, ns := range []string{"bulwark", "prod", "elsewhere"} {
		cluster.Namespace(t, ns)
	}
	pol := loadPolicies(t, policyDoc("registries", `  mode: deny
  scope: {namespaces: [prod]}
  paramRef: {name: allowed-registries}
  rules:
    - name: registry
      expression: "object.spec.containers.all(c, params.registries.split(',').exists(r, c.image.startsWith(r + '/')))"
      messageExpression: "'images must come from ' + params.registries"`))
	params := NewClientConfigMaps(cluster.Client, "bulwark", 50*time.Millisecond)
	w := startWebhookWith(t, Config{Cluster: "e2e"}, pol, nil, false, func(d *Deps) { d.Params = params })
	installWebhook(t, cluster.Client, w)
	create := func(name, img string) error { return tryPod(ctx, cluster.Client, "prod", name, img) }
	// No ConfigMap yet: denied, saying which one to create.
	var last error
	waitFor(t, 30*time.Second, func() bool {
		last = create("p0", "registry.example.com/app:1")
		return last != nil && strings.Contains(last.Error(), "denied the request")
	})
	if !strings.Contains(last.Error(), "ConfigMap allowed-registries in Bulwark's namespace") || !strings.Contains(last.Error(), "create ConfigMap allowed-registries") {
		t.Errorf("missing ConfigMap: %v", last)
	}
	// One of that name in another namespace is not read.
	cms := func(ns string) interface {
		Create(context.Context, *corev1.ConfigMap, metav1.CreateOptions) (*corev1.ConfigMap, error)
		Update(context.Context, *corev1.ConfigMap, metav1.UpdateOptions) (*corev1.ConfigMap, error)
	} {
		return cluster.Client.CoreV1().ConfigMaps(ns)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "allowed-registries"}, Data: map[string]string{"registries": "registry.example.com"}}
	if _, err := cms("elsewhere").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // past the cache's TTL
	if err := create("p1", "registry.example.com/app:1"); err == nil || !strings.Contains(err.Error(), "do not exist") {
		t.Errorf("a ConfigMap in another namespace was read: %v", err)
	}
	// Created in Bulwark's namespace: its registries are the params.
	if _, err := cms("bulwark").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return create("p2", "registry.example.com/app:1") == nil })
	if err := create("p3", "docker.io/library/nginx:1.27"); err == nil || !strings.Contains(err.Error(), "images must come from registry.example.com") {
		t.Errorf("image from another registry: %v", err)
	}
	// Changed: the next admissions follow it.
	cm.Data["registries"] = "registry.example.com,docker.io"
	if _, err := cms("bulwark").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return create("p4", "docker.io/library/nginx:1.27") == nil })
}
