package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-security/bulwark/internal/store"
)

// exportCollector reads the exports' delivery series from the store at
// scrape time: every replica delivers from the same log and cursors, so a
// count kept in this process would miss what the others delivered. The
// lag comes from store.ExportLagStats, bounded work per export whatever
// the backlog (cursor and head positions, a sample of store.LagSample
// records), not the exact filtered count of the API's status.
type exportCollector struct{ st *store.Store }

var (
	exportDeliveredDesc = prometheus.NewDesc("bulwark_export_delivered_total",
		"Records delivered by an export, ever.", []string{"export", "type"}, nil)
	exportFailedDesc = prometheus.NewDesc("bulwark_export_failures_total",
		"Record deliveries that failed (retried later, or refused for good), ever.", []string{"export", "type"}, nil)
	exportDeadTotalDesc = prometheus.NewDesc("bulwark_export_dead_letters_total",
		"Records that became dead letters (refused for good, or older than the export's max age), ever.", []string{"export", "type"}, nil)
	exportDeadDesc = prometheus.NewDesc("bulwark_export_dead_letters",
		"Dead letters kept for an export (listed and retried through the API).", []string{"export", "type"}, nil)
	exportPendingDesc = prometheus.NewDesc("bulwark_export_pending_records",
		"Records after the export's cursor that its filter takes (waiting or being delivered); "+
			"beyond the first 2,000 behind, estimated from the share of those its filter takes.", []string{"export", "type"}, nil)
	exportLagDesc = prometheus.NewDesc("bulwark_export_lag_records",
		"Export log records after the export's cursor (records behind the head, whatever the filter).", []string{"export", "type"}, nil)
	exportOldestDesc = prometheus.NewDesc("bulwark_export_oldest_undelivered_seconds",
		"Age of the export's oldest undelivered record its filter takes (0 when none; an upper bound when none of the "+
			"first 2,000 records behind is taken).", []string{"export", "type"}, nil)
	exportFailingDesc = prometheus.NewDesc("bulwark_export_consecutive_failures",
		"Consecutive failed deliveries of an export (0 when its last delivery worked).", []string{"export", "type"}, nil)
)

func (c *exportCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{exportDeliveredDesc, exportFailedDesc, exportDeadTotalDesc, exportDeadDesc,
		exportPendingDesc, exportLagDesc, exportOldestDesc, exportFailingDesc} {
		ch <- d
	}
}

func (c *exportCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	exps, err := c.st.ListExports(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(exportDeliveredDesc, err)
		return
	}
	for i := range exps {
		e := &exps[i]
		l := []string{e.Name, e.Type}
		ch <- prometheus.MustNewConstMetric(exportDeliveredDesc, prometheus.CounterValue, float64(e.Delivered), l...)
		ch <- prometheus.MustNewConstMetric(exportFailedDesc, prometheus.CounterValue, float64(e.Failed), l...)
		ch <- prometheus.MustNewConstMetric(exportDeadTotalDesc, prometheus.CounterValue, float64(e.DeadTotal), l...)
		ch <- prometheus.MustNewConstMetric(exportFailingDesc, prometheus.GaugeValue, float64(e.Failures), l...)
		st, err := c.st.ExportLagStats(ctx, e.ID)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(exportPendingDesc, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(exportDeadDesc, prometheus.GaugeValue, float64(st.Dead), l...)
		ch <- prometheus.MustNewConstMetric(exportPendingDesc, prometheus.GaugeValue, float64(st.Pending), l...)
		ch <- prometheus.MustNewConstMetric(exportLagDesc, prometheus.GaugeValue, float64(st.Behind), l...)
		age := 0.0
		if !st.Oldest.IsZero() {
			age = max(time.Since(st.Oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(exportOldestDesc, prometheus.GaugeValue, age, l...)
	}
}
