package admission

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/policy"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// RecorderConfig configures the delivery of decision records and alerts to
// central.
type RecorderConfig struct {
	URL, Token string
	TLS        *tls.Config
	// QueueSize bounds records waiting for delivery (default 10000); beyond
	// it the newest are dropped and counted
	// (bulwark_admission_records_dropped_total).
	QueueSize int
	// BatchSize and FlushInterval shape the batches (default 500, 2s).
	BatchSize     int
	FlushInterval time.Duration
	// RecordAllowed also records plain allows (default: only decisions
	// with violations, exemptions or notes, and every CONNECT).
	RecordAllowed bool
}

// Recorder sends decision records to POST /api/v1/admission/decisions and
// denials and warnings to POST /api/v1/alerts, in batches, off the request
// path. Delivery is at least once (ids make replays harmless); a batch that
// fails is retried with backoff while newer records wait in the bounded
// queue.
type Recorder struct {
	cfg    RecorderConfig
	client *http.Client
	log    *slog.Logger
	m      *Metrics
	q      chan policy.DecisionRecord
}

// NewRecorder builds a Recorder; Run delivers.
func NewRecorder(cfg RecorderConfig, log *slog.Logger, m *Metrics) *Recorder {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 10000
	}
	if cfg.BatchSize <= 0 || cfg.BatchSize > policy.MaxDecisionBatch {
		cfg.BatchSize = 500
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 2 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg.TLS
	return &Recorder{cfg: cfg, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, log: log, m: m,
		q: make(chan policy.DecisionRecord, cfg.QueueSize)}
}

// Record queues r without blocking.
func (rc *Recorder) Record(r policy.DecisionRecord) {
	if !rc.wants(r.Operation, r.Verdict, len(r.Exempted), len(r.Notes)) {
		return
	}
	select {
	case rc.q <- r:
	default:
		if rc.m != nil {
			rc.m.recordsDropped.Inc()
		}
	}
}

// wants says whether a decision is recorded at all. The webhook asks
// before building a record: most reviews are plain allows, not recorded.
func (rc *Recorder) wants(operation string, verdict policy.Verdict, exempted, notes int) bool {
	if rc == nil || rc.cfg.URL == "" {
		return false
	}
	return rc.cfg.RecordAllowed || verdict != policy.VerdictAllow || exempted > 0 || notes > 0 || operation == "CONNECT"
}

// Run delivers until ctx ends, then tries one last flush for up to 5s.
func (rc *Recorder) Run(ctx context.Context) {
	if rc.cfg.URL == "" {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(rc.cfg.FlushInterval)
	defer t.Stop()
	var batch []policy.DecisionRecord
	backoff := time.Duration(0)
	var retryAt time.Time
	flush := func(ctx context.Context) {
		if len(batch) == 0 || time.Now().Before(retryAt) {
			return
		}
		if err := rc.send(ctx, batch); err != nil {
			backoff = min(max(2*backoff, time.Second), time.Minute)
			retryAt = time.Now().Add(backoff)
			rc.log.Warn("admission records not delivered; will retry", "records", len(batch), "retry_in", backoff, "err", err)
			return
		}
		backoff, batch = 0, batch[:0]
	}
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case r := <-rc.q:
					batch = append(batch, r)
					continue
				default:
				}
				break
			}
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			retryAt = time.Time{}
			for len(batch) > 0 && fctx.Err() == nil {
				n := min(len(batch), rc.cfg.BatchSize)
				if err := rc.send(fctx, batch[:n]); err != nil {
					rc.log.Warn("admission records lost at shutdown", "records", len(batch), "err", err)
					break
				}
				batch = batch[n:]
			}
			cancel()
			return
		case r := <-rc.q:
			if len(batch) < rc.cfg.QueueSize {
				batch = append(batch, r)
			} else if rc.m != nil {
				rc.m.recordsDropped.Inc()
			}
			if len(batch) >= rc.cfg.BatchSize {
				flush(ctx)
			}
		case <-t.C:
			flush(ctx)
		}
	}
}

