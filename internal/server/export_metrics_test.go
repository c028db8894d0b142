package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/export"
	"github.com/bulwark-security/bulwark/internal/store"
)

// TestExportMetricsBacklog: with no delivery running (an API-only
// replica), the export series on /metrics report the backlog the store
// holds — lag and pending exact while it fits the sample, the filter
// applied — from store.ExportLagStats.
func TestExportMetricsBacklog(t *testing.T) {
	cfg := export.Config{Name: "lake", Type: export.TypeSyslog, Address: "127.0.0.1:9", Network: "udp",
		Filter: export.Filter{MinSeverity: "high"}}
	e := startEnv(t, backends[0].DSN(t), Config{Workers: -1, SweepInterval: -1, DBWatchInterval: -1, Exports: []export.Config{cfg}})
	ctx := context.Background()
	var items []store.ExportItem
	for i := range 300 {
		sev := alerts.SeverityLow
		if i%3 == 0 {
			sev = alerts.SeverityCritical
		}
		it, err := store.AlertExportItem(&alerts.Alert{ID: fmt.Sprintf("m-%d", i), Time: time.Now(), Source: alerts.SourceSensor,
			Rule: "Terminal shell in container", Severity: sev, Title: "shell"})
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, it)
	}
	// A second, unfiltered export makes the low ones enter the log too.
	if _, err := e.st.CreateExport(ctx, store.Export{Name: "all", Type: "webhook", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.EnqueueExports(ctx, items); err != nil {
		t.Fatal(err)
	}
	st, m := e.do("GET", "/metrics", e.admin, nil)
	if st != http.StatusOK {
		t.Fatalf("metrics: %d", st)
	}
	for _, want := range []string{
		`bulwark_export_lag_records{export="lake",type="syslog"} 300`,
		`bulwark_export_pending_records{export="lake",type="syslog"} 100`,
		`bulwark_export_lag_records{export="all",type="webhook"} 300`,
		`bulwark_export_pending_records{export="all",type="webhook"} 300`,
	} {
		if !strings.Contains(string(m), want) {
			t.Errorf("no %q in\n%s", want, grepLines(string(m), "bulwark_export_"))
		}
	}
	if strings.Contains(string(m), `bulwark_export_oldest_undelivered_seconds{export="lake",type="syslog"} 0`+"\n") {
		t.Errorf("oldest undelivered is 0 with a backlog:\n%s", grepLines(string(m), "bulwark_export_oldest"))
	}
}
