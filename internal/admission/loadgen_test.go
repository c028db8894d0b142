package admission

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The loopback load generator of TestLoadLoopback and BenchmarkLoadLoopback.
//
// It is open-loop: request n is due at start + n/rps whatever happened to
// the ones before, and its latency runs from that intended time to the last
// byte of the answer, so a stalled server (or a stalled generator) shows in
// the figures instead of silently lowering the rate (no coordinated
// omission). Concurrency is bounded: a fixed pool of workers takes due
// requests from a bounded queue; a request that finds the queue full is
// not sent and is counted as dropped. Every answer is checked: allowed
// reviews must be allowed and the deliberately bad ones (a registry outside
// the provenance policy's trust list) denied.
//
// The connections are opened and the verdict cache warmed before the
// measured window, as the API server's webhook client keeps its
// connections alive: a TLS handshake belongs to the first request of a
// connection, not to every 2,000th.

// loadOptions configures one run (JSON: it is passed to the generator
// process as such).
type loadOptions struct {
	URL     string
	CAFile  string
	RPS     int
	Seconds int
	// Workers bounds the requests in flight (HTTP/1.1: the connections).
	Workers int
	// HTTP2 speaks HTTP/2 (one multiplexed connection). The default,
	// false, is HTTP/1.1 with up to one keep-alive connection per worker:
	// what kube-apiserver speaks to admission webhooks since v1.16
	// (kubernetes#82090, so that a Service's replicas share the load),
	// except to a webhook on a loopback URL (kubernetes#122558).
	HTTP2 bool
	// DenyEvery makes every n-th review one the policies deny (0: none).
	DenyEvery int
	// Trace, when set, is a file for the generator's runtime/trace.
	Trace string
	// SampleCPU records the generator's CPU time every 2 ms of the window
	// (genResult.CPUSeries; BULWARK_LOAD_STEAL=1).
	SampleCPU bool
}

// loadOptionsFromEnv reads BULWARK_LOAD_RPS (500), BULWARK_LOAD_SECONDS
// (secs), BULWARK_LOAD_WORKERS (16) and BULWARK_LOAD_HTTP (1: HTTP/1.1,
// the default; 2: HTTP/2).
func loadOptionsFromEnv(secs int) loadOptions {
	return loadOptions{RPS: envInt("BULWARK_LOAD_RPS", 500), Seconds: envInt("BULWARK_LOAD_SECONDS", secs),
		Workers: envInt("BULWARK_LOAD_WORKERS", 16), HTTP2: os.Getenv("BULWARK_LOAD_HTTP") == "2", DenyEvery: 10}
}

// loadSample is one request's timeline, in Unix nanoseconds of the wall
// clock (comparable with the server's stamps on the same machine; the
// differences within one process come from the monotonic clock).
type loadSample struct {
	Intended int64 // when it was due
	Start    int64 // when a worker began sending it (0: dropped)
	Done     int64 // when the answer's last byte was read
}

// genResult is what the generator measured.
type genResult struct {
	Samples  []loadSample // by sequence number; the warm-up is not in it
	Dropped  int          // due requests that found every worker busy and the queue full
	Elapsed  time.Duration
	Proto    string        // protocol of the answers
	CPU      time.Duration // the generator's process CPU time in the window (own process only)
	GCs      uint32        // the generator's collections in the window
	Warmup   time.Duration // connections opened and cache warmed before the window
	Requests int           // answered in the window
	// NewConns counts the window's requests that could not reuse a
	// connection (each a TCP connect and TLS handshake in the window).
	NewConns int64
	// CPUSeries is the generator's cumulative CPU time sampled every 2 ms
	// (loadOptions.SampleCPU).
	CPUSeries []cpuPoint
}

// cpuPoint is a process's cumulative CPU time (CPU, ns) at a time (At,
// Unix ns).
type cpuPoint struct{ At, CPU int64 }

// sampleCPU records this process's CPU time every 2 ms until stop.
func sampleCPU() (stop func() []cpuPoint) {
	var pts []cpuPoint
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			pts = append(pts, cpuPoint{time.Now().UnixNano(), int64(cpuTime())})
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() []cpuPoint { close(done); <-finished; return pts }
}

// cpuIn is the CPU time a cumulative series grew by between a and b (Unix
// ns), interpolated between its samples.
func cpuIn(pts []cpuPoint, a, b int64) float64 {
	at := func(t int64) float64 {
		i, _ := slices.BinarySearchFunc(pts, t, func(p cpuPoint, t int64) int { return cmp.Compare(p.At, t) })
		switch {
		case len(pts) == 0:
			return 0
		case i == 0:
			return float64(pts[0].CPU)
		case i == len(pts):
			return float64(pts[len(pts)-1].CPU)
		}
		p, q := pts[i-1], pts[i]
		return float64(p.CPU) + float64(q.CPU-p.CPU)*float64(t-p.At)/float64(max(1, q.At-p.At))
	}
	return at(b) - at(a)
}

// loadSeqHeader carries the sequence number, for the server-side stamps.
const loadSeqHeader = "X-Bulwark-Load-Seq"

