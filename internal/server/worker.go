package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/bulwark-security/bulwark/internal/image"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/store"
)

// Job kinds.
const (
	jobScan  = "scan"
	jobSweep = "sweep"
)

// scanPayload is a scan job: pull registry/repository@digest with the
// registry's credentials, scan, match, store.
type scanPayload struct {
	RegistryID  int64  `json:"registryId"`
	Repository  string `json:"repository"`
	Digest      string `json:"digest"`
	Tag         string `json:"tag,omitempty"`
	TriggeredBy string `json:"triggeredBy"`
	EventID     string `json:"eventId,omitempty"`
	// Force scans even when the image already has an SBOM from this
	// scanner version (a user asked).
	Force bool `json:"force,omitempty"`
}

type sweepPayload struct {
	RegistryID  int64  `json:"registryId"`
	TriggeredBy string `json:"triggeredBy"`
}

func (s *Server) scanJob(p scanPayload) (store.NewJob, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return store.NewJob{}, err
	}
	// Keyed by digest: while a scan of this digest is pending or running,
	// more pushes of it (other tags, other registries, retries) join it.
	return store.NewJob{Kind: jobScan, Key: p.Digest, Payload: b, MaxAttempts: s.cfg.JobMaxAttempts}, nil
}

func (s *Server) enqueueScan(ctx context.Context, p scanPayload) (int64, bool, error) {
	j, err := s.scanJob(p)
	if err != nil {
		return 0, false, err
	}
	id, created, err := s.st.Enqueue(ctx, j)
	if err == nil {
		s.nudge()
	}
	return id, created, err
}

func (s *Server) enqueueSweep(ctx context.Context, registryID int64, by string) (int64, bool, error) {
	b, _ := json.Marshal(sweepPayload{RegistryID: registryID, TriggeredBy: by})
	id, created, err := s.st.Enqueue(ctx, store.NewJob{Kind: jobSweep, Key: fmt.Sprintf("registry/%d", registryID),
		Payload: b, MaxAttempts: 3})
	if err == nil {
		s.nudge()
	}
	return id, created, err
}

// registryHost is the host[:port] of a registry URL, as image references
// and ImageRef.Registry spell it.
func registryHost(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Host
}

// workerPool runs claimed jobs, at most cfg.Workers at a time.
type workerPool struct {
	s  *Server
	id string

	claimCtx    context.Context // cancelled: stop claiming
	stopClaim   context.CancelFunc
	jobCtx      context.Context // cancelled: abandon running jobs
	abandonJobs context.CancelFunc

	mu      sync.Mutex
	running map[int64]store.Lease
	wg      sync.WaitGroup
	loopWG  sync.WaitGroup
}

func newWorkerPool(s *Server) *workerPool {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	p := &workerPool{s: s, id: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:])),
		running: map[int64]store.Lease{}}
	p.claimCtx, p.stopClaim = context.WithCancel(context.Background())
	p.jobCtx, p.abandonJobs = context.WithCancel(context.Background())
	return p
}

// start runs the claim loop until stop.
func (p *workerPool) start() {
	p.loopWG.Add(1)
	go func() {
		defer p.loopWG.Done()
		p.claimLoop()
	}()
}

// claimLoop claims as many jobs as there are free workers, then waits for
// a free worker, a nudge or the poll interval.
func (p *workerPool) claimLoop() {
	s := p.s
	slots := make(chan struct{}, s.cfg.Workers)
	for range s.cfg.Workers {
		slots <- struct{}{}
	}
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		// Wait for at least one free worker.
		select {
		case <-p.claimCtx.Done():
			return
		case <-slots:
		}
		free := 1
	drain:
		for {
			select {
			case <-slots:
				free++
			default:
				break drain
			}
		}
		jobs, err := s.st.Claim(p.claimCtx, p.id, free, s.cfg.LeaseDuration)
		if err != nil && p.claimCtx.Err() == nil {
			s.log.Warn("claim jobs", "err", err)
		}
		for i := range jobs {
			free--
			j := jobs[i]
			p.mu.Lock()
			p.running[j.ID] = j.Lease
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer func() {
					p.mu.Lock()
					delete(p.running, j.ID)
					p.mu.Unlock()
					p.wg.Done()
					slots <- struct{}{}
				}()
				p.run(&j)
			}()
		}
		for range free {
			slots <- struct{}{}
		}
		if len(jobs) > 0 {
			continue // more may be due: claim again at once
		}
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		poll.Reset(s.cfg.PollInterval)
		select {
		case <-p.claimCtx.Done():
			return
		case <-s.wake:
		case <-poll.C:
		}
	}
}

