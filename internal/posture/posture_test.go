package posture

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/pod-security-admission/policy"
)

func decodeFiles(t testing.TB, files ...string) *Decoded {
	t.Helper()
	dec, err := NewDecoder(Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var in Decoded
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := dec.Decode(context.Background(), f, fh, &in); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	return &in
}

func evaluate(t testing.TB, cfg Config, in *Decoded) *Report {
	t.Helper()
	ev, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ev.Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// verdicts maps "Kind/ns/name control" to status for lookups in tests.
func verdicts(rep *Report) map[string]Result {
	m := map[string]Result{}
	for _, r := range rep.Results {
		m[rep.Objects[r.Object].String()+" "+r.Control] = r
	}
	return m
}

func manifestFiles(t testing.TB) []string {
	files, err := filepath.Glob("testdata/manifests/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	return files
}

func TestManifestVerdicts(t *testing.T) {
	rep := evaluate(t, Config{TrustedRegistries: []string{"registry.example.com"}, AllowedHostPaths: []string{"/proc"}}, decodeFiles(t, manifestFiles(t)...))
	if len(rep.Errors) != 0 {
		t.Fatalf("errors: %v", rep.Errors)
	}
	v := verdicts(rep)
	type want struct {
		key    string
		status Status
		msg    string // substring of the message, for failures
	}
	const (
		good   = "Deployment/shop/shop-api "
		bad    = "Deployment/default/legacy-web "
		agent  = "DaemonSet/monitoring/node-agent "
		role   = "ClusterRole/node-agent "
		roleRO = "ClusterRole/node-agent-readonly "
		crb    = "ClusterRoleBinding/node-agent-admin "
		rb     = "RoleBinding/monitoring/default-reader "
		pg     = "Service/default/legacy-postgresql "
		svc    = "Service/shop/shop-api "
	)
	cases := []want{}
	// The compliant Deployment passes every workload control.
	for _, c := range rep.Controls {
		if c.scope == scopeWorkload || c.scope == scopeNamespaced {
			cases = append(cases, want{good + c.ID, StatusPass, ""})
		}
	}
	cases = append(cases,
		want{bad + "BW-K8S-0001", StatusPass, ""},
		want{bad + "BW-K8S-0002", StatusFail, `container "web" does not set securityContext.allowPrivilegeEscalation=false`},
		want{bad + "BW-K8S-0003", StatusFail, `container "web" sets securityContext.runAsUser=0`},
		want{bad + "BW-K8S-0004", StatusFail, `container "sidecar" does not set securityContext.readOnlyRootFilesystem=true`},
		want{bad + "BW-K8S-0005", StatusFail, `container "web" does not drop ALL`},
		want{bad + "BW-K8S-0006", StatusFail, `container "web" adds capability SYS_PTRACE`},
		want{bad + "BW-K8S-0007", StatusPass, ""},
		want{bad + "BW-K8S-0010", StatusFail, `container "web" sets ports[0].hostPort=8080`},
		want{bad + "BW-K8S-0011", StatusPass, ""},
		want{bad + "BW-K8S-0012", StatusFail, `container "sidecar" sets no resources.limits.cpu or memory`},
		want{bad + "BW-K8S-0013", StatusFail, "resources.requests"},
		want{bad + "BW-K8S-0014", StatusFail, "automountServiceAccountToken"},
		want{bad + "BW-K8S-0015", StatusFail, "default namespace"},
		want{bad + "BW-K8S-0016", StatusFail, `container "web" image "nginx" has neither tag nor digest`},
		want{bad + "BW-K8S-0017", StatusFail, "not pinned by digest"},
		want{bad + "BW-K8S-0018", StatusFail, `"docker.io/busybox:latest" is not from a trusted registry`},
		want{bad + "BW-K8S-0019", StatusFail, "env[0] ADMIN_PASSWORD"},
		want{bad + "BW-K8S-0020", StatusFail, `container "web" has no livenessProbe`},
		want{bad + "BW-K8S-0021", StatusFail, "readinessProbe"},
		want{bad + "BW-K8S-0022", StatusFail, "default service account"},
		want{bad + "BW-PSS-capabilities_baseline", StatusFail, "NET_ADMIN"},
		want{bad + "BW-PSS-hostPorts", StatusFail, "8080"},
		want{bad + "BW-PSS-privileged", StatusPass, ""},
		want{agent + "BW-K8S-0001", StatusFail, `container "agent" sets securityContext.privileged=true`},
		want{agent + "BW-K8S-0007", StatusFail, "hostNetwork=true"},
		want{agent + "BW-K8S-0008", StatusFail, "hostPID=true"},
		want{agent + "BW-K8S-0009", StatusPass, ""},
		want{agent + "BW-K8S-0011", StatusFail, `volume "root" mounts hostPath "/"`},
		want{agent + "BW-K8S-0012", StatusFail, `sets no resources.limits.cpu`},
		want{agent + "BW-K8S-0018", StatusFail, "quay.io/example/node-agent"},
		want{agent + "BW-K8S-0020", StatusFail, "livenessProbe"},
		want{agent + "BW-PSS-privileged", StatusFail, "privileged"},
		want{agent + "BW-PSS-hostNamespaces", StatusFail, "hostNetwork=true"},
		want{agent + "BW-PSS-hostPathVolumes", StatusFail, "root"},
		want{role + "BW-K8S-0031", StatusFail, `rules[0] uses "*" in apiGroups, resources, verbs`},
		want{role + "BW-K8S-0032", StatusFail, "rules[1] grants read access to Secrets"},
		want{role + "BW-K8S-0033", StatusFail, "escalate roles"},
		want{role + "BW-K8S-0034", StatusFail, "create pods/exec"},
		want{role + "BW-K8S-0036", StatusFail, "rules[2] grants nodes/proxy"},
		want{roleRO + "BW-K8S-0031", StatusPass, ""},
		want{roleRO + "BW-K8S-0032", StatusPass, ""},
		want{roleRO + "BW-K8S-0034", StatusPass, ""},
		want{crb + "BW-K8S-0030", StatusFail, "binds cluster-admin to ServiceAccount monitoring/node-agent"},
		want{crb + "BW-K8S-0038", StatusPass, ""},
		want{rb + "BW-K8S-0037", StatusFail, "ServiceAccount monitoring/default"},
		want{rb + "BW-K8S-0030", StatusPass, ""},
		want{pg + "BW-K8S-0040", StatusFail, "ports[0] 5432 (PostgreSQL)"},
		want{svc + "BW-K8S-0040", StatusPass, ""},
		want{"Namespace/shop/shop BW-K8S-0041", StatusPass, ""},
		want{"Namespace/default/default BW-K8S-0041", StatusFail, "no NetworkPolicy"},
		want{"Namespace/monitoring/monitoring BW-K8S-0041", StatusFail, "no NetworkPolicy"},
	)
	for _, c := range cases {
		r, ok := v[c.key]
		if !ok {
			t.Errorf("%s: no result", c.key)
			continue
		}
		if r.Status != c.status || !strings.Contains(r.Message, c.msg) {
			t.Errorf("%s: got %s %q, want %s containing %q", c.key, r.Status, r.Message, c.status, c.msg)
		}
	}
	// "/proc" is allowed: only the "/" volume fails.
	if m := v[agent+"BW-K8S-0011"].Message; strings.Contains(m, `"/proc"`) {
		t.Errorf("allowed host path reported: %s", m)
	}
	// The literal value of a secret never reaches the report.
	if m := v[bad+"BW-K8S-0019"].Message; strings.Contains(m, "hunter2") || !strings.Contains(m, "API_KEY") {
		t.Errorf("secret env message: %s", m)
	}
	levels := map[string]string{}
	for _, o := range rep.Objects {
		if o.PSSLevel != "" {
			levels[o.String()] = o.PSSLevel
		}
	}
	if diff := cmp.Diff(map[string]string{
		"Deployment/shop/shop-api": "restricted", "Deployment/default/legacy-web": "privileged", "DaemonSet/monitoring/node-agent": "privileged",
	}, levels); diff != "" {
		t.Errorf("PSS levels (-want +got):\n%s", diff)
	}
	// Skipped: the ServiceAccount, the NetworkPolicy, the CRD and its custom resource.
	var skipped []string
	for _, s := range rep.Skipped {
		skipped = append(skipped, s.Object.Kind+"/"+s.Object.Name)
	}
	if diff := cmp.Diff([]string{"ServiceAccount/shop-api", "NetworkPolicy/shop-api", "CustomResourceDefinition/backups.example.com", "Backup/nightly"}, skipped,
		cmpSortStrings()); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
}

func cmpSortStrings() cmp.Option {
	return cmp.Transformer("sort", func(in []string) []string {
		out := append([]string(nil), in...)
		for i := range out {
			for j := i + 1; j < len(out); j++ {
				if out[j] < out[i] {
					out[i], out[j] = out[j], out[i]
				}
			}
		}
		return out
	})
}

func TestPatchesFixTheFailures(t *testing.T) {
	in := decodeFiles(t, "testdata/manifests/legacy.yaml")
	rep := evaluate(t, Config{}, in)
	v := verdicts(rep)
	r := v["Deployment/default/legacy-web BW-K8S-0002"]
	want := []PatchOp{
		{Op: "add", Path: "/spec/template/spec/containers/0/securityContext/allowPrivilegeEscalation", Value: false},
		{Op: "add", Path: "/spec/template/spec/containers/1/securityContext", Value: map[string]any{"allowPrivilegeEscalation": false}},
	}
	if diff := cmp.Diff(want, r.Patch); diff != "" {
		t.Errorf("patch (-want +got):\n%s", diff)
	}
	if p := v["Service/default/legacy-postgresql BW-K8S-0040"].Patch; len(p) != 1 || p[0].Value != "ClusterIP" {
		t.Errorf("service patch: %+v", p)
	}
}

func TestScores(t *testing.T) {
	rep := evaluate(t, Config{}, decodeFiles(t, manifestFiles(t)...))
	byName := map[string]Score{}
	for _, s := range rep.Namespaces {
		byName[s.Name] = s
	}
	shop, def := byName["shop"], byName["default"]
	if shop.Failed != 0 || shop.Score != 100 {
		t.Errorf("shop: %+v", shop)
	}
	if def.Failed == 0 || def.Score >= shop.Score {
		t.Errorf("default: %+v", def)
	}
	// Recompute one score by the documented formula.
	var pw, tw float64
	for _, r := range rep.Results {
		o := rep.Objects[r.Object]
		if o.Namespace != "default" || o.Kind == "Namespace" && o.Name != "default" {
			continue
		}
		switch r.Status {
		case StatusPass:
			pw += weight(r.Severity)
			tw += weight(r.Severity)
		case StatusFail:
			tw += weight(r.Severity)
		}
	}
	if want := float64(int(1000*pw/tw+0.5)) / 10; def.Score != want {
		t.Errorf("default score %v, formula gives %v", def.Score, want)
	}
	fw := map[string]bool{}
	for _, s := range rep.Frameworks {
		fw[s.Name] = true
	}
	for _, f := range []string{FrameworkCIS, FrameworkNSA, FrameworkPSSBaseline, FrameworkPSSRestricted, FrameworkMITRE, FrameworkAll} {
		if !fw[f] {
			t.Errorf("no score for %s", f)
		}
	}
	// SkipScores (the webhook's setting) changes nothing but the scores.
	skipped := evaluate(t, Config{SkipScores: true}, decodeFiles(t, manifestFiles(t)...))
	if len(skipped.Frameworks) != 0 || len(skipped.Namespaces) != 0 {
		t.Errorf("SkipScores: %d framework and %d namespace scores", len(skipped.Frameworks), len(skipped.Namespaces))
	}
	if diff := cmp.Diff(rep.Results, skipped.Results, cmp.AllowUnexported(Result{})); diff != "" {
		t.Errorf("SkipScores changed the results (-scored +skipped):\n%s", diff)
	}
	if diff := cmp.Diff(rep.Objects, skipped.Objects); diff != "" {
		t.Errorf("SkipScores changed more than the scores (-scored +skipped):\n%s", diff)
	}
}

func TestExceptions(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	ex, err := LoadExceptions(strings.NewReader(`exceptions:
- control: BW-K8S-0001
  kind: DaemonSet
  namespace: monitoring
  name: node-*
  reason: the agent reads host state
  expires: 2026-12-31
- control: BW-K8S-0007
  name: node-agent
  reason: expired one
  expires: 2026-01-01
`))
	if err != nil {
		t.Fatal(err)
	}
	rep := evaluate(t, Config{Exceptions: ex, Now: func() time.Time { return now }}, decodeFiles(t, "testdata/manifests/agent.yaml"))
	v := verdicts(rep)
	if r := v["DaemonSet/monitoring/node-agent BW-K8S-0001"]; r.Status != StatusExcepted || r.Exception != "the agent reads host state" {
		t.Errorf("privileged: %+v", r)
	}
	if r := v["DaemonSet/monitoring/node-agent BW-K8S-0007"]; r.Status != StatusFail {
		t.Errorf("expired exception applied: %+v", r)
	}
	if len(rep.ExpiredExceptions) != 1 {
		t.Errorf("expired: %+v", rep.ExpiredExceptions)
	}
	for _, bad := range []string{
		"exceptions:\n- control: BW-K8S-0001\n  expires: 2026-12-31\n",
		"exceptions:\n- control: BW-K8S-0001\n  reason: x\n",
		"exceptions:\n- reason: x\n  expires: 2026-12-31\n",
		"exceptions:\n- control: X\n  reason: x\n  expires: 2026-12-31\n  typo: 1\n",
	} {
		if _, err := LoadExceptions(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if _, err := New(Config{Exceptions: []Exception{{Control: "BW-NOPE", Reason: "x", Expires: now}}}); err == nil {
		t.Error("exception for unknown control accepted")
	}
}

func TestEveryUpstreamCheckIsAControl(t *testing.T) {
	ev, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, c := range ev.Controls() {
		ids[c.ID] = true
		if c.Title == "" || c.Rationale == "" || c.Remediation == "" || c.check == nil || c.scope == 0 {
			t.Errorf("%s: incomplete control", c.ID)
		}
	}
	for _, c := range policy.DefaultChecks() {
		if !ids["BW-PSS-"+string(c.ID)] {
			t.Errorf("upstream check %s has no control", c.ID)
		}
		if _, ok := pssMetadata[string(c.ID)]; !ok {
			t.Errorf("upstream check %s has no metadata", c.ID)
		}
	}
}

func TestFormats(t *testing.T) {
	rep := evaluate(t, Config{}, decodeFiles(t, manifestFiles(t)...))
	for _, f := range Formats {
		var b bytes.Buffer
		if err := Write(&b, rep, f); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out := b.String()
		switch f {
		case "table":
			if !strings.Contains(out, "BW-K8S-0030") || !strings.Contains(out, "ClusterRoleBinding/node-agent-admin") {
				t.Errorf("table lacks the cluster-admin failure:\n%s", out)
			}
		case "json":
			var back Report
			if err := json.Unmarshal(b.Bytes(), &back); err != nil {
				t.Fatalf("json: %v", err)
			}
			if len(back.Results) != len(rep.Results) || len(back.Controls) != len(rep.Controls) {
				t.Errorf("json round trip lost results")
			}
		case "sarif":
			var s struct {
				Version string
				Runs    []struct {
					Results []struct {
						RuleID string
						Level  string
					}
				}
			}
			if err := json.Unmarshal(b.Bytes(), &s); err != nil || s.Version != "2.1.0" || len(s.Runs) != 1 {
				t.Fatalf("sarif: %v %+v", err, s.Version)
			}
			if len(s.Runs[0].Results) != rep.failedCount() {
				t.Errorf("sarif has %d results, report %d failures", len(s.Runs[0].Results), rep.failedCount())
			}
		case "junit":
			var j struct {
				Suites []struct {
					Tests    int `xml:"tests,attr"`
					Failures int `xml:"failures,attr"`
				} `xml:"testsuite"`
			}
			if err := xml.Unmarshal(b.Bytes(), &j); err != nil {
				t.Fatalf("junit: %v", err)
			}
			n, fl := 0, 0
			for _, s := range j.Suites {
				n += s.Tests
				fl += s.Failures
			}
			if n != len(rep.Results) || fl != rep.failedCount() {
				t.Errorf("junit %d tests %d failures; report %d, %d", n, fl, len(rep.Results), rep.failedCount())
			}
		case "html":
			if !strings.HasPrefix(out, "<!DOCTYPE html>") || strings.Contains(out, "<script") || strings.Contains(out, "<link") ||
				!strings.Contains(out, "binds cluster-admin") {
				t.Errorf("html page not self-contained or lacks failures")
			}
		}
	}
	if err := Write(&bytes.Buffer{}, rep, "xml"); err == nil {
		t.Error("unknown format accepted")
	}
}

func (r *Report) failedCount() int { return len(r.failures()) }

func TestHostileInput(t *testing.T) {
	dec, err := NewDecoder(Limits{MaxFileBytes: 1 << 20, MaxObjects: 50})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	var list strings.Builder
	list.WriteString(`{"apiVersion":"v1","kind":"List","items":[`)
	for i := range 200 {
		if i > 0 {
			list.WriteString(",")
		}
		list.WriteString(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"x:1"}]}}`)
	}
	list.WriteString("]}")
	cases := []struct {
		name, input string
		objects     int
		errs        int
		errLine     int
	}{
		{"invalid yaml keeps going", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ok\n---\napiVersion: v1\nkind: Pod\nmetadata: [\n  bad\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", 2, 1, 9},
		{"no kind", "foo: bar\n", 0, 1, 1},
		{"scalar", "just a string\n", 0, 1, 1},
		{"wrong field type", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: many}\n", 0, 1, 1},
		{"unknown kind", "apiVersion: evil.example.com/v1\nkind: Thing\nmetadata: {name: t}\n", 1, 0, 0},
		{"deep nesting", "apiVersion: v1\nkind: Pod\nmetadata: {name: d}\nspec: " + deep + "\n", 0, 1, 4},
		{"giant list capped", list.String(), 49, 1, 1},
		{"comments and empties", "# only a comment\n---\n---\n\n", 0, 0, 0},
		{"billion laughs", "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n", 0, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var in Decoded
			if err := dec.Decode(ctx, "in.yaml", strings.NewReader(c.input), &in); err != nil {
				t.Fatal(err)
			}
			if len(in.Objects) != c.objects || len(in.Errors) != c.errs {
				t.Fatalf("got %d objects %d errors (%v), want %d, %d", len(in.Objects), len(in.Errors), in.Errors, c.objects, c.errs)
			}
			if c.errLine > 0 && in.Errors[0].Line != c.errLine {
				t.Errorf("error line %d, want %d (%v)", in.Errors[0].Line, c.errLine, in.Errors[0])
			}
			// Whatever decoded must evaluate without panicking.
			evaluate(t, Config{}, &in)
		})
	}
	var in Decoded
	if err := dec.Decode(ctx, "big.yaml", strings.NewReader(strings.Repeat("#", 2<<20)), &in); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize file: %v", err)
	}
}

func TestPSSAgreesWithUpstreamFixtures(t *testing.T) {
	upstream, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/pss/*/v1.*/*/*.yaml")
	if len(files) < 200 {
		t.Fatalf("only %d fixtures", len(files))
	}
	evs := map[string]*Evaluator{}
	for _, f := range files {
		parts := strings.Split(filepath.ToSlash(f), "/")
		level, version, verdict := parts[2], parts[3], parts[4]
		ev := evs[version]
		if ev == nil {
			if ev, err = New(Config{PSSVersion: version}); err != nil {
				t.Fatal(err)
			}
			evs[version] = ev
		}
		in := decodeFiles(t, f)
		rep, err := ev.Evaluate(context.Background(), in)
		if err != nil || len(in.Errors) > 0 || len(rep.Objects) == 0 {
			t.Fatalf("%s: %v %v", f, err, in.Errors)
		}
		got := rep.Objects[0].PSSLevel
		var ok bool
		switch level + "/" + verdict {
		case "restricted/pass":
			ok = got == "restricted"
		case "restricted/fail":
			ok = got != "restricted"
		case "baseline/pass":
			ok = got == "baseline" || got == "restricted"
		case "baseline/fail":
			ok = got == "privileged"
		}
		if !ok {
			t.Errorf("%s: Bulwark's PSS level %q", f, got)
		}
		// The same verdict as the upstream evaluator, and at least one
		// failing control named for every fail fixture.
		pod := in.Objects[0].Typed
		tg, _ := newTarget(pod, &ObjectRef{}, imageCache{})
		lv := mustLevelVersion(t, level, version)
		allowed := policy.AggregateCheckResults(upstream.EvaluatePod(lv, tg.pod.meta, tg.pod.spec)).Allowed
		if allowed != (verdict == "pass") {
			t.Fatalf("%s: upstream says allowed=%v: fixture layout misread", f, allowed)
		}
		failedPSS := 0
		for _, r := range rep.Results {
			if strings.HasPrefix(r.Control, "BW-PSS-") && r.Status == StatusFail {
				failedPSS++
			}
		}
		if verdict == "fail" && failedPSS == 0 {
			t.Errorf("%s: no PSS control failed", f)
		}
	}
}

// TestPSSOnEveryController wraps a failing and a passing upstream fixture in
// each pod-creating kind and expects the same verdicts.
func TestPSSOnEveryController(t *testing.T) {
	for _, fx := range []struct{ file, level string }{
		{"testdata/pss/restricted/v1.37/pass/base.yaml", "restricted"},
		{"testdata/pss/baseline/v1.37/fail/privileged0.yaml", "privileged"},
	} {
		data, err := os.ReadFile(fx.file)
		if err != nil {
			t.Fatal(err)
		}
		spec := indent(string(data[strings.Index(string(data), "spec:\n")+len("spec:\n"):]), "      ")
		tmpl := "metadata:\n      labels: {a: b}\n    spec:\n" + spec
		docs := map[string]string{
			"Deployment":            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x, namespace: ns}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    " + tmpl,
			"StatefulSet":           "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x, namespace: ns}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    " + tmpl,
			"DaemonSet":             "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x, namespace: ns}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    " + tmpl,
			"ReplicaSet":            "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: x, namespace: ns}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    " + tmpl,
			"ReplicationController": "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: x, namespace: ns}\nspec:\n  template:\n    " + tmpl,
			"Job":                   "apiVersion: batch/v1\nkind: Job\nmetadata: {name: x, namespace: ns}\nspec:\n  template:\n    " + tmpl,
			"CronJob":               "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: x, namespace: ns}\nspec:\n  schedule: '* * * * *'\n  jobTemplate:\n    spec:\n      template:\n        " + strings.ReplaceAll(tmpl, "\n", "\n    "),
		}
		for kind, doc := range docs {
			dec, _ := NewDecoder(Limits{})
			var in Decoded
			if err := dec.Decode(context.Background(), kind, strings.NewReader(doc), &in); err != nil || len(in.Errors) > 0 || len(in.Objects) != 1 {
				t.Fatalf("%s: %v %v\n%s", kind, err, in.Errors, doc)
			}
			rep := evaluate(t, Config{PSSVersion: "v1.37"}, &in)
			if got := rep.Objects[0].PSSLevel; got != fx.level {
				t.Errorf("%s from %s: level %q, want %q", kind, fx.file, got, fx.level)
			}
		}
	}
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pre + strings.TrimPrefix(lines[i], "  ")
	}
	return strings.Join(lines, "\n") + "\n"
}
