package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/store"
)

// The alert pages: the list (filters, pager, a timeline of occurrences by
// severity), the detail (fields, evidence, related alerts on the same
// workload, response actions) and its three forms — triage status,
// request a response action, suppress alerts like this one. Every form
// posts with the session's CSRF token and is recorded in the audit log.

// alertSevKeys are the CSS keys of alert severities, highest first (the
// console's severity palette; info uses the "unknown" colour).
var (
	alertSevKeys   = [5]string{"critical", "high", "medium", "low", "unknown"}
	alertSevLabels = [5]string{"Critical", "High", "Medium", "Low", "Info"}
)

// alertSevIndex maps a severity to its position in alertSevKeys.
func alertSevIndex(s alerts.Severity) int {
	if !s.Valid() {
		return 4
	}
	return 4 - int(s)
}

var alertSortKeys = []string{"last_seen", "first_seen", "severity", "count", "rule"}

type alertRow struct {
	ID                                  int64
	SevKey, SevLabel                    string
	Rule, Title, Source                 string
	Cluster, Namespace, Workload, Pod   string
	Count                               int64
	FirstSeen, LastSeen                 time.Time
	Status, StatusLabel, MitreTechnique string
	Suppressed                          bool
	Href                                string
}

func (c *Console) alertRow(a *store.Alert) alertRow {
	i := alertSevIndex(a.Severity)
	return alertRow{ID: a.ID, SevKey: alertSevKeys[i], SevLabel: alertSevLabels[i], Rule: a.Rule, Title: a.Title,
		Source: string(a.Source), Cluster: a.Cluster, Namespace: a.Namespace, Workload: a.Workload, Pod: a.Pod, Count: a.Count,
		FirstSeen: a.FirstSeen, LastSeen: a.LastSeen, Status: string(a.Status), StatusLabel: statusLabel(a.Status),
		MitreTechnique: a.MitreTechnique, Suppressed: a.SuppressionID != 0, Href: c.url("/alerts/" + strconv.FormatInt(a.ID, 10))}
}

func statusLabel(s store.AlertStatus) string {
	switch s {
	case store.AlertNew:
		return "New"
	case store.AlertAcknowledged:
		return "Acknowledged"
	case store.AlertResolved:
		return "Resolved"
	case store.AlertFalsePositive:
		return "False positive"
	}
	return string(s)
}

type alertsData struct {
	*pageData
	Q, Status, Severity, Source, Cluster, Namespace, Sort, Range string
	Suppressed                                                   bool
	Suppression                                                  int64
	Filtered                                                     bool
	Rows                                                         []alertRow
	Pager                                                        pager
	Sorts                                                        map[string]sortLink
	StatusOptions, SevOptions, SourceOptions, RangeOptions       []option
	Timeline                                                     timelineChart
	// The bulk bar: target statuses, the list's filter as hidden fields
	// (to change every matching alert), and the cap.
	BulkStatuses []store.AlertStatus
	BulkFilter   []option
	MaxBulk      int
}

// alertRanges are the list's time windows (last seen within).
var alertRanges = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}

