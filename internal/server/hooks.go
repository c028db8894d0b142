package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
)

// Manifest media types a push notification is acted on for: image
// manifests and indexes (Docker and OCI). Layer and config blobs, and
// artifacts of other types, are ignored.
var manifestMediaTypes = map[string]bool{
	"application/vnd.docker.distribution.manifest.v2+json":      true,
	"application/vnd.docker.distribution.manifest.list.v2+json": true,
	"application/vnd.oci.image.manifest.v1+json":                true,
	"application/vnd.oci.image.index.v1+json":                   true,
}

// Bounds on what one notification may ask for.
const (
	maxEventsPerEnvelope = 100
	maxRepositoryLen     = 255
	maxTagLen            = 128
)

var (
	digestPattern     = regexp.MustCompile(`^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$`)
	repositoryPattern = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	tagPattern        = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
)

// --- webhook secrets ---

// secretCache maps webhook secrets to registries. Secrets are sealed in
// the store, so they are decrypted once per refresh, not per request; the
// cache is refreshed every ttl so that replicas see each other's changes,
// and at once after a change made through this replica.
type secretCache struct {
	st  *store.Store
	ttl time.Duration

	mu      sync.Mutex
	loaded  time.Time
	entries []secretEntry
}

type secretEntry struct {
	hash [32]byte // SHA-256 of the secret: compared in constant time
	reg  store.Registry
}

func newSecretCache(st *store.Store, ttl time.Duration) *secretCache {
	return &secretCache{st: st, ttl: ttl}
}

func (c *secretCache) invalidate() {
	c.mu.Lock()
	c.loaded = time.Time{}
	c.mu.Unlock()
}

// lookup finds the registry of kind whose webhook secret is secret (and
// whose name is name, when given).
func (c *secretCache) lookup(ctx context.Context, kind store.RegistryKind, name, secret string) (*store.Registry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.loaded) > c.ttl {
		regs, err := c.st.ListRegistries(ctx)
		if err != nil {
			return nil, err
		}
		var entries []secretEntry
		for _, r := range regs {
			if !r.HasCredentials || (r.Kind != store.RegistryDistribution && r.Kind != store.RegistryHarbor) {
				continue
			}
			full, err := c.st.GetRegistry(ctx, r.ID)
			if err != nil {
				return nil, err
			}
			if full.Credentials == nil || full.Credentials.WebhookSecret == "" {
				continue
			}
			entries = append(entries, secretEntry{hash: sha256.Sum256([]byte(full.Credentials.WebhookSecret)), reg: *full})
		}
		c.entries, c.loaded = entries, time.Now()
	}
	h := sha256.Sum256([]byte(secret))
	var found *store.Registry
	for i := range c.entries {
		e := &c.entries[i]
		// Every entry is compared, so timing says nothing about which.
		if subtle.ConstantTimeCompare(h[:], e.hash[:]) == 1 && e.reg.Kind == kind && (name == "" || e.reg.Name == name) {
			r := e.reg
			found = &r
		}
	}
	if found == nil {
		return nil, store.ErrUnauthorized
	}
	return found, nil
}

// hookSecret reads the shared secret of a notification: "Authorization:
// Bearer S" (how Distribution's endpoints.headers and Harbor's "auth
// header" are usually set) or a bare "Authorization: S".
func hookSecret(r *http.Request) string {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	return h
}

// authenticateHook finds the registry a notification comes from.
func (s *Server) authenticateHook(c *call, kind store.RegistryKind) (*store.Registry, error) {
	secret := hookSecret(c.r)
	if secret == "" || len(secret) > 512 {
		return nil, errorf(http.StatusUnauthorized, "unauthorized", "missing webhook secret (Authorization header)")
	}
	name := c.r.URL.Query().Get("registry")
	reg, err := s.secrets.lookup(c.r.Context(), kind, name, secret)
	if errors.Is(err, store.ErrUnauthorized) {
		return nil, errorf(http.StatusUnauthorized, "unauthorized", "the webhook secret matches no %s registry", kind)
	}
	return reg, err
}

// repoAllowed applies the registry's repository patterns (path.Match
// globs, e.g. "team/*"); none means all.
func repoAllowed(reg *store.Registry, repo string) bool {
	if len(reg.Repositories) == 0 {
		return true
	}
	for _, p := range reg.Repositories {
		if ok, _ := path.Match(p, repo); ok || p == repo {
			return true
		}
	}
	return false
}

