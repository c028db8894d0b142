package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/report"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// --- the shapes most handlers share ---

// listPage answers a paged list: the page, then the filter (so a bad page
// is reported first), the store call and the JSON list.
func listPage[F, T, J any](c *call, filter func(*call) (F, error),
	list func(context.Context, F, store.Page) ([]T, int, error), toJSON func(*T) J) error {
	p, err := c.page()
	if err != nil {
		return err
	}
	f, err := filter(c)
	if err != nil {
		return err
	}
	items, total, err := list(c.r.Context(), f, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newList(mapSlice(items, toJSON), total, p))
}

// listAll answers an unpaged list (the store returns every row).
func listAll[T, J any](c *call, list func(context.Context) ([]T, error), toJSON func(*T) J) error {
	items, err := list(c.r.Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"items": mapSlice(items, toJSON)})
}

// getByID answers one row named by the {id} path parameter.
func getByID[T, J any](c *call, get func(context.Context, int64) (*T, error), toJSON func(*T) J) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	v, err := get(c.r.Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toJSON(v))
}

// noContent answers 204 with no body.
func (c *call) noContent() error {
	c.w.WriteHeader(http.StatusNoContent)
	c.status = http.StatusNoContent
	return nil
}

// --- operations ---

func (s *Server) healthz(c *call) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when the store answers and a vulnerability database
// is loaded, so a load balancer sends no traffic to a replica that would
// store scans without findings.
func (s *Server) readyz(c *call) error {
	ctx, cancel := context.WithTimeout(c.r.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{"store": "ok", "vulndb": "ok"}
	ok := true
	if err := s.st.Ping(ctx); err != nil {
		checks["store"], ok = err.Error(), false
	}
	if !s.vdb.loaded() {
		checks["vulndb"], ok = "not loaded: "+s.vdb.lastError(), false
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	return c.JSON(status, map[string]any{"ready": ok, "checks": checks})
}

func (s *Server) metricsEndpoint(c *call) error {
	s.metrics.handler().ServeHTTP(c.w, c.r)
	c.status = http.StatusOK
	return nil
}

func (s *Server) openapi(c *call) error {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Cache-Control", "no-cache")
	c.w.WriteHeader(http.StatusOK)
	_, err := c.w.Write(openAPIDocument)
	return err
}

func (s *Server) me(c *call) error {
	return c.JSON(http.StatusOK, map[string]any{"token": toToken(c.who), "version": s.cfg.Version})
}

// --- images ---

func (s *Server) listImages(c *call) error { return listPage(c, imageFilter, s.st.ListImages, toImage) }

func imageFilter(c *call) (store.ImageFilter, error) {
	q := c.r.URL.Query()
	var err error
	f := store.ImageFilter{Query: q.Get("q"), Registry: q.Get("registry"), Repository: q.Get("repository"), Tag: q.Get("tag"),
		Cluster: q.Get("cluster"), Namespace: q.Get("namespace"), Package: q.Get("package"),
		PackageEcosystem: q.Get("ecosystem"), PackageVersion: q.Get("version")}
	if len(f.Query) > 256 {
		return f, badRequest("q longer than 256 characters")
	}
	if f.MinSeverity, f.KEV, f.Fixable, err = c.riskParams(); err != nil {
		return f, err
	}
	if f.SeenSince, err = c.timeParam("seen_since"); err != nil {
		return f, err
	}
	return f, nil
}

// riskParams reads the severity, kev and fixable parameters that images
// and findings are both filtered by, in that order.
func (c *call) riskParams() (sev vulndb.Severity, kev, fixable bool, err error) {
	if sev, err = severityParam(c.r.URL.Query().Get("severity")); err != nil {
		return sev, kev, fixable, err
	}
	if kev, err = c.boolParam("kev"); err != nil {
		return sev, kev, fixable, err
	}
	fixable, err = c.boolParam("fixable")
	return sev, kev, fixable, err
}

func severityParam(v string) (vulndb.Severity, error) {
	if v == "" {
		return vulndb.SeverityUnknown, nil
	}
	sev, err := vulndb.ParseSeverity(v)
	if err != nil {
		return 0, badRequest("severity must be low, medium, high or critical")
	}
	return sev, nil
}

func (s *Server) getImage(c *call) error {
	im, err := s.st.GetImage(c.r.Context(), c.r.PathValue("digest"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toImage(im))
}

func (s *Server) deleteImage(c *call) error {
	d := c.r.PathValue("digest")
	c.audit("image/"+d, nil)
	if err := s.st.DeleteImage(c.r.Context(), d); err != nil {
		return err
	}
	return c.noContent()
}

type sbomJSON struct {
	Digest    string    `json:"digest"`
	OS        any       `json:"os,omitempty"`
	Packages  any       `json:"packages"`
	Tool      scan.Tool `json:"tool"`
	CreatedAt time.Time `json:"createdAt"`
}

// getSBOM returns the stored inventory: Bulwark's JSON by default, or a
// CycloneDX or SPDX document (format=cyclonedx|spdx).
func (s *Server) getSBOM(c *call) error {
	sb, err := s.st.GetSBOM(c.r.Context(), c.r.PathValue("digest"))
	if err != nil {
		return err
	}
	switch format := c.r.URL.Query().Get("format"); format {
	case "", "json":
		return c.JSON(http.StatusOK, sbomJSON{sb.Digest, sb.OS, sb.Packages, sb.Tool, sb.CreatedAt})
	case "cyclonedx", "spdx":
		res := &scan.Result{SchemaVersion: scan.SchemaVersion, Tool: sb.Tool, OS: sb.OS, Packages: sb.Packages,
			Target: scan.Target{Kind: "image", Name: sb.Digest, Digest: sb.Digest}, StartedAt: sb.CreatedAt,
			FinishedAt: sb.CreatedAt, Findings: []scan.Finding{}}
		var buf bytes.Buffer
		if err := report.Write(c.r.Context(), &buf, res, report.Format(format), report.Options{}); err != nil {
			return fmt.Errorf("render %s sbom: %w", format, err)
		}
		c.w.Header().Set("Content-Type", "application/json")
		c.w.WriteHeader(http.StatusOK)
		c.status = http.StatusOK
		_, err := c.w.Write(buf.Bytes())
		return err
	default:
		return badRequest("format must be json, cyclonedx or spdx")
	}
}

func (s *Server) imageFindings(c *call) error {
	d := c.r.PathValue("digest")
	if _, err := s.st.GetImage(c.r.Context(), d); err != nil {
		return err
	}
	return s.findings(c, d)
}

func (s *Server) listFindings(c *call) error { return s.findings(c, c.r.URL.Query().Get("image")) }

func (s *Server) findings(c *call, digest string) error {
	return listPage(c, func(c *call) (store.FindingFilter, error) {
		q := c.r.URL.Query()
		var err error
		f := store.FindingFilter{ImageDigest: digest, VulnID: q.Get("vuln"), Package: q.Get("package"), Ecosystem: q.Get("ecosystem")}
		if f.MinSeverity, f.KEV, f.Fixable, err = c.riskParams(); err != nil {
			return f, err
		}
		if f.IncludeResolved, err = c.boolParam("include_resolved"); err != nil {
			return f, err
		}
		return f, nil
	}, s.st.ListFindings, toFinding)
}

func (s *Server) listEvents(c *call) error {
	return listPage(c, eventFilter, s.st.ListFindingEvents, toEvent)
}

func eventFilter(c *call) (store.EventFilter, error) {
	q := c.r.URL.Query()
	var err error
	f := store.EventFilter{ImageDigest: q.Get("image"), Kind: store.FindingEventKind(q.Get("kind")),
		Source: store.FindingEventSource(q.Get("source")), VulnID: q.Get("vuln")}
	if f.Since, err = c.timeParam("since"); err != nil {
		return f, err
	}
	if v := q.Get("after_id"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &f.AfterID); err != nil || f.AfterID < 0 {
			return f, badRequest("after_id must be a non-negative integer")
		}
	}
	return f, nil
}

// vulnImage is one image a vulnerability affects, with the packages.
type vulnImage struct {
	Digest   string        `json:"digest"`
	Findings []findingJSON `json:"findings"`
}

type vulnJSON struct {
	ID         string          `json:"id"`
	Aliases    []string        `json:"aliases,omitempty"`
	Summary    string          `json:"summary,omitempty"`
	Severity   vulndb.Severity `json:"severity"`
	CVSSScore  float64         `json:"cvssScore,omitempty"`
	KEV        bool            `json:"kev"`
	ImageCount int             `json:"imageCount"`
	Images     []vulnImage     `json:"images"`
	// Truncated is set when more findings exist than were read.
	Truncated bool `json:"truncated,omitempty"`
}

// maxVulnFindings bounds the findings one vulnerability page reads.
const maxVulnFindings = 10_000

// getVulnerability answers "which images does this vulnerability affect",
// by its id or any alias (a CVE matches the GHSA/GO- record it aliases).
func (s *Server) getVulnerability(c *call) error {
	id := c.r.PathValue("id")
	if id == "" || len(id) > 128 {
		return badRequest("vulnerability id must be 1-128 characters")
	}
	out := vulnJSON{ID: id, Images: []vulnImage{}}
	byImage := map[string]int{}
	for off := 0; off < maxVulnFindings; off += store.MaxLimit {
		fs, total, err := s.st.ListFindings(c.r.Context(), store.FindingFilter{VulnID: id},
			store.Page{Limit: store.MaxLimit, Offset: off, Sort: "image"})
		if err != nil {
			return err
		}
		if total == 0 {
			return errorf(http.StatusNotFound, "not_found", "no stored image is affected by %s", id)
		}
		for i := range fs {
			f := &fs[i]
			if out.Summary == "" {
				out.Summary = f.Summary
			}
			if f.VulnID == id || out.Aliases == nil {
				out.Aliases = f.Aliases
				if f.VulnID != id && !slices.Contains(out.Aliases, f.VulnID) {
					out.Aliases = append([]string{f.VulnID}, out.Aliases...)
				}
			}
			out.Severity = max(out.Severity, f.Severity)
			out.CVSSScore = max(out.CVSSScore, f.CVSSScore)
			out.KEV = out.KEV || f.KEV
			j, ok := byImage[f.ImageDigest]
			if !ok {
				j = len(out.Images)
				byImage[f.ImageDigest] = j
				out.Images = append(out.Images, vulnImage{Digest: f.ImageDigest})
			}
			out.Images[j].Findings = append(out.Images[j].Findings, toFinding(f))
		}
		if off+len(fs) >= total {
			break
		}
		if off+store.MaxLimit >= maxVulnFindings {
			out.Truncated = true
		}
	}
	out.Aliases = slices.DeleteFunc(slices.Clone(out.Aliases), func(a string) bool { return a == id })
	out.ImageCount = len(out.Images)
	return c.JSON(http.StatusOK, out)
}

// --- scans ---

func (s *Server) listScans(c *call) error { return listPage(c, scanFilter, s.st.ListScans, toScan) }

func scanFilter(c *call) (store.ScanFilter, error) {
	q := c.r.URL.Query()
	var err error
	f := store.ScanFilter{ImageDigest: q.Get("image"), Status: store.ScanStatus(q.Get("status")), TriggeredBy: q.Get("triggered_by")}
	f.Since, err = c.timeParam("since")
	return f, err
}

func (s *Server) getScan(c *call) error { return getByID(c, s.st.GetScan, toScan) }

// uploadResponse is what POST /api/v1/scans answers.
type uploadResponse struct {
	ScanID        int64      `json:"scanId"`
	ImageDigest   string     `json:"imageDigest"`
	FindingCount  int        `json:"findingCount"`
	NewFindings   int        `json:"newFindings"`
	FixedFindings int        `json:"fixedFindings"`
	Counts        countsJSON `json:"counts"`
}

// uploadScan stores a scan.Result made by `bulwark scan image` in CI.
// Only image scans are stored (they have a digest to file them under).
func (s *Server) uploadScan(c *call) error {
	var res scan.Result
	if err := c.decode(&res, s.cfg.MaxUploadBytes, false); err != nil {
		return err
	}
	if res.SchemaVersion < 1 || res.SchemaVersion > scan.SchemaVersion {
		return badRequest("schemaVersion %d is not supported (this server reads 1-%d)", res.SchemaVersion, scan.SchemaVersion)
	}
	if res.Target.Kind != "image" {
		return badRequest("only image scans can be uploaded (target kind %q)", res.Target.Kind)
	}
	if len(res.Packages) > 500_000 || len(res.Findings) > 1_000_000 {
		return badRequest("too many packages or findings")
	}
	fileUnderImageID(&res)
	for i := range res.Findings {
		if res.Findings[i].Vulnerability == nil {
			return badRequest("finding %d has no vulnerability", i)
		}
	}
	c.audit("image/"+res.Target.Digest, map[string]any{"digest": res.Target.Digest, "name": res.Target.Name,
		"packages": len(res.Packages), "findings": len(res.Findings)})
	var refs []store.ImageRef
	if name := res.Target.Name; name != "" && !strings.Contains(strings.SplitN(name, "/", 2)[0], "archive:") &&
		!strings.HasPrefix(name, "oci-layout:") {
		if r, err := store.ParseImageRef(name); err == nil {
			refs = append(refs, r)
		}
	}
	saved, err := s.st.SaveScan(c.r.Context(), &res, store.ScanMeta{TriggeredBy: "ci:" + c.who.Name, Refs: refs})
	if err != nil {
		return err
	}
	s.metrics.scansStored.WithLabelValues("upload").Inc()
	return c.JSON(http.StatusCreated, uploadResponse{ScanID: saved.ScanID, ImageDigest: res.Target.Digest,
		FindingCount: saved.Diff.Counts.Total(), NewFindings: len(saved.Diff.New), FixedFindings: len(saved.Diff.Fixed),
		Counts: toCounts(saved.Diff.Counts)})
}

// --- registries ---

func (s *Server) listRegistries(c *call) error { return listAll(c, s.st.ListRegistries, toRegistry) }

func (s *Server) getRegistry(c *call) error { return getByID(c, s.st.GetRegistry, toRegistry) }

// apply copies the input onto r; credentials only where given.
func (in *registryInput) apply(r *store.Registry) error {
	if len(in.Name) > 128 || len(in.URL) > 2048 || len(in.Repositories) > 1000 {
		return badRequest("name (128), url (2048) or repositories (1000) too long")
	}
	u, err := url.Parse(in.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.User != nil {
		return badRequest("url must be http(s)://host[:port] with no path, query or user")
	}
	if u.Scheme == "http" && !in.Insecure {
		return badRequest("an http:// registry URL needs \"insecure\": true")
	}
	r.Name, r.URL, r.Kind, r.Repositories, r.Insecure = in.Name, strings.TrimSuffix(in.URL, "/"), store.RegistryKind(in.Kind), in.Repositories, in.Insecure
	if in.Username == nil && in.Password == nil && in.WebhookSecret == nil {
		return nil
	}
	cr := store.Credentials{}
	if r.Credentials != nil {
		cr = *r.Credentials
	}
	if in.Username != nil {
		cr.Username = *in.Username
	}
	if in.Password != nil {
		cr.Password = *in.Password
	}
	if in.WebhookSecret != nil {
		if *in.WebhookSecret != "" && len(*in.WebhookSecret) < 16 {
			return badRequest("webhookSecret must be at least 16 characters")
		}
		cr.WebhookSecret = *in.WebhookSecret
	}
	r.Credentials = &cr
	if cr == (store.Credentials{}) {
		r.Credentials = nil
	}
	return nil
}

func (in *registryInput) auditDetails() map[string]any {
	return map[string]any{"name": in.Name, "url": in.URL, "kind": in.Kind, "repositories": in.Repositories,
		"insecure": in.Insecure, "setUsername": in.Username != nil, "setPassword": in.Password != nil,
		"setWebhookSecret": in.WebhookSecret != nil}
}

func (s *Server) createRegistry(c *call) error {
	var in registryInput
	if err := c.decode(&in, 64<<10, true); err != nil {
		return err
	}
	c.audit("registry/"+in.Name, in.auditDetails())
	var r store.Registry
	if err := in.apply(&r); err != nil {
		return err
	}
	created, err := s.st.CreateRegistry(c.r.Context(), r)
	if err != nil {
		return err
	}
	s.secrets.invalidate()
	c.audit(fmt.Sprintf("registry/%d", created.ID), in.auditDetails())
	return c.JSON(http.StatusCreated, toRegistry(created))
}

func (s *Server) updateRegistry(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("registry/%d", id), nil)
	var in registryInput
	if err := c.decode(&in, 64<<10, true); err != nil {
		return err
	}
	c.audit(fmt.Sprintf("registry/%d", id), in.auditDetails())
	r, err := s.st.GetRegistry(c.r.Context(), id)
	if err != nil {
		return err
	}
	if err := in.apply(r); err != nil {
		return err
	}
	if err := s.st.UpdateRegistry(c.r.Context(), *r); err != nil {
		return err
	}
	s.secrets.invalidate()
	r, err = s.st.GetRegistry(c.r.Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toRegistry(r))
}

func (s *Server) deleteRegistry(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("registry/%d", id), nil)
	if err := s.st.DeleteRegistry(c.r.Context(), id); err != nil {
		return err
	}
	s.secrets.invalidate()
	return c.noContent()
}

// testRegistry lists repositories (the catalog) or, when the registry
// refuses the catalog, the tags of its first configured repository — the
// same calls a sweep makes, with the stored credentials.
func (s *Server) testRegistry(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("registry/%d", id), nil)
	r, err := s.st.GetRegistry(c.r.Context(), id)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), 20*time.Second)
	defer cancel()
	res := testConnection(ctx, r)
	return c.JSON(http.StatusOK, res)
}

