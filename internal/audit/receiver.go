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
	"strings"
	"sync/atomic"
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
	Wait   time.Duration
	Logger *slog.Logger
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

	received, rejected, busy atomic.Int64
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
// 413 too large; 415 not JSON; 429 queue full and 503 store failing or
// slow (both retried by the API server's webhook backend, whose
// --audit-webhook-initial-backoff and batch buffer absorb the delay).

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
	r := &Receiver{cfg: cfg, proc: proc, log: cfg.Logger, jobs: make(chan *job, cfg.QueueSize), slots: make(chan struct{}, cfg.QueueSize)}
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

// ServeHTTP receives one EventList: authenticate, read (bounded), validate
// every item, queue, wait for the alerts to be stored, answer.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		r.reply(w, http.StatusMethodNotAllowed, "POST an audit.k8s.io/v1 EventList")
		return
	}
	client, status, msg := r.authenticate(req)
	if client == nil {
		r.rejected.Add(1)
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark-audit"`)
		}
		r.reply(w, status, msg)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			r.rejected.Add(1)
			r.reply(w, http.StatusUnsupportedMediaType, fmt.Sprintf("want application/json, got %q", alerts.CleanText(ct, 100)))
			return
		}
	}
	if req.ContentLength > r.cfg.MaxBodyBytes {
		r.rejected.Add(1)
		r.reply(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d", req.ContentLength, r.cfg.MaxBodyBytes))
		return
	}
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	default:
		r.busy.Add(1)
		w.Header().Set("Retry-After", "1")
		r.reply(w, http.StatusTooManyRequests, "audit receiver busy; retry")
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.cfg.MaxBodyBytes))
	if err != nil {
		r.rejected.Add(1)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			r.reply(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", r.cfg.MaxBodyBytes))
			return
		}
		r.reply(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	if len(b) == 0 {
		r.rejected.Add(1)
		r.reply(w, http.StatusBadRequest, "empty body")
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
		r.rejected.Add(1)
		r.reply(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("more than %d events in one EventList", r.cfg.MaxEvents))
		return
	case errors.Is(err, rules.ErrAuditTooLarge):
		r.rejected.Add(1)
		r.reply(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	case err != nil:
		r.rejected.Add(1)
		r.reply(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(raws) == 0 {
		r.reply(w, http.StatusOK, "")
		return
	}
	j := &job{ctx: context.WithoutCancel(req.Context()), cluster: client.Cluster, raws: raws, done: make(chan error, 1)}
	r.jobs <- j // never blocks: there are as many queue places as slots
	timer := time.NewTimer(r.cfg.Wait)
	defer timer.Stop()
	select {
	case err := <-j.done:
		if err != nil {
			r.log.Warn("audit batch not stored; the API server will retry", "cluster", client.Cluster, "events", len(raws), "err", err)
			w.Header().Set("Retry-After", "5")
			r.reply(w, http.StatusServiceUnavailable, "alerts could not be stored; retry")
			return
		}
		r.received.Add(int64(len(raws)))
		r.reply(w, http.StatusOK, "")
	case <-timer.C:
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
	Busy     int64 // requests answered 429
}

// Stats returns the counters.
func (r *Receiver) Stats() ReceiverStats {
	return ReceiverStats{Received: r.received.Load(), Rejected: r.rejected.Load(), Busy: r.busy.Load()}
}
