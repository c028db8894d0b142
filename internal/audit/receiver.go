package audit

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/rules"
)

// Client is one API server allowed to post audit events, and the cluster
// name its alerts carry. It authenticates with a TLS client certificate
// whose subject CN is CN (verified against the receiver's client CA by the
// TLS layer), or with "Authorization: Bearer Token". Set one of the two.
type Client struct {
	Cluster string
	CN      string
	Token   string
}

// ReceiverConfig configures the webhook receiver.
type ReceiverConfig struct {
	Clients []Client
	// MaxBodyBytes caps one EventList (default 16 MiB; the API server's
	// batches are 400 events by default, and RequestResponse records of
	// large objects are big). Larger → 413.
	MaxBodyBytes int64
	// MaxEvents caps the items of one EventList (default 10,000) → 413.
	MaxEvents int
	// QueueSize is how many batches may be in the receiver at once —
	// being read, waiting for a worker or being processed (default 16);
	// beyond it the receiver answers 429 before reading the body, and the
	// API server retries later. Memory is thus bounded by about
	// QueueSize × MaxBodyBytes. Workers evaluate batches (default
	// GOMAXPROCS).
	QueueSize int
	Workers   int
	// Wait is how long a request waits for its batch to be processed and
	// its alerts stored before answering 503 (default 25s, under the API
	// server's webhook timeout). The batch still completes; the API
	// server's retry is then recognized as a replay.
	Wait time.Duration
	// ClusterShare is how many of the QueueSize places one cluster's
	// batches may hold at once (default: half the queue, at least 1, when
	// more than one cluster is configured; the whole queue otherwise).
	// Beyond it that cluster is answered 429 while the others go on.
	ClusterShare int
	// ClusterRate caps the events per second one cluster may post,
	// averaged over ClusterBurst events (default one second's worth, at
	// least 400); over it → 429 with Retry-After. 0: no cap. ClusterRates
	// sets it per cluster name (0 there: no cap for that cluster).
	ClusterRate  float64
	ClusterBurst int
	ClusterRates map[string]float64
	Logger       *slog.Logger
	// now is the clock (tests); time.Now when nil.
	now func() time.Time
}

// Receiver is the API server's audit webhook backend: an http.Handler for
// POSTs of audit.k8s.io/v1 EventList. Run must be running for batches to be
// processed.
type Receiver struct {
	cfg  ReceiverConfig
	proc *Processor
	log  *slog.Logger
	jobs chan *job
	// slots bounds the batches inside the receiver (QueueSize).
	slots chan struct{}
	// clusters are the per-cluster limits and counters, by cluster name;
	// unauthenticated counts the requests no client was found for.
	clusters        map[string]*clusterState
	unauthenticated clusterState
}

type job struct {
	ctx     context.Context
	cluster string
	raws    []string
	done    chan error
}

// Status codes the receiver answers, documented for operators: 200 the
// batch is processed and its alerts stored; 400 malformed (the API server
// drops it after its retries: fix the sender); 401/403 authentication;
// 413 too large; 415 not JSON; 429 queue full, the cluster's share of it
// full, or the cluster over its rate (limit.go), with Retry-After; 503
// store failing or slow (429 and 503 are retried by the API server's
// webhook backend, whose --audit-webhook-initial-backoff and batch buffer
// absorb the delay; a batch it gives up on after its retries is lost, so
// a cluster's rate should be above its normal audit volume).

