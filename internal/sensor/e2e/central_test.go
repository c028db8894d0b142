package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor"
	"github.com/bulwark-security/bulwark/internal/sensor/spool"
	"github.com/bulwark-security/bulwark/internal/server"
	"github.com/bulwark-security/bulwark/internal/store"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

type central struct {
	st     *store.Store
	url    string
	caPath string
	token  string
	stop   func()
}

// startCentral runs the real central (internal/server) on an SQLite store
// at listen, with an agent token.
func startCentral(t *testing.T, listen, dataDir string) *central {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dataDir, "bulwark.db"), store.Options{SecretKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Listen: listen, DataDir: dataDir, PollInterval: 50 * time.Millisecond, ShutdownGrace: 5 * time.Second},
		server.Deps{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(rctx) }()
	tok, _, err := st.CreateToken(ctx, fmt.Sprint("sensor-", time.Now().UnixNano()), store.RoleAgent, time.Time{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	c := &central{st: st, url: srv.URL(), caPath: filepath.Join(dataDir, "tls", "self-signed.crt"), token: tok}
	stopped := false
	c.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		st.Close()
	}
	t.Cleanup(c.stop)
	return c
}

// occurrences sums the stored alerts' counts (central groups repeats of an
// alert into one row with a count): each accepted alert adds exactly one.
func (c *central) occurrences(t *testing.T) int64 {
	t.Helper()
	as, _, err := c.st.ListAlerts(context.Background(), store.AlertFilter{}, store.Page{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, a := range as {
		n += a.Count
	}
	return n
}

func client(t *testing.T, caPath string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func defaultEngine(t testing.TB) *rules.Engine {
	t.Helper()
	files, err := rules.DefaultRuleFiles()
	if err != nil {
		t.Fatal(err)
	}
	e, err := rules.Compile(files)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestHelperSensor is not a test: it is the sensor process
// TestSpoolToRealCentral starts and kills (BULWARK_E2E_HELPER=1): it replays
// EVENTS into the spool and forwards to URL (TLS with CA) until killed.
func TestHelperSensor(t *testing.T) {
	if os.Getenv("BULWARK_E2E_HELPER") != "1" {
		t.Skip("helper process for TestSpoolToRealCentral")
	}
	sp, err := spool.Open(os.Getenv("SPOOL"), spool.Options{})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	c := &sensor.Counters{}
	s, err := sensor.New(sensor.Config{Engine: defaultEngine(t), Sinks: []sensor.Sink{&sensor.SpoolSink{Spool: sp, C: c}}, Counters: c})
	if err != nil {
		os.Exit(2)
	}
	ctx := context.Background()
	fw := &sensor.Forwarder{Spool: sp, URL: os.Getenv("URL"), Token: os.Getenv("TOKEN"), C: c, BatchMax: 25,
		Client: client(t, os.Getenv("CA")), MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	go fw.Run(ctx)
	f, err := os.Open(os.Getenv("EVENTS"))
	if err != nil {
		os.Exit(2)
	}
	if err := s.Run(ctx, &sensor.Replay{R: f}); err != nil {
		os.Exit(2)
	}
	fmt.Printf("SPOOLED %d\n", c.AlertsSpooled.Load())
	for {
		fmt.Printf("DELIVERED %d FAILURES %d\n", c.AlertsDelivered.Load(), c.DeliveryFailures.Load())
		time.Sleep(100 * time.Millisecond)
	}
}

func startHelper(t *testing.T, env ...string) *bufio.Scanner {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSensor$", "-test.v")
	cmd.Env = append(os.Environ(), append([]string{"BULWARK_E2E_HELPER=1"}, env...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() })
	sc := bufio.NewScanner(out)
	helpers = append(helpers, cmd)
	return sc
}

var helpers []*exec.Cmd

func waitFor(t *testing.T, sc *bufio.Scanner, match func(string) bool, what string) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		for sc.Scan() {
			if match(sc.Text()) {
				ch <- sc.Text()
				for sc.Scan() {
				}
				return
			}
		}
		close(ch)
	}()
	select {
	case l, ok := <-ch:
		if !ok {
			t.Fatalf("helper exited before %s", what)
		}
		return l
	case <-time.After(90 * time.Second):
		t.Fatalf("timeout waiting for %s", what)
	}
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestSpoolToRealCentral: the sensor raises alerts while central is down
// (they go to the spool), the sensor process is SIGKILLed, central starts,
// a new sensor process on the same spool delivers everything. Central holds
// each alert exactly once; replaying the whole spool again (a crash after
// central stored a batch but before the ack reached the disk) adds nothing.
func TestSpoolToRealCentral(t *testing.T) {
	const n = 120
	dir := t.TempDir()
	events := filepath.Join(dir, "events.jsonl")
	var b strings.Builder
	for i := range n {
		// Distinct rules' worth of variety is not needed: n exec events of
		// the test binary, each one alert, distinguishable by argument.
		fmt.Fprintf(&b, `{"time":"2026-11-27T10:00:00Z","type":"execve","proc":{"name":"bulwark_alerttest","argv":["bulwark_alerttest","n%d"],"pid":%d},"user":{"uid":0,"loginuid":-1,"gid":0},"container":{"id":"host"}}`+"\n", i, 1000+i)
	}
	os.WriteFile(events, []byte(b.String()), 0o600)
	spoolDir := filepath.Join(dir, "spool")
	dataDir := filepath.Join(dir, "central")
	os.MkdirAll(dataDir, 0o700)
	addr := freeAddr(t)
	url := "https://" + addr
	ca := filepath.Join(dataDir, "tls", "self-signed.crt")

	// 1. Central down: everything is spooled; then the sensor is killed.
	sc := startHelper(t, "SPOOL="+spoolDir, "URL="+url, "TOKEN=none", "CA=/dev/null", "EVENTS="+events)
	if l := waitFor(t, sc, func(s string) bool { return strings.HasPrefix(s, "SPOOLED") }, "spooling"); l != fmt.Sprintf("SPOOLED %d", n) {
		t.Fatalf("helper: %s", l)
	}
	helpers[len(helpers)-1].Process.Signal(syscall.SIGKILL)
	helpers[len(helpers)-1].Wait()
	copyDir(t, spoolDir, filepath.Join(dir, "spool-copy"))

	// 2. Central up; a new sensor process delivers the spool.
	c := startCentral(t, addr, dataDir)
	empty := filepath.Join(dir, "none.jsonl")
	os.WriteFile(empty, nil, 0o600)
	sc = startHelper(t, "SPOOL="+spoolDir, "URL="+c.url, "TOKEN="+c.token, "CA="+ca, "EVENTS="+empty)
	waitFor(t, sc, func(s string) bool { return strings.HasPrefix(s, fmt.Sprintf("DELIVERED %d ", n)) }, "delivery of every alert")
	if got := c.occurrences(t); got != n {
		t.Fatalf("central holds %d alert occurrences, want %d", got, n)
	}

	// 3. Replay the pre-delivery copy of the spool: all duplicates.
	sc = startHelper(t, "SPOOL="+filepath.Join(dir, "spool-copy"), "URL="+c.url, "TOKEN="+c.token, "CA="+ca, "EVENTS="+empty)
	waitFor(t, sc, func(s string) bool { return strings.HasPrefix(s, fmt.Sprintf("DELIVERED %d ", n)) }, "replay of the copy")
	if got := c.occurrences(t); got != n {
		t.Fatalf("after replaying the same alerts central holds %d occurrences, want still %d", got, n)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