// --- request batching ---

// hookRequest is one notification's events waiting for a commit.
type hookRequest struct {
	events []store.HookEvent
	reply  chan hookReply
}

type hookReply struct {
	res []store.HookAccepted
	err error
}

// hookBatcher commits the events of concurrent notifications together:
// it collects requests for up to a few milliseconds (or a full batch) and
// accepts them in one transaction, one commit for all, then answers each
// request. A registry pushing hundreds of images a second costs tens of
// commits, not hundreds.
type hookBatcher struct {
	st     *store.Store
	window time.Duration
	log    *slog.Logger
	after  func()
	in     chan *hookRequest
}

const (
	hookBatchMax  = 256
	hookBatchWait = 5 * time.Millisecond
)

func newHookBatcher(st *store.Store, window time.Duration, log *slog.Logger, after func()) *hookBatcher {
	return &hookBatcher{st: st, window: window, log: log, after: after, in: make(chan *hookRequest, hookBatchMax)}
}

// accept queues the events and waits for their commit.
func (b *hookBatcher) accept(ctx context.Context, events []store.HookEvent) ([]store.HookAccepted, error) {
	req := &hookRequest{events: events, reply: make(chan hookReply, 1)}
	select {
	case b.in <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Once queued, the commit happens whether or not the client waits:
	// the answer is lost, the events are not.
	r := <-req.reply
	return r.res, r.err
}

func (b *hookBatcher) run(ctx context.Context) {
	for {
		var batch []*hookRequest
		select {
		case <-ctx.Done():
			b.drain()
			return
		case r := <-b.in:
			batch = append(batch, r)
		}
		n := len(batch[0].events)
		timer := time.NewTimer(hookBatchWait)
	collect:
		for n < hookBatchMax {
			select {
			case r := <-b.in:
				batch = append(batch, r)
				n += len(r.events)
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		b.commit(ctx, batch)
	}
}

// drain answers requests queued at shutdown.
func (b *hookBatcher) drain() {
	for {
		select {
		case r := <-b.in:
			b.commit(context.Background(), []*hookRequest{r})
		default:
			return
		}
	}
}

func (b *hookBatcher) commit(ctx context.Context, batch []*hookRequest) {
	var all []store.HookEvent
	for _, r := range batch {
		all = append(all, r.events...)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	res, err := b.st.AcceptHookEvents(cctx, all, b.window)
	if err != nil {
		b.log.Error("accept hook events", "events", len(all), "err", err)
	}
	off := 0
	for _, r := range batch {
		var rep hookReply
		if err != nil {
			rep.err = err
		} else {
			rep.res = res[off : off+len(r.events)]
		}
		off += len(r.events)
		r.reply <- rep
	}
	if err == nil {
		b.after()
	}
}

// hookResponse answers an accepted notification.
type hookResponse struct {
	// Accepted counts events that asked for a scan; Jobs are their job
	// ids (an existing pending job of the same digest is reused).
	Accepted int     `json:"accepted"`
	Jobs     []int64 `json:"jobs"`
	// Ignored counts events that need nothing (pulls, blob pushes,
	// deletes, repositories not configured for scanning).
	Ignored int `json:"ignored"`
	// Replayed counts events already accepted (refused, nothing queued).
	Replayed int `json:"replayed"`
}

// acceptEvents commits events and writes the response: 202 when anything
// was new or ignored, 409 when every event was a replay.
func (s *Server) acceptEvents(c *call, source string, events []store.HookEvent, ignored int) error {
	resp := hookResponse{Ignored: ignored, Jobs: []int64{}}
	if len(events) > 0 {
		res, err := s.hooks.accept(c.r.Context(), events)
		if err != nil {
			s.metrics.hookEvents.WithLabelValues(source, "error").Add(float64(len(events)))
			return err
		}
		for _, a := range res {
			if a.Replayed {
				resp.Replayed++
				continue
			}
			resp.Accepted++
			for _, j := range a.Jobs {
				resp.Jobs = append(resp.Jobs, j.ID)
			}
		}
	}
	s.metrics.hookEvents.WithLabelValues(source, "accepted").Add(float64(resp.Accepted))
	s.metrics.hookEvents.WithLabelValues(source, "ignored").Add(float64(resp.Ignored))
	s.metrics.hookEvents.WithLabelValues(source, "replayed").Add(float64(resp.Replayed))
	if resp.Replayed > 0 && resp.Accepted == 0 && resp.Ignored == 0 {
		return errorf(http.StatusConflict, "replayed", "notification already accepted (event id seen within the last %s)", s.cfg.HookReplayWindow)
	}
	return c.JSON(http.StatusAccepted, resp)
}

// rejectHook counts a refused notification and returns err.
func (s *Server) rejectHook(source string, err error) error {
	s.metrics.hookEvents.WithLabelValues(source, "rejected").Inc()
	return err
}

// checkHookContentType accepts JSON (and the sender's own JSON types).
func checkHookContentType(r *http.Request, mediaTypes ...string) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	ok := err == nil && mt == "application/json"
	for _, m := range mediaTypes {
		ok = ok || mt == m
	}
	if !ok {
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "unexpected Content-Type %q", ct)
	}
	return nil
}

// hookBody is the request body bounded by MaxHookBytes.
func (s *Server) hookBody(c *call) io.Reader {
	if c.r.ContentLength > s.cfg.MaxHookBytes {
		return errReader{&http.MaxBytesError{Limit: s.cfg.MaxHookBytes}}
	}
	return http.MaxBytesReader(c.w, c.r.Body, s.cfg.MaxHookBytes)
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// decodeHook decodes exactly one JSON value.
func decodeHook(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("malformed notification: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("malformed notification: trailing data")
	}
	return nil
}

// --- CNCF Distribution ---

// distributionEnvelope is Distribution's notification body
// (application/vnd.docker.distribution.events.v2+json).
type distributionEnvelope struct {
	Events *[]distributionEvent `json:"events"`
}

type distributionEvent struct {
	ID        string    `json:"id"`
	Timestamp time.Time `json:"timestamp"`
	Action    string    `json:"action"`
	Target    struct {
		MediaType  string `json:"mediaType"`
		Digest     string `json:"digest"`
		Size       int64  `json:"size"`
		Repository string `json:"repository"`
		URL        string `json:"url"`
		Tag        string `json:"tag"`
	} `json:"target"`
	Request struct {
		ID   string `json:"id"`
		Host string `json:"host"`
	} `json:"request"`
	Actor struct {
		Name string `json:"name"`
	} `json:"actor"`
}

// hookDistribution receives CNCF Distribution notifications: manifest
// pushes become scan jobs keyed by digest.
func (s *Server) hookDistribution(c *call) error {
	const source = "distribution"
	reg, err := s.authenticateHook(c, store.RegistryDistribution)
	if err != nil {
		return s.rejectHook(source, err)
	}
	if err := checkHookContentType(c.r, "application/vnd.docker.distribution.events.v2+json"); err != nil {
		return s.rejectHook(source, err)
	}
	events, ignored, err := s.distributionEvents(reg, s.hookBody(c))
	if err != nil {
		return s.rejectHook(source, err)
	}
	return s.acceptEvents(c, source, events, ignored)
}

// distributionEvents parses and validates a notification envelope from
// reg: the scan jobs it asks for, and how many events need nothing.
func (s *Server) distributionEvents(reg *store.Registry, body io.Reader) ([]store.HookEvent, int, error) {
	var env distributionEnvelope
	if err := decodeHook(body, &env); err != nil {
		return nil, 0, err
	}
	if env.Events == nil {
		return nil, 0, badRequest("malformed notification: no \"events\" array")
	}
	if len(*env.Events) > maxEventsPerEnvelope {
		return nil, 0, badRequest("more than %d events in one notification", maxEventsPerEnvelope)
	}
	var events []store.HookEvent
	ignored := 0
	for i, e := range *env.Events {
		if e.ID == "" || len(e.ID) > 256 {
			return nil, 0, badRequest("event %d: missing or oversized id", i)
		}
		if e.Action != "push" || !manifestMediaTypes[e.Target.MediaType] {
			ignored++
			continue
		}
		if err := validateTarget(e.Target.Digest, e.Target.Repository, e.Target.Tag); err != nil {
			return nil, 0, fmt.Errorf("event %d: %w", i, err)
		}
		if !repoAllowed(reg, e.Target.Repository) {
			ignored++
			continue
		}
		j, err := s.scanJob(scanPayload{RegistryID: reg.ID, Repository: e.Target.Repository, Digest: e.Target.Digest,
			Tag: e.Target.Tag, TriggeredBy: "webhook:" + reg.Name, EventID: e.ID})
		if err != nil {
			return nil, 0, err
		}
		events = append(events, store.HookEvent{Source: fmt.Sprintf("distribution/%d", reg.ID), EventID: e.ID,
			Jobs: []store.NewJob{j}})
	}
	return events, ignored, nil
}

func validateTarget(digest, repo, tag string) error {
	if !digestPattern.MatchString(digest) {
		return badRequest("digest %q is not a sha256/sha512 digest", truncate(digest, 80))
	}
	if len(repo) == 0 || len(repo) > maxRepositoryLen || !repositoryPattern.MatchString(repo) {
		return badRequest("repository %q is not a valid repository name", truncate(repo, 80))
	}
	if tag != "" && (len(tag) > maxTagLen || !tagPattern.MatchString(tag)) {
		return badRequest("tag %q is not a valid tag", truncate(tag, 80))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// --- Harbor ---

// harborPayload is Harbor's default webhook payload.
type harborPayload struct {
	Type      string `json:"type"`
	OccurAt   int64  `json:"occur_at"`
	Operator  string `json:"operator"`
	EventData *struct {
		Resources []struct {
			Digest      string `json:"digest"`
			Tag         string `json:"tag"`
			ResourceURL string `json:"resource_url"`
		} `json:"resources"`
		Repository struct {
			Name         string `json:"name"`
			Namespace    string `json:"namespace"`
			RepoFullName string `json:"repo_full_name"`
		} `json:"repository"`
	} `json:"event_data"`
}

// hookHarbor receives Harbor's PUSH_ARTIFACT webhooks.
func (s *Server) hookHarbor(c *call) error {
	const source = "harbor"
	reg, err := s.authenticateHook(c, store.RegistryHarbor)
	if err != nil {
		return s.rejectHook(source, err)
	}
	if err := checkHookContentType(c.r); err != nil {
		return s.rejectHook(source, err)
	}
	events, ignored, err := s.harborEvents(reg, s.hookBody(c))
	if err != nil {
		return s.rejectHook(source, err)
	}
	return s.acceptEvents(c, source, events, ignored)
}

// harborEvents parses and validates a Harbor webhook from reg. Harbor's
// payload carries no event id, so a delivery is identified by the hash
// of what it says (type, time, repository, digests, tags): a resent body
// is a replay.
func (s *Server) harborEvents(reg *store.Registry, body io.Reader) ([]store.HookEvent, int, error) {
	var p harborPayload
	if err := decodeHook(body, &p); err != nil {
		return nil, 0, err
	}
	if p.Type == "" || p.EventData == nil {
		return nil, 0, badRequest("malformed notification: no \"type\" or \"event_data\"")
	}
	if p.Type != "PUSH_ARTIFACT" {
		return nil, 1, nil
	}
	repo := p.EventData.Repository.RepoFullName
	if repo == "" && p.EventData.Repository.Namespace != "" {
		repo = p.EventData.Repository.Namespace + "/" + p.EventData.Repository.Name
	}
	if len(p.EventData.Resources) == 0 || len(p.EventData.Resources) > maxEventsPerEnvelope {
		return nil, 0, badRequest("a push needs 1-%d resources", maxEventsPerEnvelope)
	}
	if p.OccurAt <= 0 {
		return nil, 0, badRequest("malformed notification: no occur_at")
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%s", p.Type, p.OccurAt, repo)
	for i, r := range p.EventData.Resources {
		if err := validateTarget(r.Digest, repo, r.Tag); err != nil {
			return nil, 0, fmt.Errorf("resource %d: %w", i, err)
		}
		fmt.Fprintf(h, "\x00%s\x00%s", r.Digest, r.Tag)
	}
	if !repoAllowed(reg, repo) {
		return nil, 1, nil
	}
	id := hex.EncodeToString(h.Sum(nil))
	var jobs []store.NewJob
	for _, r := range p.EventData.Resources {
		j, err := s.scanJob(scanPayload{RegistryID: reg.ID, Repository: repo, Digest: r.Digest, Tag: r.Tag,
			TriggeredBy: "webhook:" + reg.Name, EventID: id})
		if err != nil {
			return nil, 0, err
		}
		jobs = append(jobs, j)
	}
	return []store.HookEvent{{Source: fmt.Sprintf("harbor/%d", reg.ID), EventID: id, Jobs: jobs}}, 0, nil
}
