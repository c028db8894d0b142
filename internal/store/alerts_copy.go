package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// alertCopyCols are the columns copyAlertGroups writes, in order, and
// their PostgreSQL types as the binary COPY format needs them (text and
// json: the bytes; int2, int8: big-endian; timestamptz: microseconds
// since 2000-01-01 UTC). TestCopyAlertGroupsRoundTrip reads the rows back.
var alertCopyCols = []string{"fingerprint", "source", "rule", "rule_version", "severity", "title", "mitre_tactic",
	"mitre_technique", "cluster", "namespace", "pod", "container", "container_id", "image", "image_digest", "node", "workload",
	"evidence", "source_event_id", "suppression_id", "count", "first_seen", "last_seen", "status"}

var alertCopySQL = `COPY alerts (` + strings.Join(alertCopyCols, ", ") + `) FROM STDIN (FORMAT binary)`

// pgEpochMicros is 2000-01-01 UTC, PostgreSQL's timestamp epoch, in Unix
// microseconds.
const pgEpochMicros = 946684800000000

// copyAlertGroups writes new alert rows with COPY (binary) inside the
// transaction open on conn: PostgreSQL then fills heap pages with several
// rows per call and WAL record (heap_multi_insert) instead of one insert
// per row. Like a plain INSERT it fails on a group opened concurrently
// (unique violation), which the caller's savepoint handles.
//
// The COPY stream is written here directly (pgCopy) rather than through
// pgx's CopyFrom, which boxes every value of every row into an interface
// and looks up its encoder: those were most of the ingest's allocations
// (23 of 28 per alert) and a few µs of CPU per alert.
func copyAlertGroups(ctx context.Context, conn *sql.Conn, gs []*ingestGroup) error {
	w := newPGCopy(64 + len(gs)*768)
	for _, g := range gs {
		a := g.latest
		w.row(len(alertCopyCols))
		w.text(g.key.fingerprint)
		w.text(string(a.Source))
		w.text(a.Rule)
		w.text(a.RuleVersion)
		w.int2(int16(g.maxSeverity))
		for _, s := range [...]string{a.Title, a.MitreTactic, a.MitreTechnique, a.Cluster, a.Namespace, a.Pod, a.Container,
			a.ContainerID, a.Image, a.ImageDigest, a.Node, a.Workload, evidenceText(a.Evidence), a.ID} {
			w.text(s)
		}
		w.int8(g.suppressionID)
		w.int8(g.count)
		w.ts(g.first)
		w.ts(g.last)
		w.text(string(AlertNew))
	}
	return w.send(ctx, conn, alertCopySQL)
}

// copyIngestIDs records the batch's sender ids with COPY (binary) in the
// transaction open on conn, like the alert rows: pgx no longer encodes a
// text array of the ids (one allocation per alert fewer: 5,297 -> 4,283
// per batch of 1000 new alerts), and the backend fills pages several rows
// at a time (its CPU per id measured about the same as the INSERT from
// unnest(), 2.4-3.5 against 3.0-3.8 µs, within the noise). A COPY fails on
// an id recorded before — or by a concurrent transaction, after waiting
// for it to end — exactly as the INSERT does (unique violation), which
// the caller's savepoint handles (TestIngestAlertsConcurrentReplay).
func copyIngestIDs(ctx context.Context, conn *sql.Conn, ids []string, at time.Time) error {
	w := newPGCopy(64 + len(ids)*(len(ids[0])+22))
	for _, id := range ids {
		w.row(2)
		w.text(id)
		w.ts(at)
	}
	return w.send(ctx, conn, `COPY alert_ingests (id, received_at) FROM STDIN (FORMAT binary)`)
}

// exportLogCopySQL is copyExportLog's statement: xid and seq take their
// defaults (the transaction's id; the identity, in stream order).
const exportLogCopySQL = `COPY export_log (kind, record_key, source, severity, namespace, payload, created_at) FROM STDIN (FORMAT binary)`

// copyExportLog appends records to the export log with COPY (binary) in
// the transaction open on conn, in order (the alert ingest's path; see
// copyAlertGroups for why by hand).
func copyExportLog(ctx context.Context, conn *sql.Conn, items []*ExportItem, at time.Time) error {
	w := newPGCopy(64 + len(items)*1024)
	for _, it := range items {
		w.row(7)
		w.text(it.Kind)
		w.text(it.Key)
		w.text(it.Source)
		w.int2(int16(it.Severity))
		w.text(it.Namespace)
		w.bytes(it.Payload)
		w.ts(at)
	}
	return w.send(ctx, conn, exportLogCopySQL)
}

// pgCopy builds a PostgreSQL binary COPY stream: a header, tuples of
// length-prefixed fields (text and json: their bytes; int2, int8:
// big-endian; timestamptz: microseconds since 2000-01-01 UTC), a trailer.
// The column types are the tables' (TestCopyAlertGroupsRoundTrip and the
// export tests read the rows back).
type pgCopy struct{ b []byte }

func newPGCopy(size int) *pgCopy {
	w := &pgCopy{b: make([]byte, 0, size)}
	w.b = append(w.b, "PGCOPY\n\xff\r\n\x00"...)
	w.b = binary.BigEndian.AppendUint32(w.b, 0) // flags
	w.b = binary.BigEndian.AppendUint32(w.b, 0) // header extension length
	return w
}

func (w *pgCopy) row(fields int) { w.b = binary.BigEndian.AppendUint16(w.b, uint16(fields)) }

func (w *pgCopy) text(s string) {
	w.b = binary.BigEndian.AppendUint32(w.b, uint32(len(s)))
	w.b = append(w.b, s...)
}

func (w *pgCopy) bytes(s []byte) {
	w.b = binary.BigEndian.AppendUint32(w.b, uint32(len(s)))
	w.b = append(w.b, s...)
}

func (w *pgCopy) int2(v int16) {
	w.b = binary.BigEndian.AppendUint32(w.b, 2)
	w.b = binary.BigEndian.AppendUint16(w.b, uint16(v))
}

func (w *pgCopy) int8(v int64) {
	w.b = binary.BigEndian.AppendUint32(w.b, 8)
	w.b = binary.BigEndian.AppendUint64(w.b, uint64(v))
}

func (w *pgCopy) ts(t time.Time) { w.int8(t.UnixMicro() - pgEpochMicros) }

// send runs the COPY statement with the stream on conn (the pgx
// connection under database/sql), inside whatever transaction is open
// there.
func (w *pgCopy) send(ctx context.Context, conn *sql.Conn, stmt string) error {
	w.b = binary.BigEndian.AppendUint16(w.b, 0xffff) // trailer: -1
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("copy: driver connection is %T, not pgx", dc)
		}
		_, err := c.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(w.b), stmt)
		return err
	})
}
