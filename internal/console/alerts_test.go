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

// TestAlertPagesHostileContent: alert fields and evidence are outside
// data (an attacker controls process names, pod names, audit records);
// every page escapes them, and the forms need the session's CSRF token.
func TestAlertPagesHostileContent(t *testing.T) {
	w, st := openWorld(t)
	ctx := context.Background()
	evil := `<script>alert(1)</script>"><img src=x onerror=alert(2)>`
	a := alerts.Alert{ID: "evil-1", Time: w.now.Add(-time.Minute), Source: alerts.SourceSensor, Rule: "Terminal shell " + evil,
		Severity: alerts.SeverityCritical, Title: "shell " + evil, Cluster: "prod", Namespace: "shop", Pod: "web-" + "x",
		Workload: "Deployment/web", Node: "node-1", Evidence: json.RawMessage(`{"proc.cmdline":` + mustJSON(evil) + `}`)}
	if _, _, err := st.IngestAlerts(ctx, []alerts.Alert{a}); err != nil {
		t.Fatal(err)
	}
	list, _, err := st.ListAlerts(ctx, store.AlertFilter{}, store.Page{})
	if err != nil || len(list) != 1 {
		t.Fatalf("alerts: %v %v", list, err)
	}
	id := list[0].ID
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now))
	t.Cleanup(srv.Close)
	c := newClient(t, srv)
	c.login(analystUser, analystPass)
	for _, p := range []string{"/alerts", "/alerts?q=shell&severity=high&status=open&range=24h", fmt.Sprintf("/alerts/%d", id)} {
		resp, body := c.get(p)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d\n%.1500s", p, resp.StatusCode, body)
		}
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
			t.Errorf("GET %s renders unescaped alert content", p)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)") {
			t.Errorf("GET %s does not show the (escaped) alert content", p)
		}
	}
	for _, p := range []string{"/alerts?severity=urgent", "/alerts?status=closed", "/alerts?range=1y", "/alerts/abc", "/alerts/999999"} {
		if resp, _ := c.get(p); resp.StatusCode != 400 && resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 400 or 404", p, resp.StatusCode)
		}
	}
	_, page := c.get(fmt.Sprintf("/alerts/%d", id))
	csrf := csrfIn(t, page)
	// No CSRF token, or another site: refused, nothing changes.
	if resp, _ := c.post(fmt.Sprintf("/alerts/%d/status", id), url.Values{"status": {"resolved"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("status without CSRF: %d", resp.StatusCode)
	}
	if resp, _ := c.post(fmt.Sprintf("/alerts/%d/actions", id), url.Values{"csrf": {csrf}, "action": {"delete_pod"}},
		"Origin", "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin action: %d", resp.StatusCode)
	}
	if got, _ := st.GetAlert(ctx, id); got.Status != store.AlertNew {
		t.Fatalf("refused form changed the status to %s", got.Status)
	}
	if _, n, _ := st.ListActions(ctx, store.ActionFilter{AlertID: id}, store.Page{}); n != 0 {
		t.Fatalf("refused form created %d actions", n)
	}
	// With the token: done, and audited under the user's name.
	if resp, _ := c.post(fmt.Sprintf("/alerts/%d/status", id), url.Values{"csrf": {csrf}, "status": {"resolved"}, "note": {"fixed"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status: %d", resp.StatusCode)
	}
	if got, _ := st.GetAlert(ctx, id); got.Status != store.AlertResolved || got.StatusBy != "user:"+analystUser || got.StatusNote != "fixed" {
		t.Errorf("after resolving: %+v", got)
	}
	if resp, _ := c.post(fmt.Sprintf("/alerts/%d/status", id), url.Values{"csrf": {csrf}, "status": {"closed"}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("bad status: %d (want a redirect with an error message)", resp.StatusCode)
	}
	if resp, _ := c.post(fmt.Sprintf("/alerts/%d/actions", id), url.Values{"csrf": {csrf}, "action": {"cordon_node"}, "reason": {"x"}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("action: %d", resp.StatusCode)
	}
	acts, _, _ := st.ListActions(ctx, store.ActionFilter{AlertID: id}, store.Page{})
	if len(acts) != 1 || acts[0].Node != "node-1" || acts[0].RequestedBy != "user:"+analystUser {
		t.Errorf("actions = %+v", acts)
	}
	if resp, _ := c.post(fmt.Sprintf("/alerts/%d/suppress", id), url.Values{"csrf": {csrf}, "rule": {a.Rule}, "namespace": {"shop"},
		"reason": {"lab cluster"}, "expires": {"24h"}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("suppress: %d", resp.StatusCode)
	}
	sps, _ := st.ListSuppressions(ctx, false)
	if len(sps) != 1 || !sps[0].ExpiresAt.Equal(w.now.Add(24*time.Hour)) || sps[0].Namespace != "shop" {
		t.Errorf("suppressions = %+v", sps)
	}
	for _, action := range []string{"alert.status", "action.request", "suppression.create"} {
		if es, _, _ := st.ListAudit(ctx, store.AuditFilter{Action: action, Actor: "user:" + analystUser}, store.Page{}); len(es) == 0 {
			t.Errorf("no audit entry %s", action)
		}
	}
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestTimelineBars(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	bs := []store.TimelineBucket{{Start: t0}, {Start: t0.Add(time.Hour), BySeverity: [5]int64{1, 0, 2, 0, 3}, Suppressed: 4},
		{Start: t0.Add(2 * time.Hour), BySeverity: [5]int64{0, 0, 0, 0, 9}}}
	c := timelineBars(bs, time.Hour, 600, 200)
	if c.Empty || c.Max != 9 || c.Total != 15 || len(c.Bars) != 3 {
		t.Fatalf("chart = %+v", c)
	}
	// The bar's segments stack from the bottom without gaps, highest on top.
	b := c.Bars[1]
	if len(b.Segs) != 3 || b.Segs[0].Key != "unknown" || b.Segs[2].Key != "critical" || b.Total != 6 {
		t.Fatalf("bar = %+v", b)
	}
	if b.Segs[0].Y+b.Segs[0].H != c.Bottom || b.Segs[1].Y+b.Segs[1].H != b.Segs[0].Y {
		t.Errorf("segments do not stack: %+v", b.Segs)
	}
	full := c.Bars[2].Segs[0]
	if h := c.Bottom - full.Y; h <= 0 || h > c.Bottom-c.Top {
		t.Errorf("tallest bar height %v outside the plot", h)
	}
	if !strings.Contains(b.Title, "4 suppressed") || !strings.Contains(b.Title, "3 critical") {
		t.Errorf("title = %q", b.Title)
	}
	if e := timelineBars(nil, time.Hour, 600, 200); !e.Empty {
		t.Error("no buckets is not empty")
	}
}