func (c *Console) alertsPage(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	d := &alertsData{pageData: c.pageData(r, "alerts", "Alerts")}
	d.Flash = c.takeFlash(w, r)
	lp := readAlertListParams(q)
	d.Q, d.Status, d.Severity, d.Source, d.Cluster, d.Namespace, d.Range, d.Suppressed = lp.Q, lp.Status, lp.Severity, lp.Source,
		lp.Cluster, lp.Namespace, lp.Range, lp.Suppressed
	d.Suppression = lp.Suppression
	d.Sort = q.sortKey(alertSortKeys, "-last_seen")
	page := q.page()
	if q.err != nil {
		c.errorPage(w, r, http.StatusBadRequest, q.err.Error())
		return
	}
	const per = 50
	now := c.now()
	f := lp.filter(now)
	d.BulkStatuses = store.AlertStatuses
	d.BulkFilter = lp.values()
	d.MaxBulk = store.MaxBulkAlerts
	d.Filtered = d.Q != "" || d.Status != "" || d.Severity != "" || d.Source != "" || d.Cluster != "" || d.Namespace != "" ||
		d.Range != "" || d.Suppressed || d.Suppression != 0
	list, total, err := c.listOpenAware(r, f, d.Status == "open", store.Page{Limit: per, Offset: (page - 1) * per, Sort: d.Sort})
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	for i := range list {
		d.Rows = append(d.Rows, c.alertRow(&list[i]))
	}
	span := 24 * time.Hour
	if d.Range != "" {
		span = alertRanges[d.Range]
	}
	bucket := timelineBucket(span)
	bs, err := c.st.AlertTimeline(r.Context(), now.Add(-span), now, bucket, alerts.Source(d.Source))
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	d.Timeline = timelineBars(bs, bucket, 960, 200)
	path := c.url("/alerts")
	d.Pager = newPager(path, q.v, page, per, total)
	d.Sorts = sortLinks(path, q.v, d.Sort, alertSortKeys, map[string]bool{"last_seen": true, "first_seen": true, "severity": true, "count": true})
	d.StatusOptions = []option{{"", "Any status", d.Status == ""}, {"open", "Open (new or acknowledged)", d.Status == "open"}}
	for _, s := range store.AlertStatuses {
		d.StatusOptions = append(d.StatusOptions, option{string(s), statusLabel(s), d.Status == string(s)})
	}
	d.SevOptions = []option{{"", "Any severity", d.Severity == ""}}
	for i := 0; i < 4; i++ {
		d.SevOptions = append(d.SevOptions, option{alertSevKeys[i], alertSevLabels[i] + " or worse", d.Severity == alertSevKeys[i]})
	}
	d.SourceOptions = []option{{"", "Any source", d.Source == ""}}
	for _, s := range alerts.Sources {
		d.SourceOptions = append(d.SourceOptions, option{string(s), string(s), d.Source == string(s)})
	}
	d.RangeOptions = []option{{"", "Any time", d.Range == ""}, {"1h", "Last hour", d.Range == "1h"}, {"24h", "Last 24 hours", d.Range == "24h"},
		{"7d", "Last 7 days", d.Range == "7d"}, {"30d", "Last 30 days", d.Range == "30d"}}
	c.render(w, r, http.StatusOK, "alerts", d)
}

// listOpenAware lists alerts; "open" (new or acknowledged) is two
// statuses, which the store filter does not combine, so it is the sum of
// both lists, paged over their concatenation (new first).
func (c *Console) listOpenAware(r *http.Request, f store.AlertFilter, open bool, p store.Page) ([]store.Alert, int, error) {
	if !open {
		return c.st.ListAlerts(r.Context(), f, p)
	}
	f.Status = store.AlertNew
	_, nNew, err := c.st.ListAlerts(r.Context(), f, store.Page{Limit: 1, Sort: p.Sort})
	if err != nil {
		return nil, 0, err
	}
	var out []store.Alert
	if p.Offset < nNew {
		out, _, err = c.st.ListAlerts(r.Context(), f, p)
		if err != nil {
			return nil, 0, err
		}
	}
	f.Status = store.AlertAcknowledged
	rest := p.Limit - len(out)
	ack, nAck, err := c.st.ListAlerts(r.Context(), f, store.Page{Limit: max(rest, 1), Offset: max(0, p.Offset-nNew), Sort: p.Sort})
	if err != nil {
		return nil, 0, err
	}
	if rest > 0 {
		out = append(out, ack...)
	}
	return out, nNew + nAck, nil
}

// timelineBucket picks 24-96 bars over span (the API's ladder).
func timelineBucket(span time.Duration) time.Duration {
	for _, b := range []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour} {
		if span/b <= 96 {
			return b
		}
	}
	return 24 * time.Hour
}

// timelineChart is a stacked bar chart of alert occurrences per bucket.
type timelineChart struct {
	W, H                     float64
	Left, Right, Top, Bottom float64
	Bars                     []timelineBar
	YTicks, XTicks           []tick
	Max                      int
	Total                    int
	Empty                    bool
	Title, Desc              string
}

