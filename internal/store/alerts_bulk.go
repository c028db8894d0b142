package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// alertWhere turns a list filter into SQL conditions. ListAlerts and the
// bulk status change share it, so "change every alert this list shows"
// selects exactly the rows the list showed.
func (s *Store) alertWhere(f AlertFilter) (*where, error) {
	var w where
	if f.Status != "" {
		if !f.Status.Valid() {
			return nil, invalid("alert status %q", f.Status)
		}
		w.add(`status = ?`, string(f.Status))
	}
	if f.Source != "" {
		if !f.Source.Valid() {
			return nil, invalid("alert source %q", f.Source)
		}
		w.add(`source = ?`, string(f.Source))
	}
	if f.Rule != "" {
		w.add(`rule = ?`, f.Rule)
	}
	if !f.MinSeverity.Valid() {
		return nil, invalid("severity %d", f.MinSeverity)
	}
	if f.MinSeverity > alerts.SeverityInfo {
		w.add(`severity >= ?`, int(f.MinSeverity))
	}
	for _, c := range []struct{ col, v string }{{"cluster", f.Cluster}, {"namespace", f.Namespace}, {"workload", f.Workload}} {
		if c.v != "" {
			w.add(c.col+` = ?`, c.v)
		}
	}
	if !f.Since.IsZero() {
		w.add(`last_seen >= ?`, s.ts(f.Since))
	}
	if !f.Until.IsZero() {
		w.add(`last_seen < ?`, s.ts(f.Until))
	}
	if f.Q != "" {
		pat := "%" + likeEscape(f.Q) + "%"
		l := " " + s.d.like + ` ? ESCAPE '\'`
		w.add(`(title`+l+` OR rule`+l+` OR workload`+l+` OR pod`+l+` OR image`+l+`)`, pat, pat, pat, pat, pat)
	}
	switch {
	case f.SuppressionID != 0:
		w.add(`suppression_id = ?`, f.SuppressionID)
	case f.Suppressed == HideSuppressed:
		w.add(`suppression_id = 0`)
	case f.Suppressed == OnlySuppressed:
		w.add(`suppression_id <> 0`)
	}
	if f.ExcludeID != 0 {
		w.add(`id <> ?`, f.ExcludeID)
	}
	return &w, nil
}

// MaxBulkAlerts bounds one bulk status change: a filter selecting more is
// refused (narrow it, or page through by time) rather than locking a large
// part of the alerts table in one transaction.
const MaxBulkAlerts = 5000

// AlertSelection picks the alerts of a bulk change: IDs, or every alert a
// list filter selects (exactly one of them).
type AlertSelection struct {
	IDs    []int64
	Filter *AlertFilter
}

// BulkStatusResult says what a bulk status change did. Matched alerts
// already in the status, and reopened alerts whose fingerprint already has
// an open alert (one open alert per fingerprint), are Skipped; Missing are
// requested ids that do not exist.
type BulkStatusResult struct {
	Matched int     `json:"matched"`
	Updated int     `json:"updated"`
	Skipped int     `json:"skipped"`
	Missing []int64 `json:"missing,omitempty"`
}

type bulkRow struct {
	id          int64
	fingerprint string
	supID       int64
	status      AlertStatus
}

