package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// Store is what the console reads and writes. *store.Store implements it;
// the interface keeps the console's reach into the store visible (and
// small), and lets tests count or fail calls while still using the real
// store underneath.
type Store interface {
	Authenticate(ctx context.Context, username, password string) (*store.User, error)
	VerifyToken(ctx context.Context, secret string) (*store.Token, error)
	GetUser(ctx context.Context, username string) (*store.User, error)
	SetPassword(ctx context.Context, username, password string) error
	ListTokens(ctx context.Context) ([]store.Token, error)
	ListImages(ctx context.Context, f store.ImageFilter, p store.Page) ([]store.Image, int, error)
	GetImage(ctx context.Context, digest string) (*store.Image, error)
	GetSBOM(ctx context.Context, digest string) (*store.SBOM, error)
	ListFindings(ctx context.Context, f store.FindingFilter, p store.Page) ([]store.Finding, int, error)
	ListFindingEvents(ctx context.Context, f store.EventFilter, p store.Page) ([]store.FindingEvent, int, error)
	ListScans(ctx context.Context, f store.ScanFilter, p store.Page) ([]store.ScanRecord, int, error)
	ListRegistries(ctx context.Context) ([]store.Registry, error)
	CreateRegistry(ctx context.Context, r store.Registry) (*store.Registry, error)
	ListJobs(ctx context.Context, f store.JobFilter, p store.Page) ([]store.Job, int, error)
	QueueStats(ctx context.Context) (store.QueueStats, error)
	Audit(ctx context.Context, e store.AuditEntry) (int64, error)
	// Alerts (alerts.go).
	ListAlerts(ctx context.Context, f store.AlertFilter, p store.Page) ([]store.Alert, int, error)
	GetAlertDetail(ctx context.Context, id int64) (*store.AlertDetail, error)
	SetAlertStatus(ctx context.Context, id int64, status store.AlertStatus, by, note string) error
	AlertTimeline(ctx context.Context, since, until time.Time, bucket time.Duration, source alerts.Source) ([]store.TimelineBucket, error)
	CreateAction(ctx context.Context, alertID int64, kind alerts.ActionKind, reason, by string) (*alerts.Action, error)
	CreateSuppression(ctx context.Context, sp store.Suppression) (*store.Suppression, error)
	// Triage in bulk, suppressions applied to earlier alerts, undo actions
	// (alerts.go, triage.go).
	SetAlertsStatus(ctx context.Context, sel store.AlertSelection, status store.AlertStatus, by, note string, limit int) (*store.BulkStatusResult, error)
	CreateSuppressionApplied(ctx context.Context, sp store.Suppression, applyToExisting bool) (*store.Suppression, error)
	ReleaseSuppression(ctx context.Context, id int64, by string) (released, kept int, err error)
	UndoableActions(ctx context.Context, a *store.Alert) ([]alerts.ActionKind, error)
	// The suppressions page (suppressions.go).
	ListSuppressions(ctx context.Context, includeExpired bool) ([]store.Suppression, error)
	SuppressedOpenCount(ctx context.Context, id int64) (int, error)
	ExpireSuppression(ctx context.Context, id int64) error
	DeleteSuppression(ctx context.Context, id int64) error
	ApplySuppression(ctx context.Context, id int64, by string) (int, error)
	// Admission decisions (triage.go).
	ListAdmissionDecisions(ctx context.Context, f store.AdmissionFilter, p store.Page) ([]store.AdmissionDecision, int, error)
	// Posture reports (posture.go).
	ListPostureReports(ctx context.Context, f store.PostureFilter, p store.Page) ([]store.PostureReport, int, error)
	// Clusters (clusters.go) and admission policy documents (policies.go).
	ListClusters(ctx context.Context) ([]store.Cluster, error)
	// Administration (admin.go).
	ListUsers(ctx context.Context) ([]store.User, error)
	CreateUser(ctx context.Context, username, password string, role store.Role) (*store.User, error)
	UpdateUser(ctx context.Context, username string, role store.Role, disabled bool) error
	CreateToken(ctx context.Context, name string, role store.Role, expiresAt time.Time, by string) (string, *store.Token, error)
	RevokeToken(ctx context.Context, id int64) error
	ListAudit(ctx context.Context, f store.AuditFilter, p store.Page) ([]store.AuditEntry, int, error)
	// Logouts seen by every replica (auth.go).
	RevokeSession(ctx context.Context, id string, expires time.Time) error
	SessionRevoked(ctx context.Context, id string) (bool, error)
	ListAdmissionPolicies(ctx context.Context) ([]store.AdmissionPolicy, int64, error)
	DeleteAdmissionPolicy(ctx context.Context, name string) error
}

