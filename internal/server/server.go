package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bulwark-security/bulwark/internal/export"
	"github.com/bulwark-security/bulwark/internal/image"
	invlist "github.com/bulwark-security/bulwark/internal/inventory/list"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// Config is what an operator sets (flags, environment, YAML).
type Config struct {
	// Listen is the API's address (default 127.0.0.1:8443).
	Listen string
	// MetricsListen, when set, serves /metrics without authentication on a
	// separate listener (plain HTTP: keep it on a private network). When
	// empty, /metrics is served on Listen and needs a token of any role.
	MetricsListen string
	// TLSCert and TLSKey are PEM files. When both are empty a self-signed
	// certificate is generated into DataDir (and reused on later starts).
	TLSCert, TLSKey string
	// InsecureHTTP serves plain HTTP; refused unless Listen is a loopback
	// address.
	InsecureHTTP bool
	// DataDir holds the generated certificate.
	DataDir string
	// Hostname is added to the generated certificate's names (default
	// os.Hostname).
	Hostname string

	// Workers bounds concurrent jobs (default 2; negative: no workers,
	// for an API-only replica).
	Workers int
	// LeaseDuration is how long a claimed job is held before another
	// worker may take it over (default 2m); it is renewed every third.
	LeaseDuration time.Duration
	// PollInterval is how often idle workers look for due jobs (default 1s).
	PollInterval time.Duration
	// ShutdownGrace is how long running jobs may go on after shutdown
	// begins before they are released back to the queue (default 30s).
	ShutdownGrace time.Duration
	// JobMaxAttempts bounds scan attempts (default 5).
	JobMaxAttempts int

	// AlertIDRetention is how long the ids of accepted alerts are kept
	// for idempotency (default 30 days, at least an hour): a sender that
	// replays a batch it was never told was accepted stores nothing twice
	// within it. Set it above the longest a sender may hold a batch
	// (a sensor's spool through an outage).
	AlertIDRetention time.Duration

	// SweepInterval is how often registries are listed for new images
	// (default 15m; negative disables). Registries of kind "generic" are
	// swept; the others only when SweepAll is set.
	SweepInterval time.Duration
	SweepAll      bool
	// SweepMaxTags bounds the tags looked at in one sweep (default 10000).
	SweepMaxTags int

	// DBDir is the vulnerability database directory.
	DBDir string
	// DBWatchInterval is how often the database index is checked for
	// changes (default 30s; negative disables).
	DBWatchInterval time.Duration
	// DBUpdateInterval, when positive, downloads DBSources into DBDir at
	// start and then at this interval (vulndb.Update with DBUpdate's
	// options); the watcher above re-matches when the index changed.
	DBUpdateInterval time.Duration
	// DBSources are the sources to download (default
	// vulndb.DefaultSources()).
	DBSources []vulndb.Source
	DBUpdate  vulndb.UpdateOptions
	// RematchWindow keeps images seen (pushed, scanned, running) within it
	// current (default 30 days). Images seen running in a cluster are
	// always re-matched. RematchAll re-matches every stored image.
	RematchWindow time.Duration
	RematchAll    bool
	// RematchWorkers bounds concurrent re-matches (default GOMAXPROCS).
	RematchWorkers int

	// Exports are the export destinations of the configuration file
	// (internal/export); they are synced into the store at start, next to
	// those created through /api/v1/exports. Delivery runs on replicas
	// with workers.
	Exports []export.Config

	// HookReplayWindow is how long an accepted notification's id is
	// remembered to refuse replays (default 24h).
	HookReplayWindow time.Duration
	// MaxHookBytes bounds a notification body (default 1 MiB).
	MaxHookBytes int64
	// MaxUploadBytes bounds an uploaded scan result (default 64 MiB).
	MaxUploadBytes int64

	// Version is reported in /api/v1/me and recorded in scans.
	Version string

	// Audit configures the Kubernetes audit webhook receiver and audit log
	// followers (audit.go); off when empty.
	Audit AuditConfig
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8443"
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = 2 * time.Minute
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 30 * time.Second
	}
	if c.JobMaxAttempts <= 0 {
		c.JobMaxAttempts = 5
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = 15 * time.Minute
	}
	if c.AlertIDRetention <= 0 {
		c.AlertIDRetention = 30 * 24 * time.Hour
	}
	c.AlertIDRetention = max(c.AlertIDRetention, time.Hour)
	if c.SweepMaxTags <= 0 {
		c.SweepMaxTags = 10000
	}
	if c.DBUpdateInterval > 0 && len(c.DBSources) == 0 {
		c.DBSources = vulndb.DefaultSources()
	}
	if c.DBWatchInterval == 0 {
		c.DBWatchInterval = 30 * time.Second
	}
	if c.RematchWindow <= 0 {
		c.RematchWindow = 30 * 24 * time.Hour
	}
	if c.HookReplayWindow == 0 {
		c.HookReplayWindow = 24 * time.Hour
	}
	if c.MaxHookBytes <= 0 {
		c.MaxHookBytes = 1 << 20
	}
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = 64 << 20
	}
	if c.Version == "" {
		c.Version = "dev"
	}
}