func (s *Server) sweepRegistryNow(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("registry/%d", id), nil)
	if _, err := s.st.GetRegistry(c.r.Context(), id); err != nil {
		return err
	}
	jobID, created, err := s.enqueueSweep(c.r.Context(), id, "user:"+c.actor())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]any{"jobId": jobID, "created": created})
}

// --- jobs ---

func (s *Server) listJobs(c *call) error {
	return listPage(c, func(c *call) (store.JobFilter, error) {
		q := c.r.URL.Query()
		return store.JobFilter{State: store.JobState(q.Get("state")), Kind: q.Get("kind"), Key: q.Get("key")}, nil
	}, s.st.ListJobs, toJob)
}

func (s *Server) getJob(c *call) error { return getByID(c, s.st.GetJob, toJob) }

// retryJob queues a finished (done or failed) job again as a new job with
// the same kind, key and payload; the old one stays as history.
func (s *Server) retryJob(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("job/%d", id), nil)
	j, err := s.st.GetJob(c.r.Context(), id)
	if err != nil {
		return err
	}
	if j.State == store.JobPending || j.State == store.JobRunning {
		return errorf(http.StatusConflict, "conflict", "job %d is %s; only done or failed jobs can be retried", id, j.State)
	}
	newID, _, err := s.st.Enqueue(c.r.Context(), store.NewJob{Kind: j.Kind, Key: j.Key, Payload: j.Payload,
		MaxAttempts: j.MaxAttempts})
	if err != nil {
		return err
	}
	s.nudge()
	nj, err := s.st.GetJob(c.r.Context(), newID)
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("job/%d", id), map[string]any{"newJob": newID})
	return c.JSON(http.StatusCreated, toJob(nj))
}