type timelineBar struct {
	X, W  float64
	Start string // RFC 3339
	Total int64
	Segs  []timelineSeg
	Title string
}

type timelineSeg struct {
	Key   string
	Y, H  float64
	Value int64
}

// timelineBars lays out buckets (oldest first) as stacked bars of w×h,
// lowest severity at the bottom; reuses the area chart's axis helpers.
func timelineBars(bs []store.TimelineBucket, bucket time.Duration, w, h float64) timelineChart {
	c := timelineChart{W: w, H: h, Left: 44, Right: w - 12, Top: 10, Bottom: h - 26,
		Title: "Alert occurrences over time", Desc: "Stacked bars: occurrences per time bucket by severity."}
	n := len(bs)
	if n == 0 {
		c.Empty = true
		return c
	}
	for _, b := range bs {
		c.Max = max(c.Max, int(b.Total()))
		c.Total += int(b.Total())
	}
	top, step := niceCeil(c.Max)
	pw, ph := c.Right-c.Left, c.Bottom-c.Top
	slot := pw / float64(n)
	y := func(v int64) float64 { return c.Bottom - ph*float64(v)/float64(top) }
	for v := 0; v <= top; v += step {
		c.YTicks = append(c.YTicks, tick{Pos: y(int64(v)), Label: strconv.Itoa(v)})
	}
	layout := "15:04"
	if bucket >= 24*time.Hour {
		layout = "Jan 2"
	} else if time.Duration(n)*bucket > 24*time.Hour {
		layout = "Jan 2 15:04"
	}
	every := max(1, (n+5)/6)
	for i := 0; i < n; i += every {
		c.XTicks = append(c.XTicks, tick{Pos: c.Left + slot*(float64(i)+0.5), Label: bs[i].Start.UTC().Format(layout), Anchor: "middle"})
	}
	for i, b := range bs {
		bar := timelineBar{X: c.Left + slot*float64(i) + slot*0.1, W: slot * 0.8, Start: b.Start.UTC().Format(time.RFC3339), Total: b.Total()}
		var parts []string
		base := int64(0)
		for sev := alerts.SeverityInfo; sev <= alerts.SeverityCritical; sev++ {
			v := b.BySeverity[sev]
			if v == 0 {
				continue
			}
			k := alertSevIndex(sev)
			top, bottom := y(base+v), y(base)
			bar.Segs = append(bar.Segs, timelineSeg{Key: alertSevKeys[k], Y: top, H: bottom - top, Value: v})
			base += v
		}
		for k := 0; k < 5; k++ {
			if v := b.BySeverity[alerts.Severity(4-k)]; v > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", v, strings.ToLower(alertSevLabels[k])))
			}
		}
		bar.Title = b.Start.UTC().Format("Jan 2 15:04") + " UTC: " + strconv.FormatInt(b.Total(), 10) + " occurrences"
		if len(parts) > 0 {
			bar.Title += " (" + strings.Join(parts, ", ") + ")"
		}
		if b.Suppressed > 0 {
			bar.Title += fmt.Sprintf(", %d suppressed", b.Suppressed)
		}
		c.Bars = append(c.Bars, bar)
	}
	return c
}

// ---- detail ----

type alertData struct {
	*pageData
	A            *store.Alert
	SevKey       string
	SevLabel     string
	StatusLabel  string
	Evidence     string // indented JSON
	Related      []alertRow
	Actions      []actionRow
	Statuses     []option
	ActionKinds  []actionChoice
	CanAct       bool
	SuppressForm suppressForm
}

type actionRow struct {
	ID                   int64
	Action, State        string
	Target               string
	RequestedBy, Message string
	Reason               string
	RequestedAt          time.Time
	CompletedAt          time.Time
}

type actionChoice struct {
	Value, Label string
	Enabled      bool
	Why          string
	Undo         bool
}

type suppressForm struct {
	Rule, Cluster, Namespace, Workload, Image string
}

// pathID reads the positive numeric {id} of an alert's or a suppression's
// page; anything else is a 404 page.
func (c *Console) pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		c.errorPage(w, r, http.StatusNotFound, "Not found.")
		return 0, false
	}
	return id, true
}

