package server

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/policy"
	"github.com/bulwark-security/bulwark/internal/store"
)

func TestAdmissionDecisionsAPI(t *testing.T) {
	e := startEnv(t, filepath.Join(t.TempDir(), "bulwark.db"), Config{Workers: -1})
	agent, analyst := e.token(store.RoleAgent), e.token(store.RoleAnalyst)
	rec := policy.DecisionRecord{ID: "0f1e2d3c", Time: time.Now().UTC(), Cluster: "eu", Operation: "CREATE", Kind: "Pod", Namespace: "prod",
		Name: "web", User: "alice", Verdict: policy.VerdictDeny, Policies: []string{"prod-gate"},
		Violations: []policy.Violation{{Policy: "prod-gate", Mode: policy.ModeDeny, Rule: "vulnerabilities", Container: "app", Finding: "CVE-2021-44228", Message: "m", Fix: "f"}}}
	body := policy.DecisionBatch{Decisions: []policy.DecisionRecord{rec}}
	if st, b := e.do("POST", "/api/v1/admission/decisions", agent, body); st != 200 || !strings.Contains(string(b), `"accepted":1`) {
		t.Fatalf("post: %d %s", st, b)
	}
	if st, b := e.do("POST", "/api/v1/admission/decisions", agent, body); st != 200 || !strings.Contains(string(b), `"duplicates":1`) {
		t.Fatalf("replay: %d %s", st, b)
	}
	if st, _ := e.do("POST", "/api/v1/admission/decisions", analyst, body); st != 403 {
		t.Errorf("analyst may not post: %d", st)
	}
	for name, bad := range map[string]any{
		"empty":       policy.DecisionBatch{},
		"no verdict":  policy.DecisionBatch{Decisions: []policy.DecisionRecord{{ID: "x", Time: time.Now(), Operation: "CREATE", Kind: "Pod"}}},
		"unknown key": []byte(`{"decisions":[],"extra":1}`),
		"malformed":   []byte(`{"decisions":[`),
	} {
		if st, b := e.do("POST", "/api/v1/admission/decisions", agent, bad); st != 400 {
			t.Errorf("%s: %d %s", name, st, b)
		}
	}
	var page struct {
		Items []struct {
			ID, Verdict, Namespace string
			Violations             int
			Record                 policy.DecisionRecord
		} `json:"items"`
		Total int `json:"total"`
	}
	st, b := e.do("GET", "/api/v1/admission/decisions?verdict=deny&namespace=prod", analyst, nil)
	if st != 200 {
		t.Fatalf("list: %d %s", st, b)
	}
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatal(err)
	}
	if page.Total != 1 || page.Items[0].Violations != 1 || page.Items[0].Record.Violations[0].Finding != "CVE-2021-44228" {
		t.Errorf("list: %s", b)
	}
	if st, _ := e.do("GET", "/api/v1/admission/decisions?verdict=maybe", analyst, nil); st != 400 {
		t.Errorf("bad verdict filter: %d", st)
	}
}
