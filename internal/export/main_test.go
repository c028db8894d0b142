package export

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/store/pgtest"
)

// pg is the test PostgreSQL server (test-only state), stopped by TestMain.
var pg = pgtest.New()

func TestMain(m *testing.M) {
	if dsn := os.Getenv(killChildEnv); dsn != "" {
		os.Exit(killChildMain(dsn))
	}
	if os.Getenv(receiversChildEnv) != "" {
		os.Exit(receiversChildMain())
	}
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// backends are the two databases the tests run against.
var backends = pg.Backends()

var testKey = []byte("0123456789abcdef0123456789abcdef")

func openStore(t testing.TB, dsn string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn, store.Options{SecretKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// sampleRecord is a realistic runtime alert: a shell spawned in a
// container, as the sensor reports it (fields of the ingest contract).
func sampleRecord(i int) Record {
	return Record{Kind: "alert", Alert: alerts.Alert{
		ID:   fmt.Sprintf("0b7c6f2e-4d1a-4c8e-9f00-%012d", i),
		Time: time.Date(2026, 11, 27, 16, 30, 0, i*1000, time.UTC), Source: alerts.SourceSensor,
		Rule: "Terminal shell in container", RuleVersion: "falco-rules@3.2.0", Severity: alerts.SeverityHigh,
		Title:       fmt.Sprintf("A shell was spawned in a container with an attached terminal (user=root shell=bash parent=runc cmdline=bash -i n=%d)", i),
		MitreTactic: "TA0002", MitreTechnique: "T1059.004",
		Cluster: "prod-eu", Namespace: "payments", Pod: "api-7d9c5b7f6-x2k4q", Container: "api",
		ContainerID: "3f2a9c1b7e6d", Image: "registry.example.com/payments/api:1.42.0",
		ImageDigest: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Node:        "node-3", Workload: "Deployment/api",
		Evidence: json.RawMessage(`{"proc.name":"bash","proc.pname":"runc","user.name":"root","evt.type":"execve","proc.tty":34816}`),
	}}
}

// enqueue queues records through the store's real path.
func enqueue(t testing.TB, st *store.Store, recs ...Record) {
	t.Helper()
	var items []store.ExportItem
	for i := range recs {
		it, err := store.AlertExportItem(&recs[i].Alert)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, it)
	}
	if _, err := st.EnqueueExports(context.Background(), items); err != nil {
		t.Fatal(err)
	}
}

// createExport normalizes and stores a configuration.
func createExport(t testing.TB, st *store.Store, c Config) *store.Export {
	t.Helper()
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	row, err := c.ToStore(store.ExportOriginAPI)
	if err != nil {
		t.Fatal(err)
	}
	e, err := st.CreateExport(context.Background(), row)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runDispatcher runs a dispatcher until the test ends.
func runDispatcher(t testing.TB, st *store.Store, opts DispatcherOptions) *Dispatcher {
	t.Helper()
	if opts.Poll == 0 {
		opts.Poll = 20 * time.Millisecond
	}
	if opts.Refresh == 0 {
		opts.Refresh = 50 * time.Millisecond
	}
	d := NewDispatcher(st, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}
