package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/bulwark-security/bulwark/internal/demo"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-security/bulwark/internal/console"
	"github.com/bulwark-security/bulwark/internal/export"
	"github.com/bulwark-security/bulwark/internal/server"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// serverFlags are `bulwark server`'s settings.
type serverFlags struct {
	dataDir        string
	database       string
	secretKeyFile  string
	sessionKeyFile string
	bootstrapAdmin bool
	demo           bool
	logFormat      string
	cfg            server.Config
	audit          auditServerFlags
	dbSources      dbSourceFlags
}

func (a *app) serverCmd() *cobra.Command {
	f := &serverFlags{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run central: the API, registry webhooks, the scan queue, re-matching and the web console",
		Long: `Run Bulwark central.

It serves the REST API under /api/v1 (OpenAPI document at /api/v1/openapi.json)
over TLS — --tls-cert/--tls-key, or a self-signed certificate generated into
--data-dir on first start (its SHA-256 fingerprint is logged) — receives push
notifications from CNCF Distribution (/api/v1/hooks/distribution) and Harbor
(/api/v1/hooks/harbor), scans pushed images with a bounded pool of workers
(--workers), sweeps registries without notifications, and re-matches every
stored SBOM when the vulnerability database (--db-dir) changes; with
--db-update-interval it downloads the database's sources itself (as
"bulwark db update" does), so images are re-matched whenever new
vulnerabilities are published.

The store is an SQLite file in --data-dir unless --database names a PostgreSQL
server (postgres://…), which several replicas can share. Registry credentials
are encrypted with the key in --secret-key-file (generated on first start;
keep it, and give every replica the same one).

API tokens: create one with the admin token printed by --bootstrap-admin
(POST /api/v1/tokens), then call the API with "Authorization: Bearer bwk_…".
/metrics needs a token of any role, unless --metrics-listen serves it without
authentication on a separate (private) address. /healthz and /readyz are open.

--demo imports the bundled demo advisories, stores a scan of the bundled demo
image, creates the admin user if there is none, and says where to log in.`,
		Example: `  # try it: one command, no network, console on https://127.0.0.1:8443
  bulwark server --demo

  # production-like: PostgreSQL, a real certificate, four workers
  bulwark server --database postgres://bulwark@db/bulwark --listen :8443 \
    --tls-cert /etc/bulwark/tls.crt --tls-key /etc/bulwark/tls.key --workers 4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runServer(cmd, f)
		},
	}
	fl := cmd.Flags()
	c := &f.cfg
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for the SQLite store, generated keys and certificate (default: user config dir/bulwark)")
	fl.StringVar(&f.database, "database", "", "store: postgres://… or an SQLite file path (default: DATA-DIR/bulwark.db)")
	fl.StringVar(&f.secretKeyFile, "secret-key-file", "", "32-byte AES key sealing registry credentials, hex (default: DATA-DIR/secret.key, generated with mode 0600)")
	fl.StringVar(&f.sessionKeyFile, "session-key-file", "", "32-byte key signing console sessions, hex; the same on every replica (default: DATA-DIR/session.key, generated)")
	fl.BoolVar(&f.bootstrapAdmin, "bootstrap-admin", false, "when no user exists, create user admin with a random password and an admin API token, printed once")
	fl.BoolVar(&f.demo, "demo", false, "import the bundled demo advisories and store a scan of the demo image (implies --bootstrap-admin)")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&c.Listen, "listen", "127.0.0.1:8443", "API and console address")
	fl.StringVar(&c.MetricsListen, "metrics-listen", "", "serve /metrics without authentication on this separate plain-HTTP address")
	fl.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate (PEM); default: a generated self-signed one")
	fl.StringVar(&c.TLSKey, "tls-key", "", "TLS private key (PEM)")
	fl.BoolVar(&c.InsecureHTTP, "insecure-http", false, "serve plain HTTP (only allowed on a loopback address)")
	fl.IntVar(&c.Workers, "workers", 2, "concurrent scan jobs (0: this replica runs no jobs)")
	fl.DurationVar(&c.ShutdownGrace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long running scans may finish before they are re-queued")
	fl.DurationVar(&c.AlertIDRetention, "alert-id-retention", 30*24*time.Hour, "how long accepted alert ids are kept so a sender's replayed batch is not stored twice (at least 1h; set above the longest a sender may buffer)")
	fl.DurationVar(&c.SweepInterval, "sweep-interval", 15*time.Minute, "how often registries without notifications are listed for new images (0 disables)")
	fl.BoolVar(&c.SweepAll, "sweep-all", false, "sweep registries that send notifications too")
	fl.DurationVar(&c.DBWatchInterval, "db-watch-interval", 30*time.Second, "how often the vulnerability database is checked for changes (0 disables)")
	fl.DurationVar(&c.DBUpdateInterval, "db-update-interval", 0, "download the vulnerability sources at start and then this often, importing those that changed (0: off; e.g. 6h)")
	f.dbSources.add(fl, "db-")
	fl.DurationVar(&c.RematchWindow, "rematch-window", 30*24*time.Hour, "keep images seen within this long current (images seen running always are)")
	fl.BoolVar(&c.RematchAll, "rematch-all", false, "re-match every stored image, however old")
	fl.DurationVar(&c.HookReplayWindow, "hook-replay-window", 24*time.Hour, "refuse a registry notification whose event id was accepted within this long")
	fl.Int64Var(&c.MaxUploadBytes, "max-upload-bytes", 64<<20, "largest scan result accepted by POST /api/v1/scans")
	addAuditServerFlags(fl, &f.audit)
	return cmd
}

func (a *app) runServer(cmd *cobra.Command, f *serverFlags) error {
	ctx := cmd.Context()
	log, err := a.serverLogger(f.logFormat)
	if err != nil {
		return err
	}
	if f.dataDir == "" {
		d, err := os.UserConfigDir()
		if err != nil {
			return fmt.Errorf("find the data directory: %w (set --data-dir)", err)
		}
		f.dataDir = filepath.Join(d, "bulwark")
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	cfg := f.cfg
	cfg.DataDir = f.dataDir
	cfg.Version = a.version()
	if cfg.Workers == 0 {
		cfg.Workers = -1
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = -1
	}
	if cfg.AlertIDRetention < time.Hour {
		return fmt.Errorf("--alert-id-retention %s: at least 1h (a sender's replayed batch must be recognized)", cfg.AlertIDRetention)
	}
	if cfg.DBWatchInterval == 0 {
		cfg.DBWatchInterval = -1
	}
	dbDir, _ := cmd.Flags().GetString("db-dir")
	if dbDir == "" && f.demo {
		dbDir = filepath.Join(f.dataDir, "demo-db")
	}
	if dbDir == "" {
		if dbDir, err = a.dbDir(cmd); err != nil {
			return err
		}
	}
	cfg.DBDir = dbDir
	if cfg.DBUpdateInterval < 0 || (cfg.DBUpdateInterval > 0 && cfg.DBUpdateInterval < time.Minute) {
		return fmt.Errorf("--db-update-interval %s: 0 (off) or at least 1m", cfg.DBUpdateInterval)
	}
	if cfg.DBUpdateInterval > 0 {
		if cfg.DBSources, err = f.dbSources.sources(nil); err != nil {
			return err
		}
		if cfg.DBUpdate, err = f.dbSources.options(a.version()); err != nil {
			return err
		}
	}
	if err := f.audit.apply(&cfg.Audit); err != nil {
		return err
	}

	keyPath := f.secretKeyFile
	if keyPath == "" {
		keyPath = filepath.Join(f.dataDir, "secret.key")
	}
	key, err := loadOrCreateKey(keyPath, f.secretKeyFile == "")
	if err != nil {
		return err
	}
	dsn := f.database
	if dsn == "" {
		dsn = filepath.Join(f.dataDir, "bulwark.db")
	}
	st, err := store.Open(ctx, dsn, store.Options{SecretKey: key, Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()

	var demoImage string
	if f.demo {
		tmp, err := os.MkdirTemp("", "bulwark-server-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		paths, img, err := demo.WriteFiles(tmp)
		if err != nil {
			return err
		}
		if err := a.importDemoDB(ctx, "bulwark server", dbDir, paths); err != nil {
			return err
		}
		demoImage = img
	}

	sessionKeyPath := f.sessionKeyFile
	if sessionKeyPath == "" {
		sessionKeyPath = filepath.Join(f.dataDir, "session.key")
	}
	sessionKey, err := loadOrCreateKey(sessionKeyPath, f.sessionKeyFile == "")
	if err != nil {
		return fmt.Errorf("console session key: %w", err)
	}
	// The console's callbacks reach the server, which is created after
	// it: they run only once it serves.
	var srv *server.Server
	con, err := console.New(console.Config{SessionKey: sessionKey, SecureCookie: !cfg.InsecureHTTP, Version: a.version()},
		console.Deps{Store: st, Logger: log,
			TestRegistry: func(ctx context.Context, id int64) error { return srv.TestRegistry(ctx, id) },
			DBStatus:     func(ctx context.Context) (*vulndb.Status, error) { return srv.DBStatus(ctx) },
			PutAdmissionPolicy: func(ctx context.Context, name, yaml, by string) (*store.AdmissionPolicy, int, error) {
				return srv.PutAdmissionPolicy(ctx, name, yaml, by)
			}})
	if err != nil {
		return err
	}
	if a.cfg != nil && a.cfg.path != "" {
		// The configuration file's top-level "exports:" list.
		if cfg.Exports, err = export.LoadFile(a.cfg.path); err != nil {
			return err
		}
	}
	srv, err = server.New(cfg, server.Deps{Store: st, Logger: log, Console: con})
	if err != nil {
		return err
	}
	if demoImage != "" {
		saved, err := srv.ScanLocal(ctx, "docker-archive:"+demoImage, "demo")
		if err != nil {
			srv.Close()
			return fmt.Errorf("store the demo image scan: %w", err)
		}
		fmt.Fprintf(a.env.Stderr, "bulwark server: stored a scan of the demo image (%d findings)\n", saved.Diff.Counts.Total())
	}
	if f.bootstrapAdmin || f.demo {
		if err := a.bootstrapAdmin(ctx, st); err != nil {
			srv.Close()
			return err
		}
	}
	out := a.env.Stderr
	fmt.Fprintf(out, "\nBulwark central is listening on %s\n", srv.URL())
	if host, port, err := net.SplitHostPort(srv.Addr().String()); err == nil && (host == "127.0.0.1" || host == "::1") {
		scheme := strings.SplitN(srv.URL(), ":", 2)[0]
		fmt.Fprintf(out, "  open        %s://localhost:%s/\n", scheme, port)
	}
	if fp := srv.Fingerprint(); fp != "" {
		fmt.Fprintf(out, "  certificate SHA-256 %s\n", fp)
		if cfg.TLSCert == "" {
			fmt.Fprintf(out, "              (self-signed, in %s: your browser will ask you to accept it;\n", filepath.Join(f.dataDir, "tls"))
			fmt.Fprintf(out, "               CLI clients: --server-ca %s)\n", filepath.Join(f.dataDir, "tls", "self-signed.crt"))
		}
	}
	fmt.Fprintf(out, "  API         %s/api/v1 (OpenAPI: %s/api/v1/openapi.json)\n", srv.URL(), srv.URL())
	fmt.Fprintf(out, "  stop        Ctrl-C (running scans get %s to finish)\n\n", cfg.ShutdownGrace)
	return srv.Run(ctx)
}

// serverLogger is a structured logger at the configured level.
func (a *app) serverLogger(format string) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: a.logLvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(a.env.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(a.env.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: want text or json, got %q", format)
}

// bootstrapAdmin creates user "admin" with a random password, and an
// admin API token, when the store has no user; both are printed once.
func (a *app) bootstrapAdmin(ctx context.Context, st *store.Store) error {
	n, err := st.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		fmt.Fprintf(a.env.Stderr, "bulwark server: users exist already; log in with yours (no bootstrap admin created)\n")
		return nil
	}
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	password := base64.RawURLEncoding.EncodeToString(b[:])
	if _, err := st.CreateUser(ctx, "admin", password, store.RoleAdmin); err != nil {
		return fmt.Errorf("bootstrap admin: %w", err)
	}
	secret, _, err := st.CreateToken(ctx, "bootstrap-admin", store.RoleAdmin, time.Time{}, "bootstrap")
	if err != nil {
		return fmt.Errorf("bootstrap admin token: %w", err)
	}
	fmt.Fprintf(a.env.Stderr, `
  log in as   admin
  password    %s
  API token   %s   (role admin)
  (shown once: keep them; change the password in the console, revoke the token with DELETE /api/v1/tokens/ID)
`, password, secret)
	return nil
}

// loadOrCreateKey reads a 32-byte key written as hex (or raw bytes), or
// creates one with mode 0600 when create is set and the file is missing.
func loadOrCreateKey(path string, create bool) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create secret key: %w", err)
		}
		if _, err := fmt.Fprintln(fh, hex.EncodeToString(key)); err != nil {
			fh.Close()
			return nil, fmt.Errorf("write secret key: %w", err)
		}
		if err := fh.Close(); err != nil {
			return nil, fmt.Errorf("write secret key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret key %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	if k, err := hex.DecodeString(strings.TrimSpace(string(b))); err == nil && len(k) == 32 {
		return k, nil
	}
	if len(b) == 32 {
		return b, nil
	}
	return nil, fmt.Errorf("secret key %s: want 32 bytes as 64 hex digits", path)
}
