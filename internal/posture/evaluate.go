package posture

import (
	"context"
	"fmt"
	"path"
	"sort"
	"time"

	"github.com/bulwark-security/bulwark/internal/celeval"
	"github.com/bulwark-security/bulwark/internal/vulndb"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/pod-security-admission/api"
)

// Config tunes the controls that depend on the organisation.
type Config struct {
	// AllowedHostPaths are host paths (and everything below them) that
	// BW-K8S-0011 accepts.
	AllowedHostPaths []string
	// TrustedRegistries are repository prefixes ("registry.example.com",
	// "ghcr.io/acme"); images are normalized first, so "nginx" is
	// "docker.io/library/nginx". Empty skips BW-K8S-0018.
	TrustedRegistries []string
	// PSSVersion is the Pod Security Standards version ("latest", "v1.35").
	PSSVersion string
	// Exceptions accept known failures until they expire.
	Exceptions []Exception
	// Now is the clock for exception expiry; time.Now when nil.
	Now func() time.Time
	// Custom are the organisation's CEL controls, evaluated after the
	// catalogue on the objects of the kinds they match.
	Custom []CustomControl
	// SkipScores leaves Report.Frameworks and Report.Namespaces empty.
	// The admission webhook judges one object per request and reads only
	// its results: scoring was half of the evaluation's cost there.
	SkipScores bool
	// Only, when not empty, restricts Evaluate to these catalogue controls
	// (ids; custom controls always run): the others are neither checked
	// nor listed in Results. The admission webhook judges one object per
	// request against the few controls its policies name, and a result
	// for every control of the catalogue was a fifth of a review's
	// garbage. Objects' PSSLevel is computed only when every upstream
	// Pod Security Standards control is included; namespace and subject
	// targets are listed only when a control of theirs is.
	Only []string
	// FailuresOnly leaves passed and skipped results out of Results (the
	// failed and excepted ones stay): for callers that act on failures
	// only, like the admission webhook, where allowed requests then build
	// no results at all.
	FailuresOnly bool
}

