package live_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/bulwark-security/bulwark/internal/cli"
	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
	"github.com/bulwark-security/bulwark/internal/posture"
	"github.com/bulwark-security/bulwark/internal/posture/live"
)

func ptr[T any](v T) *T { return &v }

// readerRole is the ClusterRole documented in deploy/posture-rbac.yaml.
func readerRole(t *testing.T) *rbacv1.ClusterRole {
	t.Helper()
	root, err := k8stest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "deploy", "posture-rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var cr rbacv1.ClusterRole
		if err := yaml.Unmarshal([]byte(doc), &cr); err == nil && cr.Kind == "ClusterRole" {
			return &cr
		}
	}
	t.Fatal("no ClusterRole in deploy/posture-rbac.yaml")
	return nil
}

// TestDocumentedRoleCoversKinds: every kind Collect lists is allowed by the
// documented ClusterRole, and the role allows nothing else (no secrets, no
// writes).
func TestDocumentedRoleCoversKinds(t *testing.T) {
	cr := readerRole(t)
	allowed := map[string]bool{}
	for _, r := range cr.Rules {
		for _, v := range r.Verbs {
			if v != "list" && v != "get" {
				t.Errorf("role grants %q", v)
			}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				if res == "secrets" || res == "configmaps" || res == "*" || g == "*" {
					t.Errorf("role grants %s/%s", g, res)
				}
				if slices.Contains(r.Verbs, "list") {
					allowed[g+"/"+res] = true
				}
			}
		}
	}
	need := map[string]bool{}
	for _, r := range live.Resources() {
		need[r.Group+"/"+r.Resource] = true
		if !allowed[r.Group+"/"+r.Resource] {
			t.Errorf("Collect lists %s/%s but the documented role does not allow it", r.Group, r.Resource)
		}
	}
	for k := range allowed {
		if !need[k] {
			t.Errorf("documented role allows %s, which Collect never lists", k)
		}
	}
}

func seed(t *testing.T, c *k8stest.Cluster) {
	t.Helper()
	ctx := context.Background()
	cs := c.Client
	c.Namespace(t, "secure")
	c.Namespace(t, "insecure")
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	labels := map[string]string{"app": "web"}
	res := corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}}
	good := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "secure"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				ServiceAccountName: "web", AutomountServiceAccountToken: ptr(false),
				SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr[int64](10001),
					SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
				Containers: []corev1.Container{{Name: "web",
					Image:     "registry.example.com/shop/web:1.2.3@sha256:3b3f1d5b2a8c6f0e9d7c4b1a2f3e4d5c6b7a8f9e0d1c2b3a4f5e6d7c8b9a0f1e",
					Resources: res, LivenessProbe: probe, ReadinessProbe: probe,
					SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
						Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}}}}}}
	must(cs.AppsV1().Deployments("secure").Create(ctx, good, metav1.CreateOptions{}))
	must(cs.CoreV1().ServiceAccounts("secure").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{}))
	sa, err := cs.CoreV1().ServiceAccounts("secure").Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa.AutomountServiceAccountToken = ptr(false)
	must(cs.CoreV1().ServiceAccounts("secure").Update(ctx, sa, metav1.UpdateOptions{}))
	must(cs.NetworkingV1().NetworkPolicies("secure").Create(ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "default-deny"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}, metav1.CreateOptions{}))
	must(cs.RbacV1().Roles("secure").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "config-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{}))
	must(cs.RbacV1().RoleBindings("secure").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "web-config"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "config-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "web", Namespace: "secure"}}}, metav1.CreateOptions{}))

	bad := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: "insecure"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				HostPID: true,
				Containers: []corev1.Container{{Name: "app", Image: "nginx",
					Env:             []corev1.EnvVar{{Name: "DB_PASSWORD", Value: "hunter2"}},
					SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)}}}}}}}
	must(cs.AppsV1().Deployments("insecure").Create(ctx, bad, metav1.CreateOptions{}))
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "debug", Namespace: "insecure"}, Spec: corev1.PodSpec{HostNetwork: true,
		Containers: []corev1.Container{{Name: "sh", Image: "busybox:latest"}}}}
	must(cs.CoreV1().Pods("insecure").Create(ctx, pod, metav1.CreateOptions{}))
	owned := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "legacy-abc12", Namespace: "insecure",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "legacy-7d9f", UID: "00000000-0000-0000-0000-000000000001", Controller: ptr(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}}}
	must(cs.CoreV1().Pods("insecure").Create(ctx, owned, metav1.CreateOptions{}))
	must(cs.CoreV1().Services("insecure").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "postgresql"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "postgresql"},
			Ports: []corev1.ServicePort{{Port: 5432}}}}, metav1.CreateOptions{}))
	must(cs.RbacV1().Roles("insecure").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "secret-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}}}}, metav1.CreateOptions{}))
	must(cs.RbacV1().RoleBindings("insecure").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "default-secrets"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "secret-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default", Namespace: "insecure"}}}, metav1.CreateOptions{}))
	// Two harmless-looking grants to one user that add up: exec in one
	// namespace, pod creation cluster-wide.
	must(cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "pod-runner"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}}}}, metav1.CreateOptions{}))
	must(cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "bob-pods"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "pod-runner"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "bob"}}}, metav1.CreateOptions{}))
	must(cs.RbacV1().Roles("insecure").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "exec"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create"}}}}, metav1.CreateOptions{}))
	must(cs.RbacV1().RoleBindings("insecure").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "bob-exec"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "exec"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "bob"}}}, metav1.CreateOptions{}))
	must(cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alice-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "alice"}}}, metav1.CreateOptions{}))
	must(cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "wild"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{}))
}