// stop stops claiming, waits for running jobs until ctx ends, then
// abandons the rest and releases their leases so that they run again
// (here after a restart, or on another replica) without counting the
// interrupted attempt.
func (p *workerPool) stop(ctx context.Context) {
	p.stopClaim()
	p.loopWG.Wait()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	p.mu.Lock()
	leases := make([]store.Lease, 0, len(p.running))
	for _, l := range p.running {
		leases = append(leases, l)
	}
	p.mu.Unlock()
	p.abandonJobs()
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, l := range leases {
		if err := p.s.st.Release(rctx, l); err != nil {
			p.s.log.Warn("release job at shutdown", "job", l.JobID, "err", err)
		} else {
			p.s.log.Info("released running job at shutdown", "job", l.JobID)
		}
	}
	<-done
}

// run executes one job with a lease heartbeat.
func (p *workerPool) run(j *store.Job) {
	s := p.s
	ctx, cancel := context.WithCancel(p.jobCtx)
	defer cancel()
	hb := time.NewTicker(max(s.cfg.LeaseDuration/3, 100*time.Millisecond))
	defer hb.Stop()
	lost := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hb.C:
				if err := s.st.Extend(ctx, j.Lease, s.cfg.LeaseDuration); err != nil {
					if errors.Is(err, store.ErrLeaseLost) {
						s.log.Warn("job lease lost; abandoning", "job", j.ID)
						close(lost)
						cancel()
						return
					}
					if ctx.Err() == nil {
						s.log.Warn("extend job lease", "job", j.ID, "err", err)
					}
				}
			}
		}
	}()
	start := time.Now()
	var err error
	switch j.Kind {
	case jobScan:
		err = s.runScan(ctx, j)
	case jobSweep:
		err = s.runSweep(ctx, j)
	default:
		err = fmt.Errorf("unknown job kind %q", j.Kind)
	}
	outcome := "done"
	switch {
	case p.jobCtx.Err() != nil:
		// Shutdown abandoned it; stop() releases the lease.
		outcome = "released"
	case errors.Is(err, store.ErrLeaseLost):
		outcome = "lease_lost"
	case err != nil:
		outcome = "failed"
		select {
		case <-lost:
			outcome = "lease_lost"
		default:
			p.fail(j, err)
		}
	}
	s.metrics.jobDuration.WithLabelValues(j.Kind, outcome).Observe(time.Since(start).Seconds())
	s.log.Info("job finished", "job", j.ID, "kind", j.Kind, "key", j.Key, "attempt", j.Attempts, "outcome", outcome,
		"duration_ms", time.Since(start).Milliseconds(), "err", err)
}

func (p *workerPool) fail(j *store.Job, jobErr error) {
	s := p.s
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := jobErr.Error()
	if len(msg) > 2000 {
		msg = msg[:2000] + "…"
	}
	retryAt, final, err := s.st.Fail(ctx, j.Lease, msg)
	if err != nil {
		s.log.Warn("record job failure", "job", j.ID, "err", err)
		return
	}
	if final {
		s.log.Warn("job failed for good", "job", j.ID, "kind", j.Kind, "attempts", j.Attempts, "err", jobErr)
	} else {
		s.log.Info("job failed; will retry", "job", j.ID, "retry_at", retryAt, "err", jobErr)
	}
}

// anonymous resolves every registry to anonymous access: central never
// reads the host's Docker credentials, only those stored per registry.
type anonymous struct{}

func (anonymous) Resolve(authn.Resource) (authn.Authenticator, error) { return authn.Anonymous, nil }

