package posture

import (
	"fmt"

	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// CatalogueVersion changes whenever a control is added, removed or changes
// its verdicts, so stored results know to be re-evaluated.
const CatalogueVersion = "2026.1"

// Framework names used in Control mappings and in scores.
const (
	FrameworkCIS           = "CIS Kubernetes Benchmark"
	FrameworkNSA           = "NSA-CISA Kubernetes Hardening Guidance"
	FrameworkPSSBaseline   = "Pod Security Standards baseline"
	FrameworkPSSRestricted = "Pod Security Standards restricted"
	FrameworkMITRE         = "MITRE ATT&CK for containers"
	FrameworkAll           = "All controls"
)

// scope is the kind of object a control looks at.
type scope uint8

const (
	scopeWorkload       scope = iota + 1 // objects with a pod spec
	scopeRole                            // Role, ClusterRole
	scopeBinding                         // RoleBinding, ClusterRoleBinding
	scopeService                         // Service
	scopeNamespace                       // each namespace seen in the input
	scopeNamespaced                      // every evaluated namespaced object
	scopeNode                            // host checks (EvaluateNode)
	scopeServiceAccount                  // default ServiceAccounts
	scopeSubject                         // users, groups and service accounts named by bindings
	scopeNone                            // objects only custom controls look at
)

// Control is one entry of the catalogue.
type Control struct {
	ID        string          `json:"id"`
	Title     string          `json:"title"`
	Rationale string          `json:"rationale"`
	Severity  vulndb.Severity `json:"severity"`
	// CIS holds CIS Kubernetes Benchmark (v1.9/v1.10 numbering) section ids.
	CIS []string `json:"cis,omitempty"`
	// NSA names the section of the NSA-CISA Kubernetes Hardening Guidance (v1.2).
	NSA string `json:"nsa,omitempty"`
	// PSS is "baseline" or "restricted" when the control is part of that
	// Pod Security Standards level.
	PSS string `json:"pss,omitempty"`
	// MITRE holds ATT&CK for containers technique ids.
	MITRE       []string `json:"mitre,omitempty"`
	Automated   bool     `json:"automated"`
	Remediation string   `json:"remediation"`
	// Upstream is the k8s.io/pod-security-admission check id the control
	// runs, for PSS controls.
	Upstream string `json:"upstream,omitempty"`
	// Custom is the CEL expression of an organisation's own control
	// (LoadCustomControls); empty for Bulwark's controls.
	Custom string `json:"expression,omitempty"`

	scope scope
	check checkFn
	node  nodeCheckFn
}

// Frameworks lists the frameworks the control counts towards in scores.
func (c *Control) Frameworks() []string {
	fw := make([]string, 0, 5)
	if len(c.CIS) > 0 {
		fw = append(fw, FrameworkCIS)
	}
	if c.NSA != "" {
		fw = append(fw, FrameworkNSA)
	}
	switch c.PSS {
	case "baseline":
		fw = append(fw, FrameworkPSSBaseline, FrameworkPSSRestricted)
	case "restricted":
		fw = append(fw, FrameworkPSSRestricted)
	}
	if len(c.MITRE) > 0 {
		fw = append(fw, FrameworkMITRE)
	}
	return append(fw, FrameworkAll)
}

// Status is a verdict.
type Status uint8

const (
	StatusPass Status = iota + 1
	StatusFail
	StatusSkipped
	// StatusExcepted is a failure an unexpired exception accepts.
	StatusExcepted
)

func (s Status) String() string {
	switch s {
	case StatusPass:
		return "pass"
	case StatusFail:
		return "fail"
	case StatusSkipped:
		return "skipped"
	case StatusExcepted:
		return "excepted"
	}
	return "unknown"
}

// MarshalText writes the status word.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads the status word, so JSON reports read back.
func (s *Status) UnmarshalText(b []byte) error {
	for _, v := range []Status{StatusPass, StatusFail, StatusSkipped, StatusExcepted} {
		if v.String() == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("unknown status %q", b)
}

// PatchOp is one RFC 6902 JSON Patch operation against the object as
// written in the manifest. Ops are ordered: a parent that does not exist is
// added (as an object holding the value) before any child.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// outcome is what a check says about one object.
type outcome struct {
	status  Status
	msg     string
	patch   []PatchOp
	details []Detail // failures only; nil: one detail, msg, about no container
}

func pass() outcome                        { return outcome{status: StatusPass} }
func skip(msg string) outcome              { return outcome{status: StatusSkipped, msg: msg} }
func fail(msg string, p []PatchOp) outcome { return outcome{status: StatusFail, msg: msg, patch: p} }

type checkFn func(cfg *Config, t *target) outcome
