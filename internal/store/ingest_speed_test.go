package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// TestIngestConcurrentSenders: batches from several senders at once (on
// PostgreSQL on separate connections, whose timeline counts land in
// separate shards of a row, migration 0007) still count every occurrence
// exactly once in the alert rows and in the timeline.
func TestIngestConcurrentSenders(t *testing.T) {
	ctx := context.Background()
	rules := ruleDefs(t)
	const senders, batches, size = 4, 3, 200
	forEach(t, func(t *testing.T, s *Store) {
		t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		var wg sync.WaitGroup
		errs := make(chan error, senders*batches)
		for w := range senders {
			wg.Go(func() {
				for b := range batches {
					batch := make([]AlertIn, size)
					for i := range batch {
						batch[i] = genAlert(t, rules, i, 4, t0.Add(time.Duration(b)*time.Second))
						batch[i].ID = fmt.Sprintf("s%d-b%d-%d", w, b, i)
					}
					if rep, err := s.IngestAlertBatch(ctx, batch); err != nil || rep.Accepted != size {
						errs <- fmt.Errorf("sender %d batch %d: %+v, %v", w, b, rep, err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		const total = senders * batches * size
		tl, err := s.AlertTimeline(ctx, t0, t0.Add(time.Hour), time.Hour, "")
		if err != nil || len(tl) != 1 || tl[0].Total() != total {
			t.Fatalf("timeline = %+v, %v; want %d occurrences", tl, err, total)
		}
		all, n, err := s.ListAlerts(ctx, AlertFilter{Suppressed: WithSuppressed}, Page{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var counted int64
		for _, a := range all {
			counted += a.Count
		}
		// genAlert repeats fingerprints across senders: grouped, not lost.
		if counted != total || n >= total {
			t.Errorf("%d alert rows count %d occurrences, want %d", n, counted, total)
		}
	})
}

// TestExportLogPurge: the log keeps a record until every enabled export's
// cursor is past it; a disabled export holds it for the retention only;
// DeleteExport drops the export's dead letters.
func TestExportLogPurge(t *testing.T) {
	ctx := context.Background()
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			clk := newClock()
			s := openStore(t, be.DSN(t), Options{SecretKey: testKey, Now: clk.Now})
			a, err := s.CreateExport(ctx, Export{Name: "a", Type: "webhook", Enabled: true})
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.CreateExport(ctx, Export{Name: "b", Type: "webhook", Enabled: true})
			if err != nil {
				t.Fatal(err)
			}
			if n, err := s.EnqueueExports(ctx, alertItems(t, testAlert(1, 3, "sensor", "web"), testAlert(2, 3, "sensor", "web"))); err != nil || n != 2 {
				t.Fatalf("enqueue = %d, %v", n, err)
			}
			logRows := func() int {
				var n int
				if err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM export_log`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			purge := func(want int64) {
				t.Helper()
				if n, err := s.PurgeExportLog(ctx, time.Hour); err != nil || n != want {
					t.Fatalf("PurgeExportLog = %d, %v; want %d", n, err, want)
				}
			}
			deliver := func(id int64, want int) {
				t.Helper()
				recs, l, err := s.LeaseExportBatch(ctx, id, "t", 100, time.Minute)
				if err != nil || len(recs) != want {
					t.Fatalf("lease export %d: %d records, %v; want %d", id, len(recs), err, want)
				}
				if want > 0 {
					if _, err := s.FinishExportBatch(ctx, l, OutboxOutcome{Done: l.IDs}); err != nil {
						t.Fatal(err)
					}
				}
			}
			purge(0)
			deliver(a.ID, 2)
			purge(0) // b has not read them
			b.Enabled = false
			if _, err := s.UpdateExport(ctx, *b, true); err != nil {
				t.Fatal(err)
			}
			purge(0) // disabled less than the retention ago: still held
			clk.Advance(2 * time.Hour)
			purge(2)
			if n := logRows(); n != 0 {
				t.Fatalf("%d log rows left", n)
			}
			// Re-enabled, it resumes with what is left: new records only.
			b.Enabled = true
			if _, err := s.UpdateExport(ctx, *b, true); err != nil {
				t.Fatal(err)
			}
			if _, err := s.EnqueueExports(ctx, alertItems(t, testAlert(3, 3, "sensor", "web"))); err != nil {
				t.Fatal(err)
			}
			deliver(b.ID, 1)
			// b refuses nothing but a's receiver refuses the record for good.
			recs, l, err := s.LeaseExportBatch(ctx, a.ID, "t", 100, time.Minute)
			if err != nil || len(recs) != 1 || recs[0].Key != "a-0003" {
				t.Fatalf("lease a: %+v, %v", recs, err)
			}
			if _, err := s.FinishExportBatch(ctx, l, OutboxOutcome{Dead: l.IDs, Err: "400"}); err != nil {
				t.Fatal(err)
			}
			purge(1)
			// A new export starts at the head: nothing old is its own.
			c, err := s.CreateExport(ctx, Export{Name: "c", Type: "webhook", Enabled: true})
			if err != nil {
				t.Fatal(err)
			}
			deliver(c.ID, 0)
			if st, _ := s.ExportOutboxStats(ctx, a.ID); st.Dead != 1 || st.Pending != 0 {
				t.Fatalf("a stats %+v", st)
			}
			if err := s.DeleteExport(ctx, a.ID); err != nil {
				t.Fatal(err)
			}
			var dead int
			if err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM export_dead`).Scan(&dead); err != nil || dead != 0 {
				t.Fatalf("%d dead letters left after DeleteExport (%v)", dead, err)
			}
		})
	}
}

// TestExportLogCommitOrder: on PostgreSQL a record's seq is taken when it
// is written, not when its transaction commits. A transaction that wrote
// a record and is still open must hold back every record of transactions
// that started after it, or a reader would move the cursor past its
// record before it commits and never deliver it.
func TestExportLogCommitOrder(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		if s.Dialect() != "postgres" {
			t.Skip("SQLite has one writer: seq order is commit order")
		}
		e, err := s.CreateExport(ctx, Export{Name: "order", Type: "webhook", Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		slow, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer slow.Rollback()
		if _, err := s.enqueueExports(ctx, slow, alertItems(t, testAlert(1, 3, "sensor", "web")), false); err != nil {
			t.Fatal(err)
		}
		// A later transaction commits first.
		if _, err := s.EnqueueExports(ctx, alertItems(t, testAlert(2, 3, "sensor", "web"))); err != nil {
			t.Fatal(err)
		}
		if recs, _, err := s.LeaseExportBatch(ctx, e.ID, "t", 10, time.Minute); err != nil || len(recs) != 0 {
			t.Fatalf("leased %d records past an open transaction's record (%v)", len(recs), err)
		}
		if err := slow.Commit(); err != nil {
			t.Fatal(err)
		}
		recs, _, err := s.LeaseExportBatch(ctx, e.ID, "t", 10, time.Minute)
		if err != nil || len(recs) != 2 || recs[0].Key != "a-0001" || recs[1].Key != "a-0002" {
			t.Fatalf("after commit: %+v, %v; want a-0001 then a-0002", recs, err)
		}
	})
}

// TestIngestNewGroupRace: on PostgreSQL a batch writes the groups it saw
// no open row for with a plain INSERT under a savepoint. When another
// transaction opens the same group in between (the unique index makes the
// insert wait for it, then fail), the batch falls back to the upsert and
// counts into that row: one row, both occurrences. Both ways in: the
// fingerprint known to the store (the probe runs and finds nothing yet),
// and unknown (the probe is skipped: the whole batch's copy fails the
// same way, and the batch takes the probe path).
func TestIngestNewGroupRace(t *testing.T) {
	ctx := context.Background()
	rules := ruleDefs(t)
	for _, known := range []bool{true, false} {
		t.Run(fmt.Sprintf("known=%v", known), func(t *testing.T) { testIngestNewGroupRace(ctx, t, rules, known) })
	}
}

func testIngestNewGroupRace(ctx context.Context, t *testing.T, rules []ruleDef, known bool) {
	forEach(t, func(t *testing.T, s *Store) {
		if s.Dialect() != "postgres" {
			t.Skip("SQLite has one writer: no concurrent batch")
		}
		t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		a := genAlert(t, rules, 1, 1, t0)
		a.ID, a.Fingerprint = "race-1", "race-fp"
		b := a
		b.ID = "race-2"
		if known {
			s.openFPs.add([]*ingestGroup{{key: groupKey{fingerprint: "race-fp"}}}, nil)
		}
		other, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Rollback()
		if err := s.upsertAlertGroups(ctx, other, nil, map[groupKey]*ingestGroup{{fingerprint: "race-fp"}: {key: groupKey{fingerprint: "race-fp"},
			latest: &a, first: t0, last: t0, count: 1, maxSeverity: a.Severity}}); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := s.IngestAlertBatch(ctx, []AlertIn{b})
			done <- err
		}()
		time.Sleep(300 * time.Millisecond) // the batch is now waiting on the open transaction's row
		if err := other.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("batch after the race: %v", err)
		}
		all, n, err := s.ListAlerts(ctx, AlertFilter{Suppressed: WithSuppressed}, Page{Limit: 10})
		if err != nil || n != 1 || all[0].Count != 2 {
			t.Fatalf("alerts = %d rows %+v, %v; want one row counting 2", n, all, err)
		}
	})
}

// TestMigrateOutboxToLog: migration 0009 moves an existing outbox into
// the export log: queued rows, in queue order, for their export only;
// dead letters stay dead letters, still retryable.
func TestMigrateOutboxToLog(t *testing.T) {
	ctx := context.Background()
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			dsn := be.DSN(t)
			// The schema as of migration 0008, with two exports and their
			// outbox rows as the old code wrote them.
			old := storeAtVersion(t, dsn, 8, func(old *Store, tx *sql.Tx) error {
				now := old.ts(time.Now())
				for _, e := range []string{"one", "two"} {
					if _, err := old.exec(ctx, tx, `INSERT INTO exports (name, type, created_at, updated_at) VALUES (?, 'webhook', ?, ?)`,
						e, now, now); err != nil {
						return err
					}
				}
				for i, r := range []struct {
					export int
					key    string
					state  string
				}{{1, "k1", "pending"}, {2, "k2", "pending"}, {1, "k3", "dead"}, {1, "k4", "pending"}} {
					if _, err := old.exec(ctx, tx, `INSERT INTO export_outbox (export_id, kind, record_key, payload, state, attempts,
						last_error, created_at, updated_at) VALUES (?, 'alert', ?, ?, ?, ?, 'old error', ?, ?)`,
						r.export, r.key, fmt.Sprintf(`{"kind":"alert","id":%q,"n":%d}`, r.key, i), r.state, 3, now, now); err != nil {
						return err
					}
				}
				return nil
			})
			old.Close()

			s := openStore(t, dsn, Options{SecretKey: testKey})
			keys := func(id int64) []string {
				recs, _, err := s.LeaseExportBatch(ctx, id, "t", 10, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, r := range recs {
					out = append(out, r.Key)
				}
				return out
			}
			if diff := cmp.Diff([]string{"k1", "k4"}, keys(1)); diff != "" {
				t.Errorf("export one after the migration (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"k2"}, keys(2)); diff != "" {
				t.Errorf("export two after the migration (-want +got):\n%s", diff)
			}
			dead, n, err := s.ListDeadExports(ctx, 1, Page{})
			if err != nil || n != 1 || dead[0].Key != "k3" || dead[0].Attempts != 3 || dead[0].LastError != "old error" {
				t.Fatalf("dead letters after the migration: %+v %d %v", dead, n, err)
			}
		})
	}
}

// TestIngestAppendsExportLog: the alert ingest appends every accepted,
// unsuppressed alert to the export log in its transaction, once whatever
// the number of exports; duplicates and suppressed alerts are not
// exported; each export sees the records its filter takes, in order.
func TestIngestAppendsExportLog(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		all, err := s.CreateExport(ctx, Export{Name: "all", Type: "webhook", Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		high, err := s.CreateExport(ctx, Export{Name: "high", Type: "syslog", Enabled: true,
			Filter: ExportFilter{MinSeverity: alerts.SeverityHigh}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateSuppression(ctx, Suppression{Rule: "Noisy rule", Reason: "known", CreatedBy: "t"}); err != nil {
			t.Fatal(err)
		}
		batch := []AlertIn{*testAlert(1, alerts.SeverityHigh, alerts.SourceSensor, "web"),
			*testAlert(2, alerts.SeverityLow, alerts.SourceSensor, "web"),
			*testAlert(3, alerts.SeverityCritical, alerts.SourceAudit, "db")}
		noisy := *testAlert(4, alerts.SeverityCritical, alerts.SourceSensor, "web")
		noisy.Rule = "Noisy rule"
		batch = append(batch, noisy)
		if rep, err := s.IngestAlertBatch(ctx, batch); err != nil || rep.Accepted != 4 || rep.Suppressed != 1 {
			t.Fatalf("ingest: %+v, %v", rep, err)
		}
		// The replay is all duplicates: nothing more in the log.
		if rep, err := s.IngestAlertBatch(ctx, batch); err != nil || rep.Duplicates != 4 {
			t.Fatalf("replay: %+v, %v", rep, err)
		}
		var rows int
		if err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM export_log`).Scan(&rows); err != nil || rows != 3 {
			t.Fatalf("export log has %d rows (%v), want 3: each accepted, unsuppressed alert once", rows, err)
		}
		keys := func(id int64) []string {
			recs, _, err := s.LeaseExportBatch(ctx, id, "t", 10, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range recs {
				out = append(out, r.Key)
			}
			return out
		}
		if diff := cmp.Diff([]string{"a-0001", "a-0002", "a-0003"}, keys(all.ID)); diff != "" {
			t.Errorf("all (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"a-0001", "a-0003"}, keys(high.ID)); diff != "" {
			t.Errorf("high (-want +got):\n%s", diff)
		}
	})
}

// storeAtVersion opens dsn with the schema as of migration version (the
// later migrations not applied, as an older central left it) and, in the
// same transaction, lets seed write the rows an upgrade test starts from.
// The caller closes the store and opens it again to run the rest.
func storeAtVersion(t *testing.T, dsn string, version int, seed func(old *Store, tx *sql.Tx) error) *Store {
	t.Helper()
	ctx := context.Background()
	old := &Store{log: slog.New(slog.DiscardHandler), now: time.Now}
	var err error
	if isPostgresDSN(dsn) {
		err = old.openPostgres(dsn, Options{})
	} else {
		err = old.openSQLite(dsn, Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations(migrationsFS, old.d.migrationDir)
	if err != nil {
		t.Fatal(err)
	}
	err = old.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
			applied_at TEXT NOT NULL)`); err != nil {
			return err
		}
		for _, m := range ms {
			if m.version > version {
				break
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("%04d: %w", m.version, err)
			}
			if _, err := old.exec(ctx, tx, `INSERT INTO schema_migrations VALUES (?, ?, ?)`, m.version, m.name, "x"); err != nil {
				return err
			}
		}
		return seed(old, tx)
	})
	if err != nil {
		t.Fatal(err)
	}
	return old
}
