package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
)

// cookieNamed finds a Set-Cookie of the response by name.
func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, ck := range resp.Cookies() {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

func TestLoginLogout(t *testing.T) {
	w, st := openWorld(t)
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now))
	defer srv.Close()
	// Another replica: same store, same session key.
	replica := httptest.NewTLSServer(newTestConsole(t, st, w.now))
	defer replica.Close()
	cl := newClient(t, srv)

	resp, _ := cl.get("/images?kev=1")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fimages%3Fkev%3D1" {
		t.Fatalf("anonymous GET: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := cl.get("/login?next=%2Fimages%3Fkev%3D1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login page: %d", resp.StatusCode)
	}
	lc := cookieNamed(resp, loginCookie)
	if lc == nil || !lc.HttpOnly || !lc.Secure || lc.SameSite != http.SameSiteStrictMode || lc.Path != "/" {
		t.Fatalf("login cookie %+v", lc)
	}
	resp, _ = cl.post("/login", url.Values{"csrf": {csrfIn(t, body)}, "username": {adminUser}, "password": {adminPass},
		"method": {"password"}, "next": {"/images?kev=1"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/images?kev=1" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	sc := cookieNamed(resp, sessionCookie)
	if sc == nil || !sc.HttpOnly || !sc.Secure || sc.SameSite != http.SameSiteStrictMode || sc.MaxAge != int((12*time.Hour).Seconds()) {
		t.Fatalf("session cookie %+v", sc)
	}
	resp, body = cl.get("/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `title="Account (user)">admin</a>`) {
		t.Fatalf("overview after login: %d", resp.StatusCode)
	}
	logins, _, err := st.ListAudit(context.Background(), store.AuditFilter{Action: "console.login"}, store.Page{})
	if err != nil || len(logins) != 1 || logins[0].Actor != "user:admin" {
		t.Fatalf("audit of the login: %+v %v", logins, err)
	}

	// Log out, then replay the old cookie: the session was revoked.
	resp, _ = cl.post("/logout", url.Values{"csrf": {csrfIn(t, body)}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if ck := cookieNamed(resp, sessionCookie); ck == nil || ck.MaxAge >= 0 {
		t.Fatalf("logout does not clear the cookie: %+v", ck)
	}
	for _, base := range []string{srv.URL, replica.URL} {
		req, _ := http.NewRequest("GET", base+"/", nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: sc.Value})
		resp, _ = cl.do(req)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("a logged-out session still works on %s: %d", base, resp.StatusCode)
		}
	}
}

func TestLoginRefusals(t *testing.T) {
	w, st := openWorld(t)
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now))
	defer srv.Close()

	tests := []struct {
		name   string
		form   url.Values
		status int
		msg    string
	}{
		{"wrong password", url.Values{"username": {adminUser}, "password": {"wrong-password"}}, 401, "Wrong username or password."},
		{"unknown user", url.Values{"username": {"mallory"}, "password": {adminPass}}, 401, "Wrong username or password."},
		{"empty", url.Values{}, 401, "Wrong username or password."},
		{"huge password", url.Values{"username": {adminUser}, "password": {strings.Repeat("x", 2000)}}, 401, "Wrong username or password."},
		{"garbage token", url.Values{"method": {"token"}, "token": {"bwk_nope"}}, 401, "That token is not valid."},
		{"ci token", url.Values{"method": {"token"}, "token": {w.ciToken}}, 403, "The ci role is for machines"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl := newClient(t, srv)
			_, body := cl.get("/login")
			tc.form.Set("csrf", csrfIn(t, body))
			resp, body := cl.post("/login", tc.form)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.msg) {
				t.Fatalf("status %d (want %d), message %q in:\n%.600s", resp.StatusCode, tc.status, tc.msg, body)
			}
			if cookieNamed(resp, sessionCookie) != nil {
				t.Fatal("a refused login set a session cookie")
			}
		})
	}
}

