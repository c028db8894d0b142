package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
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
func copyAlertGroups(ctx context.Context, conn *sql.Conn, bufs *ingestBufs, gs []*ingestGroup) error {
	size := 0
	for _, g := range gs {
		a := g.latest
		size += 2 + 24*4 + 2 + 4*8 + len(g.key.fingerprint) + len(a.Source) + len(a.Rule) + len(a.RuleVersion) + len(a.Title) +
			len(a.MitreTactic) + len(a.MitreTechnique) + len(a.Cluster) + len(a.Namespace) + len(a.Pod) + len(a.Container) +
			len(a.ContainerID) + len(a.Image) + len(a.ImageDigest) + len(a.Node) + len(a.Workload) + len(a.Evidence) + len(a.ID) +
			len(AlertNew) + 2 // {} for no evidence
	}
	w := newPGCopy(bufs, pgCopySize(size, len(gs)))
	for _, g := range gs {
		a := g.latest
		w.row(len(alertCopyCols))
		w.text(g.key.fingerprint)
		w.text(string(a.Source))
		w.text(a.Rule)
		w.text(a.RuleVersion)
		w.int2(int16(g.maxSeverity))
		for _, s := range [...]string{a.Title, a.MitreTactic, a.MitreTechnique, a.Cluster, a.Namespace, a.Pod, a.Container,
			a.ContainerID, a.Image, a.ImageDigest, a.Node, a.Workload} {
			w.text(s)
		}
		w.evidence(a.Evidence)
		w.text(a.ID)
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
func copyIngestIDs(ctx context.Context, conn *sql.Conn, bufs *ingestBufs, ids []string, at time.Time) error {
	size := 0
	for _, id := range ids {
		size += 2 + 4 + len(id) + 4 + 8
	}
	w := newPGCopy(bufs, pgCopySize(size, len(ids)))
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
func copyExportLog(ctx context.Context, conn *sql.Conn, bufs *ingestBufs, items []*ExportItem, at time.Time) error {
	size := 0
	for _, it := range items {
		size += 2 + 7*4 + len(it.Kind) + len(it.Key) + len(it.Source) + 2 + len(it.Namespace) + len(it.Payload) + 8
	}
	w := newPGCopy(bufs, pgCopySize(size, len(items)))
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
//
// The rows are sent as several COPY statements of at most copyChunkRows
// rows each (one after the other in the same transaction, so in order).
// A binary COPY buffers up to 1000 rows before writing them to the table
// (its 64 kB flush threshold counts text-format line bytes, which binary
// rows do not have), and creates one tuple slot per buffered row; every
// slot pins the table's tuple descriptor in the statement's resource
// owner, whose hash (PostgreSQL 15) puts equal pointers in one probe
// chain, so remembering and forgetting n pins costs ~n²/2 probes: profiled
// at 8% of the backend's time for 1000-row COPYs of new alerts and 11%
// for the grouped path (ids). 128 rows per COPY cut that 8-fold for one
// more statement per 128 rows (TestPGCopyChunks).
type pgCopy struct {
	bufs *ingestBufs // where b goes back after send (nil: nowhere)
	pgFields
	rows   int   // rows so far
	chunks []int // offsets in b where each complete stream (chunk) starts
}

// copyChunkRows is the most rows one COPY statement of a pgCopy carries.
const copyChunkRows = 128

// pgCopyHeader starts every binary COPY stream: signature, flags (0),
// header extension length (0).
const pgCopyHeader = "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// pgCopySize is the size of a pgCopy stream of rows tuples of size bytes
// in all: tuples plus a header and trailer per chunk.
func pgCopySize(size, rows int) int {
	return size + (rows/copyChunkRows+1)*(len(pgCopyHeader)+2)
}

func newPGCopy(bufs *ingestBufs, size int) *pgCopy {
	w := &pgCopy{bufs: bufs, pgFields: pgFields{b: bufs.get(size)}, chunks: make([]int, 1, 8)}
	w.b = append(w.b, pgCopyHeader...)
	return w
}

// row starts a tuple of fields fields, closing the current chunk (a
// trailer, then a new header) when it already holds copyChunkRows rows.
func (w *pgCopy) row(fields int) {
	if w.rows > 0 && w.rows%copyChunkRows == 0 {
		w.b = binary.BigEndian.AppendUint16(w.b, 0xffff) // trailer: -1
		w.chunks = append(w.chunks, len(w.b))
		w.b = append(w.b, pgCopyHeader...)
	}
	w.rows++
	w.b = binary.BigEndian.AppendUint16(w.b, uint16(fields))
}

// pgFields appends field values in PostgreSQL's binary format (a length,
// then the value), as both a binary COPY row and a binary array element
// are written.
type pgFields struct{ b []byte }

func (f *pgFields) text(s string) {
	f.b = binary.BigEndian.AppendUint32(f.b, uint32(len(s)))
	f.b = append(f.b, s...)
}

func (f *pgFields) bytes(s []byte) {
	f.b = binary.BigEndian.AppendUint32(f.b, uint32(len(s)))
	f.b = append(f.b, s...)
}

// evidence is evidenceText(ev) without converting it to a string.
func (f *pgFields) evidence(ev json.RawMessage) {
	if noEvidence(ev) {
		f.text("{}")
		return
	}
	f.bytes(ev)
}

func (f *pgFields) int2(v int16) {
	f.b = binary.BigEndian.AppendUint32(f.b, 2)
	f.b = binary.BigEndian.AppendUint16(f.b, uint16(v))
}

func (f *pgFields) int8(v int64) {
	f.b = binary.BigEndian.AppendUint32(f.b, 8)
	f.b = binary.BigEndian.AppendUint64(f.b, uint64(v))
}

func (f *pgFields) ts(t time.Time) { f.int8(t.UnixMicro() - pgEpochMicros) }

// send runs the COPY statement with the stream on conn (the pgx
// connection under database/sql), inside whatever transaction is open
// there: once per chunk, in order.
func (w *pgCopy) send(ctx context.Context, conn *sql.Conn, stmt string) error {
	w.b = binary.BigEndian.AppendUint16(w.b, 0xffff) // trailer: -1
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("copy: driver connection is %T, not pgx", dc)
		}
		var r bytes.Reader
		for i, start := range w.chunks {
			end := len(w.b)
			if i+1 < len(w.chunks) {
				end = w.chunks[i+1]
			}
			r.Reset(w.b[start:end])
			if _, err := c.Conn().PgConn().CopyFrom(ctx, &r, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	// Once CopyFrom succeeded it has read the stream to its end. After an
	// error its reading goroutine may still be running: the buffer is
	// then left to the garbage collector.
	if err == nil {
		w.bufs.put(w.b)
		w.b = nil
	}
	return err
}

// PostgreSQL type OIDs of the hand-encoded array parameters.
const (
	oidInt2        = 21
	oidInt8        = 20
	oidText        = 25
	oidTimestamptz = 1184
)

// pgArrays builds statement parameters that are one-dimensional arrays in
// PostgreSQL's binary format (array_recv: dimensions, element type, then
// each element length-prefixed), one column of a batch per parameter. As
// with pgCopy, pgx's own array encoding boxed every element of every
// column into an interface: about one allocation per value, 8,000 per
// grouped batch of 1000 alerts (TestPGArraysRoundTrip reads them back).
type pgArrays struct {
	bufs *ingestBufs // where b goes back on release (nil: nowhere)
	pgFields
	ends []int // end offset of each finished parameter in b
	n    int   // elements per array
}

func newPGArrays(bufs *ingestBufs, n, size int) *pgArrays {
	return &pgArrays{bufs: bufs, pgFields: pgFields{b: bufs.get(size)}, n: n}
}

// release gives the buffer back once the parameters are sent (after
// pgExecRaw returns).
func (p *pgArrays) release() {
	p.bufs.put(p.b)
	p.b, p.ends = nil, nil
}

// begin starts the next array parameter, of element type oid; exactly n
// elements must follow.
func (p *pgArrays) begin(oid uint32) {
	p.b = binary.BigEndian.AppendUint32(p.b, 1) // dimensions
	p.b = binary.BigEndian.AppendUint32(p.b, 0) // no NULLs
	p.b = binary.BigEndian.AppendUint32(p.b, oid)
	p.b = binary.BigEndian.AppendUint32(p.b, uint32(p.n))
	p.b = binary.BigEndian.AppendUint32(p.b, 1) // lower bound
}

func (p *pgArrays) end() { p.ends = append(p.ends, len(p.b)) }

// params are the finished parameters, in order.
func (p *pgArrays) params() [][]byte {
	out := make([][]byte, len(p.ends))
	start := 0
	for i, e := range p.ends {
		out[i] = p.b[start:e:e]
		start = e
	}
	return out
}

// pgExecRaw runs stmt (prepared once per connection: pgx keeps it) with
// binary parameters and binary results on conn, the pgx connection of the
// transaction open there, calling row for each result row (its values
// are only valid during the call). It returns the rows affected.
func pgExecRaw(ctx context.Context, conn *sql.Conn, stmt string, params [][]byte, row func(vals [][]byte) error) (int64, error) {
	var n int64
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("exec: driver connection is %T, not pgx", dc)
		}
		sd, err := c.Conn().Prepare(ctx, stmt, stmt)
		if err != nil {
			return err
		}
		if len(sd.ParamOIDs) != len(params) {
			return fmt.Errorf("exec: statement takes %d parameters, got %d", len(sd.ParamOIDs), len(params))
		}
		rr := c.Conn().PgConn().ExecPrepared(ctx, sd.Name, params, []int16{1}, []int16{1})
		var rowErr error
		for rr.NextRow() {
			if rowErr == nil && row != nil {
				rowErr = row(rr.Values())
			}
		}
		tag, err := rr.Close()
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		return rowErr
	})
	return n, err
}

// pgInt8 decodes a binary int8 result value.
func pgInt8(v []byte) (int64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("int8 value of %d bytes", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// ingestBufs recycles the PostgreSQL ingest's COPY streams and array
// parameters (about a megabyte per batch of 1000 new alerts) from batch
// to batch instead of leaving each to the garbage collector. The zero
// value is ready; a nil *ingestBufs allocates and keeps nothing.
type ingestBufs struct{ p sync.Pool }

// maxIngestBuf bounds the buffers kept (a batch of big evidence would
// otherwise pin its buffer's size for good).
const maxIngestBuf = 8 << 20

// get returns an empty buffer with room for size bytes.
func (b *ingestBufs) get(size int) []byte {
	if b != nil {
		if p, ok := b.p.Get().(*[]byte); ok && cap(*p) >= size {
			return (*p)[:0]
		}
	}
	return make([]byte, 0, size)
}

// put keeps buf for a later get; the caller must not use it any more.
func (b *ingestBufs) put(buf []byte) {
	if b != nil && cap(buf) > 0 && cap(buf) <= maxIngestBuf {
		b.p.Put(&buf)
	}
}

// evidenceAndIDs appends the groups' newest evidence and newest sender id
// as two text array parameters (both the repeat update and the upsert end
// with them).
func (p *pgArrays) evidenceAndIDs(gs []*ingestGroup) {
	p.begin(oidText)
	for _, g := range gs {
		p.evidence(g.latest.Evidence)
	}
	p.end()
	p.begin(oidText)
	for _, g := range gs {
		p.text(g.latest.ID)
	}
	p.end()
}
