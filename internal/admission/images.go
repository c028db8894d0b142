package admission

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-security/bulwark/internal/policy"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// ErrCentralUnavailable is wrapped when central could not answer and no
// cached verdict exists.
var ErrCentralUnavailable = errors.New("central unavailable")

// CentralConfig configures the client of central's findings API.
type CentralConfig struct {
	// URL of central (https://bulwark.example.com); empty: every image
	// lookup fails with ErrCentralUnavailable (the failure policy decides).
	URL string
	// Token is an agent token.
	Token string
	// TLS for the connection to central (CA bundle); nil uses the system
	// roots.
	TLS *tls.Config
	// Timeout bounds one call to central (default 2s: the API server gives
	// the whole webhook 10s by default).
	Timeout time.Duration
	// CacheTTL is how long a verdict is fresh (default 5m); StaleTTL how
	// long a verdict may still be used when central is unreachable
	// (default 24h).
	CacheTTL, StaleTTL time.Duration
	// NegativeTTL is how long "never scanned" is remembered (default 30s:
	// a scan may land any minute).
	NegativeTTL time.Duration
	// CacheSize bounds the entries kept (default 10000 digests).
	CacheSize int
	// ResolveTimeout bounds a registry HEAD to resolve a tag (default 3s);
	// TagTTL is how long a tag→digest answer is kept (default 1m).
	ResolveTimeout, TagTTL time.Duration
	// RegistryOptions are passed to remote.Head after the defaults
	// (credentials from the Docker config file: authn.DefaultKeychain).
	RegistryOptions []remote.Option
	// NameOptions are passed to name.ParseReference.
	NameOptions []name.Option
	// InsecureRegistries are registry hosts reached over plain HTTP (a
	// loopback registry in tests; never for production registries).
	InsecureRegistries []string
	// MaxFindings bounds the findings read for one image (default 20000).
	MaxFindings int
}

func (c *CentralConfig) defaults() {
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.CacheTTL <= 0 {
		c.CacheTTL = 5 * time.Minute
	}
	if c.StaleTTL <= 0 {
		c.StaleTTL = 24 * time.Hour
	}
	if c.NegativeTTL <= 0 {
		c.NegativeTTL = 30 * time.Second
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 10000
	}
	if c.ResolveTimeout <= 0 {
		c.ResolveTimeout = 3 * time.Second
	}
	if c.TagTTL <= 0 {
		c.TagTTL = time.Minute
	}
	if c.MaxFindings <= 0 {
		c.MaxFindings = 20000
	}
}

// Images implements policy.ImageSource over central with a verdict cache.
//
// Failure policy, in order: a fresh cached verdict is used without asking
// central; otherwise central is asked; when central cannot be reached (or
// answers 5xx), a stale cached verdict up to StaleTTL old is used and marked
// stale; when there is none, the lookup fails with ErrCentralUnavailable and
// the caller's fail-open/fail-closed setting decides (policy.Request.FailOpen).
// A tag that cannot be resolved to a digest fails the same way.
type Images struct {
	cfg    CentralConfig
	client *http.Client
	now    func() time.Time
	m      *Metrics

	mu    sync.Mutex
	cache map[string]*cacheEntry // by digest
	tags  map[string]tagEntry    // by reference as written
}

type cacheEntry struct {
	rep     *policy.ImageReport
	fetched time.Time
}

type tagEntry struct {
	digest  string
	fetched time.Time
}

// NewImages builds the client. m may be nil.
func NewImages(cfg CentralConfig, m *Metrics) *Images {
	cfg.defaults()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg.TLS
	tr.MaxIdleConnsPerHost = 16
	return &Images{cfg: cfg, client: &http.Client{Transport: tr, Timeout: cfg.Timeout}, now: time.Now, m: m,
		cache: map[string]*cacheEntry{}, tags: map[string]tagEntry{}}
}

// ImageFindings implements policy.ImageSource.
func (im *Images) ImageFindings(ctx context.Context, ref string) (*policy.ImageReport, error) {
	digest, err := im.resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	now := im.now()
	im.mu.Lock()
	e := im.cache[digest]
	im.mu.Unlock()
	if e != nil {
		ttl := im.cfg.CacheTTL
		if !e.rep.Scanned {
			ttl = im.cfg.NegativeTTL
		}
		if now.Sub(e.fetched) < ttl {
			im.m.cache("hit")
			return withRef(e.rep, ref), nil
		}
	}
	im.m.cache("miss")
	rep, err := im.fetch(ctx, digest)
	if err != nil {
		if e != nil && now.Sub(e.fetched) < im.cfg.StaleTTL {
			im.m.cache("stale")
			stale := *e.rep
			stale.Stale = true
			return withRef(&stale, ref), nil
		}
		return nil, err
	}
	im.put(digest, rep, now)
	return withRef(rep, ref), nil
}

