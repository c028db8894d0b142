package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/store"
)

// The alert pipeline's API: ingest from every source (sensor, audit,
// admission, posture, scanner), triage, suppressions, the timeline and
// response actions. Alert and action JSON use the ingest contract's
// snake_case names (see package alerts), so a sender, the API and the
// exports spell fields the same way.

var (
	// rolesAlertIngest: senders run with agent tokens.
	rolesAlertIngest = []store.Role{store.RoleAdmin, store.RoleAgent}
	// rolesActionRead: the responder lists its cluster's pending actions.
	rolesActionRead = []store.Role{store.RoleAdmin, store.RoleAnalyst, store.RoleAgent}
	// rolesActionResult: only the responder (or an admin by hand) reports.
	rolesActionResult = []store.Role{store.RoleAdmin, store.RoleAgent}
)

// alertMetrics count the ingest by source and outcome.
type alertMetrics struct {
	ingested, duplicates, suppressed *prometheus.CounterVec
	actions                          *prometheus.CounterVec
}

func newAlertMetrics(reg prometheus.Registerer) *alertMetrics {
	m := &alertMetrics{
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_alerts_ingested_total", Help: "Alerts accepted by the ingest (new occurrences, suppressed included), by source.",
		}, []string{"source"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_alerts_duplicates_total", Help: "Alerts received again under an id already accepted (replayed batches), by source.",
		}, []string{"source"}),
		suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_alerts_suppressed_total", Help: "Accepted alerts a suppression matched, by source.",
		}, []string{"source"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_response_actions_total", Help: "Response actions by action and event (requested, done, failed).",
		}, []string{"action", "event"}),
	}
	// Every source is present from the start, so rates work before the
	// first alert of a kind.
	for _, src := range alerts.Sources {
		m.ingested.WithLabelValues(string(src))
		m.duplicates.WithLabelValues(string(src))
		m.suppressed.WithLabelValues(string(src))
	}
	reg.MustRegister(m.ingested, m.duplicates, m.suppressed, m.actions)
	return m
}

func (m *alertMetrics) record(rep *store.IngestReport) {
	for src, c := range rep.BySource {
		m.ingested.WithLabelValues(string(src)).Add(float64(c.Accepted))
		m.duplicates.WithLabelValues(string(src)).Add(float64(c.Duplicates))
		m.suppressed.WithLabelValues(string(src)).Add(float64(c.Suppressed))
	}
}

// ingestResponse is the answer to POST /api/v1/alerts: the contract's two
// counts plus how many of the accepted were suppressed.
type ingestResponse struct {
	alerts.IngestResult
	Suppressed int `json:"suppressed"`
}

// ingestAlerts accepts a batch from a sender. The body is decoded
// strictly (alerts.DecodeBatch: size caps, no unknown fields, every alert
// valid) before anything is stored, and the whole batch is stored in one
// transaction: a 200 means every alert is durable; any error means none
// is, and the sender retries the same batch (the ids make that safe).
func (s *Server) ingestAlerts(c *call) error {
	if ct := c.r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "want Content-Type: application/json, got %q", ct)
		}
	}
	b, err := alerts.DecodeBatch(http.MaxBytesReader(c.w, c.r.Body, alerts.MaxBodyBytes))
	switch {
	case errors.Is(err, alerts.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "%v", err)
	case errors.Is(err, alerts.ErrInvalid):
		return badRequest("%v", err)
	case err != nil:
		return err
	}
	c.audit("alerts", map[string]any{"alerts": len(b.Alerts)})
	// A sender that says what its clock read has its occurrences counted
	// in the timeline on central's clock (alerts.HeaderSentAt).
	rep, err := s.st.IngestAlertBatchFrom(c.r.Context(), b.Alerts, store.IngestOptions{ClockSkew: alerts.ClockSkew(c.r.Header.Get(alerts.HeaderSentAt), time.Now())})
	if err != nil {
		return err
	}
	s.metrics.alerts.record(rep)
	c.audit("alerts", map[string]any{"alerts": len(b.Alerts), "accepted": rep.Accepted, "duplicates": rep.Duplicates,
		"suppressed": rep.Suppressed})
	return c.JSON(http.StatusOK, ingestResponse{alerts.IngestResult{Accepted: rep.Accepted, Duplicates: rep.Duplicates}, rep.Suppressed})
}

