package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/testlog"
)

// defaultRules are Bulwark's real default rules (name, priority, tags),
// from which test alerts are built.
var defaultRules = sync.OnceValues(func() ([]struct {
	Rule, Priority, Source string
	Tags                   []string
}, error) {
	var out []struct {
		Rule, Priority, Source string
		Tags                   []string
	}
	for _, f := range []string{"runtime.yaml", "audit.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "rules", "defaults", f))
		if err != nil {
			return nil, err
		}
		var items []struct {
			Rule     string   `yaml:"rule"`
			Priority string   `yaml:"priority"`
			Source   string   `yaml:"source"`
			Tags     []string `yaml:"tags"`
		}
		if err := yaml.Unmarshal(b, &items); err != nil {
			return nil, err
		}
		for _, it := range items {
			if it.Rule != "" && it.Priority != "" {
				out = append(out, struct {
					Rule, Priority, Source string
					Tags                   []string
				}{it.Rule, it.Priority, it.Source, it.Tags})
			}
		}
	}
	return out, nil
})

// testAlert is alert i: rule i mod len(rules), on workload w of namespace
// ns, with sensor- or audit-shaped evidence.
func testAlert(t testing.TB, id string, i int, ns, workload string, at time.Time) alerts.Alert {
	t.Helper()
	rules, err := defaultRules()
	if err != nil || len(rules) == 0 {
		t.Fatalf("default rules: %v", err)
	}
	r := rules[i%len(rules)]
	sev, err := alerts.SeverityFromPriority(r.Priority)
	if err != nil {
		t.Fatal(err)
	}
	tac, tech := alerts.MITREFromTags(r.Tags)
	src, ev := alerts.SourceSensor, fmt.Sprintf(`{"proc.name":"sh","proc.cmdline":"sh -c id","proc.pid":%d}`, 100+i)
	if r.Source == "k8s_audit" {
		src, ev = alerts.SourceAudit, fmt.Sprintf(`{"kind":"Event","auditID":"a%d","verb":"create","objectRef":{"namespace":%q}}`, i, ns)
	}
	name := strings.TrimPrefix(workload, "Deployment/")
	return alerts.Alert{ID: id, Time: at, Source: src, Rule: r.Rule, RuleVersion: "test", Severity: sev,
		Title: r.Rule + " in " + name, MitreTactic: tac, MitreTechnique: tech, Cluster: "prod", Namespace: ns,
		Pod: name + "-5d8f-x", Container: "app", ContainerID: "0123456789ab", Image: "registry.example.com/" + name + ":1.0",
		Node: "node-1", Workload: workload, Evidence: json.RawMessage(ev)}
}

func TestAlertAPI(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) { testAlertAPI(t, b) })
	}
}

