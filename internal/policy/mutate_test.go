package policy

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const mutatePolicies = `apiVersion: bulwark.dev/v1alpha1
kind: Policy
metadata: {name: harden}
spec:
  mode: deny
  configuration:
    hardening: true
    mutate: [BW-K8S-0002, BW-K8S-0005, BW-K8S-0014]
  exemptions:
    - namespace: legacy
      rules: [BW-K8S-0005]
      reason: needs NET_BIND_SERVICE until the port moves
      expires: 2099-01-01
---
apiVersion: bulwark.dev/v1alpha1
kind: Policy
metadata: {name: observe}
spec:
  mode: audit
  configuration:
    controls: [BW-K8S-0004]
    mutate: [BW-K8S-0004]
`

const plainPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"shop","labels":{"app":"web"}},
"spec":{"containers":[{"name":"web","image":"registry.example.com/web@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
"securityContext":{"runAsNonRoot":true},"resources":{"limits":{"cpu":"1","memory":"128Mi"}}}]}}`

func jsonRequest(t *testing.T, op, kind, ns, raw string) *Request {
	t.Helper()
	obj, err := DecodeObject(kind, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Metadata struct{ Name string }
	}
	json.Unmarshal([]byte(raw), &meta)
	return &Request{Operation: op, Kind: kind, Namespace: ns, Name: meta.Metadata.Name, Object: obj, User: UserInfo{Username: "alice"}}
}

// TestMutate: the listed controls are fixed (once, whatever the number of
// policies), the fixed object passes them when judged, and the others are
// still judged; audit-mode policies, exemptions and pod updates fix
// nothing; a Deployment's template is fixed on update too.
func TestMutate(t *testing.T) {
	set := loadYAML(t, newTestLoader(t), mutatePolicies)
	if !set.Mutates() {
		t.Fatal("Mutates: false")
	}
	ctx := context.Background()
	req := jsonRequest(t, "CREATE", "Pod", "shop", plainPod)
	before := summary(set.Evaluate(ctx, req))
	m, err := set.Mutate(ctx, req, []byte(plainPod))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Fix{{"harden", "BW-K8S-0002"}, {"harden", "BW-K8S-0005"}, {"harden", "BW-K8S-0014"}}, m.Fixes); diff != "" {
		t.Errorf("fixes (-want +got):\n%s", diff)
	}
	for _, want := range []string{`"allowPrivilegeEscalation":false`, `"drop":["ALL"]`, `"automountServiceAccountToken":false`,
		`"runAsNonRoot":true`, `"memory":"128Mi"`} {
		if !strings.Contains(string(m.Object), want) {
			t.Errorf("fixed object lacks %s: %s", want, m.Object)
		}
	}
	if strings.Contains(string(m.Object), "readOnlyRootFilesystem") {
		t.Errorf("an audit-mode policy fixed something: %s", m.Object)
	}
	after := summary(set.Evaluate(ctx, jsonRequest(t, "CREATE", "Pod", "shop", string(m.Object))))
	if diff := cmp.Diff([]string{"verdict=deny", "harden deny configuration BW-K8S-0004 web", "observe audit configuration BW-K8S-0004 web"}, after); diff != "" {
		t.Errorf("judged after the fix (-want +got):\n%s\nbefore: %v", diff, before)
	}

	// Exempted: that control is left alone.
	legacy := strings.Replace(plainPod, `"namespace":"shop"`, `"namespace":"legacy"`, 1)
	m, _ = set.Mutate(ctx, jsonRequest(t, "CREATE", "Pod", "legacy", legacy), []byte(legacy))
	if len(m.Fixes) != 2 || strings.Contains(string(m.Object), `"drop"`) {
		t.Errorf("exempted namespace: %+v %s", m.Fixes, m.Object)
	}
	// A pod update is never fixed (its spec is immutable).
	if m, _ := set.Mutate(ctx, jsonRequest(t, "UPDATE", "Pod", "shop", plainPod), []byte(plainPod)); m.Object != nil {
		t.Errorf("pod update fixed: %s", m.Object)
	}
	// A compliant object: nothing to do.
	if m, _ := set.Mutate(ctx, req, []byte(plainPod)); m.Object == nil {
		t.Fatal("setup: the plain pod needs fixes")
	} else if m2, _ := set.Mutate(ctx, jsonRequest(t, "CREATE", "Pod", "shop", string(m.Object)), m.Object); m2.Object != nil || m2.Fixes != nil {
		t.Errorf("fixed twice: %+v", m2.Fixes)
	}
	// A Deployment's template, on update.
	dep := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop"},"spec":{"selector":{"matchLabels":{"app":"web"}},
"template":{"metadata":{"labels":{"app":"web"}},"spec":` + plainPod[strings.Index(plainPod, `"spec":`)+7:len(plainPod)-1] + `}}}`
	m, err = set.Mutate(ctx, jsonRequest(t, "UPDATE", "Deployment", "shop", dep), []byte(dep))
	if err != nil || len(m.Fixes) != 3 || !strings.Contains(string(m.Object), `"template":{"metadata":{"labels":{"app":"web"}},"spec":{"automountServiceAccountToken":false`) {
		t.Errorf("deployment: %v %+v %s", err, m.Fixes, m.Object)
	}
}

func TestMutateLoadErrors(t *testing.T) {
	l := newTestLoader(t)
	head := "apiVersion: bulwark.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: p\nspec:\n  mode: deny\n  configuration:\n"
	for _, tc := range []struct{ doc, want string }{
		{head + "    controls: [BW-K8S-0002]\n    mutate: [BW-K8S-0005]\n", `mutate: control "BW-K8S-0005" is not required`},
		{head + "    controls: [BW-K8S-0012]\n    mutate: [BW-K8S-0012]\n", "mutate: control BW-K8S-0012 has no automatic fix (fixable: BW-K8S-0001"},
		{head + "    hardening: true\n    mutate: [BW-K8S-0002, BW-K8S-0002]\n", "listed twice"},
		{head + "    hardening: true\n    mutate: BW-K8S-0002\n", "cannot unmarshal"},
	} {
		_, err := l.Load(context.Background(), Source{Name: "p.yaml", Data: []byte(tc.doc)})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "p.yaml:") {
			t.Errorf("%q: %v, want %q with a line", tc.doc, err, tc.want)
		}
	}
}

// TestMutatePasses: allowPrivilegeEscalation=false cannot be set on a
// privileged container; when the policy also fixes BW-K8S-0001, the
// second pass sets it.
func TestMutatePasses(t *testing.T) {
	set := loadYAML(t, newTestLoader(t), policyDoc("p", `  mode: deny
  configuration:
    controls: [BW-K8S-0001, BW-K8S-0002]
    mutate: [BW-K8S-0001, BW-K8S-0002]`))
	priv := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"a"},"spec":{"containers":[{"name":"c","image":"x",` +
		`"securityContext":{"privileged":true}}]}}`
	m, err := set.Mutate(context.Background(), jsonRequest(t, "CREATE", "Pod", "a", priv), []byte(priv))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Fix{{"p", "BW-K8S-0001"}, {"p", "BW-K8S-0002"}}, m.Fixes); diff != "" {
		t.Errorf("fixes (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(m.Object), `"securityContext":{"allowPrivilegeEscalation":false}`) {
		t.Errorf("fixed: %s", m.Object)
	}
	if d := set.Evaluate(context.Background(), jsonRequest(t, "CREATE", "Pod", "a", string(m.Object))); !d.Allowed {
		t.Errorf("still denied: %v", summary(d))
	}
}
