package console

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// TestPagesByRole requests every page as nobody, an analyst and an admin.
func TestPagesByRole(t *testing.T) {
	w, st := openWorld(t)
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now, func(_ *Config, d *Deps) {
		d.TestRegistry = func(context.Context, int64) error { return nil }
	}))
	defer srv.Close()
	demo := "/images/" + w.digests["demo"]
	clients := map[string]*client{"anonymous": newClient(t, srv), "analyst": newClient(t, srv), "admin": newClient(t, srv)}
	clients["analyst"].login(analystUser, analystPass)
	clients["admin"].login(adminUser, adminPass)
	tokens := map[string]string{}
	for role, cl := range clients {
		if role == "anonymous" {
			continue
		}
		_, body := cl.get("/")
		tokens[role] = csrfIn(t, body)
	}
	get := func(path string, anon, analyst, admin int) []any {
		return []any{"GET", path, anon, analyst, admin}
	}
	post := func(path string, anon, analyst, admin int) []any {
		return []any{"POST", path, anon, analyst, admin}
	}
	for _, tc := range [][]any{
		get("/", 303, 200, 200),
		get("/?range=7", 303, 200, 200),
		get("/?range=90", 303, 200, 200),
		get("/images", 303, 200, 200),
		get("/images?q=shop&severity=high&kev=1&fixable=1&registry=registry.example.com&repository=shop/api&sort=-critical&page=1&per=25", 303, 200, 200),
		get(demo, 303, 200, 200),
		get(demo+"?tab=packages&ecosystem=npm&q=lodash", 303, 200, 200),
		get(demo+"?tab=layers", 303, 200, 200),
		get(demo+"?severity=critical&fixable=1&q=net&sort=cvss&page=2", 303, 200, 200),
		get("/vulns/NSWG-ECO-495", 303, 200, 200),
		get("/vulns/CVE-2019-5786", 303, 200, 200), // by alias
		get("/vulns?id=NSWG-ECO-495", 303, 303, 303),
		get("/scans", 303, 200, 200),
		get("/scans?status=failed", 303, 200, 200),
		get("/jobs", 303, 200, 200),
		get("/jobs?state=failed&kind=scan", 303, 200, 200),
		get("/registries", 303, 200, 200),
		get("/clusters", 303, 200, 200),
		get("/policies", 303, 200, 200),
		get("/policies/none", 303, 404, 404),
		get("/settings/users", 303, 403, 200),
		get("/settings/tokens", 303, 403, 200),
		get("/settings/audit", 303, 403, 200),
		get("/settings/audit?action=token.create&page=1", 303, 403, 200),
		get("/account", 303, 200, 200),
		get("/static/console.css", 200, 200, 200),
		get("/static/console.js", 200, 200, 200),
		get("/login", 200, 303, 303),
		// Not found.
		get("/images/sha256:"+strings.Repeat("0", 64), 303, 404, 404),
		get("/images/not-a-digest", 303, 404, 404),
		get("/vulns/CVE-1999-0000", 303, 404, 404),
		get("/vulns/%3Cscript%3E", 303, 404, 404),
		get("/nope", 303, 404, 404),
		get("/static/", 404, 404, 404),
		get("/static/missing.css", 404, 404, 404),
		// Bad input: 400 with a message, never a 500.
		get("/images?sort=drop%20table", 303, 400, 400),
		get("/images?sort=-password", 303, 400, 400),
		get("/images?q="+strings.Repeat("a", 201), 303, 400, 400),
		get("/images?q=%00", 303, 400, 400),
		get("/images?q=%ff%fe", 303, 400, 400),
		get("/images?page=0", 303, 400, 400),
		get("/images?page=999999999", 303, 400, 400),
		get("/images?page=abc", 303, 400, 400),
		get("/images?per=5000", 303, 400, 400),
		get("/images?severity=urgent", 303, 400, 400),
		get("/images?kev=maybe", 303, 400, 400),
		get("/images?registry="+strings.Repeat("r", 256), 303, 400, 400),
		get("/images?x="+strings.Repeat("a", 5000), 303, 400, 400),
		get("/images?%zz", 303, 400, 400),
		get(demo+"?tab=secrets", 303, 400, 400),
		get(demo+"?sort=summary", 303, 400, 400),
		get("/vulns?id=%3Cscript%3E", 303, 400, 400),
		get("/jobs?state=exploded", 303, 400, 400),
		get("/scans?status=meh", 303, 400, 400),
		get("/?range=365", 303, 400, 400),
		// Writes: admin only (the CSRF token is added below).
		post("/registries", 403, 403, 303),
		post("/registries/1/test", 403, 403, 303),
		post("/registries/999/test", 403, 403, 404),
		post("/registries/abc/test", 403, 403, 404),
		post("/policies", 403, 403, 404), // no PutAdmissionPolicy in this console
		post("/policies/none/delete", 403, 403, 404),
		post("/settings/users/nobody", 403, 403, 404),
		post("/settings/tokens/999/revoke", 403, 403, 404),
		post("/images", 403, 404, 404), // the catch-all answers other methods
		post("/account/password", 403, 400, 400),
	} {
		method, path := tc[0].(string), tc[1].(string)
		for i, role := range []string{"anonymous", "analyst", "admin"} {
			want := tc[2+i].(int)
			cl := clients[role]
			var resp *http.Response
			var body string
			if method == "GET" {
				resp, body = cl.get(path)
			} else {
				form := url.Values{"csrf": {tokens[role]}, "name": {"r-" + role + "-" + filepath.Base(path)},
					"url": {"https://r.example"}, "kind": {"generic"}}
				resp, body = cl.post(path, form)
			}
			if resp.StatusCode != want {
				t.Errorf("%s %s as %s: %d, want %d: %s", method, path, role, resp.StatusCode, want, errorMessage(body))
			}
			if resp.StatusCode == 303 && role == "anonymous" && !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
				t.Errorf("%s %s as %s: redirected to %q", method, path, role, resp.Header.Get("Location"))
			}
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	w, st := openWorld(t)
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now))
	defer srv.Close()
	cl := newClient(t, srv)
	cl.login(adminUser, adminPass)
	for _, p := range []string{"/", "/login", "/images", "/nope"} {
		resp, body := cl.get(p)
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") ||
			strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", p, h)
		}
		if resp.StatusCode == 200 && h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", p, h.Get("Cache-Control"))
		}
		// The CSP forbids inline script and style: the markup must not
		// need them.
		for _, bad := range []string{"<script>", " style=", " onclick=", " onload=", "javascript:"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s: markup contains %q, which the CSP blocks", p, bad)
			}
		}
	}
	resp, _ := cl.get("/static/console.css")
	if resp.Header.Get("Cache-Control") != "public, max-age=86400" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Errorf("static: %v", resp.Header)
	}
}