func testAlertAPI(t *testing.T, b backend) {
	e := startEnv(t, b.DSN(t), Config{Workers: -1})
	agent, analyst := e.token(store.RoleAgent), e.token(store.RoleAnalyst)
	now := time.Now().UTC().Truncate(time.Second)
	var batch []alerts.Alert
	for i := range 60 {
		wl := fmt.Sprintf("Deployment/web-%d", i%3)
		batch = append(batch, testAlert(t, fmt.Sprintf("b1-%03d", i), i, "shop", wl, now.Add(-time.Duration(60-i)*time.Second)))
	}
	post := func(token string, body any) (int, ingestResponse, []byte) {
		t.Helper()
		st, raw := e.do("POST", "/api/v1/alerts", token, body)
		var r ingestResponse
		_ = json.Unmarshal(raw, &r)
		return st, r, raw
	}
	if st, r, raw := post(agent, alerts.Batch{Alerts: batch}); st != 200 || r.Accepted != 60 || r.Duplicates != 0 {
		t.Fatalf("ingest = %d %s", st, raw)
	}
	// A replayed batch (the sender timed out) stores nothing twice.
	if st, r, raw := post(agent, alerts.Batch{Alerts: batch}); st != 200 || r.Accepted != 0 || r.Duplicates != 60 {
		t.Fatalf("replay = %d %s", st, raw)
	}
	var list listResponse[alertJSON]
	e.get("/api/v1/alerts?limit=1000", &list)
	var occurrences int64
	for _, a := range list.Items {
		occurrences += a.Count
		if len(a.Evidence) != 0 {
			t.Errorf("list carries evidence: %s", a.Evidence)
		}
	}
	if occurrences != 60 || list.Total == 0 || list.Total > 60 {
		t.Fatalf("stored %d rows with %d occurrences, want 60 occurrences", list.Total, occurrences)
	}

	// Hostile and malformed bodies: clear 4xx, nothing stored.
	good, _ := json.Marshal(alerts.Batch{Alerts: batch[:1]})
	big := make([]alerts.Alert, alerts.MaxBatch+1)
	for i := range big {
		big[i] = testAlert(t, fmt.Sprintf("big-%d", i), i, "shop", "Deployment/web-0", now)
	}
	for _, tc := range []struct {
		name   string
		body   any
		ct     string
		status int
		want   string
	}{
		{"empty", []byte(""), "", 400, "empty body"},
		{"not json", []byte("{alerts"), "", 400, "malformed JSON"},
		{"bad severity", bytes.Replace(good, []byte(`"severity":"`), []byte(`"severity":"x`), 1), "", 400, "severity"},
		{"evidence not an object", bytes.Replace(good, []byte(`"evidence":{`), []byte(`"evidence":"x","e2":{`), 1), "", 400, ""},
		{"evidence string", []byte(strings.Replace(string(good), string(batch[0].Evidence), `"not json"`, 1)), "", 400, "evidence"},
		{"unknown field", bytes.Replace(good, []byte(`"rule":`), []byte(`"rulez":1,"rule":`), 1), "", 400, "unknown field"},
		{"no id", bytes.Replace(good, []byte(`"id":"b1-000"`), []byte(`"id":""`), 1), "", 400, "id is required"},
		{"too many", alerts.Batch{Alerts: big}, "", 413, "limit 1000"},
		{"too big", append(append([]byte(`{"alerts":[{"id":"x","title":"`), bytes.Repeat([]byte("a"), alerts.MaxBodyBytes)...), `"}]}`...), "", 413, ""},
		{"form", good, "application/x-www-form-urlencoded", 415, ""},
	} {
		var hdr []string
		if tc.ct != "" {
			hdr = []string{"Content-Type", tc.ct}
		}
		st, raw := e.do("POST", "/api/v1/alerts", agent, tc.body, hdr...)
		if st != tc.status || !strings.Contains(string(raw), tc.want) {
			t.Errorf("%s: %d %s, want %d containing %q", tc.name, st, tail(string(raw), 300), tc.status, tc.want)
		}
	}
	var after listResponse[alertJSON]
	e.get("/api/v1/alerts?limit=1000", &after)
	if after.Total != list.Total {
		t.Errorf("refused bodies changed the store: %d → %d alerts", list.Total, after.Total)
	}

	// Filters and paging.
	count := func(q string) int {
		var l listResponse[alertJSON]
		e.get("/api/v1/alerts?"+q, &l)
		return l.Total
	}
	want := func(pred func(a *alertJSON) bool) int {
		n := 0
		for i := range list.Items {
			if pred(&list.Items[i]) {
				n++
			}
		}
		return n
	}
	for q, pred := range map[string]func(a *alertJSON) bool{
		"severity=high":             func(a *alertJSON) bool { return a.Severity >= alerts.SeverityHigh },
		"source=audit":              func(a *alertJSON) bool { return a.Source == alerts.SourceAudit },
		"workload=Deployment/web-1": func(a *alertJSON) bool { return a.Workload == "Deployment/web-1" },
		"q=REVERSE":                 func(a *alertJSON) bool { return strings.Contains(strings.ToLower(a.Title), "reverse") },
		"status=resolved":           func(a *alertJSON) bool { return false },
		"since=1h":                  func(a *alertJSON) bool { return true },
		"until=1h":                  func(a *alertJSON) bool { return false },
	} {
		if got, w := count(q), want(pred); got != w {
			t.Errorf("?%s: %d alerts, want %d", q, got, w)
		}
	}
	var page listResponse[alertJSON]
	e.get("/api/v1/alerts?limit=5&offset=5&sort=id", &page)
	if len(page.Items) != 5 || page.Total != list.Total || page.Items[0].ID >= page.Items[4].ID {
		t.Errorf("page = %d items of %d", len(page.Items), page.Total)
	}
	for _, q := range []string{"severity=urgent", "status=open", "source=kernel", "since=yesterday", "sort=nope", "suppressed=maybe", "limit=5000"} {
		if st, raw := e.do("GET", "/api/v1/alerts?"+q, e.admin, nil); st != 400 {
			t.Errorf("?%s: %d %s", q, st, raw)
		}
	}

	// Detail: evidence and related alerts on the same workload.
	target := list.Items[0]
	var d alertDetailJSON
	e.get(fmt.Sprintf("/api/v1/alerts/%d", target.ID), &d)
	if len(d.Evidence) == 0 || !json.Valid(d.Evidence) || d.MitreTactic == "" && d.MitreTechnique == "" {
		t.Errorf("detail = %+v", d.alertJSON)
	}
	if wantRel := want(func(a *alertJSON) bool { return a.Workload == target.Workload && a.ID != target.ID }); len(d.Related) != min(wantRel, 20) || wantRel == 0 {
		t.Errorf("related = %d, want %d", len(d.Related), wantRel)
	}
	for _, r := range d.Related {
		if r.Workload != target.Workload || r.ID == target.ID {
			t.Errorf("unrelated alert %+v", r)
		}
	}
	if st, _ := e.do("GET", "/api/v1/alerts/999999", e.admin, nil); st != 404 {
		t.Errorf("unknown alert: %d", st)
	}

	// Status workflow, recorded with who and when.
	statusPath := fmt.Sprintf("/api/v1/alerts/%d/status", target.ID)
	if st, raw := e.do("POST", statusPath, analyst, statusInput{Status: "acknowledged", Note: "looking"}); st != 200 ||
		!strings.Contains(string(raw), `"status":"acknowledged"`) || !strings.Contains(string(raw), `"status_by":"token:test-analyst`) {
		t.Fatalf("acknowledge = %d %s", st, raw)
	}
	if st, raw := e.do("POST", statusPath, analyst, statusInput{Status: "closed"}); st != 400 || !strings.Contains(string(raw), "false_positive") {
		t.Errorf("bad status = %d %s", st, raw)
	}
	if count("status=acknowledged") != 1 {
		t.Error("acknowledged alert not filtered")
	}

	// Suppression: applied at ingest, counted, hidden, listable; expiry set.
	sup := map[string]any{"rule": batch[0].Rule, "namespace": "sh*", "workload": "Deployment/web-?", "reason": "known scanner job", "expires_in": "1h"}
	st, raw := e.do("POST", "/api/v1/suppressions", analyst, sup)
	var sp suppressionJSON
	if err := json.Unmarshal(raw, &sp); st != 201 || err != nil || sp.ExpiresAt.Before(time.Now().Add(59*time.Minute)) || sp.CreatedBy == "" {
		t.Fatalf("create suppression = %d %s", st, raw)
	}
	var matches listResponse[alertJSON]
	e.get(fmt.Sprintf("/api/v1/suppressions/%d/matches", sp.ID), &matches)
	if matches.Total == 0 || matches.Items[0].Rule != batch[0].Rule {
		t.Errorf("retroactive matches = %+v", matches)
	}
	b2 := []alerts.Alert{testAlert(t, "b2-0", 0, "shop", "Deployment/web-0", now), testAlert(t, "b2-1", 1, "shop", "Deployment/web-0", now)}
	if st, r, raw := post(agent, alerts.Batch{Alerts: b2}); st != 200 || r.Accepted != 2 || r.Suppressed != 1 {
		t.Fatalf("ingest with suppression = %d %s", st, raw)
	}
	if n := count(fmt.Sprintf("suppression=%d", sp.ID)); n != 1 {
		t.Errorf("alerts of the suppression = %d", n)
	}
	if n := count("suppressed=all"); n != count("")+1 {
		t.Errorf("suppressed=all = %d, visible = %d", n, count(""))
	}
	var sps struct{ Items []suppressionJSON }
	e.get("/api/v1/suppressions", &sps)
	if len(sps.Items) != 1 || sps.Items[0].Hits != 1 {
		t.Errorf("suppressions = %+v", sps)
	}
	for name, bad := range map[string]any{
		"no reason":      map[string]any{"rule": "x"},
		"everything":     map[string]any{"rule": "*", "reason": "r"},
		"past expiry":    map[string]any{"rule": "x", "reason": "r", "expires_at": "2001-01-01T00:00:00Z"},
		"bad expires_in": map[string]any{"rule": "x", "reason": "r", "expires_in": "soon"},
		"unknown field":  map[string]any{"rule": "x", "reason": "r", "scope": "all"},
	} {
		if st, raw := e.do("POST", "/api/v1/suppressions", analyst, bad); st != 400 {
			t.Errorf("suppression %s: %d %s", name, st, raw)
		}
	}

	// Timeline: every occurrence counted once, by severity.
	var tl timelineJSON
	e.get("/api/v1/alerts/timeline?since=2h&bucket=1h", &tl)
	var total, suppressed int64
	for _, bk := range tl.Buckets {
		total += bk.Total
		suppressed += bk.Suppressed
		if bk.Total != bk.Critical+bk.High+bk.Medium+bk.Low+bk.Info {
			t.Errorf("bucket %+v does not add up", bk)
		}
	}
	if total != 61 || suppressed != 1 || tl.BucketSeconds != 3600 {
		t.Errorf("timeline totals %d (+%d suppressed), bucket %ds; want 61 (+1), 3600", total, suppressed, tl.BucketSeconds)
	}
	if st, _ := e.do("GET", "/api/v1/alerts/timeline?since=48h&bucket=1m", e.admin, nil); st != 400 {
		t.Errorf("too many buckets: %d", st)
	}

	// Response actions: requested, pending for the cluster's responder,
	// completed once; all audited.
	ap := fmt.Sprintf("/api/v1/alerts/%d/actions", target.ID)
	st, raw = e.do("POST", ap, analyst, alerts.ActionRequest{Action: alerts.ActionIsolatePod, Reason: "contain"})
	var act alerts.Action
	if err := json.Unmarshal(raw, &act); st != 202 || err != nil || act.State != alerts.ActionPending || act.Cluster != "prod" ||
		act.Pod != target.Pod || !strings.HasPrefix(act.RequestedBy, "token:test-analyst") {
		t.Fatalf("request action = %d %s", st, raw)
	}
	if st, _ := e.do("POST", ap, analyst, alerts.ActionRequest{Action: alerts.ActionIsolatePod}); st != 409 {
		t.Errorf("second pending isolate: %d", st)
	}
	if st, raw := e.do("POST", ap, analyst, map[string]any{"action": "reboot_node"}); st != 400 {
		t.Errorf("bad action: %d %s", st, raw)
	}
	var pending alerts.ActionList
	st, raw = e.do("GET", "/api/v1/actions?cluster=prod&state=pending", agent, nil)
	if err := json.Unmarshal(raw, &pending); st != 200 || err != nil || len(pending.Actions) != 1 || pending.Actions[0].ID != act.ID {
		t.Fatalf("pending actions = %d %s", st, raw)
	}
	rp := fmt.Sprintf("/api/v1/actions/%d/result", act.ID)
	if st, raw := e.do("POST", rp, agent, alerts.ActionResult{State: alerts.ActionDone, Message: "NetworkPolicy bulwark-isolate created"}); st != 200 ||
		!strings.Contains(string(raw), `"state":"done"`) {
		t.Fatalf("result = %d %s", st, raw)
	}
	if st, _ := e.do("POST", rp, agent, alerts.ActionResult{State: alerts.ActionFailed}); st != 409 {
		t.Errorf("second, different result: %d", st)
	}
	if st, _ := e.do("POST", rp, agent, alerts.ActionResult{State: alerts.ActionPending}); st != 400 {
		t.Errorf("pending as a result: %d", st)
	}
	e.get(fmt.Sprintf("/api/v1/alerts/%d", target.ID), &d)
	if len(d.Actions) != 1 || d.Actions[0].State != alerts.ActionDone || d.Actions[0].CompletedAt == nil {
		t.Errorf("actions on the detail = %+v", d.Actions)
	}
	ctx := context.Background()
	for _, action := range []string{"alert.ingest", "alert.status", "suppression.create", "action.request", "action.result"} {
		if es, _, _ := e.st.ListAudit(ctx, store.AuditFilter{Action: action}, store.Page{Limit: 1}); len(es) == 0 {
			t.Errorf("no audit entry %s", action)
		}
	}
	es, _, _ := e.st.ListAudit(ctx, store.AuditFilter{Action: "action.request"}, store.Page{Limit: 10})
	if len(es) == 0 || !strings.Contains(string(es[len(es)-1].Details), "contain") {
		t.Errorf("action request audit = %+v", es)
	}

	// Metrics by source.
	st, raw = e.do("GET", "/metrics", e.admin, nil)
	var sensor, audit int
	for _, a := range append(batch, b2...) {
		if a.Source == alerts.SourceSensor {
			sensor++
		} else {
			audit++
		}
	}
	for _, w := range []string{fmt.Sprintf(`bulwark_alerts_ingested_total{source="sensor"} %d`, sensor),
		fmt.Sprintf(`bulwark_alerts_duplicates_total{source="audit"} %d`, audit-countSource(b2, alerts.SourceAudit)),
		`bulwark_alerts_suppressed_total{source="` + string(b2[0].Source) + `"} 1`,
		`bulwark_response_actions_total{action="isolate_pod",event="done"} 1`} {
		if st != 200 || !strings.Contains(string(raw), w) {
			t.Errorf("metrics lack %s", w)
		}
	}
}

