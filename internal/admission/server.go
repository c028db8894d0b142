package admission

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"

	"github.com/bulwark-security/bulwark/internal/policy"
)

// Paths served.
const (
	PathValidate = "/validate"
	PathHealth   = "/healthz"
	PathReady    = "/readyz"
	PathMetrics  = "/metrics"
)

// Config tunes the webhook.
type Config struct {
	// Listen is the HTTPS address (default :8443).
	Listen string
	// MaxBodyBytes caps an AdmissionReview (default 8 MiB: an object may
	// be up to ~3 MiB, and UPDATE carries two).
	MaxBodyBytes int64
	// FailOpen admits images whose findings cannot be had (central down,
	// no cached verdict), with a warning; default is fail-closed: such an
	// image violates the vulnerability rule of each policy in scope.
	FailOpen bool
	// Cluster names this cluster in decision records and alerts.
	Cluster string
	// EvalTimeout bounds one evaluation (default 8s, under the API
	// server's default webhook timeout of 10s).
	EvalTimeout time.Duration
}

// PolicySource gives the policies in force.
type PolicySource interface{ Current() *policy.Set }

// NamespaceGetter returns a namespace (labels for namespace selectors and
// namespaceObject in custom rules). Errors make the namespace unknown.
type NamespaceGetter interface {
	Namespace(ctx context.Context, name string) (*corev1.Namespace, error)
}

// Deps are the parts the webhook is built from.
type Deps struct {
	Policies PolicySource
	// Images looks up verdicts (an *Images in production).
	Images policy.ImageSource
	// Namespaces may be nil (namespace selectors then match).
	Namespaces NamespaceGetter
	// Params reads the ConfigMaps policies name in spec.paramRef (a
	// *ClientConfigMaps in production); nil: those rules deny.
	Params policy.ParamSource
	// ParamObjects reads the param resources of policies with a
	// spec.paramKind (a *ClientParamObjects in production); nil: those
	// rules deny.
	ParamObjects policy.ObjectParamSource
	// Recorder may be nil (no records sent).
	Recorder *Recorder
	// Certs serves TLS; nil serves plain HTTP (tests of the handler only).
	Certs  *Certs
	Logger *slog.Logger
	// Registry is served on /metrics and Metrics registered in it (build
	// both with NewMetrics and share them with Images, Recorder and Certs);
	// nil makes private ones.
	Registry *prometheus.Registry
	Metrics  *Metrics
}

// Server is the webhook.
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	m       *Metrics
	reg     *prometheus.Registry
	handler http.Handler
	ln      net.Listener
	bufs    sync.Pool
	// reviews recycles the decoded request structs and their raw object
	// buffers (see reviewScratch).
	reviews sync.Pool
}