// alertJSON is a stored alert (occurrences grouped by fingerprint).
type alertJSON struct {
	ID             int64           `json:"id"`
	Fingerprint    string          `json:"fingerprint"`
	Source         alerts.Source   `json:"source"`
	Rule           string          `json:"rule"`
	RuleVersion    string          `json:"rule_version,omitempty"`
	Severity       alerts.Severity `json:"severity"`
	Title          string          `json:"title"`
	MitreTactic    string          `json:"mitre_tactic,omitempty"`
	MitreTechnique string          `json:"mitre_technique,omitempty"`
	Cluster        string          `json:"cluster,omitempty"`
	Namespace      string          `json:"namespace,omitempty"`
	Pod            string          `json:"pod,omitempty"`
	Container      string          `json:"container,omitempty"`
	ContainerID    string          `json:"container_id,omitempty"`
	Image          string          `json:"image,omitempty"`
	ImageDigest    string          `json:"image_digest,omitempty"`
	Node           string          `json:"node,omitempty"`
	Workload       string          `json:"workload,omitempty"`
	Evidence       json.RawMessage `json:"evidence,omitempty"` // detail only
	SourceEventID  string          `json:"source_event_id,omitempty"`
	SuppressionID  int64           `json:"suppression_id,omitempty"`
	Count          int64           `json:"count"`
	FirstSeen      time.Time       `json:"first_seen"`
	LastSeen       time.Time       `json:"last_seen"`
	Status         string          `json:"status"`
	StatusBy       string          `json:"status_by,omitempty"`
	StatusAt       time.Time       `json:"status_at,omitzero"`
	StatusNote     string          `json:"status_note,omitempty"`

	// Set when a suppression was applied to the alert after it was stored.
	SuppressedBy string    `json:"suppressed_by,omitempty"`
	SuppressedAt time.Time `json:"suppressed_at,omitzero"`
}

func toAlertJSON(a *store.Alert, evidence bool) alertJSON {
	j := alertJSON{ID: a.ID, Fingerprint: a.Fingerprint, Source: a.Source, Rule: a.Rule, RuleVersion: a.RuleVersion,
		Severity: a.Severity, Title: a.Title, MitreTactic: a.MitreTactic, MitreTechnique: a.MitreTechnique, Cluster: a.Cluster,
		Namespace: a.Namespace, Pod: a.Pod, Container: a.Container, ContainerID: a.ContainerID, Image: a.Image,
		ImageDigest: a.ImageDigest, Node: a.Node, Workload: a.Workload, SourceEventID: a.SourceEventID,
		SuppressionID: a.SuppressionID, Count: a.Count, FirstSeen: a.FirstSeen, LastSeen: a.LastSeen, Status: string(a.Status),
		StatusBy: a.StatusBy, StatusAt: a.StatusAt, StatusNote: a.StatusNote, SuppressedBy: a.SuppressedBy, SuppressedAt: a.SuppressedAt}
	if evidence {
		j.Evidence = a.Evidence
	}
	return j
}

// toAlertListJSON leaves the evidence out: a page of 1000 alerts must not
// carry 1000 raw events (the detail has it).
func toAlertListJSON(a *store.Alert) alertJSON { return toAlertJSON(a, false) }

