package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// The export log. Records accepted by central (alerts, and optionally
// scan findings and posture results) are appended ONCE, in the
// transaction that accepts them, to an append-only log (export_log,
// migration 0009) — whatever the number of exports — if at least one
// enabled export's filter takes them. Each export has a durable cursor
// (exports.cursor_xid, cursor_seq): the position up to which its records
// are settled. A delivery worker (internal/export) leases an export, reads
// the records after its cursor that the export's filter takes, delivers
// them and moves the cursor past them:
//
//	log ──lease: read after cursor, filter──▶ deliver ──done──▶ cursor moves past
//	                  ▲                           │ failed: export backs off (whole
//	                  │                           │ export, order kept), cursor stays
//	                  └── lease expired ◀─────────┤ (worker died: same records again,
//	                                              │  same idempotency keys)
//	                                              └ refused for good, or too old
//	                                                ──▶ copied to export_dead ──retry──▶ log (that export only)
//
// Order: on SQLite seq order is commit order (one writer). On PostgreSQL
// a sequence value is not commit order, so each record carries its
// transaction's id and readers read only below their snapshot's xmin, in
// (xid, seq) order: every transaction below xmin has ended, so no record
// can later appear before the cursor (the proof is in migration 0009).
//
// The lease is a token on the export row with an expiry (one worker per
// export at a time, across replicas); moving the cursor is fenced by that
// token and by the cursor the lease started from, so a worker presumed
// dead cannot move it once another worker has leased the export since
// (the same fencing as the job queue). Backoff is per export, not per
// record, because a receiver is down as a whole, and so that a retried
// batch is still delivered before the records behind it.
//
// The happy path costs one log row per record (not one insert and one
// delete per record and export), one cursor update per batch and export,
// and a range delete when every export is past a record
// (PurgeExportLog; a disabled export holds the log for a retention only).

// Export origins.
const (
	ExportOriginAPI    = "api"    // created through /api/v1/exports
	ExportOriginConfig = "config" // defined in central's configuration file
)

// Export kinds of record.
const (
	ExportKindAlert   = "alert"
	ExportKindFinding = "finding"
	ExportKindPosture = "posture"
)

// ExportFilter selects the records an export receives. Empty lists match
// everything.
type ExportFilter struct {
	// MinSeverity is the lowest alert severity sent (alerts.Severity
	// numbers: info 0 … critical 4).
	MinSeverity alerts.Severity
	// Sources are alert sources (sensor, audit, admission, posture, scanner).
	Sources []string
	// Namespaces are path.Match globs ("prod-*"). A record without a
	// namespace (node or cluster scope) matches only the glob "".
	Namespaces []string
	// Kinds are record kinds: alert (the default when empty), finding,
	// posture.
	Kinds []string
}