func (rc *Recorder) send(ctx context.Context, all []policy.DecisionRecord) error {
	for len(all) > 0 {
		n := min(len(all), rc.cfg.BatchSize)
		batch := all[:n]
		if err := rc.post(ctx, "/api/v1/admission/decisions", policy.DecisionBatch{Decisions: batch}); err != nil {
			return err
		}
		if rc.m != nil {
			rc.m.recordsSent.WithLabelValues("decision").Add(float64(n))
		}
		var as []alerts.Alert
		for i := range batch {
			if a, ok := alertFor(&batch[i]); ok {
				as = append(as, a)
			}
		}
		if len(as) > 0 {
			if err := rc.post(ctx, "/api/v1/alerts", alerts.Batch{Alerts: as}); err != nil {
				return err
			}
			if rc.m != nil {
				rc.m.recordsSent.WithLabelValues("alert").Add(float64(len(as)))
			}
		}
		all = all[n:]
	}
	return nil
}

func (rc *Recorder) post(ctx context.Context, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("post %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(rc.cfg.URL, "/")+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("post %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+rc.cfg.Token)
	req.Header.Set(alerts.HeaderSentAt, alerts.SentAt(time.Now()))
	resp, err := rc.client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusUnauthorized {
			// Central refuses the batch as such: retrying cannot help.
			rc.log.Error("central refused admission records; dropped", "path", path, "status", resp.Status, "body", truncate(string(msg), 300))
			return nil
		}
		return fmt.Errorf("post %s: %s: %s", path, resp.Status, truncate(string(msg), 300))
	}
	return nil
}

// alertFor turns a denial or a warning into an alert (source admission);
// allows, audit-only and dry-run decisions are records, not alerts.
func alertFor(r *policy.DecisionRecord) (alerts.Alert, bool) {
	if r.DryRun || (r.Verdict != policy.VerdictDeny && r.Verdict != policy.VerdictWarn) {
		return alerts.Alert{}, false
	}
	var first *policy.Violation
	sev := vulndb.SeverityUnknown
	for i := range r.Violations {
		v := &r.Violations[i]
		if (r.Verdict == policy.VerdictDeny && v.Mode != policy.ModeDeny) || (r.Verdict == policy.VerdictWarn && v.Mode != policy.ModeWarn) {
			continue
		}
		if first == nil {
			first = v
		}
		sev = max(sev, v.Severity)
	}
	if first == nil {
		return alerts.Alert{}, false
	}
	asev := alerts.Severity(sev)
	if sev == vulndb.SeverityUnknown {
		asev = alerts.SeverityMedium
	}
	workload := r.Kind + "/" + r.Name
	if r.Operation == "CONNECT" {
		workload = "Pod/" + r.Name
	}
	verb := "denied"
	if r.Verdict == policy.VerdictWarn {
		verb = "warned about"
	}
	ev := *r
	if len(ev.Violations) > 50 {
		ev.Violations = ev.Violations[:50]
	}
	ev.Exempted = nil
	evidence, _ := json.Marshal(ev)
	if len(evidence) > alerts.MaxEvidenceBytes {
		evidence = nil
	}
	a := alerts.Alert{
		ID: r.ID + "-alert", Time: r.Time, Source: alerts.SourceAdmission,
		Rule: first.Policy + "/" + first.Rule, RuleVersion: r.PolicyVersion, Severity: asev,
		Title:   truncate(fmt.Sprintf("Bulwark %s %s %s/%s requested by %s: %s", verb, r.Operation, r.Namespace, workload, r.User, first.Line()), alerts.MaxTitleLen-8),
		Cluster: r.Cluster, Namespace: r.Namespace, Container: first.Container, Image: first.Image, ImageDigest: first.Digest,
		Workload: workload, Evidence: evidence,
	}
	if r.Operation == "CONNECT" {
		a.Pod = r.Name
		a.MitreTechnique = "T1609" // Container Administration Command
	}
	a.Title = sanitize(a.Title)
	return a, true
}

// sanitize drops control characters (alerts refuse them).
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
