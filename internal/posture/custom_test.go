package posture

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/celeval"
)

func loadControls(t *testing.T, env *celeval.Env, path string) ([]CustomControl, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return LoadCustomControls(env, path, data)
}

func TestCustomControls(t *testing.T) {
	env, err := celeval.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := loadControls(t, env, "testdata/controls/org.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 4 {
		t.Fatalf("%d controls", len(cs))
	}
	in := decodeFiles(t, append(manifestFiles(t), "testdata/controls/widgets.yaml")...)
	rep := evaluate(t, Config{Custom: cs}, in)
	v := verdicts(rep)
	cases := []struct {
		key    string
		status Status
		msg    string
	}{
		{"Deployment/shop/shop-api ACME-0001", StatusFail, "Deployment shop-api has no owner label"},
		{"Deployment/shop/shop-api ACME-0002", StatusPass, ""},
		{"Deployment/default/legacy-web ACME-0002", StatusFail, "a single replica is a single point of failure"},
		{"Deployment/shop/shop-api ACME-0004", StatusPass, ""},
		{"Deployment/default/legacy-web ACME-0004", StatusFail, "Every container image comes from registry.example.com"},
		{"Widget/shop/small ACME-0003", StatusPass, ""},
		{"Widget/shop/unbounded ACME-0003", StatusFail, "widget unbounded size is unbounded"},
	}
	for _, c := range cases {
		r, ok := v[c.key]
		if !ok {
			t.Errorf("%s: no result", c.key)
			continue
		}
		if r.Status != c.status || !strings.Contains(r.Message, c.msg) {
			t.Errorf("%s: %s %q, want %s %q", c.key, r.Status, r.Message, c.status, c.msg)
		}
	}
	// A custom resource matched by a custom control is evaluated, not
	// skipped; the built-in controls still run on the Deployment.
	for _, s := range rep.Skipped {
		if s.Object.Kind == "Widget" {
			t.Errorf("Widget skipped: %s", s.Reason)
		}
	}
	if _, ok := v["Deployment/shop/shop-api BW-K8S-0001"]; !ok {
		t.Error("built-in controls did not run")
	}
	// Custom controls count in the frameworks they name.
	found := false
	for _, c := range rep.Controls {
		if c.ID == "ACME-0003" {
			found = true
			if fw := c.Frameworks(); len(fw) != 3 || fw[0] != FrameworkCIS || fw[1] != FrameworkMITRE {
				t.Errorf("ACME-0003 frameworks %v", fw)
			}
			if c.Custom == "" {
				t.Error("expression not in the report")
			}
		}
	}
	if !found {
		t.Error("ACME-0003 not in the report's controls")
	}
}

func TestCustomControlErrors(t *testing.T) {
	env, err := celeval.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		file, want string
	}{
		// The syntax error is on the second line of the block scalar that
		// starts on line 15: file line 16.
		{"testdata/controls/bad-syntax.yaml", "testdata/controls/bad-syntax.yaml:16: control ACME-0009: expression: CEL compile: column"},
		{"testdata/controls/bad-type.yaml", "testdata/controls/bad-type.yaml:6: control ACME-0010: expression: CEL compile: expression yields string, want bool"},
	}
	for _, c := range cases {
		_, err := loadControls(t, env, c.file)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || !errors.Is(err, celeval.ErrCompile) {
			t.Errorf("%s: %v; want prefix %q wrapping ErrCompile", c.file, err, c.want)
		}
	}
	for _, bad := range []struct{ doc, want string }{
		{"kind: Control\nid: X\ntitle: t\nseverity: low\nexpression: 'true'\n", "x.yaml:1: control X has no match.kinds"},
		{"kind: Control\nid: BW-K8S-9999\ntitle: t\nseverity: low\nmatch: {kinds: [Pod]}\nexpression: 'true'\n", "BW- prefix"},
		{"kind: Control\nid: X\ntitle: t\nseverity: urgent\nmatch: {kinds: [Pod]}\nexpression: 'true'\n", "x.yaml:4: control X: severity"},
		{"kind: Policy\nid: X\n", "kind \"Policy\""},
		{"kind: Control\nid: X\ntitle: t\nseverity: low\nmatch: {kinds: [Pod]}\nexpression: 'true'\n---\nkind: Control\nid: X\ntitle: t\nseverity: low\nmatch: {kinds: [Pod]}\nexpression: 'true'\n", "x.yaml:8: duplicate control id X"},
		{"kind: Control\nid: [\n", "x.yaml"},
	} {
		_, err := LoadCustomControls(env, "x.yaml", []byte(bad.doc))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v; want %q", bad.doc, err, bad.want)
		}
	}
}
