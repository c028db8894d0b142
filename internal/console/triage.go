package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/store"
)

// Bulk triage on the alert list (select rows, or every alert the filter
// matches, and set one status), releasing the alerts a suppression holds,
// and the admission decisions page.

// alertListParams are the alert list's filters, read from the query
// string — and, for "every matching alert", from the bulk form's hidden
// copy of them, so both select exactly the same alerts.
type alertListParams struct {
	Q, Status, Severity, Source, Cluster, Namespace, Range string
	Suppressed                                             bool
	// Suppression lists the alerts one suppression holds (the
	// suppressions page links here).
	Suppression int64
}

func readAlertListParams(q *query) alertListParams {
	var p alertListParams
	p.Q = q.text("q", 200)
	p.Status = q.enum("status", "new", "acknowledged", "resolved", "false_positive", "open")
	p.Severity = q.enum("severity", "critical", "high", "medium", "low", "info")
	src := make([]string, len(alerts.Sources))
	for i, s := range alerts.Sources {
		src[i] = string(s)
	}
	p.Source = q.enum("source", src...)
	p.Cluster, p.Namespace = q.text("cluster", 255), q.text("namespace", 255)
	p.Range = q.enum("range", "1h", "24h", "7d", "30d")
	p.Suppressed = q.flag("suppressed")
	if v := q.v.Get("suppression"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			q.fail("parameter \"suppression\" must be a suppression id")
		} else {
			p.Suppression = id
		}
	}
	return p
}

// filter is the store filter; "open" (new or acknowledged) is left to the
// caller (the store filter takes one status).
func (p alertListParams) filter(now time.Time) store.AlertFilter {
	f := store.AlertFilter{Source: alerts.Source(p.Source), Cluster: p.Cluster, Namespace: p.Namespace, Q: p.Q}
	if p.Status != "open" {
		f.Status = store.AlertStatus(p.Status)
	}
	if p.Severity != "" {
		f.MinSeverity, _ = alerts.ParseSeverity(p.Severity)
	}
	if p.Range != "" {
		f.Since = now.Add(-alertRanges[p.Range])
	}
	if p.Suppressed {
		f.Suppressed = store.OnlySuppressed
	}
	f.SuppressionID = p.Suppression
	return f
}

// values lists the set filters as name/value pairs (hidden form fields).
func (p alertListParams) values() []option {
	var out []option
	for _, kv := range [][2]string{{"q", p.Q}, {"status", p.Status}, {"severity", p.Severity}, {"source", p.Source},
		{"cluster", p.Cluster}, {"namespace", p.Namespace}, {"range", p.Range}} {
		if kv[1] != "" {
			out = append(out, option{Value: kv[0], Label: kv[1]})
		}
	}
	if p.Suppressed {
		out = append(out, option{Value: "suppressed", Label: "1"})
	}
	if p.Suppression != 0 {
		out = append(out, option{Value: "suppression", Label: strconv.FormatInt(p.Suppression, 10)})
	}
	return out
}

// listURL is the alert list with these filters.
func (c *Console) alertListURL(p alertListParams) string {
	v := url.Values{}
	for _, o := range p.values() {
		v.Set(o.Value, o.Label)
	}
	if len(v) == 0 {
		return c.url("/alerts")
	}
	return c.url("/alerts") + "?" + v.Encode()
}

