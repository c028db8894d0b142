package policy

import (
	"path"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/bulwark-security/bulwark/internal/celeval"
	"github.com/bulwark-security/bulwark/internal/posture"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// APIVersion and the kinds a policy file may hold.
const (
	APIVersion = "bulwark.dev/v1alpha1"
	KindPolicy = "Policy"
	KindList   = "PolicyList"
)

// Mode says what a violation does.
type Mode string

const (
	// ModeAudit admits and records the violation.
	ModeAudit Mode = "audit"
	// ModeWarn admits and shows the violation to the client as a warning
	// (kubectl prints it).
	ModeWarn Mode = "warn"
	// ModeDeny refuses the request.
	ModeDeny Mode = "deny"
)

// Unscanned says what to do with an image central has never scanned.
type Unscanned string

const (
	UnscannedAllow Unscanned = "allow"
	UnscannedDeny  Unscanned = "deny"
	// UnscannedScan asks the ImageSource to scan the image now (when it
	// implements Scanner) and judges the result if it arrives within
	// ScanTimeout; otherwise the image is denied.
	UnscannedScan Unscanned = "scan"
)

// Rule families, the Violation.Rule values (CEL rules are "cel:NAME").
const (
	RuleVulnerabilities = "vulnerabilities"
	RuleUnscanned       = "unscanned"
	RuleConfiguration   = "configuration"
	RuleProvenance      = "provenance"
	RuleConnect         = "connect"
	RuleCELPrefix       = "cel:"
)

// Policy is one loaded, compiled policy document.
type Policy struct {
	Name string
	// Source is the file (or "central") and Line the line of its
	// document, for messages.
	Source string
	Line   int
	Mode   Mode

	scope      scope
	exemptions []Exemption
	vuln       *vulnRule
	config     *configRule
	prov       *provRule
	cel        []celRule
	connect    *connectRule
	// postureKey selects the posture evaluator of the configuration and
	// provenance rules (nil when neither is set); posture is its index in
	// Set.posture.
	postureKey *postureKey
	posture    int
	// want maps the posture controls the policy judges to their rule
	// family: [0] for full requests, [1] for ImageRulesOnly. Built once
	// by newSet, read by every evaluation.
	want [2]map[string]string
}

// Exemption lifts a policy's rules for the objects it matches until it
// expires. The reason is mandatory: it is shown in decisions.
type Exemption struct {
	Namespace string            // glob; empty matches all
	Kind      string            // glob
	Name      string            // glob
	Labels    map[string]string // the object's labels must include these
	// Rules are rule families ("vulnerabilities", "configuration",
	// "provenance", "connect", "unscanned", "cel:NAME"), control ids
	// ("BW-K8S-0001") or vulnerability ids; empty exempts every rule.
	Rules   []string
	Reason  string
	Expires time.Time
	Line    int
}

func (x *Exemption) matchesObject(ns, kind, name string, labels map[string]string) bool {
	if !glob(x.Namespace, ns) || !glob(x.Kind, kind) || !glob(x.Name, name) {
		return false
	}
	for k, v := range x.Labels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (x *Exemption) covers(v *Violation) bool {
	if len(x.Rules) == 0 {
		return true
	}
	for _, r := range x.Rules {
		if r == v.Rule || r == v.Finding || (r == "cel" && strings.HasPrefix(v.Rule, RuleCELPrefix)) {
			return true
		}
	}
	return false
}

func glob(pattern, s string) bool {
	if pattern == "" || pattern == "*" {
		return true
	}
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

type scope struct {
	namespaces, excludeNamespaces []string // globs
	namespaceSelector             *selector
	objectSelector                *selector
	kinds                         map[string]bool // empty: every supported kind
	operations                    map[string]bool // empty: CREATE and UPDATE (and CONNECT for connect rules)
}

type vulnRule struct {
	maxSeverity    vulndb.Severity // findings above it violate; SeverityUnknown: severity alone never violates
	severitySet    bool
	fixableOnly    bool
	minCVSS        float64
	knownExploited bool
	deny           map[string]bool
	denyList       []string // deny's ids, for the short lists where a scan beats hashing
	exceptions     map[string]vulnException
	unscanned      Unscanned
	scanTimeout    time.Duration
	// group numbers the distinct rules of a Set: policies with equal
	// vulnerability rules share one verdict per image and request.
	group int
}

type vulnException struct {
	reason  string
	expires time.Time
}

type configRule struct {
	podSecurity string          // "", "baseline", "restricted"
	controls    map[string]bool // Bulwark controls required (hardening set + extra)
	mutate      []string        // controls fixed by the mutating webhook (Set.Mutate)
}

type provRule struct {
	trusted       bool // BW-K8S-0018 (registries in the posture config)
	noLatest      bool // BW-K8S-0016
	requireDigest bool // BW-K8S-0017
	mutableTags   map[string]bool
}

type celRule struct {
	name     string
	expr     *celeval.Program
	message  string
	msgExpr  *celeval.Program
	fix      string
	severity vulndb.Severity
	// params is the policy's spec.params (JSON-shaped; nil: CEL null).
	params any
	// group numbers the rule's (expression, params) pair in its Set
	// (see Set.groupRules); -1 outside a Set or with a paramRef.
	group int
	// paramRef names the ConfigMap (in Bulwark's namespace) whose data
	// are params, read per request through Request.Params; when it does
	// not exist the rule is a violation unless paramNotFoundAllow.
	paramRef           string
	paramNotFoundAllow bool
	// paramKind, when set, is the policy's spec.paramKind with its
	// paramRef: the param resources are read per request through
	// Request.ParamObjects, and the rule must hold for every one of them.
	paramKind *paramKindRef
}

// paramKindRef is a policy's spec.paramKind and spec.paramRef.
type paramKindRef struct {
	apiVersion, kind string
	name, namespace  string
	selector         labels.Selector
}

type connectRule struct {
	deny        map[string]bool // exec, attach, portforward
	allowUsers  []string        // globs
	allowGroups []string
}

// hardeningControls is Microsoft Defender for Containers' hardening set,
// mapped onto posture's controls: no privileged containers, no privilege
// escalation, non-root, read-only root filesystem, dropped and no added
// capabilities, no host namespaces/ports/hostPath outside the allow list,
// CPU/memory limits, no automounted service account token, no default
// namespace.
var hardeningControls = []string{
	"BW-K8S-0001", "BW-K8S-0002", "BW-K8S-0003", "BW-K8S-0004", "BW-K8S-0005", "BW-K8S-0006",
	"BW-K8S-0007", "BW-K8S-0008", "BW-K8S-0009", "BW-K8S-0010", "BW-K8S-0011", "BW-K8S-0012",
	"BW-K8S-0014", "BW-K8S-0015",
}

// HardeningControls returns the control ids `hardening: true` requires.
func HardeningControls() []string { return append([]string(nil), hardeningControls...) }

// Provenance controls of posture's catalogue.
const (
	controlLatest  = "BW-K8S-0016"
	controlDigest  = "BW-K8S-0017"
	controlTrusted = "BW-K8S-0018"
)

// postureKey identifies one posture configuration; policies sharing it
// share one evaluation per request.
type postureKey struct {
	pssVersion, hostPaths, registries string
}

func newPostureKey(pssVersion string, hostPaths, registries []string) postureKey {
	return postureKey{pssVersion, strings.Join(hostPaths, "\x00"), strings.Join(registries, "\x00")}
}

func (k postureKey) config() posture.Config {
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, "\x00")
	}
	// Decisions read only the failed results: no framework or namespace
	// scores, no passed results.
	return posture.Config{PSSVersion: k.pssVersion, AllowedHostPaths: split(k.hostPaths), TrustedRegistries: split(k.registries),
		SkipScores: true, FailuresOnly: true}
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// kindRE is a Kubernetes kind (CamelCase).
var kindRE = regexp.MustCompile(`^[A-Z][A-Za-z0-9]{0,62}$`)