func collect(t *testing.T, cs kubernetes.Interface, opt live.Options) *posture.Report {
	t.Helper()
	in, err := live.Collect(context.Background(), cs, opt)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := posture.New(posture.Config{TrustedRegistries: []string{"registry.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ev.Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func verdicts(rep *posture.Report) map[string]posture.Result {
	m := map[string]posture.Result{}
	for _, r := range rep.Results {
		m[rep.Objects[r.Object].String()+" "+r.Control] = r
	}
	return m
}

type want struct {
	key    string
	status posture.Status
	msg    string
}

var clusterVerdicts = []want{
	{"Deployment/secure/web BW-K8S-0001", posture.StatusPass, ""},
	{"Deployment/secure/web BW-K8S-0002", posture.StatusPass, ""},
	{"Deployment/secure/web BW-K8S-0012", posture.StatusPass, ""},
	{"Deployment/secure/web BW-K8S-0018", posture.StatusPass, ""},
	{"Deployment/secure/web BW-K8S-0022", posture.StatusPass, ""},
	{"Deployment/secure/web BW-PSS-runAsNonRoot", posture.StatusPass, ""},
	{"Deployment/secure/web BW-PSS-seccompProfile_restricted", posture.StatusPass, ""},
	{"Deployment/insecure/legacy BW-K8S-0001", posture.StatusFail, `container "app" sets securityContext.privileged=true`},
	{"Deployment/insecure/legacy BW-K8S-0008", posture.StatusFail, "hostPID=true"},
	{"Deployment/insecure/legacy BW-K8S-0016", posture.StatusFail, `image "nginx" has neither tag nor digest`},
	{"Deployment/insecure/legacy BW-K8S-0018", posture.StatusFail, "not from a trusted registry"},
	{"Deployment/insecure/legacy BW-K8S-0019", posture.StatusFail, "DB_PASSWORD"},
	{"Deployment/insecure/legacy BW-PSS-privileged", posture.StatusFail, "privileged"},
	{"Pod/insecure/debug BW-K8S-0007", posture.StatusFail, "hostNetwork=true"},
	{"Pod/insecure/debug BW-K8S-0016", posture.StatusFail, "latest"},
	{"Service/insecure/postgresql BW-K8S-0040", posture.StatusFail, "PostgreSQL"},
	{"Namespace/secure/secure BW-K8S-0041", posture.StatusPass, ""},
	{"Namespace/insecure/insecure BW-K8S-0041", posture.StatusFail, "no NetworkPolicy"},
	{"ServiceAccount/secure/default BW-K8S-0042", posture.StatusPass, ""},
	{"ServiceAccount/insecure/default BW-K8S-0042", posture.StatusFail, "automountServiceAccountToken"},
	{"Role/insecure/secret-reader BW-K8S-0032", posture.StatusFail, "read access to Secrets"},
	{"Role/secure/config-reader BW-K8S-0032", posture.StatusPass, ""},
	{"RoleBinding/insecure/default-secrets BW-K8S-0037", posture.StatusFail, "default service account"},
	{"ClusterRoleBinding/alice-admin BW-K8S-0030", posture.StatusFail, "User alice"},
	{"ClusterRole/wild BW-K8S-0031", posture.StatusFail, `uses "*" in apiGroups, resources`},
	{"ServiceAccount/insecure/default BW-K8S-0043", posture.StatusFail, "read secrets (namespace insecure via RoleBinding insecure/default-secrets -> Role secret-reader)"},
	{"ServiceAccount/secure/web BW-K8S-0043", posture.StatusPass, ""},
	{"User/alice BW-K8S-0043", posture.StatusFail, "full control"},
	{"User/bob BW-K8S-0043", posture.StatusFail, "exec/attach into pods (namespace insecure via RoleBinding insecure/bob-exec -> Role exec); create pods or pod controllers (cluster-wide via ClusterRoleBinding bob-pods -> ClusterRole pod-runner)"},
}

func checkVerdicts(t *testing.T, rep *posture.Report, ws []want) {
	t.Helper()
	v := verdicts(rep)
	for _, w := range ws {
		r, ok := v[w.key]
		if !ok {
			t.Errorf("%s: no result", w.key)
			continue
		}
		if r.Status != w.status || !strings.Contains(r.Message, w.msg) {
			t.Errorf("%s: %s %q; want %s containing %q", w.key, r.Status, r.Message, w.status, w.msg)
		}
	}
}

// TestClusterScan seeds a real kube-apiserver with compliant and
// non-compliant workloads and RBAC and checks each control's verdict by
// object: as cluster-admin, with exactly the documented read-only role, and
// with that role missing one permission.
func TestClusterScan(t *testing.T) {
	c := k8stest.Start(t, k8stest.Options{})
	seed(t, c)

	// Admin, paging two objects at a time, all namespaces.
	rep := collect(t, c.Client, live.Options{PageSize: 2})
	if len(rep.Unavailable) != 0 || len(rep.Errors) != 0 {
		t.Fatalf("unavailable %v, errors %v", rep.Unavailable, rep.Errors)
	}
	checkVerdicts(t, rep, clusterVerdicts)
	owned := false
	for _, s := range rep.Skipped {
		if s.Object.Name == "legacy-abc12" && strings.Contains(s.Reason, "owned by ReplicaSet/legacy-7d9f") {
			owned = true
		}
	}
	if !owned {
		t.Errorf("owned pod not skipped: %+v", rep.Skipped)
	}
	// Control-plane subjects (system:*) are not reported as subjects.
	for _, o := range rep.Objects {
		if strings.HasPrefix(o.Name, "system:") && (o.Kind == "User" || o.Kind == "Group") {
			t.Errorf("system subject evaluated: %v", o)
		}
	}

	// Exactly the documented role.
	ctx := context.Background()
	role := readerRole(t)
	role.ResourceVersion = ""
	if _, err := c.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind := func(user, roleName string) kubernetes.Interface {
		if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: roleName},
			Subjects: []rbacv1.Subject{{Kind: "User", Name: user}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cs, err := kubernetes.NewForConfig(c.UserConfig(t, user))
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	reader := bind("posture-reader", role.Name)
	rrep := collect(t, reader, live.Options{})
	if len(rrep.Unavailable) != 0 {
		t.Fatalf("documented role is not enough: %v", rrep.Unavailable)
	}
	checkVerdicts(t, rrep, clusterVerdicts)
	// The selection path (get on namespaces) works with the role too.
	nrep := collect(t, reader, live.Options{Namespaces: []string{"insecure"}})
	if len(nrep.Unavailable) != 0 {
		t.Fatalf("namespace selection: %v", nrep.Unavailable)
	}
	for _, o := range nrep.Objects {
		if o.Namespace == "secure" && o.Kind != "ServiceAccount" {
			t.Errorf("object outside the selection: %v", o)
		}
	}

	// The role without network policies: the scan says what it could not
	// list, and the NetworkPolicy control is skipped, not failed.
	limited := role.DeepCopy()
	limited.Name = "bulwark-posture-reader-limited"
	limited.Rules = slices.DeleteFunc(limited.Rules, func(r rbacv1.PolicyRule) bool { return slices.Contains(r.Resources, "networkpolicies") })
	if _, err := c.Client.RbacV1().ClusterRoles().Create(ctx, limited, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lrep := collect(t, bind("posture-limited", limited.Name), live.Options{})
	why := lrep.Unavailable["NetworkPolicy"]
	if !strings.Contains(why, "cannot list networkpolicies") || !strings.Contains(why, "forbidden") || len(lrep.Unavailable) != 1 {
		t.Fatalf("unavailable = %v", lrep.Unavailable)
	}
	r := verdicts(lrep)["Namespace/insecure/insecure BW-K8S-0041"]
	if r.Status != posture.StatusSkipped || !strings.Contains(r.Message, "NetworkPolicies could not be listed") {
		t.Errorf("BW-K8S-0041 without the permission: %s %q", r.Status, r.Message)
	}
	var buf bytes.Buffer
	if err := posture.Write(&buf, lrep, "table"); err != nil || !strings.Contains(buf.String(), "cannot list networkpolicies") {
		t.Errorf("table does not say what was not listed (%v):\n%s", err, buf.String())
	}

	// The CLI end to end, through the admin kubeconfig.
	var stdout, stderr bytes.Buffer
	code := cli.Main(ctx, cli.Env{Version: "test", Args: []string{"posture", "cluster", "--kubeconfig", c.Kubeconfig, "--format", "json", "--fail-on", "critical", "--trusted-registry", "registry.example.com"},
		Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }})
	if code != 1 {
		t.Fatalf("cli exit %d, want 1 (critical failures); stderr: %s", code, stderr.String())
	}
	var cliRep posture.Report
	if err := json.Unmarshal(stdout.Bytes(), &cliRep); err != nil {
		t.Fatal(err)
	}
	checkVerdicts(t, &cliRep, clusterVerdicts)
}
