package export

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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
// shared machine. The load average is logged with every run.
//
//	go test -run '^$' -bench ExportKeepUp -benchtime 100x ./internal/export/
func BenchmarkExportKeepUp(b *testing.B) {
	for _, be := range backends {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			st := openStore(b, be.DSN(b))
			udp := newUDPCounter(b)
			tcp := newTCPFrameCounter(b)
			es := &bulkCounter{}
			esSrv := httptest.NewServer(es)
			b.Cleanup(esSrv.Close)
			exps := []*store.Export{
				createExport(b, st, Config{Name: "cef-udp", Type: TypeSyslog, Network: "udp", Address: udp.addr, Format: FormatCEF,
					BatchSize: 1000}),
				createExport(b, st, Config{Name: "rfc5424-tcp", Type: TypeSyslog, Network: "tcp", Address: tcp.addr, BatchSize: 1000}),
				createExport(b, st, Config{Name: "es-bulk", Type: TypeElasticsearch, URL: esSrv.URL, BatchSize: 1000}),
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
			used := cpu.used()
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
			}
			b.ReportMetric(loadAvg(), "load1")
			b.Logf("%s: %d alerts ingested in %v, drained %v later; receivers got udp=%d tcp=%d es=%d (UDP may drop); load %s",
				be.Name, total, ingestTime.Round(time.Millisecond), drain.Round(time.Millisecond), udp.n.Load(), tcp.n.Load(),
				es.n.Load(), loadAvgLine())
			// TCP and bulk receivers must have everything (at least once).
			if tcp.n.Load() < total || es.n.Load() < total {
				b.Errorf("receivers short: tcp %d, es %d, want %d", tcp.n.Load(), es.n.Load(), total)
			}
		})
	}
}

// udpCounter is a UDP syslog receiver that counts datagrams.
type udpCounter struct {
	addr string
	n    atomic.Int64
}

func newUDPCounter(b testing.TB) *udpCounter {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	_ = c.(*net.UDPConn).SetReadBuffer(8 << 20)
	u := &udpCounter{addr: c.LocalAddr().String()}
	b.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
			u.n.Add(1)
		}
	}()
	return u
}

// tcpFrameCounter is a TCP syslog receiver that parses RFC 6587 octet
// counting ("LEN SP MSG") and counts messages.
type tcpFrameCounter struct {
	addr string
	n    atomic.Int64
}

func newTCPFrameCounter(b testing.TB) *tcpFrameCounter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	t := &tcpFrameCounter{addr: ln.Addr().String()}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReaderSize(conn, 256<<10)
				for {
					l, err := r.ReadString(' ')
					if err != nil {
						return
					}
					size, err := strconv.Atoi(strings.TrimSuffix(l, " "))
					if err != nil || size <= 0 || size > 1<<20 {
						return
					}
					if _, err := r.Discard(size); err != nil {
						return
					}
					t.n.Add(1)
				}
			}()
		}
	}()
	return t
}

// bulkCounter answers the Elasticsearch bulk API: every "create" action
// is acknowledged as created (201) and counted.
type bulkCounter struct{ n atomic.Int64 }

func (c *bulkCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || r.URL.Path != "/_bulk" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	lines := bytes.Count(body, []byte("\n"))
	docs := lines / 2
	var out bytes.Buffer
	out.WriteString(`{"took":1,"errors":false,"items":[`)
	for i := range docs {
		if i > 0 {
			out.WriteByte(',')
		}
		out.WriteString(`{"create":{"status":201,"result":"created"}}`)
	}
	out.WriteString("]}")
	c.n.Add(int64(docs))
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out.Bytes())
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
func (m *cpuMeter) used() time.Duration {
	d := m.self() - m.t0
	for pid, t := range m.backends() {
		d += t - m.pg0[pid]
	}
	return d
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
