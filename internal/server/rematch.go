package server

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/store"
)

// rematchState is the progress of the current or last re-match, for
// GET /api/v1/db and the console.
type rematchState struct {
	mu   sync.Mutex
	last RematchReport
}

// RematchReport describes one re-match of the stored SBOMs.
type RematchReport struct {
	Running    bool      `json:"running"`
	Trigger    string    `json:"trigger,omitempty"`
	DBBuilt    time.Time `json:"dbBuilt,omitzero"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	DurationMS int64     `json:"durationMs"`
	// Images is how many images were re-matched; Skipped were left out
	// (not seen recently and not running, or no SBOM stored yet).
	Images  int `json:"images"`
	Skipped int `json:"skipped"`
	Failed  int `json:"failed"`
	// NewFindings, FixedFindings and ChangedFindings sum the events the
	// re-match recorded.
	NewFindings     int    `json:"newFindings"`
	FixedFindings   int    `json:"fixedFindings"`
	ChangedFindings int    `json:"changedFindings"`
	LastError       string `json:"lastError,omitempty"`
}

func (r *rematchState) snapshot() RematchReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func (r *rematchState) set(rep RematchReport) {
	r.mu.Lock()
	r.last = rep
	r.mu.Unlock()
}

// triggerRematch asks the rematch loop for a run (coalesced: requests
// during a run cause one more run after it).
func (s *Server) triggerRematch() {
	select {
	case s.rematchCh <- struct{}{}:
	default:
	}
}

// rematchLoop watches the database index and re-matches on change or on
// request.
func (s *Server) rematchLoop(ctx context.Context) {
	var tick <-chan time.Time
	if s.cfg.DBWatchInterval > 0 {
		t := time.NewTicker(s.cfg.DBWatchInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		trigger := ""
		select {
		case <-ctx.Done():
			return
		case <-tick:
			changed, err := s.vdb.reloadIfChanged()
			if err != nil || !changed {
				continue
			}
			trigger = "database changed"
		case <-s.rematchCh:
			trigger = "requested"
		}
		rep, err := s.Rematch(ctx, trigger)
		if err != nil && ctx.Err() == nil {
			s.log.Error("re-match failed", "err", err)
		} else if err == nil {
			s.log.Info("re-match finished", "images", rep.Images, "skipped", rep.Skipped, "failed", rep.Failed,
				"new", rep.NewFindings, "fixed", rep.FixedFindings, "changed", rep.ChangedFindings, "duration_ms", rep.DurationMS)
		}
	}
}

// Rematch matches the stored SBOM of every image that must be kept
// current (seen within RematchWindow, or seen running, or every image with
// RematchAll) against the current database, and replaces their findings,
// which records new, fixed and changed findings as events. No image is
// pulled. It runs RematchWorkers images at a time.
func (s *Server) Rematch(ctx context.Context, trigger string) (RematchReport, error) {
	db := s.vdb.current()
	if db == nil {
		return RematchReport{}, errNoVulnDB
	}
	rep := RematchReport{Running: true, Trigger: trigger, StartedAt: time.Now().UTC(), DBBuilt: db.Status().Built}
	s.rematch.set(rep)
	start := time.Now()
	digests, skipped, err := s.rematchTargets(ctx)
	if err != nil {
		rep.Running, rep.LastError = false, err.Error()
		s.rematch.set(rep)
		return rep, err
	}
	rep.Skipped = skipped
	workers := s.cfg.RematchWorkers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var images, failed, noSBOM, newF, fixedF, changedF atomic.Int64
	var firstErr atomic.Value
	work := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				diff, err := s.rematchOne(ctx, d)
				switch {
				case errors.Is(err, store.ErrNotFound):
					noSBOM.Add(1) // pushed or seen, never scanned
				case err != nil:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					s.log.Warn("re-match image", "digest", d, "err", err)
				default:
					images.Add(1)
					newF.Add(int64(len(diff.New)))
					fixedF.Add(int64(len(diff.Fixed)))
					changedF.Add(int64(len(diff.Changed)))
				}
			}
		}()
	}
feed:
	for _, d := range digests {
		select {
		case work <- d:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	rep.Running = false
	rep.FinishedAt = time.Now().UTC()
	rep.DurationMS = time.Since(start).Milliseconds()
	rep.Images, rep.Failed = int(images.Load()), int(failed.Load())
	rep.Skipped += int(noSBOM.Load())
	rep.NewFindings, rep.FixedFindings, rep.ChangedFindings = int(newF.Load()), int(fixedF.Load()), int(changedF.Load())
	if e, ok := firstErr.Load().(string); ok {
		rep.LastError = e
	}
	s.rematch.set(rep)
	s.metrics.rematchDuration.Observe(time.Since(start).Seconds())
	s.metrics.rematchImages.Add(float64(rep.Images))
	return rep, ctx.Err()
}

// rematchOne re-matches one image from its stored SBOM.
func (s *Server) rematchOne(ctx context.Context, digest string) (*store.FindingsDiff, error) {
	sb, err := s.st.GetSBOM(ctx, digest)
	if err != nil {
		return nil, err
	}
	res := &scan.Result{Packages: sb.Packages, OS: sb.OS}
	if err := s.vdb.match(ctx, res); err != nil {
		return nil, err
	}
	return s.st.ReplaceFindings(ctx, digest, res.Findings, store.SourceRematch)
}

// rematchTargets lists the digests to re-match and counts the images
// left out.
func (s *Server) rematchTargets(ctx context.Context) (digests []string, skipped int, err error) {
	seen := map[string]bool{}
	add := func(f store.ImageFilter) (int, error) {
		p := store.Page{Limit: store.MaxLimit, Sort: "digest"}
		var total int
		for {
			ims, n, err := s.st.ListImages(ctx, f, p)
			if err != nil {
				return 0, err
			}
			total = n
			for i := range ims {
				if !seen[ims[i].Digest] {
					seen[ims[i].Digest] = true
					digests = append(digests, ims[i].Digest)
				}
			}
			p.Offset += len(ims)
			if len(ims) == 0 || p.Offset >= n {
				return total, nil
			}
		}
	}
	all, err := add(store.ImageFilter{SeenSince: s.recentCutoff()})
	if err != nil {
		return nil, 0, err
	}
	_ = all
	if !s.cfg.RematchAll {
		clusters, err := s.st.ListClusters(ctx)
		if err != nil {
			return nil, 0, err
		}
		for _, c := range clusters {
			if _, err := add(store.ImageFilter{Cluster: c.Name}); err != nil {
				return nil, 0, err
			}
		}
		_, total, err := s.st.ListImages(ctx, store.ImageFilter{}, store.Page{Limit: 1})
		if err != nil {
			return nil, 0, err
		}
		skipped = max(total-len(digests), 0)
	}
	return digests, skipped, nil
}

// recentCutoff is the oldest last-seen time of an image kept current
// (zero with RematchAll: every image).
func (s *Server) recentCutoff() time.Time {
	if s.cfg.RematchAll {
		return time.Time{}
	}
	return time.Now().Add(-s.cfg.RematchWindow)
}
