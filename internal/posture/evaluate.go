package posture

import (
	"context"
	"fmt"
	"path"
	"sort"
	"time"

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
	// ExpiredExceptions were configured but no longer apply.
	ExpiredExceptions []Exception `json:"expiredExceptions,omitempty"`
}

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
	byID     map[string]int
	active   []Exception
	expired  []Exception
	version  api.Version
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
	e := &Evaluator{cfg: cfg, version: v, byID: map[string]int{}}
	e.controls = bulwarkControls()
	e.pss = resolvePSS(v)
	e.pssFirst = len(e.controls)
	e.controls = append(e.controls, pssControls(e.pss)...)
	for i, c := range e.controls {
		if _, dup := e.byID[c.ID]; dup {
			return nil, fmt.Errorf("new evaluator: duplicate control %s", c.ID)
		}
		e.byID[c.ID] = i
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

var clusterScoped = map[string]bool{"ClusterRole": true, "ClusterRoleBinding": true, "Namespace": true}

// Evaluate runs every control on every object of in. Objects no control
// applies to are listed in Report.Skipped with the reason.
func (e *Evaluator) Evaluate(ctx context.Context, in *Decoded) (*Report, error) {
	rep := &Report{Catalogue: CatalogueVersion, PSSVersion: e.version.String(), Controls: e.controls,
		Errors: in.Errors, ExpiredExceptions: e.expired}
	if e.version.Latest() {
		rep.PSSVersion = "latest"
	}
	rep.Objects = make([]ObjectRef, 0, len(in.Objects))
	nsSeen := map[string]int{}    // namespace -> index of its first object
	nsPolicy := map[string]bool{} // namespaces holding a NetworkPolicy
	var targets []*target
	for i := range in.Objects {
		o := &in.Objects[i]
		if o.Typed == nil {
			reason := fmt.Sprintf("kind %s (%s) is not a built-in kind: no controls apply", o.Ref.Kind, o.Ref.APIVersion)
			if o.Ref.Kind == "CustomResourceDefinition" {
				reason = "CustomResourceDefinition: defines a kind, no controls apply"
			}
			rep.Skipped = append(rep.Skipped, Skip{Object: o.Ref, Reason: reason})
			continue
		}
		switch obj := o.Typed.(type) {
		case *networkingv1.NetworkPolicy:
			nsPolicy[obj.Namespace] = true
		case *corev1.Namespace:
			if _, ok := nsSeen[obj.Name]; !ok {
				nsSeen[obj.Name] = -1
			}
		}
		ref := o.Ref
		t, why := newTarget(o.Typed, &ref)
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
	names := make([]string, 0, len(nsSeen))
	for n := range nsSeen {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ref := ObjectRef{Kind: "Namespace", Name: n, Namespace: n}
		if i := nsSeen[n]; i >= 0 {
			ref.Source, ref.Doc, ref.Line = in.Objects[i].Ref.Source, in.Objects[i].Ref.Doc, in.Objects[i].Ref.Line
		}
		rep.Objects = append(rep.Objects, ref)
		targets = append(targets, &target{nsHasPolicy: nsPolicy[n]})
	}
	// Results: about one per workload control per object; reserve once.
	rep.Results = make([]Result, 0, len(targets)*24)
	pssFailed := make([]bool, len(e.pss))
	for ti, t := range targets {
		if ti%512 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("evaluate: %w", err)
			}
		}
		t.ref = &rep.Objects[ti]
		sc := targetScope(t)
		for ci := range e.controls {
			c := &e.controls[ci]
			if c.scope != sc && !(c.scope == scopeNamespaced && sc != scopeNamespace && !clusterScoped[t.ref.Kind]) {
				continue
			}
			out := c.check(&e.cfg, t)
			if ci >= e.pssFirst {
				pssFailed[ci-e.pssFirst] = out.status == StatusFail
			}
			r := Result{ci: ci, Control: c.ID, Object: ti, Status: out.status, Severity: c.Severity, Message: out.msg, Patch: out.patch}
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
		if t.pod != nil {
			t.ref.PSSLevel = string(pssLevel(e.pss, func(i int) bool { return pssFailed[i] }))
		}
	}
	e.score(rep)
	return rep, nil
}

func targetScope(t *target) scope {
	switch {
	case t.pod != nil:
		return scopeWorkload
	case t.rules != nil || t.ref.Kind == "Role" || t.ref.Kind == "ClusterRole":
		return scopeRole
	case t.binding != nil:
		return scopeBinding
	case t.svc != nil:
		return scopeService
	}
	return scopeNamespace
}

func (e *Evaluator) score(rep *Report) {
	type acc struct {
		s      Score
		pw, tw float64
	}
	fw := map[string]*acc{}
	ns := map[string]*acc{}
	fwOf := make([][]string, len(e.controls))
	for i := range e.controls {
		fwOf[i] = e.controls[i].Frameworks()
	}
	add := func(m map[string]*acc, key string, r *Result) {
		a := m[key]
		if a == nil {
			a = &acc{s: Score{Name: key}}
			m[key] = a
		}
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
		for _, f := range fwOf[r.ci] {
			add(fw, f, r)
		}
		ref := &rep.Objects[r.Object]
		key := ref.Namespace
		switch {
		case clusterScoped[ref.Kind] && ref.Kind != "Namespace":
			key = "(cluster-scoped)"
		case key == "":
			key = "(namespace not set)"
		}
		add(ns, key, r)
	}
	flatten := func(m map[string]*acc) []Score {
		out := make([]Score, 0, len(m))
		for _, a := range m {
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
