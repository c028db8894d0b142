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
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// The export outbox. Records accepted by central (alerts, and optionally
// scan findings and posture results) are copied, in the transaction that
// accepts them, into one outbox row per configured export whose filter
// matches. A delivery worker (internal/export) leases the head of one
// export's queue, delivers it, and deletes the rows; a row moves
//
//	pending ──delivered──▶ (deleted)
//	   │ ▲ failed: attempt counted, the whole export backs off (order kept)
//	   │ └ lease expired (worker died) → the same rows are leased again
//	   └ too old, or refused for good ──▶ dead ──retry──▶ pending
//
// The lease is a token on the export row with an expiry (one worker per
// export at a time, across replicas); finishing a batch is fenced by that
// token, so a worker presumed dead cannot record an outcome once another
// worker has leased the export since (the same fencing as the job queue).
// Leasing does not rewrite the rows, so the happy path costs one insert and
// one delete per record and export. Backoff is per export, not per row,
// because a receiver is down as a whole, and so that a retried batch is
// still delivered before the records queued behind it.

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
	if it.Severity < f.MinSeverity {
		return false
	}
	if len(f.Kinds) == 0 {
		if it.Kind != ExportKindAlert {
			return false
		}
	} else if !slices.Contains(f.Kinds, it.Kind) {
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
	failures, retry_at, delivered, last_success_at, last_error, last_error_at, created_at, updated_at`

func (s *Store) scanExport(sc scanner, decrypt bool) (*Export, error) {
	var e Export
	var sources, namespaces, kinds, config string
	var sealed []byte
	if err := sc.Scan(&e.ID, &e.Name, &e.Type, &e.Origin, boolCol{&e.Enabled}, &e.Filter.MinSeverity, &sources, &namespaces,
		&kinds, &config, &sealed, &e.Version, &e.Failures, tcol(&e.RetryAt), &e.Delivered, tcol(&e.LastSuccessAt),
		&e.LastError, tcol(&e.LastErrorAt), tcol(&e.CreatedAt), tcol(&e.UpdatedAt)); err != nil {
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
	err = s.queryRow(ctx, s.w, `INSERT INTO exports (name, type, origin, enabled, min_severity, sources, namespaces, kinds,
		config, secrets, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		e.Name, e.Type, e.Origin, e.Enabled, int(e.Filter.MinSeverity), strings.Join(e.Filter.Sources, ","),
		strings.Join(e.Filter.Namespaces, ","), strings.Join(e.Filter.Kinds, ","), string(e.Config), sealed,
		s.ts(now), s.ts(now)).Scan(&id)
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
			failures = 0, retry_at = NULL WHERE id = ?`,
			e.Name, e.Type, e.Origin, e.Enabled, int(e.Filter.MinSeverity), strings.Join(e.Filter.Sources, ","),
			strings.Join(e.Filter.Namespaces, ","), strings.Join(e.Filter.Kinds, ","), string(e.Config), sealed,
			s.ts(s.now()), e.ID)
		return err
	})
	if err != nil {
		return nil, s.wrapErr(op, err)
	}
	return s.GetExport(ctx, e.ID)
}

// DeleteExport removes an export and everything queued for it (on
// PostgreSQL the outbox has no foreign key, which would cost every queued
// row a check, so the rows are deleted here).
func (s *Store) DeleteExport(ctx context.Context, id int64) error {
	op := fmt.Sprintf("delete export %d", id)
	var res sql.Result
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if res, err = s.exec(ctx, tx, `DELETE FROM exports WHERE id = ?`, id); err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, `DELETE FROM export_outbox WHERE export_id = ?`, id)
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
	// receivers see, and a record is queued at most once per export.
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

// AlertExportItem makes the outbox item of an accepted alert. The alert
// ingest calls it for each accepted alert and passes the items to
// EnqueueExports (or enqueueExports inside its own transaction).
func AlertExportItem(a *alerts.Alert) (ExportItem, error) {
	b, err := json.Marshal(exportPayload{Kind: ExportKindAlert, Alert: a})
	if err != nil {
		return ExportItem{}, fmt.Errorf("export item of alert %s: %w", a.ID, err)
	}
	return ExportItem{Kind: ExportKindAlert, Key: a.ID, Source: string(a.Source), Severity: a.Severity,
		Namespace: a.Namespace, Payload: b}, nil
}

// EnqueueExports queues items for every enabled export whose filter
// matches, in one transaction, and returns how many outbox rows it wrote.
// An item already queued for an export (same key) is not queued again.
func (s *Store) EnqueueExports(ctx context.Context, items []ExportItem) (int, error) {
	var n int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = s.enqueueExports(ctx, tx, items)
		return err
	})
	if err != nil {
		return 0, s.wrapErr(fmt.Sprintf("enqueue %d export records", len(items)), err)
	}
	return n, nil
}

// exportRowsPerInsert bounds one multi-row INSERT (6 values a row: 3,000
// placeholders, well within both dialects' limits).
const exportRowsPerInsert = 500

// enqueueExports is EnqueueExports inside the caller's transaction: the
// alert ingest calls it in the transaction that stores the alerts, so an
// alert is accepted if and only if its exports are queued.
func (s *Store) enqueueExports(ctx context.Context, tx *sql.Tx, items []ExportItem) (int, error) {
	if len(items) == 0 {
		return 0, nil
	}
	for i := range items {
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
	if s.d == postgresDialect {
		return s.enqueueExportsPG(ctx, tx, exps, items)
	}
	now := s.ts(s.now())
	var args []any
	rows, total := 0, 0
	flush := func() error {
		if rows == 0 {
			return nil
		}
		q := `INSERT INTO export_outbox (export_id, kind, record_key, payload, state, created_at, updated_at) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, 'pending', ?, ?), ", rows), ", ") +
			` ON CONFLICT (export_id, record_key) DO NOTHING`
		res, err := s.exec(ctx, tx, q, args...)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		total += int(n)
		args, rows = args[:0], 0
		return nil
	}
	for i := range items {
		it := &items[i]
		payload := string(it.Payload)
		for _, e := range exps {
			if !e.filter.Match(it) {
				continue
			}
			args = append(args, e.id, it.Kind, it.Key, payload, now, now)
			if rows++; rows == exportRowsPerInsert {
				if err := flush(); err != nil {
					return 0, err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return total, nil
}

// enqueueExportsPG inserts the rows with one statement over arrays
// (unnest): PostgreSQL plans it once, where a multi-row VALUES list of
// thousands of placeholders costs more to parse and bind than to write.
func (s *Store) enqueueExportsPG(ctx context.Context, tx *sql.Tx, exps []exportFilterRow, items []ExportItem) (int, error) {
	var ids []int64
	var kinds, keys, payloads []string
	for i := range items {
		it := &items[i]
		for _, e := range exps {
			if e.filter.Match(it) {
				ids = append(ids, e.id)
				kinds = append(kinds, it.Kind)
				keys = append(keys, it.Key)
				payloads = append(payloads, string(it.Payload))
			}
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	now := s.ts(s.now())
	res, err := s.exec(ctx, tx, `INSERT INTO export_outbox (export_id, kind, record_key, payload, state, created_at, updated_at)
		SELECT e, k, r, p, 'pending', ?, ? FROM unnest(CAST(? AS bigint[]), CAST(? AS text[]), CAST(? AS text[]), CAST(? AS text[]))
			WITH ORDINALITY AS t(e, k, r, p, n) ORDER BY n
		ON CONFLICT (export_id, record_key) DO NOTHING`, now, now, ids, kinds, keys, payloads)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

type exportFilterRow struct {
	id     int64
	filter ExportFilter
}

// exportFilters reads the enabled exports' filters inside tx. It is one
// small query per accepted batch; caching it would let another replica's
// new export miss records.
func (s *Store) exportFilters(ctx context.Context, tx *sql.Tx) ([]exportFilterRow, error) {
	rows, err := s.query(ctx, tx, `SELECT id, min_severity, sources, namespaces, kinds FROM exports WHERE enabled = ?`, true)
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

// OutboxRecord is a leased (or dead) outbox row.
type OutboxRecord struct {
	ID       int64
	ExportID int64
	Kind     string
	Key      string
	Payload  json.RawMessage
	// Attempts counts failed deliveries (a lease that expired is not counted:
	// its outcome is unknown).
	Attempts  int
	LastError string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// OutboxLease proves the right to finish a leased batch (the export's
// lease token and the batch's row ids).
type OutboxLease struct {
	ExportID int64
	Token    string
	IDs      []int64
}

// LeaseExportBatch leases the head of an export's queue — up to n of its
// oldest pending records — for leaseFor. The lease is held on the export,
// not on each row (rows are not rewritten, which is what makes the outbox
// cheap): while it holds, no other worker, in this process or another
// replica, leases the same export, so records are delivered in order. It
// returns nothing while another worker holds the export, while the export
// is backing off after a failure, or when it is disabled. The lease ends
// with FinishExportBatch or ReleaseExportBatch, or when it expires (its
// worker died): then the same records are leased again.
func (s *Store) LeaseExportBatch(ctx context.Context, exportID int64, worker string, n int, leaseFor time.Duration) ([]OutboxRecord, OutboxLease, error) {
	if n <= 0 || leaseFor <= 0 {
		return nil, OutboxLease{}, fmt.Errorf("lease export batch: %w", invalid("want n > 0 and a positive lease"))
	}
	var tok [12]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, OutboxLease{}, fmt.Errorf("lease export batch: %w", err)
	}
	lease := OutboxLease{ExportID: exportID, Token: hex.EncodeToString(tok[:]) + "-" + outboxCut(worker, 64)}
	now := s.now()
	var recs []OutboxRecord
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `UPDATE exports SET lease_token = ?, lease_until = ?
			WHERE id = ? AND enabled = ? AND (retry_at IS NULL OR retry_at <= ?) AND (lease_until IS NULL OR lease_until <= ?)`,
			lease.Token, s.ts(now.Add(leaseFor)), exportID, true, s.ts(now), s.ts(now))
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k != 1 {
			return nil // held by another worker, backing off, disabled or gone
		}
		rows, err := s.query(ctx, tx, `SELECT id, export_id, kind, record_key, payload, attempts, last_error, created_at, updated_at
			FROM export_outbox WHERE export_id = ? AND state = 'pending' ORDER BY id LIMIT ?`, exportID, n)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r OutboxRecord
			var payload string
			if err := rows.Scan(&r.ID, &r.ExportID, &r.Kind, &r.Key, &payload, &r.Attempts, &r.LastError,
				tcol(&r.CreatedAt), tcol(&r.UpdatedAt)); err != nil {
				return err
			}
			r.Payload = json.RawMessage(payload)
			recs = append(recs, r)
			lease.IDs = append(lease.IDs, r.ID)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(recs) == 0 {
			// Nothing to deliver: do not keep the export leased.
			_, err = s.exec(ctx, tx, `UPDATE exports SET lease_token = '', lease_until = NULL WHERE id = ?`, exportID)
		}
		return err
	})
	if err != nil {
		return nil, OutboxLease{}, s.wrapErr(fmt.Sprintf("lease export %d batch", exportID), err)
	}
	return recs, lease, nil
}

func outboxCut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// OutboxOutcome is what became of a leased batch.
type OutboxOutcome struct {
	// Done were delivered: their rows are deleted.
	Done []int64
	// Retry failed for a reason that may pass (receiver down, 5xx,
	// timeout, 429): they stay pending, their attempt is counted, and the
	// export backs off.
	Retry []int64
	// Dead were refused for good (a 4xx for that record): they become
	// dead letters at once.
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
// lease, in one transaction fenced by the lease's token: delivered rows
// are deleted, retried rows stay pending (or become dead once older than
// MaxAge), refused rows become dead, and the export's delivery state
// (failures, backoff, counters, last error) is updated. IDs outside the
// lease are ignored. A lease no longer held records nothing and returns
// ErrOutboxLeaseLost.
func (s *Store) FinishExportBatch(ctx context.Context, l OutboxLease, o OutboxOutcome) (retryAt time.Time, err error) {
	now := s.now()
	in := map[int64]bool{}
	for _, id := range l.IDs {
		in[id] = true
	}
	keep := func(ids []int64) []int64 {
		return slices.DeleteFunc(slices.Clone(ids), func(id int64) bool { return !in[id] })
	}
	done, dead, retry := keep(o.Done), keep(o.Dead), keep(o.Retry)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var token string
		var failures int
		err := s.queryRow(ctx, tx, `SELECT lease_token, failures FROM exports WHERE id = ?`+s.d.forUpdate, l.ExportID).Scan(&token, &failures)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (token != l.Token || l.Token == "")) {
			return ErrOutboxLeaseLost
		}
		if err != nil {
			return err
		}
		// Leased rows are pending ("state = 'pending'" lets PostgreSQL find
		// them through the queue's partial index: the table has no other
		// index on id, see migration 0007).
		delivered := 0
		for ids := range s.idChunks(done) {
			res, err := s.exec(ctx, tx, `DELETE FROM export_outbox WHERE export_id = ? AND state = 'pending' AND `+ids.in,
				append([]any{l.ExportID}, ids.args...)...)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			delivered += int(n)
		}
		for ids := range s.idChunks(dead) {
			if _, err := s.exec(ctx, tx, `UPDATE export_outbox SET state = 'dead', attempts = attempts + 1, last_error = ?,
				updated_at = ? WHERE export_id = ? AND state = 'pending' AND `+ids.in,
				append([]any{o.Err, s.ts(now), l.ExportID}, ids.args...)...); err != nil {
				return err
			}
		}
		for ids := range s.idChunks(retry) {
			state, args := `'pending'`, []any{o.Err, s.ts(now), l.ExportID}
			if o.MaxAge > 0 {
				state = `CASE WHEN created_at <= ? THEN 'dead' ELSE 'pending' END`
				args = append([]any{s.ts(now.Add(-o.MaxAge))}, args...)
			}
			if _, err := s.exec(ctx, tx, `UPDATE export_outbox SET state = `+state+`, attempts = attempts + 1, last_error = ?,
				updated_at = ? WHERE export_id = ? AND state = 'pending' AND `+ids.in, append(args, ids.args...)...); err != nil {
				return err
			}
		}
		if len(retry) > 0 {
			retryAt = now.Add(ExportBackoff(failures + 1))
			_, err := s.exec(ctx, tx, `UPDATE exports SET failures = failures + 1, retry_at = ?, delivered = delivered + ?,
				last_error = ?, last_error_at = ?, lease_token = '', lease_until = NULL WHERE id = ?`,
				s.ts(retryAt), delivered, o.Err, s.ts(now), l.ExportID)
			return err
		}
		q := `UPDATE exports SET failures = 0, retry_at = NULL, delivered = delivered + ?, last_success_at = ?,
			lease_token = '', lease_until = NULL WHERE id = ?`
		args := []any{delivered, s.ts(now), l.ExportID}
		if len(dead) > 0 {
			q = `UPDATE exports SET failures = 0, retry_at = NULL, delivered = delivered + ?, last_success_at = ?,
				last_error = ?, last_error_at = ?, lease_token = '', lease_until = NULL WHERE id = ?`
			args = []any{delivered, s.ts(now), o.Err, s.ts(now), l.ExportID}
		}
		_, err = s.exec(ctx, tx, q, args...)
		return err
	})
	if errors.Is(err, ErrOutboxLeaseLost) {
		return time.Time{}, fmt.Errorf("finish export %d batch: %w", l.ExportID, ErrOutboxLeaseLost)
	}
	if err != nil {
		return time.Time{}, s.wrapErr(fmt.Sprintf("finish export %d batch", l.ExportID), err)
	}
	return retryAt, nil
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

// idSet is a condition "id is one of these" and its arguments.
type idSet struct {
	in   string
	args []any
}

// idChunks splits ids into conditions: on PostgreSQL one array parameter
// for all of them (a constant statement: deleting delivered rows through
// IN lists of 500 placeholders cost 21 µs a row in BenchmarkOutbox, 3.6
// µs with the array); on SQLite IN lists of at most 500.
func (s *Store) idChunks(ids []int64) func(func(idSet) bool) {
	return func(yield func(idSet) bool) {
		if len(ids) == 0 {
			return
		}
		if s.d == postgresDialect {
			yield(idSet{`id = ANY(CAST(? AS bigint[]))`, []any{ids}})
			return
		}
		for c := range slices.Chunk(ids, 500) {
			if !yield(idSet{`id IN (` + placeholders(len(c)) + `)`, int64Args(c)}) {
				return
			}
		}
	}
}

func int64Args(ids []int64) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// OutboxStats is an export's queue, for its status and metrics.
type OutboxStats struct {
	Pending int // waiting or being delivered
	Dead    int
	// Oldest is the creation time of the oldest pending record (zero when
	// none): the export's lag.
	Oldest time.Time
}

// ExportOutboxStats counts an export's outbox rows.
func (s *Store) ExportOutboxStats(ctx context.Context, exportID int64) (OutboxStats, error) {
	var st OutboxStats
	err := s.queryRow(ctx, s.r, `SELECT COUNT(*), MIN(created_at) FROM export_outbox WHERE export_id = ? AND state = 'pending'`,
		exportID).Scan(&st.Pending, tcol(&st.Oldest))
	if err == nil {
		err = s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM export_outbox WHERE export_id = ? AND state = 'dead'`, exportID).Scan(&st.Dead)
	}
	return st, s.wrapErr(fmt.Sprintf("export %d outbox stats", exportID), err)
}

// ListDeadExports returns a page of an export's dead letters, newest
// first.
func (s *Store) ListDeadExports(ctx context.Context, exportID int64, p Page) ([]OutboxRecord, int, error) {
	var w where
	w.add(`export_id = ?`, exportID)
	w.add(`state = 'dead'`)
	var out []OutboxRecord
	total, err := s.list(ctx, `id, export_id, kind, record_key, payload, attempts, last_error, created_at, updated_at`,
		"export_outbox", &w, " ORDER BY id DESC", p, func(sc scanner) error {
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

// RetryDeadExports puts an export's dead letters back in the queue (all
// of them when ids is empty) and lifts the export's backoff. Their age is
// reset, so MaxAge counts again from now.
func (s *Store) RetryDeadExports(ctx context.Context, exportID int64, ids []int64) (int, error) {
	now := s.ts(s.now())
	q := `UPDATE export_outbox SET state = 'pending', attempts = 0, created_at = ?, updated_at = ? WHERE export_id = ? AND state = 'dead'`
	// (The reset created_at also re-sorts nothing: delivery order is by id.)
	args := []any{now, now, exportID}
	if len(ids) > 0 {
		if len(ids) > 1000 {
			return 0, fmt.Errorf("retry dead exports: %w", invalid("at most 1000 ids"))
		}
		q += ` AND id IN (` + placeholders(len(ids)) + `)`
		args = append(args, int64Args(ids)...)
	}
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, q, args...)
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

// PurgeDeadExports deletes dead letters last touched before t, and rows
// queued for an export deleted meanwhile (an ingest that read the export
// list just before DeleteExport committed), whatever their age.
func (s *Store) PurgeDeadExports(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.exec(ctx, s.w, `DELETE FROM export_outbox WHERE state = 'dead' AND updated_at < ?`, s.ts(before))
	if err != nil {
		return 0, s.wrapErr("purge dead exports", err)
	}
	n, _ := res.RowsAffected()
	res, err = s.exec(ctx, s.w, `DELETE FROM export_outbox WHERE export_id NOT IN (SELECT id FROM exports)`)
	if err != nil {
		return 0, s.wrapErr("purge orphaned exports", err)
	}
	k, _ := res.RowsAffected()
	return n + k, nil
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
	_, err := s.enqueueExports(ctx, tx, items)
	return err
}
