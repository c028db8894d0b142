package export

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/store/pgtest"
)

// BenchmarkExportKeepUp is the "exports keep up": the real alert
// ingest (IngestAlertBatch, batches of 1000 distinct alerts) runs at full
// rate while three exports are configured and three delivery workers
// drain the export log to fast real local receivers: syslog CEF over UDP
// (a UDP socket), syslog RFC 5424 over TCP (a TCP listener parsing the
// octet-counted frames) and Elasticsearch bulk over loopback HTTP (a
// counting stand-in that answers the bulk API's shape: no Elasticsearch
// can be installed here). It reports the ingest rate, each export's
// delivery rate over the ingest window, the ratio delivered/ingested at
// the end of the ingest window (keep-up: ≥ ~1 less the records of the
// last poll), the largest lag seen (records ingested but not yet
// delivered by the slowest export), how long the rest took to drain, and
// the CPU time per alert of this process plus, on PostgreSQL, of the
// server backends of the test database — the figure to trust on a
// shared machine. The receivers run in a child process (in production
// they are other machines): their CPU time is reported apart
// (receivers-cpu-ns/alert; see receivers_test.go). The load average is
// logged with every run.
//
//	go test -run '^$' -bench ExportKeepUp -benchtime 100x ./internal/export/
//
// With BULWARK_PGTEST_STATEMENTS=1 it also logs the server time of each
// statement of the PostgreSQL run (pg_stat_statements).
func BenchmarkExportKeepUp(b *testing.B) {
	for _, be := range backends {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			dsn := be.DSN(b)
			st := openStore(b, dsn)
			rs := newReceiverSet(b)
			exps := []*store.Export{
				createExport(b, st, Config{Name: "cef-udp", Type: TypeSyslog, Network: "udp", Address: rs.udpAddr, Format: FormatCEF,
					BatchSize: 1000}),
				createExport(b, st, Config{Name: "rfc5424-tcp", Type: TypeSyslog, Network: "tcp", Address: rs.tcpAddr, BatchSize: 1000}),
				createExport(b, st, Config{Name: "es-bulk", Type: TypeElasticsearch, URL: rs.esURL, BatchSize: 1000}),
			}
			runDispatcher(b, st, DispatcherOptions{Poll: 10 * time.Millisecond, Refresh: time.Second})
			cpu := newCPUMeter(b, st)

			const batchSize = 1000
			batch := make([]alerts.Alert, batchSize)
			for i, r := range records(batchSize, 0) {
				batch[i] = r.Alert
			}
			var ingested atomic.Int64
			delivered := func() []int64 {
				out := make([]int64, len(exps))
				for i, e := range exps {
					if x, err := st.GetExport(ctx, e.ID); err == nil {
						out[i] = x.Delivered
					}
				}
				return out
			}
			// The lag is sampled while the ingest runs.
			var maxLag atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				t := time.NewTicker(50 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
					}
					in := ingested.Load()
					for _, d := range delivered() {
						if lag := in - d; lag > maxLag.Load() {
							maxLag.Store(lag)
						}
					}
				}
			})
			base := delivered()
			b.ResetTimer()
			cpu.start()
			rcpu0 := rs.cpu()
			start := time.Now()
			n := 0
			for b.Loop() {
				for i := range batch {
					batch[i].ID = fmt.Sprintf("ku-%d-%d", n, i)
					batch[i].Fingerprint = batch[i].ID
				}
				rep, err := st.IngestAlertBatch(ctx, batch)
				if err != nil || rep.Accepted != batchSize {
					b.Fatalf("ingest: %+v, %v", rep, err)
				}
				ingested.Add(batchSize)
				n++
			}
			ingestTime := time.Since(start)
			atEnd := delivered()
			total := int64(n * batchSize)
			deadline := time.Now().Add(5 * time.Minute)
			for {
				done := true
				for i, d := range delivered() {
					done = done && d-base[i] >= total
				}
				if done {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("exports did not drain %d records in 5 minutes: %v", total, delivered())
				}
				time.Sleep(5 * time.Millisecond)
			}
			drain := time.Since(start) - ingestTime
			used, self := cpu.used()
			rcpu := rs.cpu() - rcpu0
			b.StopTimer()
			close(stop)
			wg.Wait()

			b.ReportMetric(float64(total)/ingestTime.Seconds(), "ingest-alerts/s")
			minRatio := 1e9
			for i, e := range exps {
				got := atEnd[i] - base[i]
				b.ReportMetric(float64(got)/ingestTime.Seconds(), e.Name+"-delivered/s")
				minRatio = min(minRatio, float64(got)/float64(total))
			}
			b.ReportMetric(minRatio, "delivered/ingested")
			b.ReportMetric(float64(maxLag.Load()), "max-lag-records")
			b.ReportMetric(float64(drain.Milliseconds()), "drain-ms")
			if used > 0 {
				b.ReportMetric(float64(used.Nanoseconds())/float64(total), "cpu-ns/alert")
				if used != self {
					b.ReportMetric(float64(self.Nanoseconds())/float64(total), "process-cpu-ns/alert")
				}
			}
			if rcpu > 0 {
				b.ReportMetric(float64(rcpu.Nanoseconds())/float64(total), "receivers-cpu-ns/alert")
			}
			b.ReportMetric(loadAvg(), "load1")
			// The receivers have read everything sent once the exports
			// drained, but the last datagrams or frames may still be in
			// their sockets: give them a moment.
			var gotUDP, gotTCP, gotES int64
			for range 100 {
				if gotUDP, gotTCP, gotES = rs.counts(); gotUDP >= total && gotTCP >= total && gotES >= total {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			b.Logf("%s: %d alerts ingested in %v, drained %v later; receivers got udp=%d tcp=%d es=%d (UDP may drop); load %s",
				be.Name, total, ingestTime.Round(time.Millisecond), drain.Round(time.Millisecond), gotUDP, gotTCP, gotES,
				loadAvgLine())
			// Where the server's time went, by statement (PostgreSQL with
			// BULWARK_PGTEST_STATEMENTS=1: since the server started, so
			// with a -run or -count of one).
			if st.Dialect() == "postgres" && os.Getenv("BULWARK_PGTEST_STATEMENTS") == "1" {
				if rep, err := pgtest.Statements(ctx, dsn, 12); err != nil {
					b.Log(err)
				} else {
					b.Logf("statements of the test database by server time:\n%s", rep)
				}
			}
			// TCP and bulk receivers must have everything (at least once).
			if gotTCP < total || gotES < total {
				b.Errorf("receivers short: tcp %d, es %d, want %d", gotTCP, gotES, total)
			}
		})
	}
}

