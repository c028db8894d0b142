package sensor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/sensor/spool"
)

// standIn is a STAND-IN for central's POST /api/v1/alerts (the real route
// is being written by another helper; see TestDeliveryToRealCentral). It
// decodes with the contract's own strict decoder (alerts.DecodeBatch) and
// stores by id, counting duplicates, as the contract requires.
type standIn struct {
	mu       sync.Mutex
	byID     map[string]alerts.Alert
	dups     int
	requests int
	// handle, when set, decides the answer before storing: return 0 to
	// store and answer 200, another status to answer it without storing.
	handle func(n int, b *alerts.Batch) int
	// afterStore, when set, runs after storing and before answering.
	afterStore func(n int)
}

func newStandIn() *standIn { return &standIn{byID: map[string]alerts.Alert{}} }

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/alerts" || r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer tok" {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	b, err := alerts.DecodeBatch(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.requests++
	n := s.requests
	h, after := s.handle, s.afterStore
	s.mu.Unlock()
	if h != nil {
		if code := h(n, b); code != 0 {
			http.Error(w, "stand-in says "+strconv.Itoa(code), code)
			return
		}
	}
	var res alerts.IngestResult
	s.mu.Lock()
	for _, a := range b.Alerts {
		if _, ok := s.byID[a.ID]; ok {
			res.Duplicates++
			s.dups++
			continue
		}
		s.byID[a.ID] = a
		res.Accepted++
	}
	s.mu.Unlock()
	if after != nil {
		after(n)
	}
	json.NewEncoder(w).Encode(res)
}

func (s *standIn) count() (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID), s.dups
}