func (c *Console) alertPage(w http.ResponseWriter, r *http.Request) {
	id, ok := c.pathID(w, r)
	if !ok {
		return
	}
	det, err := c.st.GetAlertDetail(r.Context(), id)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	a := det.Alert
	d := &alertData{pageData: c.pageData(r, "alerts", "Alert "+strconv.FormatInt(a.ID, 10)), A: a}
	d.Flash = c.takeFlash(w, r)
	i := alertSevIndex(a.Severity)
	d.SevKey, d.SevLabel, d.StatusLabel = alertSevKeys[i], alertSevLabels[i], statusLabel(a.Status)
	var buf bytes.Buffer
	if err := json.Indent(&buf, a.Evidence, "", "  "); err != nil {
		d.Evidence = string(a.Evidence)
	} else {
		d.Evidence = buf.String()
	}
	for j := range det.Related {
		d.Related = append(d.Related, c.alertRow(&det.Related[j]))
	}
	for _, ac := range det.Actions {
		row := actionRow{ID: ac.ID, Action: actionLabel(ac.Action), State: string(ac.State), RequestedBy: ac.RequestedBy,
			RequestedAt: ac.RequestedAt, Message: ac.Message, Reason: ac.Reason, Target: actionTarget(&ac)}
		if ac.CompletedAt != nil {
			row.CompletedAt = *ac.CompletedAt
		}
		d.Actions = append(d.Actions, row)
	}
	for _, s := range store.AlertStatuses {
		d.Statuses = append(d.Statuses, option{string(s), statusLabel(s), s == a.Status})
	}
	undos, err := c.st.UndoableActions(r.Context(), a)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	for _, k := range alerts.ActionKinds {
		if k.Undoes() != "" && !slices.Contains(undos, k) {
			continue // an undo is offered only once the action it reverses was done
		}
		ch := actionChoice{Value: string(k), Label: actionLabel(k), Enabled: true, Undo: k.Undoes() != ""}
		switch {
		case a.Cluster == "":
			ch.Enabled, ch.Why = false, "the alert names no cluster"
		case k.NeedsPod() && (a.Namespace == "" || a.Pod == ""):
			ch.Enabled, ch.Why = false, "the alert names no pod"
		case k.NeedsWorkload() && (a.Namespace == "" || a.Workload == ""):
			ch.Enabled, ch.Why = false, "the alert names no workload"
		case k == alerts.ActionCordonNode && a.Node == "":
			ch.Enabled, ch.Why = false, "the alert names no node"
		}
		d.CanAct = d.CanAct || ch.Enabled
		d.ActionKinds = append(d.ActionKinds, ch)
	}
	d.SuppressForm = suppressForm{Rule: a.Rule, Cluster: a.Cluster, Namespace: a.Namespace, Workload: a.Workload, Image: a.Image}
	c.render(w, r, http.StatusOK, "alert", d)
}

func actionLabel(k alerts.ActionKind) string {
	switch k {
	case alerts.ActionDeletePod:
		return "Delete pod"
	case alerts.ActionIsolatePod:
		return "Isolate pod"
	case alerts.ActionScaleToZero:
		return "Scale workload to zero"
	case alerts.ActionCordonNode:
		return "Cordon node"
	case alerts.ActionUnisolatePod:
		return "Undo isolation"
	case alerts.ActionUncordonNode:
		return "Uncordon node"
	case alerts.ActionRestoreScale:
		return "Restore replicas"
	}
	return string(k)
}

func actionTarget(a *alerts.Action) string {
	switch a.Action {
	case alerts.ActionCordonNode, alerts.ActionUncordonNode:
		return a.Cluster + " · node " + a.Node
	case alerts.ActionScaleToZero, alerts.ActionRestoreScale:
		t := a.Cluster + " · " + a.Namespace + "/" + a.Workload
		if a.Scaled != "" && a.Replicas != nil {
			if a.Action == alerts.ActionRestoreScale {
				t += fmt.Sprintf(" · %s back to %d replicas", a.Scaled, *a.Replicas)
			} else {
				t += fmt.Sprintf(" · %s was at %d replicas", a.Scaled, *a.Replicas)
			}
		}
		return t
	}
	return a.Cluster + " · " + a.Namespace + "/" + a.Pod
}

