package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/cli"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/server"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/testlog"
)

// runCLI runs `bulwark ARGS` in-process with BULWARK_TOKEN set.
func runCLI(t *testing.T, token string, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), cli.Env{Version: "test", Args: args, Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string {
			if k == "BULWARK_TOKEN" {
				return token
			}
			return ""
		}})
	return code, stderr.String()
}

type page[T any] struct {
	Items []T `json:"items"`
	Total int `json:"total"`
}

type image struct {
	Digest string `json:"digest"`
	Counts struct {
		Total, Critical, KEV int
	} `json:"counts"`
	Refs []struct{ Registry, Repository, Tag string } `json:"refs"`
}

type finding struct {
	ID       int64  `json:"id"`
	VulnID   string `json:"vulnId"`
	Package  string `json:"package"`
	Severity string `json:"severity"`
}

// TestAPI uploads a real scan through the CLI's upload path (bulwark scan
// image --server) to a server over real TLS, on SQLite and PostgreSQL,
// and reads it back through every read endpoint; then exercises the
// admin endpoints and input validation.
func TestAPI(t *testing.T) {
	dbDir := server.ImportDB(t, server.AdvisoryFiles(t))
	demo := server.DemoImagePath(t)
	for _, b := range server.Backends {
		t.Run(b.Name, func(t *testing.T) {
			e := server.StartEnv(t, b.DSN(t), server.Config{Workers: -1, DBDir: dbDir, MaxUploadBytes: 4 << 20})
			ci := e.Token(store.RoleCI)
			report := filepath.Join(t.TempDir(), "report.json")
			scanArgs := []string{"scan", "image", "--no-progress", "--db-dir", dbDir, "--format", "json", "-o", report,
				"--server", e.URL(), "docker-archive:" + demo}

			// The certificate is verified: without the CA the upload fails.
			if code, stderr := runCLI(t, ci, scanArgs...); code != 2 || !strings.Contains(stderr, "certificate") {
				t.Fatalf("upload without --server-ca: exit %d, %s", code, stderr)
			}
			if code, stderr := runCLI(t, "bwk_wrongwrongwrongwrongwrongwrongwrongwrongwr", append(scanArgs, "--server-ca", e.CAPath())...); code != 2 ||
				!strings.Contains(stderr, "401") {
				t.Fatalf("upload with a wrong token: exit %d, %s", code, stderr)
			}
			code, stderr := runCLI(t, ci, append(scanArgs, "--server-ca", e.CAPath())...)
			if code != 0 || !strings.Contains(stderr, "uploaded to") {
				t.Fatalf("upload: exit %d, %s", code, stderr)
			}
			raw, err := os.ReadFile(report)
			if err != nil {
				t.Fatal(err)
			}
			var res scan.Result
			if err := json.Unmarshal(raw, &res); err != nil {
				t.Fatal(err)
			}

			var ims page[image]
			e.Get("/api/v1/images", &ims)
			if ims.Total != 1 || ims.Items[0].Digest != res.Target.ImageID {
				t.Fatalf("images = %+v, want the demo image filed under %s", ims, res.Target.ImageID)
			}
			d := ims.Items[0].Digest
			var im image
			e.Get("/api/v1/images/"+d, &im)
			var fs page[finding]
			e.Get("/api/v1/images/"+d+"/findings?limit=1000", &fs)
			if im.Counts.Total < 100 || im.Counts.Total != fs.Total || len(fs.Items) != fs.Total {
				t.Fatalf("image counts %+v vs %d findings listed", im.Counts, fs.Total)
			}
			uniq := map[string]bool{}
			for _, f := range res.Findings {
				uniq[f.Vulnerability.ID+"|"+f.Package.Name+"|"+f.Package.Version+"|"+f.Package.Location] = true
			}
			if len(uniq) != fs.Total {
				t.Errorf("stored %d findings, the report has %d distinct", fs.Total, len(uniq))
			}

			// Filters, sorting, paging.
			for q, want := range map[string]int{
				"severity=critical": 1, "q=nothing-like-this": 0, "package=electron": 1, "package=no-such-package": 0,
				"kev=true": 1, "sort=-risk": 1, "fixable=true&sort=critical": 1,
			} {
				var got page[image]
				e.Get("/api/v1/images?"+q, &got)
				if got.Total != want {
					t.Errorf("images?%s: total %d, want %d", q, got.Total, want)
				}
			}
			for _, bad := range []string{"sort=bogus", "severity=extreme", "limit=0", "limit=5000", "offset=-1", "kev=maybe", "seen_since=yesterday"} {
				if st, body := e.Do("GET", "/api/v1/images?"+bad, e.Admin(), nil); st != 400 {
					t.Errorf("images?%s: %d %s, want 400", bad, st, body)
				}
			}
			var crit page[finding]
			e.Get("/api/v1/findings?severity=critical&limit=1000", &crit)
			if crit.Total != im.Counts.Critical || crit.Total == 0 {
				t.Errorf("critical findings %d, image says %d", crit.Total, im.Counts.Critical)
			}
			for _, f := range crit.Items {
				if f.Severity != "CRITICAL" {
					t.Errorf("severity filter let through %+v", f)
				}
			}
			var p1, p2 page[finding]
			e.Get("/api/v1/findings?limit=10&sort=vuln", &p1)
			e.Get("/api/v1/findings?limit=10&offset=10&sort=vuln", &p2)
			if len(p1.Items) != 10 || len(p2.Items) != 10 || p1.Items[9].VulnID > p2.Items[0].VulnID {
				t.Errorf("pages not in order: %v / %v", p1.Items, p2.Items)
			}

			// SBOM in three formats.
			var sb struct {
				Packages []json.RawMessage `json:"packages"`
			}
			e.Get("/api/v1/images/"+d+"/sbom", &sb)
			if len(sb.Packages) != len(res.Packages) {
				t.Errorf("sbom has %d packages, the scan %d", len(sb.Packages), len(res.Packages))
			}
			var cdx struct {
				BOMFormat  string            `json:"bomFormat"`
				Components []json.RawMessage `json:"components"`
			}
			e.Get("/api/v1/images/"+d+"/sbom?format=cyclonedx", &cdx)
			if cdx.BOMFormat != "CycloneDX" || len(cdx.Components) == 0 {
				t.Errorf("cyclonedx sbom: %s, %d components", cdx.BOMFormat, len(cdx.Components))
			}

			// Which images a vulnerability affects, by an alias.
			var v struct {
				ID         string `json:"id"`
				ImageCount int    `json:"imageCount"`
				KEV        bool   `json:"kev"`
				Images     []struct {
					Digest   string    `json:"digest"`
					Findings []finding `json:"findings"`
				} `json:"images"`
			}
			e.Get("/api/v1/vulnerabilities/CVE-2019-5786", &v)
			if v.ImageCount != 1 || v.Images[0].Digest != d || v.Images[0].Findings[0].Package != "electron" || !v.KEV {
				t.Errorf("vulnerability CVE-2019-5786: %+v", v)
			}
			if st, _ := e.Do("GET", "/api/v1/vulnerabilities/CVE-1999-0001", e.Admin(), nil); st != 404 {
				t.Errorf("unknown vulnerability: %d", st)
			}

			// Scan history and events.
			var scans page[struct {
				ID          int64  `json:"id"`
				TriggeredBy string `json:"triggeredBy"`
				Status      string `json:"status"`
			}]
			e.Get("/api/v1/scans", &scans)
			if scans.Total != 1 || !strings.HasPrefix(scans.Items[0].TriggeredBy, "ci:test-ci") || scans.Items[0].Status != "succeeded" {
				t.Errorf("scans: %+v", scans)
			}
			var one struct{ ID int64 }
			e.Get(fmt.Sprintf("/api/v1/scans/%d", scans.Items[0].ID), &one)
			var evs page[struct{ Kind, Source string }]
			e.Get("/api/v1/events?kind=new&limit=1", &evs)
			if evs.Total != fs.Total || evs.Items[0].Source != "scan" {
				t.Errorf("events: %d new (want %d): %+v", evs.Total, fs.Total, evs.Items)
			}

			// Uploads are validated and bounded.
			ciPost := func(body []byte, ct string) (int, string) {
				st, b := e.Do("POST", "/api/v1/scans", ci, body, "Content-Type", ct)
				return st, string(b)
			}
			if st, b := ciPost([]byte(`{"schemaVersion":1,"target":{"kind":"fs","name":"/"}}`), "application/json"); st != 400 {
				t.Errorf("fs upload: %d %s", st, b)
			}
			if st, b := ciPost([]byte(`{"schemaVersion":1,"target":{"kind":"image","digest":"sha256:xyz"}}`), "application/json"); st != 400 {
				t.Errorf("bad digest: %d %s", st, b)
			}
			if st, b := ciPost([]byte(`{"schemaVersion":1,`), "application/json"); st != 400 || !strings.Contains(b, "malformed") {
				t.Errorf("malformed: %d %s", st, b)
			}
			if st, b := ciPost(raw, "text/plain"); st != 415 {
				t.Errorf("text/plain: %d %s", st, b)
			}
			huge := append([]byte(`{"schemaVersion":1,"packages":[`), bytes.Repeat([]byte(`{"name":"x"},`), 5<<20/13)...)
			if st, b := ciPost(huge, "application/json"); st != 413 {
				t.Errorf("5 MiB upload over a 4 MiB limit: %d %s", st, b)
			}
			if _, n, _ := e.Store().ListScans(context.Background(), store.ScanFilter{}, store.Page{}); n != 1 {
				t.Errorf("rejected uploads stored scans: %d", n)
			}

			adminFlows(t, e)
		})
	}
}

