package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/store"
)

// TestBulkAndAdmissionHostileInput: the bulk form and the admission page
// take outside input (form fields, query strings, decision records): a
// bad one changes nothing and says why; decision content is escaped; the
// bulk form needs the CSRF token.
func TestBulkAndAdmissionHostileInput(t *testing.T) {
	w, st := openWorld(t)
	ctx := context.Background()
	var in []alerts.Alert
	for i := range 6 {
		in = append(in, alerts.Alert{ID: fmt.Sprintf("b-%d", i), Time: w.now.Add(-time.Duration(i) * time.Minute), Source: alerts.SourceSensor,
			Rule: fmt.Sprintf("Rule %d", i), Severity: alerts.SeverityHigh, Title: "t", Cluster: "prod", Namespace: []string{"shop", "ci"}[i%2],
			Workload: "Deployment/web", Evidence: json.RawMessage(`{}`)})
	}
	if _, _, err := st.IngestAlerts(ctx, in); err != nil {
		t.Fatal(err)
	}
	evil := `<script>alert(1)</script>`
	if _, _, err := st.InsertAdmissionDecisions(ctx, []store.AdmissionDecision{{ID: "d1", At: w.now.Add(-time.Minute), Cluster: "prod",
		Operation: "CREATE", Kind: "Pod", Namespace: "shop", Name: "x" + evil, Verdict: "deny", Violations: 1,
		Record: json.RawMessage(`{"policies":["p` + evil + `"],"violations":[{"policy":"p","rule":"r","message":` + mustJSON(evil) + `}]}`)}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now))
	t.Cleanup(srv.Close)
	c := newClient(t, srv)
	c.login(analystUser, analystPass)
	resp, page := c.get("/alerts?namespace=shop")
	if resp.StatusCode != 200 || !strings.Contains(page, `id="bulk-form"`) || !strings.Contains(page, `name="namespace" value="shop"`) {
		t.Fatalf("list: %d, bulk form with the filter as hidden fields missing", resp.StatusCode)
	}
	csrf := csrfIn(t, page)
	all, _, _ := st.ListAlerts(ctx, store.AlertFilter{}, store.Page{Sort: "id"})
	unchanged := func(what string) {
		t.Helper()
		if _, n, _ := st.ListAlerts(ctx, store.AlertFilter{Status: store.AlertNew}, store.Page{}); n != len(all) {
			t.Errorf("%s changed %d alerts", what, len(all)-n)
		}
	}
	if resp, _ := c.post("/alerts/bulk", url.Values{"scope": {"selected"}, "id": {fmt.Sprint(all[0].ID)}, "bulk_status": {"resolved"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("bulk without CSRF: %d", resp.StatusCode)
	}
	unchanged("bulk without CSRF")
	for name, form := range map[string]url.Values{
		"no scope":     {"bulk_status": {"resolved"}, "id": {fmt.Sprint(all[0].ID)}},
		"no selection": {"scope": {"selected"}, "bulk_status": {"resolved"}},
		"bad id":       {"scope": {"selected"}, "bulk_status": {"resolved"}, "id": {"1; DROP TABLE alerts"}},
		"bad status":   {"scope": {"selected"}, "bulk_status": {"closed"}, "id": {fmt.Sprint(all[0].ID)}},
		"bad filter":   {"scope": {"filter"}, "bulk_status": {"resolved"}, "severity": {"urgent"}},
		"control note": {"scope": {"filter"}, "bulk_status": {"resolved"}, "note": {"a\x00b"}},
	} {
		form.Set("csrf", csrf)
		resp, _ := c.post("/alerts/bulk", form)
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("%s: %d, want a redirect with an error", name, resp.StatusCode)
		}
		_, back := c.get(resp.Header.Get("Location"))
		if !strings.Contains(back, "flash-error") {
			t.Errorf("%s: no error shown", name)
		}
		unchanged(name)
	}
	// The filter scope changes exactly what the list's filter selects.
	resp, _ = c.post("/alerts/bulk", url.Values{"csrf": {csrf}, "scope": {"filter"}, "bulk_status": {"false_positive"}, "namespace": {"ci"}, "status": {"open"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "namespace=ci") {
		t.Fatalf("bulk by filter: %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, n, _ := st.ListAlerts(ctx, store.AlertFilter{Status: store.AlertFalsePositive, Namespace: "ci"}, store.Page{}); n != 3 {
		t.Errorf("false positives in ci = %d, want 3", n)
	}
	if _, n, _ := st.ListAlerts(ctx, store.AlertFilter{Status: store.AlertNew, Namespace: "shop"}, store.Page{}); n != 3 {
		t.Errorf("shop touched: %d new left, want 3", n)
	}
	es, _, _ := st.ListAudit(ctx, store.AuditFilter{Action: "alert.bulk_status", Actor: "user:" + analystUser}, store.Page{})
	if len(es) == 0 || !strings.Contains(string(es[0].Details), `"updated":3`) || !strings.Contains(string(es[0].Details), "namespace=ci") {
		t.Errorf("bulk audit = %+v", es)
	}

	// Admission page: escaped content, bad filters refused.
	resp, body := c.get("/admission")
	if resp.StatusCode != 200 || strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;") {
		t.Errorf("admission page: %d, escaped=%v", resp.StatusCode, !strings.Contains(body, "<script>alert"))
	}
	for _, q := range []string{"verdict=maybe", "range=1y", "namespace=" + strings.Repeat("a", 300), "page=0"} {
		if resp, _ := c.get("/admission?" + q); resp.StatusCode != 400 {
			t.Errorf("GET /admission?%s: %d, want 400", q, resp.StatusCode)
		}
	}
	if resp, _ := c.get("/admission/alert"); resp.StatusCode != 400 {
		t.Errorf("alert link without a decision: %d", resp.StatusCode)
	}
	resp, _ = c.get("/admission/alert?" + url.Values{"id": {"d1"}, "cluster": {"prod"}, "namespace": {"shop"}, "workload": {"Pod/x"}}.Encode())
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "source=admission") {
		t.Errorf("alert link with no alert stored: %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}