var _ Store = (*store.Store)(nil)

// Config is the console's configuration. Every replica behind one load
// balancer must share SessionKey (and BasePath).
type Config struct {
	// SessionKey signs session cookies and CSRF tokens (HMAC-SHA256). At
	// least 32 random bytes, the same on every replica; kept out of the
	// database.
	SessionKey []byte
	// OldSessionKeys still verify cookies (never sign them): rotate the key
	// without logging everyone out.
	OldSessionKeys [][]byte
	// SecureCookie sets the Secure flag on cookies; true whenever the
	// console is served over HTTPS (always, outside a loopback demo).
	SecureCookie bool
	// BasePath is the path prefix the console is served under ("" or
	// "/console"); links and the cookie path include it, and requests are
	// expected with it.
	BasePath string
	// SessionTTL is how long a login lasts (default 12h).
	SessionTTL time.Duration
	// TrustProxyHeaders takes the client address for login rate limiting
	// from the last X-Forwarded-For entry (set only behind a proxy that
	// appends it).
	TrustProxyHeaders bool
	// LoginFailures failed logins from one address within LoginWindow
	// block further attempts from it until the window ends (defaults 10
	// and 15 minutes).
	LoginFailures int
	LoginWindow   time.Duration
	// DashboardCacheTTL keeps the overview's aggregates this long, so a
	// room full of reloads costs one set of queries (default 10s;
	// negative disables the cache).
	DashboardCacheTTL time.Duration
	// Version is shown in the footer.
	Version string
}

