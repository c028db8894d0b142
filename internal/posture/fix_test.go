package posture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite golden files")

// newEvalDecoder is a default evaluator and decoder.
func newEvalDecoder(t *testing.T) (*Evaluator, *Decoder) {
	t.Helper()
	ev, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDecoder(Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return ev, dec
}

func fixFile(t *testing.T, path string, controls []string) *FixedFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ev, dec := newEvalDecoder(t)
	f, err := Fix(context.Background(), ev, dec, path, data, controls)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, d)
	}
}

// TestFixGolden fixes a Helm-style chart: comments and key order survive,
// untouched documents stay byte for byte, and the fixed output passes the
// controls whose patches were applied.
func TestFixGolden(t *testing.T) {
	const src = "testdata/fix/chart.yaml"
	f := fixFile(t, src, nil)
	golden(t, "testdata/fix/chart.yaml.golden", f.After)
	golden(t, "testdata/fix/chart.yaml.diff", []byte(f.Diff()))
	if !f.Changed() || len(f.Applied) == 0 {
		t.Fatal("nothing fixed")
	}
	after := string(f.After)
	// Comments survive, except those on lines a fix removes (hostPID,
	// privileged).
	for _, c := range []string{"# Source: shop/templates/deployment.yaml", "# the storefront", "# Pod-level settings come from .Values.podSecurityContext",
		"# Values from .Values.securityContext (empty by default)", "# TODO(ops): move behind the VPN", "# Source: shop/templates/node-agent.yaml"} {
		if !strings.Contains(after, c) {
			t.Errorf("comment %q lost", c)
		}
	}
	// The ServiceAccount document had nothing to fix: byte for byte.
	before := string(f.Before)
	sa := before[:strings.Index(before, "# Source: shop/templates/deployment.yaml")]
	if !strings.HasPrefix(after, sa) {
		t.Errorf("untouched document changed:\n%s", after[:len(sa)])
	}
	// Key order: metadata still precedes spec, name precedes image.
	if strings.Index(after, "name: shop-web # the storefront") > strings.Index(after, "replicas: 2") {
		t.Error("key order changed")
	}

	// The fixed file passes every applied control on the fixed object.
	applied := map[string]bool{}
	for _, a := range f.Applied {
		applied[a.Object.String()+" "+a.Control] = true
	}
	dec, _ := NewDecoder(Limits{})
	var in Decoded
	if err := dec.Decode(context.Background(), "fixed.yaml", bytes.NewReader(f.After), &in); err != nil || len(in.Errors) > 0 {
		t.Fatalf("fixed output does not decode: %v %v", err, in.Errors)
	}
	rep := evaluate(t, Config{}, &in)
	checked := 0
	for _, r := range rep.Results {
		key := rep.Objects[r.Object].String() + " " + r.Control
		if applied[key] {
			checked++
			if r.Status != StatusPass {
				t.Errorf("%s after fix: %s %q", key, r.Status, r.Message)
			}
		}
	}
	if checked != len(applied) {
		t.Errorf("re-checked %d of %d applied fixes", checked, len(applied))
	}
	for _, want := range []string{"Deployment/shop-web BW-K8S-0001", "Deployment/shop-web BW-K8S-0002", "Deployment/shop-web BW-K8S-0005",
		"Deployment/shop-web BW-K8S-0006", "Service/shop-postgresql BW-K8S-0040", "DaemonSet/shop-node-agent BW-K8S-0008",
		"DaemonSet/shop-node-agent BW-K8S-0011"} {
		if !applied[want] {
			t.Errorf("%s not applied", want)
		}
	}
}

func TestFixChosenControls(t *testing.T) {
	f := fixFile(t, "testdata/fix/chart.yaml", []string{"BW-K8S-0040"})
	if len(f.Applied) != 1 || f.Applied[0].Control != "BW-K8S-0040" {
		t.Fatalf("applied %+v", f.Applied)
	}
	d := f.Diff()
	if !strings.Contains(d, "-  type: LoadBalancer # TODO(ops): move behind the VPN") || !strings.Contains(d, "+  type: ClusterIP # TODO(ops): move behind the VPN") {
		t.Errorf("diff:\n%s", d)
	}
	if strings.Count(d, "\n+") != 2 { // "+++ b/..." and the one changed line
		t.Errorf("more than one line changed:\n%s", d)
	}
}