// adminFlows exercises registries, tokens, users and the audit log.
func adminFlows(t *testing.T, e *server.Env) {
	const pw, hook = "registry-password-do-not-leak", "webhook-secret-do-not-leak-0001"
	st, b := e.Do("POST", "/api/v1/registries", e.Admin(), map[string]any{"name": "hub", "url": "https://registry.example.com",
		"kind": "distribution", "repositories": []string{"team/*"}, "username": "bot", "password": pw, "webhookSecret": hook})
	if st != 201 {
		t.Fatalf("create registry: %d %s", st, b)
	}
	var reg struct {
		ID             int64  `json:"id"`
		HasCredentials bool   `json:"hasCredentials"`
		WebhookPath    string `json:"webhookPath"`
	}
	_ = json.Unmarshal(b, &reg)
	if !reg.HasCredentials || reg.WebhookPath != "/api/v1/hooks/distribution" {
		t.Errorf("registry: %s", b)
	}
	for _, bad := range []map[string]any{
		{"name": "hub", "url": "https://other.example.com", "kind": "generic"},              // name taken
		{"name": "x", "url": "ftp://x", "kind": "generic"},                                  // scheme
		{"name": "x", "url": "http://plain.example.com", "kind": "generic"},                 // http without insecure
		{"name": "x", "url": "https://x.example.com", "kind": "quay"},                       // kind
		{"name": "x", "url": "https://x.example.com", "kind": "generic", "pasword": "typo"}, // unknown field
		{"name": "x", "url": "https://x.example.com", "kind": "generic", "webhookSecret": "short"},
	} {
		st, b := e.Do("POST", "/api/v1/registries", e.Admin(), bad)
		want := 400
		if bad["name"] == "hub" {
			want = 409
		}
		if st != want {
			t.Errorf("create %v: %d %s, want %d", bad, st, b, want)
		}
	}
	// Update without credential fields keeps them.
	path := fmt.Sprintf("/api/v1/registries/%d", reg.ID)
	if st, b := e.Do("PUT", path, e.Admin(), map[string]any{"name": "hub", "url": "https://registry.example.com:5000", "kind": "distribution"}); st != 200 {
		t.Fatalf("update: %d %s", st, b)
	}
	full, err := e.Store().GetRegistry(context.Background(), reg.ID)
	if err != nil || full.Credentials == nil || full.Credentials.Password != pw || full.Credentials.WebhookSecret != hook ||
		full.URL != "https://registry.example.com:5000" {
		t.Errorf("after update: %+v %+v, %v", full, full.Credentials, err)
	}
	for _, p := range []string{"/api/v1/registries", path, "/api/v1/audit"} {
		_, b := e.Do("GET", p, e.Admin(), nil)
		if bytes.Contains(b, []byte(pw)) || bytes.Contains(b, []byte(hook)) {
			t.Errorf("GET %s leaks a secret: %s", p, b)
		}
	}

	// Tokens: created once with the secret, usable, revocable.
	st, b = e.Do("POST", "/api/v1/tokens", e.Admin(), map[string]any{"name": "dashboard", "role": "analyst", "expiresIn": "24h"})
	if st != 201 {
		t.Fatalf("create token: %d %s", st, b)
	}
	var tok struct {
		ID    int64  `json:"id"`
		Token string `json:"token"`
		Role  string `json:"role"`
	}
	_ = json.Unmarshal(b, &tok)
	if !strings.HasPrefix(tok.Token, "bwk_") || tok.Role != "analyst" {
		t.Fatalf("token: %s", b)
	}
	if st, b := e.Do("GET", "/api/v1/me", tok.Token, nil); st != 200 || !strings.Contains(string(b), `"role":"analyst"`) {
		t.Errorf("me: %d %s", st, b)
	}
	if _, b := e.Do("GET", "/api/v1/tokens", e.Admin(), nil); bytes.Contains(b, []byte(tok.Token)) {
		t.Errorf("token list shows a secret")
	}
	if st, b := e.Do("POST", "/api/v1/tokens", e.Admin(), map[string]any{"name": "x", "role": "root"}); st != 400 {
		t.Errorf("bad role: %d %s", st, b)
	}
	if st, _ := e.Do("DELETE", fmt.Sprintf("/api/v1/tokens/%d", tok.ID), e.Admin(), nil); st != 204 {
		t.Errorf("revoke: %d", st)
	}
	if st, _ := e.Do("GET", "/api/v1/me", tok.Token, nil); st != 401 {
		t.Errorf("revoked token still works: %d", st)
	}

	// Users.
	if st, b := e.Do("POST", "/api/v1/users", e.Admin(), map[string]any{"username": "ana", "password": "correct horse battery", "role": "analyst"}); st != 201 {
		t.Errorf("create user: %d %s", st, b)
	}
	if st, b := e.Do("POST", "/api/v1/users", e.Admin(), map[string]any{"username": "bob", "password": "short", "role": "analyst"}); st != 400 {
		t.Errorf("short password: %d %s", st, b)
	}
	if st, b := e.Do("PATCH", "/api/v1/users/ana", e.Admin(), map[string]any{"disabled": true}); st != 200 || !strings.Contains(string(b), `"disabled":true`) {
		t.Errorf("disable user: %d %s", st, b)
	}
	if _, err := e.Store().Authenticate(context.Background(), "ana", "correct horse battery"); err == nil {
		t.Errorf("a disabled user can log in")
	}

	if st, _ := e.Do("DELETE", path, e.Admin(), nil); st != 204 {
		t.Errorf("delete registry: %d", st)
	}
	if st, _ := e.Do("GET", path, e.Admin(), nil); st != 404 {
		t.Errorf("deleted registry: %d", st)
	}

	// The audit log has every mutating call, with who did it.
	var au page[struct{ Actor, Action, Target string }]
	e.Get("/api/v1/audit?limit=1000", &au)
	counts := map[string]int{}
	for _, a := range au.Items {
		counts[a.Action]++
		if !strings.HasPrefix(a.Actor, "token:") {
			t.Errorf("audit actor %q", a.Actor)
		}
	}
	want := map[string]int{"scan.upload": 6, "registry.create": 7, "registry.update": 1, "registry.delete": 1,
		"token.create": 2, "token.revoke": 1, "user.create": 2, "user.update": 1}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("audit %s: %d entries, want %d (all: %v)", k, counts[k], n, counts)
		}
	}
}

