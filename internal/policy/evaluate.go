package policy

import (
	"context"
	"errors"
	"fmt"
	"path"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"

	"github.com/bulwark-security/bulwark/internal/celeval"
	"github.com/bulwark-security/bulwark/internal/posture"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// Set is a loaded set of policies, safe for concurrent use. Replace it
// whole on reload.
type Set struct {
	policies []*Policy
	version  string
	posture  []*posture.Evaluator
	controls map[string]*posture.Control
	// json recycles the maps of the custom rules' object variables
	// between evaluations (see celeval.JSONPool).
	json celeval.JSONPool
	// celUses are the variables some custom rule reads: the others are
	// not built per request (the request map alone was ~1.4 KB).
	celUses map[string]bool
	// celFields are, for object and oldObject, the top-level fields the
	// custom rules read (nil: the whole object, see celeval.TopFields):
	// only those are built per request.
	celFields map[string]map[string]bool
	// celGroups counts the distinct (expression, params) pairs of the
	// custom rules: a rule copied into several policies (the team label
	// rule of every team's policy) is evaluated once per request.
	celGroups int
	// vulnMu guards vulnCache: each vulnerability rule group's verdict on
	// an image's findings, kept between requests (see vulnVerdict).
	vulnMu    sync.RWMutex
	vulnCache map[vulnCacheKey]vulnCached
}

// vulnCacheKey identifies a verdict of a vulnerability rule group on an
// image's findings. The findings are named by their backing array and
// length: an ImageSource returns the same unchanged findings for an image
// until it fetches new ones (a warm cache hands out copies of the report
// around the same Findings slice), so a new fetch is a new key.
type vulnCacheKey struct {
	group    int
	image    string
	digest   string
	findings *Finding
	n        int
}

type vulnCached struct {
	bad []Violation // shared: cloned before use
	// until is when an exception of the rule expires and the verdict
	// must be computed again (zero: never).
	until time.Time
}

// maxVulnCache bounds the verdicts kept; past it the cache starts over.
const maxVulnCache = 4096

func newSet(ps []*Policy, version string) (*Set, error) {
	s := &Set{policies: ps, version: version, controls: map[string]*posture.Control{}}
	idx := map[postureKey]int{}
	var keys []postureKey
	var users [][]*Policy // per evaluator, the policies it serves
	for _, p := range ps {
		if p.postureKey == nil {
			continue
		}
		i, ok := idx[*p.postureKey]
		if !ok {
			i = len(keys)
			idx[*p.postureKey] = i
			keys = append(keys, *p.postureKey)
			users = append(users, nil)
		}
		users[i] = append(users[i], p)
		p.posture = i
		p.want = [2]map[string]string{p.postureWant(false), p.postureWant(true)}
	}
	for i, k := range keys {
		cfg := k.config()
		full, err := posture.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", users[i][0].Name, err)
		}
		cs := full.Controls()
		for ci := range cs {
			if _, ok := s.controls[cs[ci].ID]; !ok {
				s.controls[cs[ci].ID] = &cs[ci]
			}
		}
		// Only the controls some policy judges run per request: the
		// ones they name, and every upstream check when one asks for a
		// Pod Security Standards level (the level needs them all).
		need := map[string]bool{}
		for _, p := range users[i] {
			for id := range p.want[0] {
				need[id] = true
			}
			if p.config != nil && p.config.podSecurity != "" {
				for ci := range cs {
					if cs[ci].Upstream != "" {
						need[cs[ci].ID] = true
					}
				}
			}
		}
		for ci := range cs {
			if need[cs[ci].ID] {
				cfg.Only = append(cfg.Only, cs[ci].ID)
			}
		}
		ev := full
		if len(cfg.Only) > 0 {
			if ev, err = posture.New(cfg); err != nil {
				return nil, fmt.Errorf("policy %s: %w", users[i][0].Name, err)
			}
		}
		s.posture = append(s.posture, ev)
	}
	s.groupRules()
	return s, nil
}