// alertEvents writes n host exec events that each raise exactly one
// "Test alert" whose title carries the index.
func alertEvents(t *testing.T, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "events.jsonl")
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"time":"2026-11-27T10:00:00Z","type":"execve","proc":{"name":"bulwark_alerttest","argv":["bulwark_alerttest","n%d"],"pid":%d},"user":{"uid":0,"loginuid":-1,"gid":0},"container":{"id":"host"}}`+"\n", i, 1000+i)
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// indexes returns the n<index> of each stored alert's title and fails on
// an index seen twice.
func indexes(t *testing.T, s *standIn) map[int]bool {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	got := map[int]bool{}
	for _, a := range s.byID {
		i := strings.Index(a.Title, "cmdline=bulwark_alerttest n")
		if i < 0 {
			t.Fatalf("unexpected alert %q", a.Title)
		}
		f := strings.Fields(a.Title[i+len("cmdline=bulwark_alerttest n"):])
		n, err := strconv.Atoi(f[0])
		if err != nil {
			t.Fatalf("title %q", a.Title)
		}
		if got[n] {
			t.Fatalf("alert n%d stored twice (different ids)", n)
		}
		got[n] = true
	}
	return got
}

// TestHelperSensorProcess is not a test: it is the sensor process the crash
// test starts and kills (BULWARK_SENSOR_HELPER=1). It replays EVENTS into
// the spool and forwards the spool to URL until killed.
func TestHelperSensorProcess(t *testing.T) {
	if os.Getenv("BULWARK_SENSOR_HELPER") != "1" {
		t.Skip("helper process for TestCrashLosesNothing")
	}
	sp, err := spool.Open(os.Getenv("SPOOL"), spool.Options{})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	c := &Counters{}
	s, err := New(Config{Engine: defaultEngine(t), Sinks: []Sink{&SpoolSink{Spool: sp, C: c}}, Counters: c})
	if err != nil {
		os.Exit(2)
	}
	ctx := context.Background()
	fw := &Forwarder{Spool: sp, URL: os.Getenv("URL"), Token: "tok", C: c, BatchMax: 10, MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	go fw.Run(ctx)
	f, err := os.Open(os.Getenv("EVENTS"))
	if err != nil {
		os.Exit(2)
	}
	if err := s.Run(ctx, &Replay{R: f}); err != nil {
		os.Exit(2)
	}
	fmt.Printf("SPOOLED %d\n", c.AlertsSpooled.Load())
	select {} // forward until killed
}

func startHelper(t *testing.T, spoolDir, url, events string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSensorProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "BULWARK_SENSOR_HELPER=1", "SPOOL="+spoolDir, "URL="+url, "EVENTS="+events)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewScanner(out)
}

func waitLine(t *testing.T, sc *bufio.Scanner, prefix string) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), prefix) {
				ch <- sc.Text()
				return
			}
		}
		close(ch)
	}()
	select {
	case l, ok := <-ch:
		if !ok {
			t.Fatalf("helper exited before printing %q", prefix)
		}
		return l
	case <-time.After(60 * time.Second):
		t.Fatalf("timeout waiting for %q", prefix)
	}
	return ""
}

// TestCrashLosesNothing: central is down while the sensor raises 200
// alerts; central comes back; the sensor process is SIGKILLed while a batch
// is in flight (central stored it but the answer never arrived); a new
// sensor process on the same spool delivers the rest. Every alert is stored
// exactly once and the in-flight batch was resent (and deduplicated by id).
func TestCrashLosesNothing(t *testing.T) {
	const n = 200
	central := newStandIn()
	var mu sync.Mutex
	down := true
	killNow := make(chan struct{})
	release := make(chan struct{})
	central.handle = func(req int, b *alerts.Batch) int {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	var once sync.Once
	stored := 0
	central.afterStore = func(int) {
		mu.Lock()
		stored++
		k := stored == 3
		mu.Unlock()
		if k { // the third accepted batch: stored, but the sender dies before the answer
			once.Do(func() { close(killNow) })
			<-release
		}
	}
	srv := httptest.NewServer(central)
	defer srv.Close()
	defer close(release)

	dir := t.TempDir()
	events := alertEvents(t, n)
	cmd, sc := startHelper(t, dir, srv.URL, events)
	if l := waitLine(t, sc, "SPOOLED"); l != fmt.Sprintf("SPOOLED %d", n) {
		t.Fatalf("helper: %s", l)
	}
	if got, _ := central.count(); got != 0 {
		t.Fatalf("central was down but stored %d", got)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	select {
	case <-killNow:
	case <-time.After(60 * time.Second):
		t.Fatal("no delivery after central came back")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	before, _ := central.count()
	if before != 30 {
		t.Fatalf("before the crash central stored %d alerts, want 3 batches of 10", before)
	}

	// Restart on the same spool with no new events.
	empty := filepath.Join(t.TempDir(), "none.jsonl")
	os.WriteFile(empty, nil, 0o600)
	_, sc2 := startHelper(t, dir, srv.URL, empty)
	waitLine(t, sc2, "SPOOLED")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if got, _ := central.count(); got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, dups := central.count()
	if got != n {
		t.Fatalf("central stored %d alerts, want %d", got, n)
	}
	if dups != 10 {
		t.Errorf("want the in-flight batch of 10 resent and deduplicated, got %d duplicates", dups)
	}
	idx := indexes(t, central)
	for i := range n {
		if !idx[i] {
			t.Errorf("alert n%d lost", i)
		}
	}
}

// A batch central refuses (400) is resent one alert at a time so that only
// the bad alert is skipped.
func TestRejectedBatchSkipsOnlyTheBadAlert(t *testing.T) {
	central := newStandIn()
	central.handle = func(_ int, b *alerts.Batch) int {
		for _, a := range b.Alerts {
			if strings.Contains(a.Title, " n7 ") {
				return http.StatusBadRequest // pretend central finds n7 invalid
			}
		}
		return 0
	}
	srv := httptest.NewServer(central)
	defer srv.Close()
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	c := &Counters{}
	s, _ := New(Config{Engine: defaultEngine(t), Sinks: []Sink{&SpoolSink{Spool: sp, C: c}}, Counters: c})
	f, _ := os.Open(alertEvents(t, 25))
	defer f.Close()
	if err := s.Run(context.Background(), &Replay{R: f}); err != nil {
		t.Fatal(err)
	}
	fw := &Forwarder{Spool: sp, URL: srv.URL, Token: "tok", C: c, BatchMax: 10}
	for range 100 {
		if _, err := fw.Once(context.Background()); err != nil && !strings.Contains(err.Error(), "one by one") {
			t.Fatal(err)
		}
	}
	idx := indexes(t, central)
	if len(idx) != 24 || idx[7] || c.AlertsRejected.Load() != 1 {
		t.Fatalf("stored %d (n7 stored: %v), rejected %d", len(idx), idx[7], c.AlertsRejected.Load())
	}
}
