package celeval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apiserver/pkg/cel/environment"
)

// Variable names, as in ValidatingAdmissionPolicy.
const (
	VarObject          = "object"
	VarOldObject       = "oldObject"
	VarRequest         = "request"
	VarNamespaceObject = "namespaceObject"
	VarParams          = "params"
)

// DefaultCostLimit is the runtime cost budget of one evaluation. It is the
// per-expression limit Kubernetes applies to admission policies
// (k8s.io/apiserver/pkg/cel.PerCallLimit).
const DefaultCostLimit = 1_000_000

// MaxExpressionLength bounds what Compile accepts, like the API server's
// validation of policy expressions (5 KiB there; 10 KiB here for messages).
const MaxExpressionLength = 10 << 10

// ErrCompile is wrapped by every error Compile returns, so loaders can tell
// a bad expression from other failures.
var ErrCompile = errors.New("CEL compile")

// ErrEval is wrapped by every error Eval returns (no such key, cost budget
// exceeded, wrong result type at run time...).
var ErrEval = errors.New("CEL evaluation")

// Env is a compiled CEL environment. Create one and share it: building it
// costs milliseconds, compiling against it microseconds.
type Env struct {
	env       *cel.Env
	costLimit uint64
}

// Option configures NewEnv.
type Option func(*Env)

// WithCostLimit sets the runtime cost budget per evaluation.
func WithCostLimit(n uint64) Option { return func(e *Env) { e.costLimit = n } }

// NewEnv builds the environment: the Kubernetes base environment at the
// compatibility version of the k8s.io/apiserver release Bulwark is built
// with, plus the admission variables, all dynamically typed (Bulwark
// evaluates objects of any kind, including CRDs, without their schemas).
func NewEnv(opts ...Option) (*Env, error) {
	e := &Env{costLimit: DefaultCostLimit}
	for _, o := range opts {
		o(e)
	}
	set, err := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()).Extend(environment.VersionedOptions{
		IntroducedVersion: version.MajorMinor(1, 0),
		EnvOptions: []cel.EnvOption{
			cel.Variable(VarObject, cel.DynType),
			cel.Variable(VarOldObject, cel.DynType),
			cel.Variable(VarRequest, cel.DynType),
			cel.Variable(VarNamespaceObject, cel.DynType),
			cel.Variable(VarParams, cel.DynType),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("build CEL environment: %w", err)
	}
	env, err := set.Env(environment.NewExpressions)
	if err != nil {
		return nil, fmt.Errorf("build CEL environment: %w", err)
	}
	e.env = env
	return e, nil
}

// Program is a compiled expression.
type Program struct {
	expr string
	prg  cel.Program
	want *cel.Type
	// uses are the variables the checked expression refers to.
	uses map[string]bool
	// tops are, by variable, the top-level fields the expression selects
	// (see TopFields); a variable also used otherwise is in whole.
	tops  map[string]map[string]bool
	whole map[string]bool
	// folds is set when the expression has a comprehension (all, exists,
	// map, filter...): the only place cel-go checks its context for
	// cancellation.
	folds bool
}

// TopFields returns the top-level fields of variable name that the
// expression selects (name.field, has(name.field)), and all true when it
// may read more of it: when name is used other than through a field
// selection (name["field"], name.size(), passed to a function...). A
// value holding only those fields then evaluates exactly as the whole.
func (p *Program) TopFields(name string) (fields []string, all bool) {
	if p.whole[name] {
		return nil, true
	}
	for f := range p.tops[name] {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	return fields, false
}

// Uses says whether the expression refers to variable name (VarRequest,
// ...): callers skip building variables no expression reads.
func (p *Program) Uses(name string) bool { return p.uses[name] }

// String returns the source expression.
func (p *Program) String() string { return p.expr }

// Compile compiles a validation expression, which must yield a bool.
func (e *Env) Compile(expr string) (*Program, error) { return e.compile(expr, cel.BoolType) }

// CompileMessage compiles a message expression, which must yield a string.
func (e *Env) CompileMessage(expr string) (*Program, error) { return e.compile(expr, cel.StringType) }

func (e *Env) compile(expr string, want *cel.Type) (*Program, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, fmt.Errorf("%w: empty expression", ErrCompile)
	}
	if len(expr) > MaxExpressionLength {
		return nil, fmt.Errorf("%w: expression is %d bytes (limit %d)", ErrCompile, len(expr), MaxExpressionLength)
	}
	ast, iss := e.env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("%w: %s", ErrCompile, issues(iss))
	}
	if got := ast.OutputType(); !got.IsExactType(want) && !got.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("%w: expression yields %s, want %s", ErrCompile, got, want)
	}
	prg, err := e.env.Program(ast,
		cel.CostLimit(e.costLimit),
		cel.InterruptCheckFrequency(100),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCompile, err)
	}
	uses := map[string]bool{}
	for _, r := range ast.NativeRep().ReferenceMap() {
		if r != nil && len(r.OverloadIDs) == 0 && r.Value == nil {
			uses[r.Name] = true
		}
	}
	tops, whole := topFields(ast.NativeRep().Expr())
	folds := false
	celast.PreOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(x celast.Expr) {
		folds = folds || x.Kind() == celast.ComprehensionKind
	}))
	return &Program{expr: expr, prg: prg, want: want, uses: uses, tops: tops, whole: whole, folds: folds}, nil
}