// groupRules numbers the custom rules by (expression, params), rules of
// equal expression and deeply equal params sharing a number, and notes
// the variables the rules read.
func (s *Set) groupRules() {
	// Equal vulnerability rules (a baseline copied into every team's
	// policy) judge an image's findings once per request.
	var vulns []*vulnRule
	for _, p := range s.policies {
		if p.vuln == nil {
			continue
		}
		p.vuln.group = -1
		for _, v := range vulns {
			if v.equal(p.vuln) {
				p.vuln.group = v.group
				break
			}
		}
		if p.vuln.group < 0 {
			p.vuln.group = len(vulns)
			vulns = append(vulns, p.vuln)
		}
	}
	s.celUses = map[string]bool{}
	s.celFields = map[string]map[string]bool{}
	whole := map[string]bool{}
	defer func() {
		for v := range whole {
			delete(s.celFields, v)
		}
	}()
	type group struct {
		id     int
		params any
	}
	byExpr := map[string][]group{}
	for _, p := range s.policies {
		for i := range p.cel {
			r := &p.cel[i]
			for _, prg := range []*celeval.Program{r.expr, r.msgExpr} {
				if prg == nil {
					continue
				}
				for _, v := range []string{celeval.VarObject, celeval.VarOldObject, celeval.VarRequest, celeval.VarNamespaceObject} {
					if prg.Uses(v) {
						s.celUses[v] = true
					}
				}
				for _, v := range []string{celeval.VarObject, celeval.VarOldObject} {
					fields, all := prg.TopFields(v)
					switch {
					case all:
						whole[v] = true
					case len(fields) > 0:
						if s.celFields[v] == nil {
							s.celFields[v] = map[string]bool{}
						}
						for _, f := range fields {
							s.celFields[v][f] = true
						}
					}
				}
			}
			src := r.expr.String()
			r.group = -1
			if r.paramRef != "" || r.paramKind != nil { // params known per request only: not shared
				continue
			}
			for _, g := range byExpr[src] {
				if reflect.DeepEqual(g.params, r.params) {
					r.group = g.id
					break
				}
			}
			if r.group < 0 {
				r.group = s.celGroups
				s.celGroups++
				byExpr[src] = append(byExpr[src], group{id: r.group, params: r.params})
			}
		}
	}
}

// postureWant maps the posture controls p judges to their rule family.
func (p *Policy) postureWant(imageRulesOnly bool) map[string]string {
	want := map[string]string{} // control id -> rule family
	if c := p.config; c != nil && !imageRulesOnly {
		for id := range c.controls {
			want[id] = RuleConfiguration
		}
	}
	if r := p.prov; r != nil {
		if r.noLatest {
			want[controlLatest] = RuleProvenance
		}
		if r.requireDigest {
			want[controlDigest] = RuleProvenance
		}
		if r.trusted {
			want[controlTrusted] = RuleProvenance
		}
	}
	return want
}

// Policies lists the loaded policies by name.
func (s *Set) Policies() []*Policy { return s.policies }

// Version identifies the policy text (a hash of every source), recorded
// with decisions so a verdict can be traced to the policies that made it.
func (s *Set) Version() string { return s.version }

// ParamKinds are the (apiVersion, kind) pairs of the policies'
// spec.paramKind: objects of these kinds among a pipeline's manifests are
// params, not workloads.
func (s *Set) ParamKinds() map[[2]string]bool {
	out := map[[2]string]bool{}
	for _, p := range s.policies {
		for i := range p.cel {
			if pk := p.cel[i].paramKind; pk != nil {
				out[[2]string{pk.apiVersion, pk.kind}] = true
			}
		}
	}
	return out
}

// UsesNamespaceLabels reports whether a namespace's labels can change a
// verdict: some policy's scope has a namespaceSelector, or some custom
// rule reads namespaceObject.
func (s *Set) UsesNamespaceLabels() bool {
	for _, p := range s.policies {
		if p.scope.namespaceSelector != nil {
			return true
		}
	}
	return s.celUses[celeval.VarNamespaceObject]
}

// Verdict is the outcome of a decision.
type Verdict string

const (
	VerdictAllow Verdict = "allow"
	// VerdictAudit admits; violations of audit-mode policies were recorded.
	VerdictAudit Verdict = "audit"
	// VerdictWarn admits with warnings shown to the client.
	VerdictWarn Verdict = "warn"
	VerdictDeny Verdict = "deny"
)

// Violation is one rule a request breaks: which policy and rule, which
// container and image, which finding, and how to fix it.
type Violation struct {
	Policy    string          `json:"policy"`
	Mode      Mode            `json:"mode"`
	Rule      string          `json:"rule"`
	Container string          `json:"container,omitempty"`
	Image     string          `json:"image,omitempty"`
	Digest    string          `json:"digest,omitempty"`
	Finding   string          `json:"finding,omitempty"` // vulnerability id, control id, tag...
	Severity  vulndb.Severity `json:"severity,omitempty"`
	Message   string          `json:"message"`
	Fix       string          `json:"fix,omitempty"`
	// Exemption is the reason of the exemption that lifted it (in
	// Decision.Exempted only).
	Exemption string `json:"exemption,omitempty"`
}

// Decision is the verdict on one request and its reasons.
type Decision struct {
	Allowed    bool        `json:"allowed"`
	Verdict    Verdict     `json:"verdict"`
	Violations []Violation `json:"violations,omitempty"`
	Exempted   []Violation `json:"exempted,omitempty"`
	// Notes are things the client should know that are not violations
	// (an image admitted because central was unreachable and the failure
	// policy is open).
	Notes []string `json:"notes,omitempty"`
	// Policies are the policies whose scope matched.
	Policies      []string `json:"policies,omitempty"`
	PolicyVersion string   `json:"policyVersion"`
}

// maxListed bounds the violations a message lists; the decision keeps all.
const maxListed = 20