// Match reports whether the filter selects an item.
func (f *ExportFilter) Match(it *ExportItem) bool {
	if it.Severity < f.MinSeverity || !f.takesKind(it.Kind) {
		return false
	}
	if len(f.Sources) > 0 && !slices.Contains(f.Sources, it.Source) {
		return false
	}
	if len(f.Namespaces) > 0 {
		ok := false
		for _, g := range f.Namespaces {
			if m, _ := path.Match(g, it.Namespace); m {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// takesKind reports whether the filter selects records of kind: alerts
// when it names no kind, else the kinds it names.
func (f *ExportFilter) takesKind(kind string) bool {
	if len(f.Kinds) == 0 {
		return kind == ExportKindAlert
	}
	return slices.Contains(f.Kinds, kind)
}

func (f *ExportFilter) validate() error {
	if !f.MinSeverity.Valid() {
		return invalid("export filter: severity %d", int(f.MinSeverity))
	}
	for _, s := range f.Sources {
		if !alerts.Source(s).Valid() {
			return invalid("export filter: source %q (want sensor, audit, admission, posture or scanner)", s)
		}
	}
	for _, k := range f.Kinds {
		if k != ExportKindAlert && k != ExportKindFinding && k != ExportKindPosture {
			return invalid("export filter: kind %q (want alert, finding or posture)", k)
		}
	}
	for _, g := range f.Namespaces {
		if _, err := path.Match(g, ""); err != nil || strings.Contains(g, ",") {
			return invalid("export filter: namespace glob %q is malformed", g)
		}
	}
	return nil
}

// Export is one configured export destination.
type Export struct {
	ID      int64
	Name    string
	Type    string // webhook, syslog, splunk_hec, elasticsearch, kafka, slack, teams
	Origin  string // ExportOriginAPI or ExportOriginConfig
	Enabled bool
	Filter  ExportFilter
	// Config is the non-secret settings as JSON (internal/export's Config
	// with its secrets removed).
	Config json.RawMessage
	// Secrets is the secret settings as JSON. Only GetExportSecrets and
	// ListExportsForDelivery fill it; it is sealed at rest.
	Secrets json.RawMessage
	// HasSecrets reports whether secrets are stored (for the API, which
	// never returns them).
	HasSecrets bool
	// Version increases with every update, so delivery workers rebuild
	// their exporter when it changes.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
	// Delivery state.
	Failures      int       // consecutive failed deliveries
	RetryAt       time.Time // no delivery before (backoff); zero: now
	Delivered     int64     // records delivered, ever
	LastSuccessAt time.Time
	LastError     string
	LastErrorAt   time.Time
	// Failed counts records whose delivery failed (attempts), ever;
	// DeadTotal the records that became dead letters, ever.
	Failed    int64
	DeadTotal int64
}

var exportNameOK = func(r rune) bool {
	return r == '-' || r == '_' || r == '.' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
}

func (e *Export) validate() error {
	if e.Name == "" || len(e.Name) > 64 || strings.IndexFunc(e.Name, func(r rune) bool { return !exportNameOK(r) }) >= 0 {
		return invalid("export name %q (want 1-64 letters, digits, - _ .)", e.Name)
	}
	if e.Type == "" || len(e.Type) > 32 {
		return invalid("export %s: type is required", e.Name)
	}
	if e.Origin == "" {
		e.Origin = ExportOriginAPI
	}
	if e.Origin != ExportOriginAPI && e.Origin != ExportOriginConfig {
		return invalid("export %s: origin %q", e.Name, e.Origin)
	}
	if len(e.Config) == 0 {
		e.Config = json.RawMessage("{}")
	}
	if !json.Valid(e.Config) {
		return invalid("export %s: config is not JSON", e.Name)
	}
	if len(e.Secrets) > 0 && !json.Valid(e.Secrets) {
		return invalid("export %s: secrets are not JSON", e.Name)
	}
	return e.Filter.validate()
}

func exportAAD(name string) []byte { return []byte("bulwark/export/" + name) }

func (s *Store) sealExportSecrets(e *Export) ([]byte, error) {
	if len(e.Secrets) == 0 || string(e.Secrets) == "{}" || string(e.Secrets) == "null" {
		return nil, nil
	}
	return seal(s.key, e.Secrets, exportAAD(e.Name))
}

const exportCols = `id, name, type, origin, enabled, min_severity, sources, namespaces, kinds, config, secrets, version,
	failures, retry_at, delivered, last_success_at, last_error, last_error_at, created_at, updated_at, failed, dead_total`

func (s *Store) scanExport(sc scanner, decrypt bool) (*Export, error) {
	var e Export
	var sources, namespaces, kinds, config string
	var sealed []byte
	if err := sc.Scan(&e.ID, &e.Name, &e.Type, &e.Origin, boolCol{&e.Enabled}, &e.Filter.MinSeverity, &sources, &namespaces,
		&kinds, &config, &sealed, &e.Version, &e.Failures, tcol(&e.RetryAt), &e.Delivered, tcol(&e.LastSuccessAt),
		&e.LastError, tcol(&e.LastErrorAt), tcol(&e.CreatedAt), tcol(&e.UpdatedAt), &e.Failed, &e.DeadTotal); err != nil {
		return nil, err
	}
	e.Filter.Sources, e.Filter.Namespaces, e.Filter.Kinds = splitList(sources), splitList(namespaces), splitList(kinds)
	e.Config = json.RawMessage(config)
	e.HasSecrets = len(sealed) > 0
	if decrypt && e.HasSecrets {
		b, err := open(s.key, sealed, exportAAD(e.Name))
		if err != nil {
			return nil, fmt.Errorf("open secrets of export %s: %w", e.Name, err)
		}
		e.Secrets = b
	}
	return &e, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// CreateExport stores a new export.
func (s *Store) CreateExport(ctx context.Context, e Export) (*Export, error) {
	if err := e.validate(); err != nil {
		return nil, fmt.Errorf("create export: %w", err)
	}
	sealed, err := s.sealExportSecrets(&e)
	if err != nil {
		return nil, fmt.Errorf("create export %s: seal secrets: %w", e.Name, err)
	}
	now := s.now()
	var id int64
	// A new export starts at the head of the log: records committed
	// before it are not its own (on PostgreSQL, after every transaction
	// that ended before its snapshot: (xmin-1, max) in (xid, seq) order).
	head := `(SELECT seq FROM sqlite_sequence WHERE name = 'export_log')`
	headXid := `0`
	if s.d == postgresDialect {
		head, headXid = `9223372036854775807`, `pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1`
	}
	var disabledAt any
	if !e.Enabled {
		disabledAt = s.ts(now)
	}
	err = s.queryRow(ctx, s.w, `INSERT INTO exports (name, type, origin, enabled, min_severity, sources, namespaces, kinds,
		config, secrets, created_at, updated_at, disabled_at, cursor_xid, cursor_seq)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, `+headXid+`, COALESCE(`+head+`, 0)) RETURNING id`,
		e.Name, e.Type, e.Origin, e.Enabled, int(e.Filter.MinSeverity), strings.Join(e.Filter.Sources, ","),
		strings.Join(e.Filter.Namespaces, ","), strings.Join(e.Filter.Kinds, ","), string(e.Config), sealed,
		s.ts(now), s.ts(now), disabledAt).Scan(&id)
	if err != nil {
		return nil, s.wrapErr("create export "+e.Name, err)
	}
	return s.GetExport(ctx, id)
}

// UpdateExport replaces an export's settings (not its delivery state).
// With keepSecrets the stored secrets are kept (the API's write-only
// secrets: an update that does not repeat them keeps them); the name may
// change only when no secrets are stored or they are given again, since
// they are sealed to the name.
func (s *Store) UpdateExport(ctx context.Context, e Export, keepSecrets bool) (*Export, error) {
	if err := e.validate(); err != nil {
		return nil, fmt.Errorf("update export: %w", err)
	}
	op := fmt.Sprintf("update export %d", e.ID)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		old, err := s.scanExport(s.queryRow(ctx, tx, `SELECT `+exportCols+` FROM exports WHERE id = ?`+s.d.forUpdate, e.ID), keepSecrets)
		if err != nil {
			return err
		}
		if keepSecrets {
			e.Secrets = old.Secrets
		}
		sealed, err := s.sealExportSecrets(&e)
		if err != nil {
			return fmt.Errorf("seal secrets: %w", err)
		}
		_, err = s.exec(ctx, tx, `UPDATE exports SET name = ?, type = ?, origin = ?, enabled = ?, min_severity = ?,
			sources = ?, namespaces = ?, kinds = ?, config = ?, secrets = ?, version = version + 1, updated_at = ?,
			failures = 0, retry_at = NULL, disabled_at = CASE WHEN ? THEN NULL ELSE COALESCE(disabled_at, ?) END WHERE id = ?`,
			e.Name, e.Type, e.Origin, e.Enabled, int(e.Filter.MinSeverity), strings.Join(e.Filter.Sources, ","),
			strings.Join(e.Filter.Namespaces, ","), strings.Join(e.Filter.Kinds, ","), string(e.Config), sealed,
			s.ts(s.now()), e.Enabled, s.ts(s.now()), e.ID)
		return err
	})
	if err != nil {
		return nil, s.wrapErr(op, err)
	}
	return s.GetExport(ctx, e.ID)
}

// DeleteExport removes an export and its dead letters (its share of the
// log goes with the next PurgeExportLog).
func (s *Store) DeleteExport(ctx context.Context, id int64) error {
	op := fmt.Sprintf("delete export %d", id)
	var res sql.Result
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if res, err = s.exec(ctx, tx, `DELETE FROM exports WHERE id = ?`, id); err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, `DELETE FROM export_dead WHERE export_id = ?`, id)
		return err
	})
	if err != nil {
		return s.wrapErr(op, err)
	}
	return affectedOne(res, op)
}

// GetExport returns one export without its secrets.
func (s *Store) GetExport(ctx context.Context, id int64) (*Export, error) {
	e, err := s.scanExport(s.queryRow(ctx, s.r, `SELECT `+exportCols+` FROM exports WHERE id = ?`, id), false)
	if err != nil {
		return nil, s.wrapErr(fmt.Sprintf("get export %d", id), err)
	}
	return e, nil
}

// GetExportSecrets returns one export with its secrets opened (for a test
// delivery; never for an API response).
func (s *Store) GetExportSecrets(ctx context.Context, id int64) (*Export, error) {
	e, err := s.scanExport(s.queryRow(ctx, s.r, `SELECT `+exportCols+` FROM exports WHERE id = ?`, id), true)
	if err != nil {
		return nil, s.wrapErr(fmt.Sprintf("get export %d", id), err)
	}
	return e, nil
}

// ListExports returns every export by name, without secrets.
func (s *Store) ListExports(ctx context.Context) ([]Export, error) {
	return s.listExports(ctx, false)
}

// ListExportsForDelivery returns every enabled export with its secrets
// opened, for the delivery workers.
func (s *Store) ListExportsForDelivery(ctx context.Context) ([]Export, error) {
	all, err := s.listExports(ctx, true)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(e Export) bool { return !e.Enabled }), nil
}

func (s *Store) listExports(ctx context.Context, decrypt bool) ([]Export, error) {
	rows, err := s.query(ctx, s.r, `SELECT `+exportCols+` FROM exports ORDER BY name`)
	if err != nil {
		return nil, s.wrapErr("list exports", err)
	}
	defer rows.Close()
	var out []Export
	for rows.Next() {
		e, err := s.scanExport(rows, decrypt)
		if err != nil {
			return nil, s.wrapErr("list exports", err)
		}
		out = append(out, *e)
	}
	return out, s.wrapErr("list exports", rows.Err())
}

// ExportItem is one record offered to the exports.
type ExportItem struct {
	// Kind is ExportKindAlert, ExportKindFinding or ExportKindPosture.
	Kind string
	// Key identifies the record (an alert's id); it is the idempotency key
	// receivers see.
	Key string
	// Filterable attributes.
	Source    string
	Severity  alerts.Severity
	Namespace string
	// Payload is the record as JSON (internal/export.Record).
	Payload json.RawMessage
}