func withRef(r *policy.ImageReport, ref string) *policy.ImageReport {
	c := *r
	c.Ref = ref
	return &c
}

func (im *Images) put(digest string, rep *policy.ImageReport, now time.Time) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if len(im.cache) >= im.cfg.CacheSize {
		// Full: drop what is past the stale window, then (still full) a
		// random tenth — map order is random. O(n), once per tenth of
		// the cache's size in insertions.
		for k, e := range im.cache {
			if now.Sub(e.fetched) > im.cfg.StaleTTL {
				delete(im.cache, k)
			}
		}
		for k := range im.cache {
			if len(im.cache) < im.cfg.CacheSize*9/10 {
				break
			}
			delete(im.cache, k)
		}
	}
	im.cache[digest] = &cacheEntry{rep: rep, fetched: now}
}

// Prime stores a verdict (tests and warm-up).
func (im *Images) Prime(digest string, rep *policy.ImageReport) { im.put(digest, rep, im.now()) }

// resolve returns the digest of ref: the pinned digest when there is one,
// else a registry HEAD (cached for TagTTL).
func (im *Images) resolve(ctx context.Context, ref string) (string, error) {
	if _, d, ok := strings.Cut(ref, "@"); ok {
		if !strings.HasPrefix(d, "sha256:") || len(d) != 71 {
			return "", fmt.Errorf("image %s: malformed digest", ref)
		}
		return d, nil
	}
	now := im.now()
	im.mu.Lock()
	t, ok := im.tags[ref]
	im.mu.Unlock()
	if ok && now.Sub(t.fetched) < im.cfg.TagTTL {
		return t.digest, nil
	}
	r, err := name.ParseReference(ref, im.cfg.NameOptions...)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", ref, err)
	}
	if slices.Contains(im.cfg.InsecureRegistries, r.Context().RegistryStr()) {
		if r, err = name.ParseReference(ref, append(slices.Clone(im.cfg.NameOptions), name.Insecure)...); err != nil {
			return "", fmt.Errorf("image %s: %w", ref, err)
		}
	}
	hctx, cancel := context.WithTimeout(ctx, im.cfg.ResolveTimeout)
	defer cancel()
	opts := append([]remote.Option{remote.WithContext(hctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, im.cfg.RegistryOptions...)
	desc, err := remote.Head(r, opts...)
	if err != nil {
		if ok && now.Sub(t.fetched) < im.cfg.StaleTTL {
			return t.digest, nil
		}
		return "", fmt.Errorf("resolve %s to a digest: %w: %w", ref, ErrCentralUnavailable, err)
	}
	d := desc.Digest.String()
	im.mu.Lock()
	if len(im.tags) >= im.cfg.CacheSize {
		clear(im.tags)
	}
	im.tags[ref] = tagEntry{digest: d, fetched: now}
	im.mu.Unlock()
	return d, nil
}

// findingsPage is central's answer to GET /api/v1/images/{digest}/findings.
type findingsPage struct {
	Items []struct {
		VulnID        string          `json:"vulnId"`
		Aliases       []string        `json:"aliases"`
		Package       string          `json:"package"`
		Version       string          `json:"version"`
		FixedVersions []string        `json:"fixedVersions"`
		Severity      vulndb.Severity `json:"severity"`
		CVSSScore     float64         `json:"cvssScore"`
		KEV           bool            `json:"kev"`
	} `json:"items"`
	Total int `json:"total"`
}

func (im *Images) fetch(ctx context.Context, digest string) (*policy.ImageReport, error) {
	if im.cfg.URL == "" {
		return nil, fmt.Errorf("findings of %s: %w: no central URL configured", digest, ErrCentralUnavailable)
	}
	start := im.now()
	defer func() { im.m.centralLatency(im.now().Sub(start)) }()
	rep := &policy.ImageReport{Digest: digest, Scanned: true}
	const limit = 1000
	for offset := 0; ; offset += limit {
		u := strings.TrimSuffix(im.cfg.URL, "/") + "/api/v1/images/" + url.PathEscape(digest) + "/findings?limit=" + strconv.Itoa(limit) + "&offset=" + strconv.Itoa(offset)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, fmt.Errorf("findings of %s: %w", digest, err)
		}
		req.Header.Set("Authorization", "Bearer "+im.cfg.Token)
		resp, err := im.client.Do(req)
		if err != nil {
			im.m.centralError()
			return nil, fmt.Errorf("findings of %s: %w: %w", digest, ErrCentralUnavailable, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			im.m.centralError()
			return nil, fmt.Errorf("findings of %s: %w: %w", digest, ErrCentralUnavailable, err)
		}
		switch {
		case resp.StatusCode == http.StatusNotFound:
			return &policy.ImageReport{Digest: digest}, nil // never scanned
		case resp.StatusCode != http.StatusOK:
			im.m.centralError()
			return nil, fmt.Errorf("findings of %s: %w: central answered %s: %s", digest, ErrCentralUnavailable, resp.Status, truncate(string(body), 200))
		}
		var page findingsPage
		if err := json.Unmarshal(body, &page); err != nil {
			im.m.centralError()
			return nil, fmt.Errorf("findings of %s: %w: malformed answer: %v", digest, ErrCentralUnavailable, err)
		}
		for _, f := range page.Items {
			rep.Findings = append(rep.Findings, policy.Finding{ID: f.VulnID, Aliases: f.Aliases, Package: f.Package, Version: f.Version,
				FixedVersions: f.FixedVersions, Severity: f.Severity, CVSS: f.CVSSScore, KEV: f.KEV})
		}
		if len(page.Items) < limit || offset+limit >= page.Total || len(rep.Findings) >= im.cfg.MaxFindings {
			return rep, nil
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ErrScanPending is wrapped when a scan was requested from central but its
// result was not there before the time budget ran out.
var ErrScanPending = errors.New("scan requested and still running")

// scanPollInterval is how often central is asked for the findings of an
// image whose scan was requested (a demo-size image scans in about a second).
const scanPollInterval = 250 * time.Millisecond

// scanRequestAnswer is central's answer to POST /api/v1/scans/requests.
type scanRequestAnswer struct {
	JobID int64  `json:"jobId"`
	State string `json:"state"`
}

// ScanImage implements policy.Scanner for `unscanned: scan`: it asks
// central to scan the image (POST /api/v1/scans/requests, idempotent per
// digest, so concurrent reviews of one image share a job), then polls its
// findings until they exist or ctx (the rule's budget, bounded by the
// review's deadline) ends. The result is cached like any verdict. On
// timeout the error wraps ErrScanPending: the job keeps running in central,
// and the next review of the image finds its result.
func (im *Images) ScanImage(ctx context.Context, ref string) (*policy.ImageReport, error) {
	digest, err := im.resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	if im.cfg.URL == "" {
		return nil, fmt.Errorf("scan %s: %w: no central URL configured", ref, ErrCentralUnavailable)
	}
	// Central pulls by digest: the one this review judges, whatever the
	// tag points at by the time the job runs.
	pinned := ref
	if r, err := name.ParseReference(ref, im.cfg.NameOptions...); err == nil {
		pinned = r.Context().Name() + "@" + digest
	}
	// One check and the request are not cut short by a budget smaller than
	// a round trip: whatever the budget, a finished scan is used and
	// central gets the job, so the next review of the image finds its
	// result. Both stay bounded by one call's timeout.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), im.cfg.Timeout)
	defer cancel()
	// The verdict may be cached as "never scanned" while a scan requested
	// by an earlier review has since finished.
	if rep, err := im.fetch(rctx, digest); err == nil && rep.Scanned {
		im.put(digest, rep, im.now())
		return withRef(rep, ref), nil
	}
	job, err := im.requestScan(rctx, pinned)
	if err != nil {
		return nil, err
	}
	t := time.NewTicker(scanPollInterval)
	defer t.Stop()
	for {
		rep, err := im.fetch(ctx, digest)
		if err == nil && rep.Scanned {
			im.put(digest, rep, im.now())
			return withRef(rep, ref), nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("central scan job %d of %s: %w; the next attempt will use its result", job.JobID, digest, ErrScanPending)
		case <-t.C:
		}
	}
}

func (im *Images) requestScan(ctx context.Context, ref string) (*scanRequestAnswer, error) {
	body, err := json.Marshal(map[string]string{"ref": ref})
	if err != nil {
		return nil, err
	}
	u := strings.TrimSuffix(im.cfg.URL, "/") + "/api/v1/scans/requests"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(string(body)))
	if err != nil {
		return nil, fmt.Errorf("request scan of %s: %w", ref, err)
	}
	req.Header.Set("Authorization", "Bearer "+im.cfg.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := im.client.Do(req)
	if err != nil {
		im.m.centralError()
		return nil, fmt.Errorf("request scan of %s: %w: %w", ref, ErrCentralUnavailable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("request scan of %s: %w: %w", ref, ErrCentralUnavailable, err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return nil, fmt.Errorf("request scan of %s: central answered %s: %s", ref, resp.Status, truncate(string(b), 200))
	}
	var a scanRequestAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("request scan of %s: malformed answer: %w", ref, err)
	}
	return &a, nil
}