// NewReceiver builds a receiver that hands batches to proc.
func NewReceiver(cfg ReceiverConfig, proc *Processor) (*Receiver, error) {
	if proc == nil {
		return nil, errors.New("new audit receiver: a processor is required")
	}
	if len(cfg.Clients) == 0 {
		return nil, errors.New("new audit receiver: no clients configured (a client certificate CN or a token per cluster)")
	}
	for i, c := range cfg.Clients {
		if (c.CN == "") == (c.Token == "") {
			return nil, fmt.Errorf("new audit receiver: client %d: set exactly one of CN and token", i)
		}
		if c.Token != "" && len(c.Token) < 16 {
			return nil, fmt.Errorf("new audit receiver: client %d: token shorter than 16 characters", i)
		}
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 16 << 20
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = 10_000
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 16
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 25 * time.Second
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.ClusterRate < 0 || cfg.ClusterBurst < 0 {
		return nil, errors.New("new audit receiver: negative cluster rate or burst")
	}
	r := &Receiver{cfg: cfg, proc: proc, log: cfg.Logger, jobs: make(chan *job, cfg.QueueSize), slots: make(chan struct{}, cfg.QueueSize),
		clusters: map[string]*clusterState{}}
	now := cfg.now()
	for _, c := range cfg.Clients {
		if r.clusters[c.Cluster] == nil {
			rate := cfg.ClusterRate
			if v, ok := cfg.ClusterRates[c.Cluster]; ok {
				rate = v
			}
			r.clusters[c.Cluster] = newClusterState(c.Cluster, rate, cfg.ClusterBurst, now)
		}
	}
	for name, v := range cfg.ClusterRates {
		if r.clusters[name] == nil {
			return nil, fmt.Errorf("new audit receiver: a rate is set for cluster %q, which no client posts for", name)
		}
		if v < 0 {
			return nil, fmt.Errorf("new audit receiver: negative rate for cluster %q", name)
		}
	}
	if r.cfg.ClusterShare <= 0 {
		r.cfg.ClusterShare = cfg.QueueSize
		if len(r.clusters) > 1 {
			r.cfg.ClusterShare = max(1, cfg.QueueSize/2)
		}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Run processes queued batches with the configured workers until ctx ends;
// batches still queued then are answered 503 (the API server resends them).
func (r *Receiver) Run(ctx context.Context) {
	done := make(chan struct{})
	for range r.cfg.Workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-r.jobs:
					j.done <- r.proc.Process(j.ctx, j.cluster, j.raws)
				}
			}
		}()
	}
	for range r.cfg.Workers {
		<-done
	}
	for {
		select {
		case j := <-r.jobs:
			j.done <- errors.New("audit receiver shutting down")
		default:
			return
		}
	}
}