// exportPayload is the JSON shape of internal/export.Record.
type exportPayload struct {
	Kind string `json:"kind"`
	*alerts.Alert
}

// AlertExportItem makes the export record of an accepted alert. The alert
// ingest calls it for each accepted alert and appends the items to the
// export log (EnqueueExports, or enqueueExports inside its own
// transaction).
func AlertExportItem(a *alerts.Alert) (ExportItem, error) {
	// Written directly (alertjson.go): the same bytes as json.Marshal, in
	// a fifth of the time; json.Marshal when it cannot vouch for that.
	size := 320 + len(a.Evidence) // keys, quotes, time, severity
	for _, f := range [...]string{a.ID, a.Rule, a.RuleVersion, a.Title, a.MitreTactic, a.MitreTechnique, a.Cluster, a.Namespace,
		a.Pod, a.Container, a.ContainerID, a.Image, a.ImageDigest, a.Node, a.Workload, a.Fingerprint} {
		size += len(f) + len(f)/8 // room for a few escapes
	}
	b, ok := appendExportPayload(make([]byte, 0, size), ExportKindAlert, a)
	if !ok {
		var err error
		if b, err = json.Marshal(exportPayload{Kind: ExportKindAlert, Alert: a}); err != nil {
			return ExportItem{}, fmt.Errorf("export item of alert %s: %w", a.ID, err)
		}
	}
	return ExportItem{Kind: ExportKindAlert, Key: a.ID, Source: string(a.Source), Severity: a.Severity,
		Namespace: a.Namespace, Payload: b}, nil
}

// EnqueueExports appends to the export log, in one transaction, the items
// that at least one enabled export's filter takes, and returns how many
// it appended. Items are not deduplicated here (the alert ingest records
// each sender id once; a record appended twice reaches receivers under
// the same idempotency key).
func (s *Store) EnqueueExports(ctx context.Context, items []ExportItem) (int, error) {
	var n int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = s.enqueueExports(ctx, tx, items, false)
		return err
	})
	if err != nil {
		return 0, s.wrapErr(fmt.Sprintf("enqueue %d export records", len(items)), err)
	}
	return n, nil
}

// ExportsTake reports whether some enabled export's filter takes records
// of kind (whatever their severity, source or namespace): a caller can
// skip building records no export would queue.
func (s *Store) ExportsTake(ctx context.Context, kind string) (bool, error) {
	exps, err := s.exportFilters(ctx, s.r)
	if err != nil {
		return false, s.wrapErr("export filters", err)
	}
	for _, e := range exps {
		if e.filter.takesKind(kind) {
			return true, nil
		}
	}
	return false, nil
}

// exportLogRows bounds one multi-row INSERT on SQLite (8 values a row:
// 2,048 placeholders; a power of two for chunkSizes).
const exportLogRows = 256

func exportLogInsertQuery(rows int) string {
	return `INSERT INTO export_log (kind, record_key, source, severity, namespace, only_export, payload, created_at) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, 0, ?, ?), ", rows), ", ")
}

// enqueueExports is EnqueueExports inside the caller's transaction: the
// alert ingest calls it in the transaction that stores the alerts, so an
// alert is accepted if and only if it is in the export log.
//
// Items made by the store itself (trusted: the alert ingest's and the KEV
// findings', marshalled just before) skip the payload's JSON validation,
// which cost as much as a third of appending a record.
func (s *Store) enqueueExports(ctx context.Context, tx *sql.Tx, items []ExportItem, trusted bool) (int, error) {
	if len(items) == 0 {
		return 0, nil
	}
	for i := range items {
		if trusted {
			break
		}
		it := &items[i]
		if it.Key == "" || len(it.Key) > 256 {
			return 0, invalid("export item %d: key must be 1-256 bytes", i)
		}
		if it.Kind != ExportKindAlert && it.Kind != ExportKindFinding && it.Kind != ExportKindPosture {
			return 0, invalid("export item %s: kind %q", it.Key, it.Kind)
		}
		if !json.Valid(it.Payload) {
			return 0, invalid("export item %s: payload is not JSON", it.Key)
		}
	}
	exps, err := s.exportFilters(ctx, tx)
	if err != nil || len(exps) == 0 {
		return 0, err
	}
	return s.appendExportLog(ctx, tx, nil, exps, items)
}

// appendExportLog writes the items some export in exps takes to the log.
// On PostgreSQL with conn (the connection tx runs on) they are written
// with COPY.
func (s *Store) appendExportLog(ctx context.Context, tx *sql.Tx, conn *sql.Conn, exps []exportFilterRow, items []ExportItem) (int, error) {
	// Only records some export takes are written (filtering here costs a
	// few comparisons; a record nobody takes would cost a row).
	keep := make([]*ExportItem, 0, len(items))
	for i := range items {
		for _, e := range exps {
			if e.filter.Match(&items[i]) {
				keep = append(keep, &items[i])
				break
			}
		}
	}
	if len(keep) == 0 {
		return 0, nil
	}
	if s.d == postgresDialect && conn != nil {
		if err := copyExportLog(ctx, conn, &s.bufs, keep, s.now()); err != nil {
			return 0, err
		}
		return len(keep), nil
	}
	now := s.ts(s.now())
	if s.d == postgresDialect {
		// One statement over arrays (unnest): planned once, values binary
		// encoded; WITH ORDINALITY keeps the batch's order in seq.
		n := len(keep)
		kinds, keys, sources, nss, payloads := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n),
			make([]string, 0, n), make([]string, 0, n)
		sevs := make([]int16, 0, n)
		for _, it := range keep {
			kinds, keys, sources = append(kinds, it.Kind), append(keys, it.Key), append(sources, it.Source)
			nss, payloads, sevs = append(nss, it.Namespace), append(payloads, string(it.Payload)), append(sevs, int16(it.Severity))
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO export_log (kind, record_key, source, severity, namespace, payload, created_at)
			SELECT k, r, src, sev, ns, p, $7 FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[], $5::text[], $6::text[])
				WITH ORDINALITY AS t(k, r, src, sev, ns, p, n) ORDER BY n`, kinds, keys, sources, sevs, nss, payloads, now)
		if err != nil {
			return 0, err
		}
		return n, nil
	}
	args := make([]any, 0, 7*min(len(keep), exportLogRows))
	start := 0
	for _, size := range chunkSizes(len(keep), exportLogRows) {
		args = args[:0]
		for _, it := range keep[start : start+size] {
			args = append(args, it.Kind, it.Key, it.Source, int(it.Severity), it.Namespace, string(it.Payload), now)
		}
		start += size
		if _, err := s.execStmt(ctx, tx, exportLogInsertQuery(size), args...); err != nil {
			return 0, err
		}
	}
	return len(keep), nil
}

type exportFilterRow struct {
	id     int64
	filter ExportFilter
}

// exportFilters reads the enabled exports' filters inside tx. It is one
// small query per accepted batch; caching it would let another replica's
// new export miss records.
func (s *Store) exportFilters(ctx context.Context, q querier) ([]exportFilterRow, error) {
	rows, err := s.query(ctx, q, `SELECT id, min_severity, sources, namespaces, kinds FROM exports WHERE enabled = ?`, true)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []exportFilterRow
	for rows.Next() {
		var r exportFilterRow
		var sources, namespaces, kinds string
		if err := rows.Scan(&r.id, &r.filter.MinSeverity, &sources, &namespaces, &kinds); err != nil {
			return nil, err
		}
		r.filter.Sources, r.filter.Namespaces, r.filter.Kinds = splitList(sources), splitList(namespaces), splitList(kinds)
		out = append(out, r)
	}
	return out, rows.Err()
}