// Message is the denial message: every deny-mode violation, one per line,
// with its fix.
func (d *Decision) Message(what string) string {
	var b strings.Builder
	var deny []Violation
	for _, v := range d.Violations {
		if v.Mode == ModeDeny {
			deny = append(deny, v)
		}
	}
	pols := map[string]bool{}
	var names []string
	for _, v := range deny {
		if !pols[v.Policy] {
			pols[v.Policy] = true
			names = append(names, v.Policy)
		}
	}
	fmt.Fprintf(&b, "Bulwark denied %s (policy %s): %d violation(s)", what, strings.Join(names, ", "), len(deny))
	for i, v := range deny {
		if i == maxListed {
			fmt.Fprintf(&b, "\n- ... and %d more (see the decision log)", len(deny)-maxListed)
			break
		}
		b.WriteString("\n- ")
		b.WriteString(v.Line())
	}
	return b.String()
}

// Line renders one violation: "[policy/rule] container "x" (image): message; fix: ...".
func (v *Violation) Line() string {
	var b strings.Builder
	b.WriteString("[" + v.Policy + "/" + v.Rule)
	if v.Finding != "" && v.Rule != RuleVulnerabilities && v.Finding != v.Rule {
		b.WriteString(" " + v.Finding)
	}
	b.WriteString("] ")
	if v.Container != "" {
		b.WriteString("container " + strconv.Quote(v.Container))
		if v.Image != "" {
			b.WriteString(" image " + v.Image)
		}
		b.WriteString(": ")
	}
	b.WriteString(v.Message)
	if v.Fix != "" {
		b.WriteString(" — fix: " + v.Fix)
	}
	return b.String()
}

// Warnings are the lines shown to the client when it is admitted: warn-mode
// violations and notes.
func (d *Decision) Warnings() []string {
	var out []string
	for _, v := range d.Violations {
		if v.Mode == ModeWarn {
			out = append(out, v.Line())
		}
	}
	return append(out, d.Notes...)
}

// evaluation is the state of one Evaluate call, shared by the policies.
type evaluation struct {
	set     *Set
	req     *Request
	spec    *corev1.PodSpec
	labels  map[string]string
	conts   []container
	posture []*posture.Report
	parsed  [][]failure
	images  map[string]imageAnswer
	celVars *celeval.Vars
	celErr  error
	cel     []celResult           // by rule group
	params  map[string]paramEntry // paramRef ConfigMaps read, by name
	// paramObjs are the paramKind resources read, by query.
	paramObjs map[string]paramObjsEntry
	// release returns the CEL variables' maps to the set's pool once the
	// evaluation is over (nothing in a Decision refers to them).
	release []func()
}

type imageAnswer struct {
	rep *ImageReport
	err error
}

// Evaluate judges req against every policy in scope. It never fails: a
// rule that cannot be evaluated is itself a violation (or, for image
// lookups under FailOpen, a note), so nothing is silently allowed.
func (s *Set) Evaluate(ctx context.Context, req *Request) Decision {
	d := Decision{Allowed: true, Verdict: VerdictAllow, PolicyVersion: s.version}
	ev := &evaluation{set: s, req: req, posture: make([]*posture.Report, len(s.posture)), images: map[string]imageAnswer{}}
	defer func() {
		for _, f := range ev.release {
			f()
		}
	}()
	if req.Object != nil {
		_, spec := podSpec(req.Object)
		ev.spec, ev.conts = spec, containers(spec)
	}
	name, labels := req.objectNameLabels()
	ev.labels = labels
	for _, p := range s.policies {
		if !p.inScope(req, ev.labels) {
			continue
		}
		if d.Policies == nil { // sized once: growing by doubling cost ~1 KB
			d.Policies = make([]string, 0, min(len(s.policies), 32))
		}
		d.Policies = append(d.Policies, p.Name)
		for _, v := range p.evaluate(ctx, ev, &d) {
			v.Policy, v.Mode = p.Name, p.Mode
			if x := p.exemption(req.Namespace, req.Kind, name, ev.labels, &v); x != nil {
				v.Exemption = x.Reason
				d.Exempted = append(d.Exempted, v)
				continue
			}
			d.Violations = append(d.Violations, v)
		}
	}
	for _, v := range d.Violations {
		switch {
		case v.Mode == ModeDeny:
			d.Verdict, d.Allowed = VerdictDeny, false
		case v.Mode == ModeWarn && d.Verdict != VerdictDeny:
			d.Verdict = VerdictWarn
		case v.Mode == ModeAudit && d.Verdict == VerdictAllow:
			d.Verdict = VerdictAudit
		}
	}
	return d
}

// objectNameLabels are the judged object's name (its generateName when
// the name is not set yet, as for a controller's pods) and labels.
func (req *Request) objectNameLabels() (string, map[string]string) {
	name := req.Name
	var labels map[string]string
	if o, ok := req.Object.(interface{ GetLabels() map[string]string }); ok {
		labels = o.GetLabels()
	}
	if name == "" {
		if o, ok := req.Object.(interface{ GetGenerateName() string }); ok {
			name = o.GetGenerateName()
		}
	}
	return name, labels
}

