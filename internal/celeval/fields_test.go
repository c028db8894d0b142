package celeval

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTopFields(t *testing.T) {
	env := newEnv(t)
	cases := []struct {
		expr   string
		fields []string
		all    bool
	}{
		{`has(object.metadata.labels) && 'team' in object.metadata.labels`, []string{"metadata"}, false},
		{`object.spec.replicas > 1 || object.metadata.name == "x"`, []string{"metadata", "spec"}, false},
		{`object.spec.template.spec.containers.all(c, c.image.startsWith("r/"))`, []string{"spec"}, false},
		{`has(object.status)`, []string{"status"}, false},
		{`request.operation == "CREATE"`, nil, false},
		// Uses of the whole value.
		{`object.size() > 0`, nil, true},
		{`object["metadata"].name == "x"`, nil, true},
		{`object != null && object.metadata.name == "x"`, nil, true},
		{`"spec" in object`, nil, true},
		{`object.?spec.hasValue()`, nil, true},
		{`[object].all(o, has(o.spec))`, nil, true},
		{`object.all(k, k != "x")`, nil, true},
		// A comprehension variable named like the admission variable is
		// counted with it: the answer is larger, never wrong.
		{`[1].all(object, object > 0) && object.metadata.name == "x"`, nil, true},
	}
	for _, c := range cases {
		p, err := env.Compile(c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		fields, all := p.TopFields(VarObject)
		if all != c.all || !reflect.DeepEqual(fields, c.fields) {
			t.Errorf("%s: TopFields = %v, %v; want %v, %v", c.expr, fields, all, c.fields, c.all)
		}
	}
}

// TestPrunedObjectEvaluatesAlike evaluates expressions over the whole
// committed Deployment and over the object built with only the fields
// TopFields names: every result and error must be the same.
func TestPrunedObjectEvaluatesAlike(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "deployment.json"))
	if err != nil {
		t.Fatal(err)
	}
	env := newEnv(t)
	exprs := []string{
		`has(object.metadata.labels) && 'team' in object.metadata.labels`,
		`object.metadata.name == "web"`,
		`object.spec.template.spec.containers.all(c, !c.image.endsWith(":latest"))`,
		`object.spec.replicas >= 3`,
		`object.status.readyReplicas > 0`, // no such key: an error both ways
		`has(object.status)`,
		`object.nosuch.x == 1`,
		`object.size() > 2`,
		`object.kind == "Deployment" && object.apiVersion.startsWith("apps/")`,
	}
	var jp JSONPool
	for _, e := range exprs {
		p, err := env.Compile(e)
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		whole, err := FromJSON(raw)
		if err != nil {
			t.Fatal(err)
		}
		fields, all := p.TopFields(VarObject)
		var keep map[string]bool
		if !all {
			keep = map[string]bool{}
			for _, f := range fields {
				keep[f] = true
			}
		}
		pruned, release, err := jp.FromJSONFields(raw, keep)
		if err != nil {
			t.Fatal(err)
		}
		if !all && len(pruned.(map[string]any)) >= len(whole.(map[string]any)) && len(fields) < 3 {
			t.Errorf("%s: pruned object has %d fields, whole %d", e, len(pruned.(map[string]any)), len(whole.(map[string]any)))
		}
		wantOK, wantErr := p.Eval(context.Background(), Vars{Object: whole})
		gotOK, gotErr := p.Eval(context.Background(), Vars{Object: pruned})
		release()
		if wantOK != gotOK || (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
			t.Errorf("%s: whole %v %v, pruned %v %v", e, wantOK, wantErr, gotOK, gotErr)
		}
	}
}

// FuzzFromJSONFields holds FromJSONFields to FromJSON: the same error
// (message included) on every input, and on success the whole value
// restricted to the named top-level fields.
func FuzzFromJSONFields(f *testing.F) {
	for _, s := range fromJSONSeeds {
		if len(s) < 1000 {
			f.Add([]byte(s), "metadata")
		}
	}
	f.Add([]byte(`{"a":1,"b":{"c":[1,"\u00e9\ud83d\ude00",{"d":null}]},"a":{"x":2}}`), "a")
	f.Add([]byte(`{"spec":{"x":"\uD800\uZZZZ"},"metadata":{}}`), "metadata")
	f.Add([]byte(`{"spec":[1e5,-0.5,{"k":"v\u0001"}],"metadata":{"n":"\x01"}}`), "metadata")
	f.Fuzz(func(t *testing.T, in []byte, field string) {
		keep := map[string]bool{field: true}
		want, werr := FromJSON(in)
		var jp JSONPool
		for range 2 { // the second time into recycled maps
			got, release, gerr := jp.FromJSONFields(in, keep)
			if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
				t.Fatalf("%.80q: FromJSON error %v, FromJSONFields error %v", in, werr, gerr)
			}
			if werr == nil {
				exp := want
				if m, ok := want.(map[string]any); ok {
					exp = map[string]any{}
					if v, ok := m[field]; ok {
						exp.(map[string]any)[field] = v
					}
				}
				if !reflect.DeepEqual(exp, got) {
					t.Fatalf("%.80q (-want +got):\n%s", in, cmp.Diff(exp, got))
				}
			}
			release()
		}
	})
}

// TestEvalWithoutComprehensionIgnoresContext: cel-go looks at the context
// only in comprehension loops, so an expression without one (evaluated
// without the context's watch) gives the same answer under a cancelled
// context as ContextEval always did; one with a comprehension is still
// interrupted (TestEvalErrors).
func TestEvalWithoutComprehensionIgnoresContext(t *testing.T) {
	env := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for expr, want := range map[string]bool{
		`object.metadata.name == "web"`:                                       true,
		`has(object.metadata.labels) && 'team' in object.metadata.labels`:     false,
		`object.spec.containers[0].image.startsWith("registry.example.com/")`: true,
	} {
		p, err := env.Compile(expr)
		if err != nil {
			t.Fatal(err)
		}
		if p.folds {
			t.Fatalf("%s: counted as a comprehension", expr)
		}
		got, err := p.Eval(ctx, Vars{Object: pod(t)})
		if err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", expr, got, err, want)
		}
	}
	p, err := env.Compile(`object.spec.containers.all(c, c.name != "")`)
	if err != nil {
		t.Fatal(err)
	}
	if !p.folds {
		t.Error("all() not counted as a comprehension")
	}
}