// logPos is a position in the export log: the writing transaction's id
// (PostgreSQL; 0 on SQLite) and the record's sequence number. Records are
// read in (xid, seq) order.
type logPos struct{ xid, seq int64 }

func (p logPos) less(q logPos) bool { return p.xid < q.xid || (p.xid == q.xid && p.seq < q.seq) }

// before is the position just before p: every record before p is at or
// before it, p itself is after it (seq is an integer).
func (p logPos) before() logPos { return logPos{p.xid, p.seq - 1} }

// OutboxRecord is a leased record of the export log (ID is its sequence
// number) or a dead letter (ID is the dead letter's id).
type OutboxRecord struct {
	// ID is the log sequence number of a leased record (XID, ID is its
	// position: XID is the writing transaction's id on PostgreSQL, 0 on
	// SQLite), or the id of a dead letter.
	XID      int64
	ID       int64
	ExportID int64
	Kind     string
	Key      string
	// Payload is the record (the JSON of internal/export.Record). Of a
	// leased record it is read-only: it shares memory with the store's
	// log window and the other exports' leases.
	Payload json.RawMessage
	// Attempts counts failed deliveries: of a leased record, the export's
	// consecutive failures (the head of the log is what failed); of a dead
	// letter, those before it died. A lease that expired is not counted:
	// its outcome is unknown.
	Attempts  int
	LastError string
	CreatedAt time.Time
	UpdatedAt time.Time

	pos logPos
}

// OutboxLease proves the right to finish a leased batch: the export's
// lease token, the cursor the batch starts after, and the batch.
type OutboxLease struct {
	ExportID int64
	Token    string
	// IDs are the leased records' sequence numbers, in delivery order.
	IDs []int64
	// Idle, with no records, says the export was free and not backing
	// off but had nothing due (so a worker need not read the export to
	// learn its backoff). The lease is already released.
	Idle bool

	from, end logPos   // cursor at lease time; last log row the batch covers
	ahead     []logPos // the export's settled_ahead at lease time
	recs      []OutboxRecord
	row       exportLeaseRow // the export's filter and state, for the next batch
}

// exportLeaseRow is what a lease needs of the export row.
type exportLeaseRow struct {
	cursor    logPos
	ahead     []logPos // settled records after the cursor
	failures  int
	lastError string
	filter    ExportFilter
}

// parseAhead reads exports.settled_ahead ("xid.seq,xid.seq").
func parseAhead(s string) []logPos {
	var out []logPos
	for _, f := range splitList(s) {
		x, q, ok := strings.Cut(f, ".")
		xi, err1 := strconv.ParseInt(x, 10, 64)
		qi, err2 := strconv.ParseInt(q, 10, 64)
		if ok && err1 == nil && err2 == nil {
			out = append(out, logPos{xi, qi})
		}
	}
	return out
}

func formatAhead(ps []logPos) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(p.xid, 10))
		b.WriteByte('.')
		b.WriteString(strconv.FormatInt(p.seq, 10))
	}
	return b.String()
}

// maxLeaseScan bounds the log rows one lease reads past the cursor while
// looking for records the export's filter takes.
const maxLeaseScan = 4096

// LeaseExportBatch leases the head of an export's share of the log — up
// to n records after its cursor that its filter takes — for leaseFor. The
// lease is a token on the export row: while it holds, no other worker, in
// this process or another replica, leases the same export, so records are
// delivered in order, and only the holder moves the cursor
// (FinishExportBatch is fenced by the token). It returns nothing while
// another worker holds the export, while the export is backing off after a
// failure, when it is disabled, or when nothing is due. The lease ends
// with FinishExportBatch or ReleaseExportBatch, or when it expires (its
// worker died): then the same records are leased again, since the cursor
// did not move.
func (s *Store) LeaseExportBatch(ctx context.Context, exportID int64, worker string, n int, leaseFor time.Duration) ([]OutboxRecord, OutboxLease, error) {
	if n <= 0 || leaseFor <= 0 {
		return nil, OutboxLease{}, fmt.Errorf("lease export batch: %w", invalid("want n > 0 and a positive lease"))
	}
	op := fmt.Sprintf("lease export %d batch", exportID)
	var tok [12]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, OutboxLease{}, fmt.Errorf("%s: %w", op, err)
	}
	lease := OutboxLease{ExportID: exportID, Token: hex.EncodeToString(tok[:]) + "-" + outboxCut(worker, 64)}
	now := s.now()
	var row exportLeaseRow
	var sources, namespaces, kinds, ahead string
	err := s.queryRow(ctx, s.w, `UPDATE exports SET lease_token = ?, lease_until = ?
		WHERE id = ? AND enabled = ? AND (retry_at IS NULL OR retry_at <= ?) AND (lease_until IS NULL OR lease_until <= ?)
		RETURNING cursor_xid, cursor_seq, settled_ahead, failures, last_error, min_severity, sources, namespaces, kinds`,
		lease.Token, s.ts(now.Add(leaseFor)), exportID, true, s.ts(now), s.ts(now)).Scan(&row.cursor.xid, &row.cursor.seq,
		&ahead, &row.failures, &row.lastError, &row.filter.MinSeverity, &sources, &namespaces, &kinds)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, OutboxLease{}, nil // held by another worker, backing off, disabled or gone
	}
	if err != nil {
		return nil, OutboxLease{}, s.wrapErr(op, err)
	}
	row.filter.Sources, row.filter.Namespaces, row.filter.Kinds = splitList(sources), splitList(namespaces), splitList(kinds)
	row.ahead = parseAhead(ahead)
	lease.from, lease.ahead, lease.row = row.cursor, row.ahead, row
	return s.fillLease(ctx, lease, n, op)
}

// ExportHasWork reports, with reads only, whether leasing the export now
// could find records: it is enabled and not backing off (due) and the log
// holds rows after its cursor (work; its filter may still skip them).
// Idle delivery workers ask it before LeaseExportBatch, which takes and
// then gives back the export's lease — two writes, on SQLite two turns of
// the one writer the ingest needs — to find nothing. A row committed just
// after it answered is found by the next poll.
func (s *Store) ExportHasWork(ctx context.Context, exportID int64) (due, work bool, err error) {
	// The probe is a plain ORDER BY … LIMIT 1 on the log's key, with the
	// cursor passed as parameters, so it is one index descent. Written as
	// EXISTS (…) — which drops the subquery's ORDER BY and LIMIT — and with
	// the cursor as an outer reference, PostgreSQL planned a sequential
	// scan that, once the exports had caught up, read the whole log and
	// the dead rows of its purged part on every probe (2.4 ms each; ~33 µs
	// of backend CPU per alert delivered at 16,000 alerts/s).
	op := fmt.Sprintf("export %d: look for work", exportID)
	var cur logPos
	err = s.queryRow(ctx, s.r, `SELECT (enabled = ? AND (retry_at IS NULL OR retry_at <= ?)), cursor_xid, cursor_seq
		FROM exports WHERE id = ?`, true, s.ts(s.now()), exportID).Scan(boolCol{&due}, &cur.xid, &cur.seq)
	if errors.Is(err, sql.ErrNoRows) {
		return false, false, nil
	}
	if err != nil || !due {
		return false, false, s.wrapErr(op, err)
	}
	q, args := s.exportProbe(cur)
	var next int64
	switch err := s.queryRow(ctx, s.r, q, args...).Scan(&next); {
	case errors.Is(err, sql.ErrNoRows):
		return true, false, nil
	case err != nil:
		return false, false, s.wrapErr(op, err)
	}
	return true, true, nil
}

