package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// AlertSource is the role that raised an alert.
type AlertSource string

const (
	AlertSensor    AlertSource = "sensor"    // runtime rules on a node
	AlertAudit     AlertSource = "audit"     // Kubernetes audit-log rules
	AlertAdmission AlertSource = "admission" // a denied or warned admission
	AlertScanner   AlertSource = "scanner"   // e.g. a new KEV finding in a running image
	AlertPosture   AlertSource = "posture"   // a failed benchmark check
)

func (s AlertSource) valid() bool {
	switch s {
	case AlertSensor, AlertAudit, AlertAdmission, AlertScanner, AlertPosture:
		return true
	}
	return false
}

// AlertStatus is the triage workflow: new → acknowledged → resolved or
// false_positive (either of the last two may be reopened to new).
type AlertStatus string

const (
	AlertNew           AlertStatus = "new"
	AlertAcknowledged  AlertStatus = "acknowledged"
	AlertResolved      AlertStatus = "resolved"
	AlertFalsePositive AlertStatus = "false_positive"
)

func (s AlertStatus) valid() bool {
	switch s {
	case AlertNew, AlertAcknowledged, AlertResolved, AlertFalsePositive:
		return true
	}
	return false
}

// Alert is a detection, deduplicated by fingerprint while open.
type Alert struct {
	ID int64
	// Fingerprint identifies "the same alert" (rule + workload + what it
	// matched); repeats while open increment Count instead of adding rows.
	Fingerprint string
	Source      AlertSource
	Rule        string
	Severity    vulndb.Severity
	Title       string
	Cluster     string
	Namespace   string
	Workload    string
	ImageDigest string
	// Evidence is the raw event(s) as JSON.
	Evidence   json.RawMessage
	Count      int64
	FirstSeen  time.Time
	LastSeen   time.Time
	Status     AlertStatus
	StatusBy   string
	StatusAt   time.Time
	StatusNote string
}

// RecordAlert stores an alert, or counts a repeat of the open alert with
// the same fingerprint (updating its last_seen and evidence). created
// reports which; the returned alert is the stored row. at is when it
// happened (zero: now).
func (s *Store) RecordAlert(ctx context.Context, a Alert, at time.Time) (out *Alert, created bool, err error) {
	if a.Fingerprint == "" || a.Rule == "" {
		return nil, false, fmt.Errorf("record alert: %w", invalid("fingerprint and rule are required"))
	}
	if !a.Source.valid() {
		return nil, false, fmt.Errorf("record alert: %w", invalid("alert source %q (want sensor, audit, admission, scanner or posture)", a.Source))
	}
	if a.Severity < vulndb.SeverityUnknown || a.Severity > vulndb.SeverityCritical {
		return nil, false, fmt.Errorf("record alert: %w", invalid("severity %d", a.Severity))
	}
	if len(a.Evidence) == 0 {
		a.Evidence = json.RawMessage("{}")
	}
	if !json.Valid(a.Evidence) {
		return nil, false, fmt.Errorf("record alert: %w", invalid("evidence is not JSON"))
	}
	if at.IsZero() {
		at = s.now()
	}
	op := "record alert " + a.Rule
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := s.queryRow(ctx, tx, `UPDATE alerts SET count = count + 1, evidence = ?,
			last_seen = CASE WHEN ? > last_seen THEN ? ELSE last_seen END
			WHERE fingerprint = ? AND status IN ('new', 'acknowledged') RETURNING id`,
			string(a.Evidence), s.ts(at), s.ts(at), a.Fingerprint).Scan(&id)
		if err == sql.ErrNoRows {
			created = true
			err = s.queryRow(ctx, tx, `INSERT INTO alerts (fingerprint, source, rule, severity, title, cluster, namespace,
				workload, image_digest, evidence, count, first_seen, last_seen, status)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, 'new') RETURNING id`,
				a.Fingerprint, string(a.Source), a.Rule, int(a.Severity), a.Title, a.Cluster, a.Namespace, a.Workload,
				a.ImageDigest, string(a.Evidence), s.ts(at), s.ts(at)).Scan(&id)
		}
		if err != nil {
			return err
		}
		out, err = scanAlert(s.queryRow(ctx, tx, `SELECT `+alertCols+` FROM alerts WHERE id = ?`, id))
		return err
	})
	if err != nil {
		return nil, false, s.wrapErr(op, err)
	}
	return out, created, nil
}

