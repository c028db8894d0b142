package console

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzSessionCookie feeds arbitrary cookie values to the session parser:
// no panic, and nothing but a value this console signed is accepted.
func FuzzSessionCookie(f *testing.F) {
	c := &Console{keys: [][]byte{testSessionKey}}
	now := time.Unix(1_800_000_000, 0)
	good, _ := json.Marshal(session{ID: strings.Repeat("a", 32), Kind: "u", Subject: "admin", Issued: now.Unix(), Expires: now.Add(time.Hour).Unix()})
	f.Add(c.sign("session", good))
	f.Add(c.sign("login", good))
	f.Add("e30.AAAA")
	f.Add(".")
	f.Add("")
	f.Add(strings.Repeat("A", 5000))
	f.Fuzz(func(t *testing.T, v string) {
		s, ok := c.parseSession(v, now)
		if !ok {
			return
		}
		if s.Kind != "u" && s.Kind != "t" || s.Subject == "" || len(s.ID) != 32 || s.Expires <= now.Unix() {
			t.Fatalf("accepted a malformed session %+v", s)
		}
		payload, ok := c.verify("session", v)
		if !ok || c.sign("session", payload) == "" {
			t.Fatal("accepted without a valid signature")
		}
	})
}

// FuzzQuery runs the query-parameter validators on arbitrary query
// strings: no panic, and what they return stays within the limits.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{"", "q=shop&severity=high&kev=1&page=2&sort=-risk", "q=%00", "page=-1", "sort=-", "%zz",
		"q=" + strings.Repeat("é", 150), "severity=CRITICAL", "kev=on&fixable=true&per=100"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := &http.Request{URL: &url.URL{Path: "/images", RawQuery: raw}}
		q := newQuery(r)
		text := q.text("q", 200)
		sev, _ := q.severity("severity")
		_ = q.flag("kev")
		sort := q.sortKey(imageSortKeys, "-risk")
		page := q.page()
		e := q.enum("per", "25", "50", "100")
		if len(text) > 200 || !utf8.ValidString(text) || !cleanText(text) {
			t.Fatalf("text %q escaped the limits", text)
		}
		if !slices.Contains(imageSortKeys, strings.TrimPrefix(sort, "-")) {
			t.Fatalf("sort %q not whitelisted", sort)
		}
		if page < 1 || page > maxPage || sev < 0 || sev > 4 {
			t.Fatalf("page %d severity %d", page, sev)
		}
		if e != "" && e != "25" && e != "50" && e != "100" {
			t.Fatalf("enum %q", e)
		}
	})
}

// FuzzSafeNext: the post-login redirect only ever goes to a local path.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/images", "//evil", "https://evil", "/\\evil", "/%2f%2fevil", "\x00", "/login"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		u, err := url.Parse(got)
		if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") ||
			strings.ContainsAny(got, "\\\r\n") {
			t.Fatalf("safeNext(%q) = %q leaves the console", next, got)
		}
	})
}

// FuzzPages sends arbitrary query strings to every list and detail page
// of a console over the seeded store, logged in: the answer is a page or
// a 400, never a server error.
func FuzzPages(f *testing.F) {
	for _, s := range []string{"", "q=shop&severity=high", "sort=-kev&page=3", "tab=packages&ecosystem=npm&q=x", "state=failed&kind=scan",
		"status=failed", "range=7", "id=CVE-2024-1", "severity=critical&fixable=1&q=%3Cscript%3E",
		"verdict=deny&policy=p&range=24h&namespace=shop", "id=d1&workload=Pod%2Fx&cluster=prod"} {
		f.Add(uint8(0), s)
	}
	w, st := openWorld(f)
	c := newTestConsole(f, st, w.now, func(cfg *Config, _ *Deps) { cfg.DashboardCacheTTL = -1 })
	u, err := st.GetUser(f.Context(), adminUser)
	if err != nil {
		f.Fatal(err)
	}
	payload, _ := json.Marshal(session{ID: randomID(), Kind: "u", Subject: adminUser, Issued: w.now.Unix(),
		Expires: w.now.Add(time.Hour).Unix(), Stamp: u.UpdatedAt.UnixMicro()})
	cookie := &http.Cookie{Name: sessionCookie, Value: c.sign("session", payload)}
	paths := []string{"/", "/images", "/images/" + w.digests["demo"], "/vulns/NSWG-ECO-495", "/vulns", "/scans", "/jobs", "/registries", "/account",
		"/alerts", "/admission", "/admission/alert", "/clusters", "/policies", "/settings/audit"}
	f.Fuzz(func(t *testing.T, which uint8, raw string) {
		p := paths[int(which)%len(paths)]
		req := httptest.NewRequest("GET", "https://console.test"+p, nil)
		req.URL.RawQuery = raw
		req.AddCookie(cookie)
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 303, 400, 404:
		default:
			t.Fatalf("GET %s?%s: status %d", p, raw, rec.Code)
		}
	})
}