// exportProbe is ExportHasWork's look for a log row after cur: the first
// row by the log's key, so that it is one index descent
// (TestExportProbeUsesIndex holds PostgreSQL's plan to that).
func (s *Store) exportProbe(cur logPos) (string, []any) {
	if s.d == postgresDialect {
		return `SELECT seq FROM export_log WHERE (xid, seq) > (?, ?)
			AND xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint ORDER BY xid, seq LIMIT 1`, []any{cur.xid, cur.seq}
	}
	return `SELECT seq FROM export_log WHERE seq > ? ORDER BY seq LIMIT 1`, []any{cur.seq}
}

// fillLease reads the next batch of a held lease (lease.row.cursor is its
// start). Log rows the filter skips are moved past (fenced by the token).
// With nothing to deliver the lease is released and nothing returned.
func (s *Store) fillLease(ctx context.Context, lease OutboxLease, n int, op string) ([]OutboxRecord, OutboxLease, error) {
	row := &lease.row
	scan := min(max(4*n, 256), maxLeaseScan)
	for range 8 {
		recs, end, scanned, err := s.readExportLog(ctx, lease.ExportID, row, n, scan, true)
		if err != nil {
			_ = s.ReleaseExportBatch(context.WithoutCancel(ctx), lease)
			return nil, OutboxLease{}, s.wrapErr(op, err)
		}
		if len(recs) > 0 {
			lease.end, lease.recs = end, recs
			lease.IDs = make([]int64, 0, len(recs))
			for _, r := range recs {
				lease.IDs = append(lease.IDs, r.ID)
			}
			return recs, lease, nil
		}
		if scanned == 0 {
			break
		}
		// Only records the filter skips: move past them (fenced) and look
		// further.
		res, err := s.exec(ctx, s.w, `UPDATE exports SET cursor_xid = ?, cursor_seq = ? WHERE id = ? AND lease_token = ?`,
			end.xid, end.seq, lease.ExportID, lease.Token)
		if err != nil {
			return nil, OutboxLease{}, s.wrapErr(op, err)
		}
		if k, _ := res.RowsAffected(); k != 1 {
			return nil, OutboxLease{}, nil // lease taken over meanwhile
		}
		row.cursor, lease.from = end, end
		if scanned < scan {
			break
		}
	}
	// Nothing to deliver: do not keep the export leased.
	if err := s.ReleaseExportBatch(ctx, lease); err != nil {
		return nil, OutboxLease{}, err
	}
	return nil, OutboxLease{ExportID: lease.ExportID, Idle: true}, nil
}

// readExportLog reads up to scan log rows after row.cursor and returns
// the first n its filter takes (with payload when withPayload), the
// position of the last row they cover (the n-th record, or the last row
// read), and how many rows it read. On PostgreSQL only rows of
// transactions below the snapshot's xmin are read (see migration 0009):
// no row can later appear before them.
//
// Deliveries (withPayload) are served from the log window when it holds
// the cursor: every export reads the same rows, and the window keeps those
// the first reader read (see exportLogWindow).
func (s *Store) readExportLog(ctx context.Context, exportID int64, row *exportLeaseRow, n, scan int, withPayload bool) ([]OutboxRecord, logPos, int, error) {
	if !withPayload {
		return s.readExportLogDB(ctx, exportID, row, row.cursor, n, scan, false)
	}
	var out []OutboxRecord
	var end logPos
	from, scanned, waited := row.cursor, 0, false
	for len(out) < n && scanned < scan {
		if rows := s.logWindow.after(from, scan-scanned); len(rows) > 0 {
			got, e, k := pickLogRows(exportID, row, rows, n-len(out))
			out, end, from, scanned, waited = appendRecords(out, got), e, e, scanned+k, false
			continue
		}
		// Not in the window: read from the database, unless another
		// export is reading the same rows right now (the workers poll
		// together): then wait for its read and take them from the window.
		wait, release := s.logWindow.claim(from)
		if wait != nil && !waited {
			waited = true
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, logPos{}, 0, ctx.Err()
			}
			continue
		}
		got, e, k, err := s.readExportLogDB(ctx, exportID, row, from, n-len(out), scan-scanned, true)
		if release != nil {
			release()
		}
		if err != nil {
			return nil, logPos{}, 0, err
		}
		out, scanned = appendRecords(out, got), scanned+k
		if k > 0 {
			end = e
		}
		break // the database read reached what there is
	}
	return out, end, scanned, nil
}

// appendRecords appends got to out; the common case, one piece, is got
// itself (no copy of a batch of records).
func appendRecords(out, got []OutboxRecord) []OutboxRecord {
	if len(out) == 0 {
		return got
	}
	return append(out, got...)
}

