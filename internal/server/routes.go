package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
)

// authKind says how a route authenticates.
type authKind int

const (
	authNone  authKind = iota // public: health, OpenAPI document
	authToken                 // Authorization: Bearer bwk_… with one of the route's roles
	authHook                  // a registry's webhook secret (checked by the handler)
)

// Role sets used in the table.
var (
	rolesAdmin  = []store.Role{store.RoleAdmin}
	rolesRead   = []store.Role{store.RoleAdmin, store.RoleAnalyst}
	rolesTriage = []store.Role{store.RoleAdmin, store.RoleAnalyst}
	rolesUpload = []store.Role{store.RoleAdmin, store.RoleCI}
	rolesImage  = []store.Role{store.RoleAdmin, store.RoleAnalyst, store.RoleAgent}
	rolesAny    = []store.Role{store.RoleAdmin, store.RoleAnalyst, store.RoleCI, store.RoleAgent}
	// rolesScanRequest: the admission webhook (agent) asks for scans of
	// images it is judging.
	rolesScanRequest = []store.Role{store.RoleAdmin, store.RoleAgent}
	allRoleNames     = []store.Role{store.RoleAdmin, store.RoleAnalyst, store.RoleCI, store.RoleAgent}
)

// route is one entry of the table every request goes through.
type route struct {
	method string
	// path is a net/http pattern path ("/api/v1/images/{digest}"), the
	// same spelling as the OpenAPI document's paths.
	path  string
	auth  authKind
	roles []store.Role
	// action names the audit entry of a mutating call ("registry.create");
	// empty for reads.
	action string
	h      func(c *call) error
}