// alertFilterFromQuery reads the alert list's query parameters: status,
// severity (the minimum), source, rule, cluster, namespace, workload,
// since, until (RFC 3339 or a duration back from now), q (substring),
// suppressed (false: hidden, the default; true: only suppressed; all)
// and suppression (one suppression's alerts).
func alertFilterFromQuery(q map[string][]string, now time.Time) (store.AlertFilter, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	f := store.AlertFilter{Status: store.AlertStatus(get("status")), Source: alerts.Source(get("source")), Rule: get("rule"),
		Cluster: get("cluster"), Namespace: get("namespace"), Workload: get("workload"), Q: get("q")}
	for _, v := range []string{f.Rule, f.Cluster, f.Namespace, f.Workload, f.Q} {
		if len(v) > 512 {
			return f, badRequest("filter values are limited to 512 bytes")
		}
	}
	if f.Status != "" && !f.Status.Valid() {
		return f, badRequest("status must be new, acknowledged, resolved or false_positive")
	}
	if f.Source != "" && !f.Source.Valid() {
		return f, badRequest("source must be sensor, audit, admission, posture or scanner")
	}
	if v := get("severity"); v != "" {
		sev, err := alerts.ParseSeverity(v)
		if err != nil {
			return f, badRequest("severity (the minimum) must be critical, high, medium, low or info")
		}
		f.MinSeverity = sev
	}
	var err error
	if f.Since, err = parseTimeOrAgo("since", get("since"), now); err != nil {
		return f, err
	}
	if f.Until, err = parseTimeOrAgo("until", get("until"), now); err != nil {
		return f, err
	}
	switch get("suppressed") {
	case "", "false":
	case "true", "only":
		f.Suppressed = store.OnlySuppressed
	case "all":
		f.Suppressed = store.WithSuppressed
	default:
		return f, badRequest("suppressed must be false, true or all")
	}
	if v := get("suppression"); v != "" {
		if f.SuppressionID, err = strconv.ParseInt(v, 10, 64); err != nil || f.SuppressionID <= 0 {
			return f, badRequest("suppression must be a suppression id")
		}
	}
	return f, nil
}

// parseTimeOrAgo reads an RFC 3339 time or a positive duration before now.
func parseTimeOrAgo(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 && d < 100*365*24*time.Hour {
		return now.Add(-d), nil
	}
	return time.Time{}, badRequest("%s must be an RFC 3339 time or a duration such as 24h", name)
}

func (s *Server) listAlerts(c *call) error {
	return listPage(c, func(c *call) (store.AlertFilter, error) { return alertFilterFromQuery(c.r.URL.Query(), time.Now()) },
		s.st.ListAlerts, toAlertListJSON)
}

// alertDetailJSON is one alert with its evidence, up to 20 related alerts
// (same cluster, namespace and workload) and its response actions.
type alertDetailJSON struct {
	alertJSON
	Related []alertJSON     `json:"related"`
	Actions []alerts.Action `json:"actions"`
}

func (s *Server) getAlert(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	d, err := s.st.GetAlertDetail(c.r.Context(), id)
	if err != nil {
		return err
	}
	out := alertDetailJSON{alertJSON: toAlertJSON(d.Alert, true), Related: mapSlice(d.Related, toAlertListJSON), Actions: d.Actions}
	return c.JSON(http.StatusOK, out)
}

type statusInput struct {
	Status string `json:"status"`
	Note   string `json:"note"`
}

func (s *Server) setAlertStatus(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("alert/%d", id), nil)
	var in statusInput
	if err := c.decode(&in, 16<<10, true); err != nil {
		return err
	}
	c.audit(fmt.Sprintf("alert/%d", id), in)
	if len(in.Note) > 4096 {
		return badRequest("note is limited to 4096 bytes")
	}
	if err := s.st.SetAlertStatus(c.r.Context(), id, store.AlertStatus(in.Status), c.actor(), in.Note); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errorf(http.StatusConflict, "conflict", "another open alert has the same fingerprint; triage that one")
		}
		return err
	}
	a, err := s.st.GetAlert(c.r.Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAlertJSON(a, false))
}

// timelineJSON is the alert timeline: occurrences per bucket by severity.
type timelineJSON struct {
	Since         time.Time            `json:"since"`
	Until         time.Time            `json:"until"`
	BucketSeconds int64                `json:"bucket_seconds"`
	Buckets       []timelineBucketJSON `json:"buckets"`
}

type timelineBucketJSON struct {
	Start      time.Time `json:"start"`
	Critical   int64     `json:"critical"`
	High       int64     `json:"high"`
	Medium     int64     `json:"medium"`
	Low        int64     `json:"low"`
	Info       int64     `json:"info"`
	Total      int64     `json:"total"`
	Suppressed int64     `json:"suppressed"`
}

