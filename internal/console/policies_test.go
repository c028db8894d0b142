package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/celeval"
	"github.com/bulwark-security/bulwark/internal/policy"
	"github.com/bulwark-security/bulwark/internal/store"
)

// putPolicyWith is Deps.PutAdmissionPolicy as central wires it
// (server.PutAdmissionPolicy): the document is checked with the other
// stored ones by the same Loader.LoadCentral, then stored.
func putPolicyWith(st *store.Store) func(ctx context.Context, name, y, by string) (*store.AdmissionPolicy, int, error) {
	return func(ctx context.Context, name, y, by string) (*store.AdmissionPolicy, int, error) {
		ps, _, err := st.ListAdmissionPolicies(ctx)
		if err != nil {
			return nil, 0, err
		}
		stored := map[string]string{}
		for _, p := range ps {
			stored[p.Name] = p.YAML
		}
		env, err := celeval.NewEnv()
		if err != nil {
			return nil, 0, err
		}
		l, err := policy.NewLoader(env, nil)
		if err != nil {
			return nil, 0, err
		}
		set, err := l.LoadCentral(ctx, stored, name, []byte(y))
		if err != nil {
			return nil, 0, err
		}
		p, err := st.PutAdmissionPolicy(ctx, name, y, by)
		if err != nil {
			return nil, 0, err
		}
		return p, len(set.Policies()), nil
	}
}

const consolePolicy = `apiVersion: bulwark.dev/v1alpha1
kind: Policy
metadata: {name: prod-gate}
spec:
  mode: deny
  provenance: {noLatest: true}
`

