package policy

import (
	"context"
	"fmt"
	"slices"

	"github.com/bulwark-security/bulwark/internal/posture"
)

// Fixes applied before judging. A configuration rule may list controls
// under mutate: the mutating webhook (internal/admission, /mutate) applies
// those controls' patches (posture's, the ones `bulwark posture fix`
// writes into files) to an object that fails them, before the validating
// webhook judges it — so a workload missing allowPrivilegeEscalation:
// false is fixed instead of denied, and whatever cannot be fixed is still
// judged. Policies in audit mode observe only and fix nothing; an
// exemption that covers a control for an object also stops its fix. A
// Pod is fixed when created (its spec is immutable afterwards); the
// controllers' pod templates when created or updated.

// Fix is one control fixed on an object, and the policy that asked.
type Fix struct {
	Policy  string `json:"policy"`
	Control string `json:"control"`
}

// Mutation is what Mutate changes on an object.
type Mutation struct {
	// Object is the fixed object's JSON; nil when nothing is fixed.
	Object []byte
	Fixes  []Fix
}

// Mutates reports whether any policy of the set fixes objects (the
// mutating webhook is then worth installing).
func (s *Set) Mutates() bool {
	return slices.ContainsFunc(s.policies, func(p *Policy) bool { return p.mutates() })
}

func (p *Policy) mutates() bool {
	return p.config != nil && len(p.config.mutate) > 0 && p.Mode != ModeAudit
}

// Mutate applies the fixes of the policies in scope to req's object, whose
// JSON is raw. Each control is fixed by the first policy listing it. Fixes
// are applied in passes (at most mutatePasses): a fix one control offers
// only once another is fixed (allowPrivilegeEscalation=false, refused by
// the API server on a privileged container) comes in the next pass.
func (s *Set) Mutate(ctx context.Context, req *Request, raw []byte) (Mutation, error) {
	var m Mutation
	if req.Object == nil || req.ImageRulesOnly || (req.Operation != "CREATE" && req.Operation != "UPDATE") ||
		(req.Operation == "UPDATE" && req.Kind == "Pod") || !s.Mutates() {
		return m, nil
	}
	cur := *req
	for pass := 0; pass < mutatePasses; pass++ {
		patches, fixes, err := s.fixes(ctx, &cur)
		if err != nil {
			return Mutation{}, err
		}
		if len(patches) == 0 {
			break
		}
		if raw, err = posture.PatchJSON(raw, patches...); err != nil {
			return Mutation{}, err
		}
		for _, f := range fixes {
			if !slices.Contains(m.Fixes, f) {
				m.Fixes = append(m.Fixes, f)
			}
		}
		if cur.Object, err = DecodeObject(req.Kind, raw); err != nil {
			return Mutation{}, fmt.Errorf("fixed object: %w", err)
		}
	}
	if len(m.Fixes) > 0 {
		m.Object = raw
	}
	return m, nil
}

// mutatePasses bounds the fix passes over one object.
const mutatePasses = 3

// fixes are the patches the policies in scope offer for req's object.
func (s *Set) fixes(ctx context.Context, req *Request) ([][]posture.PatchOp, []Fix, error) {
	ev := &evaluation{set: s, req: req, posture: make([]*posture.Report, len(s.posture))}
	if _, ev.spec = podSpec(req.Object); ev.spec == nil {
		return nil, nil, nil
	}
	var name string
	name, ev.labels = req.objectNameLabels()
	var patches [][]posture.PatchOp
	var fixes []Fix
	fixed := map[string]bool{}
	for _, p := range s.policies {
		if !p.mutates() || !p.inScope(req, ev.labels) {
			continue
		}
		rep, err := ev.postureReport(ctx, p.posture)
		if err != nil {
			return nil, nil, fmt.Errorf("policy %s: configuration checks: %w", p.Name, err)
		}
		for i := range rep.Results {
			r := &rep.Results[i]
			if r.Object != 0 || r.Status != posture.StatusFail || len(r.Patch) == 0 || fixed[r.Control] ||
				!slices.Contains(p.config.mutate, r.Control) {
				continue
			}
			if p.exemption(req.Namespace, req.Kind, name, ev.labels, &Violation{Rule: RuleConfiguration, Finding: r.Control}) != nil {
				continue
			}
			fixed[r.Control] = true
			patches = append(patches, r.Patch)
			fixes = append(fixes, Fix{Policy: p.Name, Control: r.Control})
		}
	}
	return patches, fixes, nil
}