// Deps are the parts the server is built from.
type Deps struct {
	Store *store.Store
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Console, when set, serves every path outside /api/, /healthz,
	// /readyz and /metrics (the web console, which does its own login).
	Console http.Handler
	// Scanner scans images for jobs; nil builds one with every extractor.
	Scanner *scan.Scanner
	// Registry receives the server's metrics; nil makes a private one
	// (with the Go and process collectors).
	Registry *prometheus.Registry
}

// Server is central. Create it with New, run it with Run.
type Server struct {
	cfg     Config
	st      *store.Store
	log     *slog.Logger
	console http.Handler
	scanner *scan.Scanner
	metrics *metrics
	vdb     *vulnDB
	hooks   *hookBatcher
	exports *export.Dispatcher // nil on an API-only replica
	secrets *secretCache
	handler http.Handler
	routes  []route

	ln, metricsLn net.Listener
	audit         *auditParts // nil unless Config.Audit is set
	tlsConfig     *tls.Config
	// Fingerprint is the SHA-256 of the serving certificate (hex, colon
	// separated); empty for plain HTTP.
	fingerprint string

	wake      chan struct{} // nudges idle workers after an enqueue
	rematchCh chan struct{}
	rematch   rematchState
	closeOnce sync.Once
}

// New checks the configuration, opens the vulnerability database (a
// missing one is not an error: scans then store inventories, and findings
// come with the first re-match once a database appears), and binds the
// listeners. Run serves; Close releases a server that is never run.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg.defaults()
	if deps.Store == nil {
		return nil, errors.New("new server: a store is required")
	}
	s := &Server{
		cfg: cfg, st: deps.Store, log: deps.Logger, console: deps.Console, scanner: deps.Scanner,
		wake: make(chan struct{}, 1), rematchCh: make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.scanner == nil {
		s.scanner = &scan.Scanner{
			Extractors: invlist.All(),
			Limits:     image.Limits{MaxTotalBytes: 8 << 30, MaxLayerBytes: 8 << 30, MaxFiles: 2_000_000, MaxFileSize: 512 << 20},
			Version:    cfg.Version,
			Log:        s.log,
		}
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s.metrics = newMetrics(reg, s.st)
	s.vdb = newVulnDB(cfg.DBDir, s.log)
	if err := s.vdb.load(); err != nil {
		s.log.Warn("vulnerability database not loaded; images are inventoried without findings until it is", "dir", cfg.DBDir, "err", err)
	}
	s.secrets = newSecretCache(s.st, 5*time.Second)
	s.hooks = newHookBatcher(s.st, s.cfg.HookReplayWindow, s.log, func() { s.nudge() })
	if err := syncConfigExports(context.Background(), s.st, cfg.Exports); err != nil {
		s.Close()
		return nil, fmt.Errorf("exports: %w", err)
	}
	if cfg.Workers > 0 {
		s.exports = export.NewDispatcher(s.st, export.DispatcherOptions{Deps: export.Deps{Logger: s.log, Version: cfg.Version}})
	}
	s.routes = s.routeTable()
	s.handler = s.buildHandler()

	if err := s.listen(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.setupAudit(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// listen binds the API (and metrics) listeners and sets up TLS.
func (s *Server) listen() error {
	if s.cfg.InsecureHTTP {
		if !isLoopback(s.cfg.Listen) {
			return fmt.Errorf("--insecure-http is only allowed on a loopback address, not %q (use TLS)", s.cfg.Listen)
		}
		if s.cfg.TLSCert != "" || s.cfg.TLSKey != "" {
			return errors.New("--insecure-http and --tls-cert/--tls-key exclude each other")
		}
	} else {
		cert, err := s.loadCertificate()
		if err != nil {
			return err
		}
		s.fingerprint = fingerprint(cert.Certificate[0])
		s.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	if s.cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", s.cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("listen for metrics on %s: %w", s.cfg.MetricsListen, err)
		}
		s.metricsLn = mln
	}
	return nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// Addr is the API listener's address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// MetricsAddr is the separate metrics listener's address, or nil.
func (s *Server) MetricsAddr() net.Addr {
	if s.metricsLn == nil {
		return nil
	}
	return s.metricsLn.Addr()
}

// URL is the API's base URL, e.g. https://127.0.0.1:8443.
func (s *Server) URL() string {
	scheme := "https"
	if s.tlsConfig == nil {
		scheme = "http"
	}
	return scheme + "://" + s.ln.Addr().String()
}

// Fingerprint is the SHA-256 fingerprint of the serving certificate
// ("AB:CD:…"), empty for plain HTTP.
func (s *Server) Fingerprint() string { return s.fingerprint }

// Handler is the whole HTTP surface (API, hooks, operations, console), for
// tests and for embedding behind another server.
func (s *Server) Handler() http.Handler { return s.handler }

// Close releases the listeners and the vulnerability database of a server
// that is not running (Run does this itself when it returns).
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.ln != nil {
			s.ln.Close()
		}
		if s.metricsLn != nil {
			s.metricsLn.Close()
		}
		if s.audit != nil && s.audit.ln != nil {
			s.audit.ln.Close()
		}
		s.vdb.close()
	})
	return nil
}

// Run serves until ctx is cancelled, then shuts down gracefully: the
// listeners stop accepting, in-flight requests finish (up to the grace
// period), workers stop claiming, running jobs get the grace period to
// finish and are then released back to the queue for another replica or
// the next start.
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute, // large uploads on slow links
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	var servers []*http.Server
	errc := make(chan error, 2)
	serve := func(hs *http.Server, ln net.Listener, tlsOn bool) {
		servers = append(servers, hs)
		go func() {
			var err error
			if tlsOn {
				err = hs.ServeTLS(ln, "", "")
			} else {
				err = hs.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	if s.tlsConfig != nil {
		srv.TLSConfig = s.tlsConfig
	}
	serve(srv, s.ln, s.tlsConfig != nil)
	if s.AuditAddr() != nil {
		serve(s.auditServer(ctx), s.audit.ln, true)
	}
	if s.metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", s.metrics.handler())
		serve(&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, s.metricsLn, false)
	}
	s.log.Info("bulwark server listening", "url", s.URL(), "tls_fingerprint_sha256", s.fingerprint,
		"metrics", s.MetricsAddr(), "audit_webhook", s.AuditAddr(), "workers", max(s.cfg.Workers, 0), "store", s.st.Dialect())

	// Background work runs under its own context so that shutdown can
	// stop it in order: first the HTTP side, then workers.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	var wg sync.WaitGroup
	start := func(fn func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); fn(bg) }()
	}
	start(s.hooks.run)
	start(s.runAudit)
	start(s.rematchLoop)
	start(s.maintenanceLoop)
	if s.exports != nil {
		start(func(ctx context.Context) { _ = s.exports.Run(ctx) })
	}
	if s.cfg.SweepInterval > 0 {
		start(s.sweepLoop)
	}
	if s.cfg.DBUpdateInterval > 0 {
		start(s.dbUpdateLoop)
	}
	pool := newWorkerPool(s)
	if s.cfg.Workers > 0 {
		pool.start()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.log.Info("shutting down", "grace", s.cfg.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	for _, hs := range servers {
		if err := hs.Shutdown(sctx); err != nil {
			s.log.Warn("http shutdown", "err", err)
		}
	}
	pool.stop(sctx)
	stopBG()
	wg.Wait()
	s.log.Info("stopped")
	return runErr
}

// nudge wakes an idle worker (after an enqueue on this replica; other
// replicas find the job at their next poll).
func (s *Server) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// finishedJobRetention is how long done and failed jobs stay listed.
const finishedJobRetention = 30 * 24 * time.Hour

// maintenanceLoop forgets old hook deliveries and finished jobs.
func (s *Server) maintenanceLoop(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		if s.cfg.HookReplayWindow > 0 {
			if _, err := s.st.PurgeHookDeliveries(ctx, time.Now().Add(-s.cfg.HookReplayWindow)); err != nil && ctx.Err() == nil {
				s.log.Warn("purge hook deliveries", "err", err)
			}
		}
		if _, err := s.st.PurgeJobs(ctx, time.Now().Add(-finishedJobRetention)); err != nil && ctx.Err() == nil {
			s.log.Warn("purge finished jobs", "err", err)
		}
		// Sender alert ids are kept far beyond any sender's retry horizon.
		if _, err := s.st.PurgeAlertIngests(ctx, time.Now().Add(-s.cfg.AlertIDRetention)); err != nil && ctx.Err() == nil {
			s.log.Warn("purge alert ingest ids", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// hostname for the generated certificate.
func (s *Server) hostname() string {
	if s.cfg.Hostname != "" {
		return s.cfg.Hostname
	}
	h, _ := os.Hostname()
	return h
}
