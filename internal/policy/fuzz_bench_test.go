package policy

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadPolicy: any input either loads or fails with a LoadError-wrapped
// error; never a panic, never both a set and an error.
func FuzzLoadPolicy(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "policies", "*.yaml"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(policyDoc("p", "  mode: deny\n  rules:\n    - name: r\n      expression: \"object.metadata.name == 'x'\"")))
	f.Add([]byte(policyDoc("p", "  mode: deny\n  params: {max: 3, l: [a, {b: null}], t: 2026-01-02, &x y: *x}\n  rules:\n    - name: r\n      expression: \"params.max > 1\"")))
	f.Add([]byte(policyDoc("p", "  mode: deny\n  paramRef: {name: team-limits, notFound: allow}\n  rules:\n    - name: r\n      expression: \"params.max == '3'\"")))
	f.Add([]byte(policyDoc("p", "  mode: deny\n  paramKind: {apiVersion: x.example.com/v1, kind: Limits}\n  paramRef: {selector: {matchLabels: {a: b}}, namespace: ns}\n  rules:\n    - name: r\n      expression: \"params.spec.max == 3\"")))
	f.Add([]byte("apiVersion: bulwark.dev/v1alpha1\nkind: PolicyList\nitems: [{kind: Policy}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("\xff\xfe"))
	l := newTestLoader(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := l.Load(context.Background(), Source{Name: "fuzz.yaml", Data: data})
		if (set == nil) == (err == nil) {
			t.Fatalf("set %v with error %v", set != nil, err)
		}
		if set != nil {
			// Whatever loaded must evaluate without panicking.
			set.Evaluate(context.Background(), podWith("ns", "x", "nginx:1"))
		}
	})
}

// BenchmarkEvaluate is one Deployment against the test policies (20
// copies under different names), images from a static source: the
// evaluator's share of an admission review.
func BenchmarkEvaluate(b *testing.B) {
	l := newTestLoader(b)
	set := loadYAML(b, l, benchPolicies(20))
	req := manifest(b, filepath.Join("testdata", "manifests", "web.yaml"))
	req.Images = StaticImages{"registry.example.com/shop/web:1.4.2": {Scanned: true, Findings: []Finding{log4shell, urllib3, medium}}, "nginx": {Scanned: true}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d := set.Evaluate(ctx, req)
		if d.Allowed {
			b.Fatal("allowed")
		}
	}
}

// benchPolicies is n policies of the shapes a real installation mixes.
func benchPolicies(n int) string {
	shapes := []string{
		"  mode: deny\n  vulnerabilities: {maxSeverity: high, fixableOnly: true, knownExploited: true}",
		"  mode: deny\n  configuration: {podSecurity: baseline}",
		"  mode: warn\n  configuration: {hardening: true}",
		"  mode: deny\n  provenance: {trustedRegistries: [registry.example.com], noLatest: true}",
		"  mode: audit\n  rules:\n    - name: team\n      expression: \"has(object.metadata.labels) && 'team' in object.metadata.labels\"",
	}
	out := ""
	for i := range n {
		out += policyDoc("p"+string(rune('a'+i%26))+string(rune('a'+i/26)), shapes[i%len(shapes)])
	}
	return out
}