// hostileStore is a store holding outside data written to attack the
// page: advisory text, package names, paths and a registry name with
// markup. The scan result is built by hand: it is the hostile input.
func hostileStore(t *testing.T) (*store.Store, string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "hostile.db"), store.Options{SecretKey: testSecretKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	digest := "sha256:" + strings.Repeat("ab", 32)
	pkg := inventory.Package{Name: `<img src=x onerror=alert(2)>`, Version: `1.0"><script>alert(3)</script>`, Type: "npm",
		Ecosystem: "npm", Location: `app/"><svg onload=alert(4)>/package.json`}
	res := &scan.Result{SchemaVersion: scan.SchemaVersion, Tool: scan.Tool{Name: "bulwark", Version: `<b>v</b>`},
		Target: scan.Target{Kind: "image", Name: `registry.example.com/evil/app:1`, Digest: digest,
			RepoTags: []string{"registry.example.com/evil/app:1"},
			Layers:   []scan.Layer{{Digest: "sha256:" + strings.Repeat("cd", 32), CreatedBy: `RUN <script>alert(5)</script>`}}},
		StartedAt: time.Now(), FinishedAt: time.Now(),
		OS: &inventory.OS{ID: "debian", VersionID: "12", PrettyName: `Debian <script>alert(6)</script>`},
		Packages: []inventory.Package{pkg,
			// A language package the OS package manager installed, and
			// that OS package (as the dpkg extractor reports them).
			{Name: "urllib3", Version: "1.26.12", Type: "pypi", Ecosystem: "PyPI", OSPackage: "python3-urllib3",
				Location: "usr/lib/python3/dist-packages/urllib3-1.26.12.dist-info/METADATA"},
			{Name: "python3-urllib3", Version: "1.26.12-1+deb12u4", Type: "deb", Ecosystem: "Debian:12",
				SourceName: "python-urllib3", Location: "var/lib/dpkg/status"}},
		Findings: []scan.Finding{{Match: vulndb.Match{Package: 0, InstalledVersion: "1.0", FixedVersions: []string{`2.0<script>alert(7)</script>`},
			Vulnerability: &vulndb.Vulnerability{ID: "GHSA-evil-0001", Aliases: []string{`"><svg/onload=alert(8)>`},
				Summary: `<script>window.__xss=1;alert("xss")</script>`, Severity: vulndb.SeverityCritical,
				KEV: &vulndb.KEV{DateAdded: "2024-01-01"}}}, Package: pkg}},
	}
	if _, err := st.SaveScan(ctx, res, store.ScanMeta{TriggeredBy: `user:<script>alert(9)</script>`}); err != nil {
		t.Fatal(err)
	}
	reg, err := st.CreateRegistry(ctx, store.Registry{Name: `<img src=x onerror=alert(10)>`, URL: "https://r.example", Kind: store.RegistryGeneric,
		Repositories: []string{`"><script>alert(11)</script>`}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RecordSweep(ctx, reg.ID, time.Now(), `<script>alert(12)</script>`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, adminUser, adminPass, store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	return st, digest
}

func TestHostileContentIsEscaped(t *testing.T) {
	st, digest := hostileStore(t)
	srv := httptest.NewTLSServer(newTestConsole(t, st, time.Now()))
	defer srv.Close()
	cl := newClient(t, srv)
	cl.login(adminUser, adminPass)
	for _, p := range []string{"/", "/images", "/images/" + digest, "/images/" + digest + "?tab=packages",
		"/images/" + digest + "?tab=layers", "/vulns/GHSA-evil-0001", "/scans", "/registries"} {
		resp, body := cl.get(p)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, errorMessage(body))
		}
		for _, raw := range []string{"<script>alert", "<script>window", "<img src=x", "<svg onload", "<svg/onload", "<b>v</b>"} {
			if strings.Contains(body, raw) {
				t.Errorf("%s: hostile markup %q reached the page unescaped", p, raw)
			}
		}
	}
	_, body := cl.get("/vulns/GHSA-evil-0001")
	if !strings.Contains(body, `&lt;script&gt;window.__xss=1;alert(&#34;xss&#34;)&lt;/script&gt;`) {
		t.Errorf("the summary is not shown as text:\n%s", body)
	}
}

func TestBasePath(t *testing.T) {
	w, st := openWorld(t)
	h := newTestConsole(t, st, w.now, func(cfg *Config, _ *Deps) { cfg.BasePath = "/console/" })
	mux := http.NewServeMux()
	mux.Handle("/console/", h)
	mux.Handle("/console", h)
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	cl := newClient(t, srv)
	resp, _ := cl.get("/console")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("/console: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = cl.get("/console/images")
	if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || loc != "/console/login?next=%2Fimages" {
		t.Fatalf("anonymous: %d %q", resp.StatusCode, loc)
	}
	resp, body := cl.get("/console/login")
	if ck := cookieNamed(resp, loginCookie); ck == nil || ck.Path != "/console/" {
		t.Fatalf("login cookie %+v", ck)
	}
	resp, _ = cl.post("/console/login", url.Values{"csrf": {csrfIn(t, body)}, "username": {adminUser}, "password": {adminPass}})
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = cl.get("/console/")
	if resp.StatusCode != 200 {
		t.Fatalf("overview: %d", resp.StatusCode)
	}
	for _, want := range []string{`href="/console/images"`, `href="/console/static/console.css?v=`, `action="/console/logout"`,
		`href="/console/images/sha256:`} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %s", want)
		}
	}
	if strings.Contains(body, `href="/images`) {
		t.Error("a link misses the base path")
	}
	if _, err := newConsole(Config{SessionKey: testSessionKey, BasePath: "console"}, Deps{Store: st}); err == nil {
		t.Error("a relative base path was accepted")
	}
	if _, err := newConsole(Config{SessionKey: []byte("short")}, Deps{Store: st}); err == nil {
		t.Error("a short session key was accepted")
	}
}

