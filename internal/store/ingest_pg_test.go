package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// TestPGCopyChunks: a pgCopy of more rows than copyChunkRows is cut into
// complete binary COPY streams (header, at most copyChunkRows tuples,
// trailer) that together hold every row, in order.
func TestPGCopyChunks(t *testing.T) {
	for _, rows := range []int{1, copyChunkRows - 1, copyChunkRows, copyChunkRows + 1, 2*copyChunkRows + 44} {
		w := newPGCopy(nil, 64)
		for i := range rows {
			w.row(2)
			w.int8(int64(i))
			w.text(fmt.Sprint("row-", i))
		}
		w.b = binary.BigEndian.AppendUint16(w.b, 0xffff) // as send does
		if want := (rows + copyChunkRows - 1) / copyChunkRows; len(w.chunks) != want {
			t.Fatalf("%d rows: %d chunks, want %d", rows, len(w.chunks), want)
		}
		next := 0
		for c, start := range w.chunks {
			end := len(w.b)
			if c+1 < len(w.chunks) {
				end = w.chunks[c+1]
			}
			s := w.b[start:end]
			if !bytes.HasPrefix(s, []byte(pgCopyHeader)) || !bytes.HasSuffix(s, []byte{0xff, 0xff}) {
				t.Fatalf("%d rows: chunk %d is not a complete stream", rows, c)
			}
			s = s[len(pgCopyHeader) : len(s)-2]
			n := 0
			for len(s) > 0 {
				if binary.BigEndian.Uint16(s) != 2 || binary.BigEndian.Uint32(s[2:]) != 8 {
					t.Fatalf("%d rows: chunk %d: bad tuple at row %d", rows, c, next)
				}
				if v := int64(binary.BigEndian.Uint64(s[6:])); v != int64(next) {
					t.Fatalf("%d rows: chunk %d holds row %d where %d was due", rows, c, v, next)
				}
				l := int(binary.BigEndian.Uint32(s[14:]))
				if got := string(s[18 : 18+l]); got != fmt.Sprint("row-", next) {
					t.Fatalf("row %d text %q", next, got)
				}
				s = s[18+l:]
				next++
				n++
			}
			if n == 0 || n > copyChunkRows {
				t.Fatalf("%d rows: chunk %d has %d rows", rows, c, n)
			}
		}
		if next != rows {
			t.Fatalf("%d rows: chunks hold %d", rows, next)
		}
	}
}

