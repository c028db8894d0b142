package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// AlertSource is the role that raised an alert (the alerts package's type,
// so the wire shape and the stored value cannot drift apart).
type AlertSource = alerts.Source

const (
	AlertSensor    = alerts.SourceSensor    // runtime rules on a node
	AlertAudit     = alerts.SourceAudit     // Kubernetes audit-log rules
	AlertAdmission = alerts.SourceAdmission // a denied or warned admission
	AlertScanner   = alerts.SourceScanner   // e.g. a new KEV finding in a running image
	AlertPosture   = alerts.SourcePosture   // a failed benchmark check
)

// AlertStatus is the triage workflow: new → acknowledged → resolved or
// false_positive (either of the last two may be reopened to new).
type AlertStatus string

const (
	AlertNew           AlertStatus = "new"
	AlertAcknowledged  AlertStatus = "acknowledged"
	AlertResolved      AlertStatus = "resolved"
	AlertFalsePositive AlertStatus = "false_positive"
)

// AlertStatuses lists the workflow states in order.
var AlertStatuses = []AlertStatus{AlertNew, AlertAcknowledged, AlertResolved, AlertFalsePositive}

// Valid reports whether s is a workflow state.
func (s AlertStatus) Valid() bool {
	switch s {
	case AlertNew, AlertAcknowledged, AlertResolved, AlertFalsePositive:
		return true
	}
	return false
}

// AlertIn is one alert offered to IngestAlerts: the ingest contract's
// shape, shared with senders through package alerts.
type AlertIn = alerts.Alert

// Alert is a detection as stored: occurrences with the same fingerprint
// are grouped into one row while it is open (new or acknowledged), with a
// count; the descriptive fields are those of the latest occurrence.
type Alert struct {
	ID int64
	// Fingerprint identifies "the same alert" (rule + workload + what it
	// matched); repeats while open increment Count instead of adding rows.
	Fingerprint    string
	Source         AlertSource
	Rule           string
	RuleVersion    string
	Severity       alerts.Severity // the highest of the grouped occurrences
	Title          string
	MitreTactic    string
	MitreTechnique string
	Cluster        string
	Namespace      string
	Pod            string
	Container      string
	ContainerID    string
	Image          string
	ImageDigest    string
	Node           string
	Workload       string
	// Evidence is the raw event of the latest occurrence, as JSON.
	Evidence json.RawMessage
	// SourceEventID is the sender's id of the latest occurrence.
	SourceEventID string
	// SuppressionID is the suppression that matched these occurrences at
	// ingest (0: not suppressed). Suppressed rows are hidden by default.
	SuppressionID int64
	Count         int64
	FirstSeen     time.Time
	LastSeen      time.Time
	Status        AlertStatus
	StatusBy      string
	StatusAt      time.Time
	StatusNote    string

	// SuppressedBy and SuppressedAt say who applied the suppression to
	// this alert after it was stored, and when (empty when it matched at
	// ingest: see ApplySuppression).
	SuppressedBy string
	SuppressedAt time.Time
}

// RecordAlert stores an alert, or counts a repeat of the open alert with
// the same fingerprint (updating its last_seen and evidence). created
// reports which; the returned alert is the stored row. at is when it
// happened (zero: now). It is the one-at-a-time path for central's own
// detections; senders' batches go through IngestAlerts.
func (s *Store) RecordAlert(ctx context.Context, a Alert, at time.Time) (out *Alert, created bool, err error) {
	if a.Fingerprint == "" || a.Rule == "" {
		return nil, false, fmt.Errorf("record alert: %w", invalid("fingerprint and rule are required"))
	}
	if !a.Source.Valid() {
		return nil, false, fmt.Errorf("record alert: %w", invalid("alert source %q (want sensor, audit, admission, scanner or posture)", a.Source))
	}
	if !a.Severity.Valid() {
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
			WHERE fingerprint = ? AND suppression_id = 0 AND status IN ('new', 'acknowledged') RETURNING id`,
			string(a.Evidence), s.ts(at), s.ts(at), a.Fingerprint).Scan(&id)
		if err == sql.ErrNoRows {
			created = true
			err = s.queryRow(ctx, tx, `INSERT INTO alerts (fingerprint, source, rule, rule_version, severity, title,
				mitre_tactic, mitre_technique, cluster, namespace, pod, container, container_id, image, image_digest, node,
				workload, evidence, source_event_id, count, first_seen, last_seen, status)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, 'new') RETURNING id`,
				a.Fingerprint, string(a.Source), a.Rule, a.RuleVersion, int(a.Severity), a.Title, a.MitreTactic,
				a.MitreTechnique, a.Cluster, a.Namespace, a.Pod, a.Container, a.ContainerID, a.Image, a.ImageDigest,
				a.Node, a.Workload, string(a.Evidence), a.SourceEventID, s.ts(at), s.ts(at)).Scan(&id)
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

// IngestReport is what one IngestAlertBatch did.
type IngestReport struct {
	// Accepted alerts were new: grouped into an alert row (new or
	// existing) or counted by a suppression. Suppressed is included in it.
	Accepted   int
	Duplicates int // ids accepted before (or twice in the batch): nothing stored
	Suppressed int // accepted but matched an active suppression
	// BySource splits the three counts by alert source (for metrics).
	BySource map[AlertSource]IngestCounts
}

// IngestCounts are one source's share of an IngestReport.
type IngestCounts struct{ Accepted, Duplicates, Suppressed int }

// IngestAlerts stores a batch of alerts from a sender, idempotently by
// the sender's id, and reports how many were accepted and how many were
// duplicates of alerts accepted before. See IngestAlertBatch.
func (s *Store) IngestAlerts(ctx context.Context, in []AlertIn) (accepted, dups int, err error) {
	r, err := s.IngestAlertBatch(ctx, in)
	if err != nil {
		return 0, 0, err
	}
	return r.Accepted, r.Duplicates, nil
}

// Rows per multi-row statement: big enough that per-statement overhead
// vanishes, small enough to stay well under both dialects' placeholder
// limits (SQLite 32766, PostgreSQL 65535) and to parse quickly.
// Both are powers of two (see chunkSizes).
const (
	ingestIDRows    = 512
	ingestAlertRows = 256
)

func ingestIDsQuery(rows int) string {
	return `INSERT INTO alert_ingests (id, received_at) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?), ", rows), ", ") + ` ON CONFLICT (id) DO NOTHING RETURNING id`
}

