package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/rules"
)

// Sink takes the alerts of one processed batch. It returns only once they
// are durably accepted (stored, or acknowledged by central): the receiver
// answers the API server, and the follower commits its offset, after that.
// Central passes its store's IngestAlerts; the CLI posts to
// POST /api/v1/alerts (HTTPSink).
type Sink interface {
	IngestAlerts(ctx context.Context, as []alerts.Alert) (accepted, duplicates int, err error)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, as []alerts.Alert) (int, int, error)

// IngestAlerts calls f.
func (f SinkFunc) IngestAlerts(ctx context.Context, as []alerts.Alert) (int, int, error) {
	return f(ctx, as)
}

// Config configures a Processor.
type Config struct {
	// Engine holds the audit rules; nil compiles Bulwark's defaults.
	Engine *rules.Engine
	// RuleVersion identifies the rule files (recorded in every alert); with
	// Engine nil it is derived from the default files.
	RuleVersion string
	// DedupWindow is how long a processed audit id (per cluster and stage)
	// is remembered so a replayed batch is not evaluated twice (default
	// 10m); DedupMax bounds the ids remembered (default 1,000,000 —
	// about 100 MB at worst).
	DedupWindow time.Duration
	DedupMax    int
	// Accounts configures the service-account source detector.
	Accounts AccountConfig
	// Logger receives warnings (undecodable records, invalid alerts); nil
	// discards them.
	Logger *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Stats are the processor's counters since it was made.
type Stats struct {
	Events     int64 // records evaluated
	Malformed  int64 // records that did not decode (skipped)
	Replays    int64 // records skipped as already processed
	Alerts     int64 // alerts handed to the sink
	Invalid    int64 // alerts the contract refused (dropped, logged)
	SinkErrors int64
	// StateErrors counts failed saves of the service-account detector's
	// state (retried with the next batch).
	StateErrors int64
}

// Processor evaluates audit records and hands the resulting alerts to a
// Sink. It is safe for concurrent use.
type Processor struct {
	cfg      Config
	eng      *rules.Engine
	sink     Sink
	log      *slog.Logger
	dedup    *dedup
	accounts *accountDetector
	pool     sync.Pool // *worker

	events, malformed, replays, nalerts, invalid, sinkErrs, stateErrs atomic.Int64
}

// NewProcessor builds a processor over cfg's rules (the defaults when nil).
func NewProcessor(cfg Config, sink Sink) (*Processor, error) {
	if sink == nil {
		return nil, errors.New("new audit processor: a sink is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DedupWindow <= 0 {
		cfg.DedupWindow = 10 * time.Minute
	}
	if cfg.DedupMax <= 0 {
		cfg.DedupMax = 1_000_000
	}
	if cfg.Engine == nil {
		eng, version, err := DefaultEngine()
		if err != nil {
			return nil, fmt.Errorf("new audit processor: %w", err)
		}
		cfg.Engine = eng
		if cfg.RuleVersion == "" {
			cfg.RuleVersion = version
		}
	}
	p := &Processor{
		cfg: cfg, eng: cfg.Engine, sink: sink, log: cfg.Logger,
		dedup:    newDedup(cfg.DedupWindow, cfg.DedupMax),
		accounts: newAccountDetector(cfg.Accounts),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.pool.New = func() any { w := &worker{}; w.ev.Audit = &w.ae; return w }
	return p, nil
}

// DefaultEngine compiles Bulwark's default rules and returns them with a
// version: the first 12 hex digits of the SHA-256 of the rule files.
func DefaultEngine() (*rules.Engine, string, error) {
	files, err := rules.DefaultRuleFiles()
	if err != nil {
		return nil, "", err
	}
	eng, err := rules.Compile(files)
	if err != nil {
		return nil, "", err
	}
	return eng, RuleVersion(files), nil
}

// RuleVersion is a short hash of the rule files' names and contents.
func RuleVersion(files []rules.RuleFile) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%d:%s;%d:", len(f.Name), f.Name, len(f.Data))
		h.Write(f.Data)
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// Stats returns the counters.
func (p *Processor) Stats() Stats {
	return Stats{Events: p.events.Load(), Malformed: p.malformed.Load(), Replays: p.replays.Load(),
		Alerts: p.nalerts.Load(), Invalid: p.invalid.Load(), SinkErrors: p.sinkErrs.Load(), StateErrors: p.stateErrs.Load()}
}

// worker is the per-goroutine scratch of Process, pooled so a batch
// decodes without allocating per record.
type worker struct {
	ae      rules.AuditEvent
	ev      rules.Event
	matches []rules.Match
	keys    []uint64
}

// Process evaluates raw audit records (one audit.k8s.io/v1 Event each, as
// JSON) from cluster and hands their alerts to the sink, returning after
// the sink accepted them. A record that does not decode is skipped and
// counted (one bad line must not block a log forever); the webhook receiver
// validates whole batches before it calls Process. A sink error is
// returned and nothing is marked processed, so the caller retries the
// whole batch.
func (p *Processor) Process(ctx context.Context, cluster string, raws []string) error {
	w := p.pool.Get().(*worker)
	defer p.pool.Put(w)
	var out []alerts.Alert
	w.keys = w.keys[:0]
	now := p.cfg.Now()
	if err := p.accounts.load(ctx, now); err != nil {
		p.sinkErrs.Add(1)
		return err
	}
	for _, raw := range raws {
		if err := rules.DecodeAuditEventString(raw, &w.ae); err != nil {
			p.malformed.Add(1)
			p.log.Warn("skipping undecodable audit record", "cluster", cluster, "err", err)
			continue
		}
		if w.ae.AuditID != "" {
			key := p.dedup.key(cluster, w.ae.AuditID, w.ae.Stage)
			if p.dedup.seen(key, now) {
				p.replays.Add(1)
				continue
			}
			w.keys = append(w.keys, key)
		}
		p.events.Add(1)
		w.matches = p.eng.Evaluate(&w.ev, w.matches[:0])
		if len(w.matches) == 0 && !strings.HasPrefix(w.ae.User, "system:serviceaccount:") {
			continue // the common case: nothing to alert on, no state to update
		}
		at := eventTime(&w.ae, now)
		for _, m := range w.matches {
			out = p.appendAlert(out, cluster, raw, &w.ae, at, ruleInfo{
				name: m.Rule.Name, priority: m.Rule.Priority.String(), tags: m.Rule.Tags,
				title: m.Rule.FormatOutput(&w.ev),
			})
		}
		if ip, ok := p.accounts.observe(cluster, &w.ae, at); ok {
			out = p.appendAlert(out, cluster, raw, &w.ae, at, ruleInfo{
				name: AccountRuleName, priority: "WARNING", tags: accountRuleTags,
				title: fmt.Sprintf("Service account used from a new source (user=%s sourceip=%s useragent=%s uri=%s)",
					w.ae.User, ip, w.ae.UserAgent, w.ae.RequestURI),
				keyEvidence: ip,
			})
		}
	}
	if len(out) > 0 {
		if _, _, err := p.sink.IngestAlerts(ctx, out); err != nil {
			p.sinkErrs.Add(1)
			return fmt.Errorf("store audit alerts: %w", err)
		}
		p.nalerts.Add(int64(len(out)))
	}
	for _, k := range w.keys {
		p.dedup.add(k, now)
	}
	// The alerts are stored: the detector's new state may be saved. A
	// failure is retried with the next batch (the alerts must not be
	// redone for it).
	if err := p.accounts.flush(ctx, now); err != nil {
		p.stateErrs.Add(1)
		p.log.Warn("saving service-account detector state failed; retried with the next batch", "err", err)
	}
	return nil
}

// eventTime is the record's stage timestamp, or now.
func eventTime(ae *rules.AuditEvent, now time.Time) time.Time {
	if ae.StageTimestamp != "" {
		if t, err := time.Parse(time.RFC3339Nano, ae.StageTimestamp); err == nil && t.Year() >= 2000 && t.Year() <= 9999 {
			return t
		}
	}
	return now
}

type ruleInfo struct {
	name, priority, title string
	tags                  []string
	keyEvidence           string
}

// workloadKinds names the kind of a workload resource for Alert.Workload.
var workloadKinds = map[string]string{
	"deployments": "Deployment", "daemonsets": "DaemonSet", "statefulsets": "StatefulSet", "replicasets": "ReplicaSet",
	"jobs": "Job", "cronjobs": "CronJob", "replicationcontrollers": "ReplicationController",
}

// appendAlert builds one alert. Its id is derived from the cluster, the
// audit id and the rule, so the same request seen again (a replayed batch,
// another stage of the same request, a re-read log line) makes the same id
// and central stores it once.
func (p *Processor) appendAlert(out []alerts.Alert, cluster, raw string, ae *rules.AuditEvent, at time.Time, ri ruleInfo) []alerts.Alert {
	sev, err := alerts.SeverityFromPriority(ri.priority)
	if err != nil {
		sev = alerts.SeverityMedium
	}
	tactic, technique := alerts.MITREFromTags(ri.tags)
	idSrc := ae.AuditID
	if idSrc == "" {
		sum := sha256.Sum256([]byte(raw))
		idSrc = hex.EncodeToString(sum[:])
	}
	id := sha256.Sum256([]byte(cluster + "\x00" + idSrc + "\x00" + ri.name))
	a := alerts.Alert{
		ID:   "audit-" + hex.EncodeToString(id[:16]),
		Time: at.UTC(), Source: alerts.SourceAudit,
		Rule: ri.name, RuleVersion: p.cfg.RuleVersion, Severity: sev,
		Title:       alerts.CleanText(ri.title, alerts.MaxTitleLen),
		MitreTactic: tactic, MitreTechnique: technique,
		Cluster:   alerts.CleanText(cluster, 512),
		Namespace: alerts.CleanText(ae.Namespace, 512),
	}
	switch {
	case ae.Resource == "pods":
		a.Pod = alerts.CleanText(ae.Name, 512)
	case workloadKinds[ae.Resource] != "" && ae.Name != "":
		a.Workload = alerts.CleanText(workloadKinds[ae.Resource]+"/"+ae.Name, 512)
	}
	if len(ae.Images) > 0 {
		a.Image = alerts.CleanText(ae.Images[0], 512)
	}
	a.Evidence = evidence(raw, ae)
	// Grouping: the same rule on the same object by the same user is one
	// alert with a count.
	key := []string{ae.User, ae.Resource, ae.Name}
	if ri.keyEvidence != "" {
		key = append(key, ri.keyEvidence)
	}
	a.Fingerprint = alerts.Fingerprint(&a, key...)
	if err := a.Validate(); err != nil {
		p.invalid.Add(1)
		p.log.Warn("dropping an audit alert the contract refuses", "rule", ri.name, "err", err)
		return out
	}
	p.log.Debug("audit alert", "rule", ri.name, "cluster", cluster, "id", a.ID)
	return append(out, a)
}

// evidence is the audit record itself, or — above the contract's evidence
// limit — the fields the rules read, so the alert still says what happened.
func evidence(raw string, ae *rules.AuditEvent) json.RawMessage {
	if len(raw) <= alerts.MaxEvidenceBytes {
		return json.RawMessage(raw)
	}
	b, err := json.Marshal(map[string]any{
		"truncated": true, "originalBytes": len(raw),
		"auditID": ae.AuditID, "stage": ae.Stage, "verb": ae.Verb, "requestURI": ae.RequestURI,
		"user": map[string]any{"username": ae.User, "groups": ae.Groups}, "sourceIPs": ae.SourceIPs,
		"userAgent": ae.UserAgent, "objectRef": map[string]any{"resource": ae.Resource, "subresource": ae.Subresource,
			"namespace": ae.Namespace, "name": ae.Name, "apiGroup": ae.APIGroup},
		"stageTimestamp": ae.StageTimestamp,
	})
	if err != nil || len(b) > alerts.MaxEvidenceBytes {
		return json.RawMessage(`{"truncated":true}`)
	}
	return b
}
