package cli

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/vulndb/vulndbtest"
)

// TestDBUpdate: `bulwark db update` against a real HTTPS mirror on
// loopback (its CA given with --ca-cert, sources from --sources and
// --source): the first run imports, the second is all conditional
// requests answered 304, `db status` lists the sources, and a broken
// source exits 2 naming it while the others stay.
func TestDBUpdate(t *testing.T) {
	kev, err := os.ReadFile(filepath.Join(repoRoot(t), "internal", "vulndb", "testdata", "cisa-kev-subset.json"))
	if err != nil {
		t.Fatal(err)
	}
	goZip := vulndbtest.OSVZip(t, filepath.Join(repoRoot(t), "internal", "vulndb", "testdata", "go-vulndb", "GO-2022-0535.json"))
	var broken atomic.Bool
	var notModified atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		switch r.URL.Path {
		case "/osv/Go/all.zip":
			body = goZip
		case "/kev/known_exploited_vulnerabilities.json":
			if broken.Load() {
				http.Error(w, "gone", http.StatusBadGateway)
				return
			}
			body = kev
		default:
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("If-None-Match") == `"v1"` {
			notModified.Add(1)
		}
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), bytes.NewReader(body))
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "mirror-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(dir, "sources.yaml")
	os.WriteFile(list, []byte("sources:\n  - name: osv-go\n    url: "+srv.URL+"/osv/Go/all.zip\n    format: osv\n"), 0o644)
	db := filepath.Join(dir, "db")
	args := []string{"db", "update", "--db-dir", db, "--ca-cert", ca, "--sources", list,
		"--source", "cisa-kev=" + srv.URL + "/kev/known_exploited_vulnerabilities.json"}

	r := run(t, args...)
	if r.code != 0 {
		t.Fatalf("first update: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"SOURCE", "osv-go", "cisa-kev", "updated"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("first update output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = run(t, append(args, "--format", "json")...)
	var res []struct{ Name, Status string }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || len(res) != 2 ||
		res[0].Status != "unchanged" || res[1].Status != "unchanged" {
		t.Fatalf("second update: exit %d %+v\n%s%s", r.code, res, r.stdout, r.stderr)
	}
	if notModified.Load() != 2 {
		t.Errorf("%d conditional requests, want 2", notModified.Load())
	}
	r = run(t, "db", "status", "--db-dir", db)
	if !strings.Contains(r.stdout, "osv-go") || !strings.Contains(r.stdout, "cisa-kev") {
		t.Errorf("db status:\n%s", r.stdout)
	}

	// Without the mirror's CA the download is refused (TLS verified).
	r = run(t, "db", "update", "--db-dir", db, "--sources", list)
	if r.code != 2 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("without --ca-cert: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	broken.Store(true)
	r = run(t, append(args, "cisa-kev")...)
	if r.code != 2 || !strings.Contains(r.stderr, "cisa-kev: download: ") || !strings.Contains(r.stderr, "502 Bad Gateway") ||
		!strings.Contains(r.stdout, "failed") {
		t.Errorf("broken source: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "db", "status", "--db-dir", db)
	if !strings.Contains(r.stdout, "cisa-kev") {
		t.Errorf("the failed source lost its records:\n%s", r.stdout)
	}

	// --list, unknown names, bad flags.
	r = run(t, "db", "update", "--list")
	if r.code != 0 || !strings.Contains(r.stdout, "osv-debian") || !strings.Contains(r.stdout, "https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip") {
		t.Errorf("--list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, bad := range [][]string{
		{"db", "update", "--list", "no-such-source"},
		{"db", "update", "--list", "--source", "x"},
		{"db", "update", "--list", "--source", "x=file:///etc/passwd"},
		{"db", "update", "--list", "--format", "xml"},
	} {
		if r := run(t, bad...); r.code != 2 || r.stderr == "" {
			t.Errorf("%v: exit %d\n%s", bad, r.code, r.stderr)
		}
	}
}