func (s *Server) alertTimeline(c *call) error {
	q := c.r.URL.Query()
	now := time.Now().UTC()
	since, err := parseTimeOrAgo("since", q.Get("since"), now)
	if err != nil {
		return err
	}
	until, err := parseTimeOrAgo("until", q.Get("until"), now)
	if err != nil {
		return err
	}
	if since.IsZero() {
		since = now.Add(-24 * time.Hour)
	}
	if until.IsZero() {
		until = now
	}
	bucket := AutoBucket(until.Sub(since))
	if v := q.Get("bucket"); v != "" {
		if bucket, err = time.ParseDuration(v); err != nil {
			return badRequest("bucket must be a duration such as 1h")
		}
	}
	src := alerts.Source(q.Get("source"))
	bs, err := s.st.AlertTimeline(c.r.Context(), since, until, bucket, src)
	if err != nil {
		return err
	}
	out := timelineJSON{Since: since, Until: until, BucketSeconds: int64(bucket / time.Second), Buckets: make([]timelineBucketJSON, len(bs))}
	if len(bs) > 0 {
		out.Since = bs[0].Start
	}
	for i, b := range bs {
		out.Buckets[i] = timelineBucketJSON{Start: b.Start, Critical: b.BySeverity[alerts.SeverityCritical],
			High: b.BySeverity[alerts.SeverityHigh], Medium: b.BySeverity[alerts.SeverityMedium], Low: b.BySeverity[alerts.SeverityLow],
			Info: b.BySeverity[alerts.SeverityInfo], Total: b.Total(), Suppressed: b.Suppressed}
	}
	return c.JSON(http.StatusOK, out)
}

// AutoBucket picks a timeline bucket giving 24-96 bars over span: a whole
// number of minutes from a fixed ladder, so bars line up across refreshes.
func AutoBucket(span time.Duration) time.Duration {
	for _, b := range []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 3 * time.Hour,
		6 * time.Hour, 24 * time.Hour} {
		if span/b <= 96 {
			return b
		}
	}
	return 7 * 24 * time.Hour
}

// --- suppressions ---