// generate runs the load described by o. It fails on the first wrong
// answer or transport error.
func generate(o loadOptions) (genResult, error) {
	caPEM, err := os.ReadFile(o.CAFile)
	if err != nil {
		return genResult{}, fmt.Errorf("load generator: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: o.HTTP2,
		MaxIdleConnsPerHost: o.Workers, MaxConnsPerHost: o.Workers, DisableCompression: true}
	if o.HTTP2 {
		tr.MaxConnsPerHost = 1 // one connection, as the API server holds per webhook
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	allow, deny := benchDeployment("load"), benchDeploymentFrom("load", "untrusted.example.com")
	var proto string
	var protoOnce sync.Once
	var newConns atomic.Int64
	counted := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
		if !ci.Reused {
			newConns.Add(1)
		}
	}})
	send := func(seq int) error {
		denied := o.DenyEvery > 0 && seq >= 0 && seq%o.DenyEvery == o.DenyEvery-1
		body := allow
		if denied {
			body = deny
		}
		ctx := context.Background()
		if seq >= 0 {
			ctx = counted
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(loadSeqHeader, strconv.Itoa(seq))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		protoOnce.Do(func() { proto = resp.Proto })
		want := []byte(`"allowed":true`)
		if denied {
			want = []byte(`"allowed":false`)
		}
		if resp.StatusCode != 200 || !bytes.Contains(b, want) {
			return fmt.Errorf("review %d (want %s): %s: %s", seq, want, resp.Status, b)
		}
		return nil
	}

	// Warm-up: every worker sends a few reviews at once, which opens
	// every connection (HTTP/1.1) and fills the verdict cache.
	t0 := time.Now()
	var warm sync.WaitGroup
	warmErr := make(chan error, o.Workers)
	for range o.Workers {
		warm.Go(func() {
			for range 4 {
				if err := send(-1); err != nil {
					warmErr <- err
					return
				}
			}
		})
	}
	warm.Wait()
	select {
	case err := <-warmErr:
		return genResult{}, fmt.Errorf("load generator warm-up: %w", err)
	default:
	}
	g := genResult{Warmup: time.Since(t0)}
	runtime.GC() // the warm-up's garbage is not the window's

	if o.Trace != "" {
		f, err := os.Create(o.Trace)
		if err != nil {
			return g, err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return g, err
		}
		defer trace.Stop()
	}
	total := o.RPS * o.Seconds
	interval := time.Second / time.Duration(o.RPS)
	g.Samples = make([]loadSample, total)
	type job struct {
		seq int
		at  time.Time
	}
	jobs := make(chan job, o.Workers*8)
	errs := make(chan error, o.Workers)
	// The dispatcher keeps its thread: nanosleep blocks it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	base := start.UnixNano()
	cpu0, gc0 := cpuTime(), gcCount()
	stopCPU := func() []cpuPoint { return nil }
	if o.SampleCPU {
		stopCPU = sampleCPU()
	}
	var wg sync.WaitGroup
	for range o.Workers {
		wg.Go(func() {
			for j := range jobs {
				s := &g.Samples[j.seq]
				s.Start = base + int64(time.Since(start))
				if err := send(j.seq); err != nil {
					errs <- err
					for range jobs { // let the dispatcher finish
					}
					return
				}
				s.Done = base + int64(time.Since(start))
			}
		})
	}
	for n := range total {
		at := start.Add(time.Duration(n) * interval)
		g.Samples[n].Intended = base + int64(time.Duration(n)*interval)
		sleepUntil(at)
		select {
		case jobs <- job{n, at}:
		default:
			g.Dropped++
		}
	}
	close(jobs)
	wg.Wait()
	g.CPUSeries = stopCPU()
	g.Elapsed, g.CPU, g.GCs, g.Proto, g.NewConns = time.Since(start), cpuTime()-cpu0, gcCount()-gc0, proto, newConns.Load()
	for _, s := range g.Samples {
		if s.Done != 0 {
			g.Requests++
		}
	}
	select {
	case err := <-errs:
		return g, fmt.Errorf("load generator: %w", err)
	default:
	}
	return g, nil
}

// sleepUntil returns at t, give or take tens of microseconds. time.Sleep
// would not do for a 2 ms period: the runtime's timers wait in epoll with a
// millisecond resolution, so a due request left on average half a
// millisecond late, a lateness the open-loop latency rightly counts but
// that is the generator's, not the webhook's (measured: median dispatch
// lateness 0.5 ms with time.Sleep). nanosleep(2) on the dispatcher's own
// thread uses the kernel's high-resolution timers; the thread is blocked
// in a system call meanwhile, costing no CPU.
func sleepUntil(t time.Time) {
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(int64(d))
		_ = syscall.Nanosleep(&ts, nil) // EINTR: loop
	}
}

// runGeneratorProcess runs generate in a child process (this test binary
// again, see TestMain) and reads its result from stdout.
func runGeneratorProcess(tb testing.TB, o loadOptions) genResult {
	tb.Helper()
	opts, err := json.Marshal(o)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// The generator stands for the API server: runtime settings tried on
	// the webhook (GODEBUG, GOGC, GOMEMLIMIT, GOMAXPROCS) are not its
	// (BULWARK_LOAD_GENERATOR_GODEBUG and _GOGC set its own).
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		for _, v := range []string{"GODEBUG=", "GOGC=", "GOMEMLIMIT=", "GOMAXPROCS="} {
			if strings.HasPrefix(kv, v) {
				return true
			}
		}
		return false
	})
	if gd := os.Getenv("BULWARK_LOAD_GENERATOR_GODEBUG"); gd != "" {
		env = append(env, "GODEBUG="+gd)
	}
	if gc := os.Getenv("BULWARK_LOAD_GENERATOR_GOGC"); gc != "" {
		env = append(env, "GOGC="+gc)
	}
	cmd.Env = append(env, "BULWARK_LOAD_GENERATOR="+string(opts))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("load generator process: %v\n%s", err, out)
	}
	_, line, ok := bytes.Cut(out, []byte("LOADRESULT "))
	if !ok {
		tb.Fatalf("load generator printed no result:\n%s", out)
	}
	line, _, _ = bytes.Cut(line, []byte("\n"))
	var g genResult
	if err := json.Unmarshal(line, &g); err != nil {
		tb.Fatalf("load generator result: %v", err)
	}
	return g
}