// TestServerDemoCommand runs `bulwark server --demo` as a user would on a
// fresh machine: it imports the bundled advisories, stores the demo
// image's scan, creates the admin, prints where to log in, and serves.
func TestServerDemoCommand(t *testing.T) {
	data := t.TempDir()
	out := &testlog.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, cli.Env{Version: "test", Args: []string{"server", "--demo", "--data-dir", data, "--listen", "127.0.0.1:0",
			"--sweep-interval", "0"}, Stdout: out, Stderr: out, Getenv: func(string) string { return "" }})
	}()
	var url, token, password string
	server.WaitFor(t, 60*time.Second, "the demo server to say where it listens", func() bool {
		s := out.String()
		for _, line := range strings.Split(s, "\n") {
			f := strings.Fields(line)
			switch {
			case strings.HasPrefix(line, "Bulwark central is listening on "):
				url = f[len(f)-1]
			case len(f) >= 2 && f[0] == "password":
				password = f[1]
			case len(f) >= 3 && f[0] == "API" && f[1] == "token":
				token = f[2]
			}
		}
		return url != "" && token != ""
	})
	if !strings.HasPrefix(url, "https://127.0.0.1:") || len(password) < 16 || !strings.Contains(out.String(), "log in as   admin") {
		t.Fatalf("demo output:\n%s", out.String())
	}
	pem, err := os.ReadFile(filepath.Join(data, "tls", "self-signed.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	req, _ := http.NewRequest("GET", url+"/api/v1/images", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ims page[image]
	err = json.NewDecoder(resp.Body).Decode(&ims)
	resp.Body.Close()
	if err != nil || ims.Total != 1 || ims.Items[0].Counts.Total < 100 {
		t.Errorf("demo images: %+v, %v", ims, err)
	}
	// The password logs in (through the store the console uses).
	st, err := store.Open(context.Background(), filepath.Join(data, "bulwark.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Authenticate(context.Background(), "admin", password); err != nil {
		t.Errorf("printed password does not log in: %v", err)
	}
	st.Close()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d:\n%s", code, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop")
	}
	if fi, err := os.Stat(filepath.Join(data, "secret.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret key: %v %v", fi, err)
	}
}