// ServerTLSConfig is a TLS configuration for the receiver's listener: cert
// serves, and client certificates are verified against clientCAPEM when the
// client offers one (token clients offer none).
func ServerTLSConfig(cert tls.Certificate, clientCAPEM []byte) (*tls.Config, error) {
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if len(clientCAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(clientCAPEM) {
			return nil, errors.New("audit client CA: no PEM certificate found")
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// authenticate finds the client a request comes from.
func (r *Receiver) authenticate(req *http.Request) (*Client, int, string) {
	if req.TLS != nil && len(req.TLS.VerifiedChains) > 0 && len(req.TLS.VerifiedChains[0]) > 0 {
		cn := req.TLS.VerifiedChains[0][0].Subject.CommonName
		for i := range r.cfg.Clients {
			if c := &r.cfg.Clients[i]; c.CN != "" && c.CN == cn {
				return c, 0, ""
			}
		}
		return nil, http.StatusForbidden, fmt.Sprintf("client certificate CN %q is not an allowed audit client", alerts.CleanText(cn, 128))
	}
	h := req.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return nil, http.StatusUnauthorized, "a verified client certificate or an Authorization: Bearer token is required"
	}
	tok = strings.TrimSpace(tok)
	var found *Client
	for i := range r.cfg.Clients {
		c := &r.cfg.Clients[i]
		// Compare every token in constant time, without an early exit.
		if c.Token != "" && subtle.ConstantTimeCompare([]byte(c.Token), []byte(tok)) == 1 && found == nil {
			found = c
		}
	}
	if found == nil {
		return nil, http.StatusUnauthorized, "unknown token"
	}
	return found, 0, ""
}

// ServeHTTP receives one EventList: authenticate, apply the cluster's
// limits, read (bounded), validate every item, queue, wait for the alerts
// to be stored, answer.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		r.reply(w, http.StatusMethodNotAllowed, "POST an audit.k8s.io/v1 EventList")
		return
	}
	client, status, msg := r.authenticate(req)
	if client == nil {
		r.unauthenticated.rejected.Add(1)
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark-audit"`)
		}
		r.reply(w, status, msg)
		return
	}
	cs := r.clusters[client.Cluster]
	reject := func(status int, msg string) {
		cs.rejected.Add(1)
		r.reply(w, status, msg)
	}
	if ct := req.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			reject(http.StatusUnsupportedMediaType, fmt.Sprintf("want application/json, got %q", alerts.CleanText(ct, 100)))
			return
		}
	}
	if req.ContentLength > r.cfg.MaxBodyBytes {
		reject(http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d", req.ContentLength, r.cfg.MaxBodyBytes))
		return
	}
	// The cluster's rate, before reading the body: a cluster in debt costs
	// the receiver an authentication and this answer only.
	if d := cs.wait(r.cfg.now()); d > 0 {
		cs.throttled.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter(d)))
		r.reply(w, http.StatusTooManyRequests, fmt.Sprintf("cluster %q is over its rate of %g audit events/s; retry", client.Cluster, cs.rate))
		return
	}
	if n := cs.inFlight.Add(1); int(n) > r.cfg.ClusterShare {
		cs.inFlight.Add(-1)
		cs.busy.Add(1)
		w.Header().Set("Retry-After", "1")
		r.reply(w, http.StatusTooManyRequests, fmt.Sprintf("cluster %q already has %d batches in the receiver; retry", client.Cluster, r.cfg.ClusterShare))
		return
	}
	defer cs.inFlight.Add(-1)
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	default:
		cs.busy.Add(1)
		w.Header().Set("Retry-After", "1")
		r.reply(w, http.StatusTooManyRequests, "audit receiver busy; retry")
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			reject(http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", r.cfg.MaxBodyBytes))
			return
		}
		reject(http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	if len(b) == 0 {
		reject(http.StatusBadRequest, "empty body")
		return
	}
	// b is never written again: view it as a string instead of copying it
	// (the records handed on are substrings; alerts copy their evidence).
	body := unsafe.String(&b[0], len(b))
	var raws []string
	err = rules.EachAuditEvent(body, func(raw string, _ *rules.AuditEvent) error {
		if len(raws) >= r.cfg.MaxEvents {
			return errTooManyEvents
		}
		raws = append(raws, raw)
		return nil
	})
	switch {
	case errors.Is(err, errTooManyEvents):
		reject(http.StatusRequestEntityTooLarge, fmt.Sprintf("more than %d events in one EventList", r.cfg.MaxEvents))
		return
	case errors.Is(err, rules.ErrAuditTooLarge):
		reject(http.StatusRequestEntityTooLarge, err.Error())
		return
	case err != nil:
		reject(http.StatusBadRequest, err.Error())
		return
	}
	if len(raws) == 0 {
		cs.stored.Add(1)
		r.reply(w, http.StatusOK, "")
		return
	}
	// Charged once read and valid: a retry of a batch that was not stored
	// is charged again, as it costs the receiver again.
	cs.charge(r.cfg.now(), len(raws))
	j := &job{ctx: context.WithoutCancel(req.Context()), cluster: client.Cluster, raws: raws, done: make(chan error, 1)}
	r.jobs <- j // never blocks: there are as many queue places as slots
	timer := time.NewTimer(r.cfg.Wait)
	defer timer.Stop()
	select {
	case err := <-j.done:
		if err != nil {
			r.log.Warn("audit batch not stored; the API server will retry", "cluster", client.Cluster, "events", len(raws), "err", err)
			cs.failed.Add(1)
			w.Header().Set("Retry-After", "5")
			r.reply(w, http.StatusServiceUnavailable, "alerts could not be stored; retry")
			return
		}
		cs.events.Add(int64(len(raws)))
		cs.stored.Add(1)
		r.reply(w, http.StatusOK, "")
	case <-timer.C:
		cs.failed.Add(1)
		w.Header().Set("Retry-After", "5")
		r.reply(w, http.StatusServiceUnavailable, "batch still processing; retry (it will be recognized as a replay)")
	}
}

var errTooManyEvents = errors.New("too many events")

func (r *Receiver) reply(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if msg == "" {
		io.WriteString(w, "{}\n")
		return
	}
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Write(append(b, '\n'))
}

// ReceiverStats are the receiver's counters.
type ReceiverStats struct {
	Received int64 // events in batches answered 200
	Rejected int64 // requests refused (auth, size, syntax)
	Busy     int64 // requests answered 429 for a full queue or a cluster's full share (not for a cluster's rate)
}

// Stats returns the counters, summed over the clusters.
func (r *Receiver) Stats() ReceiverStats {
	var st ReceiverStats
	for _, c := range r.ClusterStats() {
		st.Received += c.Events
		st.Rejected += c.Rejected
		st.Busy += c.Busy
	}
	return st
}

// ClusterStats returns each configured cluster's counters, sorted by
// name, then those of unauthenticated requests (Cluster "").
func (r *Receiver) ClusterStats() []ClusterStats {
	out := make([]ClusterStats, 0, len(r.clusters)+1)
	for _, c := range r.clusters {
		out = append(out, c.stats())
	}
	slices.SortFunc(out, func(a, b ClusterStats) int { return strings.Compare(a.Cluster, b.Cluster) })
	return append(out, r.unauthenticated.stats())
}
