package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-security/bulwark/internal/store"
)

// scanRequestInput is the body of POST /api/v1/scans/requests.
type scanRequestInput struct {
	// Ref is registry/repository@sha256:… or registry/repository:tag.
	Ref string `json:"ref"`
}

// requestScan queues a scan of an image on behalf of an agent (the
// admission webhook, for `unscanned: scan`) through the same job path a
// registry push notification takes: a scan job keyed by digest, pulled with
// the credentials of the configured registry for the reference's host. While
// a job for the digest is pending or running, the existing job is returned.
func (s *Server) requestScan(c *call) error {
	var in scanRequestInput
	if err := c.decode(&in, 4<<10, true); err != nil {
		return err
	}
	c.audit("image/"+truncate(in.Ref, 300), map[string]any{"ref": truncate(in.Ref, 300)})
	host, repo, digest, tag, err := parseScanRef(in.Ref)
	if err != nil {
		return err
	}
	ctx := c.r.Context()
	regs, err := s.st.ListRegistries(ctx)
	if err != nil {
		return err
	}
	var reg *store.Registry
	for i := range regs {
		if registryHost(regs[i].URL) == host && repoAllowed(&regs[i], repo) {
			reg = &regs[i]
			break
		}
	}
	if reg == nil {
		return errorf(http.StatusConflict, "no_registry", "no configured registry serves %s/%s: add it (POST /api/v1/registries) so central can pull it", host, repo)
	}
	if digest == "" {
		if digest, err = s.resolveTag(ctx, reg.ID, host, repo, tag); err != nil {
			return errorf(http.StatusBadGateway, "resolve_failed", "resolve %s: %v", truncate(in.Ref, 300), err)
		}
	}
	id, created, err := s.enqueueScan(ctx, scanPayload{RegistryID: reg.ID, Repository: repo, Digest: digest, Tag: tag,
		TriggeredBy: c.actor()})
	if err != nil {
		return err
	}
	j, err := s.st.GetJob(ctx, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]any{"jobId": id, "created": created, "state": j.State, "digest": digest})
}

// resolveTag finds the digest a tag points at, with the registry's
// credentials (never the host's Docker configuration).
func (s *Server) resolveTag(ctx context.Context, registryID int64, host, repo, tag string) (string, error) {
	reg, err := s.st.GetRegistry(ctx, registryID)
	if err != nil {
		return "", err
	}
	var opts []name.Option
	if reg.Insecure || strings.HasPrefix(reg.URL, "http://") {
		opts = append(opts, name.Insecure)
	}
	t, err := name.NewTag(host+"/"+repo+":"+tag, opts...)
	if err != nil {
		return "", err
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ropts := []remote.Option{remote.WithContext(hctx), remote.WithAuthFromKeychain(anonymous{})}
	if reg.Credentials != nil && reg.Credentials.Username != "" {
		ropts = []remote.Option{remote.WithContext(hctx),
			remote.WithAuth(&authn.Basic{Username: reg.Credentials.Username, Password: reg.Credentials.Password})}
	}
	desc, err := remote.Head(t, ropts...)
	if err != nil {
		return "", fmt.Errorf("head %s: %w", t, err)
	}
	return desc.Digest.String(), nil
}

// parseScanRef checks a reference an agent asks to scan and splits it:
// registry host, repository, and a digest or a tag (one of them). Anything
// a push notification would not be accepted with is a 400.
func parseScanRef(s string) (host, repo, digest, tag string, err error) {
	if s == "" || len(s) > 512 {
		return "", "", "", "", badRequest("ref: want registry/repository@sha256:… or registry/repository:tag (at most 512 characters)")
	}
	ref, perr := name.ParseReference(s, name.StrictValidation)
	if perr != nil {
		return "", "", "", "", badRequest("ref %q: %v", truncate(s, 300), perr)
	}
	host, repo = ref.Context().RegistryStr(), ref.Context().RepositoryStr()
	if !repositoryPattern.MatchString(repo) || len(repo) > maxRepositoryLen {
		return "", "", "", "", badRequest("ref %q: malformed repository", truncate(s, 300))
	}
	switch r := ref.(type) {
	case name.Digest:
		digest = r.DigestStr()
		if !digestPattern.MatchString(digest) {
			return "", "", "", "", badRequest("ref %q: malformed digest", truncate(s, 300))
		}
	case name.Tag:
		tag = r.TagStr()
		if !tagPattern.MatchString(tag) {
			return "", "", "", "", badRequest("ref %q: malformed tag", truncate(s, 300))
		}
	default:
		return "", "", "", "", badRequest("ref %q: want a tag or a digest", truncate(s, 300))
	}
	return host, repo, digest, tag, nil
}