// readExportLogDB is readExportLog from the database, after cursor from.
//
// The rows are scanned into one reused row (one set of scan destinations
// per read, not per row) and the payload keeps the driver's string: both
// drivers return TEXT as a freshly allocated string, so the payload bytes
// are that string's memory (payloadBytes) instead of a second copy. Log
// rows and leased records are read-only (see OutboxRecord.Payload).
func (s *Store) readExportLogDB(ctx context.Context, exportID int64, row *exportLeaseRow, from logPos, n, scan int, withPayload bool) ([]OutboxRecord, logPos, int, error) {
	payload := `''`
	if withPayload {
		payload = `payload`
	}
	// kind, source and namespace come as one column (each string the
	// driver returns is an allocation; see splitLogFilterCols).
	var rows *sql.Rows
	var err error
	if s.d == postgresDialect {
		rows, err = s.r.QueryContext(ctx, `SELECT xid, seq, kind || chr(31) || source || chr(31) || namespace, record_key, severity, only_export, `+payload+`, created_at
			FROM export_log WHERE (xid, seq) > ($1, $2) AND xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
			ORDER BY xid, seq LIMIT $3`, from.xid, from.seq, scan)
	} else {
		rows, err = s.r.QueryContext(ctx, `SELECT 0, seq, kind || char(31) || source || char(31) || namespace, record_key, severity, only_export, `+payload+`, created_at
			FROM export_log WHERE seq > ? ORDER BY seq LIMIT ?`, from.seq, scan)
	}
	if err != nil {
		return nil, logPos{}, 0, err
	}
	defer rows.Close()
	bufp, _ := s.logRowBufs.Get().(*[]logRow)
	if bufp == nil {
		bufp = new([]logRow)
	}
	read := (*bufp)[:0]
	defer func() {
		clear(read[:cap(read)]) // drop the references (the rows live on in the window and the records)
		*bufp = read[:0]
		s.logRowBufs.Put(bufp)
	}()
	var cur logRow
	var p, filterCols string
	var severity int64
	dest := []any{&cur.pos.xid, &cur.pos.seq, &filterCols, &cur.key, &severity, &cur.only, &p, tcol(&cur.createdAt)}
	taken := 0
	for rows.Next() {
		p, cur.only = "", 0
		if err := rows.Scan(dest...); err != nil {
			return nil, logPos{}, 0, err
		}
		var ok bool
		if cur.kind, cur.source, cur.namespace, ok = splitLogFilterCols(filterCols); !ok {
			return nil, logPos{}, 0, fmt.Errorf("export log row %d: malformed kind, source and namespace %q", cur.pos.seq, outboxCut(filterCols, 100))
		}
		cur.severity = alerts.Severity(severity)
		cur.payload = payloadBytes(p)
		read = append(read, cur)
		if takesLogRow(exportID, row, &cur) {
			if taken++; taken == n {
				break
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, logPos{}, 0, err
	}
	// The same choice as the loop above, over the rows it read.
	out, end, scanned := pickLogRows(exportID, row, read, n)
	if withPayload {
		s.logWindow.add(from, read)
	}
	return out, end, scanned, nil
}

// splitLogFilterCols splits "kind US source US namespace" (US is the unit
// separator, 0x1f): kind and source are names without it (Export kinds,
// alert sources), the namespace is the rest, whatever it holds.
func splitLogFilterCols(v string) (kind, source, namespace string, ok bool) {
	kind, rest, ok1 := strings.Cut(v, "\x1f")
	source, namespace, ok2 := strings.Cut(rest, "\x1f")
	return kind, source, namespace, ok1 && ok2
}

// payloadBytes is a payload read as a string, as bytes sharing its
// memory: the string is never changed, and neither are the bytes (log
// rows and leased records are read-only).
func payloadBytes(p string) json.RawMessage {
	if p == "" {
		return json.RawMessage{}
	}
	return unsafe.Slice(unsafe.StringData(p), len(p))
}

// logRow is one export log row as read (every export's share of it).
type logRow struct {
	pos                          logPos
	kind, key, source, namespace string
	severity                     alerts.Severity
	only                         int64
	payload                      json.RawMessage
	createdAt                    time.Time
}

// takesLogRow reports whether an export delivers a log row.
func takesLogRow(exportID int64, row *exportLeaseRow, r *logRow) bool {
	if slices.Contains(row.ahead, r.pos) {
		return false // settled already (delivered behind a retried record)
	}
	// Records put back for one export were filtered when they were first
	// written.
	if r.only != 0 {
		return r.only == exportID
	}
	it := ExportItem{Kind: r.kind, Source: r.source, Severity: r.severity, Namespace: r.namespace}
	return row.filter.Match(&it)
}

// pickLogRows returns the first n of rows (consecutive log rows after the
// export's cursor) the export takes, the position of the last row they
// cover (the n-th record, or the last row), and how many rows that is.
func pickLogRows(exportID int64, row *exportLeaseRow, rows []logRow, n int) ([]OutboxRecord, logPos, int) {
	out := make([]OutboxRecord, 0, min(n, len(rows)))
	var end logPos
	scanned := 0
	for i := range rows {
		r := &rows[i]
		scanned++
		end = r.pos
		if !takesLogRow(exportID, row, r) {
			continue
		}
		out = append(out, logRecord(exportID, row, r))
		if len(out) == n {
			break
		}
	}
	return out, end, scanned
}

// logRecord is the leased record of a log row.
func logRecord(exportID int64, row *exportLeaseRow, r *logRow) OutboxRecord {
	rec := OutboxRecord{XID: r.pos.xid, ID: r.pos.seq, ExportID: exportID, Kind: r.kind, Key: r.key, Payload: r.payload,
		Attempts: row.failures, CreatedAt: r.createdAt, UpdatedAt: r.createdAt, pos: r.pos}
	if row.failures != 0 {
		rec.LastError = row.lastError
	}
	return rec
}

func outboxCut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// OutboxOutcome is what became of a leased batch.
type OutboxOutcome struct {
	// Done were delivered.
	Done []int64
	// Retry failed for a reason that may pass (receiver down, 5xx,
	// timeout, 429): they are leased again after the export's backoff,
	// before anything behind them (order kept). Leased ids in no list are
	// retried too.
	Retry []int64
	// Dead were refused for good (a 4xx for that record): they are copied
	// to the export's dead letters at once.
	Dead []int64
	// Err describes the failure (for Retry and Dead, and the export's
	// last error).
	Err string
	// MaxAge turns retried records older than it into dead letters (0:
	// never).
	MaxAge time.Duration
}

// ErrOutboxLeaseLost: the batch's lease was no longer held (it expired
// and another worker leased the export, or the batch was finished
// already). Nothing of the outcome was recorded; the other worker
// delivers the records.
var ErrOutboxLeaseLost = errors.New("export lease lost")

// Backoff of an export after consecutive failed deliveries:
// ExportBackoffBase·2^(failures-1), at most ExportBackoffMax, plus up to
// 20% jitter.
const (
	ExportBackoffBase = time.Second
	ExportBackoffMax  = 5 * time.Minute
)

// ExportBackoff is the delay after the given number of consecutive
// failures (exported for the delivery workers' tests and status).
func ExportBackoff(failures int) time.Duration {
	d := ExportBackoffMax
	if failures < 20 {
		d = min(ExportBackoffBase<<max(failures-1, 0), ExportBackoffMax)
	}
	return d + time.Duration(mrand.Int64N(int64(d)/5+1))
}

// FinishExportBatch records the outcome of a leased batch and ends the
// lease, in one transaction fenced by the lease's token: the export's
// cursor moves past the longest settled head of the batch (delivered or
// dead records, and the log rows its filter skipped among them), dead
// records in that head are copied to its dead letters, and the export's
// delivery state (failures, backoff, counters, last error) is updated. A
// record retried stops the cursor before it: it is delivered again after
// the backoff, before anything behind it; records settled behind it are
// remembered on the export (settled_ahead) and not delivered again.
// IDs outside the lease are ignored. A lease no longer held records
// nothing and returns ErrOutboxLeaseLost.
func (s *Store) FinishExportBatch(ctx context.Context, l OutboxLease, o OutboxOutcome) (retryAt time.Time, err error) {
	retryAt, _, _, err = s.finishExportBatch(ctx, l, o, 0)
	return retryAt, err
}

// FinishAndNextExportBatch is FinishExportBatch followed, when the whole
// batch was settled, by the next batch under the same lease, extended by
// leaseFor in the same transaction: the export is not leased again, so a
// worker draining a backlog writes once per batch (on SQLite, whose one
// writer the ingest keeps busy, that halved the turns a worker waits
// for). next is empty when the batch was not all settled (backoff), or
// when nothing more is due (the lease is then released).
func (s *Store) FinishAndNextExportBatch(ctx context.Context, l OutboxLease, o OutboxOutcome, n int, leaseFor time.Duration) (retryAt time.Time, next []OutboxRecord, nl OutboxLease, err error) {
	if n <= 0 || leaseFor <= 0 {
		return time.Time{}, nil, OutboxLease{}, fmt.Errorf("finish export batch: %w", invalid("want n > 0 and a positive lease"))
	}
	retryAt, kept, ahead, err := s.finishExportBatch(ctx, l, o, leaseFor)
	if err != nil || !kept {
		return retryAt, nil, OutboxLease{}, err
	}
	nl = OutboxLease{ExportID: l.ExportID, Token: l.Token, from: l.end, ahead: ahead, row: l.row}
	nl.row.cursor, nl.row.ahead, nl.row.failures, nl.row.lastError = l.end, ahead, 0, ""
	next, nl, err = s.fillLease(ctx, nl, n, fmt.Sprintf("lease export %d batch", l.ExportID))
	return retryAt, next, nl, err
}

// finishExportBatch records an outcome; with keep > 0 and the whole batch
// settled it keeps the lease for keep more (kept), else it ends it.
func (s *Store) finishExportBatch(ctx context.Context, l OutboxLease, o OutboxOutcome, keep time.Duration) (retryAt time.Time, kept bool, ahead []logPos, err error) {
	now := s.now()
	const (
		unsettled = iota
		done
		dead
	)
	state := make(map[int64]int, len(l.IDs))
	for _, id := range o.Done {
		state[id] = done
	}
	for _, id := range o.Dead {
		state[id] = dead
	}
	retried := 0
	for _, id := range o.Retry {
		if slices.Contains(l.IDs, id) {
			retried++
		}
		state[id] = unsettled
	}
	// The cursor moves past the settled head of the batch; records
	// settled behind a retried one are remembered (settled_ahead) so that
	// they are not delivered again.
	cursor, blocked := l.end, false
	var delivered int
	var deadRecs []*OutboxRecord
	for i := range l.recs {
		r := &l.recs[i]
		st := state[r.ID]
		if st == unsettled && o.MaxAge > 0 && !r.CreatedAt.After(now.Add(-o.MaxAge)) {
			st = dead // too old to retry
		}
		switch {
		case st == unsettled:
			if !blocked {
				cursor, blocked = r.pos.before(), true
			}
			continue
		case st == done:
			delivered++
		default:
			deadRecs = append(deadRecs, r)
		}
		if blocked {
			ahead = append(ahead, r.pos)
		}
	}
	for _, p := range l.ahead {
		if cursor.less(p) && !slices.Contains(ahead, p) {
			ahead = append(ahead, p)
		}
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var token string
		var failures int
		var cur logPos
		err := s.queryRow(ctx, tx, `SELECT lease_token, failures, cursor_xid, cursor_seq FROM exports WHERE id = ?`+s.d.forUpdate,
			l.ExportID).Scan(&token, &failures, &cur.xid, &cur.seq)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (token != l.Token || l.Token == "" || cur != l.from)) {
			return ErrOutboxLeaseLost
		}
		if err != nil {
			return err
		}
		for _, r := range deadRecs {
			if _, err := s.exec(ctx, tx, `INSERT INTO export_dead (export_id, seq, kind, record_key, payload, attempts, last_error,
				created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, l.ExportID, r.ID, r.Kind, r.Key, string(r.Payload),
				failures+1, o.Err, s.ts(r.CreatedAt), s.ts(now)); err != nil {
				return err
			}
		}
		set := `cursor_xid = ?, cursor_seq = ?, settled_ahead = ?, delivered = delivered + ?, failed = failed + ?,
			dead_total = dead_total + ?, lease_token = '', lease_until = NULL`
		args := []any{cursor.xid, cursor.seq, formatAhead(ahead), delivered, retried + len(o.Dead), len(deadRecs)}
		if keep > 0 && retried == 0 && !blocked {
			kept = true
			set = `cursor_xid = ?, cursor_seq = ?, settled_ahead = ?, delivered = delivered + ?, failed = failed + ?,
				dead_total = dead_total + ?, lease_until = ?`
			args = append(args, s.ts(now.Add(keep)))
		}
		switch {
		case retried > 0 || blocked:
			retryAt = now.Add(ExportBackoff(failures + 1))
			set += `, failures = failures + 1, retry_at = ?, last_error = ?, last_error_at = ?`
			args = append(args, s.ts(retryAt), o.Err, s.ts(now))
		case len(deadRecs) > 0:
			set += `, failures = 0, retry_at = NULL, last_success_at = ?, last_error = ?, last_error_at = ?`
			args = append(args, s.ts(now), o.Err, s.ts(now))
		default:
			set += `, failures = 0, retry_at = NULL, last_success_at = ?`
			args = append(args, s.ts(now))
		}
		_, err = s.exec(ctx, tx, `UPDATE exports SET `+set+` WHERE id = ?`, append(args, l.ExportID)...)
		return err
	})
	if errors.Is(err, ErrOutboxLeaseLost) {
		return time.Time{}, false, nil, fmt.Errorf("finish export %d batch: %w", l.ExportID, ErrOutboxLeaseLost)
	}
	if err != nil {
		return time.Time{}, false, nil, s.wrapErr(fmt.Sprintf("finish export %d batch", l.ExportID), err)
	}
	return retryAt, kept, ahead, nil
}

// ReleaseExportBatch ends a lease without recording anything (graceful
// shutdown in the middle of a delivery): the records are leased again,
// at once, by the next worker.
func (s *Store) ReleaseExportBatch(ctx context.Context, l OutboxLease) error {
	_, err := s.exec(ctx, s.w, `UPDATE exports SET lease_token = '', lease_until = NULL WHERE id = ? AND lease_token = ?`,
		l.ExportID, l.Token)
	if err != nil {
		return s.wrapErr(fmt.Sprintf("release export %d batch", l.ExportID), err)
	}
	return nil
}

func int64Args(ids []int64) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// OutboxStats is an export's share of the log, for its status and
// metrics.
type OutboxStats struct {
	// Pending counts the records after the export's cursor its filter
	// takes: exact up to maxStatsScan records behind, beyond that the
	// remaining log rows are counted unfiltered.
	Pending int
	// Behind counts every log row after the cursor (the lag in records,
	// whatever the filter).
	Behind int
	Dead   int
	// Oldest is the creation time of the oldest pending record (zero when
	// none): the export's lag.
	Oldest time.Time
}

// exportCursorRow reads an export's cursor and filter, as the statistics
// (ExportOutboxStats, ExportLagStats) read the log behind it.
func (s *Store) exportCursorRow(ctx context.Context, exportID int64) (exportLeaseRow, error) {
	var row exportLeaseRow
	var sources, namespaces, kinds, ahead string
	err := s.queryRow(ctx, s.r, `SELECT cursor_xid, cursor_seq, settled_ahead, min_severity, sources, namespaces, kinds
		FROM exports WHERE id = ?`, exportID).Scan(&row.cursor.xid, &row.cursor.seq, &ahead, &row.filter.MinSeverity,
		&sources, &namespaces, &kinds)
	if err != nil {
		return row, err
	}
	row.filter.Sources, row.filter.Namespaces, row.filter.Kinds = splitList(sources), splitList(namespaces), splitList(kinds)
	row.ahead = parseAhead(ahead)
	return row, nil
}

// maxStatsScan bounds the rows ExportOutboxStats filters one by one.
const maxStatsScan = 100_000

// ExportOutboxStats counts an export's pending records and dead letters.
func (s *Store) ExportOutboxStats(ctx context.Context, exportID int64) (OutboxStats, error) {
	op := fmt.Sprintf("export %d outbox stats", exportID)
	var st OutboxStats
	row, err := s.exportCursorRow(ctx, exportID)
	if err != nil {
		return st, s.wrapErr(op, err)
	}
	recs, end, scanned, err := s.readExportLog(ctx, exportID, &row, maxStatsScan, maxStatsScan, false)
	if err != nil {
		return st, s.wrapErr(op, err)
	}
	st.Pending, st.Behind = len(recs), scanned
	if len(recs) > 0 {
		st.Oldest = recs[0].CreatedAt
	}
	if scanned == maxStatsScan {
		var more int
		if s.d == postgresDialect {
			err = s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM export_log WHERE (xid, seq) > (?, ?)`, end.xid, end.seq).Scan(&more)
		} else {
			err = s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM export_log WHERE seq > ?`, end.seq).Scan(&more)
		}
		if err != nil {
			return st, s.wrapErr(op, err)
		}
		st.Pending += more
		st.Behind += more
	}
	err = s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM export_dead WHERE export_id = ?`, exportID).Scan(&st.Dead)
	return st, s.wrapErr(op, err)
}

const deadCols = `id, export_id, kind, record_key, payload, attempts, last_error, created_at, updated_at`

// ListDeadExports returns a page of an export's dead letters, newest
// first.
func (s *Store) ListDeadExports(ctx context.Context, exportID int64, p Page) ([]OutboxRecord, int, error) {
	var w where
	w.add(`export_id = ?`, exportID)
	var out []OutboxRecord
	total, err := s.list(ctx, deadCols, "export_dead", &w, " ORDER BY id DESC", p, func(sc scanner) error {
		var r OutboxRecord
		var payload string
		if err := sc.Scan(&r.ID, &r.ExportID, &r.Kind, &r.Key, &payload, &r.Attempts, &r.LastError,
			tcol(&r.CreatedAt), tcol(&r.UpdatedAt)); err != nil {
			return err
		}
		r.Payload = json.RawMessage(payload)
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, 0, s.wrapErr(fmt.Sprintf("list export %d dead letters", exportID), err)
	}
	return out, total, nil
}

// RetryDeadExports puts an export's dead letters back (all of them when
// ids is empty): appended to the log again, for that export only, in the
// order they died, and lifts the export's backoff. Their age is reset, so
// MaxAge counts again from now.
func (s *Store) RetryDeadExports(ctx context.Context, exportID int64, ids []int64) (int, error) {
	if len(ids) > 1000 {
		return 0, fmt.Errorf("retry dead exports: %w", invalid("at most 1000 ids"))
	}
	now := s.ts(s.now())
	cond, args := `export_id = ?`, []any{exportID}
	if len(ids) > 0 {
		cond += ` AND id IN (` + placeholders(len(ids)) + `)`
		args = append(args, int64Args(ids)...)
	}
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `INSERT INTO export_log (kind, record_key, only_export, payload, created_at)
			SELECT kind, record_key, export_id, payload, ? FROM export_dead WHERE `+cond+` ORDER BY id`,
			append([]any{now}, args...)...); err != nil {
			return err
		}
		res, err := s.exec(ctx, tx, `DELETE FROM export_dead WHERE `+cond, args...)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		_, err = s.exec(ctx, tx, `UPDATE exports SET failures = 0, retry_at = NULL WHERE id = ?`, exportID)
		return err
	})
	if err != nil {
		return 0, s.wrapErr(fmt.Sprintf("retry export %d dead letters", exportID), err)
	}
	return int(n), nil
}

