package export

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
)

// BenchmarkOutbox measures the export log's own cost per record: append
// (in batches of 1000, as the alert ingest writes them: one row per record
// whatever the number of exports), then for each export lease (read after
// its cursor, filter) and done (move the cursor), on both backends, with
// no receiver in the way. The bar is that exports keep up with
// ingest: 20,000 alerts/s on SQLite and 50,000/s on PostgreSQL. Reported as
// alerts/s and record deliveries (alerts × exports) per second.
func BenchmarkOutbox(b *testing.B) {
	for _, be := range backends {
		for _, exports := range []int{1, 3} {
			b.Run(fmt.Sprintf("%s/exports=%d", be.Name, exports), func(b *testing.B) {
				st := openStore(b, be.DSN(b))
				ctx := context.Background()
				var ids []int64
				for i := range exports {
					e := createExport(b, st, Config{Name: fmt.Sprintf("e%d", i), Type: TypeWebhook, URL: "https://x"})
					ids = append(ids, e.ID)
				}
				const batch = 1000
				recs := records(batch, 0)
				items := make([]store.ExportItem, batch)
				for i := range recs {
					items[i], _ = store.AlertExportItem(&recs[i].Alert)
				}
				b.ResetTimer()
				n := 0
				for i := 0; b.Loop(); i++ {
					for j := range items {
						items[j].Key = fmt.Sprintf("%d-%d", i, j)
					}
					if _, err := st.EnqueueExports(ctx, items); err != nil {
						b.Fatal(err)
					}
					for _, id := range ids {
						for {
							leased, l, err := st.LeaseExportBatch(ctx, id, "bench", 500, time.Minute)
							if err != nil {
								b.Fatal(err)
							}
							if len(leased) == 0 {
								break
							}
							if _, err := st.FinishExportBatch(ctx, l, store.OutboxOutcome{Done: l.IDs}); err != nil {
								b.Fatal(err)
							}
						}
					}
					n += batch
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "alerts/s")
				b.ReportMetric(float64(n*exports)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

// BenchmarkDeliverSyslogUDP is the end of the pipe without a store:
// formatting and sending 100-record batches of CEF to a local UDP
// receiver (a socket drained by a goroutine that does not allocate, so
// allocs/op are the sender's; a send that fails fails the
// benchmark — to a port nobody listens on, the kernel's refusals cut
// batches short and the figure meant nothing).
func BenchmarkDeliverSyslogUDP(b *testing.B) {
	u, err := startUDPCounter(true)
	if err != nil {
		b.Fatal(err)
	}
	defer u.conn.Close()
	c := Config{Name: "bench", Type: TypeSyslog, Network: "udp", Address: u.addr, Format: FormatCEF}
	if err := c.Normalize(); err != nil {
		b.Fatal(err)
	}
	exp, _ := New(&c, Deps{})
	defer exp.(*syslogExporter).Close()
	// Records as the dispatcher hands them over: decoded from the log.
	recs := records(100, 0)
	for i := range recs {
		it, err := store.AlertExportItem(&recs[i].Alert)
		if err != nil {
			b.Fatal(err)
		}
		if recs[i], err = decodeRecord(it.Payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := exp.Deliver(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
	// The receiver may still be reading its socket (UDP may also drop).
	sent := int64(b.N * len(recs))
	for deadline := time.Now().Add(time.Second); u.n.Load() < sent && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	b.ReportMetric(float64(u.n.Load())/float64(sent), "received/sent")
}