func (p *Policy) inScope(req *Request, labels map[string]string) bool {
	sc := &p.scope
	switch req.Operation {
	case "CONNECT":
		if p.connect == nil || (len(sc.operations) > 0 && !sc.operations["CONNECT"]) {
			return false
		}
	case "CREATE", "UPDATE":
		if len(sc.operations) > 0 && !sc.operations[req.Operation] {
			return false
		}
		if len(sc.kinds) > 0 && !sc.kinds[req.Kind] {
			return false
		}
	default:
		return false
	}
	if len(sc.namespaces) > 0 && !anyGlob(sc.namespaces, req.Namespace) {
		return false
	}
	if anyGlob(sc.excludeNamespaces, req.Namespace) {
		return false
	}
	if sc.namespaceSelector != nil && req.NamespaceObject != nil && !sc.namespaceSelector.matches(req.NamespaceObject.Labels) {
		return false
	}
	if sc.objectSelector != nil && req.Operation != "CONNECT" && !sc.objectSelector.matches(labels) {
		return false
	}
	return true
}

func anyGlob(patterns []string, s string) bool {
	for _, g := range patterns {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}

func (p *Policy) exemption(ns, kind, name string, labels map[string]string, v *Violation) *Exemption {
	for i := range p.exemptions {
		x := &p.exemptions[i]
		if x.matchesObject(ns, kind, name, labels) && x.covers(v) {
			return x
		}
	}
	return nil
}

func (p *Policy) evaluate(ctx context.Context, ev *evaluation, d *Decision) []Violation {
	req := ev.req
	if req.Operation == "CONNECT" {
		return p.evalConnect(req)
	}
	var out []Violation
	if p.vuln != nil {
		out = append(out, p.evalVuln(ctx, ev, d)...)
	}
	if p.config != nil || p.prov != nil {
		out = append(out, p.evalPosture(ctx, ev)...)
	}
	if p.prov != nil && len(p.prov.mutableTags) > 0 {
		out = append(out, p.evalMutableTags(ev)...)
	}
	if req.ImageRulesOnly {
		return out
	}
	for i := range p.cel {
		if v, bad := p.cel[i].eval(ctx, ev); bad {
			out = append(out, v)
		}
	}
	return out
}

func (p *Policy) evalConnect(req *Request) []Violation {
	r := p.connect
	if !r.deny[req.SubResource] {
		return nil
	}
	if anyGlob(r.allowUsers, req.User.Username) {
		return nil
	}
	for _, g := range req.User.Groups {
		if anyGlob(r.allowGroups, g) {
			return nil
		}
	}
	return []Violation{{Rule: RuleConnect, Finding: "pods/" + req.SubResource, Severity: vulndb.SeverityHigh,
		Message: fmt.Sprintf("%s into pod %s/%s by %s is not allowed", req.SubResource, req.Namespace, req.Name, req.User.Username),
		Fix:     "use a break-glass identity listed in connect.allowUsers/allowGroups, or debug through logs and metrics"}}
}

// image looks a reference up once per request, however many policies ask.
func (ev *evaluation) image(ctx context.Context, ref string) imageAnswer {
	if a, ok := ev.images[ref]; ok {
		return a
	}
	var a imageAnswer
	if ev.req.Images == nil {
		a.err = fmt.Errorf("no source of image findings (central) configured")
	} else {
		a.rep, a.err = ev.req.Images.ImageFindings(ctx, ref)
		if a.err == nil && a.rep == nil {
			a.rep = &ImageReport{Ref: ref}
		}
	}
	ev.images[ref] = a
	return a
}

// maxFindingsPerImage bounds the violations one image yields; the rest are
// summarised in one more.
const maxFindingsPerImage = 10

func (p *Policy) evalVuln(ctx context.Context, ev *evaluation, d *Decision) []Violation {
	r := p.vuln
	var out []Violation
	seen := map[string]bool{}
	for _, c := range ev.conts {
		if c.Image == "" {
			continue
		}
		a := ev.image(ctx, c.Image)
		if a.err != nil {
			if ev.req.FailOpen {
				note := fmt.Sprintf("image %s admitted without a vulnerability verdict (fail-open): %v", c.Image, a.err)
				if !seen["note:"+c.Image] {
					d.Notes = appendOnce(d.Notes, note)
				}
				seen["note:"+c.Image] = true
				continue
			}
			out = append(out, Violation{Rule: RuleVulnerabilities, Container: c.Name, Image: c.Image, Finding: "unavailable",
				Message: fmt.Sprintf("the image's vulnerabilities could not be checked (%v); the failure policy is fail-closed", a.err),
				Fix:     "retry when central is reachable; an administrator can switch the webhook to fail-open"})
			continue
		}
		rep := a.rep
		var scanErr error
		if !rep.Scanned && r.unscanned == UnscannedScan {
			if sc, ok := ev.req.Images.(Scanner); ok {
				sctx, cancel := context.WithTimeout(ctx, r.scanTimeout)
				got, err := sc.ScanImage(sctx, c.Image)
				cancel()
				if err == nil && got != nil && got.Scanned {
					rep = got
					ev.images[c.Image] = imageAnswer{rep: got}
				}
				scanErr = err
			}
		}
		if !rep.Scanned {
			if r.unscanned == UnscannedAllow {
				continue
			}
			msg := "the image has never been scanned by Bulwark"
			if r.unscanned == UnscannedScan {
				msg = fmt.Sprintf("the image has never been scanned and no scan finished within %s", r.scanTimeout)
				if scanErr != nil {
					// The scanner says why (e.g. "a scan was requested and
					// is still running"): the user learns whether to retry.
					msg += ": " + scanErr.Error()
				}
			}
			out = append(out, Violation{Rule: RuleUnscanned, Container: c.Name, Image: c.Image, Digest: rep.Digest, Finding: "unscanned",
				Message: msg, Fix: "scan it first: bulwark scan image --server URL " + c.Image})
			continue
		}
		// Containers running the same image, and policies with equal
		// rules, share its verdict, within a request and between them.
		bad := ev.set.vulnVerdict(r, c.Image, rep)
		bad = slices.Clone(bad)
		for i := range bad {
			bad[i].Container = c.Name
		}
		sort.SliceStable(bad, func(i, j int) bool {
			if bad[i].Severity != bad[j].Severity {
				return bad[i].Severity > bad[j].Severity
			}
			return bad[i].Finding < bad[j].Finding
		})
		if len(bad) > maxFindingsPerImage {
			more := len(bad) - maxFindingsPerImage
			bad = append(bad[:maxFindingsPerImage], Violation{Rule: RuleVulnerabilities, Container: c.Name, Image: c.Image, Digest: rep.Digest,
				Finding: "more", Severity: bad[maxFindingsPerImage].Severity,
				Message: fmt.Sprintf("and %d more findings over the policy's limits", more), Fix: "rebuild the image on an updated base"})
		}
		out = append(out, bad...)
	}
	return out
}

// vulnVerdict is what rule r finds wrong with rep's findings, computed
// once per rule group and findings and kept between requests: a warm
// webhook then never walks an image's findings (hundreds of them, tens of
// KB touched per review) to answer the same question again. The slice is
// shared: callers clone it before changing it.
func (s *Set) vulnVerdict(r *vulnRule, image string, rep *ImageReport) []Violation {
	key := vulnCacheKey{group: r.group, image: image, digest: rep.Digest, findings: unsafe.SliceData(rep.Findings), n: len(rep.Findings)}
	s.vulnMu.RLock()
	c, ok := s.vulnCache[key]
	s.vulnMu.RUnlock()
	var now time.Time
	if ok {
		if c.until.IsZero() {
			return c.bad
		}
		if now = time.Now(); now.Before(c.until) {
			return c.bad
		}
	}
	if now.IsZero() {
		now = time.Now()
	}
	c = vulnCached{until: r.nextExpiry(now)}
	for i := range rep.Findings {
		f := &rep.Findings[i]
		why := r.violates(f, now)
		if why == "" {
			continue
		}
		c.bad = append(c.bad, Violation{Rule: RuleVulnerabilities, Image: image, Digest: rep.Digest,
			Finding: f.ID, Severity: f.Severity, Message: findingText(f, why), Fix: fixText(f)})
	}
	s.vulnMu.Lock()
	if s.vulnCache == nil || len(s.vulnCache) >= maxVulnCache {
		s.vulnCache = map[vulnCacheKey]vulnCached{}
	}
	s.vulnCache[key] = c
	s.vulnMu.Unlock()
	return c.bad
}

// nextExpiry is the first expiry of one of r's exceptions after now (zero
// when none is still to come): until then r judges every finding alike.
func (r *vulnRule) nextExpiry(now time.Time) time.Time {
	var next time.Time
	for _, x := range r.exceptions {
		if x.expires.After(now) && (next.IsZero() || x.expires.Before(next)) {
			next = x.expires
		}
	}
	return next
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// violates returns why a finding breaks the rule, or "". It runs for
// every finding of every image under every vulnerability policy: no
// allocation on the common path.
func (r *vulnRule) violates(f *Finding, now time.Time) string {
	if len(r.exceptions) > 0 {
		if r.excepted(f.ID, now) {
			return ""
		}
		for _, id := range f.Aliases {
			if r.excepted(id, now) {
				return ""
			}
		}
	}
	if len(r.deny) > 0 {
		if r.denied(f.ID) {
			return "denied by id"
		}
		for _, id := range f.Aliases {
			if r.denied(id) {
				return "denied by id"
			}
		}
	}
	if r.knownExploited && f.KEV {
		return "known exploited (CISA KEV)"
	}
	if r.fixableOnly && len(f.FixedVersions) == 0 {
		return ""
	}
	if !r.severitySet && r.minCVSS == 0 {
		return ""
	}
	if r.severitySet && f.Severity <= r.maxSeverity {
		return ""
	}
	if r.minCVSS > 0 && f.CVSS < r.minCVSS {
		return ""
	}
	switch {
	case r.severitySet && r.minCVSS > 0:
		return fmt.Sprintf("above %s with CVSS ≥ %.1f", sevWord(r.maxSeverity), r.minCVSS)
	case r.severitySet:
		return "above the allowed " + sevWord(r.maxSeverity)
	}
	return fmt.Sprintf("CVSS ≥ %.1f", r.minCVSS)
}

// denied says whether id is on the rule's deny list. It runs for every id
// and alias of every finding: short lists are scanned, not hashed.
func (r *vulnRule) denied(id string) bool {
	if len(r.denyList) <= 8 {
		for _, d := range r.denyList {
			if d == id {
				return true
			}
		}
		return false
	}
	return r.deny[id]
}

// equal says whether o judges every finding as r does (the group aside).
func (r *vulnRule) equal(o *vulnRule) bool {
	a, b := *r, *o
	a.group, b.group = 0, 0
	return reflect.DeepEqual(a, b)
}

func (r *vulnRule) excepted(id string, now time.Time) bool {
	x, ok := r.exceptions[id]
	return ok && (x.expires.IsZero() || now.Before(x.expires))
}

func sevWord(s vulndb.Severity) string {
	if s == vulndb.SeverityUnknown {
		return "none"
	}
	return strings.ToLower(s.String())
}

func findingText(f *Finding, why string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s", f.ID, f.Severity)
	if f.CVSS > 0 {
		fmt.Fprintf(&b, ", CVSS %.1f", f.CVSS)
	}
	if f.KEV {
		b.WriteString(", known exploited")
	}
	fmt.Fprintf(&b, ") in %s %s: %s", f.Package, f.Version, why)
	return b.String()
}

func fixText(f *Finding) string {
	if len(f.FixedVersions) > 0 {
		return fmt.Sprintf("upgrade %s to %s or later and rebuild the image", f.Package, f.FixedVersions[0])
	}
	return fmt.Sprintf("no fixed version of %s yet: remove or replace it, or add a vulnerabilities exception with a reason", f.Package)
}

// postureReport runs posture's evaluator for the policy's configuration
// once per request.
func (ev *evaluation) postureReport(ctx context.Context, i int) (*posture.Report, error) {
	if rep := ev.posture[i]; rep != nil {
		return rep, nil
	}
	req := ev.req
	in := &posture.Decoded{Objects: []posture.Object{{
		Ref:   posture.ObjectRef{Kind: req.Kind, Namespace: req.Namespace, Name: req.Name, Source: "admission"},
		Typed: req.Object,
	}}}
	rep, err := ev.set.posture[i].Evaluate(ctx, in)
	if err != nil {
		return nil, err
	}
	ev.posture[i] = rep
	return rep, nil
}

var pssOrder = map[string]int{"privileged": 0, "baseline": 1, "restricted": 2}

func (p *Policy) evalPosture(ctx context.Context, ev *evaluation) []Violation {
	if ev.req.Object == nil || ev.spec == nil {
		return nil
	}
	rep, err := ev.postureReport(ctx, p.posture)
	if err != nil {
		return []Violation{{Rule: RuleConfiguration, Finding: "error", Message: "configuration checks failed: " + err.Error()}}
	}
	if len(rep.Objects) == 0 {
		return nil
	}
	want := p.want[0]
	if ev.req.ImageRulesOnly {
		want = p.want[1]
	}
	if want == nil { // a policy not loaded through newSet
		want = p.postureWant(ev.req.ImageRulesOnly)
	}
	var level string
	if c := p.config; c != nil && !ev.req.ImageRulesOnly {
		if c.podSecurity != "" && pssOrder[rep.Objects[0].PSSLevel] < pssOrder[c.podSecurity] {
			level = c.podSecurity
		}
	}
	var out []Violation
	for _, f := range ev.failures(p.posture, rep) {
		ctl := f.ctl
		family, ok := want[ctl.ID]
		if !ok && level != "" && ctl.Upstream != "" && (ctl.PSS == "baseline" || level == "restricted") {
			family, ok = RuleConfiguration, true
		}
		if !ok {
			continue
		}
		v := f.v
		v.Rule = family
		out = append(out, v)
	}
	return out
}

// failure is one failed posture check on one container, parsed once per
// request however many policies look at it.
type failure struct {
	ctl *posture.Control
	v   Violation // Rule is set by the policy
}

func (ev *evaluation) failures(i int, rep *posture.Report) []failure {
	if ev.parsed == nil {
		ev.parsed = make([][]failure, len(ev.set.posture))
	}
	if ev.parsed[i] != nil {
		return ev.parsed[i]
	}
	out := []failure{}
	for ri := range rep.Results {
		res := &rep.Results[ri]
		if res.Object != 0 || res.Status != posture.StatusFail {
			continue
		}
		ctl := ev.set.controls[res.Control]
		if ctl == nil {
			continue
		}
		details := rep.Details(ri)
		if len(details) == 0 { // a result without details: one problem
			details = []posture.Detail{{Message: res.Message, Problem: res.Message}}
		}
		for _, d := range details {
			// Attribution comes from posture's structured details, not
			// from its message text.
			v := Violation{Finding: res.Control, Severity: res.Severity, Message: ctl.Title + ": " + d.Problem, Fix: ctl.Remediation,
				Container: d.Container, Image: d.Image}
			if ctl.Upstream != "" {
				v.Message = "Pod Security Standards " + ctl.PSS + ": " + d.Message
			}
			out = append(out, failure{ctl: ctl, v: v})
		}
	}
	ev.parsed[i] = out
	return out
}

func (p *Policy) evalMutableTags(ev *evaluation) []Violation {
	var out []Violation
	for _, c := range ev.conts {
		ref, err := reference.ParseNormalizedNamed(c.Image)
		if err != nil {
			continue // the latest-tag control reports invalid references
		}
		if _, ok := ref.(reference.Digested); ok {
			continue
		}
		if t, ok := ref.(reference.Tagged); ok && p.prov.mutableTags[t.Tag()] {
			out = append(out, Violation{Rule: RuleProvenance, Container: c.Name, Image: c.Image, Finding: "mutable-tag", Severity: vulndb.SeverityMedium,
				Message: fmt.Sprintf("tag %q is mutable: what runs may differ from what was scanned", t.Tag()),
				Fix:     "reference an immutable version tag or pin the digest (image@sha256:...)"})
		}
	}
	return out
}

// vars builds the CEL variables once per request.
func (ev *evaluation) vars() (*celeval.Vars, error) {
	if ev.celVars != nil || ev.celErr != nil {
		return ev.celVars, ev.celErr
	}
	req := ev.req
	v := &celeval.Vars{}
	var err error
	uses := ev.set.celUses
	if uses == nil { // a Set not built by newSet: build them all
		uses = map[string]bool{celeval.VarObject: true, celeval.VarOldObject: true, celeval.VarRequest: true, celeval.VarNamespaceObject: true}
	}
	switch {
	case !uses[celeval.VarObject]:
	case len(req.ObjectJSON) > 0:
		var release func()
		v.Object, release, err = ev.set.json.FromJSONFields(req.ObjectJSON, ev.set.celFields[celeval.VarObject])
		ev.release = append(ev.release, release)
	case req.Object != nil:
		v.Object, err = celeval.ToValue(req.Object)
	}
	if err == nil && len(req.OldObjectJSON) > 0 && uses[celeval.VarOldObject] {
		var release func()
		v.OldObject, release, err = ev.set.json.FromJSONFields(req.OldObjectJSON, ev.set.celFields[celeval.VarOldObject])
		ev.release = append(ev.release, release)
	}
	if err == nil && req.NamespaceObject != nil && uses[celeval.VarNamespaceObject] {
		v.NamespaceObject, err = celeval.ToValue(req.NamespaceObject)
	}
	if uses[celeval.VarRequest] {
		groups := make([]any, len(req.User.Groups))
		for i, g := range req.User.Groups {
			groups[i] = g
		}
		v.Request = map[string]any{
			"uid": req.UID, "operation": req.Operation, "namespace": req.Namespace, "name": req.Name,
			"kind":        map[string]any{"kind": req.Kind},
			"subResource": req.SubResource, "dryRun": req.DryRun,
			"userInfo": map[string]any{"username": req.User.Username, "uid": req.User.UID, "groups": groups},
		}
	}
	ev.celVars, ev.celErr = v, err
	return v, err
}

func (r *celRule) eval(ctx context.Context, ev *evaluation) (Violation, bool) {
	v := Violation{Rule: RuleCELPrefix + r.name, Finding: r.name, Severity: r.severity, Fix: r.fix}
	shared, err := ev.vars()
	vars := *shared // the request's variables with this policy's params
	vars.Params = r.params
	if r.paramRef != "" && err == nil {
		var found bool
		vars.Params, found, err = ev.paramData(ctx, r.paramRef)
		switch {
		case err != nil:
			v.Message = fmt.Sprintf("custom rule %s: its params (ConfigMap %s) could not be read: %v", r.name, r.paramRef, err)
			return v, true
		case !found && r.paramNotFoundAllow:
			return v, false
		case !found:
			v.Message = fmt.Sprintf("custom rule %s: its params (ConfigMap %s in Bulwark's namespace) do not exist", r.name, r.paramRef)
			v.Fix = "create ConfigMap " + r.paramRef + " in Bulwark's namespace, or set paramRef.notFound: allow"
			return v, true
		}
	}
	if r.paramKind != nil && err == nil {
		return r.evalEachParam(ctx, ev, v, vars)
	}
	if err == nil {
		var ok bool
		ok, err = ev.evalRule(ctx, r, vars)
		if err == nil && ok {
			return v, false
		}
	}
	return r.violation(ctx, v, vars, err), true
}

// violation fills v's message: the evaluation error, or the rule's
// message (its messageExpression's when that evaluates).
func (r *celRule) violation(ctx context.Context, v Violation, vars celeval.Vars, err error) Violation {
	if err != nil {
		v.Message = fmt.Sprintf("custom rule %s could not be evaluated: %v", r.name, err)
		return v
	}
	v.Message = r.message
	if r.msgExpr != nil {
		if m, err := r.msgExpr.EvalString(ctx, vars); err == nil && m != "" {
			v.Message = m
		}
	}
	return v
}

// evalEachParam evaluates a rule of a policy with a paramKind once per
// param resource (ValidatingAdmissionPolicy's rule for a selector that
// matches several): it holds only if it holds for every one; the
// violation names the first it fails for.
func (r *celRule) evalEachParam(ctx context.Context, ev *evaluation, v Violation, vars celeval.Vars) (Violation, bool) {
	q := r.paramKind.query(ev.req.Namespace)
	objs, err := ev.paramObjects(ctx, q)
	switch {
	case err != nil:
		v.Message = fmt.Sprintf("custom rule %s: its params (%s) could not be read: %v", r.name, q, err)
		return v, true
	case len(objs) == 0 && r.paramNotFoundAllow:
		return v, false
	case len(objs) == 0:
		v.Message = fmt.Sprintf("custom rule %s: its params (%s) do not exist", r.name, q)
		v.Fix = "create the " + r.paramKind.kind + " paramRef names, or set paramRef.notFound: allow"
		return v, true
	}
	for _, o := range objs {
		vars.Params = o.Object
		ok, err := r.expr.Eval(ctx, vars)
		if err == nil && ok {
			continue
		}
		v = r.violation(ctx, v, vars, err)
		where := o.Name
		if o.Namespace != "" {
			where = o.Namespace + "/" + o.Name
		}
		v.Message += " (params: " + r.paramKind.kind + " " + where + ")"
		return v, true
	}
	return v, false
}

// query is the ParamQuery of a request in namespace ns.
func (p *paramKindRef) query(ns string) *ParamQuery {
	return &ParamQuery{APIVersion: p.apiVersion, Kind: p.kind, Name: p.name, Selector: p.selector, Namespace: p.namespace, RequestNamespace: ns}
}

// paramObjects reads a paramKind query's objects once per request (the
// rules of one policy share them).
func (ev *evaluation) paramObjects(ctx context.Context, q *ParamQuery) ([]ParamObject, error) {
	key := q.String()
	if p, ok := ev.paramObjs[key]; ok {
		return p.objs, p.err
	}
	var p paramObjsEntry
	if ev.req.ParamObjects == nil {
		p.err = errors.New("no source for param resources (the webhook has no Kubernetes client)")
	} else {
		p.objs, p.err = ev.req.ParamObjects.ParamObjects(ctx, q)
	}
	if ev.paramObjs == nil {
		ev.paramObjs = map[string]paramObjsEntry{}
	}
	ev.paramObjs[key] = p
	return p.objs, p.err
}

type paramObjsEntry struct {
	objs []ParamObject
	err  error
}

// paramData reads a paramRef's ConfigMap once per request (rules of one
// policy share it) as CEL's params: the data mapping, strings by key.
func (ev *evaluation) paramData(ctx context.Context, name string) (any, bool, error) {
	if p, ok := ev.params[name]; ok {
		return p.data, p.found, p.err
	}
	var p paramEntry
	if ev.req.Params == nil {
		p.err = errors.New("no ConfigMap source (the webhook has no Kubernetes client)")
	} else {
		var data map[string]string
		data, p.found, p.err = ev.req.Params.ConfigMapData(ctx, name)
		if p.found && p.err == nil {
			m := make(map[string]any, len(data))
			for k, v := range data {
				m[k] = v
			}
			p.data = m
		}
	}
	if ev.params == nil {
		ev.params = map[string]paramEntry{}
	}
	ev.params[name] = p
	return p.data, p.found, p.err
}

type paramEntry struct {
	data  any
	found bool
	err   error
}

// celResult is the outcome of one rule group's expression in a request.
type celResult struct {
	done, ok bool
	err      error
}

// evalRule evaluates r's expression once per request per rule group:
// the same expression with equal params on the same request yields the
// same result.
func (ev *evaluation) evalRule(ctx context.Context, r *celRule, vars celeval.Vars) (bool, error) {
	if r.group < 0 || r.group >= ev.set.celGroups {
		return r.expr.Eval(ctx, vars)
	}
	if ev.cel == nil {
		ev.cel = make([]celResult, ev.set.celGroups)
	}
	res := &ev.cel[r.group]
	if !res.done {
		res.ok, res.err = r.expr.Eval(ctx, vars)
		res.done = true
	}
	return res.ok, res.err
}
