package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/console"
	"github.com/bulwark-security/bulwark/internal/store"
)

// TestAlertsInBrowser drives the alert pages in real headless Chromium
// against a real server: alerts are ingested through POST /api/v1/alerts
// with an agent token, then a person logs in to the console, sees them
// listed with the timeline, filters, opens one, acknowledges it, requests
// a response action and sees it pending — and the cluster's responder
// sees the same action through the API.
func TestAlertsInBrowser(t *testing.T) {
	ctx := context.Background()
	e, st, agent, chromium := startConsoleWithAlerts(t, "br")
	all, total, err := st.ListAlerts(ctx, store.AlertFilter{}, store.Page{Limit: 1000})
	if err != nil || total == 0 {
		t.Fatalf("stored alerts: %d, %v", total, err)
	}

	b := newChromium(t, chromium)
	step, shot, eval := browserHelpers(t, b, "alerts")
	base := e.url
	step("log in",
		chromedp.Navigate(base+"/alerts"),
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "alice-password-1234"),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("alerts-table")))

	// Listed: every stored alert row, and the timeline counts all 40.
	if got := eval("total", `document.getElementById("alerts-total").textContent`); got != strconv.Itoa(total) {
		t.Errorf("page shows %s alerts, the store has %d", got, total)
	}
	if got := eval("rows", `String(document.querySelectorAll("#alerts-table tbody tr").length)`); got != strconv.Itoa(min(total, 50)) {
		t.Errorf("%s rows listed, want %d", got, min(total, 50))
	}
	if got := eval("timeline", `document.querySelector('svg[data-chart="timeline"]').dataset.total`); got != "40" {
		t.Errorf("timeline counts %s occurrences, want 40", got)
	}
	if got := eval("bar sum", `String([...document.querySelectorAll('svg[data-chart="timeline"] rect[data-value]')].reduce((s, r) => s + Number(r.dataset.value), 0))`); got != "40" {
		t.Errorf("timeline bars add up to %s, want 40", got)
	}

	shot("list")

	// Filter by severity and source with the form.
	wantHigh := 0
	for _, a := range all {
		if a.Severity >= alerts.SeverityHigh && a.Source == alerts.SourceSensor {
			wantHigh++
		}
	}
	step("filter",
		chromedp.SetValue(chromedp.ID("f-sev"), "high"),
		chromedp.SetValue(chromedp.ID("f-src"), "sensor"),
		chromedp.Click(chromedp.ID("alert-filter-submit")),
		chromedp.WaitVisible(chromedp.ID("alert-filters")))
	waitURL(t, b, "severity=high")
	if got := eval("filtered total", `document.getElementById("alerts-total").textContent`); got != strconv.Itoa(wantHigh) {
		t.Errorf("filtered list shows %s, want %d high-or-worse sensor alerts", got, wantHigh)
	}
	if bad := eval("severities", `[...document.querySelectorAll("#alerts-table tbody tr")].map(r => r.dataset.severity).filter(s => s !== "critical" && s !== "high").join(",")`); bad != "" {
		t.Errorf("filtered rows include severities %s", bad)
	}

	// Open the first alert: evidence as pretty JSON, related alerts.
	// Clicked from script once the filtered page's row is there: a
	// chromedp.Click resolved against the page being replaced fails with
	// "Could not find node with given id" (seen once in a loaded run).
	step("open an alert", chromedp.WaitVisible(chromedp.CSS(`#alerts-table tbody tr:first-child a`)),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#alerts-table tbody tr:first-child a").click()`),
		chromedp.WaitVisible(chromedp.ID("alert-evidence")))
	idStr := eval("alert id", `location.pathname.split("/").pop()`)
	id, _ := strconv.ParseInt(idStr, 10, 64)
	a, err := st.GetAlert(ctx, id)
	if err != nil {
		t.Fatalf("alert %s: %v", idStr, err)
	}
	ev := eval("evidence", `document.getElementById("alert-evidence").textContent`)
	var evGot, evWant any
	if json.Unmarshal([]byte(ev), &evGot) != nil || json.Unmarshal(a.Evidence, &evWant) != nil || fmt.Sprint(evGot) != fmt.Sprint(evWant) ||
		!strings.Contains(ev, "\n  \"") {
		t.Errorf("evidence shown as %q, stored %s", ev, a.Evidence)
	}
	related, _, _ := st.ListAlerts(ctx, store.AlertFilter{Cluster: a.Cluster, Namespace: a.Namespace, Workload: a.Workload,
		Suppressed: store.WithSuppressed, ExcludeID: a.ID}, store.Page{Limit: 20})
	if got := eval("related", `String(document.querySelectorAll("#related-table tbody tr").length)`); got != strconv.Itoa(len(related)) || len(related) == 0 {
		t.Errorf("%s related alerts shown, the store has %d", got, len(related))
	}

	// Acknowledge.
	step("acknowledge", chromedp.SendKeys(chromedp.ID("s-note"), "on it"), chromedp.Click(chromedp.ID("status-acknowledged")),
		chromedp.WaitVisible(chromedp.CSS(`#alert-status[data-status="acknowledged"]`)))
	if a, _ := st.GetAlert(ctx, id); a.Status != store.AlertAcknowledged || a.StatusBy != "user:alice" || a.StatusNote != "on it" {
		t.Errorf("stored after acknowledging: %s by %q note %q", a.Status, a.StatusBy, a.StatusNote)
	}

	// Request a response action and see it pending.
	step("request isolation", chromedp.SendKeys(chromedp.ID("a-reason"), "contain the shell"), chromedp.Click(chromedp.ID("action-isolate_pod")),
		chromedp.WaitVisible(chromedp.CSS(`#actions-table tr[data-state="pending"]`)))
	if msg := eval("flash", `(document.querySelector(".flash") || {}).textContent || ""`); !strings.Contains(msg, "pending") {
		t.Errorf("flash after requesting = %q", msg)
	}
	var pending alerts.ActionList
	code, raw := e.do("GET", "/api/v1/actions?cluster=prod&state=pending", agent, nil)
	if err := json.Unmarshal(raw, &pending); code != 200 || err != nil || len(pending.Actions) != 1 ||
		pending.Actions[0].AlertID != id || pending.Actions[0].Action != alerts.ActionIsolatePod || pending.Actions[0].RequestedBy != "user:alice" {
		t.Fatalf("responder sees %d %s", code, raw)
	}
	// A second click is refused while the first is pending.
	step("request isolation again", chromedp.Click(chromedp.ID("action-isolate_pod")), chromedp.WaitVisible(chromedp.CSS(".flash-error")))
	if _, n, _ := st.ListActions(ctx, store.ActionFilter{AlertID: id}, store.Page{}); n != 1 {
		t.Errorf("%d actions after a double request", n)
	}
	// The responder reports; the page shows it done.
	if code, raw := e.do("POST", fmt.Sprintf("/api/v1/actions/%d/result", pending.Actions[0].ID), agent,
		alerts.ActionResult{State: alerts.ActionDone, Message: "NetworkPolicy created"}); code != 200 {
		t.Fatalf("result: %d %s", code, raw)
	}
	step("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#actions-table tr[data-state="done"]`)))
	for _, action := range []string{"alert.status", "action.request"} {
		es, _, _ := st.ListAudit(ctx, store.AuditFilter{Action: action, Actor: "user:alice"}, store.Page{Limit: 5})
		if len(es) == 0 {
			t.Errorf("no audit entry %s by user:alice", action)
		}
	}

	shot("detail")

	// Suppress from the alert; the next occurrence is hidden and counted.
	step("suppress", chromedp.Evaluate[chromedp.Void](`document.querySelector("#suppress-form").closest("details").open = true`),
		chromedp.SendKeys(chromedp.ID("sp-reason"), "test workload"),
		chromedp.Click(chromedp.ID("suppress-submit")),
		chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	sps, _ := st.ListSuppressions(ctx, false)
	if len(sps) != 1 || sps[0].Rule != a.Rule || sps[0].Workload != a.Workload || sps[0].CreatedBy != "user:alice" || sps[0].ExpiresAt.IsZero() {
		t.Fatalf("suppressions = %+v", sps)
	}
	again := testAlert(t, "br-again", 0, a.Namespace, a.Workload, time.Now().UTC())
	again.Rule, again.Source, again.Cluster = a.Rule, a.Source, a.Cluster
	code, raw = e.do("POST", "/api/v1/alerts", agent, alerts.Batch{Alerts: []alerts.Alert{again}})
	if code != 200 || !strings.Contains(string(raw), `"suppressed":1`) {
		t.Errorf("ingest after suppressing: %d %s", code, raw)
	}
}

// newChromium starts headless Chromium with a fresh profile and no
// network of its own.
func newChromium(t *testing.T, path string) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 1000))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