type suppressionJSON struct {
	ID        int64     `json:"id"`
	Rule      string    `json:"rule"`
	Cluster   string    `json:"cluster,omitempty"`
	Namespace string    `json:"namespace,omitempty"`
	Workload  string    `json:"workload,omitempty"`
	Image     string    `json:"image,omitempty"`
	Reason    string    `json:"reason"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Expired   bool      `json:"expired"`
	Hits      int64     `json:"hits"`
	LastHit   time.Time `json:"last_hit,omitzero"`
	// Applied counts the alerts stored before the suppression it was
	// applied to.
	Applied int64 `json:"applied"`
}

func toSuppressionJSON(sp *store.Suppression) suppressionJSON {
	return suppressionJSON{ID: sp.ID, Rule: sp.Rule, Cluster: sp.Cluster, Namespace: sp.Namespace, Workload: sp.Workload,
		Image: sp.Image, Reason: sp.Reason, CreatedBy: sp.CreatedBy, CreatedAt: sp.CreatedAt, ExpiresAt: sp.ExpiresAt,
		Expired: sp.Expired(time.Now()), Hits: sp.Hits, LastHit: sp.LastHit, Applied: sp.Applied}
}

// suppressionInput creates a suppression. Globs: * any run, ? one
// character. Expiry: expires_at (RFC 3339) or expires_in (a duration).
type suppressionInput struct {
	Rule      string    `json:"rule"`
	Cluster   string    `json:"cluster"`
	Namespace string    `json:"namespace"`
	Workload  string    `json:"workload"`
	Image     string    `json:"image"`
	Reason    string    `json:"reason"`
	ExpiresAt time.Time `json:"expires_at"`
	ExpiresIn string    `json:"expires_in"`
	// ApplyToExisting also suppresses the open alerts stored before it
	// that it matches (default false in the API; the console sends true).
	ApplyToExisting bool `json:"apply_to_existing"`
}

func (s *Server) listSuppressions(c *call) error {
	all, err := c.boolParam("expired")
	if err != nil {
		return err
	}
	sps, err := s.st.ListSuppressions(c.r.Context(), all)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"items": mapSlice(sps, toSuppressionJSON)})
}

func (s *Server) getSuppression(c *call) error {
	return getByID(c, s.st.GetSuppression, toSuppressionJSON)
}

func (s *Server) createSuppression(c *call) error {
	var in suppressionInput
	if err := c.decode(&in, 16<<10, true); err != nil {
		return err
	}
	c.audit("suppression", in)
	sp := store.Suppression{Rule: in.Rule, Cluster: in.Cluster, Namespace: in.Namespace, Workload: in.Workload, Image: in.Image,
		Reason: in.Reason, CreatedBy: c.actor(), ExpiresAt: in.ExpiresAt}
	if in.ExpiresIn != "" {
		d, err := time.ParseDuration(in.ExpiresIn)
		if err != nil || d <= 0 || !in.ExpiresAt.IsZero() {
			return badRequest("expires_in must be a positive duration such as 72h (and excludes expires_at)")
		}
		sp.ExpiresAt = time.Now().Add(d)
	}
	created, err := s.st.CreateSuppressionApplied(c.r.Context(), sp, in.ApplyToExisting)
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("suppression/%d", created.ID), map[string]any{"input": in, "applied": created.Applied})
	return c.JSON(http.StatusCreated, toSuppressionJSON(created))
}

func (s *Server) deleteSuppression(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("suppression/%d", id), nil)
	if err := s.st.DeleteSuppression(c.r.Context(), id); err != nil {
		return err
	}
	// The alerts it holds stay suppressed (nothing reappears silently);
	// the audit entry says how many still wait for a release.
	if n, err := s.st.SuppressedOpenCount(c.r.Context(), id); err == nil {
		c.audit(fmt.Sprintf("suppression/%d", id), map[string]any{"still_suppressed_open_alerts": n})
	}
	return c.noContent()
}

// suppressionMatches lists the unsuppressed alerts a suppression covers:
// those stored before it existed (it only applies at ingest).
func (s *Server) suppressionMatches(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	p, err := c.page()
	if err != nil {
		return err
	}
	sp, err := s.st.GetSuppression(c.r.Context(), id)
	if err != nil {
		return err
	}
	status := store.AlertStatus(c.r.URL.Query().Get("status"))
	items, total, err := s.st.MatchingAlerts(c.r.Context(), *sp, status, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newList(mapSlice(items, toAlertListJSON), total, p))
}

// --- response actions ---

func (s *Server) requestAction(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("alert/%d", id), nil)
	var in alerts.ActionRequest
	if err := c.decode(&in, 16<<10, true); err != nil {
		return err
	}
	c.audit(fmt.Sprintf("alert/%d", id), in)
	a, err := s.st.CreateAction(c.r.Context(), id, in.Action, in.Reason, c.actor())
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errorf(http.StatusConflict, "conflict", "this action is already pending for the alert")
		}
		return err
	}
	s.metrics.alerts.actions.WithLabelValues(string(a.Action), "requested").Inc()
	c.audit(fmt.Sprintf("action/%d", a.ID), map[string]any{"alert": id, "action": a.Action, "reason": a.Reason,
		"cluster": a.Cluster, "namespace": a.Namespace, "pod": a.Pod, "node": a.Node})
	return c.JSON(http.StatusAccepted, a)
}

// listActions answers the contract's shape, {"actions": [...]} (plus the
// total). The responder asks ?cluster=NAME&state=pending and gets the
// oldest first; otherwise the newest come first.
func (s *Server) listActions(c *call) error {
	p, err := c.page()
	if err != nil {
		return err
	}
	q := c.r.URL.Query()
	f := store.ActionFilter{Cluster: q.Get("cluster"), State: alerts.ActionState(q.Get("state"))}
	if v := q.Get("alert"); v != "" {
		if f.AlertID, err = strconv.ParseInt(v, 10, 64); err != nil || f.AlertID <= 0 {
			return badRequest("alert must be an alert id")
		}
	}
	if p.Sort == "" && f.State == alerts.ActionPending {
		p.Sort = "id"
	}
	items, total, err := s.st.ListActions(c.r.Context(), f, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"actions": items, "total": total})
}

func (s *Server) actionResult(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("action/%d", id), nil)
	var in alerts.ActionResult
	if err := c.decode(&in, 64<<10, true); err != nil {
		return err
	}
	c.audit(fmt.Sprintf("action/%d", id), in)
	a, err := s.st.CompleteAction(c.r.Context(), id, in, c.actor())
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errorf(http.StatusConflict, "conflict", "the action already has another result")
		}
		return err
	}
	s.metrics.alerts.actions.WithLabelValues(string(a.Action), string(a.State)).Inc()
	return c.JSON(http.StatusOK, a)
}