// SetAlertsStatus moves many alerts through the triage workflow at once, in
// one transaction, recording who and when on each like SetAlertStatus.
// More than limit matching alerts (at most MaxBulkAlerts; 0 means that)
// is refused with ErrInvalid saying how many matched.
func (s *Store) SetAlertsStatus(ctx context.Context, sel AlertSelection, status AlertStatus, by, note string, limit int) (*BulkStatusResult, error) {
	const op = "set alerts status"
	if !status.Valid() {
		return nil, fmt.Errorf("%s: %w", op, invalid("alert status %q (want new, acknowledged, resolved or false_positive)", status))
	}
	if by == "" {
		return nil, fmt.Errorf("%s: %w", op, invalid("who changed the status is required"))
	}
	if len(note) > 4096 {
		return nil, fmt.Errorf("%s: %w", op, invalid("note longer than 4096 bytes"))
	}
	if limit <= 0 || limit > MaxBulkAlerts {
		limit = MaxBulkAlerts
	}
	if (len(sel.IDs) == 0) == (sel.Filter == nil) {
		return nil, fmt.Errorf("%s: %w", op, invalid("give either alert ids or a filter"))
	}
	var w *where
	var wanted []int64
	if sel.Filter != nil {
		var err error
		if w, err = s.alertWhere(*sel.Filter); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	} else {
		wanted = slices.Clone(sel.IDs)
		slices.Sort(wanted)
		wanted = slices.Compact(wanted)
		if len(wanted) > limit {
			return nil, fmt.Errorf("%s: %w", op, invalid("%d alert ids (at most %d per request)", len(wanted), limit))
		}
		w = &where{}
		w.add(`id IN (`+placeholders(len(wanted))+`)`, anySlice(wanted)...)
	}
	res := &BulkStatusResult{}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		*res = BulkStatusResult{}
		rows, err := s.query(ctx, tx, `SELECT id, fingerprint, suppression_id, status FROM alerts`+w.sql()+
			fmt.Sprintf(` ORDER BY id LIMIT %d`, limit+1), w.args...)
		if err != nil {
			return err
		}
		var matched []bulkRow
		for rows.Next() {
			var r bulkRow
			var st string
			if err := rows.Scan(&r.id, &r.fingerprint, &r.supID, &st); err != nil {
				rows.Close()
				return err
			}
			r.status = AlertStatus(st)
			matched = append(matched, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(matched) > limit {
			var total int
			if err := s.queryRow(ctx, tx, `SELECT COUNT(*) FROM alerts`+w.sql(), w.args...).Scan(&total); err != nil {
				return err
			}
			return invalid("the filter selects %d alerts, more than %d in one change: narrow it (for example by time or severity)", total, limit)
		}
		res.Matched = len(matched)
		if wanted != nil {
			found := map[int64]bool{}
			for _, r := range matched {
				found[r.id] = true
			}
			for _, id := range wanted {
				if !found[id] {
					res.Missing = append(res.Missing, id)
				}
			}
		}
		ids, guard := bulkTargets(matched, status)
		res.Skipped = len(matched) - len(ids)
		now := s.ts(s.now())
		for chunk := range slices.Chunk(ids, 500) {
			q := `UPDATE alerts SET status = ?, status_by = ?, status_at = ?, status_note = ? WHERE id IN (` + placeholders(len(chunk)) + `)`
			if guard {
				// One open alert per fingerprint (and suppression): a
				// reopened alert whose group already has an open one stays
				// closed (counted as skipped).
				q += ` AND (status IN ('new', 'acknowledged') OR NOT EXISTS (SELECT 1 FROM alerts o WHERE o.fingerprint = alerts.fingerprint
					AND o.suppression_id = alerts.suppression_id AND o.status IN ('new', 'acknowledged') AND o.id <> alerts.id))`
			}
			args := append([]any{string(status), by, now, note}, anySlice(chunk)...)
			r, err := s.exec(ctx, tx, q, args...)
			if err != nil {
				return err
			}
			n, _ := r.RowsAffected()
			res.Updated += int(n)
			res.Skipped += len(chunk) - int(n)
		}
		return nil
	})
	if err != nil {
		return nil, s.wrapErr(op, err)
	}
	return res, nil
}

// bulkTargets picks the rows a bulk change updates: not those already in
// the status, and — when reopening (new or acknowledged) closed alerts —
// at most one per fingerprint and suppression, the newest, since only one
// alert of a group may be open. guard asks the update to also skip closed
// rows whose group is open already.
func bulkTargets(rows []bulkRow, status AlertStatus) (ids []int64, guard bool) {
	open := func(s AlertStatus) bool { return s == AlertNew || s == AlertAcknowledged }
	type group struct {
		fp  string
		sup int64
	}
	newest := map[group]int64{}
	for _, r := range rows {
		if r.status == status {
			continue
		}
		if open(status) && !open(r.status) {
			guard = true
			g := group{r.fingerprint, r.supID}
			newest[g] = max(newest[g], r.id)
			continue
		}
		ids = append(ids, r.id)
	}
	for _, id := range newest {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, cmp.Compare)
	return ids, guard
}

func anySlice[T any](v []T) []any {
	out := make([]any, len(v))
	for i := range v {
		out[i] = v[i]
	}
	return out
}

// DescribeAlertFilter renders a filter for an audit entry ("status=new
// min_severity=high"), naming only the fields set.
func DescribeAlertFilter(f AlertFilter) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("status", string(f.Status))
	add("source", string(f.Source))
	add("rule", f.Rule)
	if f.MinSeverity > 0 {
		add("min_severity", f.MinSeverity.String())
	}
	add("cluster", f.Cluster)
	add("namespace", f.Namespace)
	add("workload", f.Workload)
	if !f.Since.IsZero() {
		add("since", f.Since.UTC().Format("2006-01-02T15:04:05Z"))
	}
	if !f.Until.IsZero() {
		add("until", f.Until.UTC().Format("2006-01-02T15:04:05Z"))
	}
	add("q", f.Q)
	switch {
	case f.SuppressionID != 0:
		add("suppression", fmt.Sprint(f.SuppressionID))
	case f.Suppressed == OnlySuppressed:
		add("suppressed", "only")
	case f.Suppressed == WithSuppressed:
		add("suppressed", "with")
	}
	if len(parts) == 0 {
		return "(every unsuppressed alert)"
	}
	return strings.Join(parts, " ")
}
