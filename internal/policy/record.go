package policy

import (
	"errors"
	"fmt"
	"time"
)

// DecisionRecord is one admission decision as sent to central
// (POST /api/v1/admission/decisions, inside DecisionBatch) and stored: who
// asked for what, which policies and rules judged it, and the verdict.
type DecisionRecord struct {
	// ID is chosen by the sender (a UUID): a batch replayed after a
	// timeout stores nothing twice.
	ID            string      `json:"id"`
	Time          time.Time   `json:"time"`
	Cluster       string      `json:"cluster,omitempty"`
	RequestUID    string      `json:"requestUid,omitempty"`
	Operation     string      `json:"operation"`
	Kind          string      `json:"kind"`
	SubResource   string      `json:"subResource,omitempty"`
	Namespace     string      `json:"namespace,omitempty"`
	Name          string      `json:"name,omitempty"`
	User          string      `json:"user,omitempty"`
	Groups        []string    `json:"groups,omitempty"`
	DryRun        bool        `json:"dryRun,omitempty"`
	Verdict       Verdict     `json:"verdict"`
	Allowed       bool        `json:"allowed"`
	Policies      []string    `json:"policies,omitempty"`
	PolicyVersion string      `json:"policyVersion,omitempty"`
	Images        []string    `json:"images,omitempty"`
	Violations    []Violation `json:"violations,omitempty"`
	Exempted      []Violation `json:"exempted,omitempty"`
	Notes         []string    `json:"notes,omitempty"`
	LatencyMS     float64     `json:"latencyMs,omitempty"`
}

// DecisionBatch is the body of POST /api/v1/admission/decisions.
type DecisionBatch struct {
	Decisions []DecisionRecord `json:"decisions"`
}

// Limits of the decisions API.
const (
	MaxDecisionBatch     = 1000
	MaxDecisionBodyBytes = 16 << 20
)

// ErrInvalidRecord is wrapped by Validate errors.
var ErrInvalidRecord = errors.New("invalid decision record")

// Validate checks the fields central relies on.
func (r *DecisionRecord) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrInvalidRecord, fmt.Sprintf(f, a...)) }
	switch {
	case r.ID == "" || len(r.ID) > 128:
		return bad("id is required (at most 128 bytes)")
	case r.Time.IsZero():
		return bad("decision %s: time is required", r.ID)
	case r.Operation == "" || r.Kind == "":
		return bad("decision %s: operation and kind are required", r.ID)
	}
	switch r.Verdict {
	case VerdictAllow, VerdictAudit, VerdictWarn, VerdictDeny:
	default:
		return bad("decision %s: verdict %q", r.ID, r.Verdict)
	}
	if len(r.Violations)+len(r.Exempted) > 10000 {
		return bad("decision %s: too many violations", r.ID)
	}
	return nil
}