// rescanImage queues a scan of an image from the registry it was last
// seen in (one central knows).
func (s *Server) rescanImage(c *call) error {
	d := c.r.PathValue("digest")
	c.audit("image/"+d, nil)
	im, err := s.st.GetImage(c.r.Context(), d)
	if err != nil {
		return err
	}
	regs, err := s.st.ListRegistries(c.r.Context())
	if err != nil {
		return err
	}
	// The most recently seen reference whose registry is configured.
	refs := slices.Clone(im.Refs)
	slices.SortFunc(refs, func(a, b store.ImageRef) int { return b.LastSeen.Compare(a.LastSeen) })
	for _, ref := range refs {
		for _, r := range regs {
			if registryHost(r.URL) != ref.Registry {
				continue
			}
			p := scanPayload{RegistryID: r.ID, Repository: ref.Repository, Digest: d, Tag: ref.Tag,
				TriggeredBy: c.actor(), Force: true}
			id, created, err := s.enqueueScan(c.r.Context(), p)
			if err != nil {
				return err
			}
			return c.JSON(http.StatusAccepted, map[string]any{"jobId": id, "created": created})
		}
	}
	return errorf(http.StatusConflict, "no_registry", "image %s was not seen in any configured registry", d)
}

// --- vulnerability database ---