func TestRegistryForm(t *testing.T) {
	w, st := openWorld(t)
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now))
	defer srv.Close()
	cl := newClient(t, srv)
	cl.login(adminUser, adminPass)
	_, page := cl.get("/registries")
	tok := csrfIn(t, page)
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		msg    string
	}{
		{"no name", url.Values{"url": {"https://x.example"}, "kind": {"generic"}}, 400, "Name:"},
		{"long name", url.Values{"name": {strings.Repeat("n", 101)}, "url": {"https://x.example"}, "kind": {"generic"}}, 400, "Name:"},
		{"bad kind", url.Values{"name": {"x"}, "url": {"https://x.example"}, "kind": {"quay"}}, 400, "Kind:"},
		{"ftp url", url.Values{"name": {"x"}, "url": {"ftp://x.example"}, "kind": {"generic"}}, 400, "URL:"},
		{"url with password", url.Values{"name": {"x"}, "url": {"https://u:p@x.example"}, "kind": {"generic"}}, 400, "URL:"},
		{"username without password", url.Values{"name": {"x"}, "url": {"https://x.example"}, "kind": {"generic"}, "username": {"u"}}, 400, "Credentials:"},
		{"repo with space", url.Values{"name": {"x"}, "url": {"https://x.example"}, "kind": {"generic"}, "repositories": {"a b"}}, 400, "Repositories:"},
		{"taken name", url.Values{"name": {"harbor-prod"}, "url": {"https://x.example"}, "kind": {"generic"}}, 409, "already exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("csrf", tok)
			tc.form.Set("password-not-echoed", "")
			resp, body := cl.post("/registries", tc.form)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.msg) {
				t.Fatalf("status %d, want %d with %q", resp.StatusCode, tc.status, tc.msg)
			}
		})
	}
	// A refused form keeps what was typed, except secrets.
	resp, body := cl.post("/registries", url.Values{"csrf": {tok}, "name": {"keep-me"}, "url": {"ftp://x"}, "kind": {"harbor"},
		"username": {"bob"}, "password": {"hunter2-secret"}})
	if resp.StatusCode != 400 || !strings.Contains(body, `value="keep-me"`) || !strings.Contains(body, `value="bob"`) ||
		strings.Contains(body, "hunter2-secret") || !strings.Contains(body, `<option value="harbor" selected>`) {
		t.Errorf("refused form: %d", resp.StatusCode)
	}
}

