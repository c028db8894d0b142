package server

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/store"
)

func TestAlertTriageAPI(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) { testAlertTriageAPI(t, b) })
	}
}

func testAlertTriageAPI(t *testing.T, b backend) {
	e := startEnv(t, b.DSN(t), Config{Workers: -1})
	agent, analyst := e.token(store.RoleAgent), e.token(store.RoleAnalyst)
	now := time.Now().UTC().Truncate(time.Second)
	var batch []alerts.Alert
	for i := range 30 {
		ns := []string{"shop", "ci-runner"}[i%2]
		batch = append(batch, testAlert(t, fmt.Sprintf("t-%03d", i), i, ns, fmt.Sprintf("Deployment/web-%d", i%3), now.Add(-time.Duration(30-i)*time.Second)))
	}
	if st, raw := e.do("POST", "/api/v1/alerts", agent, alerts.Batch{Alerts: batch}); st != 200 {
		t.Fatalf("ingest: %d %s", st, raw)
	}
	count := func(q string) int {
		t.Helper()
		var l listResponse[alertJSON]
		e.get("/api/v1/alerts?"+q, &l)
		return l.Total
	}
	ciOpen := count("namespace=ci-runner&status=new")
	if ciOpen == 0 || ciOpen == count("") {
		t.Fatalf("fixture: %d of %d alerts in ci-runner", ciOpen, count(""))
	}

	// Bulk by the list's filter, as an analyst: one audit entry.
	st, raw := e.do("POST", "/api/v1/alerts/status", analyst, map[string]any{
		"filter": map[string]string{"namespace": "ci-runner", "status": "new"}, "status": "resolved", "note": "CI noise"})
	var res store.BulkStatusResult
	if st != 200 || json.Unmarshal(raw, &res) != nil || res.Updated != ciOpen || res.Matched != ciOpen {
		t.Fatalf("bulk by filter: %d %s, want %d updated", st, raw, ciOpen)
	}
	if n := count("namespace=ci-runner&status=resolved"); n != ciOpen {
		t.Errorf("resolved in ci-runner = %d, want %d", n, ciOpen)
	}
	if n := count("namespace=shop&status=resolved"); n != 0 {
		t.Errorf("bulk touched another namespace: %d", n)
	}
	var au listResponse[auditJSON]
	e.get("/api/v1/audit?limit=1000", &au)
	var bulkEntries []auditJSON
	for _, a := range au.Items {
		if a.Action == "alert.bulk_status" {
			bulkEntries = append(bulkEntries, a)
		}
	}
	if len(bulkEntries) != 1 || !strings.Contains(string(bulkEntries[0].Details), fmt.Sprintf(`"updated":%d`, ciOpen)) ||
		!strings.Contains(string(bulkEntries[0].Details), "namespace=ci-runner") || !strings.HasPrefix(bulkEntries[0].Actor, "token:") {
		t.Errorf("audit of the bulk change = %+v", bulkEntries)
	}
	// By ids.
	var shop listResponse[alertJSON]
	e.get("/api/v1/alerts?namespace=shop&limit=3&sort=id", &shop)
	ids := []int64{shop.Items[0].ID, shop.Items[1].ID}
	st, raw = e.do("POST", "/api/v1/alerts/status", analyst, map[string]any{"ids": ids, "status": "acknowledged"})
	if st != 200 || !strings.Contains(string(raw), `"updated":2`) {
		t.Errorf("bulk by ids: %d %s", st, raw)
	}
	// Role-checked, bounded, validated.
	if st, _ := e.do("POST", "/api/v1/alerts/status", agent, map[string]any{"ids": ids, "status": "resolved"}); st != 403 {
		t.Errorf("agent bulk: %d, want 403", st)
	}
	tooMany := make([]int64, store.MaxBulkAlerts+1)
	for i := range tooMany {
		tooMany[i] = int64(i + 1)
	}
	for name, body := range map[string]any{
		"too many ids": map[string]any{"ids": tooMany, "status": "resolved"},
		"both":         map[string]any{"ids": ids, "filter": map[string]string{}, "status": "resolved"},
		"neither":      map[string]any{"status": "resolved"},
		"bad status":   map[string]any{"ids": ids, "status": "closed"},
		"bad filter":   map[string]any{"filter": map[string]string{"severity": "urgent"}, "status": "resolved"},
		"unknown":      map[string]any{"ids": ids, "status": "resolved", "force": true},
	} {
		if st, raw := e.do("POST", "/api/v1/alerts/status", analyst, body); st != 400 {
			t.Errorf("%s: %d %s, want 400", name, st, tail(string(raw), 200))
		}
	}

	// A suppression applied to earlier alerts.
	before := count("")
	shopOpen := count("namespace=shop")
	st, raw = e.do("POST", "/api/v1/suppressions", analyst, map[string]any{"rule": "*", "namespace": "shop", "reason": "maintenance",
		"expires_in": "1h", "apply_to_existing": true})
	var sp suppressionJSON
	if st != 201 || json.Unmarshal(raw, &sp) != nil || sp.Applied != int64(shopOpen) {
		t.Fatalf("create applied suppression: %d %s, want applied %d", st, raw, shopOpen)
	}
	if n := count(""); n != before-shopOpen {
		t.Errorf("visible after applying = %d, want %d", n, before-shopOpen)
	}
	var held listResponse[alertJSON]
	e.get(fmt.Sprintf("/api/v1/alerts?suppression=%d", sp.ID), &held)
	if held.Total != shopOpen || held.Items[0].SuppressedBy == "" || held.Items[0].SuppressedAt.IsZero() {
		t.Errorf("held alerts = %d, first %+v", held.Total, held.Items[0])
	}
	// Deleting it does not bring them back; releasing does.
	if st, raw := e.do("DELETE", fmt.Sprintf("/api/v1/suppressions/%d", sp.ID), analyst, nil); st != 204 {
		t.Fatalf("delete: %d %s", st, raw)
	}
	if n := count(""); n != before-shopOpen {
		t.Errorf("visible after deleting the suppression = %d, want %d (nothing resurrected)", n, before-shopOpen)
	}
	st, raw = e.do("POST", fmt.Sprintf("/api/v1/suppressions/%d/release", sp.ID), analyst, nil)
	if st != 200 || !strings.Contains(string(raw), fmt.Sprintf(`"released":%d`, shopOpen)) {
		t.Errorf("release: %d %s", st, raw)
	}
	if n := count(""); n != before {
		t.Errorf("visible after release = %d, want %d", n, before)
	}
	if st, _ := e.do("POST", fmt.Sprintf("/api/v1/suppressions/%d/release", sp.ID), agent, nil); st != 403 {
		t.Errorf("agent release: %d", st)
	}
	// Apply later (API default: not applied at creation).
	st, raw = e.do("POST", "/api/v1/suppressions", analyst, map[string]any{"rule": "*", "namespace": "shop", "reason": "again"})
	_ = json.Unmarshal(raw, &sp)
	if st != 201 || sp.Applied != 0 || count("") != before {
		t.Fatalf("create without apply: %d %s", st, raw)
	}
	st, raw = e.do("POST", fmt.Sprintf("/api/v1/suppressions/%d/apply", sp.ID), analyst, nil)
	if st != 200 || !strings.Contains(string(raw), fmt.Sprintf(`"applied":%d`, shopOpen)) {
		t.Errorf("apply: %d %s", st, raw)
	}
	e.get("/api/v1/audit?limit=1000", &au)
	seen := map[string]int{}
	for _, a := range au.Items {
		seen[a.Action]++
	}
	for _, a := range []string{"suppression.create", "suppression.delete", "suppression.release", "suppression.apply"} {
		if seen[a] == 0 {
			t.Errorf("no %s audit entry: %v", a, seen)
		}
	}

	// Undo actions: only after the action they undo was done.
	id := shop.Items[2].ID
	if st, raw := e.do("POST", fmt.Sprintf("/api/v1/alerts/%d/actions", id), analyst, alerts.ActionRequest{Action: alerts.ActionUnisolatePod}); st != 400 || !strings.Contains(string(raw), "nothing to undo") {
		t.Errorf("unisolate before isolate: %d %s", st, raw)
	}
	st, raw = e.do("POST", fmt.Sprintf("/api/v1/alerts/%d/actions", id), analyst, alerts.ActionRequest{Action: alerts.ActionIsolatePod})
	var act alerts.Action
	if st != 202 || json.Unmarshal(raw, &act) != nil {
		t.Fatalf("isolate: %d %s", st, raw)
	}
	if st, raw := e.do("POST", fmt.Sprintf("/api/v1/actions/%d/result", act.ID), agent, alerts.ActionResult{State: alerts.ActionDone}); st != 200 {
		t.Fatalf("result: %d %s", st, raw)
	}
	if st, raw := e.do("POST", fmt.Sprintf("/api/v1/alerts/%d/actions", id), analyst, alerts.ActionRequest{Action: alerts.ActionUnisolatePod, Reason: "false positive"}); st != 202 || !strings.Contains(string(raw), `"unisolate_pod"`) {
		t.Errorf("unisolate after isolate: %d %s", st, raw)
	}
}