func (s *Server) dbStatus(c *call) error {
	out := map[string]any{"loaded": s.vdb.loaded(), "rematch": s.rematch.snapshot()}
	if st, ok := s.vdb.status(); ok {
		out["status"] = st
	} else {
		out["error"] = s.vdb.lastError()
	}
	return c.JSON(http.StatusOK, out)
}

// rematchNow reloads the database if it changed and starts a re-match of
// the stored SBOMs (asynchronous: GET /api/v1/db shows progress).
func (s *Server) rematchNow(c *call) error {
	c.audit("db", nil)
	if _, err := s.vdb.reloadIfChanged(); err != nil && !s.vdb.loaded() {
		return errorf(http.StatusConflict, "no_database", "no vulnerability database to match against: %v", err)
	}
	s.triggerRematch()
	return c.JSON(http.StatusAccepted, map[string]any{"queued": true, "rematch": s.rematch.snapshot()})
}

// --- tokens, users, audit ---

func (s *Server) listTokens(c *call) error { return listAll(c, s.st.ListTokens, toToken) }

type tokenInput struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// ExpiresIn is a Go duration ("720h"); empty never expires.
	ExpiresIn string `json:"expiresIn"`
}

func (s *Server) createToken(c *call) error {
	var in tokenInput
	if err := c.decode(&in, 16<<10, true); err != nil {
		return err
	}
	c.audit("token/"+in.Name, map[string]any{"name": in.Name, "role": in.Role, "expiresIn": in.ExpiresIn})
	if len(in.Name) > 128 {
		return badRequest("name longer than 128 characters")
	}
	role, err := store.ParseRole(in.Role)
	if err != nil {
		return err
	}
	var exp time.Time
	if in.ExpiresIn != "" {
		d, err := time.ParseDuration(in.ExpiresIn)
		if err != nil || d <= 0 {
			return badRequest("expiresIn must be a positive duration such as 720h")
		}
		exp = time.Now().Add(d)
	}
	secret, t, err := s.st.CreateToken(c.r.Context(), in.Name, role, exp, c.actor())
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("token/%d", t.ID), map[string]any{"name": in.Name, "role": in.Role, "prefix": t.Prefix})
	out := toToken(t)
	out.Token = secret
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) revokeToken(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("token/%d", id), nil)
	if err := s.st.RevokeToken(c.r.Context(), id); err != nil {
		return err
	}
	return c.noContent()
}