// SetAlertStatus moves an alert through the triage workflow, recording who
// and when. Reopening (to new) is refused with ErrConflict while another
// open alert holds the same fingerprint.
func (s *Store) SetAlertStatus(ctx context.Context, id int64, status AlertStatus, by, note string) error {
	if !status.valid() {
		return fmt.Errorf("set alert status: %w", invalid("alert status %q (want new, acknowledged, resolved or false_positive)", status))
	}
	if by == "" {
		return fmt.Errorf("set alert status: %w", invalid("who changed the status is required"))
	}
	res, err := s.exec(ctx, s.w, `UPDATE alerts SET status = ?, status_by = ?, status_at = ?, status_note = ? WHERE id = ?`,
		string(status), by, s.ts(s.now()), note, id)
	if err != nil {
		return s.wrapErr(fmt.Sprintf("set alert %d status", id), err)
	}
	return affectedOne(res, fmt.Sprintf("set alert %d status", id))
}

const alertCols = `id, fingerprint, source, rule, severity, title, cluster, namespace, workload, image_digest, evidence, count,
	first_seen, last_seen, status, status_by, status_at, status_note`

func scanAlert(sc scanner) (*Alert, error) {
	var a Alert
	var src, status, ev string
	if err := sc.Scan(&a.ID, &a.Fingerprint, &src, &a.Rule, &a.Severity, &a.Title, &a.Cluster, &a.Namespace, &a.Workload,
		&a.ImageDigest, &ev, &a.Count, tcol(&a.FirstSeen), tcol(&a.LastSeen), &status, &a.StatusBy, tcol(&a.StatusAt),
		&a.StatusNote); err != nil {
		return nil, err
	}
	a.Source, a.Status, a.Evidence = AlertSource(src), AlertStatus(status), json.RawMessage(ev)
	return &a, nil
}

// GetAlert returns one alert.
func (s *Store) GetAlert(ctx context.Context, id int64) (*Alert, error) {
	a, err := scanAlert(s.queryRow(ctx, s.r, `SELECT `+alertCols+` FROM alerts WHERE id = ?`, id))
	if err != nil {
		return nil, s.wrapErr(fmt.Sprintf("get alert %d", id), err)
	}
	return a, nil
}

// AlertFilter narrows ListAlerts.
type AlertFilter struct {
	Status      AlertStatus
	Source      AlertSource
	Rule        string
	MinSeverity vulndb.Severity
	Cluster     string
	Namespace   string
	Since       time.Time // last seen at or after
}

var alertSorts = map[string]string{"last_seen": "last_seen", "first_seen": "first_seen", "severity": "severity",
	"count": "count", "rule": "rule", "id": "id"}

// ListAlerts returns a page of alerts. Sort keys: last_seen (default
// -last_seen), first_seen, severity, count, rule, id.
func (s *Store) ListAlerts(ctx context.Context, f AlertFilter, p Page) ([]Alert, int, error) {
	order, err := p.orderBy(alertSorts, "-last_seen", "id")
	if err != nil {
		return nil, 0, fmt.Errorf("list alerts: %w", err)
	}
	var w where
	if f.Status != "" {
		if !f.Status.valid() {
			return nil, 0, fmt.Errorf("list alerts: %w", invalid("alert status %q", f.Status))
		}
		w.add(`status = ?`, string(f.Status))
	}
	if f.Source != "" {
		if !f.Source.valid() {
			return nil, 0, fmt.Errorf("list alerts: %w", invalid("alert source %q", f.Source))
		}
		w.add(`source = ?`, string(f.Source))
	}
	if f.Rule != "" {
		w.add(`rule = ?`, f.Rule)
	}
	if f.MinSeverity < vulndb.SeverityUnknown || f.MinSeverity > vulndb.SeverityCritical {
		return nil, 0, fmt.Errorf("list alerts: %w", invalid("severity %d", f.MinSeverity))
	}
	if f.MinSeverity > vulndb.SeverityUnknown {
		w.add(`severity >= ?`, int(f.MinSeverity))
	}
	if f.Cluster != "" {
		w.add(`cluster = ?`, f.Cluster)
	}
	if f.Namespace != "" {
		w.add(`namespace = ?`, f.Namespace)
	}
	if !f.Since.IsZero() {
		w.add(`last_seen >= ?`, s.ts(f.Since))
	}
	var out []Alert
	total, err := s.list(ctx, alertCols, "alerts", &w, order, p, func(sc scanner) error {
		a, err := scanAlert(sc)
		if err == nil {
			out = append(out, *a)
		}
		return err
	})
	if err != nil {
		return nil, 0, s.wrapErr("list alerts", err)
	}
	return out, total, nil
}
