package audit

import (
	"context"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	admregv1 "k8s.io/api/admissionregistration/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
	"github.com/bulwark-security/bulwark/internal/rules"
)

// Every default audit rule, and the service-account detector, fires on the
// real kube-apiserver's audit events: the webhook backend posts to the
// receiver (TLS, client certificate), and the same events read from the
// API server's log file give the very same alerts (same ids).
func TestRealAPIServer(t *testing.T) {
	pki := newPKI(t)
	sink := newMemSink()
	proc, err := NewProcessor(Config{Accounts: AccountConfig{Learn: 2 * time.Second}}, sink)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := NewReceiver(ReceiverConfig{Clients: []Client{{Cluster: "e2e", CN: "kube-apiserver-audit"}}}, proc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); rcv.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	srv := httptest.NewUnstartedServer(rcv)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if srv.TLS, err = ServerTLSConfig(pki.server, pki.caPEM); err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	clientCert, clientKey := pki.issue(t, "kube-apiserver-audit", x509.ExtKeyUsageClientAuth)

	c := k8stest.Start(t, k8stest.Options{
		AuditPolicy: RecommendedPolicy,
		AuditWebhook: &k8stest.AuditWebhook{URL: srv.URL + "/api/v1/audit/webhook", CAPEM: pki.caPEM,
			ClientCertPEM: clientCert, ClientKeyPEM: clientKey, BatchMaxWait: time.Second},
	})
	bg := context.Background()
	cs := c.Client
	ns := "audit-e2e"
	c.Namespace(t, ns)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	pod := func(name string, mut func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}}}
		if mut != nil {
			mut(p)
		}
		return p
	}
	// want counts the alerts each rule must raise — exactly: the real API
	// server's own activity (bootstrap RBAC policy, its loopback client)
	// must raise none.
	want := map[string]int{}
	expect := func(rules ...string) {
		for _, r := range rules {
			want[r]++
		}
	}

	// A service account used from the pod network, then (after the
	// detector learned) from an address it never used — as a stolen token
	// replayed from outside. The source address is set with
	// X-Forwarded-For, which kube-apiserver reports first in sourceIPs.
	_, err = cs.CoreV1().ServiceAccounts(ns).Create(bg, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer"}}, metav1.CreateOptions{})
	must("create service account", err)
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(bg, "deployer", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{}}, metav1.CreateOptions{})
	must("service account token", err)
	saClient := func(from string) kubernetes.Interface {
		cfg := rest.AnonymousClientConfig(c.Config)
		cfg.BearerToken = tr.Status.Token
		cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				r = r.Clone(r.Context())
				r.Header.Set("X-Forwarded-For", from)
				return rt.RoundTrip(r)
			})
		}
		k, err := kubernetes.NewForConfig(cfg)
		must("service account client", err)
		return k
	}
	saClient("10.244.1.17").CoreV1().Pods(ns).List(bg, metav1.ListOptions{}) // forbidden, still audited
	learnedAt := time.Now()

	_, err = cs.CoreV1().Pods(ns).Create(bg, pod("priv", func(p *corev1.Pod) {
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: new(true)}
	}), metav1.CreateOptions{})
	must("privileged pod", err)
	expect("Privileged container created")

	_, err = cs.CoreV1().Pods(ns).Create(bg, pod("hostpath", func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "sock", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/run/containerd/containerd.sock"}}}}
	}), metav1.CreateOptions{})
	must("hostPath pod", err)
	expect("Sensitive hostPath mounted")

	_, err = cs.RbacV1().ClusterRoleBindings().Create(bg, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "mallory"}}}, metav1.CreateOptions{})
	must("cluster-admin binding", err)
	expect("Binding to cluster-admin")

	_, err = cs.RbacV1().ClusterRoles().Create(bg, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "e2e-escalate"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"clusterroles"}, Verbs: []string{"escalate", "bind"}}}}, metav1.CreateOptions{})
	must("escalating role", err)
	expect("High-privilege role created")

	// exec: no kubelet runs, so the call fails — after authentication,
	// authorization and auditing, which is what the rule watches.
	cs.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name("priv").SubResource("exec").
		Param("command", "id").Param("stdout", "true").Do(bg)
	expect("Exec or attach into pod")

	cs.CoreV1().ServiceAccounts("kube-system").Create(bg, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	_, err = cs.CoreV1().Pods("kube-system").Create(bg, pod("implant", nil), metav1.CreateOptions{})
	must("kube-system pod", err)
	expect("New container in kube-system")

	_, err = cs.CoreV1().Events(ns).Create(bg, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "evidence"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "priv"}, Reason: "Test", Message: "m"}, metav1.CreateOptions{})
	must("event", err)
	must("delete event", cs.CoreV1().Events(ns).Delete(bg, "evidence", metav1.DeleteOptions{}))
	expect("Kubernetes events deleted")

	none := admregv1.SideEffectClassNone
	_, err = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(bg, &admregv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-hook"},
		Webhooks: []admregv1.ValidatingWebhook{{Name: "hook.e2e.example", SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
			ClientConfig: admregv1.WebhookClientConfig{URL: new("https://hook.example:8443/validate")},
			Rules:        []admregv1.RuleWithOperations{}}}}, metav1.CreateOptions{})
	must("validating webhook configuration", err)
	expect("Admission webhook configuration changed")

	_, err = cs.CoreV1().Services(ns).Create(bg, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes-dashboard"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 443}}, Selector: map[string]string{"app": "d"}}}, metav1.CreateOptions{})
	must("dashboard service", err)
	expect("Exposed dashboard or database service")

	_, err = cs.CoreV1().Secrets("").List(bg, metav1.ListOptions{})
	must("list secrets in all namespaces", err)
	expect("Secrets listed across namespaces")

	_, err = cs.CoreV1().ConfigMaps("kube-system").Create(bg, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "coredns"},
		Data: map[string]string{"Corefile": ".:53 { forward . /etc/resolv.conf }"}}, metav1.CreateOptions{})
	must("coredns configmap", err)
	_, err = cs.CoreV1().ConfigMaps("kube-system").Patch(bg, "coredns", types.MergePatchType,
		[]byte(`{"data":{"Corefile":".:53 { rewrite name bank.example evil.example\nforward . 203.0.113.53 }"}}`), metav1.PatchOptions{})
	must("patch coredns", err)
	expect("CoreDNS configuration changed", "CoreDNS configuration changed") // created, then patched

	hunter := rest.CopyConfig(c.Config)
	hunter.UserAgent = "kube-hunter/0.6.8"
	hk, err := kubernetes.NewForConfig(hunter)
	must("attack tool client", err)
	_, err = hk.CoreV1().Pods("").List(bg, metav1.ListOptions{})
	must("list pods as kube-hunter", err)
	expect("Attack tool user agent")

	// Anonymous access: a binding that lets unauthenticated users read,
	// then an unauthenticated request that is allowed.
	_, err = cs.RbacV1().ClusterRoles().Create(bg, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "e2e-ns-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"list"}}}}, metav1.CreateOptions{})
	must("reader role", err)
	_, err = cs.RbacV1().ClusterRoleBindings().Create(bg, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-anonymous"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "e2e-ns-reader"},
		Subjects: []rbacv1.Subject{{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: "system:unauthenticated"}}}, metav1.CreateOptions{})
	must("anonymous binding", err)
	expect("Binding to anonymous or unauthenticated users")
	anon, err := kubernetes.NewForConfig(rest.AnonymousClientConfig(c.Config))
	must("anonymous client", err)
	waitFor(t, 10*time.Second, "the anonymous binding to take effect", func() bool {
		_, err := anon.CoreV1().Namespaces().List(bg, metav1.ListOptions{})
		return err == nil
	})
	expect("Anonymous request allowed")

	time.Sleep(time.Until(learnedAt.Add(2500 * time.Millisecond)))
	saClient("10.244.1.17").CoreV1().Pods(ns).List(bg, metav1.ListOptions{})
	saClient("203.0.113.77").CoreV1().Pods(ns).List(bg, metav1.ListOptions{})
	expect(AccountRuleName)

	missing := func(got map[string]int) []string {
		var m []string
		for r := range want {
			if got[r] == 0 {
				m = append(m, r)
			}
		}
		sort.Strings(m)
		return m
	}
	deadline := time.Now().Add(45 * time.Second)
	for len(missing(sink.rules())) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if m := missing(sink.rules()); len(m) > 0 {
		t.Fatalf("rules that did not fire through the webhook: %v\n(fired: %v)", m, sink.rules())
	}
	// Every default audit rule is covered by this test.
	eng, _, _ := DefaultEngine()
	for _, r := range eng.Rules() {
		if r.Source == rules.SourceK8sAudit && want[r.Name] == 0 {
			t.Errorf("default audit rule %q is not exercised against the real API server", r.Name)
		}
	}
	for _, a := range sink.all() {
		if a.Rule == AccountRuleName && titleIP(a.Title) != "203.0.113.77" {
			t.Errorf("service-account alert for the wrong source: %s", a.Title)
		}
	}
	if n := rcv.Stats().Received; n == 0 {
		t.Error("receiver counted no events")
	}

	// The same events from the API server's log file.
	fileSink := newMemSink()
	fproc, _ := NewProcessor(Config{Accounts: AccountConfig{Learn: 2 * time.Second}}, fileSink)
	fol, err := NewFollower(FollowerConfig{Path: c.AuditLogPath, StatePath: filepath.Join(t.TempDir(), "state.json"), Cluster: "e2e", Poll: 50 * time.Millisecond}, fproc)
	must("follower", err)
	fctx, fcancel := context.WithCancel(bg)
	fdone := make(chan error, 1)
	go func() { fdone <- fol.Run(fctx) }()
	deadline = time.Now().Add(30 * time.Second)
	for len(missing(fileSink.rules())) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	fcancel()
	must("follower run", <-fdone)
	if m := missing(fileSink.rules()); len(m) > 0 {
		t.Fatalf("rules that did not fire from the log file: %v", m)
	}
	webhookIDs := map[string]bool{}
	for _, a := range sink.all() {
		webhookIDs[a.ID] = true
	}
	same := 0
	for _, a := range fileSink.all() {
		if webhookIDs[a.ID] {
			same++
		}
	}
	if d := cmp.Diff(want, sink.rules()); d != "" {
		t.Errorf("alerts by rule through the webhook (-want +got):\n%s", d)
	}
	if d := cmp.Diff(want, fileSink.rules()); d != "" {
		t.Errorf("alerts by rule from the log file (-want +got):\n%s", d)
	}
	t.Logf("webhook: %d events, alerts by rule %v; log file: alerts by rule %v; %d alerts with the same id from both",
		rcv.Stats().Received, sink.rules(), fileSink.rules(), same)
	if same != len(sink.all()) {
		t.Errorf("only %d of %d alerts from the log file have the id of the webhook's alert for the same request", same, len(sink.all()))
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// titleIP pulls "sourceip=" out of the detector's title.
func titleIP(title string) string {
	_, rest, ok := strings.Cut(title, "sourceip=")
	if !ok {
		return ""
	}
	ip, _, _ := strings.Cut(rest, " ")
	return ip
}
