package server

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bulwark-security/bulwark/internal/store"
)

// metrics are the server's Prometheus series, registered on a registry the
// caller owns (no global registry).
type metrics struct {
	reg             *prometheus.Registry
	apiLatency      *prometheus.HistogramVec
	scanDuration    prometheus.Histogram
	jobDuration     *prometheus.HistogramVec
	scansStored     *prometheus.CounterVec
	hookEvents      *prometheus.CounterVec
	rematchDuration prometheus.Histogram
	rematchImages   prometheus.Counter
	alerts          *alertMetrics // alerts.go
}

func newMetrics(reg *prometheus.Registry, st *store.Store) *metrics {
	m := &metrics{
		reg: reg,
		apiLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bulwark_api_request_duration_seconds", Help: "API request latency by route and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "code"}),
		scanDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bulwark_scan_duration_seconds", Help: "Time to pull, scan, match and store one image (successful scans).",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bulwark_job_duration_seconds", Help: "Job run time by kind and outcome (done, failed, released, lease_lost).",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"kind", "outcome"}),
		scansStored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_scans_stored_total", Help: "Scan results stored, by origin (job or upload).",
		}, []string{"origin"}),
		hookEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_hook_events_total",
			Help: "Registry notification events by source and outcome (accepted, ignored, replayed, rejected, error).",
		}, []string{"source", "outcome"}),
		rematchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bulwark_rematch_duration_seconds", Help: "Time from the start of a re-match to all kept-current images re-matched.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
		}),
		rematchImages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_rematch_images_total", Help: "Images re-matched from their stored SBOM.",
		}),
	}
	reg.MustRegister(m.apiLatency, m.scanDuration, m.jobDuration, m.scansStored, m.hookEvents, m.rematchDuration,
		m.rematchImages, &queueCollector{st: st}, &exportCollector{st: st})
	m.alerts = newAlertMetrics(reg)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 10 * time.Second})
}

// queueCollector reads the job queue's gauges from the store at scrape
// time (the queue is shared by replicas: a cached count would be wrong).
type queueCollector struct{ st *store.Store }

var (
	queueJobsDesc = prometheus.NewDesc("bulwark_queue_jobs", "Jobs in the durable queue by state (scan queue depth: state=\"pending\").",
		[]string{"state"}, nil)
	queueDueDesc = prometheus.NewDesc("bulwark_queue_due_jobs", "Pending jobs whose time has come.", nil, nil)
	queueLagDesc = prometheus.NewDesc("bulwark_queue_lag_seconds", "Age of the oldest due pending job.", nil, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueJobsDesc
	ch <- queueDueDesc
	ch <- queueLagDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.st.QueueStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueJobsDesc, err)
		return
	}
	for state, n := range map[string]int{"pending": st.Pending, "running": st.Running, "done": st.Done, "failed": st.Failed} {
		ch <- prometheus.MustNewConstMetric(queueJobsDesc, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(queueDueDesc, prometheus.GaugeValue, float64(st.Due))
	lag := 0.0
	if !st.OldestDue.IsZero() {
		lag = time.Since(st.OldestDue).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(queueLagDesc, prometheus.GaugeValue, lag)
}
