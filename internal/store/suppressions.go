package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// Suppression silences alerts that match a rule within a scope, for a
// reason, until it expires. Each field is a glob ("*" any run of
// characters, "?" one; case-insensitive) and an empty field matches
// anything, so {Rule: "Terminal shell*", Namespace: "ci-*"} silences that
// rule in every CI namespace. Suppressions apply at ingest: a matching
// occurrence is counted (Hits) and kept, hidden, instead of showing up as
// a new alert. Open alerts stored before the suppression are suppressed
// too when it is created with apply-to-existing (or applied later with
// ApplySuppression): they get its id, who and when, and leave the default
// list (Applied counts them). Expiring or deleting a suppression never
// reopens anything by itself: the alerts it holds stay suppressed until
// someone releases them (ReleaseSuppression), so an expiry cannot flood
// the list unannounced.
type Suppression struct {
	ID        int64
	Rule      string
	Cluster   string
	Namespace string
	Workload  string
	Image     string
	Reason    string
	CreatedBy string
	CreatedAt time.Time
	// ExpiresAt ends the suppression (zero: never). Expired suppressions
	// stop matching but stay listed, with their hits, for the record.
	ExpiresAt time.Time
	Hits      int64
	LastHit   time.Time
	// Applied counts the alerts stored before the suppression that it
	// was applied to.
	Applied int64
}

// Expired reports whether the suppression no longer applies at now.
func (sp *Suppression) Expired(now time.Time) bool {
	return !sp.ExpiresAt.IsZero() && !sp.ExpiresAt.After(now)
}

// Matches reports whether the suppression's scope covers an alert.
func (sp *Suppression) Matches(a *alerts.Alert) bool {
	return globMatch(sp.Rule, a.Rule) && globMatch(sp.Cluster, a.Cluster) && globMatch(sp.Namespace, a.Namespace) &&
		globMatch(sp.Workload, a.Workload) && (globMatch(sp.Image, a.Image) || sp.Image != "" && globMatch(sp.Image, a.ImageDigest))
}

func (sp *Suppression) validate() error {
	if sp.Rule == "" {
		return invalid("suppression rule is required (use * for every rule)")
	}
	if sp.Rule == "*" && sp.Cluster == "" && sp.Namespace == "" && sp.Workload == "" && sp.Image == "" {
		return invalid("a suppression of every rule needs a scope (cluster, namespace, workload or image)")
	}
	if strings.TrimSpace(sp.Reason) == "" {
		return invalid("suppression reason is required")
	}
	if sp.CreatedBy == "" {
		return invalid("who created the suppression is required")
	}
	for _, f := range []struct{ name, v string }{{"rule", sp.Rule}, {"cluster", sp.Cluster}, {"namespace", sp.Namespace},
		{"workload", sp.Workload}, {"image", sp.Image}} {
		if len(f.v) > 512 {
			return invalid("suppression %s longer than 512 bytes", f.name)
		}
	}
	if len(sp.Reason) > 4096 {
		return invalid("suppression reason longer than 4096 bytes")
	}
	return nil
}