// Deps are the console's collaborators.
type Deps struct {
	Store Store
	// Logger receives request errors and security events; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// TestRegistry checks that central can reach and authenticate to the
	// registry with this id (the "Test connection" button). Nil hides the
	// button. Called with a deadline.
	TestRegistry func(ctx context.Context, id int64) error
	// DBStatus describes the vulnerability database central matches with
	// (overview "DB freshness"). Nil: the console shows the database build
	// time recorded by the latest scan.
	DBStatus func(ctx context.Context) (*vulndb.Status, error)
	// Vulnerability returns the full advisory (CVSS vectors, details,
	// references, KEV dates) for the vulnerability page; an error wrapping
	// store.ErrNotFound means unknown. Nil: the page shows what the stored
	// findings carry (summary, highest CVSS score, KEV flag, aliases).
	Vulnerability func(ctx context.Context, id string) (*vulndb.Vulnerability, error)
	// PutAdmissionPolicy validates a policy document as the webhooks load
	// it and stores it (server.PutAdmissionPolicy), returning how many
	// policies it holds; an invalid document is an error naming the line
	// at fault. Nil: documents are shown, not edited.
	PutAdmissionPolicy func(ctx context.Context, name, yaml, by string) (*store.AdmissionPolicy, int, error)
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Console serves the web console.
type Console struct {
	cfg     Config
	st      Store
	log     *slog.Logger
	now     func() time.Time
	deps    Deps
	base    string
	pages   map[string]*template.Template
	static  http.Handler
	assetV  string // content hash of the static files, for cache busting
	keys    [][]byte
	limiter *loginLimiter
	revoked *revokedSessions
	// hashSlots bounds concurrent password checks: argon2id costs ~19 MB
	// and tens of milliseconds each, and login is reachable without auth.
	hashSlots chan struct{}
	mux       *http.ServeMux
	ovCache   overviewCache
}

type overviewCache struct {
	mu   sync.Mutex
	key  string
	at   time.Time
	data *overviewData
}

// New builds the console handler. Mount it at "/" with the API, hooks and
// health endpoints registered on more specific patterns before it, or
// under Config.BasePath:
//
//	h, err := console.New(
//		console.Config{SessionKey: key, SecureCookie: true, Version: version},
//		console.Deps{Store: st, Logger: log, TestRegistry: testRegistry})
//	mux.Handle("/", h)
//
// The templates are parsed here, so a broken template fails at start-up.
func New(cfg Config, deps Deps) (http.Handler, error) {
	return newConsole(cfg, deps)
}

func newConsole(cfg Config, deps Deps) (*Console, error) {
	if deps.Store == nil {
		return nil, errors.New("console: Deps.Store is required")
	}
	if len(cfg.SessionKey) < 32 {
		return nil, fmt.Errorf("console: session key must be at least 32 bytes, got %d", len(cfg.SessionKey))
	}
	base := strings.TrimRight(cfg.BasePath, "/")
	if base != "" && (!strings.HasPrefix(base, "/") || strings.ContainsAny(base, "?#\"'<> ") || path.Clean(base) != base) {
		return nil, fmt.Errorf("console: base path %q must be a clean absolute path", cfg.BasePath)
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.LoginFailures <= 0 {
		cfg.LoginFailures = 10
	}
	if cfg.LoginWindow <= 0 {
		cfg.LoginWindow = 15 * time.Minute
	}
	if cfg.DashboardCacheTTL == 0 {
		cfg.DashboardCacheTTL = 10 * time.Second
	}
	c := &Console{cfg: cfg, st: deps.Store, log: deps.Logger, now: deps.Now, deps: deps, base: base,
		hashSlots: make(chan struct{}, 2)}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.keys = append([][]byte{cfg.SessionKey}, cfg.OldSessionKeys...)
	c.limiter = newLoginLimiter(cfg.LoginFailures, cfg.LoginWindow, 10_000)
	c.revoked = newRevokedSessions(100_000)

	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}
	c.assetV, err = hashFS(sub)
	if err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}
	c.static = http.FileServerFS(sub)
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

func hashFS(fsys fs.FS) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		h.Write([]byte(p))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12], err
}

func (c *Console) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /static/", c.serveStatic)
	m.HandleFunc("GET /login", c.loginPage)
	m.HandleFunc("POST /login", c.loginSubmit)
	m.Handle("POST /logout", c.auth(c.logout))
	m.Handle("GET /{$}", c.auth(c.overviewPage))
	m.Handle("GET /images", c.auth(c.imagesPage))
	m.Handle("GET /images/{digest}", c.auth(c.imagePage))
	m.Handle("GET /vulns", c.auth(c.vulnLookup))
	m.Handle("GET /vulns/{id}", c.auth(c.vulnPage))
	m.Handle("GET /scans", c.auth(c.scansPage))
	m.Handle("GET /jobs", c.auth(c.jobsPage))
	m.Handle("GET /alerts", c.auth(c.alertsPage))
	m.Handle("GET /alerts/{id}", c.auth(c.alertPage))
	m.Handle("POST /alerts/{id}/status", c.auth(c.alertStatus))
	m.Handle("POST /alerts/{id}/actions", c.auth(c.alertAction))
	m.Handle("POST /alerts/{id}/suppress", c.auth(c.alertSuppress))
	m.Handle("POST /alerts/{id}/release", c.auth(c.alertRelease))
	m.Handle("POST /alerts/bulk", c.auth(c.alertsBulk))
	m.Handle("GET /suppressions", c.auth(c.suppressionsPage))
	m.Handle("POST /suppressions", c.auth(c.triageOnly(c.suppressionCreate)))
	m.Handle("POST /suppressions/{id}/expire", c.auth(c.triageOnly(c.suppressionExpire)))
	m.Handle("POST /suppressions/{id}/delete", c.auth(c.triageOnly(c.suppressionDelete)))
	m.Handle("POST /suppressions/{id}/apply", c.auth(c.triageOnly(c.suppressionApply)))
	m.Handle("POST /suppressions/{id}/release", c.auth(c.triageOnly(c.suppressionRelease)))
	m.Handle("GET /admission", c.auth(c.admissionPage))
	m.Handle("GET /admission/alert", c.auth(c.admissionAlert))
	m.Handle("GET /posture", c.auth(c.posturePage))
	m.Handle("GET /clusters", c.auth(c.clustersPage))
	m.Handle("GET /policies", c.auth(c.policiesPage))
	m.Handle("POST /policies", c.auth(c.adminOnly(c.policySave)))
	m.Handle("GET /policies/{name}", c.auth(c.policyPage))
	m.Handle("POST /policies/{name}", c.auth(c.adminOnly(c.policySave)))
	m.Handle("POST /policies/{name}/delete", c.auth(c.adminOnly(c.policyDelete)))
	m.Handle("GET /registries", c.auth(c.registriesPage))
	m.Handle("POST /registries", c.auth(c.adminOnly(c.registryCreate)))
	m.Handle("POST /registries/{id}/test", c.auth(c.adminOnly(c.registryTest)))
	m.Handle("GET /settings/users", c.auth(c.adminOnly(c.usersPage)))
	m.Handle("POST /settings/users", c.auth(c.adminOnly(c.userCreate)))
	m.Handle("POST /settings/users/{name}", c.auth(c.adminOnly(c.userUpdate)))
	m.Handle("GET /settings/tokens", c.auth(c.adminOnly(c.tokensPage)))
	m.Handle("POST /settings/tokens", c.auth(c.adminOnly(c.tokenCreate)))
	m.Handle("POST /settings/tokens/{id}/revoke", c.auth(c.adminOnly(c.tokenRevoke)))
	m.Handle("GET /settings/audit", c.auth(c.adminOnly(c.auditPage)))
	m.Handle("GET /account", c.auth(c.accountPage))
	m.Handle("POST /account/password", c.auth(c.changePassword))
	m.Handle("/", c.auth(c.notFound))
	c.mux = m
}