// TestPolicyPages: an administrator creates, edits and deletes policy
// documents; a bad document is refused with its line and the text stays in
// the form; stored content is escaped; an analyst reads but cannot change
// (the form is absent and a POST is refused); every change is audited and
// needs the CSRF token.
func TestPolicyPages(t *testing.T) {
	w, st := openWorld(t)
	ctx := context.Background()
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now, func(_ *Config, d *Deps) { d.PutAdmissionPolicy = putPolicyWith(st) }))
	t.Cleanup(srv.Close)
	admin := newClient(t, srv)
	admin.login(adminUser, adminPass)

	resp, page := admin.get("/policies")
	if resp.StatusCode != 200 || !strings.Contains(page, `id="policy-new"`) || !strings.Contains(page, `aria-current="page">Policies`) {
		t.Fatalf("policies page: %d", resp.StatusCode)
	}
	csrf := csrfIn(t, page)
	// No CSRF token: refused.
	if resp, _ := admin.post("/policies", url.Values{"name": {"gate"}, "yaml": {consolePolicy}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("create without CSRF: %d", resp.StatusCode)
	}
	// Invalid: refused with the line, the text kept, nothing stored.
	bad := strings.Replace(consolePolicy, "mode: deny", "mode: enforce", 1)
	resp, page = admin.post("/policies", url.Values{"csrf": {csrf}, "name": {"gate"}, "yaml": {bad}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, `central:gate:5`) || !strings.Contains(page, `mode &#34;enforce&#34;`) ||
		!strings.Contains(page, "mode: enforce") {
		t.Errorf("invalid document: %d\n%s", resp.StatusCode, between(page, `id="form-error"`, "</form>"))
	}
	if ps, _, _ := st.ListAdmissionPolicies(ctx); len(ps) != 0 {
		t.Fatalf("an invalid document was stored: %+v", ps)
	}
	// Valid: stored, audited, redirected to its page.
	resp, _ = admin.post("/policies", url.Values{"csrf": {csrf}, "name": {"gate"}, "yaml": {consolePolicy}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(resp.Header.Get("Location"), "/policies/gate") {
		t.Fatalf("create: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, page = admin.get("/policies/gate")
	if resp.StatusCode != 200 || !strings.Contains(page, "Saved gate (version") || !strings.Contains(page, "noLatest: true") {
		t.Errorf("document page: %d", resp.StatusCode)
	}
	// A second document reusing the policy name is refused (loaded together).
	resp, page = admin.post("/policies", url.Values{"csrf": {csrf}, "name": {"gate2"}, "yaml": {consolePolicy}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "prod-gate") {
		t.Errorf("duplicate policy name: %d", resp.StatusCode)
	}
	// The name is taken: refused, pointing at the edit page.
	if resp, _ := admin.post("/policies", url.Values{"csrf": {csrf}, "name": {"gate"}, "yaml": {consolePolicy}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("create over an existing name: %d", resp.StatusCode)
	}
	// Edit with hostile content in a comment: stored, shown escaped.
	edited := consolePolicy + "# <script>alert(1)</script>\n"
	resp, _ = admin.post("/policies/gate", url.Values{"csrf": {csrf}, "yaml": {edited}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("edit: %d", resp.StatusCode)
	}
	_, page = admin.get("/policies/gate")
	if strings.Contains(page, "<script>alert(1)") || !strings.Contains(page, "&lt;script&gt;alert(1)") {
		t.Errorf("stored content not escaped")
	}
	p, _, _ := st.ListAdmissionPolicies(ctx)
	if len(p) != 1 || p[0].YAML != edited || p[0].UpdatedBy != "user:admin" {
		t.Errorf("stored: %+v", p)
	}

	// An analyst reads; cannot change.
	an := newClient(t, srv)
	an.login(analystUser, analystPass)
	resp, page = an.get("/policies/gate")
	if resp.StatusCode != 200 || strings.Contains(page, `id="policy-edit"`) || !strings.Contains(page, `id="policy-yaml"`) {
		t.Errorf("analyst view: %d", resp.StatusCode)
	}
	if resp, _ := an.post("/policies/gate/delete", url.Values{"csrf": {csrfIn(t, page)}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("analyst delete: %d", resp.StatusCode)
	}
	// Unknown documents, hostile names.
	for _, path := range []string{"/policies/nope", "/policies/%3Cscript%3E"} {
		if resp, _ := admin.get(path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
	// Delete.
	resp, _ = admin.post("/policies/gate/delete", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if p, _, _ := st.ListAdmissionPolicies(ctx); len(p) != 0 {
		t.Errorf("not deleted: %+v", p)
	}
	audit, _, err := st.ListAudit(ctx, store.AuditFilter{}, store.Page{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range audit {
		if strings.HasPrefix(e.Action, "admission.policy.") {
			actions = append(actions, e.Action+" "+e.Target)
		}
	}
	if got := strings.Join(actions, ","); got != "admission.policy.delete admission/policy/gate,admission.policy.put admission/policy/gate,admission.policy.put admission/policy/gate" {
		t.Errorf("audit: %s", got)
	}
	// Without the dependency: documents are shown, not edited.
	ro := httptest.NewTLSServer(newTestConsole(t, st, w.now))
	t.Cleanup(ro.Close)
	rc := newClient(t, ro)
	rc.login(adminUser, adminPass)
	if _, page := rc.get("/policies"); strings.Contains(page, `id="policy-new"`) {
		t.Errorf("edit form shown without PutAdmissionPolicy")
	}
}

// between is s from the first a to the next b (for failure messages).
func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, b); j >= 0 {
		return s[:j]
	}
	return s
}

// TestClustersPage: each registered cluster with its open alerts, running
// images and the last day's admission decisions, linked to the filtered
// pages; a silent cluster is marked stale.
func TestClustersPage(t *testing.T) {
	w, st := openWorld(t)
	ctx := context.Background()
	if _, err := st.UpsertCluster(ctx, store.Cluster{Name: "edge-<b>", Description: "edge sites", AgentVersion: "v9.9",
		Labels: map[string]string{"env": "prod"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.IngestAlerts(ctx, []alerts.Alert{{ID: "c-1", Time: w.now.Add(-time.Minute), Source: alerts.SourceSensor,
		Rule: "Shell", Severity: alerts.SeverityHigh, Title: "t", Cluster: "edge-<b>", Namespace: "shop"}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now.Add(time.Hour)))
	t.Cleanup(srv.Close)
	c := newClient(t, srv)
	c.login(analystUser, analystPass)
	resp, page := c.get("/clusters")
	if resp.StatusCode != 200 {
		t.Fatalf("clusters page: %d", resp.StatusCode)
	}
	row := between(page, `data-cluster="edge-&lt;b&gt;"`, "</tr>")
	for _, want := range []string{"edge sites", "env=prod", "v9.9", `data-count="new">1 new`, "stale",
		`href="/alerts?cluster=edge-%3Cb%3E&amp;status=new"`} {
		if !strings.Contains(row, want) {
			t.Errorf("row lacks %q:\n%s", want, row)
		}
	}
	if strings.Contains(page, "edge-<b>") {
		t.Errorf("cluster name not escaped")
	}
	cs, _ := st.ListClusters(ctx)
	if n := strings.Count(page, "<tr data-cluster="); n != len(cs) || n < 1 {
		t.Errorf("%d rows for %d clusters", n, len(cs))
	}
}
