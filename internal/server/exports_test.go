package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/export"
	"github.com/bulwark-security/bulwark/internal/posture"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// TestExportsAPI: exports are created, read, updated, tested and deleted
// through the API by admins only; secrets are write-only (never in a
// response or the audit log) and survive an update that leaves them out;
// exports from the configuration file are read-only; queued alerts reach
// the receiver through the server's own delivery workers.
func TestExportsAPI(t *testing.T) {
	// A webhook receiver stand-in that verifies the signature (see
	// internal/export's tests for the protocol-exact receivers).
	const hmacKey = "export-api-hmac-key-0123456789"
	var mu sync.Mutex
	var got []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := export.VerifySignature([]byte(hmacKey), r.Header.Get(export.HeaderTimestamp), r.Header.Get(export.HeaderSignature),
			body, time.Now(), time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mu.Lock()
		got = append(got, r.Header.Get(export.HeaderIdemKey))
		mu.Unlock()
	}))
	defer recv.Close()

	fromFile := export.Config{Name: "from-file", Type: export.TypeSyslog, Address: "127.0.0.1:9", Network: "udp"}
	e := startEnv(t, backends[0].DSN(t), Config{InsecureHTTP: true, Workers: 1, SweepInterval: -1, DBWatchInterval: -1,
		Exports: []export.Config{fromFile}})
	ctx := context.Background()

	// Only admins.
	if st, _ := e.do("GET", "/api/v1/exports", e.token(store.RoleAnalyst), nil); st != http.StatusForbidden {
		t.Fatalf("analyst listed exports: %d", st)
	}
	body := map[string]any{"name": "siem", "type": "webhook", "url": recv.URL, "filter": map[string]any{"min_severity": "high"},
		"secrets": map[string]any{"hmac_key": hmacKey}}
	st, b := e.do("POST", "/api/v1/exports", e.admin, body)
	if st != http.StatusCreated {
		t.Fatalf("create: %d %s", st, b)
	}
	if strings.Contains(string(b), hmacKey) {
		t.Fatalf("secret in the response: %s", b)
	}
	var v exportView
	if err := json.Unmarshal(b, &v); err != nil || len(v.SecretsSet) != 1 || v.SecretsSet[0] != "hmac_key" || v.Origin != "api" {
		t.Fatalf("created export: %s (%v)", b, err)
	}
	// Malformed configurations get clear 400s.
	for _, bad := range []map[string]any{
		{"name": "x", "type": "webhook"},
		{"name": "x", "type": "pigeon"},
		{"name": "x", "type": "webhook", "url": "https://a", "colour": "red"},
	} {
		if st, b := e.do("POST", "/api/v1/exports", e.admin, bad); st != http.StatusBadRequest || errorCode(b) != "invalid" {
			t.Errorf("create %v: %d %s", bad, st, b)
		}
	}
	// Update without secrets keeps them.
	body["filter"] = map[string]any{"min_severity": "medium"}
	delete(body, "secrets")
	if st, b := e.do("PUT", fmt.Sprintf("/api/v1/exports/%d", v.ID), e.admin, body); st != http.StatusOK || !strings.Contains(string(b), `"hmac_key"`) {
		t.Fatalf("update: %d %s", st, b)
	}
	// The configuration file's export is listed and read-only.
	var list struct {
		Items []exportView `json:"items"`
	}
	e.get("/api/v1/exports", &list)
	var fileID int64
	for _, x := range list.Items {
		if x.Origin == "config" {
			fileID = x.ID
		}
	}
	if len(list.Items) != 2 || fileID == 0 {
		t.Fatalf("list: %+v", list.Items)
	}
	if st, b := e.do("DELETE", fmt.Sprintf("/api/v1/exports/%d", fileID), e.admin, nil); st != http.StatusConflict {
		t.Fatalf("delete config export: %d %s", st, b)
	}
	// Test delivery.
	st, b = e.do("POST", fmt.Sprintf("/api/v1/exports/%d/test", v.ID), e.admin, nil)
	if st != http.StatusOK || !strings.Contains(string(b), `"ok":true`) {
		t.Fatalf("test: %d %s", st, b)
	}
	// Alerts queued in the store are delivered by the server's workers;
	// the filter keeps the low one out.
	var items []store.ExportItem
	for i, sev := range []alerts.Severity{alerts.SeverityHigh, alerts.SeverityLow, alerts.SeverityCritical} {
		it, err := store.AlertExportItem(&alerts.Alert{ID: fmt.Sprintf("api-alert-%d", i), Time: time.Now(), Source: alerts.SourceAudit,
			Rule: "Attach to cluster-admin role", Severity: sev, Title: "cluster-admin bound"})
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, it)
	}
	if _, err := e.st.EnqueueExports(ctx, items); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "two deliveries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 3 // the test alert and two queued ones
	})
	mu.Lock()
	if got[1] != "api-alert-0" || got[2] != "api-alert-2" {
		t.Errorf("delivered %v", got)
	}
	mu.Unlock()
	var one exportView
	waitFor(t, 5*time.Second, "status to show the deliveries", func() bool {
		e.get(fmt.Sprintf("/api/v1/exports/%d", v.ID), &one)
		return one.Status.Delivered == 2 && one.Status.Pending == 0
	})
	// The export series on /metrics, read from the store.
	if st, m := e.do("GET", "/metrics", e.admin, nil); st != http.StatusOK ||
		!strings.Contains(string(m), `bulwark_export_delivered_total{export="siem",type="webhook"} 2`) ||
		!strings.Contains(string(m), `bulwark_export_lag_records{export="siem",type="webhook"} 0`) ||
		!strings.Contains(string(m), `bulwark_export_oldest_undelivered_seconds{export="siem",type="webhook"} 0`) ||
		!strings.Contains(string(m), `bulwark_export_dead_letters{export="siem",type="webhook"} 0`) ||
		!strings.Contains(string(m), `bulwark_export_failures_total{export="siem",type="webhook"} 0`) {
		t.Errorf("export metrics: %d\n%s", st, grepLines(string(m), "bulwark_export_"))
	}
	// Dead letters list and retry answer (none here).
	if st, b := e.do("GET", fmt.Sprintf("/api/v1/exports/%d/dead", v.ID), e.admin, nil); st != http.StatusOK || !strings.Contains(string(b), `"total":0`) {
		t.Errorf("dead letters: %d %s", st, b)
	}
	if st, b := e.do("POST", fmt.Sprintf("/api/v1/exports/%d/dead/retry", v.ID), e.admin, map[string]any{}); st != http.StatusOK {
		t.Errorf("retry dead: %d %s", st, b)
	}
	// The audit log names the changes and never holds the secret.
	entries, _, err := e.st.ListAudit(ctx, store.AuditFilter{}, store.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]bool{}
	for _, a := range entries {
		actions[a.Action] = true
		if strings.Contains(string(a.Details), hmacKey) {
			t.Errorf("secret in the audit log: %s", a.Details)
		}
	}
	for _, want := range []string{"export.create", "export.update", "export.test", "export.delete", "export.retry_dead"} {
		if !actions[want] {
			t.Errorf("no %s audit entry (have %v)", want, actions)
		}
	}
	if st, _ := e.do("DELETE", fmt.Sprintf("/api/v1/exports/%d", v.ID), e.admin, nil); st != http.StatusNoContent {
		t.Errorf("delete: %d", st)
	}
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestPostureExport: an export whose filter names kind posture receives,
// for each posture report uploaded, the checks that newly fail and a
// summary of the report — the first report all its failures, the next one
// only the new one — while an alerts-only export receives none; on SQLite
// and PostgreSQL, through the server's delivery workers to a real HTTP
// receiver.
func TestPostureExport(t *testing.T) {
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			type got struct{ key, kind, title string }
			var mu sync.Mutex
			recv := map[string][]got{}
			receiver := func(name string) *httptest.Server {
				return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					body, _ := io.ReadAll(r.Body)
					var rec struct{ Kind, Title string }
					_ = json.Unmarshal(body, &rec)
					mu.Lock()
					recv[name] = append(recv[name], got{r.Header.Get(export.HeaderIdemKey), rec.Kind, rec.Title})
					mu.Unlock()
				}))
			}
			postureRecv, alertRecv := receiver("posture"), receiver("alerts")
			defer postureRecv.Close()
			defer alertRecv.Close()
			e := startEnv(t, be.DSN(t), Config{InsecureHTTP: true, Workers: 1, SweepInterval: -1, DBWatchInterval: -1})
			for _, x := range []map[string]any{
				{"name": "posture-siem", "type": "webhook", "url": postureRecv.URL, "filter": map[string]any{"kinds": []string{"posture"}},
					"secrets": map[string]any{"hmac_key": "posture-export-hmac-key-0123456789"}},
				{"name": "alerts-siem", "type": "webhook", "url": alertRecv.URL,
					"secrets": map[string]any{"hmac_key": "alerts-export-hmac-key-0123456789"}},
			} {
				if st, b := e.do("POST", "/api/v1/exports", e.admin, x); st != http.StatusCreated {
					t.Fatalf("create export: %d %s", st, b)
				}
			}
			report := func(fail ...[2]int) json.RawMessage {
				r := posture.Report{Catalogue: "test-1",
					Controls: []posture.Control{{ID: "C-0001", Title: "Privileged container", Severity: vulndb.SeverityHigh},
						{ID: "C-0002", Title: "No memory limit", Severity: vulndb.SeverityLow}},
					Objects:    []posture.ObjectRef{{Kind: "Deployment", Namespace: "shop", Name: "web"}, {Kind: "Pod", Namespace: "ops", Name: "debug"}},
					Frameworks: []posture.Score{{Name: posture.FrameworkAll, Score: 50}}}
				for c := range 2 {
					for o := range 2 {
						st := posture.StatusPass
						for _, f := range fail {
							if f == [2]int{c, o} {
								st = posture.StatusFail
							}
						}
						r.Results = append(r.Results, posture.Result{Control: r.Controls[c].ID, Object: o, Status: st, Severity: r.Controls[c].Severity})
					}
				}
				b, err := json.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			upload := func(rep json.RawMessage) int64 {
				st, b := e.do("POST", "/api/v1/posture/reports", e.token(store.RoleCI), map[string]any{"target": "cluster", "name": "prod", "report": rep})
				var v struct{ ID int64 }
				if st != http.StatusCreated || json.Unmarshal(b, &v) != nil {
					t.Fatalf("upload: %d %s", st, b)
				}
				return v.ID
			}
			id1 := upload(report([2]int{0, 0}, [2]int{1, 1}))
			id2 := upload(report([2]int{0, 0}, [2]int{0, 1}))
			want := []string{fmt.Sprintf("posture:%d:C-0001:Deployment/shop/web", id1), fmt.Sprintf("posture:%d:C-0002:Pod/ops/debug", id1),
				fmt.Sprintf("posture:%d", id1), fmt.Sprintf("posture:%d:C-0001:Pod/ops/debug", id2), fmt.Sprintf("posture:%d", id2)}
			waitFor(t, 20*time.Second, "five posture records", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(recv["posture"]) >= len(want)
			})
			time.Sleep(200 * time.Millisecond) // nothing more arrives
			mu.Lock()
			defer mu.Unlock()
			var keys []string
			for _, g := range recv["posture"] {
				keys = append(keys, g.key)
				if g.kind != "posture" {
					t.Errorf("record %s: kind %q", g.key, g.kind)
				}
			}
			if strings.Join(keys, " ") != strings.Join(want, " ") {
				t.Errorf("posture export got\n%v\nwant\n%v", keys, want)
			}
			if last := recv["posture"][len(recv["posture"])-1]; !strings.Contains(last.title, "1 new failures, 1 resolved") {
				t.Errorf("second summary: %q", last.title)
			}
			if len(recv["alerts"]) != 0 {
				t.Errorf("the alerts-only export got %v", recv["alerts"])
			}
		})
	}
}
