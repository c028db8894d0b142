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

// TestSuppressionsPageHostileInput: the suppressions page takes outside
// input (query strings, form fields, suppression content stored by the
// API): a bad one changes nothing and says why, stored content is
// escaped, every change needs the CSRF token, and a role outside the API's
// triage roles is refused.
func TestSuppressionsPageHostileInput(t *testing.T) {
	w, st := openWorld(t)
	ctx := context.Background()
	evil := `<script>alert(1)</script>`
	if _, _, err := st.IngestAlerts(ctx, []alerts.Alert{{ID: "s-1", Time: w.now.Add(-time.Minute), Source: alerts.SourceSensor,
		Rule: "Shell", Severity: alerts.SeverityHigh, Title: "t", Cluster: "prod", Namespace: "shop", Workload: "Deployment/web",
		Evidence: json.RawMessage(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	sp, err := st.CreateSuppressionApplied(ctx, store.Suppression{Rule: "Shell" + evil, Namespace: "shop", Reason: "r" + evil,
		CreatedBy: "user:x"}, false)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now))
	t.Cleanup(srv.Close)
	c := newClient(t, srv)
	c.login(analystUser, analystPass)

	resp, page := c.get("/suppressions?rule=" + url.QueryEscape(evil))
	if resp.StatusCode != 200 || strings.Contains(page, evil) || !strings.Contains(page, "&lt;script&gt;") ||
		!strings.Contains(page, fmt.Sprintf(`id="sp-%d"`, sp.ID)) {
		t.Fatalf("page: %d, stored or prefilled content not escaped, or the suppression missing", resp.StatusCode)
	}
	csrf := csrfIn(t, page)
	for _, q := range []string{"?state=bogus", "?rule=" + strings.Repeat("x", 600), "?workload=%00"} {
		if resp, _ := c.get("/suppressions" + q); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /suppressions%s: %d, want 400", q, resp.StatusCode)
		}
	}
	if resp, _ := c.get("/alerts?suppression=-1"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("alert list ?suppression=-1: %d", resp.StatusCode)
	}

	count := func() int {
		t.Helper()
		all, err := st.ListSuppressions(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		return len(all)
	}
	// No CSRF token: refused, nothing created or expired.
	if resp, _ := c.post("/suppressions", url.Values{"rule": {"x"}, "reason": {"r"}, "expires": {"1h"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("create without CSRF: %d", resp.StatusCode)
	}
	if resp, _ := c.post(fmt.Sprintf("/suppressions/%d/expire", sp.ID), url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("expire without CSRF: %d", resp.StatusCode)
	}
	// Bad forms: a flash saying why, nothing stored.
	for name, form := range map[string]url.Values{
		"no reason":          {"rule": {"x"}, "expires": {"1h"}},
		"bad expiry":         {"rule": {"x"}, "reason": {"r"}, "expires": {"-1h"}},
		"control characters": {"rule": {"x\x00"}, "reason": {"r"}, "expires": {"1h"}},
		"everything":         {"rule": {"*"}, "reason": {"r"}, "expires": {"1h"}},
		"oversized":          {"rule": {strings.Repeat("x", 600)}, "reason": {"r"}, "expires": {"1h"}},
	} {
		form.Set("csrf", csrf)
		resp, _ := c.post("/suppressions", form)
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("%s: %d, want a redirect with an error", name, resp.StatusCode)
			continue
		}
		_, page := c.get("/suppressions")
		if !strings.Contains(page, "flash-error") {
			t.Errorf("%s: no error shown", name)
		}
	}
	if n := count(); n != 1 {
		t.Errorf("bad forms stored suppressions: %d", n)
	}
	for _, p := range []string{"/suppressions/abc/expire", "/suppressions/0/delete", "/suppressions/999999/expire"} {
		if resp, _ := c.post(p, url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", p, resp.StatusCode)
		}
	}
	// A good one, then expire: the flash names the alerts still held.
	resp, _ = c.post("/suppressions", url.Values{"csrf": {csrf}, "rule": {"Shell"}, "namespace": {"shop"}, "reason": {"known"},
		"expires": {"168h"}, "apply_to_existing": {"1"}})
	if resp.StatusCode != http.StatusSeeOther || count() != 2 {
		t.Fatalf("create: %d, %d suppressions", resp.StatusCode, count())
	}
	all, _ := st.ListSuppressions(ctx, false)
	created := all[0]
	if created.Applied != 1 || !created.ExpiresAt.Equal(w.now.Add(168*time.Hour)) || created.CreatedBy != "user:"+analystUser {
		t.Errorf("created %+v", created)
	}
	resp, _ = c.post(fmt.Sprintf("/suppressions/%d/expire", created.ID), url.Values{"csrf": {csrf}, "back_state": {"expired"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/suppressions?state=expired" {
		t.Errorf("expire: %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, page := c.get("/suppressions?state=expired"); !strings.Contains(page, "stay hidden until released") ||
		!strings.Contains(page, fmt.Sprintf(`id="sp-%d"`, created.ID)) {
		t.Error("expired tab: no flash about the held alert, or the suppression missing")
	}
	// Applying an expired suppression is refused with a reason.
	c.post(fmt.Sprintf("/suppressions/%d/apply", created.ID), url.Values{"csrf": {csrf}})
	if _, page := c.get("/suppressions"); !strings.Contains(page, "expired") || !strings.Contains(page, "flash-error") {
		t.Error("apply of an expired suppression: no error")
	}

	// The role check mirrors the API's triage roles.
	for _, p := range []*principal{nil, {Role: store.RoleAgent}, {Role: store.RoleCI}} {
		if canTriage(p) {
			t.Errorf("canTriage(%+v) = true", p)
		}
	}
	for _, r := range []store.Role{store.RoleAdmin, store.RoleAnalyst} {
		if !canTriage(&principal{Role: r}) {
			t.Errorf("canTriage(%s) = false", r)
		}
	}
}