// topFields finds, for each identifier of e, the fields selected on it,
// and the identifiers also used otherwise (whole). Identifiers are
// matched by name: a comprehension variable named like an admission
// variable only makes the answer larger, never wrong.
func topFields(e celast.Expr) (tops map[string]map[string]bool, whole map[string]bool) {
	tops, whole = map[string]map[string]bool{}, map[string]bool{}
	idents := map[string]int{}   // name -> occurrences
	selected := map[string]int{} // name -> occurrences as a select operand
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(x celast.Expr) {
		switch x.Kind() {
		case celast.IdentKind:
			idents[x.AsIdent()]++
		case celast.SelectKind:
			sel := x.AsSelect()
			if op := sel.Operand(); op.Kind() == celast.IdentKind {
				name := op.AsIdent()
				selected[name]++
				if tops[name] == nil {
					tops[name] = map[string]bool{}
				}
				tops[name][sel.FieldName()] = true
			}
		}
	}))
	for name, n := range idents {
		if selected[name] != n {
			whole[name] = true
		}
	}
	return tops, whole
}

// issues formats compile issues as "line:col: message" joined by "; ",
// without cel-go's multi-line source excerpts (callers add file context).
func issues(iss *cel.Issues) string {
	var b strings.Builder
	for i, e := range iss.Errors() {
		if i > 0 {
			b.WriteString("; ")
		}
		loc := e.Location
		if loc != nil && loc.Line() > 0 {
			fmt.Fprintf(&b, "%d:%d: ", loc.Line(), loc.Column()+1)
		}
		b.WriteString(e.Message)
	}
	return b.String()
}

// Vars are the values of the admission variables for one evaluation. Each
// is a JSON-shaped value (map[string]any, []any, string, int64, float64,
// bool, nil) — use ToValue to convert typed Kubernetes objects. A nil
// variable is CEL null, as for oldObject on CREATE.
type Vars struct {
	Object, OldObject, Request, NamespaceObject, Params any
}

type activation struct{ v *Vars }

func (a activation) ResolveName(name string) (any, bool) {
	switch name {
	case VarObject:
		return nullable(a.v.Object), true
	case VarOldObject:
		return nullable(a.v.OldObject), true
	case VarRequest:
		return nullable(a.v.Request), true
	case VarNamespaceObject:
		return nullable(a.v.NamespaceObject), true
	case VarParams:
		return nullable(a.v.Params), true
	}
	return nil, false
}

func (a activation) Parent() interpreter.Activation { return nil }

func nullable(v any) any {
	if v == nil {
		return types.NullValue
	}
	return v
}

// Eval evaluates a validation expression.
func (p *Program) Eval(ctx context.Context, vars Vars) (bool, error) {
	v, err := p.eval(ctx, vars)
	if err != nil {
		return false, err
	}
	b, ok := v.Value().(bool)
	if !ok {
		return false, fmt.Errorf("%w: %q yields %s, want bool", ErrEval, p.expr, v.Type().TypeName())
	}
	return b, nil
}

// EvalString evaluates a message expression.
func (p *Program) EvalString(ctx context.Context, vars Vars) (string, error) {
	v, err := p.eval(ctx, vars)
	if err != nil {
		return "", err
	}
	s, ok := v.Value().(string)
	if !ok {
		return "", fmt.Errorf("%w: %q yields %s, want string", ErrEval, p.expr, v.Type().TypeName())
	}
	return s, nil
}

func (p *Program) eval(ctx context.Context, vars Vars) (ref.Val, error) {
	// cel-go watches the context only in comprehension loops (the cost
	// limit bounds everything else): an expression without one evaluates
	// alike without it, and skips setting up the watch (a cancelable
	// child context and pooled state per evaluation).
	var out ref.Val
	var err error
	if p.folds {
		out, _, err = p.prg.ContextEval(ctx, activation{&vars})
	} else {
		out, _, err = p.prg.Eval(activation{&vars})
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEval, err)
	}
	return out, nil
}

// ToValue converts a typed Kubernetes object (or any JSON-marshalable
// value) into the JSON-shaped form Vars holds. Integers stay int64 so CEL
// sees `object.spec.replicas` as an int, as the API server does.
func ToValue(obj any) (any, error) {
	switch o := obj.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return o, nil
	case runtime.Object:
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return nil, fmt.Errorf("convert %T for CEL: %w", obj, err)
		}
		return m, nil
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("convert %T for CEL: %w", obj, err)
	}
	return FromJSON(raw)
}

// FromJSON decodes JSON into the form Vars holds (integers as int64).
func FromJSON(raw []byte) (any, error) {
	v, err := parseJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("decode JSON for CEL: %w", err)
	}
	return v, nil
}