// routeTable is the API: every path, who may call it, and what it
// records. The OpenAPI document and the role tests are checked against it.
func (s *Server) routeTable() []route {
	return []route{
		{"GET", "/healthz", authNone, nil, "", s.healthz},
		{"GET", "/readyz", authNone, nil, "", s.readyz},
		{"GET", "/metrics", authToken, rolesAny, "", s.metricsEndpoint},
		{"GET", "/api/v1/openapi.json", authNone, nil, "", s.openapi},

		{"GET", "/api/v1/me", authToken, rolesAny, "", s.me},

		{"GET", "/api/v1/images", authToken, rolesRead, "", s.listImages},
		{"GET", "/api/v1/images/{digest}", authToken, rolesImage, "", s.getImage},
		{"DELETE", "/api/v1/images/{digest}", authToken, rolesAdmin, "image.delete", s.deleteImage},
		{"GET", "/api/v1/images/{digest}/sbom", authToken, rolesRead, "", s.getSBOM},
		{"GET", "/api/v1/images/{digest}/findings", authToken, rolesImage, "", s.imageFindings},
		{"POST", "/api/v1/images/{digest}/rescan", authToken, rolesTriage, "image.rescan", s.rescanImage},

		{"GET", "/api/v1/findings", authToken, rolesRead, "", s.listFindings},
		{"GET", "/api/v1/events", authToken, rolesRead, "", s.listEvents},
		{"GET", "/api/v1/vulnerabilities/{id}", authToken, rolesRead, "", s.getVulnerability},

		{"GET", "/api/v1/scans", authToken, rolesRead, "", s.listScans},
		{"POST", "/api/v1/scans", authToken, rolesUpload, "scan.upload", s.uploadScan},
		{"GET", "/api/v1/scans/{id}", authToken, rolesRead, "", s.getScan},
		{"POST", "/api/v1/scans/requests", authToken, rolesScanRequest, "scan.request", s.requestScan},

		{"GET", "/api/v1/registries", authToken, rolesRead, "", s.listRegistries},
		{"POST", "/api/v1/registries", authToken, rolesAdmin, "registry.create", s.createRegistry},
		{"GET", "/api/v1/registries/{id}", authToken, rolesRead, "", s.getRegistry},
		{"PUT", "/api/v1/registries/{id}", authToken, rolesAdmin, "registry.update", s.updateRegistry},
		{"DELETE", "/api/v1/registries/{id}", authToken, rolesAdmin, "registry.delete", s.deleteRegistry},
		{"POST", "/api/v1/registries/{id}/test", authToken, rolesAdmin, "registry.test", s.testRegistry},
		{"POST", "/api/v1/registries/{id}/sweep", authToken, rolesAdmin, "registry.sweep", s.sweepRegistryNow},

		{"GET", "/api/v1/jobs", authToken, rolesRead, "", s.listJobs},
		{"GET", "/api/v1/jobs/{id}", authToken, rolesRead, "", s.getJob},
		{"POST", "/api/v1/jobs/{id}/retry", authToken, rolesTriage, "job.retry", s.retryJob},

		{"GET", "/api/v1/db", authToken, rolesRead, "", s.dbStatus},
		{"POST", "/api/v1/db/rematch", authToken, rolesAdmin, "db.rematch", s.rematchNow},

		{"GET", "/api/v1/tokens", authToken, rolesAdmin, "", s.listTokens},
		{"POST", "/api/v1/tokens", authToken, rolesAdmin, "token.create", s.createToken},
		{"DELETE", "/api/v1/tokens/{id}", authToken, rolesAdmin, "token.revoke", s.revokeToken},

		{"GET", "/api/v1/users", authToken, rolesAdmin, "", s.listUsers},
		{"POST", "/api/v1/users", authToken, rolesAdmin, "user.create", s.createUser},
		{"PATCH", "/api/v1/users/{username}", authToken, rolesAdmin, "user.update", s.updateUser},

		{"GET", "/api/v1/audit", authToken, rolesAdmin, "", s.listAudit},

		{"GET", "/api/v1/exports", authToken, rolesAdmin, "", s.listExports},
		{"POST", "/api/v1/exports", authToken, rolesAdmin, "export.create", s.createExport},
		{"GET", "/api/v1/exports/{id}", authToken, rolesAdmin, "", s.getExport},
		{"PUT", "/api/v1/exports/{id}", authToken, rolesAdmin, "export.update", s.updateExport},
		{"DELETE", "/api/v1/exports/{id}", authToken, rolesAdmin, "export.delete", s.deleteExport},
		{"POST", "/api/v1/exports/{id}/test", authToken, rolesAdmin, "export.test", s.testExport},
		{"GET", "/api/v1/exports/{id}/dead", authToken, rolesAdmin, "", s.listDeadExports},
		{"POST", "/api/v1/exports/{id}/dead/retry", authToken, rolesAdmin, "export.retry_dead", s.retryDeadExports},

		{"POST", "/api/v1/alerts", authToken, rolesAlertIngest, "alert.ingest", s.ingestAlerts},
		{"GET", "/api/v1/alerts", authToken, rolesRead, "", s.listAlerts},
		{"GET", "/api/v1/alerts/timeline", authToken, rolesRead, "", s.alertTimeline},
		{"GET", "/api/v1/alerts/{id}", authToken, rolesRead, "", s.getAlert},
		{"POST", "/api/v1/alerts/{id}/status", authToken, rolesTriage, "alert.status", s.setAlertStatus},
		{"POST", "/api/v1/alerts/status", authToken, rolesTriage, "alert.bulk_status", s.setAlertsStatus},
		{"POST", "/api/v1/alerts/{id}/actions", authToken, rolesTriage, "action.request", s.requestAction},
		{"GET", "/api/v1/actions", authToken, rolesActionRead, "", s.listActions},
		{"POST", "/api/v1/actions/{id}/result", authToken, rolesActionResult, "action.result", s.actionResult},
		{"GET", "/api/v1/suppressions", authToken, rolesRead, "", s.listSuppressions},
		{"POST", "/api/v1/suppressions", authToken, rolesTriage, "suppression.create", s.createSuppression},
		{"GET", "/api/v1/suppressions/{id}", authToken, rolesRead, "", s.getSuppression},
		{"DELETE", "/api/v1/suppressions/{id}", authToken, rolesTriage, "suppression.delete", s.deleteSuppression},
		{"GET", "/api/v1/suppressions/{id}/matches", authToken, rolesRead, "", s.suppressionMatches},
		{"POST", "/api/v1/suppressions/{id}/apply", authToken, rolesTriage, "suppression.apply", s.applySuppression},
		{"POST", "/api/v1/suppressions/{id}/release", authToken, rolesTriage, "suppression.release", s.releaseSuppression},
		{"POST", "/api/v1/suppressions/{id}/expire", authToken, rolesTriage, "suppression.expire", s.expireSuppression},

		{"POST", "/api/v1/admission/decisions", authToken, rolesAdmissionPost, "admission.decisions", s.postAdmissionDecisions},
		{"GET", "/api/v1/admission/decisions", authToken, rolesRead, "", s.listAdmissionDecisions},
		{"GET", "/api/v1/admission/policies", authToken, rolesPolicyRead, "", s.listAdmissionPolicies},
		{"PUT", "/api/v1/admission/policies/{name}", authToken, rolesAdmin, "admission.policy.put", s.putAdmissionPolicy},
		{"DELETE", "/api/v1/admission/policies/{name}", authToken, rolesAdmin, "admission.policy.delete", s.deleteAdmissionPolicy},

		{"POST", "/api/v1/posture/reports", authToken, rolesPosturePost, "posture.upload", s.postPostureReport},
		{"GET", "/api/v1/posture/reports", authToken, rolesRead, "", s.listPostureReports},
		{"GET", "/api/v1/posture/reports/{id}", authToken, rolesRead, "", s.getPostureReport},

		{"POST", "/api/v1/hooks/distribution", authHook, nil, "", s.hookDistribution},
		{"POST", "/api/v1/hooks/harbor", authHook, nil, "", s.hookHarbor},
	}
}