func TestLoginNextIsLocal(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/images?kev=1", "/images?kev=1"},
		{"", "/"},
		{"//evil.example/x", "/"},
		{"https://evil.example/", "/"},
		{"/\\evil.example", "/"},
		{"/login?next=/x", "/"},
		{"javascript:alert(1)", "/"},
		{"/ok\r\nSet-Cookie: x", "/"},
		{"/" + strings.Repeat("a", 2000), "/"},
	} {
		if got := safeNext(tc.in); got != tc.want {
			t.Errorf("safeNext(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLoginRateLimit(t *testing.T) {
	w, st := openWorld(t)
	clk := &movableClock{t: w.now}
	c := newTestConsole(t, st, w.now, func(cfg *Config, d *Deps) {
		cfg.LoginFailures, cfg.LoginWindow, cfg.TrustProxyHeaders = 3, 10*time.Minute, true
		d.Now = clk.Now
	})
	srv := httptest.NewTLSServer(c)
	defer srv.Close()
	attempt := func(pass, ip string) *http.Response {
		t.Helper()
		cl := newClient(t, srv)
		_, body := cl.get("/login")
		resp, _ := cl.post("/login", url.Values{"csrf": {csrfIn(t, body)}, "username": {adminUser}, "password": {pass}},
			"X-Forwarded-For", "198.51.100.7, "+ip)
		return resp
	}
	for i := range 3 {
		if resp := attempt("wrong", "203.0.113.9"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d", i, resp.StatusCode)
		}
	}
	resp := attempt(adminPass, "203.0.113.9")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("4th attempt from a blocked address: %d (Retry-After %q)", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if cookieNamed(resp, sessionCookie) != nil {
		t.Fatal("a blocked address got a session even with the right password")
	}
	// Another address is not blocked; IPv6 addresses count per /64.
	if resp := attempt(adminPass, "203.0.113.10"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("another address: %d", resp.StatusCode)
	}
	if a, b := c.clientIP(&http.Request{RemoteAddr: "[2001:db8::1]:5555"}), c.clientIP(&http.Request{RemoteAddr: "[2001:db8::ffff]:1"}); a != b {
		t.Errorf("one /64 counted as two addresses: %s, %s", a, b)
	}
	clk.Set(w.now.Add(11 * time.Minute))
	if resp := attempt(adminPass, "203.0.113.9"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the window: %d", resp.StatusCode)
	}
}

func TestLoginLimiterIsBounded(t *testing.T) {
	l := newLoginLimiter(2, time.Minute, 100)
	now := time.Unix(1_700_000_000, 0)
	for i := range 10_000 {
		l.fail("10.0."+itoa(i/256)+"."+itoa(i%256), now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := l.size(); n > 100 {
		t.Fatalf("limiter holds %d addresses, cap 100", n)
	}
	// The newest addresses are the ones kept.
	last := "10.0." + itoa(9999/256) + "." + itoa(9999%256)
	l.fail(last, now.Add(10*time.Second))
	if l.blocked(last, now.Add(10*time.Second)) == 0 {
		t.Error("the latest address was evicted")
	}
	rs := newRevokedSessions(50)
	for i := range 500 {
		rs.add(itoa(i), now.Add(time.Hour), now)
	}
	if len(rs.m) > 50 {
		t.Fatalf("revoked sessions hold %d, cap 50", len(rs.m))
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestTokenSessions(t *testing.T) {
	w, st := openWorld(t)
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now))
	defer srv.Close()
	cl := newClient(t, srv)
	cl.loginToken(w.analystToken)
	resp, body := cl.get("/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<span class="role role-analyst">analyst</span>`) {
		t.Fatalf("token session: %d", resp.StatusCode)
	}
	toks, _ := st.ListTokens(context.Background())
	for _, tk := range toks {
		if tk.Name == "console-analyst" {
			if err := st.RevokeToken(context.Background(), tk.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if resp, _ := cl.get("/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a revoked token's session still works: %d", resp.StatusCode)
	}
}

func TestSessionEndsWhenUserChanges(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(st *store.Store) error
	}{
		{"password changed", func(st *store.Store) error { return st.SetPassword(ctx, analystUser, "a-new-password-123") }},
		{"disabled", func(st *store.Store) error { return st.UpdateUser(ctx, analystUser, store.RoleAnalyst, true) }},
		{"made a ci user", func(st *store.Store) error { return st.UpdateUser(ctx, analystUser, store.RoleCI, false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, st, path := openWorldFile(t)
			srv := httptest.NewTLSServer(newTestConsole(t, st, w.now))
			defer srv.Close()
			cl := newClient(t, srv)
			cl.login(analystUser, analystPass)
			if resp, _ := cl.get("/images"); resp.StatusCode != http.StatusOK {
				t.Fatalf("before: %d", resp.StatusCode)
			}
			// A second handle on the same file, as another replica would
			// have, with a clock a minute later so updated_at moves.
			st2, err := store.Open(ctx, path, store.Options{SecretKey: testSecretKey, Now: func() time.Time { return w.now.Add(time.Minute) }})
			if err != nil {
				t.Fatal(err)
			}
			defer st2.Close()
			if err := tc.change(st2); err != nil {
				t.Fatal(err)
			}
			if resp, _ := cl.get("/images"); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("after: %d, want a redirect to the login", resp.StatusCode)
			}
		})
	}
}

func TestSessionCookieIntegrity(t *testing.T) {
	w, st := openWorld(t)
	oldKey := []byte("the-previous-session-key-0123456789abcdef")
	clk := &movableClock{t: w.now}
	c := newTestConsole(t, st, w.now, func(cfg *Config, d *Deps) {
		cfg.OldSessionKeys = [][]byte{oldKey}
		d.Now = clk.Now
	})
	srv := httptest.NewTLSServer(c)
	defer srv.Close()
	cl := newClient(t, srv)
	try := func(v string) int {
		req, _ := http.NewRequest("GET", srv.URL+"/images", nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: v})
		resp, _ := cl.do(req)
		return resp.StatusCode
	}
	mk := func(key []byte, s session) string {
		b, _ := json.Marshal(s)
		return base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(mac(key, "session", b))
	}
	u, err := st.GetUser(context.Background(), analystUser)
	if err != nil {
		t.Fatal(err)
	}
	good := session{ID: randomID(), Kind: "u", Subject: analystUser, Issued: w.now.Unix(), Expires: w.now.Add(time.Hour).Unix(), Stamp: u.UpdatedAt.UnixMicro()}
	if s := try(mk(testSessionKey, good)); s != http.StatusOK {
		t.Fatalf("a well-signed session: %d", s)
	}
	if s := try(mk(oldKey, good)); s != http.StatusOK {
		t.Fatalf("a session signed with the previous key: %d", s)
	}
	// Same signature, other subject: the signature covers the payload.
	v := mk(testSessionKey, good)
	forged := good
	forged.Subject = adminUser
	fb, _ := json.Marshal(forged)
	_, sig, _ := strings.Cut(v, ".")
	for name, val := range map[string]string{
		"payload swapped":    base64.RawURLEncoding.EncodeToString(fb) + "." + sig,
		"unknown key":        mk([]byte("somebody-elses-key-0123456789abcdef-xx"), forged),
		"no signature":       base64.RawURLEncoding.EncodeToString(fb),
		"garbage":            "%%%.%%%",
		"empty":              "",
		"huge":               strings.Repeat("A", 5000) + "." + sig,
		"login cookie value": c.sign("login", []byte(randomID())),
	} {
		if s := try(val); s != http.StatusSeeOther {
			t.Errorf("%s: status %d, want a redirect to the login", name, s)
		}
	}
	clk.Set(w.now.Add(2 * time.Hour))
	if s := try(mk(testSessionKey, good)); s != http.StatusSeeOther {
		t.Errorf("an expired session: status %d", s)
	}
}

func TestCSRF(t *testing.T) {
	w, st := openWorld(t)
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now, func(_ *Config, d *Deps) {
		d.TestRegistry = func(context.Context, int64) error { return nil }
	}))
	defer srv.Close()
	admin := newClient(t, srv)
	admin.login(adminUser, adminPass)
	_, page := admin.get("/registries")
	tok := csrfIn(t, page)
	other := newClient(t, srv)
	other.login(analystUser, analystPass)
	_, otherPage := other.get("/registries")
	otherTok := csrfIn(t, otherPage)

	form := func(name, csrf string) url.Values {
		v := url.Values{"name": {name}, "url": {"https://r.example"}, "kind": {"generic"}}
		if csrf != "" {
			v.Set("csrf", csrf)
		}
		return v
	}
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  []string
		want int
	}{
		{"no token", form("no-token", ""), nil, 403},
		{"wrong token", form("wrong-token", "AAAA"), nil, 403},
		{"another session's token", form("other-token", otherTok), nil, 403},
		{"cross-origin", form("cross-origin", tok), []string{"Origin", "https://evil.example"}, 403},
		{"null origin", form("null-origin", tok), []string{"Origin", "null"}, 403},
		{"cross-site fetch", form("cross-site", tok), []string{"Sec-Fetch-Site", "cross-site", "Origin", ""}, 403},
		{"same-site fetch", form("same-site", tok), []string{"Sec-Fetch-Site", "same-site"}, 403},
		{"token in a header", form("header-token", ""), []string{csrfHeader, tok}, 303},
		{"token in the form", form("form-token", tok), nil, 303},
		{"no Origin (curl)", form("no-origin", tok), []string{"Origin", ""}, 303},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := admin.post("/registries", tc.form, tc.hdr...)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, errorMessage(body))
			}
			_, err := st.GetRegistryByName(context.Background(), tc.form.Get("name"))
			if created := err == nil; created != (tc.want == 303) {
				t.Fatalf("registry created: %v", created)
			}
		})
	}
	// Logout and test connection need the token too.
	if resp, _ := admin.post("/logout", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without token: %d", resp.StatusCode)
	}
	if resp, _ := admin.post("/registries/1/test", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("test connection without token: %d", resp.StatusCode)
	}
	if resp, _ := admin.get("/"); resp.StatusCode != http.StatusOK {
		t.Errorf("the session ended after refused POSTs: %d", resp.StatusCode)
	}
	// The login form has its own token, bound to a pre-login cookie.
	anon := newClient(t, srv)
	resp, body := anon.post("/login", url.Values{"username": {adminUser}, "password": {adminPass}})
	if resp.StatusCode != http.StatusForbidden || cookieNamed(resp, sessionCookie) != nil {
		t.Errorf("login without a form token: %d", resp.StatusCode)
	}
	resp, _ = anon.post("/login", url.Values{"csrf": {csrfIn(t, body)}, "username": {adminUser}, "password": {adminPass}},
		"Origin", "https://evil.example")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin login: %d", resp.StatusCode)
	}
}

