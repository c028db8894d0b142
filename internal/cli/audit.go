package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/audit"
	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/server"
)

func (a *app) auditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Kubernetes audit-log threat detection",
		Long: `Kubernetes audit-log threat detection.

Central receives audit events from kube-apiserver's webhook backend itself
(bulwark server --audit-listen). For clusters whose control plane only exports
an audit log file (managed clusters), "bulwark audit watch" follows that file
and sends the alerts to central.`,
		Example: `  # central receives kube-apiserver's audit webhook (mTLS) on :8444
  bulwark server --audit-listen :8444 --audit-client-ca /etc/bulwark/apiserver-ca.crt \
    --audit-client prod-eu=cn:kube-apiserver-audit

  # several clusters; none may post more than 5,000 audit events/s (prod-eu 20,000)
  bulwark server --audit-listen :8444 --audit-client-ca /etc/bulwark/apiserver-ca.crt \
    --audit-client prod-eu=cn:apiserver-prod-eu --audit-client lab=token-file:/etc/bulwark/lab.token \
    --audit-rate-limit 5000 --audit-cluster-rate-limit prod-eu=20000

  # a managed cluster's exported audit log, followed and sent to central
  bulwark audit watch /var/log/kubernetes/audit.log --cluster aks-prod \
    --server https://bulwark.example:8443 --token "$BULWARK_TOKEN"`,
	}
	cmd.AddCommand(a.auditWatchCmd())
	return cmd
}

type auditWatchFlags struct {
	server, token, serverCA string
	cluster, state          string
	accountState            string
	ruleFiles               []string
	fromEnd                 bool
	poll                    time.Duration
}