// TestPGArraysRoundTrip: hand-encoded binary array parameters reach
// PostgreSQL as the values they encode (multi-byte and empty text,
// evidence or {} without it, extreme integers, times cut to the
// microsecond in any zone).
func TestPGArraysRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, pg.DSN(t), Options{SecretKey: testKey})
	conn, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	texts := []string{"größe \"x\" \\ 日本", "", "plain"}
	evs := []json.RawMessage{json.RawMessage(`{"a": [1, 2]}`), nil, json.RawMessage(`null`)}
	i8 := []int64{-1 << 63, 0, 1<<63 - 1}
	i2 := []int16{-32768, 0, 4}
	ts := []time.Time{time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 11, 28, 3, 0, 0, 1500, time.FixedZone("", -5*3600)), time.Unix(0, 0)}
	p := newPGArrays(nil, 3, 0)
	p.begin(oidText)
	for _, v := range texts {
		p.text(v)
	}
	p.end()
	p.begin(oidText)
	for _, v := range evs {
		p.evidence(v)
	}
	p.end()
	p.begin(oidInt8)
	for _, v := range i8 {
		p.int8(v)
	}
	p.end()
	p.begin(oidInt2)
	for _, v := range i2 {
		p.int2(v)
	}
	p.end()
	p.begin(oidTimestamptz)
	for _, v := range ts {
		p.ts(v)
	}
	p.end()
	type row struct {
		Text, Ev string
		I8       int64
		I2       int16
		TS       time.Time
	}
	var got []row
	_, err = pgExecRaw(ctx, conn, `SELECT a, e, b::text, c::text, to_char(d AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')
		FROM unnest($1::text[], $2::text[], $3::int8[], $4::int2[], $5::timestamptz[]) WITH ORDINALITY AS t(a, e, b, c, d, n)
		ORDER BY n`, p.params(), func(v [][]byte) error {
		var r row
		r.Text, r.Ev = string(v[0]), string(v[1])
		if _, err := fmt.Sscan(string(v[2]), &r.I8); err != nil {
			return err
		}
		if _, err := fmt.Sscan(string(v[3]), &r.I2); err != nil {
			return err
		}
		var err error
		r.TS, err = time.Parse("2006-01-02T15:04:05.000000", string(v[4]))
		got = append(got, r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []row
	for i := range texts {
		want = append(want, row{texts[i], evidenceText(evs[i]), i8[i], i2[i], ts[i].UTC().Truncate(time.Microsecond)})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// TestIngestRepeatUpdatesOpenRow: repeats counted into open alert rows
// (on PostgreSQL an UPDATE by id with hand-encoded arrays) keep the
// newest occurrence's fields, the highest severity, the earliest first
// seen and the sum of counts, across more groups than one COPY chunk;
// an older occurrence arriving later only counts and moves first seen.
func TestIngestRepeatUpdatesOpenRow(t *testing.T) {
	ctx := context.Background()
	const groups = 2*copyChunkRows + 10
	t0 := time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)
	mk := func(i int, at time.Time, v string, sev alerts.Severity) AlertIn {
		a := payloadAlert()
		a.ID, a.Fingerprint, a.Time, a.Severity = fmt.Sprintf("%s-%03d", v, i), fmt.Sprintf("fp-%03d", i), at, sev
		d := map[string]int{"one": 1, "two": 2, "none": 3, "late": 4}[v]
		a.RuleVersion, a.Title = "rv-"+v, fmt.Sprintf("größe %s %d", v, i)
		a.MitreTactic, a.MitreTechnique = fmt.Sprintf("TA%04d", d), fmt.Sprintf("T%04d", 1000+d)
		a.Pod, a.ContainerID, a.Image, a.ImageDigest, a.Node = "pod-"+v, "cid-"+v, "img-"+v, "sha256:"+v, "node-"+v
		a.Evidence = json.RawMessage(fmt.Sprintf(`{"v": %q,  "i":%d}`, v, i))
		if v == "none" {
			a.Evidence = nil
		}
		return a
	}
	forEach(t, func(t *testing.T, s *Store) {
		var first, second, late []AlertIn
		for i := range groups {
			first = append(first, mk(i, t0, "one", alerts.Severity(i%3)))
			v := "two"
			if i%7 == 0 {
				v = "none"
			}
			second = append(second, mk(i, t0.Add(time.Minute+time.Duration(i)*time.Microsecond), v, alerts.Severity(2-i%3)))
			late = append(late, mk(i, t0.Add(-time.Hour), "late", alerts.SeverityCritical*alerts.Severity(i%2)))
		}
		for _, b := range [][]AlertIn{first, second, late} {
			if rep, err := s.IngestAlertBatch(ctx, b); err != nil || rep.Accepted != groups {
				t.Fatalf("ingest: %+v, %v", rep, err)
			}
		}
		got, n, err := s.ListAlerts(ctx, AlertFilter{}, Page{Limit: 1000, Sort: "id"})
		if err != nil || n != groups {
			t.Fatalf("list: %d rows, %v", n, err)
		}
		var want []Alert
		for i := range groups {
			a := second[i]
			sev := max(first[i].Severity, a.Severity, late[i].Severity)
			want = append(want, Alert{Fingerprint: a.Fingerprint, Source: a.Source, Rule: a.Rule, RuleVersion: a.RuleVersion,
				Severity: sev, Title: a.Title, MitreTactic: a.MitreTactic, MitreTechnique: a.MitreTechnique, Cluster: a.Cluster,
				Namespace: a.Namespace, Pod: a.Pod, Container: a.Container, ContainerID: a.ContainerID, Image: a.Image,
				ImageDigest: a.ImageDigest, Node: a.Node, Workload: a.Workload, Evidence: json.RawMessage(evidenceText(a.Evidence)),
				SourceEventID: a.ID, Count: 3, FirstSeen: t0.Add(-time.Hour), LastSeen: a.Time, Status: AlertNew})
		}
		// Evidence is compared byte for byte: stored as sent.
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Alert{}, "ID"), cmpopts.EquateEmpty(),
			cmpopts.SortSlices(func(a, b Alert) bool { return a.Fingerprint < b.Fingerprint })); diff != "" {
			t.Errorf("alerts after repeats (-want +got):\n%s", diff)
		}
	})
}

// TestIngestRepeatClosedConcurrently: on PostgreSQL a batch finds a
// group's row open, but before it counts into it another transaction
// closes it (the batch's UPDATE waits for that row, then sees it closed).
// The repeat must not be counted into the closed alert nor lost: it opens
// a new one.
func TestIngestRepeatClosedConcurrently(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, pg.DSN(t), Options{SecretKey: testKey})
	t0 := time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)
	a := payloadAlert()
	a.ID, a.Fingerprint, a.Time = "first", "fp-closed", t0
	if _, err := s.IngestAlertBatch(ctx, []AlertIn{a}); err != nil {
		t.Fatal(err)
	}
	list, _, err := s.ListAlerts(ctx, AlertFilter{}, Page{})
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	closed := list[0].ID
	other, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	if _, err := other.ExecContext(ctx, `UPDATE alerts SET status = 'resolved' WHERE id = $1`, closed); err != nil {
		t.Fatal(err)
	}
	b := a
	b.ID, b.Time = "second", t0.Add(time.Minute)
	done := make(chan error, 1)
	go func() {
		_, err := s.IngestAlertBatch(ctx, []AlertIn{b})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // the batch now waits on the row the open transaction closes
	if err := other.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("batch: %v", err)
	}
	old, err := s.GetAlert(ctx, closed)
	if err != nil || old.Count != 1 || old.Status != AlertResolved || old.SourceEventID != "first" {
		t.Fatalf("closed alert: %+v, %v; want it untouched", old, err)
	}
	open, n, err := s.ListAlerts(ctx, AlertFilter{Status: AlertNew}, Page{})
	if err != nil || n != 1 || open[0].ID == closed || open[0].Count != 1 || open[0].SourceEventID != "second" {
		t.Fatalf("open alerts: %d %+v, %v; want one new alert for the repeat", n, open, err)
	}
}

