package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-security/bulwark/internal/audit"
)

// auditCollector reads the audit receiver's and processor's counters at
// scrape time (they are atomics in the audit package, which does not
// depend on Prometheus).
type auditCollector struct{ a *auditParts }

var (
	auditEventsDesc = prometheus.NewDesc("bulwark_audit_webhook_events_total",
		"Audit events received from each cluster's API servers in batches answered 200.", []string{"cluster"}, nil)
	auditBatchesDesc = prometheus.NewDesc("bulwark_audit_webhook_batches_total",
		"Audit webhook batches by cluster and outcome: stored (200), throttled (429, over the cluster's rate), "+
			"busy (429, the queue or the cluster's share of it full), failed (503), rejected (4xx; cluster \"\" for unauthenticated).",
		[]string{"cluster", "outcome"}, nil)
	auditInFlightDesc = prometheus.NewDesc("bulwark_audit_webhook_batches_in_flight",
		"Audit webhook batches of each cluster inside the receiver (read, queued or being processed).", []string{"cluster"}, nil)
	auditProcessedDesc = prometheus.NewDesc("bulwark_audit_records_total",
		"Audit records seen by the rule processor (webhook and log files) by outcome: evaluated, malformed, replay (already processed).",
		[]string{"outcome"}, nil)
	auditAlertsDesc = prometheus.NewDesc("bulwark_audit_alerts_total",
		"Alerts raised from audit records and handed to the store.", nil, nil)
)

func (c *auditCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- auditEventsDesc
	ch <- auditBatchesDesc
	ch <- auditInFlightDesc
	ch <- auditProcessedDesc
	ch <- auditAlertsDesc
}

func (c *auditCollector) Collect(ch chan<- prometheus.Metric) {
	if r := c.a.receiver; r != nil {
		for _, s := range r.ClusterStats() {
			if s.Cluster != "" {
				ch <- prometheus.MustNewConstMetric(auditEventsDesc, prometheus.CounterValue, float64(s.Events), s.Cluster)
				ch <- prometheus.MustNewConstMetric(auditInFlightDesc, prometheus.GaugeValue, float64(s.InFlight), s.Cluster)
			}
			for _, o := range []struct {
				name string
				n    int64
			}{{"stored", s.Stored}, {"throttled", s.Throttled}, {"busy", s.Busy}, {"failed", s.Failed}, {"rejected", s.Rejected}} {
				if s.Cluster == "" && o.name != "rejected" {
					continue
				}
				ch <- prometheus.MustNewConstMetric(auditBatchesDesc, prometheus.CounterValue, float64(o.n), s.Cluster, o.name)
			}
		}
	}
	var ps audit.Stats = c.a.proc.Stats()
	ch <- prometheus.MustNewConstMetric(auditProcessedDesc, prometheus.CounterValue, float64(ps.Events), "evaluated")
	ch <- prometheus.MustNewConstMetric(auditProcessedDesc, prometheus.CounterValue, float64(ps.Malformed), "malformed")
	ch <- prometheus.MustNewConstMetric(auditProcessedDesc, prometheus.CounterValue, float64(ps.Replays), "replay")
	ch <- prometheus.MustNewConstMetric(auditAlertsDesc, prometheus.CounterValue, float64(ps.Alerts))
}
