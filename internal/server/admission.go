package server

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/bulwark-security/bulwark/internal/policy"
	"github.com/bulwark-security/bulwark/internal/store"
)

// Admission decisions (issue 4): the webhooks post their decisions in
// batches; the console and the API read them back.

var rolesAdmissionPost = []store.Role{store.RoleAdmin, store.RoleAgent}

type admissionIngestResponse struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

func (s *Server) postAdmissionDecisions(c *call) error {
	var b policy.DecisionBatch
	if err := c.decode(&b, policy.MaxDecisionBodyBytes, true); err != nil {
		return err
	}
	if len(b.Decisions) == 0 {
		return badRequest("no decisions in the batch")
	}
	if len(b.Decisions) > policy.MaxDecisionBatch {
		return badRequest("%d decisions in one batch (limit %d)", len(b.Decisions), policy.MaxDecisionBatch)
	}
	rows := make([]store.AdmissionDecision, 0, len(b.Decisions))
	for i := range b.Decisions {
		d := &b.Decisions[i]
		if err := d.Validate(); err != nil {
			return badRequest("%v", err)
		}
		rec, err := json.Marshal(d)
		if err != nil {
			return badRequest("decision %s: %v", d.ID, err)
		}
		rows = append(rows, store.AdmissionDecision{ID: d.ID, At: d.Time, Cluster: d.Cluster, Operation: d.Operation, Kind: d.Kind,
			SubResource: d.SubResource, Namespace: d.Namespace, Name: d.Name, User: d.User, Verdict: string(d.Verdict),
			Allowed: d.Allowed, Violations: len(d.Violations), PolicyVersion: d.PolicyVersion, Record: rec})
	}
	acc, dups, err := s.st.InsertAdmissionDecisions(c.r.Context(), rows)
	if err != nil {
		return err
	}
	c.audit("admission/decisions", map[string]any{"decisions": len(rows), "accepted": acc, "duplicates": dups})
	return c.JSON(http.StatusOK, admissionIngestResponse{Accepted: acc, Duplicates: dups})
}

type admissionDecisionJSON struct {
	ID         string          `json:"id"`
	At         time.Time       `json:"at"`
	ReceivedAt time.Time       `json:"receivedAt"`
	Cluster    string          `json:"cluster,omitempty"`
	Operation  string          `json:"operation"`
	Kind       string          `json:"kind"`
	Namespace  string          `json:"namespace,omitempty"`
	Name       string          `json:"name,omitempty"`
	User       string          `json:"user,omitempty"`
	Verdict    string          `json:"verdict"`
	Allowed    bool            `json:"allowed"`
	Violations int             `json:"violations"`
	Record     json.RawMessage `json:"record"`
}

func toAdmissionDecision(d *store.AdmissionDecision) admissionDecisionJSON {
	return admissionDecisionJSON{d.ID, d.At, d.ReceivedAt, d.Cluster, d.Operation, d.Kind, d.Namespace, d.Name, d.User,
		d.Verdict, d.Allowed, d.Violations, d.Record}
}

func (s *Server) listAdmissionDecisions(c *call) error {
	return listPage(c, func(c *call) (store.AdmissionFilter, error) {
		q := c.r.URL.Query()
		f := store.AdmissionFilter{Cluster: q.Get("cluster"), Namespace: q.Get("namespace"), Verdict: q.Get("verdict"),
			Kind: q.Get("kind"), Operation: q.Get("operation")}
		switch f.Verdict {
		case "", "allow", "audit", "warn", "deny":
		default:
			return f, badRequest("verdict must be allow, audit, warn or deny")
		}
		var err error
		f.Since, err = c.timeParam("since")
		return f, err
	}, s.st.ListAdmissionDecisions, toAdmissionDecision)
}