func (a *app) auditWatchCmd() *cobra.Command {
	f := &auditWatchFlags{}
	cmd := &cobra.Command{
		Use:   "watch FILE",
		Short: "Follow a Kubernetes audit log file (JSON lines) and raise alerts",
		Long: `Follow a Kubernetes audit log file (JSON lines, as --audit-log-format=json
writes it), evaluate Bulwark's audit rules (plus --rules files) and the
service-account source detector, and send the alerts to central
(POST /api/v1/alerts with an agent token) — or print them as JSON lines when
--server is not given.

The file is followed across rotation (rename and create, or copytruncate);
files rotated away before they were read (Bulwark down or behind across
several rotations) are read next, oldest first, compressed ones excepted.
The read offset is kept in --state and written only after the alerts of the
lines before it were accepted, so a restart resumes without losing or
repeating lines; alert ids are derived from the audit id, so a line read
twice still makes one alert in central.

The service-account detector's learned state (which source addresses each
service account uses, since when it is watched, which request alerted) is
kept in --account-state, next to the offset by default, and saved with it:
a restart neither starts a new learning period nor alerts twice. Both files
are locked while the command runs (FILE.lock): give each watcher its own.`,
		Example: `  bulwark audit watch /var/log/kubernetes/audit.log --cluster prod-eu \
    --server https://bulwark.example:8443 --token "$BULWARK_TOKEN"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runAuditWatch(cmd.Context(), f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "", "Bulwark central URL (https://host:8443); without it, alerts are printed to stdout")
	fl.StringVar(&f.token, "token", "", "API token for --server, role agent (env BULWARK_TOKEN)")
	fl.StringVar(&f.serverCA, "server-ca", "", "PEM file with the CA (or self-signed certificate) that signed --server's certificate")
	fl.StringVar(&f.cluster, "cluster", "", "cluster name recorded in the alerts (required)")
	fl.StringVar(&f.state, "state", "", "file keeping the read offset (default: user cache dir/bulwark/audit/<hash of FILE>.json)")
	fl.StringVar(&f.accountState, "account-state", "", "file keeping the service-account detector's learned sources (default: --state's path with .accounts.json; \"none\": memory only)")
	fl.StringArrayVar(&f.ruleFiles, "rules", nil, "extra rule file (Falco format, k8s_audit source), applied after the defaults; repeatable")
	fl.BoolVar(&f.fromEnd, "from-end", false, "with no saved offset, start at the end of the file instead of its beginning")
	fl.DurationVar(&f.poll, "poll", 250*time.Millisecond, "how often the file is checked for new lines and rotation")
	return cmd
}

func (a *app) runAuditWatch(ctx context.Context, f *auditWatchFlags, path string) error {
	if f.cluster == "" {
		return errors.New("--cluster is required: it names the cluster in the alerts")
	}
	if f.token == "" {
		f.token = a.env.Getenv("BULWARK_TOKEN")
	}
	eng, version, err := auditEngine(f.ruleFiles)
	if err != nil {
		return err
	}
	var sink audit.Sink
	if f.server != "" {
		if f.token == "" {
			return errors.New("--server needs --token (or BULWARK_TOKEN)")
		}
		hc, _, err := centralClient(f.server, "--server-ca", f.serverCA, time.Minute)
		if err != nil {
			return err
		}
		sink = &audit.HTTPSink{Server: f.server, Token: f.token, Client: hc}
	} else {
		sink = &jsonLinesSink{w: a.env.Stdout}
	}
	state := f.state
	if state == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("find a directory for the offset: %w (set --state)", err)
		}
		abs, _ := filepath.Abs(path)
		sum := sha256.Sum256([]byte(abs))
		state = filepath.Join(dir, "bulwark", "audit", hex.EncodeToString(sum[:8])+".json")
	}
	if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
		return fmt.Errorf("offset directory: %w", err)
	}
	acctCfg := audit.AccountConfig{}
	acctState := f.accountState
	if acctState == "" {
		acctState = strings.TrimSuffix(state, ".json") + ".accounts.json"
	}
	if acctState != "none" {
		store := audit.NewFileAccountStore(acctState, a.log)
		release, err := store.Lock()
		if err != nil {
			return err
		}
		defer release()
		acctCfg.Store = store
	}
	proc, err := audit.NewProcessor(audit.Config{Engine: eng, RuleVersion: version, Logger: a.log, Accounts: acctCfg}, sink)
	if err != nil {
		return err
	}
	fol, err := audit.NewFollower(audit.FollowerConfig{Path: path, StatePath: state, Cluster: f.cluster,
		Poll: f.poll, FromEnd: f.fromEnd, Logger: a.log}, proc)
	if err != nil {
		return err
	}
	a.log.Info("following audit log", "path", path, "state", state, "account_state", acctState, "cluster", f.cluster)
	return fol.Run(ctx)
}

// auditEngine compiles the default rules plus extra files.
func auditEngine(extra []string) (*rules.Engine, string, error) {
	files, err := rules.DefaultRuleFiles()
	if err != nil {
		return nil, "", err
	}
	for _, p := range extra {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, "", fmt.Errorf("--rules: %w", err)
		}
		files = append(files, rules.RuleFile{Name: p, Data: b})
	}
	eng, err := rules.Compile(files)
	if err != nil {
		return nil, "", err
	}
	return eng, audit.RuleVersion(files), nil
}

// jsonLinesSink prints alerts, one JSON object a line.
type jsonLinesSink struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *jsonLinesSink) IngestAlerts(_ context.Context, as []alerts.Alert) (int, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	enc := json.NewEncoder(s.w)
	for i := range as {
		if err := enc.Encode(&as[i]); err != nil {
			return i, 0, fmt.Errorf("print alert: %w", err)
		}
	}
	return len(as), 0, nil
}

// auditServerFlags are `bulwark server`'s audit settings.
type auditServerFlags struct {
	listen, clientCA string
	clients, logs    []string
	ruleFiles        []string
	rate             float64
	burst            int
	clusterRates     []string
}

func addAuditServerFlags(fl *pflag.FlagSet, f *auditServerFlags) {
	fl.StringVar(&f.listen, "audit-listen", "", "receive kube-apiserver audit webhooks (audit.k8s.io/v1 EventList) on this separate TLS address, e.g. :8444")
	fl.StringVar(&f.clientCA, "audit-client-ca", "", "PEM file: CA that signed the API servers' client certificates (for --audit-client CLUSTER=cn:NAME)")
	fl.StringArrayVar(&f.clients, "audit-client", nil, "an API server allowed to post audit events: CLUSTER=cn:CERT-CN or CLUSTER=token-file:PATH; repeatable")
	fl.StringArrayVar(&f.logs, "audit-log", nil, "follow an audit log file (JSON lines): CLUSTER=PATH; repeatable")
	fl.StringArrayVar(&f.ruleFiles, "audit-rules", nil, "extra audit rule file (Falco format), applied after the defaults; repeatable")
	fl.Float64Var(&f.rate, "audit-rate-limit", 0, "audit events per second each cluster may post to the webhook receiver, averaged (0: no cap); over it the API server is answered 429 and retries")
	fl.IntVar(&f.burst, "audit-rate-burst", 0, "events a cluster may post at once above --audit-rate-limit (default one second's worth, at least 400)")
	fl.StringArrayVar(&f.clusterRates, "audit-cluster-rate-limit", nil, "per-cluster override of --audit-rate-limit: CLUSTER=EVENTS-PER-SECOND (0: no cap); repeatable")
}

// apply fills the server's audit configuration (reading token files).
func (f *auditServerFlags) apply(c *server.AuditConfig) error {
	c.Listen, c.ClientCA, c.RuleFiles = f.listen, f.clientCA, f.ruleFiles
	if f.rate < 0 || f.burst < 0 {
		return errors.New("--audit-rate-limit and --audit-rate-burst cannot be negative")
	}
	c.ClusterRate, c.ClusterBurst = f.rate, f.burst
	for _, s := range f.clusterRates {
		cluster, v, ok := strings.Cut(s, "=")
		r, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if !ok || cluster == "" || err != nil || r < 0 {
			return fmt.Errorf("--audit-cluster-rate-limit %q: want CLUSTER=EVENTS-PER-SECOND (a number, 0 for no cap)", s)
		}
		if c.ClusterRates == nil {
			c.ClusterRates = map[string]float64{}
		}
		c.ClusterRates[cluster] = r
	}
	for _, s := range f.clients {
		cluster, spec, ok := strings.Cut(s, "=")
		kind, val, ok2 := strings.Cut(spec, ":")
		if !ok || !ok2 || cluster == "" || val == "" {
			return fmt.Errorf("--audit-client %q: want CLUSTER=cn:NAME or CLUSTER=token-file:PATH", s)
		}
		switch kind {
		case "cn":
			c.Clients = append(c.Clients, audit.Client{Cluster: cluster, CN: val})
		case "token-file":
			b, err := os.ReadFile(val)
			if err != nil {
				return fmt.Errorf("--audit-client %s: %w", cluster, err)
			}
			c.Clients = append(c.Clients, audit.Client{Cluster: cluster, Token: strings.TrimSpace(string(b))})
		default:
			return fmt.Errorf("--audit-client %q: want cn: or token-file:, not %q", s, kind)
		}
	}
	for _, s := range f.logs {
		cluster, path, ok := strings.Cut(s, "=")
		if !ok || cluster == "" || path == "" {
			return fmt.Errorf("--audit-log %q: want CLUSTER=PATH", s)
		}
		c.LogFiles = append(c.LogFiles, server.AuditLogFile{Cluster: cluster, Path: path})
	}
	if c.Listen != "" && len(c.Clients) == 0 {
		return errors.New("--audit-listen needs at least one --audit-client")
	}
	return nil
}
