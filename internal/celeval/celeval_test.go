package celeval

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func newEnv(t testing.TB) *Env {
	t.Helper()
	env, err := NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func pod(t testing.TB) any {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			HostNetwork: true,
			Containers: []corev1.Container{
				{Name: "app", Image: "registry.example.com/web:1.2", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}},
				{Name: "sidecar", Image: "docker.io/library/nginx:latest"},
			},
		},
	}
	v, err := ToValue(p)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEval(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	obj := pod(t)
	ns, err := FromJSON([]byte(`{"metadata":{"name":"shop","labels":{"env":"prod"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	vars := Vars{
		Object:          obj,
		NamespaceObject: ns,
		Request:         map[string]any{"operation": "CREATE", "userInfo": map[string]any{"username": "alice"}},
		Params:          map[string]any{"maxPort": int64(9000)},
	}
	cases := []struct {
		expr string
		want bool
	}{
		{`object.spec.hostNetwork == true`, true},
		{`object.spec.containers.all(c, !c.image.endsWith(":latest"))`, false},
		{`object.spec.containers.exists(c, c.image.startsWith("registry.example.com/"))`, true},
		{`object.spec.containers[0].ports[0].containerPort < params.maxPort`, true},
		{`has(object.spec.securityContext) && has(object.spec.securityContext.runAsNonRoot)`, false},
		{`oldObject == null`, true},
		{`namespaceObject.metadata.labels.env == "prod"`, true},
		{`request.operation in ["CREATE", "UPDATE"] && request.userInfo.username != "system:admin"`, true},
		{`object.metadata.labels.app.matches("^w.b$")`, true},                      // Kubernetes regex library
		{`isQuantity("500m") && quantity("500m").isLessThan(quantity("1"))`, true}, // Kubernetes quantity library
		{`object.spec.containers.map(c, c.name).sort() == ["app", "sidecar"]`, true},
	}
	for _, c := range cases {
		prg, err := env.Compile(c.expr)
		if err != nil {
			t.Errorf("Compile(%q): %v", c.expr, err)
			continue
		}
		got, err := prg.Eval(ctx, vars)
		if err != nil {
			t.Errorf("Eval(%q): %v", c.expr, err)
			continue
		}
		if got != c.want {
			t.Errorf("Eval(%q) = %v, want %v", c.expr, got, c.want)
		}
	}

	msg, err := env.CompileMessage(`"container " + object.spec.containers[1].name + " uses a mutable tag"`)
	if err != nil {
		t.Fatal(err)
	}
	s, err := msg.EvalString(ctx, vars)
	if err != nil || s != "container sidecar uses a mutable tag" {
		t.Errorf("EvalString = %q, %v", s, err)
	}
}

func TestCompileErrors(t *testing.T) {
	env := newEnv(t)
	cases := []struct{ expr, want string }{
		{``, "empty expression"},
		{`object.spec.`, "1:"},
		{"true &&\n  undefinedVar", "2:3: undeclared reference to 'undefinedVar'"},
		{`"a string"`, "yields string, want bool"},
		{`object.spec.containers.size() +`, "Syntax error"},
		{strings.Repeat("x", MaxExpressionLength+1), "limit"},
	}
	for _, c := range cases {
		_, err := env.Compile(c.expr)
		if err == nil {
			t.Errorf("Compile(%.40q): no error", c.expr)
			continue
		}
		if !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Compile(%.40q) = %v, want ErrCompile containing %q", c.expr, err, c.want)
		}
	}
	if _, err := env.CompileMessage(`1 + 2`); err == nil || !strings.Contains(err.Error(), "want string") {
		t.Errorf("CompileMessage(int) = %v", err)
	}
}

func TestEvalErrors(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	obj := pod(t)

	// A missing key is an error, not a silent false: callers decide.
	prg, err := env.Compile(`object.spec.nodeName == "x"`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prg.Eval(ctx, Vars{Object: obj}); !errors.Is(err, ErrEval) {
		t.Errorf("missing key: err = %v, want ErrEval", err)
	}

	// A dyn expression that turns out not to be a bool.
	prg, err = env.Compile(`object.metadata.name`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prg.Eval(ctx, Vars{Object: obj}); !errors.Is(err, ErrEval) || !strings.Contains(err.Error(), "want bool") {
		t.Errorf("non-bool result: err = %v", err)
	}

	// A runaway expression stops at the cost budget.
	small, err := NewEnv(WithCostLimit(1000))
	if err != nil {
		t.Fatal(err)
	}
	big := make([]any, 5000)
	for i := range big {
		big[i] = int64(i)
	}
	prg, err = small.Compile(`object.all(x, object.all(y, x + y >= 0))`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prg.Eval(ctx, Vars{Object: big}); !errors.Is(err, ErrEval) || !strings.Contains(err.Error(), "cost") {
		t.Errorf("cost budget: err = %v", err)
	}

	// A cancelled context interrupts evaluation.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	prg, err = env.Compile(`object.all(x, object.all(y, x + y >= 0))`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prg.Eval(cctx, Vars{Object: big}); err == nil {
		t.Error("cancelled context: no error")
	}
}

func TestFromJSONKeepsIntegers(t *testing.T) {
	v, err := FromJSON([]byte(`{"a":3,"b":2.5,"c":[1,{"d":-7}]}`))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if _, ok := m["a"].(int64); !ok {
		t.Errorf("a is %T", m["a"])
	}
	if _, ok := m["b"].(float64); !ok {
		t.Errorf("b is %T", m["b"])
	}
	if d := m["c"].([]any)[1].(map[string]any)["d"]; d != int64(-7) {
		t.Errorf("d = %#v", d)
	}
	if _, err := FromJSON([]byte(`{"a":`)); err == nil {
		t.Error("truncated JSON: no error")
	}
}

func FuzzCompileEval(f *testing.F) {
	for _, s := range []string{
		`object.spec.hostNetwork == true`,
		`object.spec.containers.all(c, !c.image.endsWith(":latest"))`,
		`has(object.metadata.labels) && "app" in object.metadata.labels`,
		`object.metadata.name.matches("[")`,
		`quantity("1Gi").isGreaterThan(quantity("x"))`,
		`[1,2,3].map(x, x * 1000000000000).sum() > 0`,
	} {
		f.Add(s)
	}
	env := newEnv(f)
	obj := pod(f)
	f.Fuzz(func(t *testing.T, expr string) {
		prg, err := env.Compile(expr)
		if err != nil {
			if !errors.Is(err, ErrCompile) {
				t.Fatalf("Compile error does not wrap ErrCompile: %v", err)
			}
			return
		}
		if _, err := prg.Eval(context.Background(), Vars{Object: obj}); err != nil && !errors.Is(err, ErrEval) {
			t.Fatalf("Eval error does not wrap ErrEval: %v", err)
		}
	})
}

func BenchmarkEval(b *testing.B) {
	env := newEnv(b)
	obj := pod(b)
	prg, err := env.Compile(`object.spec.containers.all(c, !c.image.endsWith(":latest") && c.image.startsWith("registry.example.com/"))`)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	vars := Vars{Object: obj}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := prg.Eval(ctx, vars); err != nil {
			b.Fatal(err)
		}
	}
}