// TestMain runs this test binary as the load generator process when
// BULWARK_LOAD_GENERATOR holds its options, and runs the tests otherwise.
func TestMain(m *testing.M) {
	opts := os.Getenv("BULWARK_LOAD_GENERATOR")
	if opts == "" {
		os.Exit(m.Run())
	}
	// The generator stands for the API server, not under test: its own
	// collections (a few MB of heap, ~1 cycle per second at the default
	// GOGC) would show as webhook latency. A larger heap target makes
	// them rare; its memory is not the webhook's.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(2000)
	}
	var o loadOptions
	err := json.Unmarshal([]byte(opts), &o)
	if err == nil {
		var g genResult
		if g, err = generate(o); err == nil {
			var b []byte
			if b, err = json.Marshal(g); err == nil {
				fmt.Printf("LOADRESULT %s\n", b)
				os.Exit(0)
			}
		}
	}
	fmt.Fprintln(os.Stderr, "load generator:", err)
	os.Exit(1)
}

// serverStamps records when each numbered review entered and left the
// webhook's handler (after TLS and the HTTP request head, before the body
// is read; after the answer is written to the connection's buffer).
type serverStamps struct {
	in, out []int64
}

func stampHandler(h http.Handler, st *serverStamps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := time.Now().UnixNano()
		// A region per review in the runtime trace (BULWARK_LOAD_TRACE):
		// what its goroutine did while the review was in the handler.
		region := trace.StartRegion(r.Context(), "review")
		h.ServeHTTP(w, r)
		region.End()
		out := time.Now().UnixNano()
		if seq, err := strconv.Atoi(r.Header.Get(loadSeqHeader)); err == nil && seq >= 0 && seq < len(st.in) {
			atomic.StoreInt64(&st.in[seq], in)
			atomic.StoreInt64(&st.out[seq], out)
		}
	})
}

// runtimeStats is a snapshot of the server's runtime metrics: the
// scheduler's latency histogram (runnable → running, every goroutine),
// the stop-the-world pauses of the collector and the collector's CPU.
type runtimeStats struct {
	sched, pauses *metrics.Float64Histogram
	gcCPU         float64
	goMem         int64 // memory the Go runtime holds from the OS (heap, stacks, metadata), released pages excluded
}

var runtimeStatNames = []string{"/sched/latencies:seconds", "/sched/pauses/total/gc:seconds", "/cpu/classes/gc/total:cpu-seconds",
	"/memory/classes/total:bytes", "/memory/classes/heap/released:bytes"}

func readRuntimeStats() runtimeStats {
	ss := make([]metrics.Sample, len(runtimeStatNames))
	for i, n := range runtimeStatNames {
		ss[i].Name = n
	}
	metrics.Read(ss)
	var st runtimeStats
	if ss[0].Value.Kind() == metrics.KindFloat64Histogram {
		st.sched = ss[0].Value.Float64Histogram()
	}
	if ss[1].Value.Kind() == metrics.KindFloat64Histogram {
		st.pauses = ss[1].Value.Float64Histogram()
	}
	if ss[2].Value.Kind() == metrics.KindFloat64 {
		st.gcCPU = ss[2].Value.Float64()
	}
	if ss[3].Value.Kind() == metrics.KindUint64 && ss[4].Value.Kind() == metrics.KindUint64 {
		st.goMem = int64(ss[3].Value.Uint64() - ss[4].Value.Uint64())
	}
	return st
}

// histQuantile is the upper bound of the bucket holding quantile q of the
// observations in now that were not in then (0 when none).
func histQuantile(then, now *metrics.Float64Histogram, q float64) time.Duration {
	if then == nil || now == nil || len(then.Counts) != len(now.Counts) {
		return 0
	}
	var total uint64
	for i := range now.Counts {
		total += now.Counts[i] - then.Counts[i]
	}
	if total == 0 {
		return 0
	}
	want := uint64(float64(total)*q + 0.5)
	var acc uint64
	for i := range now.Counts {
		acc += now.Counts[i] - then.Counts[i]
		if acc >= max(want, 1) {
			hi := now.Buckets[i+1]
			if hi > 3600 { // +Inf
				hi = now.Buckets[i]
			}
			return time.Duration(hi * float64(time.Second))
		}
	}
	return 0
}

// loadReport is one measured run.
type loadReport struct {
	Opts                loadOptions
	Separate            bool
	Gen                 genResult
	P50, P99, P999, Max time.Duration // intended send → answer read
	ServerCPUPerReq     time.Duration // the server process's CPU per answered review (with the generator's when in-process)
	ServerSysPerReq     time.Duration // the kernel's part of it
	// Threads is what the kernel's scheduler did to the server's threads
	// in the window (see threadStats), per review.
	Threads         threadStats
	RSS, PeakRSS    int64
	ServerGCs       uint32
	RuntimeSettings string
	// From the server's runtime: scheduling latency p99 and max bucket,
	// longest GC stop-the-world pause, GC CPU per review.
	SchedP99, SchedMax, GCPauseMax, GCCPUPerReq time.Duration
	// GoMem is the Go runtime's share of RSS at the end (the rest is the
	// binary's pages and C/kernel memory).
	GoMem                int64
	Load                 string
	Phases50, PhasesTail phases  // medians over all, means over the slowest 1%
	Within5ms            float64 // share of the answered reviews within the 5 ms target
	Slowest              []phases
	// Steal relates the slowest reviews to the hypervisor's steal time.
	Steal stealReport
	// Slowdown compares the CPU both processes spent per review while the
	// slowest 1% were in flight with the whole run's (BULWARK_LOAD_STEAL=1).
	Slowdown slowdownReport
}

