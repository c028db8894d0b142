package console

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var testSessionKey = []byte("console-test-session-key-0123456789abcdef")

// newTestConsole builds the console over st with a fixed clock.
func newTestConsole(t testing.TB, st Store, now time.Time, mods ...func(*Config, *Deps)) *Console {
	t.Helper()
	cfg := Config{SessionKey: testSessionKey, SecureCookie: true, Version: "test"}
	deps := Deps{Store: st, Now: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, m := range mods {
		m(&cfg, &deps)
	}
	c, err := newConsole(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// client is a browser-like HTTP client: a cookie jar, no redirect
// following (tests look at the redirects).
type client struct {
	t   testing.TB
	srv *httptest.Server
	hc  *http.Client
}

func newClient(t testing.TB, srv *httptest.Server) *client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	// srv.Client returns one shared client: copy it, each client gets
	// its own cookie jar.
	hc := *srv.Client()
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &client{t: t, srv: srv, hc: &hc}
}

func (c *client) do(req *http.Request) (*http.Response, string) {
	c.t.Helper()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, string(b)
}

func (c *client) get(path string) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequest("GET", c.srv.URL+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.do(req)
}

// post sends a form as a same-origin browser would.
func (c *client) post(path string, form url.Values, hdr ...string) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequest("POST", c.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.srv.URL)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	return c.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfIn(t testing.TB, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%.2000s", body)
	}
	return m[1]
}

// login logs in with a password and checks the redirect.
func (c *client) login(user, pass string) {
	c.t.Helper()
	_, body := c.get("/login")
	resp, body := c.post("/login", url.Values{"csrf": {csrfIn(c.t, body)}, "username": {user}, "password": {pass}, "method": {"password"}})
	if resp.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("login %s: status %d\n%.1500s", user, resp.StatusCode, body)
	}
}

func (c *client) loginToken(tok string) {
	c.t.Helper()
	_, body := c.get("/login?tab=token")
	resp, body := c.post("/login", url.Values{"csrf": {csrfIn(c.t, body)}, "token": {tok}, "method": {"token"}})
	if resp.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("token login: status %d\n%.1500s", resp.StatusCode, body)
	}
}