func (c *Console) alertBack(w http.ResponseWriter, r *http.Request, id int64, kind, msg string) {
	c.setFlash(w, kind, msg)
	http.Redirect(w, r, c.url("/alerts/"+strconv.FormatInt(id, 10)), http.StatusSeeOther)
}

// alertStatus moves the alert through the triage workflow.
func (c *Console) alertStatus(w http.ResponseWriter, r *http.Request) {
	id, ok := c.pathID(w, r)
	if !ok {
		return
	}
	p := principalFrom(r.Context())
	status := store.AlertStatus(r.PostForm.Get("status"))
	note := strings.TrimSpace(r.PostForm.Get("note"))
	if !status.Valid() || len(note) > 4096 || !cleanText(note) {
		c.alertBack(w, r, id, "error", "Choose a status; the note is limited to 4096 printable characters.")
		return
	}
	err := c.st.SetAlertStatus(r.Context(), id, status, p.Actor, note)
	c.audit(r.Context(), p.Actor, "alert.status", fmt.Sprintf("alert/%d", id), map[string]any{"status": status, "note": note,
		"ok": err == nil})
	switch {
	case errors.Is(err, store.ErrConflict):
		c.alertBack(w, r, id, "error", "Another open alert has the same fingerprint; triage that one instead.")
	case err != nil:
		c.storeError(w, r, err)
	default:
		c.alertBack(w, r, id, "ok", "Status set to "+statusLabel(status)+".")
	}
}

// alertAction requests a response action; the cluster's responder
// performs it and reports back.
func (c *Console) alertAction(w http.ResponseWriter, r *http.Request) {
	id, ok := c.pathID(w, r)
	if !ok {
		return
	}
	p := principalFrom(r.Context())
	kind := alerts.ActionKind(r.PostForm.Get("action"))
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if !kind.Valid() || len(reason) > 4096 || !cleanText(reason) {
		c.alertBack(w, r, id, "error", "Choose an action; the reason is limited to 4096 printable characters.")
		return
	}
	a, err := c.st.CreateAction(r.Context(), id, kind, reason, p.Actor)
	details := map[string]any{"action": kind, "reason": reason, "ok": err == nil}
	target := fmt.Sprintf("alert/%d", id)
	if err == nil {
		target = fmt.Sprintf("action/%d", a.ID)
		details["alert"], details["cluster"], details["namespace"], details["pod"], details["node"] = id, a.Cluster, a.Namespace, a.Pod, a.Node
	}
	c.audit(r.Context(), p.Actor, "action.request", target, details)
	switch {
	case errors.Is(err, store.ErrConflict):
		c.alertBack(w, r, id, "error", actionLabel(kind)+" is already pending for this alert.")
	case errors.Is(err, store.ErrInvalid):
		c.alertBack(w, r, id, "error", "This action cannot be requested: "+err.Error())
	case err != nil:
		c.storeError(w, r, err)
	default:
		c.alertBack(w, r, id, "ok", actionLabel(kind)+" requested: pending until the cluster's responder performs it.")
	}
}

// alertSuppress creates a suppression from the alert's fields (each kept
// or widened to a glob by the form) with a reason and an expiry.
func (c *Console) alertSuppress(w http.ResponseWriter, r *http.Request) {
	id, ok := c.pathID(w, r)
	if !ok {
		return
	}
	p := principalFrom(r.Context())
	if !canTriage(p) {
		c.errorPage(w, r, http.StatusForbidden, "Your role cannot change suppressions.")
		return
	}
	sp, apply, problem := c.readSuppressionForm(r, p.Actor)
	if problem != "" {
		c.alertBack(w, r, id, "error", problem)
		return
	}
	c.createSuppression(w, r, p.Actor, sp, apply, fmt.Sprintf("alert/%d", id), map[string]any{"alert": id},
		func(kind, msg string) { c.alertBack(w, r, id, kind, msg) })
}
