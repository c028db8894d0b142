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
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-security/bulwark/internal/audit"
	"github.com/bulwark-security/bulwark/internal/rules"
)

// AuditConfig configures Kubernetes audit-log detection inside central.
//
// The webhook receiver gets its own TLS listener (Listen) rather than a
// route on the API listener, because:
//   - API servers authenticate with client certificates from a cluster CA
//     (ClientCA). Asking for client certificates on the API/console
//     listener would make browsers prompt for one and mix two trust
//     domains; a separate listener verifies them at the handshake
//     (crypto/tls) without touching the API's token auth.
//   - Its callers are kube-apiservers, not users: a separate port can be
//     firewalled to the control plane's addresses and does not share the
//     API's timeouts and limits.
//   - Its credentials identify a cluster (alerts carry the cluster name),
//     not a Bulwark user or role, so they do not belong in the token store.
type AuditConfig struct {
	// Listen is the webhook receiver's address (e.g. ":8444"); empty
	// disables it. It serves TLS with central's certificate.
	Listen string
	// ClientCA is a PEM file of the CA(s) that signed the API servers'
	// client certificates (needed for Client entries with a CN).
	ClientCA string
	// Clients are the API servers allowed to post, each with its cluster
	// name: a client-certificate CN or a bearer token.
	Clients []audit.Client
	// LogFiles are audit log files (JSON lines) followed in process, for
	// clusters whose control plane exports logs instead of calling a
	// webhook.
	LogFiles []AuditLogFile
	// StateDir keeps the log followers' offsets (default DATA-DIR/audit).
	StateDir string
	// RuleFiles are extra rule files in the Falco format, applied after
	// the defaults (they may append to, override or disable default rules).
	RuleFiles []string
	// Accounts tunes the service-account source detector (learning
	// period, bounds, age-out). Its state is always kept in the store.
	Accounts audit.AccountConfig
	// ClusterRate caps the audit events per second each cluster may post
	// to the receiver (0: no cap), averaged over ClusterBurst events;
	// ClusterRates overrides it by cluster name. See audit.ReceiverConfig.
	ClusterRate  float64
	ClusterBurst int
	ClusterRates map[string]float64
}

// AuditLogFile is one followed audit log and its cluster.
type AuditLogFile struct {
	Cluster string
	Path    string
}

// auditParts are the running pieces.
type auditParts struct {
	proc      *audit.Processor
	receiver  *audit.Receiver
	followers []*audit.Follower
	ln        net.Listener
	tls       *tls.Config
}

func (c *AuditConfig) enabled() bool { return c.Listen != "" || len(c.LogFiles) > 0 }

// setupAudit compiles the rules and binds the receiver's listener.
func (s *Server) setupAudit() error {
	ac := &s.cfg.Audit
	if !ac.enabled() {
		return nil
	}
	files, err := rules.DefaultRuleFiles()
	if err != nil {
		return fmt.Errorf("audit rules: %w", err)
	}
	for _, p := range ac.RuleFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("audit rules: %w", err)
		}
		files = append(files, rules.RuleFile{Name: p, Data: b})
	}
	eng, err := rules.Compile(files)
	if err != nil {
		return fmt.Errorf("audit rules: %w", err)
	}
	for _, sk := range eng.Skipped() {
		s.log.Warn("audit rule skipped", "rule", sk.Rule, "file", sk.File, "line", sk.Line, "reason", sk.Reason)
	}
	log := s.log.With("component", "audit")
	proc, err := audit.NewProcessor(audit.Config{Engine: eng, RuleVersion: audit.RuleVersion(files), Logger: log,
		Accounts: accountConfig(ac.Accounts, s.st)}, s.st)
	if err != nil {
		return err
	}
	a := &auditParts{proc: proc}
	if ac.Listen != "" {
		a.receiver, err = audit.NewReceiver(audit.ReceiverConfig{Clients: ac.Clients, Logger: log,
			ClusterRate: ac.ClusterRate, ClusterBurst: ac.ClusterBurst, ClusterRates: ac.ClusterRates}, proc)
		if err != nil {
			return err
		}
		var caPEM []byte
		if ac.ClientCA != "" {
			if caPEM, err = os.ReadFile(ac.ClientCA); err != nil {
				return fmt.Errorf("audit client CA: %w", err)
			}
		}
		for _, c := range ac.Clients {
			if c.CN != "" && caPEM == nil {
				return fmt.Errorf("audit client %q authenticates by certificate CN: --audit-client-ca is required", c.Cluster)
			}
		}
		cert, err := s.loadCertificate()
		if err != nil {
			return fmt.Errorf("audit listener: %w", err)
		}
		if a.tls, err = audit.ServerTLSConfig(cert, caPEM); err != nil {
			return err
		}
		if a.ln, err = net.Listen("tcp", ac.Listen); err != nil {
			return fmt.Errorf("listen for audit webhooks on %s: %w", ac.Listen, err)
		}
	}
	stateDir := ac.StateDir
	if stateDir == "" && len(ac.LogFiles) > 0 {
		if s.cfg.DataDir == "" {
			return errors.New("audit log files need a state directory (--data-dir) for their offsets")
		}
		stateDir = filepath.Join(s.cfg.DataDir, "audit")
	}
	for i, lf := range ac.LogFiles {
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return fmt.Errorf("audit state directory: %w", err)
		}
		name := fmt.Sprintf("%d-%s.offset.json", i, strings.Map(func(r rune) rune {
			if r == '/' || r == '\\' || r == ':' {
				return '_'
			}
			return r
		}, lf.Cluster+"-"+filepath.Base(lf.Path)))
		f, err := audit.NewFollower(audit.FollowerConfig{Path: lf.Path, StatePath: filepath.Join(stateDir, name),
			Cluster: lf.Cluster, Logger: log.With("file", lf.Path)}, proc)
		if err != nil {
			return err
		}
		a.followers = append(a.followers, f)
	}
	s.audit = a
	s.metrics.reg.MustRegister(&auditCollector{a: a})
	return nil
}

// AuditAddr is the audit webhook listener's address, or nil.
func (s *Server) AuditAddr() net.Addr {
	if s.audit == nil || s.audit.ln == nil {
		return nil
	}
	return s.audit.ln.Addr()
}

// auditServer is the HTTP server of the receiver's listener.
func (s *Server) auditServer(ctx context.Context) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/audit/webhook", s.audit.receiver)
	mux.Handle("POST /", s.audit.receiver) // kube-apiserver posts to the kubeconfig's server URL as is
	return &http.Server{
		Handler:           mux,
		TLSConfig:         s.audit.tls,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}

// runAudit runs the receiver's workers and the log followers until ctx
// ends.
func (s *Server) runAudit(ctx context.Context) {
	if s.audit == nil {
		return
	}
	var wg sync.WaitGroup
	if s.audit.receiver != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.audit.receiver.Run(ctx) }()
	}
	for _, f := range s.audit.followers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.Run(ctx); err != nil {
				s.log.Error("audit log follower stopped", "err", err)
			}
		}()
	}
	wg.Wait()
}