const alertRowCols = 23

func upsertAlertsQuery(rows int) string {
	row := "(" + placeholders(alertRowCols) + ", 'new'), "
	return alertInsertCols + ` VALUES ` + strings.TrimSuffix(strings.Repeat(row, rows), ", ") + alertUpsert
}

// prepareIngest prepares the SQLite ingest statements of every chunk size
// once per Store, before the first ingest transaction (preparing needs
// the writer connection the transaction holds).
func (s *Store) prepareIngest(ctx context.Context) error {
	if s.d != sqliteDialect || s.cached(ingestIDsQuery(1)) != nil {
		return nil
	}
	for size := 1; size <= ingestAlertRows; size *= 2 {
		if _, err := s.prepared(ctx, upsertAlertsQuery(size)); err != nil {
			return err
		}
	}
	for size := 1; size <= exportLogRows; size *= 2 {
		if _, err := s.prepared(ctx, exportLogInsertQuery(size)); err != nil {
			return err
		}
	}
	// Prepared last: its presence means all are.
	for size := ingestIDRows; size >= 1; size /= 2 {
		if _, err := s.prepared(ctx, ingestIDsQuery(size)); err != nil {
			return err
		}
	}
	return nil
}

// ingestGroup is the occurrences of one batch that land in one alert row.
type ingestGroup struct {
	key           groupKey
	latest        *AlertIn // descriptive fields come from the newest occurrence
	first, last   time.Time
	count         int64
	maxSeverity   alerts.Severity
	suppressionID int64
}

type groupKey struct {
	fingerprint   string
	suppressionID int64
}

type timelineKey struct {
	bucket   int64 // Unix minute
	source   AlertSource
	severity alerts.Severity
}

// IngestAlertBatch stores a batch of alerts in one transaction, so a
// batch is either wholly accepted or not at all and an acknowledged batch
// survives a crash. Each alert is validated (alerts.Alert.Validate); an
// invalid one refuses the whole batch with ErrInvalid, naming it.
//
// Idempotency: the sender's id of every accepted alert is recorded; an id
// seen before (a batch replayed after a timeout) is a duplicate and
// changes nothing. Grouping: occurrences with the same fingerprint (the
// sender's, or alerts.Fingerprint) are counted into the open alert row
// with that fingerprint, or open a new one. Suppressions active at ingest
// are applied: a matching occurrence is counted on the suppression and
// grouped into a hidden, suppressed row instead of showing up as new.
// Every occurrence is counted in the timeline, and accepted, unsuppressed
// alerts are queued for the configured exports in the same transaction.
//
// The work is a handful of multi-row statements per batch whatever its
// size; rows are written in a fixed order (sorted keys) so that concurrent
// batches on PostgreSQL cannot deadlock on the same alert rows.
func (s *Store) IngestAlertBatch(ctx context.Context, in []AlertIn) (*IngestReport, error) {
	return s.IngestAlertBatchFrom(ctx, in, IngestOptions{})
}

// IngestOptions are what central knows about a batch's sender.
type IngestOptions struct {
	// ClockSkew is how far central's clock is ahead of the sender's
	// (alerts.ClockSkew): the occurrences are counted in the timeline at
	// their time plus it. The alerts keep the sender's times.
	ClockSkew time.Duration
}