// New builds the server and opens its listener.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Policies == nil {
		return nil, errors.New("new admission server: no policies")
	}
	if cfg.Listen == "" {
		cfg.Listen = ":8443"
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	if cfg.EvalTimeout <= 0 {
		cfg.EvalTimeout = 8 * time.Second
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := deps.Metrics
	if m == nil {
		m = NewMetrics(reg)
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Logger, reg: reg, m: m}
	s.bufs.New = func() any { return new([]byte) }
	s.reviews.New = func() any { return newReviewScratch() }
	mux := http.NewServeMux()
	mux.HandleFunc(PathValidate, s.validate)
	mux.HandleFunc(PathMutate, s.mutate)
	mux.HandleFunc(PathHealth, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc(PathReady, func(w http.ResponseWriter, _ *http.Request) {
		if s.deps.Policies.Current() == nil {
			http.Error(w, "no policies loaded", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle(PathMetrics, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.handler = mux
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("new admission server: listen %s: %w", cfg.Listen, err)
	}
	s.ln = ln
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Handler serves the webhook's paths (without TLS), for tests and
// benchmarks.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	hs := &http.Server{Handler: s.handler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	ln := s.ln
	if s.deps.Certs != nil {
		hs.TLSConfig = s.deps.Certs.TLSConfig()
	}
	if set := s.deps.Policies.Current(); set != nil {
		s.m.policiesLoaded.Set(float64(len(set.Policies())))
	}
	errc := make(chan error, 1)
	go func() {
		if s.deps.Certs != nil {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("admission server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("admission server shutdown: %w", err)
	}
	return nil
}

// badRequest answers a body the webhook will not judge: HTTP 400 with the
// reason. The API server treats it as a failed call and applies the
// webhook's failurePolicy (Fail: the request is refused).
func (s *Server) badRequest(w http.ResponseWriter, reason string, err error) {
	s.m.badRequests.WithLabelValues(reason).Inc()
	s.m.decisions.WithLabelValues("error", "", "").Inc()
	s.log.Warn("admission review refused", "reason", reason, "err", err)
	http.Error(w, err.Error(), http.StatusBadRequest)
}

// reviewPost answers a request that is not a POST of JSON (and reports
// false).
func (s *Server) reviewPost(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return false
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			s.badRequest(w, "content_type", fmt.Errorf("%w: Content-Type %q: want application/json", ErrBadReview, ct))
			return false
		}
	}
	return true
}

func (s *Server) validate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if !s.reviewPost(w, r) {
		return
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	body, err := readBody(r.Body, s.cfg.MaxBodyBytes, (*bp)[:0])
	*bp = body
	if err != nil {
		s.badRequest(w, "body", err)
		return
	}
	sc := s.reviews.Get().(*reviewScratch)
	defer s.reviews.Put(sc) // after the record: req refers to sc until then
	_, req, err := decodeReview(body, sc)
	if err != nil {
		s.badRequest(w, "decode", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.EvalTimeout)
	defer cancel()
	var d policy.Decision
	set := s.deps.Policies.Current()
	switch {
	case set == nil:
		s.badRequest(w, "no_policies", errors.New("no policies loaded"))
		return
	case req.Operation == "DELETE":
		d = policy.Decision{Allowed: true, Verdict: policy.VerdictAllow, PolicyVersion: set.Version()}
	default:
		req.Images, req.FailOpen, req.Params, req.ParamObjects = s.deps.Images, s.cfg.FailOpen, s.deps.Params, s.deps.ParamObjects
		if s.deps.Namespaces != nil && req.Namespace != "" {
			if ns, err := s.deps.Namespaces.Namespace(ctx, req.Namespace); err == nil {
				req.NamespaceObject = ns
			}
		}
		d = set.Evaluate(ctx, req)
	}
	// The answer is encoded into a pooled buffer and written whole. An
	// answer that fits net/http's 2 KB response buffer gets its
	// Content-Length from net/http when the handler returns; a larger one
	// (a denial listing many violations) is given it here, or net/http
	// would send it chunked. Headers and body then leave in one write
	// (one TLS record) for answers up to 4 KB.
	op := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(op)
	*op = appendResponse((*op)[:0], response(req, &d))
	h := w.Header()
	h["Content-Type"] = jsonContentType
	if len(*op) > 1024 {
		h["Content-Length"] = []string{strconv.Itoa(len(*op))}
	}
	if _, err := w.Write(*op); err != nil {
		s.log.Warn("admission response not written", "err", err)
	}
	if cap(*op) > maxScratchBytes { // a rare huge answer is not kept
		*op = nil
	}
	elapsed := time.Since(start)
	s.m.reviewLatency(req.Operation).Observe(elapsed.Seconds())
	s.m.decided(string(d.Verdict), req.Kind, req.Operation).Inc()
	for _, v := range d.Violations {
		family, _, _ := strings.Cut(v.Rule, ":")
		s.m.violations.WithLabelValues(family, string(v.Mode)).Inc()
	}
	if d.Verdict != policy.VerdictAllow {
		s.log.Info("admission decision", "verdict", d.Verdict, "what", describe(req), "user", req.User.Username, "violations", len(d.Violations))
	}
	if s.deps.Recorder.wants(req.Operation, d.Verdict, len(d.Exempted), len(d.Notes)) {
		s.deps.Recorder.Record(s.record(req, &d, elapsed))
	}
}

// jsonContentType is the answers' Content-Type header value, shared (net/http
// only reads it; w.Header().Set allocates a slice per review).
var jsonContentType = []string{"application/json"}

// readBody reads at most limit bytes into buf.
func readBody(r io.Reader, limit int64, buf []byte) ([]byte, error) {
	lr := io.LimitReader(r, limit+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, fmt.Errorf("%w: body larger than %d bytes", ErrBadReview, limit)
		}
		if errors.Is(err, io.EOF) {
			if len(buf) == 0 {
				return buf, fmt.Errorf("%w: empty body", ErrBadReview)
			}
			return buf, nil
		}
		if err != nil {
			return buf, fmt.Errorf("%w: read body: %v", ErrBadReview, err)
		}
	}
}

func describe(req *policy.Request) string {
	if req.Operation == "CONNECT" {
		return fmt.Sprintf("%s into pod %s/%s", req.SubResource, req.Namespace, req.Name)
	}
	if req.Namespace == "" {
		return req.Kind + " " + req.Name
	}
	return fmt.Sprintf("%s %s/%s", req.Kind, req.Namespace, req.Name)
}

func (s *Server) record(req *policy.Request, d *policy.Decision, elapsed time.Duration) policy.DecisionRecord {
	var id [16]byte
	rand.Read(id[:])
	rec := policy.DecisionRecord{ID: hex.EncodeToString(id[:]), Time: time.Now().UTC(), Cluster: s.cfg.Cluster, RequestUID: req.UID,
		Operation: req.Operation, Kind: req.Kind, SubResource: req.SubResource, Namespace: req.Namespace, Name: req.Name,
		User: req.User.Username, Groups: req.User.Groups, DryRun: req.DryRun, Verdict: d.Verdict, Allowed: d.Allowed,
		Policies: d.Policies, PolicyVersion: d.PolicyVersion, Violations: d.Violations, Exempted: d.Exempted, Notes: d.Notes,
		LatencyMS: float64(elapsed.Microseconds()) / 1000}
	if req.Object != nil {
		rec.Images = policy.Images(req.Object)
	}
	return rec
}