func countSource(as []alerts.Alert, src alerts.Source) int {
	n := 0
	for _, a := range as {
		if a.Source == src {
			n++
		}
	}
	return n
}

// TestKill9DuringAlertIngest: a sender posts batches while the server is
// killed with SIGKILL. Every batch the server answered 200 is stored after
// the restart, and resending everything (as a sender with a spool does)
// stores each alert exactly once.
func TestKill9DuringAlertIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			dsn := b.DSN(t)
			st, err := store.Open(ctx, dsn, store.Options{SecretKey: testKey})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			agent, _, err := st.CreateToken(ctx, "sensor", store.RoleAgent, time.Time{}, "test")
			if err != nil {
				t.Fatal(err)
			}
			data, logs := t.TempDir(), &testlog.Buffer{}
			defer func() {
				if t.Failed() {
					t.Logf("child log:\n%s", tail(logs.String(), 8000))
				}
			}()
			child, url := startChild(t, dsn, data, "", logs)
			e := &env{t: t, client: &http.Client{Timeout: 10 * time.Second}, url: url}
			const perBatch, batches = 500, 400
			now := time.Now().UTC()
			mk := func(n int) alerts.Batch {
				var bt alerts.Batch
				for i := range perBatch {
					a := testAlert(t, fmt.Sprintf("k%04d-%03d", n, i), i, "shop", fmt.Sprintf("Deployment/w-%d", i%7), now)
					a.Fingerprint = a.ID // one row per alert: each is checked
					bt.Alerts = append(bt.Alerts, a)
				}
				return bt
			}
			send := func(n int) (int, error) {
				body, _ := json.Marshal(mk(n))
				req, _ := http.NewRequest("POST", e.url+"/api/v1/alerts", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+agent)
				req.Header.Set("Content-Type", "application/json")
				resp, err := e.client.Do(req)
				if err != nil {
					return 0, err
				}
				resp.Body.Close()
				return resp.StatusCode, nil
			}
			acked := map[int]bool{}
			killed := make(chan struct{})
			go func() {
				defer close(killed)
				// Kill once a few batches are acknowledged, while more are in flight.
				for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					if as, _, _ := st.ListAlerts(ctx, store.AlertFilter{}, store.Page{Limit: 1}); len(as) > 0 {
						break
					}
				}
				time.Sleep(150 * time.Millisecond)
				child.Process.Signal(syscall.SIGKILL)
			}()
			sent := 0
			for n := range batches {
				code, err := send(n)
				sent = n + 1
				if err != nil {
					break
				}
				if code == 200 {
					acked[n] = true
				}
			}
			<-killed
			child.Wait()
			if ws, ok := child.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("child did not die of SIGKILL: %v", child.ProcessState)
			}
			if len(acked) == 0 || sent == batches {
				t.Fatalf("the kill did not land mid-ingest: %d acknowledged, %d sent", len(acked), sent)
			}
			t.Logf("killed after %d acknowledged batches of %d sent", len(acked), sent)
			// Every acknowledged alert survived the kill.
			stored := map[string]bool{}
			for off := 0; ; off += store.MaxLimit {
				as, _, err := st.ListAlerts(ctx, store.AlertFilter{}, store.Page{Limit: store.MaxLimit, Offset: off, Sort: "id"})
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range as {
					stored[a.SourceEventID] = true
				}
				if len(as) < store.MaxLimit {
					break
				}
			}
			for n := range acked {
				for _, a := range mk(n).Alerts {
					if !stored[a.ID] {
						t.Fatalf("acknowledged alert %s lost in the kill", a.ID)
					}
				}
			}
			// Restart and resend everything: each alert is stored once.
			child, url = startChild(t, dsn, data, "", logs)
			defer func() { child.Process.Kill(); child.Wait() }()
			e.url = url
			for n := range sent {
				if code, err := send(n); err != nil || code != 200 {
					t.Fatalf("resend %d: %d %v", n, code, err)
				}
			}
			_, total, err := st.ListAlerts(ctx, store.AlertFilter{}, store.Page{Limit: 1})
			if err != nil || total != sent*perBatch {
				t.Errorf("%d alerts stored after resending %d batches of %d (%v), want %d", total, sent, perBatch, err, sent*perBatch)
			}
		})
	}
}

