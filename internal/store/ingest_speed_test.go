package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
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

// TestOutboxOrphansPurged: rows queued for an export deleted meanwhile (an
// ingest that read the export list just before the delete committed; on
// PostgreSQL the outbox has no foreign key since migration 0007) are
// removed by PurgeDeadExports, and DeleteExport removes the export's rows.
func TestOutboxOrphansPurged(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		a, err := s.CreateExport(ctx, Export{Name: "a", Type: "webhook", Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.CreateExport(ctx, Export{Name: "b", Type: "webhook", Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := s.EnqueueExports(ctx, alertItems(t, testAlert(1, 3, "sensor", "web"), testAlert(2, 3, "sensor", "web"))); err != nil || n != 4 {
			t.Fatalf("enqueue = %d, %v", n, err)
		}
		queued := func(id int64) int {
			var n int
			if err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM export_outbox WHERE export_id = ?`, id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if err := s.DeleteExport(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if n := queued(a.ID); n != 0 {
			t.Errorf("%d rows left after DeleteExport", n)
		}
		// The export row gone without DeleteExport's cleanup: the race.
		if _, err := s.exec(ctx, s.w, `DELETE FROM exports WHERE id = ?`, b.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PurgeDeadExports(ctx, s.now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		if n := queued(b.ID); n != 0 {
			t.Errorf("%d orphaned rows left after PurgeDeadExports", n)
		}
	})
}