// slowdownReport: the slowest 1% merged into Windows (their intervals,
// overlapping ones joined) lasting Span in all, in which Answered reviews
// completed; the server's and the generator's CPU time per review
// answered in those windows, and the same over the whole run. When both
// processes spend several times their usual CPU per review there, while
// the generator's schedule (500 sends a second) is the same, the machine
// ran their code slower: a vCPU the host did not give them (steal not
// accounted by the guest) or shared with a neighbour. The webhook's own
// slowness would inflate the server's figure alone.
type slowdownReport struct {
	Windows, Answered                  int
	Span                               time.Duration
	ServerIn, ServerAll, GenIn, GenAll time.Duration
}

func slowdownIn(tail, all []phases, server, gen []cpuPoint) slowdownReport {
	var r slowdownReport
	if len(server) < 2 || len(gen) < 2 || len(tail) == 0 {
		return r
	}
	iv := make([][2]int64, 0, len(tail))
	for _, p := range tail {
		iv = append(iv, [2]int64{p.at, p.end})
	}
	slices.SortFunc(iv, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	merged := iv[:1]
	for _, x := range iv[1:] {
		if last := &merged[len(merged)-1]; x[0] <= last[1] {
			last[1] = max(last[1], x[1])
		} else {
			merged = append(merged, x)
		}
	}
	r.Windows = len(merged)
	var sIn, gIn float64
	for _, w := range merged {
		r.Span += time.Duration(w[1] - w[0])
		sIn += cpuIn(server, w[0], w[1])
		gIn += cpuIn(gen, w[0], w[1])
	}
	first, last := all[0].end, all[0].end
	for _, p := range all {
		first, last = min(first, p.end), max(last, p.end)
		if i, _ := slices.BinarySearchFunc(merged, p.end, func(w [2]int64, t int64) int { return cmp.Compare(w[0], t) }); i > 0 && p.end <= merged[i-1][1] {
			r.Answered++
		}
	}
	n := time.Duration(max(1, r.Answered))
	r.ServerIn, r.GenIn = time.Duration(sIn)/n, time.Duration(gIn)/n
	r.ServerAll = time.Duration(cpuIn(server, first, last)) / time.Duration(len(all))
	r.GenAll = time.Duration(cpuIn(gen, first, last)) / time.Duration(len(all))
	return r
}

// phases splits a request's latency: dispatch (due → a worker sends;
// the generator's timer and queue), up (send → handler entered: client
// write, loopback, TLS, server read and HTTP parsing), handler (the
// webhook's work: body, decode, policies, encode), down (handler done →
// answer read by the client).
type phases struct {
	Total, Dispatch, Up, Handler, Down time.Duration
	at, end                            int64 // intended and done, Unix ns
}

func (p phases) String() string {
	r := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }
	return fmt.Sprintf("total %s ms = dispatch %s + up %s + handler %s + down %s", r(p.Total), r(p.Dispatch), r(p.Up), r(p.Handler), r(p.Down))
}

// runLoad starts a webhook with 20 policies and a warm cache over TLS on
// loopback, with the collector tuned as `bulwark admission serve` tunes it,
// drives it with the generator (in its own process when separate) and
// measures.
func runLoad(tb testing.TB, o loadOptions, separate bool, traceDir string) loadReport {
	return runLoadWith(tb, o, separate, traceDir, false)
}

// cannedHandler is the baseline of BenchmarkLoadLoopback: the same server
// (TLS, HTTP, connection handling, the stamps) answering each review with a
// prepared response after reading its body — no decoding, no policy. What
// the webhook's tail adds is its p99 over this one's, measured in the same
// run on the same machine.
func cannedHandler(srv *Server) http.Handler {
	allow := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":true}}`)
	deny := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":false,"status":{"code":403,"message":"untrusted registry"}}}`)
	burn, _ := time.ParseDuration(os.Getenv("BULWARK_LOAD_BASELINE_BURN"))
	stage := os.Getenv("BULWARK_LOAD_BASELINE_STAGE")
	allocBurn := os.Getenv("BULWARK_LOAD_BASELINE_ALLOC") == "1"
	var memBurn []byte
	if os.Getenv("BULWARK_LOAD_BASELINE_ALLOC") == "mem" {
		memBurn = make([]byte, 16<<20)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if burn > 0 {
			var sink [][]byte
			for t0 := time.Now(); time.Since(t0) < burn; {
				switch {
				case allocBurn: // garbage like the webhook's (~45 KB a review)
					sink = append(sink[:min(len(sink), 64)], make([]byte, 512))
				case memBurn != nil: // cache misses: a stride through 16 MB
					for i := 0; i < 4096; i++ {
						memBurn[(i*4099+int(t0.UnixNano()))&(len(memBurn)-1)]++
					}
				}
			}
			_ = sink
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 3<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if stage == "burn" { // the burn after the body is read, as the webhook's work
			for t0 := time.Now(); time.Since(t0) < 500*time.Microsecond; {
			}
		} else if stage != "" {
			bisectStage(srv, stage, body)
		}
		w.Header().Set("Content-Type", "application/json")
		if bytes.Contains(body, []byte("untrusted.example.com")) {
			_, _ = w.Write(deny)
			return
		}
		_, _ = w.Write(allow)
	})
}