// Exception accepts the failures of one control on the objects its
// selector matches (Kind, Namespace, Name are path.Match globs; empty
// matches all) until Expires.
type Exception struct {
	Control   string    `yaml:"control" json:"control"`
	Kind      string    `yaml:"kind,omitempty" json:"kind,omitempty"`
	Namespace string    `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	Name      string    `yaml:"name,omitempty" json:"name,omitempty"`
	Reason    string    `yaml:"reason" json:"reason"`
	Expires   time.Time `yaml:"expires" json:"expires"`
}

func (e *Exception) matches(control string, r *ObjectRef) bool {
	return e.Control == control && glob(e.Kind, r.Kind) && glob(e.Namespace, r.Namespace) && glob(e.Name, r.Name)
}

func glob(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

// Result is the verdict of one control on one object.
type Result struct {
	Control  string          `json:"control"`
	Object   int             `json:"object"` // index into Report.Objects
	Status   Status          `json:"status"`
	Severity vulndb.Severity `json:"severity"`
	Message  string          `json:"message,omitempty"`
	Patch    []PatchOp       `json:"patch,omitempty"`
	// Exception is the reason of the exception that accepted a failure.
	Exception string `json:"exception,omitempty"`

	ci int // index of the control in the catalogue
}

// Detail is one problem of a failed Result (see Report.Details).
type Detail struct {
	// Container is the container's name, empty for a problem of the pod
	// or object as a whole; ContainerKind is containers, initContainers
	// or ephemeralContainers.
	Container, ContainerKind string
	Image                    string
	Message                  string
	// Problem is Message without the leading container label
	// (`container "app" `) when it has one: for callers naming the
	// container themselves.
	Problem string
}

// Score is passed/total weighted by severity for one framework or namespace;
// see ScoreFormula.
type Score struct {
	Name     string  `json:"name"`
	Score    float64 `json:"score"` // 0..100; 100 when nothing was evaluated
	Passed   int     `json:"passed"`
	Failed   int     `json:"failed"`
	Excepted int     `json:"excepted"`
	Skipped  int     `json:"skipped"`
}

// ScoreFormula documents how Score.Score is computed.
const ScoreFormula = "score = 100 × Σw(passed) / Σw(passed + failed), w = 1 low, 2 medium, 4 high, 8 critical; skipped and excepted results count in neither sum"

func weight(s vulndb.Severity) float64 {
	switch s {
	case vulndb.SeverityCritical:
		return 8
	case vulndb.SeverityHigh:
		return 4
	case vulndb.SeverityMedium:
		return 2
	}
	return 1
}

// Report is the outcome of one evaluation.
type Report struct {
	Catalogue  string        `json:"catalogueVersion"`
	PSSVersion string        `json:"pssVersion"`
	Controls   []Control     `json:"controls"`
	Objects    []ObjectRef   `json:"objects"`
	Results    []Result      `json:"results"`
	Skipped    []Skip        `json:"skipped,omitempty"`
	Errors     []DecodeError `json:"errors,omitempty"`
	Frameworks []Score       `json:"frameworks"`
	Namespaces []Score       `json:"namespaces"`
	// Unavailable names the kinds that could not be read (cluster mode:
	// the list was forbidden) and why; controls that need them are skipped.
	Unavailable map[string]string `json:"unavailable,omitempty"`
	// ExpiredExceptions were configured but no longer apply.
	ExpiredExceptions []Exception `json:"expiredExceptions,omitempty"`

	// details of failed results by index in Results (see Details): a
	// side table, so that the many passing results cost nothing more.
	details map[int][]Detail
}

// Details are the problems of failed result Results[i] one by one (its
// Message joins them with "; "), each with the container it is about, so
// that callers attributing failures to containers (the admission policy's
// per-container violations) need not parse Message. Nil for a result of a
// single problem of the object as a whole, then Message is that problem,
// and for a report decoded from JSON (where Message carries the same
// text). Indexes are those of Results as Evaluate returned it: reordering
// or filtering Results detaches them.
func (r *Report) Details(i int) []Detail { return r.details[i] }

// Failed counts failures at or above min.
func (r *Report) Failed(min vulndb.Severity) int {
	n := 0
	for i := range r.Results {
		if r.Results[i].Status == StatusFail && r.Results[i].Severity >= min {
			n++
		}
	}
	return n
}

// Evaluator runs the catalogue. It is safe for concurrent use.
type Evaluator struct {
	cfg      Config
	controls []Control
	pss      []pssCheck
	pssFirst int // index of the first PSS control in controls
	// customFirst is the index of the first custom control in controls;
	// custom[i] is controls[customFirst+i].
	customFirst int
	custom      []CustomControl
	// byScope lists, per scope of a target, the controls that apply.
	byScope map[scope][]int
	// pssAll says every upstream check runs (Config.Only may leave some
	// out), so that a pod's PSS level can be computed.
	pssAll  bool
	byID    map[string]int
	active  []Exception
	expired []Exception
	version api.Version
	// refs keeps parsed image references between evaluations.
	refs *refCache
}

// New builds the catalogue for cfg.
func New(cfg Config) (*Evaluator, error) {
	if cfg.PSSVersion == "" {
		cfg.PSSVersion = "latest"
	}
	v, err := api.ParseVersion(cfg.PSSVersion)
	if err != nil {
		return nil, fmt.Errorf("new evaluator: pss version %q: %w", cfg.PSSVersion, err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Evaluator{cfg: cfg, version: v, byID: map[string]int{}, refs: &refCache{}}
	e.controls = bulwarkControls()
	e.pss = resolvePSS(v)
	e.pssFirst = len(e.controls)
	e.controls = append(e.controls, pssControls(e.pss)...)
	e.customFirst = len(e.controls)
	e.custom = cfg.Custom
	for _, c := range cfg.Custom {
		e.controls = append(e.controls, c.Control)
	}
	for i, c := range e.controls {
		if _, dup := e.byID[c.ID]; dup {
			return nil, fmt.Errorf("new evaluator: duplicate control %s", c.ID)
		}
		e.byID[c.ID] = i
	}
	var only map[string]bool
	if len(cfg.Only) > 0 {
		only = make(map[string]bool, len(cfg.Only))
		for _, id := range cfg.Only {
			if _, ok := e.byID[id]; !ok {
				return nil, fmt.Errorf("new evaluator: unknown control %q in Only", id)
			}
			only[id] = true
		}
	}
	e.byScope = map[scope][]int{}
	e.pssAll = true
	for ci := range e.controls[:e.customFirst] {
		c := &e.controls[ci]
		if only != nil && !only[c.ID] {
			if ci >= e.pssFirst {
				e.pssAll = false
			}
			continue
		}
		e.byScope[c.scope] = append(e.byScope[c.scope], ci)
	}
	now := cfg.Now()
	for _, x := range cfg.Exceptions {
		if _, ok := e.byID[x.Control]; !ok {
			return nil, fmt.Errorf("new evaluator: exception for unknown control %q", x.Control)
		}
		if now.After(x.Expires) {
			e.expired = append(e.expired, x)
		} else {
			e.active = append(e.active, x)
		}
	}
	return e, nil
}

// Controls is the catalogue, Bulwark's controls first, then one per
// upstream Pod Security Standards check.
func (e *Evaluator) Controls() []Control { return e.controls }

var clusterScoped = map[string]bool{"ClusterRole": true, "ClusterRoleBinding": true, "Namespace": true, "User": true, "Group": true}

// Evaluate runs every control on every object of in. Objects no control
// applies to are listed in Report.Skipped with the reason.
func (e *Evaluator) Evaluate(ctx context.Context, in *Decoded) (*Report, error) {
	rep := &Report{Catalogue: CatalogueVersion, PSSVersion: e.version.String(), Controls: e.controls,
		Errors: in.Errors, ExpiredExceptions: e.expired, Unavailable: in.Unavailable}
	rep.Skipped = append(rep.Skipped, in.Skipped...)
	if e.version.Latest() {
		rep.PSSVersion = "latest"
	}
	rep.Objects = make([]ObjectRef, 0, len(in.Objects))
	nsSeen := map[string]int{}    // namespace -> index of its first object
	nsPolicy := map[string]bool{} // namespaces holding a NetworkPolicy
	var targets []*target
	rb := newRBACIndex()
	images := imageCache{m: map[string]parsedImage{}, shared: e.refs}
	for i := range in.Objects {
		o := &in.Objects[i]
		ref := o.Ref
		var t *target
		why := ""
		if o.Typed == nil {
			why = fmt.Sprintf("kind %s (%s) is not a built-in kind: no controls apply", o.Ref.Kind, o.Ref.APIVersion)
			if o.Ref.Kind == "CustomResourceDefinition" {
				why = "CustomResourceDefinition: defines a kind, no controls apply"
			}
		} else {
			switch obj := o.Typed.(type) {
			case *networkingv1.NetworkPolicy:
				nsPolicy[obj.Namespace] = true
			case *corev1.Namespace:
				if _, ok := nsSeen[obj.Name]; !ok {
					nsSeen[obj.Name] = -1
				}
			}
			rb.add(o.Typed)
			t, why = newTarget(o.Typed, &ref, images)
		}
		if e.customFor(ref.Kind) {
			if t == nil {
				t = &target{}
			}
			t.obj = o
		}
		if t == nil {
			rep.Skipped = append(rep.Skipped, Skip{Object: o.Ref, Reason: why})
			continue
		}
		rep.Objects = append(rep.Objects, ref)
		targets = append(targets, t)
		if (t.pod != nil || t.svc != nil) && ref.Namespace != "" {
			if _, ok := nsSeen[ref.Namespace]; !ok {
				nsSeen[ref.Namespace] = i
			}
		}
	}
	// Namespace targets for the NetworkPolicy control, in a stable order.
	if len(e.byScope[scopeNamespace]) == 0 {
		clear(nsSeen) // no control would judge them
	}
	names := make([]string, 0, len(nsSeen))
	for n := range nsSeen {
		names = append(names, n)
	}
	sort.Strings(names)
	netpolMissing := in.Unavailable["NetworkPolicy"]
	for _, n := range names {
		ref := ObjectRef{Kind: "Namespace", Name: n, Namespace: n}
		if i := nsSeen[n]; i >= 0 {
			ref.Source, ref.Doc, ref.Line = in.Objects[i].Ref.Source, in.Objects[i].Ref.Doc, in.Objects[i].Ref.Line
		}
		rep.Objects = append(rep.Objects, ref)
		targets = append(targets, &target{nsHasPolicy: nsPolicy[n], unavailable: netpolMissing})
	}
	// Subject targets: the rights each user, group and service account
	// holds across all its bindings.
	for _, s := range rb.subjects(in.Unavailable) {
		if len(e.byScope[scopeSubject]) == 0 {
			break
		}
		rep.Objects = append(rep.Objects, s.ref)
		targets = append(targets, &target{subject: s})
	}
	// Results: one per applicable control per target; reserve once.
	n := 0
	for _, t := range targets {
		n += len(e.byScope[targetScope(t)]) + len(e.byScope[scopeNamespaced])
	}
	if !e.cfg.FailuresOnly {
		rep.Results = make([]Result, 0, n)
	}
	pssFailed := make([]bool, len(e.pss))
	emit := func(ci, ti int, t *target, out outcome) {
		if e.cfg.FailuresOnly && out.status != StatusFail {
			return
		}
		c := &e.controls[ci]
		r := Result{ci: ci, Control: c.ID, Object: ti, Status: out.status, Severity: c.Severity, Message: out.msg, Patch: out.patch}
		if out.details != nil {
			if rep.details == nil {
				rep.details = map[int][]Detail{}
			}
			rep.details[len(rep.Results)] = out.details
		}
		if out.status == StatusFail {
			for xi := range e.active {
				if e.active[xi].matches(c.ID, t.ref) {
					r.Status, r.Exception = StatusExcepted, e.active[xi].Reason
					break
				}
			}
		}
		rep.Results = append(rep.Results, r)
	}
	for ti, t := range targets {
		if ti%512 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("evaluate: %w", err)
			}
		}
		t.ref = &rep.Objects[ti]
		sc := targetScope(t)
		for _, ci := range e.byScope[sc] {
			out := e.controls[ci].check(&e.cfg, t)
			if ci >= e.pssFirst {
				pssFailed[ci-e.pssFirst] = out.status == StatusFail
			}
			emit(ci, ti, t, out)
		}
		if sc != scopeNamespace && sc != scopeSubject && sc != scopeNone && !clusterScoped[t.ref.Kind] {
			for _, ci := range e.byScope[scopeNamespaced] {
				emit(ci, ti, t, e.controls[ci].check(&e.cfg, t))
			}
		}
		if t.pod != nil && e.pssAll {
			t.ref.PSSLevel = string(pssLevel(e.pss, func(i int) bool { return pssFailed[i] }))
		}
		if t.obj != nil {
			if err := e.evalCustom(ctx, ti, t, emit); err != nil {
				return nil, err
			}
		}
	}
	if !e.cfg.SkipScores {
		e.score(rep)
	}
	return rep, nil
}

// customFor says whether some custom control matches kind.
func (e *Evaluator) customFor(kind string) bool {
	for i := range e.custom {
		if e.custom[i].matches(kind) {
			return true
		}
	}
	return false
}

// evalCustom runs the custom controls matching t's kind. The object is
// converted to its JSON shape once, for all of them.
func (e *Evaluator) evalCustom(ctx context.Context, ti int, t *target, emit func(int, int, *target, outcome)) error {
	var obj map[string]any
	for i := range e.custom {
		cc := &e.custom[i]
		if !cc.matches(t.ref.Kind) {
			continue
		}
		if obj == nil {
			var err error
			if obj, err = celObject(t.obj); err != nil {
				emit(e.customFirst+i, ti, t, skip(err.Error()))
				continue
			}
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("evaluate: %w", err)
		}
		emit(e.customFirst+i, ti, t, cc.evaluate(ctx, obj))
	}
	return nil
}

func celObject(o *Object) (map[string]any, error) {
	if o.Unstructured != nil {
		return o.Unstructured.Object, nil
	}
	var v any
	var err error
	if o.Raw != nil {
		v, err = celeval.FromJSON(o.Raw)
	} else {
		v, err = celeval.ToValue(o.Typed)
	}
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	if m == nil {
		return nil, fmt.Errorf("convert %s for CEL: not an object", o.Ref.Kind)
	}
	// Typed decoding drops apiVersion and kind; expressions may test them.
	if _, ok := m["kind"]; !ok {
		m["kind"], m["apiVersion"] = o.Ref.Kind, o.Ref.APIVersion
	}
	return m, nil
}

func targetScope(t *target) scope {
	switch {
	case t.pod != nil:
		return scopeWorkload
	case t.isRole:
		return scopeRole
	case t.binding != nil:
		return scopeBinding
	case t.svc != nil:
		return scopeService
	case t.sa != nil:
		return scopeServiceAccount
	case t.subject != nil:
		return scopeSubject
	case t.obj != nil:
		return scopeNone
	}
	return scopeNamespace
}

func (e *Evaluator) score(rep *Report) {
	scoreReport(rep, e.controls, func(ref *ObjectRef) string {
		switch {
		case clusterScoped[ref.Kind] && ref.Kind != "Namespace":
			return "(cluster-scoped)"
		case ref.Namespace == "":
			return "(namespace not set)"
		}
		return ref.Namespace
	})
}

// scoreReport fills rep's framework scores and its per-group scores, the
// group of an object named by group (a namespace, or the node).
func scoreReport(rep *Report, controls []Control, group func(*ObjectRef) string) {
	type acc struct {
		s      Score
		pw, tw float64
		used   bool
	}
	// Accumulators are resolved once per control and once per object, not
	// looked up by name for every result.
	fw := map[string]*acc{}
	fwOf := make([][]*acc, len(controls))
	for i := range controls {
		for _, f := range controls[i].Frameworks() {
			a := fw[f]
			if a == nil {
				a = &acc{s: Score{Name: f}}
				fw[f] = a
			}
			fwOf[i] = append(fwOf[i], a)
		}
	}
	ns := map[string]*acc{}
	nsOf := make([]*acc, len(rep.Objects))
	add := func(a *acc, r *Result) {
		a.used = true
		w := weight(r.Severity)
		switch r.Status {
		case StatusPass:
			a.s.Passed++
			a.pw += w
			a.tw += w
		case StatusFail:
			a.s.Failed++
			a.tw += w
		case StatusExcepted:
			a.s.Excepted++
		case StatusSkipped:
			a.s.Skipped++
		}
	}
	for i := range rep.Results {
		r := &rep.Results[i]
		for _, a := range fwOf[r.ci] {
			add(a, r)
		}
		a := nsOf[r.Object]
		if a == nil {
			key := group(&rep.Objects[r.Object])
			if a = ns[key]; a == nil {
				a = &acc{s: Score{Name: key}}
				ns[key] = a
			}
			nsOf[r.Object] = a
		}
		add(a, r)
	}
	flatten := func(m map[string]*acc) []Score {
		out := make([]Score, 0, len(m))
		for _, a := range m {
			if !a.used {
				continue
			}
			a.s.Score = 100
			if a.tw > 0 {
				a.s.Score = float64(int(1000*a.pw/a.tw+0.5)) / 10
			}
			out = append(out, a.s)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	}
	rep.Frameworks, rep.Namespaces = flatten(fw), flatten(ns)
}