// IngestAlertBatchFrom is IngestAlertBatch with what is known of the
// sender.
func (s *Store) IngestAlertBatchFrom(ctx context.Context, in []AlertIn, opt IngestOptions) (*IngestReport, error) {
	op := fmt.Sprintf("ingest %d alerts", len(in))
	for i := range in {
		if err := in[i].Validate(); err != nil {
			return nil, fmt.Errorf("%s: alert %d: %w", op, i, fmt.Errorf("%w: %w", ErrInvalid, err))
		}
	}
	rep := &IngestReport{BySource: map[AlertSource]IngestCounts{}}
	if len(in) == 0 {
		return rep, nil
	}
	if err := s.prepareIngest(ctx); err != nil {
		return nil, s.wrapErr(op+": prepare", err)
	}
	err := s.ingestTx(ctx, func(tx *sql.Tx, conn *sql.Conn) error {
		*rep = IngestReport{BySource: map[AlertSource]IngestCounts{}}
		now := s.now()
		fresh, err := s.recordIngestIDs(ctx, tx, conn, in, now)
		if err != nil {
			return fmt.Errorf("record alert ids: %w", err)
		}
		sups, err := s.activeSuppressions(ctx, tx, now)
		if err != nil {
			return fmt.Errorf("read suppressions: %w", err)
		}
		groups := make(map[groupKey]*ingestGroup, len(fresh))
		// The groups live in one slice (at most one per alert, so it never
		// grows and the pointers stay valid): one allocation, not one per
		// group.
		slab := make([]ingestGroup, 0, len(fresh))
		timeline := map[timelineKey]*[2]int64{}
		hits := map[int64]time.Time{}
		var unsuppressed []*AlertIn
		for i := range in {
			a := &in[i]
			c := rep.BySource[a.Source]
			if _, ok := fresh[a.ID]; !ok {
				rep.Duplicates++
				c.Duplicates++
				rep.BySource[a.Source] = c
				continue
			}
			delete(fresh, a.ID) // a second copy within the batch is a duplicate
			rep.Accepted++
			c.Accepted++
			var supID int64
			if sp := matchSuppression(sups, a); sp != nil {
				supID = sp.ID
				rep.Suppressed++
				c.Suppressed++
				if a.Time.After(hits[supID]) {
					hits[supID] = a.Time
				}
			}
			rep.BySource[a.Source] = c
			k := groupKey{a.EffectiveFingerprint(), supID}
			g := groups[k]
			if g == nil {
				slab = append(slab, ingestGroup{key: k, latest: a, first: a.Time, last: a.Time, maxSeverity: a.Severity, suppressionID: supID})
				g = &slab[len(slab)-1]
				groups[k] = g
			} else {
				if a.Time.Before(g.first) {
					g.first = a.Time
				}
				if !a.Time.Before(g.last) {
					g.last, g.latest = a.Time, a
				}
				g.maxSeverity = max(g.maxSeverity, a.Severity)
			}
			g.count++
			tk := timelineKey{timelineTime(a.Time, now, opt.ClockSkew).Unix() / 60, a.Source, a.Severity}
			tc := timeline[tk]
			if tc == nil {
				tc = new([2]int64)
				timeline[tk] = tc
			}
			if supID != 0 {
				tc[1]++
			} else {
				tc[0]++
				unsuppressed = append(unsuppressed, a)
			}
		}
		// Rows other batches also write (open alert groups, suppression
		// counters, this minute's timeline) are written last: on PostgreSQL
		// their row locks are held to commit, so concurrent senders queue
		// behind each other only for the end of the transaction.
		if err := s.queueAlertExports(ctx, tx, conn, unsuppressed); err != nil {
			return err
		}
		if err := s.upsertAlertGroups(ctx, tx, conn, groups); err != nil {
			return fmt.Errorf("store alerts: %w", err)
		}
		for _, id := range slices.Sorted(mapKeys(hits)) {
			n := 0
			for _, g := range groups {
				if g.suppressionID == id {
					n += int(g.count)
				}
			}
			if _, err := s.exec(ctx, tx, `UPDATE suppressions SET hits = hits + ?,
				last_hit = CASE WHEN last_hit IS NULL OR last_hit < ? THEN ? ELSE last_hit END WHERE id = ?`,
				n, s.ts(hits[id]), s.ts(hits[id]), id); err != nil {
				return fmt.Errorf("count suppression %d: %w", id, err)
			}
		}
		if err := s.addTimeline(ctx, tx, timeline); err != nil {
			return fmt.Errorf("count timeline: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, s.wrapErr(op, err)
	}
	return rep, nil
}

// queueAlertExports queues accepted, unsuppressed alerts for the enabled
// exports in the ingest transaction (an alert is accepted if and only if
// its exports are queued). Without exports it costs one small query and
// no encoding.
func (s *Store) queueAlertExports(ctx context.Context, tx *sql.Tx, conn *sql.Conn, in []*AlertIn) error {
	if len(in) == 0 {
		return nil
	}
	exps, err := s.exportFilters(ctx, tx)
	if err != nil || len(exps) == 0 {
		return err
	}
	items := make([]ExportItem, 0, len(in))
	for _, a := range in {
		item, err := AlertExportItem(a)
		if err != nil {
			return err
		}
		items = append(items, item)
	}
	if _, err := s.appendExportLog(ctx, tx, conn, exps, items); err != nil {
		return fmt.Errorf("queue exports: %w", err)
	}
	return nil
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// recordIngestIDs inserts the batch's sender ids and returns those that
// were not there before (the alerts to store). On PostgreSQL a concurrent
// transaction inserting the same id makes this one wait for it and then
// see the id as taken, so two replicas receiving the same replayed batch
// still store it once.
//
// On PostgreSQL the ids go in as a binary COPY (copyIngestIDs) when the
// transaction's connection is at hand (conn), else as one INSERT.
func (s *Store) recordIngestIDs(ctx context.Context, tx *sql.Tx, conn *sql.Conn, in []AlertIn, now time.Time) (map[string]struct{}, error) {
	ids := make([]string, 0, len(in))
	for i := range in {
		ids = append(ids, in[i].ID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	fresh := make(map[string]struct{}, len(ids))
	at := s.ts(now)
	if s.d == postgresDialect {
		// One array parameter instead of a placeholder per row: the
		// statement text is constant (prepared once) and binary-encoded.
		// Replays are rare, so the ids are first inserted plainly under a
		// savepoint (no speculative insertion per row, as ON CONFLICT
		// does); an id seen before fails it, and the batch then takes the
		// ON CONFLICT path, which skips the taken ids.
		if _, err := tx.ExecContext(ctx, `SAVEPOINT ingest_ids`); err != nil {
			return nil, err
		}
		var err error
		if conn != nil {
			err = copyIngestIDs(ctx, conn, &s.bufs, ids, now)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO alert_ingests (id, received_at) SELECT x, $2 FROM unnest($1::text[]) AS x`, ids, at)
		}
		if err == nil {
			for _, id := range ids {
				fresh[id] = struct{}{}
			}
			return fresh, nil
		}
		if !s.d.isUnique(err) {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT ingest_ids`); err != nil {
			return nil, err
		}
		rows, err := tx.QueryContext(ctx, `INSERT INTO alert_ingests (id, received_at) SELECT x, $2 FROM unnest($1::text[]) AS x
			ON CONFLICT (id) DO NOTHING RETURNING id`, ids, at)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			fresh[id] = struct{}{}
		}
		return fresh, rows.Err()
	}
	args := make([]any, 0, 2*min(len(ids), ingestIDRows))
	start := 0
	for _, size := range chunkSizes(len(ids), ingestIDRows) {
		chunk := ids[start : start+size]
		start += size
		args = args[:0]
		for _, id := range chunk {
			args = append(args, id, at)
		}
		rows, err := s.queryStmt(ctx, tx, ingestIDsQuery(size), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			fresh[id] = struct{}{}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return fresh, nil
}

// upsertAlertGroups writes each group into its open alert row (count
// added, newest occurrence's fields kept) or a new row.
func (s *Store) upsertAlertGroups(ctx context.Context, tx *sql.Tx, conn *sql.Conn, groups map[groupKey]*ingestGroup) error {
	gs := make([]*ingestGroup, 0, len(groups))
	for _, g := range groups {
		gs = append(gs, g)
	}
	slices.SortFunc(gs, func(a, b *ingestGroup) int {
		return cmp.Or(strings.Compare(a.key.fingerprint, b.key.fingerprint), cmp.Compare(a.key.suppressionID, b.key.suppressionID))
	})
	if s.d == postgresDialect {
		return s.upsertAlertGroupsPG(ctx, tx, conn, gs)
	}
	args := make([]any, 0, alertRowCols*min(len(gs), ingestAlertRows))
	start := 0
	for _, size := range chunkSizes(len(gs), ingestAlertRows) {
		chunk := gs[start : start+size]
		start += size
		args = args[:0]
		for _, g := range chunk {
			a := g.latest
			args = append(args, g.key.fingerprint, string(a.Source), a.Rule, a.RuleVersion, int(g.maxSeverity), a.Title,
				a.MitreTactic, a.MitreTechnique, a.Cluster, a.Namespace, a.Pod, a.Container, a.ContainerID, a.Image,
				a.ImageDigest, a.Node, a.Workload, evidenceText(a.Evidence), a.ID, g.suppressionID, g.count, s.ts(g.first), s.ts(g.last))
		}
		if _, err := s.execStmt(ctx, tx, upsertAlertsQuery(size), args...); err != nil {
			return err
		}
	}
	return nil
}

// noEvidence is whether ev stands for no evidence (stored as {}, see
// evidenceText).
func noEvidence(ev json.RawMessage) bool { return len(ev) == 0 || string(ev) == "null" }

func evidenceText(ev json.RawMessage) string {
	if noEvidence(ev) {
		return "{}"
	}
	return string(ev)
}

const alertInsertCols = `INSERT INTO alerts (fingerprint, source, rule, rule_version, severity, title, mitre_tactic, mitre_technique,
	cluster, namespace, pod, container, container_id, image, image_digest, node, workload, evidence,
	source_event_id, suppression_id, count, first_seen, last_seen, status)`

// alertUpsert counts a group into the open alert row with its fingerprint.
// "newer" keeps the latest occurrence's descriptive fields when batches
// arrive out of order; severity is the highest seen.
var alertUpsert = func() string {
	const newer = `excluded.last_seen >= alerts.last_seen`
	set := []string{`count = alerts.count + excluded.count`,
		`severity = CASE WHEN excluded.severity > alerts.severity THEN excluded.severity ELSE alerts.severity END`,
		`first_seen = CASE WHEN excluded.first_seen < alerts.first_seen THEN excluded.first_seen ELSE alerts.first_seen END`}
	for _, c := range []string{"rule_version", "title", "mitre_tactic", "mitre_technique", "pod", "container_id", "image",
		"image_digest", "node", "evidence", "source_event_id", "last_seen"} {
		set = append(set, c+` = CASE WHEN `+newer+` THEN excluded.`+c+` ELSE alerts.`+c+` END`)
	}
	return ` ON CONFLICT (fingerprint, suppression_id) WHERE status IN ('new', 'acknowledged') DO UPDATE SET ` +
		strings.Join(set, ", ")
}()

// upsertAlertGroupsPG is upsertAlertGroups for PostgreSQL: the whole batch
// as one statement over unnest()ed column arrays. Compared with a VALUES
// list of thousands of placeholders, the text is constant (parsed and
// planned once per connection) and the values travel binary-encoded,
// which made ingest several times faster.
//
// Groups with no open row yet (every alert of a distinct batch) are
// written with a plain INSERT first: an INSERT … ON CONFLICT inserts each
// row speculatively (an extra arbiter check and WAL record per row), which
// measured about a third of a new alert's cost. The plain insert runs under
// a savepoint; if a concurrent batch opened the same group meanwhile
// (unique violation), it is rolled back and every group goes through the
// upsert, so the result is the same as the upsert alone.
//
// Groups whose open row the probe found (repeats) are counted into it by
// primary key (updateOpenGroupsQuery) rather than through the upsert: no
// speculative insertion and arbiter index probe per row, and only the
// columns a repeat changes are sent (profiled: the upsert's arbiter check
// was ~10% of a grouped batch's backend time). With conn, values are
// encoded by hand (pgArrays), not by pgx, which boxed each into an
// interface: 12,300 allocations per grouped batch of 1000 alerts, 2,700
// now.
//
// A batch none of whose fingerprints this Store has seen open lately
// (s.openFPs: every alert of a distinct batch) skips that probe and is
// copied in directly under a savepoint: the probe was a bitmap index scan
// over the batch's 1000 fingerprints that found nothing, ~6% of a new
// alert's backend time (perf, distinct-4senders; gone with the skip). If
// the guess is wrong (a group opened by another replica, before a
// restart, or by a concurrent batch: unique violation), the copy is
// rolled back and the batch takes the probe path below, so the outcome
// is the same (TestIngestRepeatThroughOtherReplica).
func (s *Store) upsertAlertGroupsPG(ctx context.Context, tx *sql.Tx, conn *sql.Conn, gs []*ingestGroup) error {
	if conn != nil && !s.openFPs.anyOf(gs) {
		if inserted, err := s.insertNewGroupsPG(ctx, tx, conn, gs); inserted || err != nil {
			return err
		}
	}
	openIDs, err := s.openAlertGroupsPG(ctx, tx, conn, gs)
	if err != nil {
		return err
	}
	if conn != nil {
		s.openFPs.add(gs, openIDs)
	}
	var fresh, seen []*ingestGroup
	var seenIDs []int64
	for i, g := range gs {
		if openIDs[i] != 0 {
			seen, seenIDs = append(seen, g), append(seenIDs, openIDs[i])
		} else {
			fresh = append(fresh, g)
		}
	}
	if len(fresh) > 0 {
		inserted, err := s.insertNewGroupsPG(ctx, tx, conn, fresh)
		if err != nil {
			return err
		}
		if !inserted { // opened concurrently meanwhile
			return s.writeAlertGroupsPG(ctx, tx, conn, gs, alertUpsert)
		}
	}
	if len(seen) == 0 {
		return nil
	}
	if conn == nil {
		return s.writeAlertGroupsPG(ctx, tx, conn, seen, alertUpsert)
	}
	// The rows found open are updated by primary key; one closed (or
	// reopened as another row) since the probe is not updated (its status
	// is checked again on the row's latest version) and goes through the
	// upsert, which counts it into whatever row is open for it now.
	updated, err := updateOpenGroupsPG(ctx, conn, &s.bufs, seen, seenIDs)
	if err != nil || len(updated) == len(seen) {
		return err
	}
	var rest []*ingestGroup
	for i, g := range seen {
		if _, ok := updated[seenIDs[i]]; !ok {
			rest = append(rest, g)
		}
	}
	return s.writeAlertGroupsPG(ctx, tx, conn, rest, alertUpsert)
}

// insertNewGroupsPG inserts groups gs as new alert rows under a savepoint
// (COPY with conn, else an insert from arrays) and records them in
// s.openFPs. When one of them has an open row already (unique violation:
// opened by a concurrent batch, another replica, or before a restart) it
// rolls the insert back and reports inserted false, with no error.
func (s *Store) insertNewGroupsPG(ctx context.Context, tx *sql.Tx, conn *sql.Conn, gs []*ingestGroup) (inserted bool, err error) {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT ingest_new_alerts`); err != nil {
		return false, err
	}
	if conn != nil {
		err = copyAlertGroups(ctx, conn, &s.bufs, gs)
	} else {
		err = s.writeAlertGroupsPG(ctx, tx, nil, gs, "")
	}
	switch {
	case err != nil && s.d.isUnique(err):
		_, err = tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT ingest_new_alerts`)
		return false, err
	case err != nil:
		return false, err
	}
	if conn != nil {
		s.openFPs.add(gs, nil)
	}
	return true, nil
}

// openFingerprints is a bounded set of fingerprints seen with an open
// alert row. It only steers upsertAlertGroupsPG's guess: a fingerprint
// missing from it (forgotten, or opened elsewhere) costs one rolled-back
// copy, one present but closed since costs the probe it would have run
// anyway. The zero value is empty and ready.
type openFingerprints struct {
	mu  sync.Mutex
	fps map[string]struct{}
}

// openFingerprintsMax bounds the set (a few MiB); it is emptied when
// full. A grouped workload keeps far fewer open groups than that; a
// distinct one refills it with new fingerprints that are never looked up
// again.
const openFingerprintsMax = 1 << 16

// anyOf reports whether any group of gs has a fingerprint in the set.
func (o *openFingerprints) anyOf(gs []*ingestGroup) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, g := range gs {
		if _, ok := o.fps[g.key.fingerprint]; ok {
			return true
		}
	}
	return false
}

// add records the fingerprints of gs that have an open row: all of them
// (ids nil: just inserted), or those whose ids[i] is not 0.
func (o *openFingerprints) add(gs []*ingestGroup, ids []int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fps == nil || len(o.fps)+len(gs) > openFingerprintsMax {
		o.fps = make(map[string]struct{}, min(openFingerprintsMax, 4*len(gs)))
	}
	for i, g := range gs {
		if _, ok := o.fps[g.key.fingerprint]; !ok && (ids == nil || ids[i] != 0) {
			// A copy: the key may share memory with a decoded request.
			o.fps[strings.Clone(g.key.fingerprint)] = struct{}{}
		}
	}
}

// openAlertGroupsPG returns, for each group of gs (sorted by key), the id
// of its open alert row, or 0 when it has none.
func (s *Store) openAlertGroupsPG(ctx context.Context, tx *sql.Tx, conn *sql.Conn, gs []*ingestGroup) ([]int64, error) {
	ids := make([]int64, len(gs))
	// gs is sorted by fingerprint, then suppression id: the groups of one
	// fingerprint are adjacent, starting at byFP[fingerprint]. Built on
	// the first row found (a batch of new alerts finds none).
	var byFP map[string]int
	found := func(id int64, fp []byte, supID int64) {
		if byFP == nil {
			byFP = make(map[string]int, len(gs))
			for i := len(gs) - 1; i >= 0; i-- {
				byFP[gs[i].key.fingerprint] = i
			}
		}
		i, ok := byFP[string(fp)]
		for ok && i < len(gs) && gs[i].key.fingerprint == string(fp) {
			if gs[i].key.suppressionID == supID {
				ids[i] = id
				return
			}
			i++
		}
	}
	if conn != nil {
		size := 20
		for _, g := range gs {
			size += 4 + len(g.key.fingerprint)
		}
		p := newPGArrays(&s.bufs, len(gs), size)
		defer p.release()
		p.begin(oidText)
		for _, g := range gs {
			p.text(g.key.fingerprint)
		}
		p.end()
		_, err := pgExecRaw(ctx, conn, openGroupsQuery, p.params(), func(v [][]byte) error {
			id, err := pgInt8(v[0])
			if err != nil {
				return err
			}
			supID, err := pgInt8(v[2])
			if err != nil {
				return err
			}
			found(id, v[1], supID)
			return nil
		})
		return ids, err
	}
	fps := make([]string, len(gs))
	for i, g := range gs {
		fps[i] = g.key.fingerprint
	}
	rows, err := tx.QueryContext(ctx, openGroupsQuery, fps)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, supID int64
		var fp string
		if err := rows.Scan(&id, &fp, &supID); err != nil {
			return nil, err
		}
		found(id, []byte(fp), supID)
	}
	return ids, rows.Err()
}

const openGroupsQuery = `SELECT id, fingerprint, suppression_id FROM alerts
	WHERE fingerprint = ANY($1::text[]) AND status IN ('new', 'acknowledged')`

// updateOpenGroupsQuery counts groups into their open rows by id, with
// alertUpsert's rules: count added, highest severity, earliest first
// seen, and the newest occurrence's fields when it is at least as new as
// the row's (every CASE compares with the row's old last_seen). The
// status is checked again on the row's latest version, so a row closed
// meanwhile is left alone (not returned).
var updateOpenGroupsQuery = func() string {
	set := []string{`count = a.count + t.cnt`,
		`severity = CASE WHEN t.sev > a.severity THEN t.sev ELSE a.severity END`,
		`first_seen = CASE WHEN t.fs < a.first_seen THEN t.fs ELSE a.first_seen END`}
	for _, c := range [][2]string{{"rule_version", "rv"}, {"title", "title"}, {"mitre_tactic", "tac"},
		{"mitre_technique", "tech"}, {"pod", "pod"}, {"container_id", "cid"}, {"image", "img"}, {"image_digest", "dig"},
		{"node", "node"}, {"evidence", "ev"}, {"source_event_id", "eid"}, {"last_seen", "ls"}} {
		set = append(set, c[0]+` = CASE WHEN t.ls >= a.last_seen THEN t.`+c[1]+` ELSE a.`+c[0]+` END`)
	}
	return `UPDATE alerts AS a SET ` + strings.Join(set, ", ") + `
	FROM unnest($1::int8[], $2::int8[], $3::int2[], $4::timestamptz[], $5::timestamptz[], $6::text[], $7::text[], $8::text[],
		$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[])
		AS t(id, cnt, sev, fs, ls, rv, title, tac, tech, pod, cid, img, dig, node, ev, eid)
	WHERE a.id = t.id AND a.status IN ('new', 'acknowledged')
	RETURNING a.id`
}()

// updateOpenGroupsPG runs updateOpenGroupsQuery for groups gs with open
// rows ids (in gs's order: sorted by key, so that concurrent batches lock
// rows in one order) on conn, with hand-encoded arrays, and returns the
// ids it updated.
func updateOpenGroupsPG(ctx context.Context, conn *sql.Conn, bufs *ingestBufs, gs []*ingestGroup, ids []int64) (map[int64]struct{}, error) {
	size := 16 * 20
	for _, g := range gs {
		a := g.latest
		size += 15*4 + 8*4 + 2 + len(a.RuleVersion) + len(a.Title) + len(a.MitreTactic) + len(a.MitreTechnique) + len(a.Pod) +
			len(a.ContainerID) + len(a.Image) + len(a.ImageDigest) + len(a.Node) + len(a.Evidence) + len(a.ID) + 8
	}
	p := newPGArrays(bufs, len(gs), size)
	defer p.release()
	p.begin(oidInt8)
	for _, id := range ids {
		p.int8(id)
	}
	p.end()
	p.begin(oidInt8)
	for _, g := range gs {
		p.int8(g.count)
	}
	p.end()
	p.begin(oidInt2)
	for _, g := range gs {
		p.int2(int16(g.maxSeverity))
	}
	p.end()
	p.begin(oidTimestamptz)
	for _, g := range gs {
		p.ts(g.first)
	}
	p.end()
	p.begin(oidTimestamptz)
	for _, g := range gs {
		p.ts(g.last)
	}
	p.end()
	for _, f := range [...]func(a *AlertIn) string{
		func(a *AlertIn) string { return a.RuleVersion }, func(a *AlertIn) string { return a.Title },
		func(a *AlertIn) string { return a.MitreTactic }, func(a *AlertIn) string { return a.MitreTechnique },
		func(a *AlertIn) string { return a.Pod }, func(a *AlertIn) string { return a.ContainerID },
		func(a *AlertIn) string { return a.Image }, func(a *AlertIn) string { return a.ImageDigest },
		func(a *AlertIn) string { return a.Node },
	} {
		p.begin(oidText)
		for _, g := range gs {
			p.text(f(g.latest))
		}
		p.end()
	}
	p.evidenceAndIDs(gs)
	updated := make(map[int64]struct{}, len(gs))
	_, err := pgExecRaw(ctx, conn, updateOpenGroupsQuery, p.params(), func(v [][]byte) error {
		id, err := pgInt8(v[0])
		updated[id] = struct{}{}
		return err
	})
	return updated, err
}

// ingestTx runs fn in a write transaction. On PostgreSQL it holds one
// connection for it (conn), so that the ingest can COPY into its own
// transaction through the pgx connection underneath; on SQLite conn is nil.
func (s *Store) ingestTx(ctx context.Context, fn func(tx *sql.Tx, conn *sql.Conn) error) error {
	if s.d != postgresDialect {
		return s.tx(ctx, func(tx *sql.Tx) error { return fn(tx, nil) })
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx, conn); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// writeAlertGroupsPG inserts groups (conflict: "" for a plain insert, or
// alertUpsert) with one statement over unnest()ed column arrays. With
// conn (the connection tx runs on) the arrays are encoded by hand
// (pgArrays).
func (s *Store) writeAlertGroupsPG(ctx context.Context, tx *sql.Tx, conn *sql.Conn, gs []*ingestGroup, conflict string) error {
	stmt := alertUnnestInsert + conflict
	if conn != nil {
		size := 23 * 20
		for _, g := range gs {
			a := g.latest
			size += 23*4 + 2 + 4*8 + len(g.key.fingerprint) + len(a.Source) + len(a.Rule) + len(a.RuleVersion) + len(a.Title) +
				len(a.MitreTactic) + len(a.MitreTechnique) + len(a.Cluster) + len(a.Namespace) + len(a.Pod) + len(a.Container) +
				len(a.ContainerID) + len(a.Image) + len(a.ImageDigest) + len(a.Node) + len(a.Workload) + len(a.Evidence) + len(a.ID)
		}
		p := newPGArrays(&s.bufs, len(gs), size)
		defer p.release()
		for _, f := range [...]func(g *ingestGroup) string{
			func(g *ingestGroup) string { return g.key.fingerprint }, func(g *ingestGroup) string { return string(g.latest.Source) },
			func(g *ingestGroup) string { return g.latest.Rule }, func(g *ingestGroup) string { return g.latest.RuleVersion },
			func(g *ingestGroup) string { return g.latest.Title }, func(g *ingestGroup) string { return g.latest.MitreTactic },
			func(g *ingestGroup) string { return g.latest.MitreTechnique }, func(g *ingestGroup) string { return g.latest.Cluster },
			func(g *ingestGroup) string { return g.latest.Namespace }, func(g *ingestGroup) string { return g.latest.Pod },
			func(g *ingestGroup) string { return g.latest.Container }, func(g *ingestGroup) string { return g.latest.ContainerID },
			func(g *ingestGroup) string { return g.latest.Image }, func(g *ingestGroup) string { return g.latest.ImageDigest },
			func(g *ingestGroup) string { return g.latest.Node }, func(g *ingestGroup) string { return g.latest.Workload },
		} {
			p.begin(oidText)
			for _, g := range gs {
				p.text(f(g))
			}
			p.end()
		}
		p.evidenceAndIDs(gs)
		p.begin(oidInt2)
		for _, g := range gs {
			p.int2(int16(g.maxSeverity))
		}
		p.end()
		for _, f := range [...]func(g *ingestGroup) int64{
			func(g *ingestGroup) int64 { return g.suppressionID }, func(g *ingestGroup) int64 { return g.count },
		} {
			p.begin(oidInt8)
			for _, g := range gs {
				p.int8(f(g))
			}
			p.end()
		}
		for _, f := range [...]func(g *ingestGroup) time.Time{
			func(g *ingestGroup) time.Time { return g.first }, func(g *ingestGroup) time.Time { return g.last },
		} {
			p.begin(oidTimestamptz)
			for _, g := range gs {
				p.ts(f(g))
			}
			p.end()
		}
		_, err := pgExecRaw(ctx, conn, stmt, p.params(), nil)
		return err
	}
	n := len(gs)
	var (
		str   [18][]string // text columns, in alertInsertCols order (evidence as text)
		sev   = make([]int16, 0, n)
		supID = make([]int64, 0, n)
		count = make([]int64, 0, n)
		first = make([]time.Time, 0, n)
		last  = make([]time.Time, 0, n)
	)
	for i := range str {
		str[i] = make([]string, 0, n)
	}
	for _, g := range gs {
		a := g.latest
		for i, v := range [18]string{g.key.fingerprint, string(a.Source), a.Rule, a.RuleVersion, a.Title, a.MitreTactic,
			a.MitreTechnique, a.Cluster, a.Namespace, a.Pod, a.Container, a.ContainerID, a.Image, a.ImageDigest, a.Node,
			a.Workload, evidenceText(a.Evidence), a.ID} {
			str[i] = append(str[i], v)
		}
		sev = append(sev, int16(g.maxSeverity))
		supID = append(supID, g.suppressionID)
		count = append(count, g.count)
		first = append(first, g.first.UTC().Truncate(time.Microsecond))
		last = append(last, g.last.UTC().Truncate(time.Microsecond))
	}
	_, err := tx.ExecContext(ctx, stmt,
		str[0], str[1], str[2], str[3], str[4], str[5], str[6], str[7], str[8], str[9], str[10], str[11], str[12], str[13],
		str[14], str[15], str[16], str[17], sev, supID, count, first, last)
	return err
}

// alertUnnestInsert is writeAlertGroupsPG's statement, without its
// conflict clause.
const alertUnnestInsert = alertInsertCols + ` SELECT fp, src, rule, rv, sev, title, tac, tech, cl, ns, pod, ctr, cid, img,
		dig, node, wl, ev, eid, sup, cnt, fs, ls, 'new'
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
			$10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[],
			$19::int2[], $20::int8[], $21::int8[], $22::timestamptz[], $23::timestamptz[])
		AS t(fp, src, rule, rv, title, tac, tech, cl, ns, pod, ctr, cid, img, dig, node, wl, ev, eid, sev, sup, cnt, fs, ls)`

// addTimeline adds a batch's occurrence counts to the per-minute timeline.
func (s *Store) addTimeline(ctx context.Context, tx *sql.Tx, timeline map[timelineKey]*[2]int64) error {
	keys := slices.SortedFunc(mapKeys(timeline), func(a, b timelineKey) int {
		return cmp.Or(cmp.Compare(a.bucket, b.bucket), strings.Compare(string(a.source), string(b.source)),
			cmp.Compare(a.severity, b.severity))
	})
	if s.d == postgresDialect {
		var (
			buckets    = make([]time.Time, 0, len(keys))
			sources    = make([]string, 0, len(keys))
			sevs       = make([]int16, 0, len(keys))
			counts     = make([]int64, 0, len(keys))
			suppressed = make([]int64, 0, len(keys))
		)
		for _, k := range keys {
			c := timeline[k]
			buckets = append(buckets, time.Unix(k.bucket*60, 0).UTC())
			sources, sevs = append(sources, string(k.source)), append(sevs, int16(k.severity))
			counts, suppressed = append(counts, c[0]), append(suppressed, c[1])
		}
		// The shard keeps concurrent connections off each other's rows
		// (migration 0007); AlertTimeline sums the shards.
		_, err := tx.ExecContext(ctx, `INSERT INTO alert_timeline (bucket, source, severity, shard, count, suppressed)
			SELECT b, s, v, pg_backend_pid() % 16, c, x FROM unnest($1::timestamptz[], $2::text[], $3::int2[], $4::int8[], $5::int8[])
				AS t(b, s, v, c, x)
			ON CONFLICT (bucket, source, severity, shard) DO UPDATE SET count = alert_timeline.count + excluded.count,
			suppressed = alert_timeline.suppressed + excluded.suppressed`, buckets, sources, sevs, counts, suppressed)
		return err
	}
	args := make([]any, 0, 5*min(len(keys), ingestIDRows))
	for start := 0; start < len(keys); start += ingestIDRows {
		chunk := keys[start:min(start+ingestIDRows, len(keys))]
		args = args[:0]
		for _, k := range chunk {
			c := timeline[k]
			args = append(args, s.ts(time.Unix(k.bucket*60, 0)), string(k.source), int(k.severity), c[0], c[1])
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO alert_timeline (bucket, source, severity, count, suppressed) VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?), ", len(chunk)), ", ")+
			` ON CONFLICT (bucket, source, severity) DO UPDATE SET count = alert_timeline.count + excluded.count,
			suppressed = alert_timeline.suppressed + excluded.suppressed`, args...); err != nil {
			return err
		}
	}
	return nil
}

// PurgeAlertIngests forgets the sender ids accepted before t. A batch
// replayed after that is stored again, so t should be far older than any
// sender's retry horizon (central keeps them 30 days).
func (s *Store) PurgeAlertIngests(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.exec(ctx, s.w, `DELETE FROM alert_ingests WHERE received_at < ?`, s.ts(before))
	if err != nil {
		return 0, s.wrapErr("purge alert ingests", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// SetAlertStatus moves an alert through the triage workflow, recording who
// and when. Reopening (to new) is refused with ErrConflict while another
// open alert holds the same fingerprint.
func (s *Store) SetAlertStatus(ctx context.Context, id int64, status AlertStatus, by, note string) error {
	if !status.Valid() {
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

const alertCols = `id, fingerprint, source, rule, rule_version, severity, title, mitre_tactic, mitre_technique, cluster,
	namespace, pod, container, container_id, image, image_digest, node, workload, evidence, source_event_id,
	suppression_id, count, first_seen, last_seen, status, status_by, status_at, status_note, suppressed_by, suppressed_at`

func scanAlert(sc scanner) (*Alert, error) {
	var a Alert
	var src, status, ev string
	if err := sc.Scan(&a.ID, &a.Fingerprint, &src, &a.Rule, &a.RuleVersion, &a.Severity, &a.Title, &a.MitreTactic,
		&a.MitreTechnique, &a.Cluster, &a.Namespace, &a.Pod, &a.Container, &a.ContainerID, &a.Image, &a.ImageDigest,
		&a.Node, &a.Workload, &ev, &a.SourceEventID, &a.SuppressionID, &a.Count, tcol(&a.FirstSeen), tcol(&a.LastSeen),
		&status, &a.StatusBy, tcol(&a.StatusAt), &a.StatusNote, &a.SuppressedBy, tcol(&a.SuppressedAt)); err != nil {
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

// SuppressedFilter selects alerts by whether a suppression matched them.
type SuppressedFilter int

const (
	HideSuppressed SuppressedFilter = iota // the default: what needs attention
	OnlySuppressed
	WithSuppressed
)

// AlertFilter narrows ListAlerts. Empty fields do not filter.
type AlertFilter struct {
	Status      AlertStatus
	Source      AlertSource
	Rule        string
	MinSeverity alerts.Severity
	Cluster     string
	Namespace   string
	Workload    string
	Since       time.Time // last seen at or after
	Until       time.Time // last seen before
	// Q matches a substring of the title, rule, workload, pod or image
	// (case-insensitive).
	Q          string
	Suppressed SuppressedFilter
	// SuppressionID lists the alerts one suppression matched (implies
	// OnlySuppressed).
	SuppressionID int64
	// ExcludeID leaves one alert out (related alerts of a detail page).
	ExcludeID int64
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
	w, err := s.alertWhere(f)
	if err != nil {
		return nil, 0, fmt.Errorf("list alerts: %w", err)
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
		return nil, 0, s.wrapErr("list alerts", err)
	}
	return out, total, nil
}

// TimelineBucket is one bar of the alert timeline: occurrences (every
// repeat counts) by severity, and those a suppression matched.
type TimelineBucket struct {
	Start      time.Time
	BySeverity [5]int64 // indexed by alerts.Severity
	Suppressed int64
}

// Total is the bucket's unsuppressed occurrences.
func (b TimelineBucket) Total() int64 {
	var n int64
	for _, c := range b.BySeverity {
		n += c
	}
	return n
}

// timelineClockAhead is how far a sender's clock may run ahead of
// central's before its alerts' times are not believed for the timeline.
const timelineClockAhead = 5 * time.Minute

// timelineTime is the time an occurrence is counted at in the timeline:
// the sender's (at), the time of the event, moved onto central's clock by
// skew (how far central's clock is ahead of the sender's, when the sender
// said what its clock read: alerts.HeaderSentAt), unless it is still more
// than timelineClockAhead after central received it (now) — a sender
// whose clock runs ahead would otherwise put its alerts in buckets the
// chart shows only once that future arrives (or, for a wrong year, never);
// they are counted when received instead. Times in the past are kept: a
// sender that buffered through an outage reports when things happened.
func timelineTime(at, now time.Time, skew time.Duration) time.Time {
	at = at.Add(skew)
	if at.After(now.Add(timelineClockAhead)) {
		return now
	}
	return at
}

// AlertTimeline counts alert occurrences in [since, until) per bucket
// (a whole number of minutes, at most 1000 buckets), optionally for one
// source. Every bucket of the range is returned, empty ones too, so a
// chart needs no gap filling.
func (s *Store) AlertTimeline(ctx context.Context, since, until time.Time, bucket time.Duration, source AlertSource) ([]TimelineBucket, error) {
	op := "alert timeline"
	if bucket < time.Minute || bucket%time.Minute != 0 {
		return nil, fmt.Errorf("%s: %w", op, invalid("bucket %s (want a whole number of minutes)", bucket))
	}
	since = since.UTC().Truncate(bucket)
	if !until.After(since) {
		return nil, fmt.Errorf("%s: %w", op, invalid("until must be after since"))
	}
	n := int((until.Sub(since) + bucket - 1) / bucket)
	if n > 1000 {
		return nil, fmt.Errorf("%s: %w", op, invalid("%d buckets (at most 1000: widen the bucket)", n))
	}
	if source != "" && !source.Valid() {
		return nil, fmt.Errorf("%s: %w", op, invalid("alert source %q", source))
	}
	out := make([]TimelineBucket, n)
	for i := range out {
		out[i].Start = since.Add(time.Duration(i) * bucket)
	}
	var w where
	w.add(`bucket >= ?`, s.ts(since))
	w.add(`bucket < ?`, s.ts(until))
	if source != "" {
		w.add(`source = ?`, string(source))
	}
	rows, err := s.query(ctx, s.r, `SELECT bucket, severity, CAST(SUM(count) AS BIGINT), CAST(SUM(suppressed) AS BIGINT) FROM alert_timeline`+w.sql()+
		` GROUP BY bucket, severity`, w.args...)
	if err != nil {
		return nil, s.wrapErr(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var at time.Time
		var sev alerts.Severity
		var c, sup int64
		if err := rows.Scan(tcol(&at), &sev, &c, &sup); err != nil {
			return nil, s.wrapErr(op, err)
		}
		i := int(at.Sub(since) / bucket)
		if i < 0 || i >= n || !sev.Valid() {
			continue
		}
		out[i].BySeverity[sev] += c
		out[i].Suppressed += sup
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrapErr(op, err)
	}
	return out, nil
}

// AlertDetail is one alert with what its detail page shows beside it.
type AlertDetail struct {
	Alert *Alert
	// Related are up to 20 other alerts on the same workload (cluster,
	// namespace and workload), most recent first, suppressed ones included.
	Related []Alert
	// Actions are the response actions requested against the alert.
	Actions []alerts.Action
}

// GetAlertDetail returns an alert with its related alerts and actions.
func (s *Store) GetAlertDetail(ctx context.Context, id int64) (*AlertDetail, error) {
	a, err := s.GetAlert(ctx, id)
	if err != nil {
		return nil, err
	}
	d := &AlertDetail{Alert: a, Related: []Alert{}}
	if a.Workload != "" {
		d.Related, _, err = s.ListAlerts(ctx, AlertFilter{Cluster: a.Cluster, Namespace: a.Namespace, Workload: a.Workload,
			Suppressed: WithSuppressed, ExcludeID: a.ID}, Page{Limit: 20})
		if err != nil {
			return nil, err
		}
		if d.Related == nil {
			d.Related = []Alert{}
		}
	}
	d.Actions, _, err = s.ListActions(ctx, ActionFilter{AlertID: id}, Page{Limit: 100})
	if err != nil {
		return nil, err
	}
	return d, nil
}