func runLoadWith(tb testing.TB, o loadOptions, separate bool, traceDir string, canned bool) loadReport {
	tb.Helper()
	certs, err := NewCerts(CertConfig{Dir: tb.TempDir(), IPs: []net.IP{net.ParseIP("127.0.0.1")}}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	o.CAFile = filepath.Join(tb.TempDir(), "ca.pem")
	if err := os.WriteFile(o.CAFile, certs.CABundle(), 0o600); err != nil {
		tb.Fatal(err)
	}
	srv, _ := benchServer(tb, "127.0.0.1:0", certs)
	total := o.RPS * o.Seconds
	st := &serverStamps{in: make([]int64, total), out: make([]int64, total)}
	if canned {
		srv.handler = cannedHandler(srv)
	}
	srv.handler = stampHandler(srv.handler, st)
	if separate {
		defer TuneRuntime(RuntimeConfig{}, os.Getenv)()
	} else {
		// One process: the generator shares the webhook's Ps, and one P
		// (the webhook's default) would be the generator's bottleneck.
		defer TuneRuntime(RuntimeConfig{Procs: -1}, os.Getenv)()
	}
	// The server's Ps: the webhook's default (TuneRuntime), or N to compare.
	if v, err := strconv.Atoi(os.Getenv("BULWARK_LOAD_SERVER_PROCS")); err == nil && v > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(v))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	o.URL = "https://" + srv.Addr().String() + PathValidate
	if traceDir != "" {
		o.Trace = filepath.Join(traceDir, "generator.trace")
		f, err := os.Create(filepath.Join(traceDir, "server.trace"))
		if err != nil {
			tb.Fatal(err)
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			tb.Fatal(err)
		}
		defer trace.Stop()
	}
	if dir := os.Getenv("BULWARK_LOAD_PROFILE"); dir != "" && !canned {
		runtime.SetBlockProfileRate(10000)
		runtime.SetMutexProfileFraction(1)
		if f, err := os.Create(filepath.Join(dir, "cpu.pprof")); err == nil {
			_ = pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
		defer func() {
			for _, n := range []string{"block", "mutex"} {
				f, err := os.Create(filepath.Join(dir, n+".pprof"))
				if err == nil {
					_ = pprof.Lookup(n).WriteTo(f, 0)
					f.Close()
				}
			}
		}()
	}
	runtime.GC()
	stopSteal := func() stealSamples { return stealSamples{} }
	if os.Getenv("BULWARK_LOAD_STEAL") == "1" {
		stopSteal = sampleSteal()
		o.SampleCPU = true
	}
	cpu0, sys0, gc0, rt0, th0 := cpuTime(), sysTime(), gcCount(), readRuntimeStats(), readThreadStats()
	var g genResult
	if separate {
		g = runGeneratorProcess(tb, o)
	} else if g, err = generate(o); err != nil {
		tb.Fatal(err)
	}
	th := readThreadStats()
	steal := stopSteal()
	rep := loadReport{Opts: o, Separate: separate, Gen: g, Threads: th.sub(th0).per(g.Requests + o.Workers*4), RSS: procStatus("VmRSS"), PeakRSS: procStatus("VmHWM"), ServerGCs: gcCount() - gc0, RuntimeSettings: RuntimeSummary()}
	rt := readRuntimeStats()
	rep.SchedP99, rep.SchedMax = histQuantile(rt0.sched, rt.sched, 0.99), histQuantile(rt0.sched, rt.sched, 1)
	rep.GCPauseMax = histQuantile(rt0.pauses, rt.pauses, 1)
	rep.GoMem = rt.goMem
	rep.GCCPUPerReq = time.Duration((rt.gcCPU - rt0.gcCPU) * float64(time.Second) / float64(max(1, g.Requests)))
	rep.ServerCPUPerReq = (cpuTime() - cpu0) / time.Duration(max(1, g.Requests+o.Workers*4))
	rep.ServerSysPerReq = (sysTime() - sys0) / time.Duration(max(1, g.Requests+o.Workers*4))
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.Load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	var all []phases
	for i, s := range g.Samples {
		if s.Done == 0 {
			continue
		}
		p := phases{Total: time.Duration(s.Done - s.Intended), Dispatch: time.Duration(s.Start - s.Intended), at: s.Intended, end: s.Done}
		if in, out := atomic.LoadInt64(&st.in[i]), atomic.LoadInt64(&st.out[i]); in != 0 {
			p.Up, p.Handler, p.Down = time.Duration(in-s.Start), time.Duration(out-in), time.Duration(s.Done-out)
		}
		all = append(all, p)
	}
	if len(all) == 0 {
		tb.Fatal("no request answered")
	}
	slices.SortFunc(all, func(a, b phases) int { return int(a.Total - b.Total) })
	at := func(q float64) time.Duration { return all[int(float64(len(all)-1)*q)].Total }
	rep.P50, rep.P99, rep.P999, rep.Max = at(0.50), at(0.99), at(0.999), all[len(all)-1].Total
	within, _ := slices.BinarySearchFunc(all, 5*time.Millisecond+1, func(p phases, d time.Duration) int { return int(p.Total - d) })
	rep.Within5ms = float64(within) / float64(len(all))
	med := func(f func(phases) time.Duration) time.Duration {
		v := make([]time.Duration, len(all))
		for i, p := range all {
			v[i] = f(p)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	rep.Phases50 = phases{Total: rep.P50, Dispatch: med(func(p phases) time.Duration { return p.Dispatch }),
		Up: med(func(p phases) time.Duration { return p.Up }), Handler: med(func(p phases) time.Duration { return p.Handler }),
		Down: med(func(p phases) time.Duration { return p.Down })}
	tail := all[int(float64(len(all))*0.99):]
	for _, p := range tail {
		rep.PhasesTail.Total += p.Total / time.Duration(len(tail))
		rep.PhasesTail.Dispatch += p.Dispatch / time.Duration(len(tail))
		rep.PhasesTail.Up += p.Up / time.Duration(len(tail))
		rep.PhasesTail.Handler += p.Handler / time.Duration(len(tail))
		rep.PhasesTail.Down += p.Down / time.Duration(len(tail))
	}
	rep.Slowest = slices.Clone(all[max(0, len(all)-5):])
	rep.Steal = steal.against(all, tail)
	rep.Slowdown = slowdownIn(tail, all, steal.cpu, g.CPUSeries)
	if f := os.Getenv("BULWARK_LOAD_SLOWEST"); f != "" {
		// The slowest 1% as "intended done" Unix ns per line, to lay
		// against other timelines (hypervisor stalls seen by a probe).
		var b strings.Builder
		for _, p := range tail {
			fmt.Fprintf(&b, "%d %d\n", p.at, p.end)
		}
		if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
			tb.Error(err)
		}
	}
	return rep
}

func (r loadReport) log(tb testing.TB) {
	tb.Helper()
	who := "server and generator in one process"
	if r.Separate {
		who = "server alone; generator " + strconv.FormatFloat(float64(r.Gen.CPU)/float64(max(1, r.Gen.Requests))/1e6, 'f', 2, 64) + " ms/request in its own process"
	}
	tb.Logf("%s, %d workers, %d/s for %d s: %d answered (%.0f/s), %d dropped; latency from intended send time p50 %v p99 %v p99.9 %v max %v; %.1f%% within 5 ms",
		r.Gen.Proto, r.Opts.Workers, r.Opts.RPS, r.Opts.Seconds, r.Gen.Requests, float64(r.Gen.Requests)/r.Gen.Elapsed.Seconds(), r.Gen.Dropped,
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.P999.Round(time.Microsecond), r.Max.Round(time.Microsecond), 100*r.Within5ms)
	tb.Logf("server CPU %v per review (%v in the kernel; %s); RSS %d MB (peak %d MB, Go runtime %d MB); %d server GCs (%s), %d generator GCs; load average %s; warm-up %v, %d connections opened in the window",
		r.ServerCPUPerReq.Round(time.Microsecond), r.ServerSysPerReq.Round(time.Microsecond), who, r.RSS>>20, r.PeakRSS>>20, r.GoMem>>20, r.ServerGCs, r.RuntimeSettings, r.Gen.GCs, r.Load, r.Gen.Warmup.Round(time.Millisecond), r.Gen.NewConns)
	tb.Logf("server threads per review (kernel): run %v, waited runnable %v, %.2f time slices, %.2f involuntary switches, %.2f page faults; machine steal %v per review",
		r.Threads.Run.Round(time.Microsecond), r.Threads.Wait.Round(time.Microsecond), r.Threads.Slices, r.Threads.Involuntary, r.Threads.Faults, r.Threads.Steal.Round(time.Microsecond))
	tb.Logf("server runtime: scheduling latency p99 ≤ %v, max ≤ %v; longest GC pause ≤ %v; GC CPU %v per review",
		r.SchedP99, r.SchedMax, r.GCPauseMax, r.GCCPUPerReq.Round(time.Microsecond))
	if r.Steal.Jumps > 0 { // sampled (BULWARK_LOAD_STEAL=1) and some
		tb.Logf("steal: %v in the window in %d jumps; %.0f%% of the slowest 1%% overlap a jump against %.0f%% of all reviews; the slowest 1%% fall in %d distinct 20 ms windows",
			r.Steal.Total, r.Steal.Jumps, 100*r.Steal.TailShare, 100*r.Steal.AllShare, r.Steal.TailClusters)
	}
	if d := r.Slowdown; d.Windows > 0 {
		ratio := func(a, b time.Duration) float64 { return float64(a) / float64(max(1, b)) }
		tb.Logf("slowdown: the slowest 1%% were in flight in %d windows, %v in all, in which %d reviews were answered; CPU per review there: server %v (%.1f× its %v over the run), generator %v (%.1f× its %v)",
			d.Windows, d.Span.Round(time.Millisecond), d.Answered, d.ServerIn.Round(time.Microsecond), ratio(d.ServerIn, d.ServerAll), d.ServerAll.Round(time.Microsecond),
			d.GenIn.Round(time.Microsecond), ratio(d.GenIn, d.GenAll), d.GenAll.Round(time.Microsecond))
	}
	tb.Logf("median phases: %v", r.Phases50)
	tb.Logf("slowest 1%% (mean): %v", r.PhasesTail)
	for _, p := range r.Slowest {
		tb.Logf("  slow: %v", p)
	}
}

// TestLoadLoopback runs the load for a short window (BULWARK_LOAD_SECONDS,
// default 2) and checks correctness under concurrency: every answer right
// (the generator fails otherwise), nothing dropped, the memory target.
// Latency is a benchmark's business (BenchmarkLoadLoopback) on a shared
// machine; BULWARK_LOAD_STRICT=1 also asserts the 5 ms p99 (idle machine).
// The generator runs in its own process (as the benchmark's; with
// BULWARK_LOAD_SEPARATE=0 in this one, and the webhook then on all Ps);
// BULWARK_LOAD_CANNED=1 serves the baseline of BenchmarkLoadLoopback
// (cannedHandler, with BULWARK_LOAD_BASELINE_BURN and _STAGE) instead of
// the webhook, to bisect the latency tail. BULWARK_LOAD_STEAL=1 relates
// the slowest reviews to the hypervisor's steal time and to both
// processes' CPU per review while they were in flight (slowdownReport); BULWARK_LOAD_SLOWEST
// names a file for the slowest 1% (Unix ns intervals); the generator
// process never inherits GODEBUG (BULWARK_LOAD_GENERATOR_GODEBUG sets its
// own), so GODEBUG settings tried on the webhook are the webhook's alone.
// BULWARK_LOAD_SERVER_PROCS=N runs the webhook on N Ps (GOMAXPROCS) instead
// of `bulwark admission serve`'s default of one (generator in its own
// process).
func TestLoadLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	o := loadOptionsFromEnv(2)
	r := runLoadWith(t, o, os.Getenv("BULWARK_LOAD_SEPARATE") != "0", os.Getenv("BULWARK_LOAD_TRACE"), os.Getenv("BULWARK_LOAD_CANNED") == "1")
	r.log(t)
	total := o.RPS * o.Seconds
	if r.Gen.Requests+r.Gen.Dropped != total {
		t.Errorf("%d answered + %d dropped, want %d", r.Gen.Requests, r.Gen.Dropped, total)
	}
	strict := os.Getenv("BULWARK_LOAD_STRICT") == "1"
	if r.Gen.Dropped > total/100 || (strict && r.Gen.Dropped > 0) {
		t.Errorf("%d of %d reviews dropped: the webhook does not keep up", r.Gen.Dropped, total)
	}
	if limit := 5 * time.Millisecond; strict && r.P99 > limit {
		t.Errorf("p99 %v over %v", r.P99, limit)
	}
	// The RSS is the whole test process's: run alone (as with
	// BULWARK_LOAD_STRICT=1, or the benchmark) it is the webhook's; after
	// the package's other tests (a kube-apiserver client, central, …) it
	// is not, so only the strict run asserts it.
	if r.RSS > 100<<20 && strict && !raceEnabled {
		t.Errorf("RSS %d MB over 100 MB", r.RSS>>20)
	}
}

// BenchmarkLoadLoopback is issue 4's end-to-end speed target: 500
// reviews/s over TLS on loopback for 10 s (BULWARK_LOAD_* as for
// TestLoadLoopback), generator in its own process unless
// BULWARK_LOAD_SEPARATE=0. One run per invocation whatever b.N (use
// -benchtime=1x); the figures are metrics: p50/p99/p99.9 latency from the
// intended send time, the server's CPU per review, RSS, dropped reviews.
//
// The same run first measures a baseline: the same TLS server and
// generator with a handler that answers each review from a prepared
// response (cannedHandler). Its p99 is what this machine's network path and
// scheduling cost without any webhook work; baseline-p99-ms and
// p99-over-baseline put the webhook's figure against it.
func BenchmarkLoadLoopback(b *testing.B) {
	o := loadOptionsFromEnv(10)
	separate := os.Getenv("BULWARK_LOAD_SEPARATE") != "0"
	base := runLoadWith(b, o, separate, "", true)
	b.Logf("baseline (prepared answers, same server and generator): p50 %v p99 %v p99.9 %v; %.1f%% within 5 ms; server CPU %v per request; threads per request: waited runnable %v, %.2f time slices, %.2f involuntary switches; load average %s",
		base.P50.Round(time.Microsecond), base.P99.Round(time.Microsecond), base.P999.Round(time.Microsecond), 100*base.Within5ms,
		base.ServerCPUPerReq.Round(time.Microsecond), base.Threads.Wait.Round(time.Microsecond), base.Threads.Slices, base.Threads.Involuntary, base.Load)
	r := runLoad(b, o, separate, os.Getenv("BULWARK_LOAD_TRACE"))
	r.log(b)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	b.ReportMetric(ms(base.P99), "baseline-p99-ms")
	b.ReportMetric(float64(r.P99)/float64(max(1, base.P99)), "p99-over-baseline")
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(r.P50), "p50-ms")
	b.ReportMetric(ms(r.P99), "p99-ms")
	b.ReportMetric(ms(r.P999), "p99.9-ms")
	b.ReportMetric(ms(r.ServerCPUPerReq), "server-cpu-ms/review")
	b.ReportMetric(ms(r.ServerSysPerReq), "server-sys-ms/review")
	b.ReportMetric(ms(r.Threads.Wait), "server-runq-wait-ms/review")
	b.ReportMetric(r.Threads.Slices, "server-slices/review")
	b.ReportMetric(float64(r.RSS)/(1<<20), "rss-MB")
	b.ReportMetric(float64(r.PeakRSS)/(1<<20), "peak-rss-MB")
	b.ReportMetric(float64(r.Gen.Dropped), "dropped")
	b.ReportMetric(ms(r.GCCPUPerReq), "gc-cpu-ms/review")
	b.ReportMetric(ms(r.SchedP99), "sched-p99-ms")
	b.ReportMetric(100*r.Within5ms, "%within-5ms")
	if r.Gen.Requests == 0 {
		b.Fatal(errors.New("no review answered"))
	}
}