// cpuMeter is this process's CPU time plus, on PostgreSQL, that of the
// server backends connected to the store's database (from /proc: the test
// server runs on this machine).
type cpuMeter struct {
	b     testing.TB
	st    *store.Store
	t0    time.Duration
	pg0   map[int]time.Duration
	hasPG bool
}

func newCPUMeter(b testing.TB, st *store.Store) *cpuMeter {
	return &cpuMeter{b: b, st: st, hasPG: st.Dialect() == "postgres"}
}

func (m *cpuMeter) self() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backends reads the CPU time of every backend of the store's database.
func (m *cpuMeter) backends() map[int]time.Duration {
	out := map[int]time.Duration{}
	if !m.hasPG {
		return out
	}
	pids, err := m.st.BackendPIDs(context.Background())
	if err != nil {
		m.b.Logf("backend pids: %v", err)
		return out
	}
	for _, pid := range pids {
		if d, ok := procCPU(pid); ok {
			out[pid] = d
		}
	}
	return out
}

func (m *cpuMeter) start() { m.t0, m.pg0 = m.self(), m.backends() }

// used is the CPU time since start; a backend that was not there at the
// start is new (its whole time counts).
func (m *cpuMeter) used() (total, self time.Duration) {
	self = m.self() - m.t0
	total = self
	for pid, t := range m.backends() {
		total += t - m.pg0[pid]
	}
	return total, self
}

// procCPU reads a process's user+system time from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, false
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, true
}

func loadAvgLine() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

func loadAvg() float64 {
	f := strings.Fields(loadAvgLine())
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