// TestOverviewMatchesStore checks the dashboard's numbers against the
// store without a browser: the cards, each severity's trend per day
// (against the totals recorded while seeding), the fixable donut and the
// KEV card.
func TestOverviewMatchesStore(t *testing.T) {
	w, st := openWorld(t)
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now))
	defer srv.Close()
	cl := newClient(t, srv)
	cl.login(analystUser, analystPass)
	ctx := context.Background()
	want, err := totalsOf(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, days := range []int{7, 30, 90} {
		resp, body := cl.get("/?range=" + strconv.Itoa(days))
		if resp.StatusCode != 200 {
			t.Fatalf("overview: %d", resp.StatusCode)
		}
		trend := expectedTrend(w, days)
		for i, k := range sevKeys {
			if !strings.Contains(body, fmt.Sprintf(`data-severity="%s" data-count="%d"`, k, want[i])) {
				t.Errorf("%d days: card %s does not show %d", days, k, want[i])
			}
			if !strings.Contains(body, fmt.Sprintf(`data-series="%s" data-last="%d" data-values="%s"`, k, want[i], joinInts(trend[i]))) {
				t.Errorf("%d days: trend %s is not %s", days, k, joinInts(trend[i]))
			}
		}
		if strings.Contains(body, "earlier days show those findings at today") {
			t.Errorf("%d days: the trend says it is approximate, but every change is inside the window", days)
		}
	}
	_, body := cl.get("/")
	_, fixable, _ := st.ListFindings(ctx, store.FindingFilter{Fixable: true}, store.Page{Limit: 1})
	_, kev, _ := st.ListFindings(ctx, store.FindingFilter{KEV: true}, store.Page{Limit: 1})
	for _, s := range []string{
		fmt.Sprintf(`data-chart="fixable" data-total="%d"`, want.total()),
		fmt.Sprintf(`data-series="fixable" data-value="%d"`, fixable),
		fmt.Sprintf(`id="fixable-count">%s<`, num(fixable)),
		fmt.Sprintf(`data-count="%d" id="card-kev"`, kev),
	} {
		if !strings.Contains(body, s) {
			t.Errorf("overview lacks %s", s)
		}
	}
}

func TestPackagesTab(t *testing.T) {
	st, digest := hostileStore(t)
	srv := httptest.NewTLSServer(newTestConsole(t, st, time.Now()))
	defer srv.Close()
	cl := newClient(t, srv)
	cl.login(adminUser, adminPass)
	_, body := cl.get("/images/" + digest + "?tab=packages")
	for _, want := range []string{">installed by OS: python3-urllib3</span>", `title="Installed by the OS package manager">OS package</span>`,
		"source python-urllib3", "usr/lib/python3/dist-packages/urllib3-1.26.12.dist-info/METADATA"} {
		if !strings.Contains(body, want) {
			t.Errorf("packages tab lacks %q", want)
		}
	}
	_, body = cl.get("/images/" + digest + "?tab=packages&ecosystem=PyPI")
	if n := strings.Count(body, `<span class="pkg">`); n != 1 || !strings.Contains(body, `<span class="pkg">urllib3</span>`) {
		t.Errorf("ecosystem filter shows %d packages", n)
	}
	_, body = cl.get("/images/" + digest + "?tab=packages&q=URLLIB")
	if n := strings.Count(body, `<span class="pkg">`); n != 2 {
		t.Errorf("text filter (case-insensitive) shows %d packages, want 2", n)
	}
}
