package admission

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/policy"
)

// PathPolicies is central's admission policy endpoint.
const PathPolicies = "/api/v1/admission/policies"

// maxPolicyResponse bounds central's answer (a document is at most
// policy.MaxFileBytes; a set of many is still far below this).
const maxPolicyResponse = 64 << 20

// ErrPoliciesUnchanged is returned by Sync when central answers 304.
var ErrPoliciesUnchanged = errors.New("admission policies unchanged")

// PolicyReplacer takes the policies from central (policy.Watcher): they
// are loaded together with the local files, and a set that fails to load
// leaves the previous one in force.
type PolicyReplacer interface {
	Replace(ctx context.Context, central []policy.Source) error
}

// PolicySyncConfig says where central is and how often to ask it.
type PolicySyncConfig struct {
	URL   string
	Token string // an agent token
	TLS   *tls.Config
	// Interval between polls (default 30s); Timeout bounds one poll
	// (default 10s).
	Interval, Timeout time.Duration
}

// PolicySync polls central's admission policies with If-None-Match and
// hands a changed set to a PolicyReplacer. Central unreachable or
// answering an error keeps the last good set; a set that does not load
// (for example a policy name also used by a local file) is logged, the
// previous central set is put back, and the new one is tried again at the
// next poll.
type PolicySync struct {
	cfg    PolicySyncConfig
	w      PolicyReplacer
	log    *slog.Logger
	client *http.Client

	// Touched only by Sync, which Run calls from one goroutine.
	etag     string
	lastGood []policy.Source
}

// NewPolicySync builds a PolicySync; call Sync once (to start with
// central's policies) and then Run.
func NewPolicySync(cfg PolicySyncConfig, w PolicyReplacer, log *slog.Logger) *PolicySync {
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.TLS != nil {
		// A clone: the HTTP/2 setup of the transport edits NextProtos, which
		// must not leak into a configuration the caller shares.
		tr.TLSClientConfig = cfg.TLS.Clone()
	}
	return &PolicySync{cfg: cfg, w: w, log: log, client: &http.Client{Transport: tr, Timeout: cfg.Timeout}}
}

// Sync polls central once. It returns ErrPoliciesUnchanged on 304, an
// error wrapping policy.ErrInvalid when the new set does not load, and
// nil when the new set is in force.
func (p *PolicySync) Sync(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(p.cfg.URL, "/")+PathPolicies, nil)
	if err != nil {
		return fmt.Errorf("fetch admission policies: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+p.cfg.Token)
	req.Header.Set("Accept", "application/json")
	if p.etag != "" {
		req.Header.Set("If-None-Match", p.etag)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch admission policies: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return ErrPoliciesUnchanged
	case resp.StatusCode != http.StatusOK:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("fetch admission policies: %s: %s", resp.Status, truncate(string(msg), 300))
	}
	srcs, etag, err := decodeCentralPolicies(resp.Body)
	if err != nil {
		return fmt.Errorf("fetch admission policies: %w", err)
	}
	if etag == "" {
		etag = resp.Header.Get("ETag")
	}
	if err := p.w.Replace(ctx, srcs); err != nil {
		// Put the last good central set back, so that a later change of the
		// local files is not blocked by central's broken one. The ETag is
		// not remembered: the set is fetched and tried again next poll, as
		// the fault may be in a local file that gets fixed meanwhile.
		if rerr := p.w.Replace(ctx, p.lastGood); rerr != nil {
			p.log.Error("restoring the previous central policies failed", "err", rerr)
		}
		return fmt.Errorf("load admission policies from central (etag %s): %w", etag, err)
	}
	p.etag, p.lastGood = etag, srcs
	p.log.Info("admission policies from central loaded", "documents", len(srcs), "etag", etag)
	return nil
}

// Run polls every Interval until ctx ends; failures are logged and the
// policies in force stay.
func (p *PolicySync) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.logSync(ctx)
		}
	}
}

func (p *PolicySync) logSync(ctx context.Context) {
	err := p.Sync(ctx)
	switch {
	case err == nil, errors.Is(err, ErrPoliciesUnchanged), ctx.Err() != nil:
	case errors.Is(err, policy.ErrInvalid):
		p.log.Error("central's admission policies do not load; keeping the previous policies", "err", err)
	default:
		p.log.Warn("central unreachable for admission policies; keeping the last good set", "err", err)
	}
}

// centralPolicies is the body of GET /api/v1/admission/policies (the
// fields the webhook reads).
type centralPolicies struct {
	ETag  string `json:"etag"`
	Items []struct {
		Name string `json:"name"`
		YAML string `json:"yaml"`
	} `json:"items"`
}

// decodeCentralPolicies reads central's answer (at most
// maxPolicyResponse bytes) into policy sources, refusing unnamed or
// repeated documents and more than policy.MaxPolicies of them.
func decodeCentralPolicies(r io.Reader) ([]policy.Source, string, error) {
	var body centralPolicies
	lr := &io.LimitedReader{R: r, N: maxPolicyResponse + 1}
	if err := json.NewDecoder(lr).Decode(&body); err != nil {
		if lr.N <= 0 {
			return nil, "", fmt.Errorf("decode policies: answer larger than %d bytes", maxPolicyResponse)
		}
		return nil, "", fmt.Errorf("decode policies: %w", err)
	}
	if len(body.Items) > policy.MaxPolicies {
		return nil, "", fmt.Errorf("decode policies: %d documents (limit %d)", len(body.Items), policy.MaxPolicies)
	}
	seen := make(map[string]bool, len(body.Items))
	srcs := make([]policy.Source, 0, len(body.Items))
	for i, it := range body.Items {
		if it.Name == "" {
			return nil, "", fmt.Errorf("decode policies: document %d has no name", i)
		}
		if seen[it.Name] {
			return nil, "", fmt.Errorf("decode policies: document %q twice", it.Name)
		}
		seen[it.Name] = true
		srcs = append(srcs, policy.Source{Name: policy.CentralSource(it.Name), Data: []byte(it.YAML)})
	}
	return srcs, body.ETag, nil
}