func (s *Server) listUsers(c *call) error { return listAll(c, s.st.ListUsers, toUser) }

type userInput struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

func (s *Server) createUser(c *call) error {
	var in userInput
	if err := c.decode(&in, 16<<10, true); err != nil {
		return err
	}
	c.audit("user/"+in.Username, map[string]any{"username": in.Username, "role": in.Role})
	u, err := s.st.CreateUser(c.r.Context(), in.Username, in.Password, store.Role(in.Role))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toUser(u))
}

type userPatch struct {
	Role     *string `json:"role"`
	Disabled *bool   `json:"disabled"`
	Password *string `json:"password"`
}

func (s *Server) updateUser(c *call) error {
	name := c.r.PathValue("username")
	c.audit("user/"+name, nil)
	var in userPatch
	if err := c.decode(&in, 16<<10, true); err != nil {
		return err
	}
	c.audit("user/"+name, map[string]any{"role": in.Role, "disabled": in.Disabled, "setPassword": in.Password != nil})
	u, err := s.st.GetUser(c.r.Context(), name)
	if err != nil {
		return err
	}
	if in.Role != nil || in.Disabled != nil {
		role, disabled := u.Role, u.Disabled
		if in.Role != nil {
			role = store.Role(*in.Role)
		}
		if in.Disabled != nil {
			disabled = *in.Disabled
		}
		if err := s.st.UpdateUser(c.r.Context(), name, role, disabled); err != nil {
			return err
		}
	}
	if in.Password != nil {
		if err := s.st.SetPassword(c.r.Context(), name, *in.Password); err != nil {
			return err
		}
	}
	if u, err = s.st.GetUser(c.r.Context(), name); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toUser(u))
}

func (s *Server) listAudit(c *call) error { return listPage(c, auditFilter, s.st.ListAudit, toAudit) }

func auditFilter(c *call) (store.AuditFilter, error) {
	q := c.r.URL.Query()
	var err error
	f := store.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target")}
	if f.Since, err = c.timeParam("since"); err != nil {
		return f, err
	}
	f.Until, err = c.timeParam("until")
	return f, err
}