// bisectStage does part of the webhook's work on body and discards it
// (BULWARK_LOAD_BASELINE_STAGE: decode, eval, full).
func bisectStage(srv *Server, stage string, body []byte) {
	if stage == "full" {
		req := httptest.NewRequest(http.MethodPost, PathValidate, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		srv.validate(httptest.NewRecorder(), req)
		return
	}
	sc := srv.reviews.Get().(*reviewScratch)
	defer srv.reviews.Put(sc)
	_, req, err := decodeReview(body, sc)
	if err != nil || stage == "decode" {
		return
	}
	req.Images = srv.deps.Images
	_ = srv.deps.Policies.Current().Evaluate(context.Background(), req)
}

// threadStats sums what the kernel's scheduler reports for the process's
// threads (/proc/self/task/*/schedstat and status): time running, time
// runnable but waiting for a CPU (run-queue delay: neighbours, or our own
// threads queued behind each other), time slices (each a wake-up or a
// preemption), involuntary switches (preempted while runnable); and the
// machine's steal time (/proc/stat: the hypervisor ran something else on
// our virtual CPUs). per divides by a review count for the report.
type threadStats struct {
	Run, Wait, Steal    time.Duration
	Slices, Involuntary float64
	// Faults counts the process's page faults (minor and major): on a
	// virtual machine a fault on memory the host reclaimed also costs a
	// host-side fault the guest does not see.
	Faults float64
}

func readThreadStats() threadStats {
	var st threadStats
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", t.Name(), "schedstat"))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) == 3 {
			run, _ := strconv.ParseInt(f[0], 10, 64)
			wait, _ := strconv.ParseInt(f[1], 10, 64)
			slices, _ := strconv.ParseFloat(f[2], 64)
			st.Run += time.Duration(run)
			st.Wait += time.Duration(wait)
			st.Slices += slices
		}
		if b, err = os.ReadFile(filepath.Join("/proc/self/task", t.Name(), "status")); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "nonvoluntary_ctxt_switches:"); ok {
					n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
					st.Involuntary += n
				}
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		st.Faults = float64(ru.Minflt + ru.Majflt)
	}
	st.Steal = readSteal()
	return st
}