// globMatch matches s against pattern: "*" is any run of characters (also
// "/", which workloads and images contain), "?" is one character, the rest
// is literal, compared case-insensitively. An empty pattern matches
// anything. Iterative with backtracking to the last star, so it is linear
// in practice and never recursive (hostile patterns cannot blow the stack).
func globMatch(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	p, t := []rune(strings.ToLower(pattern)), []rune(strings.ToLower(s))
	pi, ti, star, mark := 0, 0, -1, 0
	for ti < len(t) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == t[ti]):
			pi++
			ti++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ti
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			ti = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// activeSuppressions reads the suppressions that apply at now, inside the
// ingest transaction (one small query per batch: a cache would let a
// suppression created on another replica miss alerts).
func (s *Store) activeSuppressions(ctx context.Context, tx *sql.Tx, now time.Time) ([]Suppression, error) {
	rows, err := s.query(ctx, tx, `SELECT `+suppressionCols+` FROM suppressions WHERE expires_at IS NULL OR expires_at > ? ORDER BY id`,
		s.ts(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Suppression
	for rows.Next() {
		sp, err := scanSuppression(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *sp)
	}
	return out, rows.Err()
}

// matchSuppression returns the oldest suppression covering a, or nil.
func matchSuppression(sups []Suppression, a *alerts.Alert) *Suppression {
	for i := range sups {
		if sups[i].Matches(a) {
			return &sups[i]
		}
	}
	return nil
}

const suppressionCols = `id, rule, cluster, namespace, workload, image, reason, created_by, created_at, expires_at, hits, last_hit, applied`

func scanSuppression(sc scanner) (*Suppression, error) {
	var sp Suppression
	if err := sc.Scan(&sp.ID, &sp.Rule, &sp.Cluster, &sp.Namespace, &sp.Workload, &sp.Image, &sp.Reason, &sp.CreatedBy,
		tcol(&sp.CreatedAt), tcol(&sp.ExpiresAt), &sp.Hits, tcol(&sp.LastHit), &sp.Applied); err != nil {
		return nil, err
	}
	return &sp, nil
}

// CreateSuppression stores a suppression; it applies to alerts ingested
// from now on. An expiry in the past is refused.
func (s *Store) CreateSuppression(ctx context.Context, sp Suppression) (*Suppression, error) {
	return s.CreateSuppressionApplied(ctx, sp, false)
}

// CreateSuppressionApplied stores a suppression and, when applyToExisting,
// suppresses the open alerts it matches in the same transaction (recorded
// as applied by sp.CreatedBy; the returned Applied counts them).
func (s *Store) CreateSuppressionApplied(ctx context.Context, sp Suppression, applyToExisting bool) (*Suppression, error) {
	if err := sp.validate(); err != nil {
		return nil, fmt.Errorf("create suppression: %w", err)
	}
	now := s.now()
	if !sp.ExpiresAt.IsZero() && !sp.ExpiresAt.After(now) {
		return nil, fmt.Errorf("create suppression: %w", invalid("expiry %s is in the past", sp.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	var id int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := s.queryRow(ctx, tx, `INSERT INTO suppressions (rule, cluster, namespace, workload, image, reason, created_by,
			created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			sp.Rule, sp.Cluster, sp.Namespace, sp.Workload, sp.Image, sp.Reason, sp.CreatedBy, s.ts(now), s.ts(sp.ExpiresAt)).Scan(&id)
		if err != nil || !applyToExisting {
			return err
		}
		sp.ID = id
		_, err = s.applySuppression(ctx, tx, &sp, sp.CreatedBy, now)
		return err
	})
	if err != nil {
		return nil, s.wrapErr("create suppression", err)
	}
	return s.GetSuppression(ctx, id)
}

// ApplySuppression suppresses the open, unsuppressed alerts an active
// suppression matches (alerts stored before it), recording by and now on
// each, and returns how many. An alert whose group already has an open
// alert held by this suppression is left visible (one open alert per
// fingerprint and suppression) and not counted.
func (s *Store) ApplySuppression(ctx context.Context, id int64, by string) (int, error) {
	op := fmt.Sprintf("apply suppression %d", id)
	if by == "" {
		return 0, fmt.Errorf("%s: %w", op, invalid("who applied the suppression is required"))
	}
	var n int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		sp, err := scanSuppression(s.queryRow(ctx, tx, `SELECT `+suppressionCols+` FROM suppressions WHERE id = ?`, id))
		if err != nil {
			return err
		}
		now := s.now()
		if sp.Expired(now) {
			return invalid("the suppression expired at %s", sp.ExpiresAt.UTC().Format(time.RFC3339))
		}
		n, err = s.applySuppression(ctx, tx, sp, by, now)
		return err
	})
	if err != nil {
		return 0, s.wrapErr(op, err)
	}
	return n, nil
}

func (s *Store) applySuppression(ctx context.Context, tx *sql.Tx, sp *Suppression, by string, now time.Time) (int, error) {
	w := suppressionWhere(sp)
	w.add(`suppression_id = 0`)
	w.add(`status IN ('new', 'acknowledged')`)
	w.add(`NOT EXISTS (SELECT 1 FROM alerts o WHERE o.fingerprint = alerts.fingerprint AND o.suppression_id = ?
		AND o.status IN ('new', 'acknowledged'))`, sp.ID)
	args := append([]any{sp.ID, by, s.ts(now)}, w.args...)
	res, err := s.exec(ctx, tx, `UPDATE alerts SET suppression_id = ?, suppressed_by = ?, suppressed_at = ?`+w.sql(), args...)
	if err != nil {
		return 0, fmt.Errorf("suppress matching alerts: %w", err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		if _, err := s.exec(ctx, tx, `UPDATE suppressions SET applied = applied + ? WHERE id = ?`, n, sp.ID); err != nil {
			return 0, fmt.Errorf("count applied: %w", err)
		}
	}
	return int(n), nil
}

// SuppressedOpenCount counts the open alerts a suppression holds hidden —
// what still needs a decision after it expires or is deleted.
func (s *Store) SuppressedOpenCount(ctx context.Context, id int64) (int, error) {
	var n int
	err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM alerts WHERE suppression_id = ? AND status IN ('new', 'acknowledged')`, id).Scan(&n)
	if err != nil {
		return 0, s.wrapErr(fmt.Sprintf("count alerts of suppression %d", id), err)
	}
	return n, nil
}

// ReleaseSuppression makes the open alerts a suppression holds visible
// again (suppression id cleared) — the explicit decision an expiry or
// deletion never takes by itself (the caller audits who released). An
// alert whose
// fingerprint meanwhile has a visible open alert stays suppressed (kept):
// the visible one already carries the newer occurrences. The suppression
// itself may be active, expired or deleted.
func (s *Store) ReleaseSuppression(ctx context.Context, id int64, by string) (released, kept int, err error) {
	op := fmt.Sprintf("release alerts of suppression %d", id)
	if by == "" || id <= 0 {
		return 0, 0, fmt.Errorf("%s: %w", op, invalid("a suppression id and who releases are required"))
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `UPDATE alerts SET suppression_id = 0, suppressed_by = '', suppressed_at = NULL
			WHERE suppression_id = ? AND status IN ('new', 'acknowledged') AND NOT EXISTS (SELECT 1 FROM alerts o
			WHERE o.fingerprint = alerts.fingerprint AND o.suppression_id = 0 AND o.status IN ('new', 'acknowledged'))`, id)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		released = int(n)
		return s.queryRow(ctx, tx, `SELECT COUNT(*) FROM alerts WHERE suppression_id = ? AND status IN ('new', 'acknowledged')`, id).Scan(&kept)
	})
	if err != nil {
		return 0, 0, s.wrapErr(op, err)
	}
	return released, kept, nil
}

// GetSuppression returns one suppression.
func (s *Store) GetSuppression(ctx context.Context, id int64) (*Suppression, error) {
	sp, err := scanSuppression(s.queryRow(ctx, s.w, `SELECT `+suppressionCols+` FROM suppressions WHERE id = ?`, id))
	if err != nil {
		return nil, s.wrapErr(fmt.Sprintf("get suppression %d", id), err)
	}
	return sp, nil
}

// ListSuppressions returns the suppressions, newest first; expired ones
// only when includeExpired.
func (s *Store) ListSuppressions(ctx context.Context, includeExpired bool) ([]Suppression, error) {
	q := `SELECT ` + suppressionCols + ` FROM suppressions`
	var args []any
	if !includeExpired {
		q += ` WHERE expires_at IS NULL OR expires_at > ?`
		args = append(args, s.ts(s.now()))
	}
	rows, err := s.query(ctx, s.r, q+` ORDER BY id DESC`, args...)
	if err != nil {
		return nil, s.wrapErr("list suppressions", err)
	}
	defer rows.Close()
	out := []Suppression{}
	for rows.Next() {
		sp, err := scanSuppression(rows)
		if err != nil {
			return nil, s.wrapErr("list suppressions", err)
		}
		out = append(out, *sp)
	}
	return out, s.wrapErr("list suppressions", rows.Err())
}

// ExpireSuppression ends a suppression now (it stays listed with its
// hits); DeleteSuppression removes it. Alerts it matched keep their
// suppression id either way.
func (s *Store) ExpireSuppression(ctx context.Context, id int64) error {
	res, err := s.exec(ctx, s.w, `UPDATE suppressions SET expires_at = ? WHERE id = ?`, s.ts(s.now()), id)
	if err != nil {
		return s.wrapErr(fmt.Sprintf("expire suppression %d", id), err)
	}
	return affectedOne(res, fmt.Sprintf("expire suppression %d", id))
}

// DeleteSuppression removes a suppression.
func (s *Store) DeleteSuppression(ctx context.Context, id int64) error {
	res, err := s.exec(ctx, s.w, `DELETE FROM suppressions WHERE id = ?`, id)
	if err != nil {
		return s.wrapErr(fmt.Sprintf("delete suppression %d", id), err)
	}
	return affectedOne(res, fmt.Sprintf("delete suppression %d", id))
}

// MatchingAlerts lists the unsuppressed alerts a suppression's scope
// covers — the retroactive view: what it would have silenced had it
// existed, e.g. to preview one before creating it (sp need not be stored)
// or to resolve those alerts together. The globs become LIKE patterns,
// case-insensitive as at ingest.
func (s *Store) MatchingAlerts(ctx context.Context, sp Suppression, status AlertStatus, p Page) ([]Alert, int, error) {
	order, err := p.orderBy(alertSorts, "-last_seen", "id")
	if err != nil {
		return nil, 0, fmt.Errorf("matching alerts: %w", err)
	}
	w := suppressionWhere(&sp)
	w.add(`suppression_id = 0`)
	if status != "" {
		if !status.Valid() {
			return nil, 0, fmt.Errorf("matching alerts: %w", invalid("alert status %q", status))
		}
		w.add(`status = ?`, string(status))
	}
	var out []Alert
	total, err := s.list(ctx, alertCols, "alerts", w, order, p, func(sc scanner) error {
		a, err := scanAlert(sc)
		if err == nil {
			out = append(out, *a)
		}
		return err
	})
	if err != nil {
		return nil, 0, s.wrapErr("matching alerts", err)
	}
	return out, total, nil
}

// suppressionWhere is a suppression's scope as SQL conditions: the globs
// become lower-case LIKE patterns, case-insensitive as at ingest.
func suppressionWhere(sp *Suppression) *where {
	var w where
	lower := `LOWER(%s) LIKE ? ESCAPE '\'`
	for _, f := range []struct{ col, glob string }{{"rule", sp.Rule}, {"cluster", sp.Cluster}, {"namespace", sp.Namespace},
		{"workload", sp.Workload}} {
		if f.glob != "" && f.glob != "*" {
			w.add(fmt.Sprintf(lower, f.col), globToLike(f.glob))
		}
	}
	if sp.Image != "" && sp.Image != "*" {
		w.add(`(`+fmt.Sprintf(lower, "image")+` OR `+fmt.Sprintf(lower, "image_digest")+`)`, globToLike(sp.Image), globToLike(sp.Image))
	}
	return &w
}

// globToLike turns a suppression glob into a lower-case LIKE pattern
// (ESCAPE '\').
func globToLike(glob string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(glob) {
		switch r {
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
