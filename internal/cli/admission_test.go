package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
	"github.com/bulwark-security/bulwark/internal/policy"
)

// writeTestFile writes doc to dir/name and returns the path.
func writeTestFile(t testing.TB, dir, name, doc string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func policyTestdata(t testing.TB, parts ...string) string {
	return filepath.Join(append([]string{repoRoot(t), "internal", "policy", "testdata"}, parts...)...)
}

func TestPolicyTestCommand(t *testing.T) {
	pol, man := policyTestdata(t, "policies"), policyTestdata(t, "manifests")
	// The web Deployment is denied (exit 1); the table names rule and fix.
	r := run(t, "policy", "test", "-f", pol, "--fail-open", filepath.Join(man, "web.yaml")).want(t, ExitPolicyFailed)
	for _, want := range []string{"prod-gate/configuration", "BW-PSS-privileged", `container "app"`, "fix:", "1 denied"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "policy failed: 1 object(s) would be denied") {
		t.Errorf("stderr: %s", r.stderr)
	}
	// The compliant one passes (warn and audit do not fail a pipeline),
	// given as JSON from stdin.
	b, err := os.ReadFile(filepath.Join(man, "compliant.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r = runWith(t, runOpts{stdin: string(b)}, "policy", "test", "-f", pol, "--fail-open", "--format", "json", "-").want(t, ExitOK)
	var rep policy.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Items) != 1 || !rep.Items[0].Decision.Allowed || rep.Items[0].Name != "api" || rep.Items[0].Source != "-" {
		t.Errorf("json report: %+v", rep)
	}
	// Without --fail-open and without central, vulnerability rules are
	// violations: nothing is admitted unjudged.
	r = run(t, "policy", "test", "-f", pol, filepath.Join(man, "compliant.yaml")).want(t, ExitPolicyFailed)
	if !strings.Contains(r.stdout, "could not be checked") {
		t.Errorf("fail-closed:\n%s", r.stdout)
	}
	// SARIF for code scanning, a directory of manifests.
	out := filepath.Join(t.TempDir(), "p.sarif")
	run(t, "policy", "test", "-f", pol, "--fail-open", "--format", "sarif", "-o", out, man).want(t, ExitPolicyFailed)
	sb, _ := os.ReadFile(out)
	var sarif struct {
		Runs []struct {
			Results []struct {
				RuleID string `json:"ruleId"`
				Level  string `json:"level"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(sb, &sarif); err != nil || len(sarif.Runs) != 1 || len(sarif.Runs[0].Results) == 0 {
		t.Fatalf("sarif: %v %s", err, sb)
	}
	// A broken policy: exit 2 with file:line.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: bulwark.dev/v1alpha1\nkind: Policy\nmetadata: {name: x}\nspec:\n  mode: deny\n  rules:\n    - name: r\n      expression: \"object.spec.(\"\n"), 0o644)
	r = run(t, "policy", "test", "-f", bad, man).want(t, ExitError)
	if !strings.Contains(r.stderr, "bad.yaml:8:") || !strings.Contains(r.stderr, "CEL compile") {
		t.Errorf("broken policy: %s", r.stderr)
	}
}

// TestPolicyTestNamespaceContext: Namespace objects among the manifests
// give namespace selectors and CEL's namespaceObject their labels, as the
// API server gives them to the webhook; without one the selector matches.
func TestPolicyTestNamespaceContext(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "owner.yaml")
	if err := os.WriteFile(pol, []byte(`apiVersion: bulwark.dev/v1alpha1
kind: Policy
metadata: {name: prod-owner}
spec:
  mode: deny
  scope:
    namespaceSelector: {matchLabels: {env: prod}}
  rules:
    - name: owner-label
      expression: "has(object.metadata.labels) && 'owner' in object.metadata.labels"
      message: "production workloads need an owner label"
    - name: namespace-tier
      expression: "namespaceObject == null || !has(namespaceObject.metadata.labels) || !('tier' in namespaceObject.metadata.labels) || namespaceObject.metadata.labels.tier != 'frozen'"
      message: "the namespace is frozen"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	deploy := policyTestdata(t, "manifests", "compliant.yaml") // namespace prod-shop, no owner label
	ns := func(labels string) string {
		p := filepath.Join(t.TempDir(), "ns.yaml")
		if err := os.WriteFile(p, []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod-shop\n  labels: "+labels+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Namespace unknown: the selector matches, the owner rule denies.
	r := run(t, "policy", "test", "-f", pol, deploy).want(t, ExitPolicyFailed)
	if !strings.Contains(r.stdout, "owner-label") {
		t.Errorf("unknown namespace:\n%s", r.stdout)
	}
	// A staging namespace: the policy does not apply.
	r = run(t, "policy", "test", "-f", pol, ns("{env: staging}"), deploy).want(t, ExitOK)
	if strings.Contains(r.stdout, "Namespace") && strings.Contains(r.stdout, "not a workload") {
		t.Errorf("the Namespace object is listed as skipped:\n%s", r.stdout)
	}
	// A production namespace: it applies again, and CEL sees its labels.
	r = run(t, "policy", "test", "-f", pol, ns("{env: prod, tier: frozen}"), deploy).want(t, ExitPolicyFailed)
	if !strings.Contains(r.stdout, "owner-label") || !strings.Contains(r.stdout, "namespace is frozen") {
		t.Errorf("production namespace:\n%s", r.stdout)
	}
	// As kubectl get namespaces -o yaml writes them: a List.
	list := filepath.Join(t.TempDir(), "list.yaml")
	if err := os.WriteFile(list, []byte("apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Namespace\n    metadata: {name: prod-shop, labels: {env: dev}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "policy", "test", "-f", pol, list, deploy).want(t, ExitOK)

	// The unknown namespace is said in a note, in the table, JSON and SARIF.
	r = run(t, "policy", "test", "-f", pol, deploy).want(t, ExitPolicyFailed)
	if !strings.Contains(r.stdout, `note: namespace "prod-shop": labels unknown`) {
		t.Errorf("no note for the unknown namespace:\n%s", r.stdout)
	}
	r = run(t, "policy", "test", "-f", pol, "--format", "sarif", deploy).want(t, ExitPolicyFailed)
	if !strings.Contains(r.stdout, `"toolExecutionNotifications"`) || !strings.Contains(r.stdout, `prod-shop`) {
		t.Errorf("SARIF without the note:\n%s", r.stdout)
	}
	// --namespace-labels: the same verdicts as the Namespace manifests,
	// and no note; the manifest wins over the flag.
	r = run(t, "policy", "test", "-f", pol, "--namespace-labels", "prod-shop=env=staging", deploy).want(t, ExitOK)
	if strings.Contains(r.stdout, "note:") {
		t.Errorf("note with --namespace-labels:\n%s", r.stdout)
	}
	r = run(t, "policy", "test", "-f", pol, "--namespace-labels", "prod-shop=env=prod,tier=frozen", deploy).want(t, ExitPolicyFailed)
	if !strings.Contains(r.stdout, "owner-label") || !strings.Contains(r.stdout, "namespace is frozen") {
		t.Errorf("--namespace-labels production:\n%s", r.stdout)
	}
	run(t, "policy", "test", "-f", pol, "--namespace-labels", "prod-shop=env=prod", list, deploy).want(t, ExitOK)
	// The API server's kubernetes.io/metadata.name label is there too.
	byName := writeTestFile(t, dir, "byname.yaml", `apiVersion: bulwark.dev/v1alpha1
kind: Policy
metadata: {name: by-name}
spec:
  mode: deny
  scope:
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: prod-shop}}
  rules:
    - name: never
      expression: "false"
      message: "prod-shop is closed"
`)
	run(t, "policy", "test", "-f", byName, "--namespace-labels", "prod-shop=", deploy).want(t, ExitPolicyFailed)
	run(t, "policy", "test", "-f", byName, ns("{env: dev}"), deploy).want(t, ExitPolicyFailed)
	run(t, "policy", "test", "-f", byName, "--namespace", "other", "--namespace-labels", "other=", policyTestdata(t, "manifests", "compliant.yaml")).want(t, ExitPolicyFailed)
	for _, bad := range []string{"prod-shop", "=env=prod", "Prod_Shop=env=prod", "prod-shop=env", "prod-shop=bad key=x", "prod-shop=env=not valid!"} {
		r := run(t, "policy", "test", "-f", pol, "--namespace-labels", bad, deploy).want(t, ExitError)
		if !strings.Contains(r.stderr, "--namespace-labels") {
			t.Errorf("--namespace-labels %q: %s", bad, r.stderr)
		}
	}
}

// --cluster reads the namespaces (and paramRef ConfigMaps) the manifests do
// not carry from the real API server: the gate then judges as the webhook
// in that cluster would.
func TestPolicyTestFromCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver")
	}
	cluster := k8stest.Start(t, k8stest.Options{})
	ctx := t.Context()
	for name, labels := range map[string]map[string]string{"prod-shop": {"env": "prod"}, "bulwark": nil} {
		if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cluster.Client.CoreV1().ConfigMaps("bulwark").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "teams"},
		Data: map[string]string{"allowed": "search"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, doc string) string { return writeTestFile(t, dir, name, doc) }
	pol := write("pol.yaml", `apiVersion: bulwark.dev/v1alpha1
kind: Policy
metadata: {name: prod-teams}
spec:
  mode: deny
  scope:
    namespaceSelector: {matchLabels: {env: prod}}
  paramRef: {name: teams}
  rules:
    - name: team
      expression: "has(object.metadata.labels) && object.metadata.labels.team in params.allowed.split(',')"
      messageExpression: "'team must be one of ' + params.allowed"
`)
	deploy := policyTestdata(t, "manifests", "compliant.yaml") // prod-shop, team: shop
	gate := func(extra ...string) []string {
		return append([]string{"policy", "test", "-f", pol, "--cluster", "--kubeconfig", cluster.Kubeconfig}, extra...)
	}
	// prod-shop is env=prod in the cluster, the cluster's ConfigMap allows
	// search only: denied, with the cluster's params.
	r := run(t, gate(deploy)...).want(t, ExitPolicyFailed)
	if !strings.Contains(r.stdout, "team must be one of search") || strings.Contains(r.stdout, "note:") {
		t.Errorf("from the cluster:\n%s", r.stdout)
	}
	// A ConfigMap among the manifests wins over the cluster's.
	cm := write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: teams, namespace: bulwark}\ndata: {allowed: \"shop\"}\n")
	run(t, gate(cm, deploy)...).want(t, ExitOK)
	// Relabelled in the cluster: out of scope.
	nsObj, err := cluster.Client.CoreV1().Namespaces().Get(ctx, "prod-shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsObj.Labels["env"] = "staging"
	if _, err := cluster.Client.CoreV1().Namespaces().Update(ctx, nsObj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	run(t, gate(deploy)...).want(t, ExitOK)
	// A namespace the cluster does not have: judged as matching, with a note.
	pod := write("pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {team: shop}}\nspec:\n  containers: [{name: c, image: busybox}]\n")
	r = run(t, gate("--namespace", "ghost", pod)...).want(t, ExitPolicyFailed)
	if !strings.Contains(r.stdout, `note: namespace "ghost": labels unknown (not among the manifests or --namespace-labels, and not in the cluster)`) {
		t.Errorf("namespace missing from the cluster:\n%s\n%s", r.stdout, r.stderr)
	}
	// An unreachable cluster is an error, not a guess.
	bad := write("bad.kubeconfig", "apiVersion: v1\nkind: Config\nclusters: [{name: x, cluster: {server: \"https://127.0.0.1:1\"}}]\n"+
		"contexts: [{name: x, context: {cluster: x, user: x}}]\ncurrent-context: x\nusers: [{name: x, user: {token: t}}]\n")
	r = run(t, "policy", "test", "-f", pol, "--cluster", "--kubeconfig", bad, deploy).want(t, ExitError)
	if !strings.Contains(r.stderr, "read from the cluster") {
		t.Errorf("unreachable cluster: %s", r.stderr)
	}
}

func TestPolicyTestParamRef(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) string { return writeTestFile(t, dir, name, doc) }
	pol := write("pol.yaml", `apiVersion: bulwark.dev/v1alpha1
kind: Policy
metadata: {name: teams}
spec:
  mode: deny
  paramRef: {name: teams}
  rules:
    - name: team
      expression: "has(object.metadata.labels) && object.metadata.labels.team in params.allowed.split(',')"
      messageExpression: "'team must be one of ' + params.allowed"
`)
	deploy := policyTestdata(t, "manifests", "compliant.yaml") // team: shop
	cm := func(ns, allowed string) string {
		return write(ns+allowed+".yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: teams, namespace: "+ns+"}\ndata: {allowed: \""+allowed+"\"}\n")
	}
	// Without the ConfigMap: denied, naming it.
	r := run(t, "policy", "test", "-f", pol, deploy).want(t, ExitPolicyFailed)
	if !strings.Contains(r.stdout, "ConfigMap teams") {
		t.Errorf("no ConfigMap:\n%s", r.stdout)
	}
	run(t, "policy", "test", "-f", pol, cm("bulwark", "shop,search"), deploy).want(t, ExitOK)
	r = run(t, "policy", "test", "-f", pol, cm("bulwark", "search"), deploy).want(t, ExitPolicyFailed)
	if !strings.Contains(r.stdout, "team must be one of search") {
		t.Errorf("other teams:\n%s", r.stdout)
	}
	// Another namespace's ConfigMap is not the webhook's: not read, unless
	// that is the params namespace.
	run(t, "policy", "test", "-f", pol, cm("apps", "shop"), deploy).want(t, ExitPolicyFailed)
	run(t, "policy", "test", "-f", pol, "--params-namespace", "apps", cm("apps", "shop"), deploy).want(t, ExitOK)
}

func TestScanImagePolicyGate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, spec string) string {
		p := filepath.Join(dir, name)
		doc := "apiVersion: bulwark.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: " + strings.TrimSuffix(name, ".yaml") + "\nspec:\n" + spec + "\n"
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kev := write("kev.yaml", "  mode: deny\n  vulnerabilities: {knownExploited: true}\n  configuration: {podSecurity: restricted}")
	r := scanDemo(t, runOpts{}, "--policy", kev).want(t, ExitPolicyFailed)
	if !strings.Contains(r.stderr, "kev/vulnerabilities") || !strings.Contains(r.stderr, "known exploited") {
		t.Errorf("kev gate:\n%s", r.stderr)
	}
	// Only image rules: the pod around the image is unknown, so the
	// restricted profile is not judged.
	if strings.Contains(r.stderr, "BW-PSS") {
		t.Errorf("configuration judged in scan --policy:\n%s", r.stderr)
	}
	// The JSON report is still written to stdout.
	parseResult(t, r.stdout)
	lenient := write("lenient.yaml", "  mode: deny\n  vulnerabilities: {deny: [CVE-1999-0001]}")
	scanDemo(t, runOpts{}, "--policy", lenient).want(t, ExitOK)
	// Out of scope (namespaces) → nothing applies.
	scoped := write("scoped.yaml", "  mode: deny\n  scope: {namespaces: [prod]}\n  vulnerabilities: {knownExploited: true}")
	scanDemo(t, runOpts{}, "--policy", scoped).want(t, ExitOK)
	scanDemo(t, runOpts{}, "--policy", scoped, "--policy-namespace", "prod").want(t, ExitPolicyFailed)
}

func TestAdmissionInstall(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "webhook.yaml")
	run(t, "admission", "install", "--service-namespace", "bulwark", "--service-name", "bulwark-admission",
		"--cert-dir", filepath.Join(dir, "certs"), "--failure-policy", "Ignore", "--connect", "-o", out).want(t, ExitOK)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var cfg admissionregistrationv1.ValidatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "certs", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	wh := cfg.Webhooks[0]
	if string(wh.ClientConfig.CABundle) != string(ca) || *wh.FailurePolicy != admissionregistrationv1.Ignore ||
		wh.ClientConfig.Service == nil || wh.ClientConfig.Service.Namespace != "bulwark" || *wh.ClientConfig.Service.Path != "/validate" {
		t.Errorf("webhook: %+v", wh)
	}
	ex := wh.NamespaceSelector.MatchExpressions[0]
	if ex.Key != "kubernetes.io/metadata.name" || strings.Join(ex.Values, ",") != "kube-system,bulwark" {
		t.Errorf("namespace selector: %+v", ex)
	}
	if len(wh.Rules) != 4 || wh.Rules[3].Resources[0] != "pods/exec" {
		t.Errorf("rules: %+v", wh.Rules)
	}
	// The serving certificate generated beside the CA names the Service.
	crt, err := os.ReadFile(filepath.Join(dir, "certs", "tls.crt"))
	if err != nil || len(crt) == 0 {
		t.Fatalf("serving certificate: %v", err)
	}
	run(t, "admission", "install", "--url", "https://x", "--ca-file", filepath.Join(dir, "certs", "ca.crt"), "--failure-policy", "Maybe").want(t, ExitError)
	run(t, "admission", "install").want(t, ExitError)
	r := run(t, "admission", "serve").want(t, ExitError)
	if !strings.Contains(r.stderr, "--policy is required") {
		t.Errorf("serve without policies: %s", r.stderr)
	}
}

// TestAdmissionServePolicyFromServer checks the flag's rules: it needs
// --server, and without local --policy files the webhook refuses to start
// until central's policies are fetched (central here is a closed port).
// The polling itself is tested against a real central in internal/admission.
func TestAdmissionServePolicyFromServer(t *testing.T) {
	r := run(t, "admission", "serve", "--policy-from-server").want(t, ExitError)
	if !strings.Contains(r.stderr, "--policy-from-server needs --server") {
		t.Errorf("without --server: %s", r.stderr)
	}
	r = run(t, "admission", "serve", "--policy-from-server", "--server", "https://127.0.0.1:1", "--token", "bwk_x",
		"--cert-dir", t.TempDir(), "--no-namespace-lookup", "--listen", "127.0.0.1:0").want(t, ExitError)
	if !strings.Contains(r.stderr, "central's policies could not be loaded") {
		t.Errorf("central unreachable, no local policies: %s", r.stderr)
	}
}

func TestAdmissionInstallApply(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver")
	}
	cluster := k8stest.Start(t, k8stest.Options{})
	dir := t.TempDir()
	args := []string{"admission", "install", "--url", "https://127.0.0.1:9443", "--cert-dir", dir, "--apply", "--kubeconfig", cluster.Kubeconfig}
	run(t, args...).want(t, ExitOK)
	// Applying again updates in place (a new failure policy).
	run(t, append(args, "--failure-policy", "Ignore")...).want(t, ExitOK)
	got, err := cluster.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(t.Context(), "bulwark-admission", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	wh := got.Webhooks[0]
	if *wh.ClientConfig.URL != "https://127.0.0.1:9443/validate" || string(wh.ClientConfig.CABundle) != string(ca) ||
		*wh.FailurePolicy != admissionregistrationv1.Ignore {
		t.Errorf("applied: %+v", wh)
	}
}

// Objects of a policy's spec.paramKind among the manifests are its params
// (not workloads), looked up in the judged object's namespace.
func TestPolicyTestParamKind(t *testing.T) {
	dir := t.TempDir()
	pol := writeTestFile(t, dir, "pol.yaml", `apiVersion: bulwark.dev/v1alpha1
kind: Policy
metadata: {name: team-registries}
spec:
  mode: deny
  paramKind: {apiVersion: params.example.com/v1, kind: RegistryAllowList}
  paramRef: {name: registries}
  rules:
    - name: registry
      expression: "object.spec.template.spec.containers.all(c, params.spec.registries.exists(r, c.image.startsWith(r + '/')))"
      messageExpression: "'images must come from ' + params.spec.registries.join(', ')"
`)
	list := func(ns, reg string) string {
		return writeTestFile(t, dir, ns+"-"+reg+".yaml", "apiVersion: params.example.com/v1\nkind: RegistryAllowList\nmetadata: {name: registries, namespace: "+ns+"}\nspec: {registries: ["+reg+"]}\n")
	}
	deploy := policyTestdata(t, "manifests", "compliant.yaml") // prod-shop, registry.example.com
	r := run(t, "policy", "test", "-f", pol, deploy).want(t, ExitPolicyFailed)
	if !strings.Contains(r.stdout, "do not exist") {
		t.Errorf("no allow list:\n%s", r.stdout)
	}
	r = run(t, "policy", "test", "-f", pol, list("prod-shop", "registry.example.com"), deploy).want(t, ExitOK)
	if strings.Contains(r.stdout, "RegistryAllowList") {
		t.Errorf("the params object is listed:\n%s", r.stdout)
	}
	r = run(t, "policy", "test", "-f", pol, list("prod-shop", "docker.io"), deploy).want(t, ExitPolicyFailed)
	if !strings.Contains(r.stdout, "images must come from docker.io (params: RegistryAllowList prod-shop/registries)") {
		t.Errorf("other registry:\n%s", r.stdout)
	}
	// Another namespace's list is not this namespace's.
	run(t, "policy", "test", "-f", pol, list("staging", "registry.example.com"), deploy).want(t, ExitPolicyFailed)
}

// TestPolicyTestApplyFixes: with --apply-fixes the gate judges what the
// mutating webhook would let through: a deployment failing only fixable
// controls passes, the fixes are listed (table notes, JSON items), and
// without the flag the manifest as written fails.
func TestPolicyTestApplyFixes(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "harden.yaml")
	os.WriteFile(pol, []byte(`apiVersion: bulwark.dev/v1alpha1
kind: Policy
metadata: {name: harden}
spec:
  mode: deny
  configuration:
    controls: [BW-K8S-0002, BW-K8S-0014]
    mutate: [BW-K8S-0002, BW-K8S-0014]
`), 0o644)
	dep := filepath.Join(dir, "web.yaml")
	os.WriteFile(dep, []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: registry.example.com/web:1.0
`), 0o644)
	r := run(t, "policy", "test", "-f", pol, dep).want(t, ExitPolicyFailed)
	if !strings.Contains(r.stdout, "BW-K8S-0002") || !strings.Contains(r.stdout, "BW-K8S-0014") {
		t.Errorf("as written:\n%s", r.stdout)
	}
	r = run(t, "policy", "test", "-f", pol, "--apply-fixes", dep).want(t, ExitOK)
	if !strings.Contains(r.stdout, "judged after the mutating webhook's fixes: BW-K8S-0002 (harden), BW-K8S-0014 (harden)") {
		t.Errorf("with fixes:\n%s", r.stdout)
	}
	r = run(t, "policy", "test", "-f", pol, "--apply-fixes", "--format", "json", dep).want(t, ExitOK)
	var rep struct {
		Items []struct {
			Fixes []struct{ Policy, Control string }
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Items) != 1 || len(rep.Items[0].Fixes) != 2 {
		t.Errorf("json: %v\n%s", err, r.stdout)
	}
}