func (a threadStats) sub(b threadStats) threadStats {
	return threadStats{Run: a.Run - b.Run, Wait: a.Wait - b.Wait, Steal: a.Steal - b.Steal, Slices: a.Slices - b.Slices,
		Involuntary: a.Involuntary - b.Involuntary, Faults: a.Faults - b.Faults}
}

func (a threadStats) per(n int) threadStats {
	d := max(1, n)
	return threadStats{Run: a.Run / time.Duration(d), Wait: a.Wait / time.Duration(d), Steal: a.Steal / time.Duration(d),
		Slices: a.Slices / float64(d), Involuntary: a.Involuntary / float64(d), Faults: a.Faults / float64(d)}
}

// stealSamples is the machine's cumulative steal time (/proc/stat, all
// CPUs), sampled every 2 ms during the window: a virtual machine's vCPU
// the host does not run stalls whatever runs on it, unseen by the guest's
// scheduler and the Go runtime.
type stealSamples struct {
	at    []int64 // Unix ns
	steal []time.Duration
	cpu   []cpuPoint // this process's CPU time at the same instants
}

// stealReport: Total steal in the window, Jumps (samples where it grew),
// the share of the slowest 1% and of all reviews whose interval overlaps a
// jump, and how many distinct 20 ms windows the slowest 1% fall in (few:
// they come from a few stalls, each delaying every review in flight).
type stealReport struct {
	Total               time.Duration
	Jumps, TailClusters int
	TailShare, AllShare float64
}

