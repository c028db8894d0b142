package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/store"
)

// TestSuppressionsInBrowser drives, in real headless Chromium against a
// real server and store: the suppressions page (reached from the main
// navigation) creating a suppression whose scope hides alerts from the
// alert list at once (applied to the alerts already stored), the link to
// the alerts it holds, "Expire now" (active → expired tab, alerts still
// hidden), "Release its alerts" (the list is whole again) and "Delete";
// then the "Restore replicas" button on an alert whose workload was
// scaled to zero. Every change is checked in the store and the audit log.
func TestSuppressionsInBrowser(t *testing.T) {
	ctx := context.Background()
	e, st, agent, chromium := startConsoleWithAlerts(t, "sp")
	b := newChromium(t, chromium)
	step, shot, eval := browserHelpers(t, b, "suppressions")
	base := e.url
	audits := aliceAudits(t, st)
	total := func() int {
		t.Helper()
		n, err := strconv.Atoi(strings.ReplaceAll(eval("alerts total", `document.getElementById("alerts-total").textContent`), ",", ""))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	step("log in",
		chromedp.Navigate(base+"/alerts?namespace=payments"),
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "alice-password-1234"),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("alerts-table")))
	waitURL(t, b, "/alerts?namespace=payments")
	paymentsBefore := total()
	held, _, err := st.ListAlerts(ctx, store.AlertFilter{Namespace: "payments", Workload: "Deployment/web-1"}, store.Page{Limit: 100})
	if err != nil || len(held) == 0 || len(held) >= paymentsBefore {
		t.Fatalf("fixture: %d payments/web-1 alerts of %d in payments (%v)", len(held), paymentsBefore, err)
	}

	// 1. The page, from the navigation: nothing yet.
	step("open page", chromedp.Click(chromedp.CSS(`nav.mainnav a[href$="/suppressions"]`)), chromedp.WaitVisible(chromedp.ID("suppression-tabs")))
	waitURL(t, b, "/suppressions")
	if n := eval("rows", `String(document.querySelectorAll("#suppressions-table tbody tr").length)`); n != "0" {
		t.Fatalf("%s suppressions listed before any", n)
	}

	// 2. Create one through the page's form.
	step("create", chromedp.Evaluate[chromedp.Void](`document.getElementById("suppression-form").closest("details").open = true`),
		chromedp.SendKeys(chromedp.ID("ns-rule"), "*"),
		chromedp.SendKeys(chromedp.ID("ns-ns"), "payments"),
		chromedp.SendKeys(chromedp.ID("ns-wl"), "Deployment/web-1"),
		chromedp.SendKeys(chromedp.ID("ns-reason"), "chaos test of web-1"),
		chromedp.SetValue(chromedp.ID("ns-exp"), "24h"),
		chromedp.Click(chromedp.ID("suppression-submit")),
		chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	if msg := eval("flash", `document.querySelector(".flash").textContent`); !strings.Contains(msg, fmt.Sprintf("%d open alert(s) already stored were suppressed", len(held))) {
		t.Errorf("flash after create = %q (want %d applied)", msg, len(held))
	}
	sps, err := st.ListSuppressions(ctx, true)
	if err != nil || len(sps) != 1 {
		t.Fatalf("suppressions in the store = %+v, %v", sps, err)
	}
	sp := sps[0]
	if sp.Rule != "*" || sp.Namespace != "payments" || sp.Workload != "Deployment/web-1" || sp.Reason != "chaos test of web-1" ||
		sp.CreatedBy != "user:alice" || sp.ExpiresAt.IsZero() || sp.Applied != int64(len(held)) {
		t.Errorf("stored suppression = %+v", sp)
	}
	row := fmt.Sprintf(`document.getElementById("sp-%d")`, sp.ID)
	if got := eval("held", row+`.dataset.held`); got != strconv.Itoa(len(held)) {
		t.Errorf("row holds %s, want %d", got, len(held))
	}
	if n := len(audits("suppression.create")); n != 1 {
		t.Errorf("create audit entries = %d", n)
	}
	shot("created")

	// 3. The alert list changed: the suppressed alerts left it.
	step("alerts again", chromedp.Navigate(base+"/alerts?namespace=payments"), chromedp.WaitVisible(chromedp.ID("alerts-table")))
	if got := total(); got != paymentsBefore-len(held) {
		t.Errorf("payments lists %d alerts after the suppression, want %d", got, paymentsBefore-len(held))
	}
	if rows := eval("workloads", `[...document.querySelectorAll("#alerts-table tbody tr")].map(r => r.textContent).join("|")`); strings.Contains(rows, "web-1") {
		t.Error("a suppressed web-1 alert is still listed")
	}
	// The page links to exactly the alerts it holds.
	step("held link", chromedp.Navigate(base+"/suppressions"), chromedp.WaitVisible(chromedp.ID("suppressions-table")),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#sp-%d a.held-link`, sp.ID))), chromedp.WaitVisible(chromedp.ID("alerts-suppression-note")))
	waitURL(t, b, fmt.Sprintf("suppression=%d", sp.ID))
	if got := total(); got != len(held) {
		t.Errorf("the suppression's alert list shows %d, want %d", got, len(held))
	}
	// The suppressed alert's detail links back to it.
	step("alert detail", chromedp.Navigate(fmt.Sprintf("%s/alerts/%d", base, held[0].ID)), chromedp.WaitVisible(chromedp.ID("alert-suppression-link")))
	if href := eval("link", `document.getElementById("alert-suppression-link").getAttribute("href")`); !strings.HasSuffix(href, fmt.Sprintf("#sp-%d", sp.ID)) {
		t.Errorf("alert links to %q", href)
	}

	// 4. Expire now: leaves the active tab, the alerts stay hidden.
	step("expire", chromedp.Navigate(base+"/suppressions"), chromedp.WaitVisible(chromedp.ID("suppressions-table")),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#sp-%d button.sp-expire`, sp.ID))), chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	if msg := eval("flash", `document.querySelector(".flash").textContent`); !strings.Contains(msg, "stay hidden until released") {
		t.Errorf("flash after expire = %q", msg)
	}
	if n := eval("active rows", `String(document.querySelectorAll("#suppressions-table tbody tr").length)`); n != "0" {
		t.Errorf("%s active suppressions after expiring the only one", n)
	}
	if got, err := st.GetSuppression(ctx, sp.ID); err != nil || !got.Expired(got.ExpiresAt.Add(1)) || got.ExpiresAt.After(sp.ExpiresAt) {
		t.Errorf("after expire: %+v, %v", got, err)
	}
	step("expired tab", chromedp.Click(chromedp.CSS(`#suppression-tabs a[data-state="expired"]`)), chromedp.WaitVisible(chromedp.ID("suppressions-table")))
	waitURL(t, b, "state=expired")
	if got := eval("expired row", row+`.dataset.expired`); got != "true" {
		t.Errorf("expired tab row data-expired = %q", got)
	}
	if n, _ := st.SuppressedOpenCount(ctx, sp.ID); n != len(held) {
		t.Errorf("expiry released alerts: %d still held, want %d", n, len(held))
	}

	// 5. Release its alerts: the list is whole again.
	step("release", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#sp-%d button.sp-release`, sp.ID))), chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	waitURL(t, b, "state=expired") // back on the tab it was done from
	if msg := eval("flash", `document.querySelector(".flash").textContent`); !strings.Contains(msg, fmt.Sprintf("%d alert(s) of suppression %d are visible again", len(held), sp.ID)) {
		t.Errorf("flash after release = %q", msg)
	}
	step("alerts whole", chromedp.Navigate(base+"/alerts?namespace=payments"), chromedp.WaitVisible(chromedp.ID("alerts-table")))
	if got := total(); got != paymentsBefore {
		t.Errorf("payments lists %d alerts after the release, want %d", got, paymentsBefore)
	}

	// 6. Delete.
	step("delete", chromedp.Navigate(base+"/suppressions?state=all"), chromedp.WaitVisible(chromedp.ID("suppressions-table")),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#sp-%d button.sp-delete`, sp.ID))), chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	if sps, _ := st.ListSuppressions(ctx, true); len(sps) != 0 {
		t.Errorf("after delete: %+v", sps)
	}
	for _, a := range []string{"suppression.expire", "suppression.release", "suppression.delete"} {
		if n := len(audits(a)); n != 1 {
			t.Errorf("%s audit entries = %d, want 1", a, n)
		}
	}
	// A prefilled form (other pages link here) opens with the values.
	step("prefilled", chromedp.Navigate(base+"/suppressions?rule=Terminal+shell&namespace=ci-*"), chromedp.WaitVisible(chromedp.ID("ns-rule")))
	if got := eval("prefill", `document.getElementById("ns-rule").value + "|" + document.getElementById("ns-ns").value`); got != "Terminal shell|ci-*" {
		t.Errorf("prefilled form = %q", got)
	}

	// 7. Restore replicas: offered once a scale_to_zero was done and its
	// responder reported the count before.
	target := held[0]
	step("alert", chromedp.Navigate(fmt.Sprintf("%s/alerts/%d", base, target.ID)), chromedp.WaitVisible(chromedp.ID("action-scale_to_zero")))
	if n := eval("restore before", `String(document.querySelectorAll("#action-restore_scale").length)`); n != "0" {
		t.Error("restore offered before any scale")
	}
	step("scale", chromedp.SendKeys(chromedp.ID("a-reason"), "contain"), chromedp.Click(chromedp.ID("action-scale_to_zero")),
		chromedp.WaitVisible(chromedp.CSS(`#actions-table tr[data-state="pending"]`)))
	var pending alerts.ActionList
	_, raw := e.do("GET", "/api/v1/actions?cluster=prod&state=pending", agent, nil)
	if err := json.Unmarshal(raw, &pending); err != nil || len(pending.Actions) != 1 {
		t.Fatalf("pending: %s", raw)
	}
	three := int32(3)
	if code, raw := e.do("POST", fmt.Sprintf("/api/v1/actions/%d/result", pending.Actions[0].ID), agent,
		alerts.ActionResult{State: alerts.ActionDone, Message: "Deployment payments/web-1 scaled from 3 to 0 replicas",
			Scaled: "Deployment/web-1", PreviousReplicas: &three}); code != 200 {
		t.Fatalf("result: %d %s", code, raw)
	}
	step("restore shown", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("action-restore_scale")))
	if got := eval("target", `document.querySelector("#actions-table tr[data-state=done] td:nth-child(2)").textContent`); !strings.Contains(got, "Deployment/web-1 was at 3 replicas") {
		t.Errorf("done scale's target cell = %q", got)
	}
	step("restore", chromedp.Click(chromedp.ID("action-restore_scale")), chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	_, raw = e.do("GET", "/api/v1/actions?cluster=prod&state=pending", agent, nil)
	if err := json.Unmarshal(raw, &pending); err != nil || len(pending.Actions) != 1 || pending.Actions[0].Action != alerts.ActionRestoreScale ||
		pending.Actions[0].Replicas == nil || *pending.Actions[0].Replicas != 3 || pending.Actions[0].Scaled != "Deployment/web-1" ||
		pending.Actions[0].RequestedBy != "user:alice" {
		t.Errorf("after restore the responder sees %s", raw)
	}
	if es := audits("action.request"); len(es) != 2 || !strings.Contains(string(es[0].Details), "restore_scale") {
		t.Errorf("action audit entries: %d", len(es))
	}
	shot("restore")
}
