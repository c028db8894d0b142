package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/vulndb"
	"github.com/bulwark-security/bulwark/internal/vulndb/vulndbtest"
)

// TestServerDBUpdate: with DBUpdateInterval, central downloads its sources
// from a real HTTPS mirror on loopback at start, its database watcher
// loads the new index (GET /api/v1/db), and the
// outcome is on /metrics.
func TestServerDBUpdate(t *testing.T) {
	goZip := vulndbtest.OSVZip(t, filepath.Join("..", "vulndb", "testdata", "go-vulndb", "GO-2022-0535.json"))
	mirror := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/Go/all.zip" {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "all.zip", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), bytes.NewReader(goZip))
	}))
	defer mirror.Close()

	e := startEnv(t, backends[0].DSN(t), Config{Workers: -1, SweepInterval: -1, DBWatchInterval: 100 * time.Millisecond,
		DBDir: t.TempDir(), DBUpdateInterval: time.Hour,
		DBSources: []vulndb.Source{{Name: "osv-go", URL: mirror.URL + "/Go/all.zip"}},
		DBUpdate:  vulndb.UpdateOptions{Client: mirror.Client()}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st struct {
			Loaded bool
			Status struct {
				Vulnerabilities int
				Sources         []struct{ Name string }
			}
		}
		e.get("/api/v1/db", &st)
		if st.Loaded && st.Status.Vulnerabilities == 1 && len(st.Status.Sources) == 1 && st.Status.Sources[0].Name == "osv-go" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the downloaded source is not loaded: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The run's metrics are counted when Update returns, which may be
	// after the watcher loaded the index.
	var body []byte
	for _, want := range []string{`bulwark_vulndb_update_runs_total{outcome="ok"} 1`,
		`bulwark_vulndb_source_checks_total{source="osv-go",status="updated"} 1`,
		`bulwark_vulndb_source_changed_timestamp_seconds{source="osv-go"}`} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			_, body = e.do("GET", "/metrics", e.admin, nil)
			if strings.Contains(string(body), want) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("/metrics lacks %s", want)
				break
			}
		}
	}
}