// alertsBulk sets the status of the selected alerts (scope=selected, the
// id checkboxes) or of every alert the list's filter matches
// (scope=filter), in one store call per status selected by the filter,
// with one audit entry naming the count and the filter.
func (c *Console) alertsBulk(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	fq := &query{v: r.PostForm}
	lp := readAlertListParams(fq)
	back := c.alertListURL(lp)
	fail := func(msg string) {
		c.setFlash(w, "error", msg)
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
	if fq.err != nil {
		fail("The list's filter is invalid: " + fq.err.Error())
		return
	}
	status := store.AlertStatus(r.PostForm.Get("bulk_status"))
	note := strings.TrimSpace(r.PostForm.Get("note"))
	if !status.Valid() || len(note) > 4096 || !cleanText(note) {
		fail("Choose a status; the note is limited to 4096 printable characters.")
		return
	}
	details := map[string]any{"status": status, "note": note}
	var sels []store.AlertSelection
	switch r.PostForm.Get("scope") {
	case "selected":
		raw := r.PostForm["id"]
		if len(raw) == 0 {
			fail("Select the alerts to change first.")
			return
		}
		if len(raw) > store.MaxBulkAlerts {
			fail(fmt.Sprintf("At most %d alerts can be changed at once.", store.MaxBulkAlerts))
			return
		}
		ids := make([]int64, 0, len(raw))
		for _, v := range raw {
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id <= 0 {
				fail("The selection holds an invalid alert id.")
				return
			}
			ids = append(ids, id)
		}
		sels = append(sels, store.AlertSelection{IDs: ids})
		details["ids"], details["id_count"] = ids[:min(len(ids), 100)], len(ids)
	case "filter":
		f := lp.filter(c.now())
		if lp.Status == "open" {
			for _, st := range []store.AlertStatus{store.AlertNew, store.AlertAcknowledged} {
				f2 := f
				f2.Status = st
				sels = append(sels, store.AlertSelection{Filter: &f2})
			}
			f.Status = ""
			details["filter"] = "status=open " + store.DescribeAlertFilter(f)
		} else {
			sels = append(sels, store.AlertSelection{Filter: &f})
			details["filter"] = store.DescribeAlertFilter(f)
		}
	default:
		fail("Choose whether to change the selected alerts or every matching one.")
		return
	}
	var total store.BulkStatusResult
	var err error
	for _, sel := range sels {
		var res *store.BulkStatusResult
		res, err = c.st.SetAlertsStatus(r.Context(), sel, status, p.Actor, note, store.MaxBulkAlerts)
		if err != nil {
			break
		}
		total.Matched += res.Matched
		total.Updated += res.Updated
		total.Skipped += res.Skipped
		total.Missing = append(total.Missing, res.Missing...)
	}
	details["matched"], details["updated"], details["skipped"], details["ok"] = total.Matched, total.Updated, total.Skipped, err == nil
	c.audit(r.Context(), p.Actor, "alert.bulk_status", "alerts", details)
	switch {
	case errors.Is(err, store.ErrInvalid):
		fail("Nothing changed: " + err.Error())
	case err != nil:
		c.storeError(w, r, err)
	default:
		msg := fmt.Sprintf("%d alert(s) set to %s.", total.Updated, statusLabel(status))
		if total.Skipped > 0 {
			msg += fmt.Sprintf(" %d skipped (already %s, or another open alert has the same fingerprint).", total.Skipped, statusLabel(status))
		}
		c.setFlash(w, "ok", msg)
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
}

// alertRelease makes the open alerts held by the alert's suppression
// visible again — what an expiry or deletion never does by itself.
func (c *Console) alertRelease(w http.ResponseWriter, r *http.Request) {
	id, ok := c.pathID(w, r)
	if !ok {
		return
	}
	p := principalFrom(r.Context())
	det, err := c.st.GetAlertDetail(r.Context(), id)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	spID := det.Alert.SuppressionID
	if spID == 0 {
		c.alertBack(w, r, id, "error", "This alert is not suppressed.")
		return
	}
	released, kept, err := c.st.ReleaseSuppression(r.Context(), spID, p.Actor)
	c.audit(r.Context(), p.Actor, "suppression.release", fmt.Sprintf("suppression/%d", spID),
		map[string]any{"alert": id, "released": released, "kept": kept, "ok": err == nil})
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	msg := fmt.Sprintf("%d alert(s) of suppression %d are visible again.", released, spID)
	if kept > 0 {
		msg += fmt.Sprintf(" %d stay suppressed: a visible open alert with the same fingerprint already exists.", kept)
	}
	c.alertBack(w, r, id, "ok", msg)
}

// ---- admission decisions ----

type admissionRow struct {
	ID, Verdict, Cluster, Operation, Kind, Namespace, Name, User string
	At                                                           time.Time
	Allowed                                                      bool
	Violations                                                   int
	Policies                                                     string
	Message                                                      string
	AlertHref                                                    string
}

type admissionData struct {
	*pageData
	Namespace, Verdict, Policy, Range, Cluster string
	Filtered                                   bool
	Rows                                       []admissionRow
	Pager                                      pager
	VerdictOptions, RangeOptions               []option
	// PolicyScanned: with a policy filter, how many decisions were read
	// to find the page (policy names are inside each decision's record).
	PolicyScanned, PolicyCap int
}

// admissionRecord is what the page reads of a decision's record
// (policy.DecisionRecord as the webhook sent it).
type admissionRecord struct {
	// Policies are those that applied to the object (in scope).
	Policies   []string `json:"policies"`
	Violations []struct {
		Policy  string `json:"policy"`
		Rule    string `json:"rule"`
		Message string `json:"message"`
	} `json:"violations"`
}

// admissionScanCap bounds how many decisions a policy filter reads.
const admissionScanCap = 5000

func (c *Console) admissionPage(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	d := &admissionData{pageData: c.pageData(r, "admission", "Admission decisions"), PolicyCap: admissionScanCap}
	d.Namespace, d.Cluster = q.text("namespace", 255), q.text("cluster", 255)
	d.Verdict = q.enum("verdict", "allow", "deny", "warn", "audit")
	d.Policy = q.text("policy", 255)
	d.Range = q.enum("range", "1h", "24h", "7d", "30d")
	page := q.page()
	if q.err != nil {
		c.errorPage(w, r, http.StatusBadRequest, q.err.Error())
		return
	}
	d.Filtered = d.Namespace != "" || d.Cluster != "" || d.Verdict != "" || d.Policy != "" || d.Range != ""
	f := store.AdmissionFilter{Cluster: d.Cluster, Namespace: d.Namespace, Verdict: d.Verdict}
	if d.Range != "" {
		f.Since = c.now().Add(-alertRanges[d.Range])
	}
	const per = 50
	var list []store.AdmissionDecision
	total := 0
	if d.Policy == "" {
		var err error
		list, total, err = c.st.ListAdmissionDecisions(r.Context(), f, store.Page{Limit: per, Offset: (page - 1) * per})
		if err != nil {
			c.storeError(w, r, err)
			return
		}
	} else {
		// Policy names live in each decision's record: read the newest
		// decisions (bounded) and keep those naming the policy.
		for off := 0; off < admissionScanCap; off += 500 {
			batch, n, err := c.st.ListAdmissionDecisions(r.Context(), f, store.Page{Limit: 500, Offset: off})
			if err != nil {
				c.storeError(w, r, err)
				return
			}
			for _, dec := range batch {
				if recordNamesPolicy(dec.Record, d.Policy) {
					if total >= (page-1)*per && len(list) < per {
						list = append(list, dec)
					}
					total++
				}
			}
			d.PolicyScanned = min(n, off+len(batch))
			if off+len(batch) >= n || len(batch) == 0 {
				break
			}
		}
	}
	for _, dec := range list {
		d.Rows = append(d.Rows, c.admissionRow(&dec))
	}
	d.Pager = newPager(c.url("/admission"), q.v, page, per, total)
	d.VerdictOptions = []option{{"", "Any verdict", d.Verdict == ""}}
	for _, v := range []string{"deny", "warn", "audit", "allow"} {
		d.VerdictOptions = append(d.VerdictOptions, option{v, v, d.Verdict == v})
	}
	d.RangeOptions = []option{{"", "Any time", d.Range == ""}, {"1h", "Last hour", d.Range == "1h"}, {"24h", "Last 24 hours", d.Range == "24h"},
		{"7d", "Last 7 days", d.Range == "7d"}, {"30d", "Last 30 days", d.Range == "30d"}}
	c.render(w, r, http.StatusOK, "admission", d)
}

func recordNamesPolicy(rec json.RawMessage, policy string) bool {
	var ar admissionRecord
	if json.Unmarshal(rec, &ar) != nil {
		return false
	}
	for _, p := range ar.Policies {
		if strings.EqualFold(p, policy) {
			return true
		}
	}
	for _, v := range ar.Violations {
		if strings.EqualFold(v.Policy, policy) {
			return true
		}
	}
	return false
}

// admissionRow is one decision; denials and warnings were also sent to the
// alert pipeline (source admission), so the row links to the alerts of
// that object: same cluster and namespace, its name in the alert.
func (c *Console) admissionRow(dec *store.AdmissionDecision) admissionRow {
	row := admissionRow{ID: dec.ID, Verdict: dec.Verdict, Cluster: dec.Cluster, Operation: dec.Operation, Kind: dec.Kind,
		Namespace: dec.Namespace, Name: dec.Name, User: dec.User, At: dec.At, Allowed: dec.Allowed, Violations: dec.Violations}
	var ar admissionRecord
	if json.Unmarshal(dec.Record, &ar) == nil {
		row.Policies = strings.Join(ar.Policies, ", ")
		if len(ar.Violations) > 0 {
			v := ar.Violations[0]
			row.Message = v.Policy + "/" + v.Rule + ": " + v.Message
			if len(ar.Violations) > 1 {
				row.Message += fmt.Sprintf(" (+%d more)", len(ar.Violations)-1)
			}
		}
	}
	if dec.Verdict == "deny" || dec.Verdict == "warn" {
		v := url.Values{"id": {dec.ID}, "cluster": {dec.Cluster}, "namespace": {dec.Namespace}, "workload": {admissionWorkload(dec)}}
		row.AlertHref = c.url("/admission/alert") + "?" + v.Encode()
	}
	return row
}

// admissionWorkload is the workload the webhook names in a decision's
// alert (internal/admission: Kind/Name, Pod/Name for exec and attach).
func admissionWorkload(dec *store.AdmissionDecision) string {
	if dec.Operation == "CONNECT" {
		return "Pod/" + dec.Name
	}
	return dec.Kind + "/" + dec.Name
}

// admissionAlert opens the alert a denial or warning raised: the webhook
// sends it with the decision's id + "-alert" as its id, grouped by
// fingerprint with the other denials of the same workload, so the alert
// is the admission alert of that cluster, namespace and workload — the one
// whose latest occurrence is this decision if it still is, else the most
// recent one. Without any, the filtered list says so.
func (c *Console) admissionAlert(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	id := q.text("id", 255)
	cluster, ns, workload := q.text("cluster", 255), q.text("namespace", 255), q.text("workload", 600)
	if q.err != nil || workload == "" {
		c.errorPage(w, r, http.StatusBadRequest, "The link names no decision.")
		return
	}
	list, _, err := c.st.ListAlerts(r.Context(), store.AlertFilter{Source: alerts.SourceAdmission, Cluster: cluster, Namespace: ns,
		Workload: workload, Suppressed: store.WithSuppressed}, store.Page{Limit: 50})
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	if len(list) == 0 {
		c.setFlash(w, "error", "No alert is stored for this decision (allowed decisions and audit-mode ones raise none).")
		v := url.Values{"source": {string(alerts.SourceAdmission)}}
		if ns != "" {
			v.Set("namespace", ns)
		}
		http.Redirect(w, r, c.url("/alerts")+"?"+v.Encode(), http.StatusSeeOther)
		return
	}
	pick := list[0]
	for _, a := range list {
		if a.SourceEventID == id+"-alert" {
			pick = a
			break
		}
	}
	http.Redirect(w, r, c.url("/alerts/"+strconv.FormatInt(pick.ID, 10)), http.StatusSeeOther)
}