func waitURL(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	expr := fmt.Sprintf(`location.href.includes(%q) && document.readyState === "complete"`, want)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := chromedp.Run(sctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
	}
	t.Fatalf("no loaded page at a URL containing %q", want)
}

// startConsoleWithAlerts starts, for the browser tests, a real server with
// the console over a real SQLite store holding a user "alice" (analyst),
// and ingests 40 alerts (ids prefix-000…039, two namespaces, four
// workloads, a minute apart) through POST /api/v1/alerts with an agent
// token, as a sensor does. It skips when Chromium is not installed and
// returns the API client, the store, the agent token and Chromium's path.
func startConsoleWithAlerts(t *testing.T, prefix string) (e *env, st *store.Store, agent, chromium string) {
	t.Helper()
	chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("browser test needs Chromium at %s (Debian: apt-get install -y chromium): %v", chromium, err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "bulwark.db"), store.Options{SecretKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.CreateUser(ctx, "alice", "alice-password-1234", store.RoleAnalyst); err != nil {
		t.Fatal(err)
	}
	con, err := console.New(console.Config{SessionKey: []byte("0123456789abcdef0123456789abcdef-session"), SecureCookie: true},
		console.Deps{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	srv, err := New(Config{Listen: "127.0.0.1:0", DataDir: data, Workers: -1, SweepInterval: -1, DBWatchInterval: -1},
		Deps{Store: st, Console: con, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	pem, err := os.ReadFile(filepath.Join(data, selfSignedCert))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	e = &env{t: t, st: st, url: srv.URL(), client: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	agent, _, err = st.CreateToken(ctx, "sensor-prod", store.RoleAgent, time.Time{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var batch []alerts.Alert
	for i := range 40 {
		batch = append(batch, testAlert(t, fmt.Sprintf("%s-%03d", prefix, i), i, []string{"shop", "payments"}[i%2],
			fmt.Sprintf("Deployment/web-%d", i%4), now.Add(-time.Duration(i)*time.Minute)))
	}
	if code, raw := e.do("POST", "/api/v1/alerts", agent, alerts.Batch{Alerts: batch}); code != 200 {
		t.Fatalf("ingest: %d %s", code, raw)
	}
	return e, st, agent, chromium
}

// aliceAudits lists the audit entries of one action by user alice, the
// console user the browser tests log in as (newest first, at most 50).
func aliceAudits(t *testing.T, st *store.Store) func(action string) []store.AuditEntry {
	return func(action string) []store.AuditEntry {
		t.Helper()
		es, _, err := st.ListAudit(context.Background(), store.AuditFilter{Action: action, Actor: "user:alice"}, store.Page{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
}

// browserHelpers returns the browser tests' three actions on the page of
// b: step runs chromedp actions (failing the test with the page's URL and
// text), shot keeps a full-page PNG named prefix-name.png when
// BULWARK_SCREENSHOTS=dir is set (for a reviewer), eval evaluates
// JavaScript to a string.
func browserHelpers(t *testing.T, b context.Context, prefix string) (
	step func(what string, actions ...chromedp.Action[chromedp.Void]), shot func(name string), eval func(what, js string) string) {
	step = func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(b, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			dctx, dcancel := context.WithTimeout(b, 5*time.Second)
			defer dcancel()
			page, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 2000)`))
			t.Fatalf("%s: %v\npage: %s", what, err, page)
		}
	}
	shot = func(name string) {
		dir := os.Getenv("BULWARK_SCREENSHOTS")
		if dir == "" {
			return
		}
		sctx, cancel := context.WithTimeout(b, 30*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, prefix+"-"+name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	eval = func(what, js string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(b, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(sctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	return step, shot, eval
}
