package export

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/posture"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// MaxPostureFailureRecords bounds the failure records one posture report
// queues: the first report of a large cluster can fail hundreds of
// thousands of checks, which belong in the report, not one by one in a
// SIEM. The report's summary record says how many were left out.
const MaxPostureFailureRecords = 1000

// PostureScope names the stored report the records are about.
type PostureScope struct {
	ReportID int64
	At       time.Time
	Target   string // cluster, manifests, node
	Name     string // cluster context, host name, or what the uploader chose
}

// PostureDiff counts what PostureItems compared.
type PostureDiff struct {
	// NewFailures failed in this report and not in the previous one of the
	// same scope (all failures when there is none); Exported of them have
	// a record (at most MaxPostureFailureRecords).
	NewFailures, Exported int
	// Resolved failed in the previous report and no longer do (passed,
	// accepted by an exception, skipped, or the object is gone).
	Resolved int
}

// PostureItems makes the export records (kind posture, source posture) of
// a stored posture report, compared with the previous report of the same
// target and name (prev; nil for the first): one record per check that
// newly fails — a control on an object, with the control's severity, the
// object's namespace, the problem and the remediation in the evidence —
// and one summary record of the report (score and its change, new and
// resolved failures, the frameworks' scores), whose severity is the
// highest of the new failures (info when none). Exports take them when
// their filter names kind posture; receivers see each once (the keys name
// the report).
func PostureItems(rep, prev *posture.Report, scope PostureScope) ([]store.ExportItem, PostureDiff, error) {
	var d PostureDiff
	failing := func(r *posture.Report) map[string]bool {
		m := map[string]bool{}
		for i := range r.Results {
			if res := &r.Results[i]; res.Status == posture.StatusFail && res.Object >= 0 && res.Object < len(r.Objects) {
				m[res.Control+"\x00"+r.Objects[res.Object].String()] = true
			}
		}
		return m
	}
	before := map[string]bool{}
	if prev != nil {
		before = failing(prev)
	}
	now := failing(rep)
	for k := range before {
		if !now[k] {
			d.Resolved++
		}
	}
	controls := make(map[string]*posture.Control, len(rep.Controls))
	for i := range rep.Controls {
		controls[rep.Controls[i].ID] = &rep.Controls[i]
	}
	scopeName := scope.Target + "/" + scope.Name
	at := scope.At.UTC()
	var items []store.ExportItem
	worst := alerts.SeverityInfo
	for i := range rep.Results {
		res := &rep.Results[i]
		if res.Status != posture.StatusFail || res.Object < 0 || res.Object >= len(rep.Objects) {
			continue
		}
		obj := rep.Objects[res.Object]
		if before[res.Control+"\x00"+obj.String()] {
			continue
		}
		d.NewFailures++
		sev := postureSeverity(res.Severity)
		worst = max(worst, sev)
		if d.Exported >= MaxPostureFailureRecords {
			continue
		}
		c := controls[res.Control]
		if c == nil {
			c = &posture.Control{ID: res.Control, Title: res.Control}
		}
		ev := map[string]any{"report_id": scope.ReportID, "target": scope.Target, "name": scope.Name,
			"control": c.ID, "object": obj.String(), "kind": obj.Kind, "message": res.Message, "remediation": c.Remediation}
		if len(c.CIS) > 0 {
			ev["cis"] = c.CIS
		}
		if c.NSA != "" {
			ev["nsa"] = c.NSA
		}
		if c.PSS != "" {
			ev["pss"] = c.PSS
		}
		a := alerts.Alert{ID: postureKey(fmt.Sprintf("posture:%d:%s:%s", scope.ReportID, c.ID, obj.String())), Time: at,
			Source: alerts.SourcePosture, Rule: c.ID, Severity: sev,
			Title:     cut(c.Title+" — fails on "+obj.String()+" ("+scopeName+")", 512),
			Cluster:   clusterOf(scope),
			Namespace: obj.Namespace, Workload: obj.Kind + "/" + obj.Name, Node: nodeOf(scope),
			Fingerprint: postureKey("posture:" + scopeName + ":" + c.ID + ":" + obj.String()),
		}
		it, err := postureItem(&a, obj.Namespace, ev)
		if err != nil {
			return nil, d, err
		}
		items = append(items, it)
		d.Exported++
	}
	score, prevScore := postureScore(rep), -1.0
	if prev != nil {
		prevScore = postureScore(prev)
	}
	title := fmt.Sprintf("Posture of %s: score %s", scopeName, strconv.FormatFloat(score, 'f', 1, 64))
	if prev != nil {
		title += fmt.Sprintf(" (was %s)", strconv.FormatFloat(prevScore, 'f', 1, 64))
	}
	title += fmt.Sprintf(", %d new failures, %d resolved", d.NewFailures, d.Resolved)
	ev := map[string]any{"report_id": scope.ReportID, "target": scope.Target, "name": scope.Name, "catalogue": rep.Catalogue,
		"score": score, "failing": len(now), "new_failures": d.NewFailures, "resolved": d.Resolved,
		"not_exported": d.NewFailures - d.Exported, "frameworks": rep.Frameworks}
	if prev != nil {
		ev["previous_score"] = prevScore
	}
	a := alerts.Alert{ID: fmt.Sprintf("posture:%d", scope.ReportID), Time: at, Source: alerts.SourcePosture,
		Rule: "posture-report", Severity: worst, Title: cut(title, 512), Cluster: clusterOf(scope), Node: nodeOf(scope),
		Fingerprint: postureKey("posture:" + scopeName)}
	it, err := postureItem(&a, "", ev)
	if err != nil {
		return nil, d, err
	}
	return append(items, it), d, nil
}

func postureItem(a *alerts.Alert, namespace string, evidence map[string]any) (store.ExportItem, error) {
	ev, err := json.Marshal(evidence)
	if err != nil {
		return store.ExportItem{}, err
	}
	a.Evidence = ev
	b, err := json.Marshal(Record{Kind: store.ExportKindPosture, Alert: *a})
	if err != nil {
		return store.ExportItem{}, fmt.Errorf("posture item %s: %w", a.ID, err)
	}
	return store.ExportItem{Kind: store.ExportKindPosture, Key: a.ID, Source: string(alerts.SourcePosture),
		Severity: a.Severity, Namespace: namespace, Payload: b}, nil
}

// postureKey keeps a key within the log's 256 bytes: a longer one (deep
// object names) keeps its start and ends with a hash of the whole.
func postureKey(k string) string {
	if len(k) <= 256 {
		return k
	}
	h := sha256.Sum256([]byte(k))
	return k[:256-1-32] + "#" + hex.EncodeToString(h[:16])
}

// postureSeverity maps a control's severity (vulndb's scale: unknown 0,
// low 1 … critical 4) to an alert's (info 0, low 1 … critical 4).
func postureSeverity(s vulndb.Severity) alerts.Severity {
	if a := alerts.Severity(s); a.Valid() {
		return a
	}
	return alerts.SeverityInfo
}

func postureScore(r *posture.Report) float64 {
	for _, f := range r.Frameworks {
		if f.Name == posture.FrameworkAll {
			return f.Score
		}
	}
	return 100
}

func clusterOf(s PostureScope) string {
	if s.Target == "cluster" {
		return s.Name
	}
	return ""
}

func nodeOf(s PostureScope) string {
	if s.Target == "node" {
		return s.Name
	}
	return ""
}
