package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bulwark-security/bulwark/internal/admission"
	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/policy"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// TestTriageInBrowser drives, in real headless Chromium against a real
// server and store: bulk status changes from the alert list (selected rows,
// then every alert a filter matches), a suppression applied to the alerts
// already stored and released again, the undo button appearing only once
// the isolation it undoes was done, and the admission decisions page
// (filters, link to the alert a denial raised) over decisions and alerts
// sent by the admission webhook's real recorder.
func TestTriageInBrowser(t *testing.T) {
	ctx := context.Background()
	e, st, agent, chromium := startConsoleWithAlerts(t, "tr")

	b := newChromium(t, chromium)
	step, shot, eval := browserHelpers(t, b, "triage")
	audits := aliceAudits(t, st)
	base := e.url
	step("log in",
		chromedp.Navigate(base+"/alerts?sort=rule"),
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "alice-password-1234"),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("alerts-table")))
	waitURL(t, b, "/alerts")

	// 1. Bulk: select three rows (the counter follows), resolve them.
	step("select three", chromedp.Click(chromedp.CSS(`#alerts-table tbody tr:nth-child(1) input[name=id]`)),
		chromedp.Click(chromedp.CSS(`#alerts-table tbody tr:nth-child(2) input[name=id]`)),
		chromedp.Click(chromedp.CSS(`#alerts-table tbody tr:nth-child(3) input[name=id]`)))
	if got := eval("counter", `document.getElementById("bulk-count").dataset.selected`); got != "3" {
		t.Errorf("bulk counter = %s, want 3", got)
	}
	picked := strings.Split(eval("picked", `[...document.querySelectorAll("#alerts-table tbody input[name=id]:checked")].map(c => c.value).join(",")`), ",")
	shot("selected")
	step("resolve selected", chromedp.SetValue(chromedp.ID("bulk-status"), "resolved"), chromedp.SendKeys(chromedp.ID("bulk-note"), "known scanner"),
		chromedp.Click(chromedp.ID("bulk-selected")), chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	if msg := eval("flash", `document.querySelector(".flash").textContent`); !strings.Contains(msg, "3 alert(s) set to Resolved") {
		t.Errorf("flash = %q", msg)
	}
	for _, p := range picked {
		id, _ := strconv.ParseInt(p, 10, 64)
		if a, err := st.GetAlert(ctx, id); err != nil || a.Status != store.AlertResolved || a.StatusBy != "user:alice" || a.StatusNote != "known scanner" {
			t.Errorf("alert %s after bulk resolve: %+v %v", p, a, err)
		}
	}
	if _, n, _ := st.ListAlerts(ctx, store.AlertFilter{Status: store.AlertResolved}, store.Page{}); n != 3 {
		t.Errorf("%d resolved alerts, want 3", n)
	}
	// Select all on the page, then clear: the header box toggles every row.
	step("select all", chromedp.Click(chromedp.ID("select-all")))
	if got, rows := eval("counter all", `document.getElementById("bulk-count").dataset.selected`), eval("rows", `String(document.querySelectorAll("#alerts-table tbody tr").length)`); got != rows {
		t.Errorf("select all: %s selected of %s rows", got, rows)
	}
	step("clear all", chromedp.Click(chromedp.ID("select-all")))

	// Every alert a filter matches: payments + new → acknowledged.
	wantAck, _, _ := st.ListAlerts(ctx, store.AlertFilter{Namespace: "payments", Status: store.AlertNew}, store.Page{Limit: 1000})
	step("filter payments", chromedp.Navigate(base+"/alerts?namespace=payments&status=new"), chromedp.WaitVisible(chromedp.ID("bulk-form")))
	if got := eval("bulk all label", `document.getElementById("bulk-filter").textContent`); !strings.Contains(got, strconv.Itoa(len(wantAck))) {
		t.Errorf("bulk-all button %q does not name the %d matching alerts", got, len(wantAck))
	}
	step("acknowledge all matching", chromedp.SetValue(chromedp.ID("bulk-status"), "acknowledged"), chromedp.Click(chromedp.ID("bulk-filter")),
		chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	waitURL(t, b, "namespace=payments")
	if _, n, _ := st.ListAlerts(ctx, store.AlertFilter{Namespace: "payments", Status: store.AlertAcknowledged}, store.Page{}); n != len(wantAck) || n == 0 {
		t.Errorf("acknowledged in payments = %d, want %d", n, len(wantAck))
	}
	if _, n, _ := st.ListAlerts(ctx, store.AlertFilter{Namespace: "shop", Status: store.AlertAcknowledged}, store.Page{}); n != 0 {
		t.Errorf("the filtered bulk change touched shop: %d", n)
	}
	if es := audits("alert.bulk_status"); len(es) != 2 || !strings.Contains(string(es[0].Details), "namespace=payments") ||
		!strings.Contains(string(es[0].Details), fmt.Sprintf(`"updated":%d`, len(wantAck))) {
		t.Errorf("bulk audit entries = %d: %s", len(es), func() string {
			if len(es) > 0 {
				return string(es[0].Details)
			}
			return ""
		}())
	}
	shot("bulk")

	// 2. Suppress from an alert of shop/web-2, applied to the alerts
	// already stored (the console's default), then released.
	open, _, _ := st.ListAlerts(ctx, store.AlertFilter{Namespace: "shop", Workload: "Deployment/web-2", Status: store.AlertNew}, store.Page{Limit: 100})
	if len(open) == 0 {
		t.Fatal("fixture: no open shop/web-2 alert")
	}
	target := open[0]
	step("open alert", chromedp.Navigate(fmt.Sprintf("%s/alerts/%d", base, target.ID)), chromedp.WaitVisible(chromedp.ID("suppress-form")))
	if got := eval("apply default", `String(document.getElementById("sp-apply").checked)`); got != "true" {
		t.Errorf("apply to existing is %s by default, want checked", got)
	}
	step("suppress", chromedp.Evaluate[chromedp.Void](`document.querySelector("#suppress-form").closest("details").open = true`),
		chromedp.SetValue(chromedp.ID("sp-rule"), "*"),
		chromedp.SendKeys(chromedp.ID("sp-reason"), "load test of web-2"),
		chromedp.Click(chromedp.ID("suppress-submit")),
		chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	if msg := eval("flash", `document.querySelector(".flash").textContent`); !strings.Contains(msg, fmt.Sprintf("%d open alert(s) already stored were suppressed", len(open))) {
		t.Errorf("flash after suppressing = %q (want %d applied)", msg, len(open))
	}
	sps, _ := st.ListSuppressions(ctx, false)
	if len(sps) != 1 || sps[0].Applied != int64(len(open)) {
		t.Fatalf("suppressions = %+v", sps)
	}
	step("suppressed shown", chromedp.WaitVisible(chromedp.ID("alert-suppressed-by")))
	if got := eval("suppressed by", `document.getElementById("alert-suppressed-by").textContent`); !strings.Contains(got, "user:alice") {
		t.Errorf("suppressed by = %q", got)
	}
	step("list without them", chromedp.Navigate(base+"/alerts?namespace=shop"), chromedp.WaitVisible(chromedp.ID("alerts-table")))
	if strings.Contains(eval("rows", `[...document.querySelectorAll("#alerts-table tbody tr")].map(r => r.dataset.alert).join(",")+","`), fmt.Sprintf("%d,", target.ID)) {
		t.Error("the suppressed alert is still in the default list")
	}
	// Deleting the suppression (API) brings nothing back; Release does.
	analyst, _, _ := st.CreateToken(ctx, "analyst-api", store.RoleAnalyst, time.Time{}, "test")
	if code, raw := e.do("DELETE", fmt.Sprintf("/api/v1/suppressions/%d", sps[0].ID), analyst, nil); code != 204 {
		t.Fatalf("delete suppression: %d %s", code, raw)
	}
	if a, _ := st.GetAlert(ctx, target.ID); a.SuppressionID != sps[0].ID {
		t.Errorf("deleting the suppression resurrected the alert: %+v", a)
	}
	step("release", chromedp.Navigate(fmt.Sprintf("%s/alerts/%d", base, target.ID)), chromedp.WaitVisible(chromedp.ID("release-submit")),
		chromedp.Click(chromedp.ID("release-submit")), chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	if a, _ := st.GetAlert(ctx, target.ID); a.SuppressionID != 0 {
		t.Errorf("released alert still suppressed: %+v", a)
	}
	if n := len(audits("suppression.release")); n != 1 {
		t.Errorf("release audit entries = %d", n)
	}

	// 3. Undo isolation: offered only once the isolation was done.
	if n := eval("undo before", `String(document.querySelectorAll("#action-unisolate_pod").length)`); n != "0" {
		t.Error("undo isolation offered before any isolation")
	}
	step("isolate", chromedp.SendKeys(chromedp.ID("a-reason"), "contain"), chromedp.Click(chromedp.ID("action-isolate_pod")),
		chromedp.WaitVisible(chromedp.CSS(`#actions-table tr[data-state="pending"]`)))
	if n := eval("undo while pending", `String(document.querySelectorAll("#action-unisolate_pod").length)`); n != "0" {
		t.Error("undo isolation offered while the isolation is pending")
	}
	var pending alerts.ActionList
	_, raw := e.do("GET", "/api/v1/actions?cluster=prod&state=pending", agent, nil)
	if err := json.Unmarshal(raw, &pending); err != nil || len(pending.Actions) != 1 {
		t.Fatalf("pending: %s", raw)
	}
	if code, raw := e.do("POST", fmt.Sprintf("/api/v1/actions/%d/result", pending.Actions[0].ID), agent,
		alerts.ActionResult{State: alerts.ActionDone, Message: "isolated"}); code != 200 {
		t.Fatalf("result: %d %s", code, raw)
	}
	step("undo shown", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("action-unisolate_pod")))
	step("undo", chromedp.Click(chromedp.ID("action-unisolate_pod")), chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	_, raw = e.do("GET", "/api/v1/actions?cluster=prod&state=pending", agent, nil)
	if err := json.Unmarshal(raw, &pending); err != nil || len(pending.Actions) != 1 || pending.Actions[0].Action != alerts.ActionUnisolatePod ||
		pending.Actions[0].RequestedBy != "user:alice" {
		t.Errorf("after undo the responder sees %s", raw)
	}
	shot("undo")

	// 4. Admission decisions, sent by the webhook's real recorder.
	rec := admission.NewRecorder(admission.RecorderConfig{URL: base, Token: agent, TLS: e.client.Transport.(*http.Transport).TLSClientConfig,
		FlushInterval: 50 * time.Millisecond, RecordAllowed: true}, slog.New(slog.DiscardHandler), nil)
	recCtx, recCancel := context.WithCancel(ctx)
	recDone := make(chan struct{})
	go func() { defer close(recDone); rec.Run(recCtx) }()
	t0 := time.Now().UTC().Add(-10 * time.Minute)
	decisions := []policy.DecisionRecord{
		{ID: "dec-1", Time: t0, Cluster: "prod", Operation: "CREATE", Kind: "Deployment", Namespace: "shop", Name: "legacy-api",
			User: "system:serviceaccount:ci:deployer", Verdict: policy.VerdictDeny, Policies: []string{"no-critical-vulns", "baseline"},
			Violations: []policy.Violation{{Policy: "no-critical-vulns", Mode: policy.ModeDeny, Rule: policy.RuleVulnerabilities, Container: "api",
				Image: "registry.example.com/legacy-api:1.0", Finding: "CVE-2021-44228", Severity: vulndb.SeverityCritical,
				Message: "image has critical vulnerability CVE-2021-44228 (log4j-core 2.14.1)", Fix: "upgrade log4j-core to 2.17.1"}}},
		{ID: "dec-2", Time: t0.Add(time.Minute), Cluster: "prod", Operation: "CREATE", Kind: "Pod", Namespace: "payments", Name: "debug",
			User: "alice", Verdict: policy.VerdictWarn, Policies: []string{"baseline"},
			Violations: []policy.Violation{{Policy: "baseline", Mode: policy.ModeWarn, Rule: "configuration", Container: "sh",
				Finding: "privileged", Message: "container runs privileged", Fix: "remove securityContext.privileged"}}},
		{ID: "dec-3", Time: t0.Add(2 * time.Minute), Cluster: "prod", Operation: "CREATE", Kind: "Deployment", Namespace: "shop", Name: "web",
			User: "system:serviceaccount:ci:deployer", Verdict: policy.VerdictAllow, Allowed: true, Policies: []string{"no-critical-vulns", "baseline"}},
	}
	for _, d := range decisions {
		rec.Record(d)
	}
	waitFor(t, 20*time.Second, "the recorder's decisions and alerts in the store", func() bool {
		_, nd, _ := st.ListAdmissionDecisions(ctx, store.AdmissionFilter{}, store.Page{})
		_, na, _ := st.ListAlerts(ctx, store.AlertFilter{Source: alerts.SourceAdmission}, store.Page{})
		return nd == 3 && na == 2
	})
	recCancel()
	<-recDone

	step("admission page", chromedp.Click(chromedp.CSS(`nav.mainnav a[href$="/admission"]`)), chromedp.WaitVisible(chromedp.ID("admission-table")))
	rowsOf := func() string {
		return eval("admission rows", `[...document.querySelectorAll("#admission-table tbody tr")].map(r => r.dataset.decision).join(",")`)
	}
	// waitRows polls: right after a navigation the old document may still
	// answer for a moment.
	waitRows := func(what, want string) {
		t.Helper()
		got := ""
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if got = rowsOf(); got == want {
				return
			}
		}
		t.Errorf("%s lists %q, want %q", what, got, want)
	}
	// visit loads url as a link would (Page.navigate sometimes reports
	// ERR_ABORTED here right after a form submission) and waits for it.
	visit := func(url string) {
		t.Helper()
		js, _ := json.Marshal(url)
		step("go to "+url, chromedp.Evaluate[chromedp.Void](`location.assign(`+string(js)+`)`))
		waitURL(t, b, strings.TrimPrefix(url, base))
	}
	waitRows("newest first", "dec-3,dec-2,dec-1")
	shot("admission")
	step("filter verdict", chromedp.SetValue(chromedp.ID("ad-verdict"), "deny"), chromedp.Click(chromedp.ID("admission-filter-submit")))
	waitURL(t, b, "verdict=deny")
	waitRows("verdict=deny", "dec-1")
	for q, want := range map[string]string{
		"namespace=payments":           "dec-2",
		"policy=no-critical-vulns":     "dec-3,dec-1",
		"policy=baseline&verdict=warn": "dec-2",
		"range=1h":                     "dec-3,dec-2,dec-1",
		"namespace=nowhere":            "",
	} {
		visit(base + "/admission?" + q)
		waitRows("?"+q, want)
	}
	// The denial links to the alert it raised.
	visit(base + "/admission?verdict=deny")
	waitRows("back to deny", "dec-1")
	step("open its alert", chromedp.Click(chromedp.CSS(`tr[data-decision="dec-1"] a.alert-link`)), chromedp.WaitVisible(chromedp.ID("alert-evidence")))
	idStr := eval("alert id", `location.pathname.split("/").pop()`)
	id, _ := strconv.ParseInt(idStr, 10, 64)
	a, err := st.GetAlert(ctx, id)
	if err != nil || a.Source != alerts.SourceAdmission || a.SourceEventID != "dec-1-alert" || a.Workload != "Deployment/legacy-api" {
		t.Errorf("the denial's link opened alert %s: %+v %v", idStr, a, err)
	}
	visit(base + "/admission")
	waitRows("all again", "dec-3,dec-2,dec-1")
	if n := eval("allow link", `String(document.querySelectorAll('tr[data-decision="dec-3"] a.alert-link').length)`); n != "0" {
		t.Errorf("an allowed decision links to an alert")
	}
}
