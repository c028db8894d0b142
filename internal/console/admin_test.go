package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/store"
)

// TestAdminPages: an administrator adds a user, changes their role,
// disables them (their session ends) and enables them again, sets their
// password; creates an API token whose secret is shown once and works
// against the store, then revokes it; reads the audit log of all that,
// filtered. An administrator cannot demote or disable themselves; an
// analyst is refused every page; bad forms say why and store nothing.
func TestAdminPages(t *testing.T) {
	w, st := openWorld(t)
	ctx := context.Background()
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now))
	t.Cleanup(srv.Close)
	admin := newClient(t, srv)
	admin.login(adminUser, adminPass)
	_, page := admin.get("/settings/users")
	if !strings.Contains(page, `id="users-table"`) || !strings.Contains(page, `id="nav-settings"`) {
		t.Fatal("users page")
	}
	csrf := csrfIn(t, page)
	post := func(path string, form url.Values) (*http.Response, string) {
		t.Helper()
		form.Set("csrf", csrf)
		return admin.post(path, form)
	}

	// Users.
	for name, form := range map[string]url.Values{
		"short password": {"username": {"bob"}, "password": {"short"}, "role": {"analyst"}},
		"agent role":     {"username": {"bob"}, "password": {"long-enough-pw"}, "role": {"agent"}},
		"control chars":  {"username": {"b\x00b"}, "password": {"long-enough-pw"}, "role": {"analyst"}},
		"existing":       {"username": {adminUser}, "password": {"long-enough-pw"}, "role": {"analyst"}},
	} {
		if resp, page := post("/settings/users", form); resp.StatusCode < 400 || !strings.Contains(page, `id="form-error"`) {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
	}
	if _, err := st.GetUser(ctx, "bob"); err == nil {
		t.Fatal("a refused user was stored")
	}
	if resp, _ := post("/settings/users", url.Values{"username": {"bob"}, "password": {"bob-password-1"}, "role": {"analyst"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create user: %d", resp.StatusCode)
	}
	bob := newClient(t, srv)
	bob.login("bob", "bob-password-1")
	if resp, _ := bob.get("/settings/users"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("analyst on the users page: %d", resp.StatusCode)
	}
	if resp, _ := post("/settings/users/bob", url.Values{"action": {"role"}, "role": {"admin"}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("set role: %d", resp.StatusCode)
	}
	if u, _ := st.GetUser(ctx, "bob"); u == nil || u.Role != store.RoleAdmin {
		t.Errorf("role not set: %+v", u)
	}
	post("/settings/users/bob", url.Values{"action": {"disable"}})
	if resp, _ := bob.get("/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a disabled user's session still works: %d", resp.StatusCode)
	}
	post("/settings/users/bob", url.Values{"action": {"enable"}})
	if resp, _ := post("/settings/users/bob", url.Values{"action": {"password"}, "password": {"bob-password-2"}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("set password: %d", resp.StatusCode)
	}
	if _, err := st.Authenticate(ctx, "bob", "bob-password-2"); err != nil {
		t.Errorf("new password: %v", err)
	}
	for _, form := range []url.Values{{"action": {"disable"}}, {"action": {"role"}, "role": {"analyst"}}} {
		if resp, _ := post("/settings/users/"+adminUser, form); resp.StatusCode != http.StatusConflict {
			t.Errorf("self %v: %d", form, resp.StatusCode)
		}
	}
	if u, _ := st.GetUser(ctx, adminUser); u.Disabled || u.Role != store.RoleAdmin {
		t.Errorf("the admin changed themselves: %+v", u)
	}
	if resp, _ := post("/settings/users/nobody", url.Values{"action": {"disable"}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown user: %d", resp.StatusCode)
	}

	// Tokens: the secret once, working, then revoked.
	resp, page := post("/settings/tokens", url.Values{"name": {"ci <pipeline>"}, "role": {"ci"}, "expires": {"720h"}})
	m := regexp.MustCompile(`id="token-value">([^<]+)<`).FindStringSubmatch(page)
	if resp.StatusCode != http.StatusCreated || m == nil || resp.Header.Get("Cache-Control") != "no-store" || strings.Contains(page, "ci <pipeline>") {
		t.Fatalf("create token: %d, secret shown %v", resp.StatusCode, m != nil)
	}
	tok, err := st.VerifyToken(ctx, m[1])
	if err != nil || tok.Role != store.RoleCI || tok.Name != "ci <pipeline>" {
		t.Fatalf("token: %+v %v", tok, err)
	}
	if _, page := admin.get("/settings/tokens"); strings.Contains(page, m[1]) {
		t.Error("the secret is shown again")
	}
	if resp, _ := post("/settings/tokens", url.Values{"name": {"x"}, "role": {"root"}, "expires": {"720h"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad role: %d", resp.StatusCode)
	}
	if resp, _ := post("/settings/tokens", url.Values{"name": {"x"}, "role": {"ci"}, "expires": {"-1h"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad expiry: %d", resp.StatusCode)
	}
	if resp, _ := post("/settings/tokens/"+itoa64(tok.ID)+"/revoke", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("revoke: %d", resp.StatusCode)
	}
	if _, err := st.VerifyToken(ctx, m[1]); err == nil {
		t.Error("a revoked token still verifies")
	}
	if resp, _ := admin.post("/settings/tokens/"+itoa64(tok.ID)+"/revoke", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("revoke without CSRF: %d", resp.StatusCode)
	}

	// The audit log, filtered.
	_, page = admin.get("/settings/audit?action=" + url.QueryEscape("user.update"))
	if n := strings.Count(page, `<tr data-audit=`); n != 4 { // role, disable, enable, password
		t.Errorf("%d user.update entries, want 4", n)
	}
	_, page = admin.get("/settings/audit?target=" + url.QueryEscape("token/"+itoa64(tok.ID)))
	if !strings.Contains(page, "token.create") || !strings.Contains(page, "token.revoke") || strings.Contains(page, "ci <pipeline>") {
		t.Errorf("token audit entries missing or not escaped")
	}
	if resp, _ := admin.get("/settings/audit?actor=%00"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("hostile filter: %d", resp.StatusCode)
	}
	an := newClient(t, srv)
	an.login(analystUser, analystPass)
	for _, p := range []string{"/settings/users", "/settings/tokens", "/settings/audit"} {
		if resp, page := an.get(p); resp.StatusCode != http.StatusForbidden {
			t.Errorf("analyst GET %s: %d", p, resp.StatusCode)
		} else if strings.Contains(page, `id="nav-settings"`) {
			t.Errorf("analyst sees the Settings link")
		}
	}
}