// call is one request as a handler sees it.
type call struct {
	w            http.ResponseWriter
	r            *http.Request
	s            *Server
	who          *store.Token // nil on public and hook routes
	rt           *route
	auditTarget  string
	auditDetails any
	// status written, for the access log and metrics.
	status int
}

// actor names the caller in audit entries.
func (c *call) actor() string {
	if c.who == nil {
		return "anonymous"
	}
	return "token:" + c.who.Name
}

// audit sets the target and details of the audit entry a mutating route
// writes (details must never hold secrets).
func (c *call) audit(target string, details any) {
	c.auditTarget, c.auditDetails = target, details
}

// JSON writes v with status.
func (c *call) JSON(status int, v any) error {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("X-Content-Type-Options", "nosniff")
	c.w.WriteHeader(status)
	c.status = status
	enc := json.NewEncoder(c.w)
	return enc.Encode(v)
}

// decode reads a JSON body of at most limit bytes into v. Unknown fields
// are refused when strict, so a misspelt field is an error, not ignored.
func (c *call) decode(v any, limit int64, strict bool) error {
	if ct := c.r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "want a JSON body (Content-Type: application/json), got %q", ct)
		}
	}
	body := http.MaxBytesReader(c.w, c.r.Body, limit)
	dec := json.NewDecoder(body)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return badRequest("empty request body")
		}
		return badRequest("malformed JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("trailing data after the JSON body")
	}
	return nil
}

// page reads limit, offset and sort.
func (c *call) page() (store.Page, error) {
	q := c.r.URL.Query()
	var p store.Page
	var err error
	if v := q.Get("limit"); v != "" {
		if p.Limit, err = strconv.Atoi(v); err != nil || p.Limit < 1 || p.Limit > store.MaxLimit {
			return p, badRequest("limit must be 1-%d", store.MaxLimit)
		}
	}
	if v := q.Get("offset"); v != "" {
		if p.Offset, err = strconv.Atoi(v); err != nil || p.Offset < 0 || p.Offset > 10_000_000 {
			return p, badRequest("offset must be a non-negative integer")
		}
	}
	p.Sort = q.Get("sort")
	if len(p.Sort) > 64 {
		return p, badRequest("sort key too long")
	}
	return p, nil
}

// boolParam reads a true/false query parameter (absent is false).
func (c *call) boolParam(name string) (bool, error) {
	v := c.r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("%s must be true or false", name)
	}
	return b, nil
}

// timeParam reads an RFC 3339 time or a duration back from now ("24h").
func (c *call) timeParam(name string) (time.Time, error) {
	v := c.r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, badRequest("%s must be an RFC 3339 time or a duration such as 24h", name)
}

