package store

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/scan"
)

// BenchmarkSaveScan stores an image scan of 500 packages and 100 findings
// (real Debian 12 packages and KEV records from testdata), each iteration a
// new image ("new") or the same image rescanned with 10% of its findings
// changed ("rescan").
func BenchmarkSaveScan(b *testing.B) {
	ctx := context.Background()
	f := fix(b)
	for _, be := range backends {
		b.Run(be.Name+"/new", func(b *testing.B) {
			s := openStore(b, be.DSN(b), Options{})
			res := f.result("bench", 500, 100, 0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				res.Target.Digest = digestOf("bench-" + strconv.Itoa(i))
				if _, err := s.SaveScan(ctx, res, ScanMeta{TriggeredBy: "bench"}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(be.Name+"/rescan", func(b *testing.B) {
			s := openStore(b, be.DSN(b), Options{})
			// Alternating between the two makes 10 findings fixed and 10 new
			// on every save.
			results := [2]*scan.Result{f.result("bench", 500, 100, 0), f.result("bench", 500, 100, 10)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := s.SaveScan(ctx, results[i%2], ScanMeta{TriggeredBy: "bench"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEnqueueClaim is one job's trip through the queue: enqueue
// (deduplicated by key), claim with a lease, complete.
func BenchmarkEnqueueClaim(b *testing.B) {
	ctx := context.Background()
	for _, be := range backends {
		for _, sync := range []string{"NORMAL", "FULL"} {
			if be.Name == "postgres" && sync == "FULL" {
				continue
			}
			name := be.Name
			if be.Name == "sqlite" {
				name += "-sync-" + sync
			}
			b.Run(name, func(b *testing.B) {
				s := openStore(b, be.DSN(b), Options{SQLiteSynchronous: sync})
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					if _, _, err := s.Enqueue(ctx, NewJob{Kind: "scan", Key: fmt.Sprintf("sha256:%064d", i)}); err != nil {
						b.Fatal(err)
					}
					js, err := s.Claim(ctx, "bench", 1, time.Minute)
					if err != nil || len(js) != 1 {
						b.Fatalf("claim: %v, %v", js, err)
					}
					if err := s.Complete(ctx, js[0].Lease); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkEnqueue measures accepting a notification: one deduplicated
// insert and its commit (issue 3 asks for 1,000 notifications/s), alone and
// in batches of 100 with EnqueueMany (reported per job).
func BenchmarkEnqueue(b *testing.B) {
	ctx := context.Background()
	for _, be := range backends {
		for _, sync := range []string{"NORMAL", "FULL"} {
			if be.Name == "postgres" && sync == "FULL" {
				continue
			}
			name := be.Name
			if be.Name == "sqlite" {
				name += "-sync-" + sync
			}
			b.Run(name+"/one", func(b *testing.B) {
				s := openStore(b, be.DSN(b), Options{SQLiteSynchronous: sync})
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					if _, _, err := s.Enqueue(ctx, NewJob{Kind: "scan", Key: fmt.Sprintf("sha256:%064d", i%5000)}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/batch100", func(b *testing.B) {
				s := openStore(b, be.DSN(b), Options{SQLiteSynchronous: sync})
				batch := make([]NewJob, 0, 100)
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					batch = append(batch, NewJob{Kind: "scan", Key: fmt.Sprintf("sha256:%064d", i%5000)})
					if len(batch) == cap(batch) || i == b.N-1 {
						if _, err := s.EnqueueMany(ctx, batch); err != nil {
							b.Fatal(err)
						}
						batch = batch[:0]
					}
				}
			})
		}
	}
}

// BenchmarkIngestAlerts stores batches of 1000 alerts (real default rules,
// realistic evidence) through IngestAlertBatch and reports alerts/s — the
// issue-7 target is 20,000/s into SQLite and 50,000/s into PostgreSQL.
// "distinct": every alert opens a new alert row (the worst case);
// "grouped": occurrences repeat ~300 fingerprints (a noisy rule set,
// typical of production). Each alert has a fresh sender id, so every one
// is recorded for idempotency. "distinct-export" is "distinct" with one
// enabled export, so every alert is also appended to the export log (the
// log write's cost is the difference with "distinct"). With
// BULWARK_PGTEST_FSYNC=1 the private PostgreSQL server syncs commits as
// production does.
func BenchmarkIngestAlerts(b *testing.B) {
	ctx := context.Background()
	rules := ruleDefs(b)
	const batchSize = 1000
	for _, be := range backends {
		for _, mode := range []string{"distinct", "grouped", "distinct-export"} {
			b.Run(be.Name+"/"+mode, func(b *testing.B) {
				// One PostgreSQL connection, so its backend's CPU time can
				// be read from /proc next to this process's.
				s := openStore(b, be.DSN(b), Options{PostgresMaxConns: 1})
				if mode == "distinct-export" {
					if _, err := s.CreateExport(ctx, Export{Name: "all", Type: "webhook", Enabled: true}); err != nil {
						b.Fatal(err)
					}
				}
				cpu := newCPUMeter(b, s)
				t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
				batch := make([]AlertIn, batchSize)
				workloads := 10
				for i := range batch {
					batch[i] = genAlert(b, rules, i, workloads, t0)
				}
				b.ReportAllocs()
				b.ResetTimer()
				cpu.start()
				for n := range b.N {
					b.StopTimer()
					for i := range batch {
						batch[i].ID = fmt.Sprintf("%d-%d", n, i)
						batch[i].Time = t0.Add(time.Duration(n) * time.Second)
						if mode != "grouped" {
							batch[i].Fingerprint = batch[i].ID
						}
					}
					b.StartTimer()
					rep, err := s.IngestAlertBatch(ctx, batch)
					if err != nil || rep.Accepted != batchSize {
						b.Fatalf("ingest: %+v, %v", rep, err)
					}
				}
				b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "alerts/s")
				b.ReportMetric(loadAvg1(), "load1")
				if used := cpu.used(); used > 0 {
					b.ReportMetric(float64(b.N*batchSize)/used.Seconds(), "alerts/cpu-s")
					if cpu.backend != 0 {
						b.ReportMetric(float64(cpu.backendUsed())/float64(b.N*batchSize), "pg-backend-ns/alert")
					}
				}
			})
		}
		// Four senders at once (central serves many sensors): on
		// PostgreSQL the batches run on separate connections and cores;
		// SQLite serializes them on its one writer.
		for _, mode := range []string{"grouped", "distinct"} {
			b.Run(be.Name+"/"+mode+"-4senders", func(b *testing.B) { ingestSenders(b, be.DSN(b), rules, mode) })
		}
	}
}

// ingestSenders is four senders at once, each sending batches of 1000
// ("distinct": every alert a new group; "grouped": ~300 fingerprints).
func ingestSenders(b *testing.B, dsn string, rules []ruleDef, mode string) {
	ctx := context.Background()
	const batchSize = 1000
	s := openStore(b, dsn, Options{})
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	var seq atomic.Int64
	b.SetParallelism(2)
	cpu0 := processCPU(b) + backendsCPU(b, s)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		batch := make([]AlertIn, batchSize)
		for i := range batch {
			batch[i] = genAlert(b, rules, i, 10, t0)
		}
		for pb.Next() {
			n := seq.Add(1)
			for i := range batch {
				batch[i].ID = fmt.Sprintf("%d-%d", n, i)
				if mode == "distinct" {
					batch[i].Fingerprint = batch[i].ID
				}
			}
			if rep, err := s.IngestAlertBatch(ctx, batch); err != nil || rep.Accepted != batchSize {
				b.Errorf("ingest: %+v, %v", rep, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "alerts/s")
	// CPU of this process and of every server backend of the test
	// database (the four senders' connections), per alert.
	if used := processCPU(b) + backendsCPU(b, s) - cpu0; used > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N*batchSize), "cpu-ns/alert")
	}
	b.ReportMetric(loadAvg1(), "load1")
}

func processCPU(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendsCPU sums the CPU time of the PostgreSQL backends connected to
// the store's database (0 on SQLite). Connections stay open in the pool
// for the benchmark's length, so differences are the benchmark's work.
func backendsCPU(b testing.TB, s *Store) time.Duration {
	pids, err := s.BackendPIDs(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var d time.Duration
	for _, pid := range pids {
		m := cpuMeter{b: b, backend: pid}
		if t := m.backendNow(); t > 0 {
			d += t
		}
	}
	return d
}

// loadAvg1 is the one-minute load average, reported with every figure:
// the machine is shared, and wall-clock rates depend on it.
func loadAvg1() float64 {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// cpuMeter measures the CPU time an ingest costs on a shared machine,
// where wall-clock rates depend on the other load: this process's user and
// system time plus, on PostgreSQL, that of the server backend serving the
// store's one connection (from /proc). alerts/cpu-s is then how many
// alerts one fully available core ingests per second. It includes the
// benchmark's own batch preparation (small next to the ingest).
type cpuMeter struct {
	b       testing.TB
	backend int // PostgreSQL backend pid; 0 on SQLite
	t0, b0  time.Duration
}

func newCPUMeter(b testing.TB, s *Store) *cpuMeter {
	m := &cpuMeter{b: b}
	if s.Dialect() == "postgres" {
		if err := s.w.QueryRowContext(context.Background(), `SELECT pg_backend_pid()`).Scan(&m.backend); err != nil {
			b.Fatal(err)
		}
	}
	return m
}

func (m *cpuMeter) now() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		m.b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) + m.backendNow()
}

// backendNow is the PostgreSQL backend's CPU time so far (0 on SQLite).
func (m *cpuMeter) backendNow() time.Duration {
	var d time.Duration
	if m.backend != 0 {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.backend))
		if err != nil {
			return -1 << 62 // not readable (another host): no metric
		}
		// Fields after the parenthesised command: utime and stime are
		// the 14th and 15th fields, in clock ticks (100 Hz on Linux).
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		d += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return d
}

func (m *cpuMeter) start() { m.t0, m.b0 = m.now(), m.backendNow() }

func (m *cpuMeter) used() time.Duration { return m.now() - m.t0 }

func (m *cpuMeter) backendUsed() time.Duration { return m.backendNow() - m.b0 }