func TestFixRefusesUnparsable(t *testing.T) {
	data, err := os.ReadFile("testdata/fix/broken.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := New(Config{})
	dec, _ := NewDecoder(Limits{})
	_, err = Fix(context.Background(), ev, dec, "broken.yaml", data, nil)
	if !errors.Is(err, ErrUnfixable) {
		t.Fatalf("err %v, want ErrUnfixable", err)
	}
	js := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"hostPID":true,"containers":[{"name":"c","image":"x:1"}]}}`)
	if _, err := Fix(context.Background(), ev, dec, "pod.json", js, nil); !errors.Is(err, ErrUnfixable) {
		t.Fatalf("JSON: err %v, want ErrUnfixable", err)
	}
}

func TestApplyOpMerge(t *testing.T) {
	cases := []struct {
		name string
		in   string
		ops  []PatchOp
		want string
	}{
		{"two adds of the same parent merge", "c: {}\n", []PatchOp{
			{Op: "add", Path: "/c/securityContext", Value: map[string]any{"a": false}},
			{Op: "add", Path: "/c/securityContext", Value: map[string]any{"b": true}}}, "c: {securityContext: {a: false, b: true}}\n"},
		{"remove missing is a no-op", "a: 1\n", []PatchOp{{Op: "remove", Path: "/x/y"}}, "a: 1\n"},
		{"append and escape", "l: [x]\nk~/: 1\n", []PatchOp{{Op: "add", Path: "/l/-", Value: "y"}, {Op: "replace", Path: "/k~0~1", Value: 2}}, "l: [x, y]\nk~/: 2\n"},
		{"remove index", "l: [a, b, c]\n", []PatchOp{{Op: "remove", Path: "/l/1"}}, "l: [a, c]\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var root, want map[string]any
			n := parseNode(t, c.in)
			for _, op := range c.ops {
				if err := applyOp(n, op); err != nil {
					t.Fatal(err)
				}
			}
			if err := n.Decode(&root); err != nil {
				t.Fatal(err)
			}
			if err := parseNode(t, c.want).Decode(&want); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, root); d != "" {
				t.Error(d)
			}
		})
	}
	if err := applyOp(parseNode(t, "a: 1\n"), PatchOp{Op: "add", Path: "/a/b", Value: 1}); err == nil {
		t.Error("add below a scalar: no error")
	}
}

func parseNode(t *testing.T, s string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(s), &n); err != nil {
		t.Fatal(err)
	}
	return n.Content[0]
}

func TestFixListItems(t *testing.T) {
	data := []byte(`# kubectl get pods -o yaml
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a}
  spec:
    containers: [{name: c, image: "registry.example.com/a:1"}]
- apiVersion: v1
  kind: Pod
  metadata: {name: b}
  spec:
    hostPID: true # debugging
    containers: [{name: c, image: "registry.example.com/b:1"}]
`)
	ev, _ := New(Config{})
	dec, _ := NewDecoder(Limits{})
	f, err := Fix(context.Background(), ev, dec, "list.yaml", data, []string{"BW-K8S-0008"})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Applied) != 1 || f.Applied[0].Ops[0].Path != "/items/1/spec/hostPID" {
		t.Fatalf("applied %+v", f.Applied)
	}
	if strings.Contains(string(f.After), "hostPID") || !strings.Contains(string(f.After), "# kubectl get pods -o yaml") {
		t.Errorf("after:\n%s", f.After)
	}
}

// badPodJSON fails every fixable control (and others without a fix).
const badPodJSON = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad","namespace":"default"},
"spec":{"hostNetwork":true,"hostPID":true,"hostIPC":true,
 "volumes":[{"name":"root","hostPath":{"path":"/"}}],
 "containers":[{"name":"app","image":"nginx:latest",
  "securityContext":{"privileged":true,"runAsUser":0,"capabilities":{"add":["SYS_ADMIN","NET_RAW"]}},
  "ports":[{"containerPort":80,"hostPort":8080}],
  "env":[{"name":"PASSWORD","value":"hunter2"}]}]}}`