// TestIngestRepeatThroughOtherReplica: a store that has not seen a
// group open (another replica opened it, or this one restarted) guesses
// its batch is all new and copies it in without the probe for open rows;
// the copy fails on the open rows, and the batch is counted into them
// after all, with its new groups opened once. Checked on a batch of only
// repeats and on a mixed one, each through a store that never saw them.
func TestIngestRepeatThroughOtherReplica(t *testing.T) {
	ctx := context.Background()
	dsn := pg.DSN(t)
	t0 := time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)
	batch := func(tag string, from, to int, at time.Time) []AlertIn {
		var b []AlertIn
		for i := from; i < to; i++ {
			a := payloadAlert()
			a.ID, a.Fingerprint, a.Time = fmt.Sprintf("%s-%d", tag, i), fmt.Sprintf("fp-%d", i), at
			b = append(b, a)
		}
		return b
	}
	steps := []struct {
		tag      string
		from, to int
	}{{"a", 0, 50}, {"b", 0, 50}, {"c", 25, 75}}
	for i, st := range steps {
		s := openStore(t, dsn, Options{SecretKey: testKey}) // a replica that saw none of the groups open
		b := batch(st.tag, st.from, st.to, t0.Add(time.Duration(i)*time.Minute))
		if rep, err := s.IngestAlertBatch(ctx, b); err != nil || rep.Accepted != len(b) {
			t.Fatalf("batch %s: %+v, %v", st.tag, rep, err)
		}
	}
	s := openStore(t, dsn, Options{SecretKey: testKey})
	got, n, err := s.ListAlerts(ctx, AlertFilter{}, Page{Limit: 1000, Sort: "id"})
	if err != nil || n != 75 {
		t.Fatalf("list: %d alerts, %v; want 75 (one per fingerprint)", n, err)
	}
	for _, a := range got {
		var i int
		fmt.Sscanf(a.Fingerprint, "fp-%d", &i)
		count, last := int64(0), ""
		for _, st := range steps {
			if i >= st.from && i < st.to {
				count, last = count+1, fmt.Sprintf("%s-%d", st.tag, i)
			}
		}
		if a.Count != count || a.SourceEventID != last {
			t.Errorf("%s: count %d, latest %q; want %d, %q", a.Fingerprint, a.Count, a.SourceEventID, count, last)
		}
	}
}

// TestMigrateEvidenceText: migration 0016 turns PostgreSQL's json
// evidence column into text with every stored evidence byte for byte
// (json keeps the text as written: spacing, key order, duplicates); new
// alerts and repeats store into it afterwards.
func TestMigrateEvidenceText(t *testing.T) {
	ctx := context.Background()
	const odd = `{"b": 1,  "a":[1, 2], "b":"dup", "u":"\u00e9"}`
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			dsn := be.DSN(t)
			old := storeAtVersion(t, dsn, 15, func(old *Store, tx *sql.Tx) error {
				now := old.ts(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
				_, err := old.exec(ctx, tx, `INSERT INTO alerts (fingerprint, source, rule, severity, evidence, first_seen, last_seen,
					status) VALUES ('fp-old', 'sensor', 'r', 2, ?, ?, ?, 'new')`, odd, now, now)
				return err
			})
			old.Close()
			s := openStore(t, dsn, Options{SecretKey: testKey})
			if s.Dialect() == "postgres" {
				var typ string
				if err := s.queryRow(ctx, s.r, `SELECT data_type FROM information_schema.columns
					WHERE table_name = 'alerts' AND column_name = 'evidence'`).Scan(&typ); err != nil || typ != "text" {
					t.Fatalf("evidence column type %q, %v; want text", typ, err)
				}
			}
			list, _, err := s.ListAlerts(ctx, AlertFilter{}, Page{})
			if err != nil || len(list) != 1 {
				t.Fatalf("list: %v, %v", list, err)
			}
			got, err := s.GetAlert(ctx, list[0].ID)
			if err != nil || string(got.Evidence) != odd {
				t.Fatalf("evidence after the migration: %s, %v; want %s", got.Evidence, err, odd)
			}
			a := payloadAlert()
			a.ID, a.Fingerprint = "repeat", "fp-old"
			if _, err := s.IngestAlertBatch(ctx, []AlertIn{a}); err != nil {
				t.Fatal(err)
			}
			got, err = s.GetAlert(ctx, list[0].ID)
			if err != nil || got.Count != 2 || string(got.Evidence) != string(a.Evidence) {
				t.Fatalf("after a repeat: count %d evidence %s, %v", got.Count, got.Evidence, err)
			}
		})
	}
}