// idParam reads a positive integer path parameter.
func (c *call) idParam(name string) (int64, error) {
	id, err := strconv.ParseInt(c.r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, errorf(http.StatusNotFound, "not_found", "%s %q is not a valid id", name, c.r.PathValue(name))
	}
	return id, nil
}

// list is the response shape of every paged list.
type listResponse[T any] struct {
	Items  []T `json:"items"`
	Total  int `json:"total"`
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
}

func newList[T any](items []T, total int, p store.Page) listResponse[T] {
	if items == nil {
		items = []T{}
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 50
	}
	return listResponse[T]{Items: items, Total: total, Limit: limit, Offset: p.Offset}
}

// buildHandler registers the route table (and the console) on one mux.
func (s *Server) buildHandler() http.Handler {
	mux := http.NewServeMux()
	for i := range s.routes {
		rt := &s.routes[i]
		mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
	// Unknown API paths get a JSON 404, never the console.
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such API endpoint: "+r.Method+" "+r.URL.Path)
	})
	if s.console != nil {
		mux.Handle("/", s.console)
	} else {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "bulwark server: the web console is not built into this binary; the API is at /api/v1 (see /api/v1/openapi.json)")
		})
	}
	return securityHeaders(mux)
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// statusWriter remembers the status code for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// wrap runs a route: authentication, role check, the handler, the one
// error mapping, the audit entry of a mutating call, metrics and the
// access log.
func (s *Server) wrap(rt *route) http.Handler {
	name := rt.method + " " + rt.path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		c := &call{w: sw, r: r, s: s, rt: rt}
		err := s.authorize(c)
		authed := err == nil
		if err == nil {
			err = rt.h(c)
		}
		if err != nil {
			status, code, msg := errorStatus(err)
			if status >= 500 {
				s.log.Error("request failed", "route", name, "err", err)
			}
			if sw.status == 0 {
				writeError(sw, status, code, msg)
			}
		}
		if sw.status == 0 {
			sw.WriteHeader(http.StatusNoContent)
		}
		if rt.action != "" && authed {
			s.writeAudit(c, sw.status, err)
		}
		d := time.Since(start)
		s.metrics.apiLatency.WithLabelValues(name, strconv.Itoa(sw.status)).Observe(d.Seconds())
		lvl := slog.LevelDebug
		if sw.status >= 500 {
			lvl = slog.LevelWarn
		}
		s.log.Log(r.Context(), lvl, "http", "method", r.Method, "path", r.URL.Path, "route", name, "status", sw.status,
			"duration_ms", d.Milliseconds(), "actor", c.actor(), "remote", r.RemoteAddr)
	})
}

// authorize checks the bearer token against the route's roles.
func (s *Server) authorize(c *call) error {
	if c.rt.auth != authToken {
		return nil
	}
	secret, ok := bearer(c.r)
	if !ok {
		return errNoToken
	}
	t, err := s.st.VerifyToken(c.r.Context(), secret)
	if err != nil {
		return err
	}
	c.who = t
	if !slices.Contains(c.rt.roles, t.Role) {
		return errForbidden
	}
	return nil
}

// bearer extracts the token of an "Authorization: Bearer …" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// writeAudit records a mutating call, successful or not: who, what, on
// which target, the outcome and the handler's details.
func (s *Server) writeAudit(c *call, status int, callErr error) {
	details := map[string]any{"status": status, "method": c.r.Method, "path": c.r.URL.Path}
	if c.auditDetails != nil {
		details["request"] = c.auditDetails
	}
	if callErr != nil {
		_, code, _ := errorStatus(callErr)
		details["error"] = code
	}
	b, err := json.Marshal(details)
	if err != nil {
		b = []byte("{}")
	}
	target := c.auditTarget
	if target == "" {
		target = c.r.URL.Path
	}
	// The audit write must not be lost when the client hangs up.
	ctx := context.WithoutCancel(c.r.Context())
	if _, err := s.st.Audit(ctx, store.AuditEntry{Actor: c.actor(), Action: c.rt.action, Target: target, Details: b}); err != nil {
		s.log.Error("audit log write failed", "action", c.rt.action, "actor", c.actor(), "err", err)
	}
}