// PurgeDeadExports deletes dead letters last touched before t, and those
// of exports deleted meanwhile, whatever their age.
func (s *Store) PurgeDeadExports(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.exec(ctx, s.w, `DELETE FROM export_dead WHERE updated_at < ? OR export_id NOT IN (SELECT id FROM exports)`,
		s.ts(before))
	if err != nil {
		return 0, s.wrapErr("purge dead exports", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// PurgeExportLog deletes the log records every export is done with: those
// at or before the cursor of every enabled export, and of every export
// disabled less than disabledRetention ago. A disabled export thus holds
// the log for that retention only (the log cannot grow without bound
// because an export was switched off and forgotten); re-enabled later, it
// resumes at its cursor with what is left, and the records purged
// meanwhile are not delivered to it. An enabled export whose receiver is
// down holds the log until its records reach their max age and become
// dead letters. It returns how many records it deleted.
func (s *Store) PurgeExportLog(ctx context.Context, disabledRetention time.Duration) (int64, error) {
	rows, err := s.query(ctx, s.w, `SELECT enabled, disabled_at, cursor_xid, cursor_seq FROM exports`)
	if err != nil {
		return 0, s.wrapErr("purge export log", err)
	}
	var low *logPos
	horizon := s.now().Add(-disabledRetention)
	for rows.Next() {
		var enabled bool
		var disabledAt time.Time
		var p logPos
		if err := rows.Scan(boolCol{&enabled}, tcol(&disabledAt), &p.xid, &p.seq); err != nil {
			rows.Close()
			return 0, s.wrapErr("purge export log", err)
		}
		if !enabled && (disabledAt.IsZero() || disabledAt.Before(horizon)) {
			continue
		}
		if low == nil || p.less(*low) {
			low = &p
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, s.wrapErr("purge export log", err)
	}
	var res sql.Result
	switch {
	case low == nil && s.d == postgresDialect:
		// No export needs anything yet written (a new export starts after
		// the committed records).
		res, err = s.exec(ctx, s.w, `DELETE FROM export_log WHERE xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint`)
	case low == nil:
		res, err = s.exec(ctx, s.w, `DELETE FROM export_log`)
	case s.d == postgresDialect:
		res, err = s.exec(ctx, s.w, `DELETE FROM export_log WHERE (xid, seq) <= (?, ?)`, low.xid, low.seq)
	default:
		res, err = s.exec(ctx, s.w, `DELETE FROM export_log WHERE seq <= ?`, low.seq)
	}
	if err != nil {
		return 0, s.wrapErr("purge export log", err)
	}
	if low == nil {
		s.logWindow.purge(logPos{}, true)
	} else {
		s.logWindow.purge(*low, false)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// enqueueKEVFindingExports queues, in the transaction that records them,
// the findings of a diff that are in CISA's Known Exploited
// Vulnerabilities catalog — new ones, and ones that changed (e.g. became
// KEV) — for exports whose filter takes kind "finding". The key names the
// image, vulnerability and package, so receivers with idempotency keys
// see each once.
func (s *Store) enqueueKEVFindingExports(ctx context.Context, tx *sql.Tx, diff *FindingsDiff) error {
	var items []ExportItem
	for _, evs := range [][]FindingEvent{diff.New, diff.Changed} {
		for _, e := range evs {
			if !e.KEV {
				continue
			}
			key := "finding:" + e.ImageDigest + "/" + e.VulnID + "/" + e.Package + "@" + e.Version
			sev := alerts.Severity(e.Severity) // vulndb's numbers; unknown (0) is info
			if !sev.Valid() {
				sev = alerts.SeverityInfo
			}
			a := &alerts.Alert{ID: outboxCut(key, 256), Time: e.At, Source: alerts.SourceScanner, Rule: e.VulnID, Severity: sev,
				Title: fmt.Sprintf("Known exploited vulnerability %s in %s %s (image %s)", e.VulnID, e.Package, e.Version,
					outboxCut(e.ImageDigest, 19)),
				ImageDigest: e.ImageDigest, Fingerprint: e.ImageDigest + "/" + e.VulnID + "/" + e.Package,
			}
			ev, err := json.Marshal(map[string]any{"event": string(e.Kind), "source": string(e.Source), "vulnerability": e.VulnID,
				"package": e.Package, "version": e.Version, "kev": true, "scan_id": e.ScanID})
			if err != nil {
				return err
			}
			a.Evidence = ev
			b, err := json.Marshal(exportPayload{Kind: ExportKindFinding, Alert: a})
			if err != nil {
				return err
			}
			items = append(items, ExportItem{Kind: ExportKindFinding, Key: a.ID, Source: string(alerts.SourceScanner),
				Severity: sev, Payload: b})
		}
	}
	if len(items) == 0 {
		return nil
	}
	_, err := s.enqueueExports(ctx, tx, items, true)
	return err
}

// BackendPIDs lists the PostgreSQL server processes connected to the
// store's database (for benchmarks that add their CPU time to the
// client's); nil on SQLite.
func (s *Store) BackendPIDs(ctx context.Context) ([]int, error) {
	if s.d != postgresDialect {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		return nil, s.wrapErr("backend pids", err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			return nil, s.wrapErr("backend pids", err)
		}
		out = append(out, pid)
	}
	return out, s.wrapErr("backend pids", rows.Err())
}