func sampleSteal() (stop func() stealSamples) {
	var ss stealSamples
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			now := time.Now().UnixNano()
			ss.at = append(ss.at, now)
			ss.steal = append(ss.steal, readSteal())
			ss.cpu = append(ss.cpu, cpuPoint{now, int64(cpuTime())})
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() stealSamples { close(done); <-finished; return ss }
}

// readSteal is the machine's cumulative steal time (/proc/stat, in
// USER_HZ ticks of 10 ms).
func readSteal() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if f := strings.Fields(line); len(f) > 8 && f[0] == "cpu" {
		ticks, _ := strconv.ParseInt(f[8], 10, 64)
		return time.Duration(ticks) * 10 * time.Millisecond
	}
	return 0
}

func (ss stealSamples) against(all, tail []phases) stealReport {
	var r stealReport
	var jumps []int64 // times of the samples where steal grew
	for i := 1; i < len(ss.at); i++ {
		if d := ss.steal[i] - ss.steal[i-1]; d > 0 {
			r.Total += d
			jumps = append(jumps, ss.at[i])
		}
	}
	r.Jumps = len(jumps)
	overlaps := func(p phases) bool {
		// A jump is seen up to one sample (2 ms) after it happened, and
		// /proc/stat counts in 10 ms ticks: look 10 ms either side.
		i, _ := slices.BinarySearch(jumps, p.at-int64(10*time.Millisecond))
		return i < len(jumps) && jumps[i] <= p.end+int64(10*time.Millisecond)
	}
	share := func(ps []phases) float64 {
		n := 0
		for _, p := range ps {
			if overlaps(p) {
				n++
			}
		}
		return float64(n) / float64(max(1, len(ps)))
	}
	r.TailShare, r.AllShare = share(tail), share(all)
	windows := map[int64]bool{}
	for _, p := range tail {
		windows[p.at/int64(20*time.Millisecond)] = true
	}
	r.TailClusters = len(windows)
	return r
}

// TestSlowdownIn checks the slowdown report's arithmetic on a made-up
// timeline: CPU interpolated between samples, overlapping intervals of the
// slowest reviews joined into one window, reviews counted by completion.
func TestSlowdownIn(t *testing.T) {
	ms := int64(time.Millisecond)
	// Server: 1 ms of CPU per ms until 10 ms, then 4 per ms (as if slowed).
	var server, gen []cpuPoint
	for i := int64(0); i <= 20; i += 2 {
		c := i
		if i > 10 {
			c = 10 + 4*(i-10)
		}
		server = append(server, cpuPoint{i * ms, c * ms})
		gen = append(gen, cpuPoint{i * ms, i * ms / 2})
	}
	if got := cpuIn(server, 1*ms, 3*ms); got != float64(2*ms) {
		t.Errorf("cpuIn(1..3 ms) = %v, want 2 ms", time.Duration(got))
	}
	if got := cpuIn(server, 10*ms, 12*ms); got != float64(8*ms) {
		t.Errorf("cpuIn(10..12 ms) = %v, want 8 ms", time.Duration(got))
	}
	tail := []phases{{at: 12 * ms, end: 15 * ms}, {at: 14 * ms, end: 16 * ms}}
	all := append([]phases{{at: 0, end: 2 * ms}, {at: 2 * ms, end: 10 * ms}, {at: 18 * ms, end: 20 * ms}}, tail...)
	r := slowdownIn(tail, all, server, gen)
	if r.Windows != 1 || r.Span != 4*time.Millisecond || r.Answered != 2 {
		t.Fatalf("windows %d span %v answered %d, want 1, 4ms, 2", r.Windows, r.Span, r.Answered)
	}
	// 16 ms of server CPU in 12..16 ms for 2 reviews; 48 ms over 2..20 ms for 5.
	if r.ServerIn != 8*time.Millisecond || r.ServerAll != 48*time.Millisecond/5 {
		t.Errorf("server per review in %v all %v, want 8ms and 9.6ms", r.ServerIn, r.ServerAll)
	}
	if r.GenIn != time.Millisecond {
		t.Errorf("generator per review in windows %v, want 1ms", r.GenIn)
	}
}
