package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ExportLag is an export's position behind the head of the export log,
// computed cheaply enough for every Prometheus scrape of every replica
// (ExportOutboxStats, for the API's status, filters up to 100,000 records
// one by one in Go — too much per scrape for a lagging export).
type ExportLag struct {
	// Behind counts the log records after the export's cursor, whatever
	// its filter. SQLite: exact, from the positions of the head and of
	// the first record after the cursor (seq has no holes above the
	// lowest cursor: AUTOINCREMENT in one writer, purges only cut the
	// front), two index lookups. PostgreSQL: an index-only count of at
	// most LagCountCap rows of the (xid, seq) key, plus, beyond the cap,
	// an estimate from the sequence numbers (BehindExact false).
	Behind      int64
	BehindExact bool
	// Pending counts the records after the cursor the export's filter
	// takes. Exact (PendingExact) when at most LagSample records are
	// behind; beyond that, the share of the first LagSample records the
	// filter takes, scaled to Behind.
	Pending      int64
	PendingExact bool
	// Oldest is the creation time of the oldest record the export has not
	// settled that its filter takes (zero when none). When none of the
	// first LagSample records is taken, the creation time of the first
	// record after them: the oldest pending one is that one or newer, so
	// the age reported from it is an upper bound.
	Oldest time.Time
	// Dead counts the export's dead letters (an indexed count).
	Dead int
}

// Bounds of ExportLagStats' work per export.
const (
	// LagSample is how many records after the cursor are read (no
	// payload) to count the pending ones exactly.
	LagSample = 2_000
	// LagCountCap bounds PostgreSQL's count of records behind.
	LagCountCap = 20_000
)

// ExportLagStats computes an export's lag for the metrics: bounded work
// whatever the backlog (LagSample records read, one or two index lookups
// on SQLite, at most LagCountCap index entries counted on PostgreSQL).
func (s *Store) ExportLagStats(ctx context.Context, exportID int64) (ExportLag, error) {
	op := fmt.Sprintf("export %d lag", exportID)
	var lag ExportLag
	row, err := s.exportCursorRow(ctx, exportID)
	if err != nil {
		return lag, s.wrapErr(op, err)
	}
	recs, end, scanned, err := s.readExportLog(ctx, exportID, &row, LagSample, LagSample, false)
	if err != nil {
		return lag, s.wrapErr(op, err)
	}
	if scanned < LagSample {
		// Everything behind was read: exact, nothing else to ask.
		lag.Behind, lag.BehindExact = int64(scanned), true
		lag.Pending, lag.PendingExact = int64(len(recs)), true
	} else {
		if lag.Behind, lag.BehindExact, err = s.exportBehind(ctx, row.cursor); err != nil {
			return lag, s.wrapErr(op, err)
		}
		lag.Behind = max(lag.Behind, int64(scanned))
		lag.Pending = int64(len(recs))
		if rest := lag.Behind - int64(scanned); rest > 0 {
			lag.Pending += (rest*int64(len(recs)) + int64(scanned)/2) / int64(scanned)
		}
	}
	switch {
	case len(recs) > 0:
		lag.Oldest = recs[0].CreatedAt
	case scanned == LagSample:
		if lag.Oldest, err = s.logCreatedAfter(ctx, end); err != nil {
			return lag, s.wrapErr(op, err)
		}
	}
	err = s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM export_dead WHERE export_id = ?`, exportID).Scan(&lag.Dead)
	return lag, s.wrapErr(op, err)
}

// exportBehind counts the log records after cursor (see ExportLag.Behind).
func (s *Store) exportBehind(ctx context.Context, cursor logPos) (int64, bool, error) {
	if s.d != postgresDialect {
		var head, first sql.NullInt64
		err := s.queryRow(ctx, s.r, `SELECT (SELECT MAX(seq) FROM export_log), (SELECT MIN(seq) FROM export_log WHERE seq > ?)`,
			cursor.seq).Scan(&head, &first)
		if err != nil || !first.Valid {
			return 0, true, err
		}
		return head.Int64 - first.Int64 + 1, true, nil
	}
	// The same rows the delivery reads (below the snapshot's xmin), in
	// key order; the largest seq of the counted ones places the cap.
	var n int64
	var lastSeq sql.NullInt64
	err := s.queryRow(ctx, s.r, `SELECT COUNT(*), MAX(seq) FROM (SELECT seq FROM export_log WHERE (xid, seq) > (?, ?)
		AND xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint ORDER BY xid, seq LIMIT ?) t`,
		cursor.xid, cursor.seq, LagCountCap).Scan(&n, &lastSeq)
	if err != nil || n < LagCountCap {
		return n, true, err
	}
	// Beyond the cap: the sequence numbers handed out after the last one
	// counted (the sequence's position, not a scan: seq alone has no
	// index). Values are cached per session (CACHE 1000), taken at insert,
	// not commit, and lost on rollback, so this is an estimate — close for
	// a backlog beyond LagCountCap.
	var more int64
	err = s.queryRow(ctx, s.r, `SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('export_log', 'seq')::regclass), 0) - ?`,
		lastSeq.Int64).Scan(&more)
	return n + max(more, 0), false, err
}

// logCreatedAfter is the creation time of the first log record after p
// (zero when none).
func (s *Store) logCreatedAfter(ctx context.Context, p logPos) (time.Time, error) {
	var t time.Time
	var err error
	if s.d == postgresDialect {
		err = s.queryRow(ctx, s.r, `SELECT created_at FROM export_log WHERE (xid, seq) > (?, ?) ORDER BY xid, seq LIMIT 1`,
			p.xid, p.seq).Scan(tcol(&t))
	} else {
		err = s.queryRow(ctx, s.r, `SELECT created_at FROM export_log WHERE seq > ? ORDER BY seq LIMIT 1`, p.seq).Scan(tcol(&t))
	}
	if err == sql.ErrNoRows {
		return time.Time{}, nil
	}
	return t, err
}