var errorMsgRE = regexp.MustCompile(`(?s)id="error-message">(.*?)</p>`)

// errorMessage extracts the message of an error page.
func errorMessage(body string) string {
	if m := errorMsgRE.FindStringSubmatch(body); m != nil {
		return m[1]
	}
	if len(body) > 300 {
		body = body[:300]
	}
	return body
}

func TestChangePassword(t *testing.T) {
	w, st := openWorld(t)
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now))
	defer srv.Close()
	cl := newClient(t, srv)
	cl.login(analystUser, analystPass)
	_, body := cl.get("/account")
	tok := csrfIn(t, body)
	srvURL, _ := url.Parse(srv.URL)
	oldCookie := cl.hc.Jar.Cookies(srvURL)
	const newPass = "a-much-better-passphrase"
	for _, tc := range []struct {
		name                  string
		current, next, repeat string
		status                int
		msg                   string
	}{
		{"wrong current", "nope-nope-nope", newPass, newPass, 401, "The current password is wrong."},
		{"mismatch", analystPass, newPass, newPass + "x", 400, "differ"},
		{"too short", analystPass, "short", "short", 400, "must be 8 to 1024"},
		{"same", analystPass, analystPass, analystPass, 400, "is the current one"},
	} {
		resp, body := cl.post("/account/password", url.Values{"csrf": {tok}, "current": {tc.current}, "new": {tc.next}, "confirm": {tc.repeat}})
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.msg) {
			t.Errorf("%s: %d, want %d with %q", tc.name, resp.StatusCode, tc.status, tc.msg)
		}
	}
	resp, _ := cl.post("/account/password", url.Values{"csrf": {tok}, "current": {analystPass}, "new": {newPass}, "confirm": {newPass}})
	if resp.StatusCode != http.StatusSeeOther || cookieNamed(resp, sessionCookie) == nil {
		t.Fatalf("change: %d", resp.StatusCode)
	}
	// This browser carries on with its new cookie...
	if resp, body := cl.get("/account"); resp.StatusCode != 200 || !strings.Contains(body, "Password changed.") {
		t.Fatalf("after the change: %d", resp.StatusCode)
	}
	// ...the cookie from before the change is dead...
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	for _, ck := range oldCookie {
		req.AddCookie(ck)
	}
	if resp, _ := newClient(t, srv).do(req); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the session from before the change: %d", resp.StatusCode)
	}
	// ...and the new password logs in.
	if _, err := st.Authenticate(context.Background(), analystUser, newPass); err != nil {
		t.Errorf("new password: %v", err)
	}
	audit, _, _ := st.ListAudit(context.Background(), store.AuditFilter{Action: "user.password"}, store.Page{})
	if len(audit) != 1 || audit[0].Actor != "user:"+analystUser || strings.Contains(string(audit[0].Details), newPass) {
		t.Errorf("audit %+v", audit)
	}
	// Token sessions have no password.
	tc := newClient(t, srv)
	tc.loginToken(w.adminToken)
	_, body = tc.get("/account")
	if !strings.Contains(body, "uses an API token") {
		t.Error("token account page")
	}
	if resp, _ := tc.post("/account/password", url.Values{"csrf": {csrfIn(t, body)}, "current": {"x"}, "new": {newPass}, "confirm": {newPass}}); resp.StatusCode != 403 {
		t.Errorf("token session password change: %d", resp.StatusCode)
	}
}
