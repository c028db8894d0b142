package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// The database update loop (Config.DBUpdateInterval): central downloads
// its sources itself (vulndb.Update: conditional requests, so an unchanged
// feed costs one small request), and the database watcher
// (DBWatchInterval) re-matches every kept image when the index changed —
// "again whenever new vulnerabilities are published" without a cron job.

type dbUpdateMetrics struct {
	runs    *prometheus.CounterVec
	sources *prometheus.CounterVec
	last    *prometheus.GaugeVec
}

func newDBUpdateMetrics(reg prometheus.Registerer) *dbUpdateMetrics {
	m := &dbUpdateMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_vulndb_update_runs_total",
			Help: "Database update runs by outcome (ok: every source updated or unchanged; partial: some failed; failed: none checked)."}, []string{"outcome"}),
		sources: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_vulndb_source_checks_total",
			Help: "Source downloads by source and status (updated, unchanged, failed)."}, []string{"source", "status"}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bulwark_vulndb_source_changed_timestamp_seconds",
			Help: "When each source's last good download changed (Unix time)."}, []string{"source"}),
	}
	reg.MustRegister(m.runs, m.sources, m.last)
	return m
}

// dbUpdateLoop runs an update at start and then every DBUpdateInterval.
func (s *Server) dbUpdateLoop(ctx context.Context) {
	m := newDBUpdateMetrics(s.metrics.reg)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		opts := s.cfg.DBUpdate
		opts.Logger = s.log
		opts.UserAgent = "bulwark/" + s.cfg.Version
		res, err := vulndb.Update(ctx, s.cfg.DBDir, s.cfg.DBSources, opts)
		if ctx.Err() != nil {
			return
		}
		outcome := "ok"
		if err != nil {
			outcome = "partial"
			if res == nil {
				outcome = "failed"
			}
			s.log.Warn("vulnerability database update", "err", err)
		}
		m.runs.WithLabelValues(outcome).Inc()
		for _, r := range res {
			m.sources.WithLabelValues(r.Name, r.Status).Inc()
			if !r.Changed.IsZero() {
				m.last.WithLabelValues(r.Name).Set(float64(r.Changed.Unix()))
			}
		}
		t.Reset(s.cfg.DBUpdateInterval)
	}
}
