package export

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/posture"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// postureTestReport is a report over two objects and two controls with the
// given statuses (control/object index -> status).
func postureTestReport(score float64, st map[[2]int]posture.Status) *posture.Report {
	r := &posture.Report{Catalogue: "test-1",
		Controls: []posture.Control{{ID: "C-0001", Title: "Privileged container", Severity: vulndb.SeverityHigh, CIS: []string{"5.2.1"},
			Remediation: "set privileged: false"}, {ID: "C-0002", Title: "No memory limit", Severity: vulndb.SeverityLow}},
		Objects:    []posture.ObjectRef{{Kind: "Deployment", Namespace: "shop", Name: "web"}, {Kind: "Pod", Namespace: "ops", Name: "debug"}},
		Frameworks: []posture.Score{{Name: posture.FrameworkAll, Score: score}}}
	for c := range 2 {
		for o := range 2 {
			s, ok := st[[2]int{c, o}]
			if !ok {
				s = posture.StatusPass
			}
			r.Results = append(r.Results, posture.Result{Control: r.Controls[c].ID, Object: o, Status: s, Severity: r.Controls[c].Severity,
				Message: fmt.Sprintf("problem %d/%d", c, o)})
		}
	}
	return r
}

// TestPostureItems: a first report exports each failure and a summary; the
// next one only what newly fails, and counts what was resolved; records
// decode as the delivery side reads them; the count is bounded.
func TestPostureItems(t *testing.T) {
	at := time.Date(2026, 11, 28, 18, 0, 0, 0, time.UTC)
	first := postureTestReport(50, map[[2]int]posture.Status{{0, 0}: posture.StatusFail, {1, 1}: posture.StatusFail})
	items, d, err := PostureItems(first, nil, PostureScope{ReportID: 7, At: at, Target: "cluster", Name: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if d.NewFailures != 2 || d.Exported != 2 || d.Resolved != 0 || len(items) != 3 {
		t.Fatalf("first: %+v, %d items", d, len(items))
	}
	keys := []string{"posture:7:C-0001:Deployment/shop/web", "posture:7:C-0002:Pod/ops/debug", "posture:7"}
	for i, it := range items {
		if it.Key != keys[i] || it.Kind != store.ExportKindPosture || it.Source != "posture" {
			t.Errorf("item %d: %s %s %s, want key %s", i, it.Key, it.Kind, it.Source, keys[i])
		}
		r, err := decodeRecord(it.Payload)
		if err != nil || r.Kind != store.ExportKindPosture || r.ID != it.Key || r.Severity != it.Severity {
			t.Errorf("item %d decodes to %+v, %v", i, r, err)
		}
	}
	if items[0].Severity != alerts.SeverityHigh || items[0].Namespace != "shop" || items[1].Severity != alerts.SeverityLow ||
		items[2].Severity != alerts.SeverityHigh || items[2].Namespace != "" {
		t.Errorf("severities/namespaces: %+v", items)
	}
	r0, _ := decodeRecord(items[0].Payload)
	if r0.Cluster != "prod" || r0.Rule != "C-0001" || !strings.Contains(r0.Title, "Privileged container") ||
		!strings.Contains(string(r0.Evidence), `"remediation":"set privileged: false"`) || !strings.Contains(string(r0.Evidence), `"cis":["5.2.1"]`) {
		t.Errorf("failure record: %+v %s", r0.Alert, r0.Evidence)
	}

	// Next report: C-0001 on web still fails (not again), C-0002 on debug
	// passes now (resolved), C-0001 on debug newly fails.
	next := postureTestReport(25, map[[2]int]posture.Status{{0, 0}: posture.StatusFail, {0, 1}: posture.StatusFail})
	items, d, err = PostureItems(next, first, PostureScope{ReportID: 8, At: at, Target: "cluster", Name: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if d.NewFailures != 1 || d.Resolved != 1 || len(items) != 2 || items[0].Key != "posture:8:C-0001:Pod/ops/debug" {
		t.Fatalf("next: %+v %v", d, items)
	}
	sum, _ := decodeRecord(items[1].Payload)
	if !strings.Contains(sum.Title, "score 25.0 (was 50.0), 1 new failures, 1 resolved") || !strings.Contains(string(sum.Evidence), `"previous_score":50`) {
		t.Errorf("summary: %s %s", sum.Title, sum.Evidence)
	}
	// An excepted failure is not a failure.
	exc := postureTestReport(25, map[[2]int]posture.Status{{0, 0}: posture.StatusExcepted})
	if _, d, _ := PostureItems(exc, nil, PostureScope{ReportID: 9, Target: "node", Name: "n1"}); d.NewFailures != 0 {
		t.Errorf("excepted counted: %+v", d)
	}

	// Bounded: a report failing everywhere exports at most
	// MaxPostureFailureRecords failures, and says how many it left out.
	big := postureTestReport(0, nil)
	big.Results = nil
	for i := range MaxPostureFailureRecords + 5 {
		big.Objects = append(big.Objects, posture.ObjectRef{Kind: "Pod", Namespace: "n", Name: fmt.Sprint("p", i)})
		big.Results = append(big.Results, posture.Result{Control: "C-0001", Object: len(big.Objects) - 1, Status: posture.StatusFail})
	}
	items, d, err = PostureItems(big, nil, PostureScope{ReportID: 10, Target: "cluster", Name: "big"})
	if err != nil || d.NewFailures != MaxPostureFailureRecords+5 || d.Exported != MaxPostureFailureRecords || len(items) != MaxPostureFailureRecords+1 ||
		!strings.Contains(string(items[len(items)-1].Payload), `"not_exported":5`) {
		t.Errorf("big: %+v, %d items, %v", d, len(items), err)
	}
	// Keys stay within the log's bound.
	long := postureTestReport(0, map[[2]int]posture.Status{{0, 0}: posture.StatusFail})
	long.Objects[0].Name = strings.Repeat("x", 300)
	items, _, _ = PostureItems(long, nil, PostureScope{ReportID: 11, Target: "cluster", Name: "prod"})
	if k := items[0].Key; len(k) != 256 || !strings.HasPrefix(k, "posture:11:C-0001:Deployment/shop/xxx") {
		t.Errorf("long key %d bytes: %s", len(k), k)
	}
}