// evalJSON evaluates one object given as JSON.
func evalJSON(t *testing.T, obj []byte) *Report {
	t.Helper()
	ev, dec := newEvalDecoder(t)
	var in Decoded
	if err := dec.Decode(context.Background(), "pod.json", bytes.NewReader(obj), &in); err != nil || len(in.Errors) > 0 {
		t.Fatalf("decode: %v %v", err, in.Errors)
	}
	rep, err := ev.Evaluate(context.Background(), &in)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestFixableControls keeps Fixable honest: on a pod failing them all, no
// other control offers a patch, every fixable one does (in the first pass,
// or once the control it depends on is fixed), and after the passes
// PatchJSON yields an object that passes every one of them.
func TestFixableControls(t *testing.T) {
	obj := []byte(badPodJSON)
	offered := map[string]bool{}
	for range fixPasses {
		var patches [][]PatchOp
		for _, r := range evalJSON(t, obj).Results {
			if r.Status != StatusFail {
				continue
			}
			if len(r.Patch) > 0 && !Fixable(r.Control) {
				t.Errorf("%s offers a patch but is not listed as fixable: %v", r.Control, r.Patch)
			}
			if len(r.Patch) > 0 {
				offered[r.Control] = true
				patches = append(patches, r.Patch)
			}
		}
		if len(patches) == 0 {
			break
		}
		var err error
		if obj, err = PatchJSON(obj, patches...); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range FixableControls() {
		if !offered[id] {
			t.Errorf("%s is listed as fixable but offered no patch", id)
		}
	}
	for _, r := range evalJSON(t, obj).Results {
		if r.Status == StatusFail && Fixable(r.Control) {
			t.Errorf("%s still fails after the fixes: %s", r.Control, r.Message)
		}
	}
	if !bytes.Contains(obj, []byte(`"image":"nginx:latest"`)) || !bytes.Contains(obj, []byte(`"hunter2"`)) {
		t.Errorf("the fix changed what it should not: %s", obj)
	}
}

func TestPatchJSONErrors(t *testing.T) {
	for _, in := range []string{``, `[1,2]`, `"x"`, `{"a":`, "{\"a\": !!binary x}"} {
		if _, err := PatchJSON([]byte(in), []PatchOp{{Op: "add", Path: "/b", Value: 1}}); err == nil {
			t.Errorf("PatchJSON(%q): no error", in)
		}
	}
	if _, err := PatchJSON([]byte(`{"a":1}`), []PatchOp{{Op: "add", Path: "/a/0/b", Value: 1}}); err == nil {
		t.Errorf("patch through a scalar: no error")
	}
}

// FuzzPatchJSON: the mutating webhook patches objects the API server sent;
// whatever the object, PatchJSON returns an error or a JSON object, never
// panics.
func FuzzPatchJSON(f *testing.F) {
	f.Add([]byte(badPodJSON), "/spec/containers/0/securityContext", "add")
	f.Add([]byte(`{"spec":{"containers":[]}}`), "/spec/containers/0/securityContext/privileged", "remove")
	f.Add([]byte(`{"a":[1,2,{"b":null}]}`), "/a/2/b/c", "replace")
	f.Add([]byte(`{"a":"\u00e9\t"}`), "/a~1b", "add")
	f.Fuzz(func(t *testing.T, obj []byte, path, op string) {
		out, err := PatchJSON(obj, []PatchOp{{Op: op, Path: path, Value: map[string]any{"x": false}}})
		if err != nil {
			return
		}
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("not a JSON object: %s", out)
		}
	})
}