// ServeHTTP strips the base path, sets the security headers every
// response carries, and routes.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Inline SVG is part of the document, so no source beyond 'self' is
	// needed: no inline script, no inline style attribute anywhere.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if c.base != "" {
		p := r.URL.Path
		if p == c.base {
			http.Redirect(w, r, c.base+"/", http.StatusMovedPermanently)
			return
		}
		rest, ok := strings.CutPrefix(p, c.base+"/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path = "/" + rest
		u.RawPath = ""
		r2.URL = &u
		r = r2
	}
	c.mux.ServeHTTP(w, r)
}

func (c *Console) serveStatic(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/") {
		http.NotFound(w, r) // no directory listings
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=86400")
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path = strings.TrimPrefix(r.URL.Path, "/static")
	r2.URL = &u
	c.static.ServeHTTP(w, r2)
}

// url joins the base path and an absolute console path.
func (c *Console) url(p string) string { return c.base + p }

// render executes a page template into a buffer first, so a template error
// becomes a clean 500 instead of half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	t, ok := c.pages[name]
	if !ok {
		c.serverError(w, r, fmt.Errorf("render: no template %q", name))
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		c.log.ErrorContext(r.Context(), "console: render", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage renders an error with the layout.
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	pd := c.pageData(r, "", http.StatusText(status))
	c.render(w, r, status, "error", struct {
		*pageData
		Status  int
		Message string
	}{pd, status, msg})
}

func (c *Console) serverError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	c.log.ErrorContext(r.Context(), "console: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	c.errorPage(w, r, http.StatusInternalServerError, "Something went wrong on our side. The error was logged.")
}

// storeError maps a store error to a page: not found and invalid input are
// the user's, everything else is ours.
func (c *Console) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.errorPage(w, r, http.StatusNotFound, "Not found.")
	case errors.Is(err, store.ErrInvalid):
		c.errorPage(w, r, http.StatusBadRequest, "The request could not be understood: "+err.Error())
	default:
		c.serverError(w, r, err)
	}
}

// notFound answers unknown paths (behind auth: a visitor without a session
// learns nothing about what exists).
func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	c.errorPage(w, r, http.StatusNotFound, "There is no page here.")
}