// A sender whose clock runs behind (it says so in X-Bulwark-Sent-At) has
// its occurrences counted in the timeline at central's time, not hours in
// the past; a sender that says nothing is believed (it may have buffered
// through an outage). The alerts keep the sender's times.
func TestTimelineSenderClockBehind(t *testing.T) {
	e := startEnv(t, backends[0].DSN(t), Config{Workers: -1})
	agent := e.token(store.RoleAgent)
	now := time.Now().UTC()
	behind := now.Add(-3 * time.Hour)
	post := func(prefix string, hdr ...string) {
		t.Helper()
		var batch []alerts.Alert
		for i := range 3 {
			batch = append(batch, testAlert(t, fmt.Sprintf("%s-%d", prefix, i), i, "shop", "Deployment/web", behind.Add(time.Duration(i)*time.Second)))
		}
		if st, raw := e.do("POST", "/api/v1/alerts", agent, alerts.Batch{Alerts: batch}, hdr...); st != 200 {
			t.Fatalf("ingest: %d %s", st, raw)
		}
	}
	count := func(at time.Time) int64 {
		t.Helper()
		tl, err := e.st.AlertTimeline(context.Background(), at.Add(-15*time.Minute), at.Add(15*time.Minute), 30*time.Minute, "")
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, b := range tl {
			n += b.Total()
		}
		return n
	}
	// The sender's clock reads 3 h behind central's: counted now.
	post("skewed", alerts.HeaderSentAt, behind.Add(2*time.Second).Format(time.RFC3339Nano))
	if n, past := count(now), count(behind); n != 3 || past != 0 {
		t.Errorf("clock 3 h behind: %d counted around now, %d three hours ago; want 3 and 0", n, past)
	}
	// No header: the times are believed (a buffered sender).
	post("buffered")
	if past := count(behind); past != 3 {
		t.Errorf("no clock given: %d counted three hours ago, want 3", past)
	}
	var list listResponse[alertJSON]
	e.get("/api/v1/alerts?limit=100", &list)
	for _, a := range list.Items {
		if a.LastSeen.After(now.Add(-2 * time.Hour)) {
			t.Errorf("alert %d last seen %v: the sender's times are kept", a.ID, a.LastSeen)
		}
	}
}
