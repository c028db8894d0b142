package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/store"
)

const denyLatestDoc = `apiVersion: bulwark.dev/v1alpha1
kind: Policy
metadata: {name: no-latest}
spec:
  mode: deny
  provenance: {noLatest: true}
`

// TestAdmissionPolicyAPI stores, validates, lists (with ETags) and deletes
// admission policy documents.
func TestAdmissionPolicyAPI(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			e := startEnv(t, b.DSN(t), Config{Workers: -1})
			const path = "/api/v1/admission/policies"
			var empty admissionPoliciesJSON
			e.get(path, &empty)
			if len(empty.Items) != 0 || empty.ETag == "" {
				t.Fatalf("empty list: %+v", empty)
			}

			// A document with an error on line 6 is refused, naming the line.
			bad := strings.Replace(denyLatestDoc, "noLatest: true", "noLatets: true", 1)
			st, body := e.do("PUT", path+"/strict", e.admin, []byte(bad))
			if st != 400 || errorCode(body) != "invalid" || !strings.Contains(string(body), "central:strict:6") {
				t.Errorf("invalid document: %d %s", st, body)
			}
			if st, body := e.do("PUT", path+"/bad%20name", e.admin, []byte(denyLatestDoc)); st != 400 {
				t.Errorf("bad name: %d %s", st, body)
			}
			if st, body := e.do("PUT", path+"/strict", e.admin, []byte("  \n")); st != 400 {
				t.Errorf("empty document: %d %s", st, body)
			}

			st, body = e.do("PUT", path+"/strict", e.admin, []byte(denyLatestDoc))
			var put admissionPolicyJSON
			if st != 200 || json.Unmarshal(body, &put) != nil || put.Name != "strict" || put.YAML != denyLatestDoc ||
				!strings.HasPrefix(put.UpdatedBy, "token:test-admin") {
				t.Fatalf("put: %d %s", st, body)
			}
			// The same policy name in a second document is refused: the
			// webhooks load all documents together.
			if st, body := e.do("PUT", path+"/other", e.admin, []byte(denyLatestDoc)); st != 400 || !strings.Contains(string(body), "no-latest") {
				t.Errorf("duplicate policy across documents: %d %s", st, body)
			}
			// Replacing the same document with itself is fine.
			if st, body := e.do("PUT", path+"/strict", e.admin, []byte(denyLatestDoc)); st != 200 {
				t.Errorf("replace: %d %s", st, body)
			}

			// An agent reads the set; the ETag revalidates to 304 until a change.
			agent := e.token(store.RoleAgent)
			st, body = e.do("GET", path, agent, nil)
			var list admissionPoliciesJSON
			if st != 200 || json.Unmarshal(body, &list) != nil || len(list.Items) != 1 || list.Items[0].YAML != denyLatestDoc {
				t.Fatalf("list: %d %s", st, body)
			}
			if list.ETag == empty.ETag {
				t.Errorf("ETag did not change after a put: %s", list.ETag)
			}
			if st, body := e.do("GET", path, agent, nil, "If-None-Match", list.ETag); st != 304 || len(body) != 0 {
				t.Errorf("If-None-Match current: %d %s", st, body)
			}
			if st, _ := e.do("GET", path, agent, nil, "If-None-Match", empty.ETag); st != 200 {
				t.Errorf("If-None-Match stale: %d", st)
			}
			if st, _ := e.do("DELETE", path+"/strict", agent, nil); st != 403 {
				t.Errorf("agent delete: %d", st)
			}

			if st, body := e.do("DELETE", path+"/strict", e.admin, nil); st != 204 {
				t.Fatalf("delete: %d %s", st, body)
			}
			if st, _ := e.do("DELETE", path+"/strict", e.admin, nil); st != 404 {
				t.Errorf("delete again: %d", st)
			}
			if st, _ := e.do("GET", path, agent, nil, "If-None-Match", list.ETag); st != 200 {
				t.Errorf("If-None-Match after delete: %d", st)
			}

			// Writes are audited, the refused one too.
			es, _, err := e.st.ListAudit(context.Background(), store.AuditFilter{Action: "admission.policy.put"}, store.Page{Limit: 100})
			if err != nil || len(es) != 6 {
				t.Errorf("put audit entries: %d, %v", len(es), err)
			}
			for _, a := range es {
				if a.Target != "admission/policy/strict" && a.Target != "admission/policy/other" && a.Target != "admission/policy/bad name" {
					t.Errorf("audit target %q", a.Target)
				}
			}
		})
	}
}
