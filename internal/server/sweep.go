package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-security/bulwark/internal/store"
)

// remoteOptions are go-containerregistry options for a stored registry.
func remoteOptions(ctx context.Context, r *store.Registry) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithUserAgent("bulwark-server")}
	if r.Credentials != nil && (r.Credentials.Username != "" || r.Credentials.Password != "") {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.Credentials.Username, Password: r.Credentials.Password}))
	} else {
		opts = append(opts, remote.WithAuth(authn.Anonymous))
	}
	return opts
}

func nameOptions(r *store.Registry) []name.Option {
	if r.Insecure || strings.HasPrefix(r.URL, "http://") {
		return []name.Option{name.Insecure}
	}
	return nil
}

// connectionTest is what POST /registries/{id}/test answers.
type connectionTest struct {
	OK bool `json:"ok"`
	// Repositories are the first repositories of the catalog, or the
	// repository whose tags were listed.
	Repositories []string `json:"repositories,omitempty"`
	Tags         []string `json:"tags,omitempty"`
	Error        string   `json:"error,omitempty"`
	DurationMS   int64    `json:"durationMs"`
}

// testConnection lists the registry's catalog (or, for registries that
// refuse it, the tags of the first literal configured repository).
func testConnection(ctx context.Context, r *store.Registry) connectionTest {
	start := time.Now()
	out := connectionTest{}
	defer func() { out.DurationMS = time.Since(start).Milliseconds() }()
	reg, err := name.NewRegistry(registryHost(r.URL), nameOptions(r)...)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	repos, err := remote.CatalogPage(reg, "", 20, remoteOptions(ctx, r)...)
	if err == nil {
		out.OK, out.Repositories = true, repos
		return out
	}
	for _, p := range r.Repositories {
		if strings.ContainsAny(p, "*?[") {
			continue
		}
		repo, rerr := name.NewRepository(registryHost(r.URL)+"/"+p, nameOptions(r)...)
		if rerr != nil {
			continue
		}
		tags, terr := remote.List(repo, remoteOptions(ctx, r)...)
		if terr == nil {
			out.OK, out.Repositories, out.Tags = true, []string{p}, first(tags, 20)
			return out
		}
		err = terr
	}
	out.Error = err.Error()
	return out
}

func first[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// sweepLoop enqueues a sweep of every registry due for one. Sweeps are
// jobs keyed by registry, so replicas running this loop together do not
// sweep a registry twice at once.
func (s *Server) sweepLoop(ctx context.Context) {
	t := time.NewTicker(min(s.cfg.SweepInterval, time.Minute))
	defer t.Stop()
	for {
		regs, err := s.st.ListRegistries(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("sweep: list registries", "err", err)
		}
		for _, r := range regs {
			if r.Kind != store.RegistryGeneric && !s.cfg.SweepAll {
				continue
			}
			if time.Since(r.LastSweepAt) < s.cfg.SweepInterval {
				continue
			}
			if _, _, err := s.enqueueSweep(ctx, r.ID, "sweep:"+r.Name); err != nil && ctx.Err() == nil {
				s.log.Warn("sweep: enqueue", "registry", r.Name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runSweep lists the registry's repositories and tags, resolves each tag
// to its digest and enqueues a scan of every digest not scanned yet.
func (s *Server) runSweep(ctx context.Context, j *store.Job) error {
	var p sweepPayload
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return fmt.Errorf("sweep job payload: %w", err)
	}
	r, err := s.st.GetRegistry(ctx, p.RegistryID)
	if err != nil {
		return fmt.Errorf("sweep registry %d: %w", p.RegistryID, err)
	}
	queued, sweepErr := s.sweep(ctx, r)
	msg := ""
	if sweepErr != nil {
		msg = sweepErr.Error()
	}
	if err := s.st.RecordSweep(ctx, r.ID, time.Now(), msg); err != nil {
		return err
	}
	s.log.Info("registry swept", "registry", r.Name, "queued", queued, "err", sweepErr)
	if sweepErr != nil {
		return sweepErr
	}
	return s.st.Complete(ctx, j.Lease)
}

func (s *Server) sweep(ctx context.Context, r *store.Registry) (int, error) {
	host := registryHost(r.URL)
	reg, err := name.NewRegistry(host, nameOptions(r)...)
	if err != nil {
		return 0, err
	}
	ropts := remoteOptions(ctx, r)
	repos, err := remote.Catalog(ctx, reg, ropts...)
	if err != nil {
		// Registries that refuse the catalog are swept through their
		// literal configured repositories.
		repos = nil
		for _, p := range r.Repositories {
			if !strings.ContainsAny(p, "*?[") {
				repos = append(repos, p)
			}
		}
		if len(repos) == 0 {
			return 0, fmt.Errorf("list catalog of %s: %w", host, err)
		}
	}
	var jobs []store.NewJob
	budget := s.cfg.SweepMaxTags
	for _, repoName := range repos {
		if !repoAllowed(r, repoName) {
			continue
		}
		repo, err := name.NewRepository(host+"/"+repoName, nameOptions(r)...)
		if err != nil {
			continue
		}
		tags, err := remote.List(repo, ropts...)
		if err != nil {
			return 0, fmt.Errorf("list tags of %s: %w", repo, err)
		}
		for _, tag := range tags {
			if budget <= 0 {
				break
			}
			budget--
			desc, err := remote.Head(repo.Tag(tag), ropts...)
			if err != nil {
				s.log.Warn("sweep: resolve tag", "ref", repo.Tag(tag).String(), "err", err)
				continue
			}
			d := desc.Digest.String()
			ref := store.ImageRef{Registry: host, Repository: repoName, Tag: tag}
			if im, err := s.st.GetImage(ctx, d); err == nil && !im.LastScannedAt.IsZero() {
				// Known and scanned: only note where it was seen.
				if err := s.st.RecordImageRef(ctx, d, ref, time.Now()); err != nil {
					return 0, err
				}
				continue
			} else if err != nil && !errors.Is(err, store.ErrNotFound) {
				return 0, err
			}
			j, err := s.scanJob(scanPayload{RegistryID: r.ID, Repository: repoName, Digest: d, Tag: tag,
				TriggeredBy: "sweep:" + r.Name})
			if err != nil {
				return 0, err
			}
			jobs = append(jobs, j)
		}
	}
	if len(jobs) == 0 {
		return 0, nil
	}
	res, err := s.st.EnqueueMany(ctx, jobs)
	if err != nil {
		return 0, err
	}
	s.nudge()
	n := 0
	for _, e := range res {
		if e.Created {
			n++
		}
	}
	return n, nil
}