// runScan pulls, scans and stores one image. The save completes the job
// in the same transaction, so a job is done exactly when its result is
// stored, even if this worker dies at any point.
func (s *Server) runScan(ctx context.Context, j *store.Job) error {
	var p scanPayload
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return fmt.Errorf("scan job payload: %w", err)
	}
	reg, err := s.st.GetRegistry(ctx, p.RegistryID)
	if err != nil {
		return fmt.Errorf("scan %s: registry %d: %w", p.Digest, p.RegistryID, err)
	}
	host := registryHost(reg.URL)
	ref := host + "/" + p.Repository + "@" + p.Digest
	meta := store.ScanMeta{TriggeredBy: p.TriggeredBy, Job: &j.Lease,
		Refs: []store.ImageRef{{Registry: host, Repository: p.Repository, Tag: p.Tag}}}
	// An image already inventoried by this scanner version is not pulled
	// again: its stored SBOM is re-matched and the new reference recorded.
	if !p.Force {
		if done, err := s.reuseSBOM(ctx, p, meta); done || err != nil {
			return err
		}
	}
	opts := image.Options{Insecure: reg.Insecure || strings.HasPrefix(reg.URL, "http://"), Keychain: anonymous{}}
	if reg.Credentials != nil {
		opts.Username, opts.Password = reg.Credentials.Username, reg.Credentials.Password
	}
	start := time.Now()
	res, err := s.scanner.Image(ctx, ref, opts, nil)
	if err != nil {
		s.recordFailedScan(p, ref, err)
		return fmt.Errorf("scan %s: %w", ref, err)
	}
	res.Target.Name = ref
	if err := s.vdb.match(ctx, res); err != nil && !errors.Is(err, errNoVulnDB) {
		return fmt.Errorf("match %s: %w", ref, err)
	}
	if res.FinishedAt.IsZero() {
		res.FinishedAt = time.Now().UTC()
	}
	saved, err := s.st.SaveScan(ctx, res, meta)
	if err != nil {
		return fmt.Errorf("save scan of %s: %w", ref, err)
	}
	s.metrics.scanDuration.Observe(time.Since(start).Seconds())
	s.metrics.scansStored.WithLabelValues("job").Inc()
	s.log.Info("image scanned", "ref", ref, "image_digest", res.Target.Digest, "packages", len(res.Packages),
		"findings", saved.Diff.Counts.Total(), "new", len(saved.Diff.New), "fixed", len(saved.Diff.Fixed))
	return nil
}

// reuseSBOM finishes a scan job from the stored SBOM when the image was
// already inventoried by this scanner version (done reports that).
func (s *Server) reuseSBOM(ctx context.Context, p scanPayload, meta store.ScanMeta) (done bool, err error) {
	sb, err := s.st.GetSBOM(ctx, p.Digest)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if sb.Tool.Version != s.scanner.Version || s.scanner.Version == "dev" {
		return false, nil
	}
	im, err := s.st.GetImage(ctx, p.Digest)
	if err != nil {
		return false, err
	}
	res := &scan.Result{SchemaVersion: scan.SchemaVersion, Tool: sb.Tool, OS: sb.OS, Packages: sb.Packages,
		Target: scan.Target{Kind: "image", Name: meta.Refs[0].String() + "@" + p.Digest, Digest: p.Digest,
			ImageID: im.ConfigDigest, Platform: im.Platform, Layers: im.Layers, Size: im.Size},
		StartedAt: time.Now().UTC(), Findings: []scan.Finding{}}
	if err := s.vdb.match(ctx, res); err != nil && !errors.Is(err, errNoVulnDB) {
		return false, err
	}
	res.FinishedAt = time.Now().UTC()
	if _, err := s.st.SaveScan(ctx, res, meta); err != nil {
		return false, err
	}
	return true, nil
}

func (s *Server) recordFailedScan(p scanPayload, ref string, scanErr error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := time.Now().UTC()
	if _, err := s.st.RecordScan(ctx, store.ScanRecord{ImageDigest: p.Digest, TargetKind: "image", TargetName: ref,
		Status: store.ScanFailed, Error: scanErr.Error(), TriggeredBy: p.TriggeredBy, ToolName: "bulwark",
		ToolVersion: s.scanner.Version, StartedAt: now, FinishedAt: now}); err != nil {
		s.log.Warn("record failed scan", "ref", ref, "err", err)
	}
}
