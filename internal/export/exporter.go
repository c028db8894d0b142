package export

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// Exporter delivers records to one receiver.
//
// Deliver sends the records in order and returns nil when all were
// accepted. When only some were, it returns a *BatchError saying which;
// any other error applies to the whole batch. Errors wrapped with
// Permanent are refusals that retrying cannot fix (the records become dead
// letters); all others are retried after a backoff.
type Exporter interface {
	Name() string
	Deliver(ctx context.Context, recs []Record) error
}

// ErrPermanent marks a refusal retrying cannot fix (a 4xx for that
// record, a record the receiver cannot take).
var ErrPermanent = errors.New("refused permanently")

// Permanent wraps err as a permanent failure.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrPermanent, err)
}

// errNotAttempted is the per-record error of records after a failure in
// an exporter that delivers one by one (they keep their place in line).
var errNotAttempted = errors.New("not attempted: an earlier record failed")

// BatchError reports per-record outcomes: Errs[i] is nil when recs[i] was
// delivered.
type BatchError struct {
	Errs []error
}

func (e *BatchError) Error() string {
	failed, first := 0, error(nil)
	for _, err := range e.Errs {
		if err != nil {
			failed++
			if first == nil || errors.Is(first, errNotAttempted) {
				first = err
			}
		}
	}
	return fmt.Sprintf("%d of %d records failed: %v", failed, len(e.Errs), first)
}

// Deps are what exporters are built with.
type Deps struct {
	// Logger receives exporter messages; nil discards them.
	Logger *slog.Logger
	// HTTPClient overrides the client of HTTP exporters (tests); nil
	// builds one from the export's TLS settings.
	HTTPClient *http.Client
	// Version is central's version (CEF header, OCSF metadata).
	Version string
	// Now is the clock (webhook timestamps); nil is time.Now.
	Now func() time.Time
}

// New builds the exporter of a normalized configuration: the one explicit
// list of export types.
func New(c *Config, deps Deps) (Exporter, error) {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Version == "" {
		deps.Version = "dev"
	}
	switch c.Type {
	case TypeWebhook:
		return newWebhook(c, deps)
	case TypeSlack:
		return newChat(c, deps, slackMessage)
	case TypeTeams:
		return newChat(c, deps, teamsMessage)
	case TypeSyslog:
		return newSyslog(c, deps)
	case TypeSplunkHEC:
		return newSplunk(c, deps)
	case TypeElasticsearch:
		return newElastic(c, deps)
	case TypeKafka:
		return newKafka(c, deps)
	}
	return nil, configErr(c.Name, "type %q has no exporter", c.Type)
}

// tlsConfig builds a client TLS configuration.
func (t *TLS) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented as tests only
	if t.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.CAPEM)) {
			return nil, errors.New("tls: no certificate in the CA PEM")
		}
		cfg.RootCAs = pool
	} else if t.CAFile != "" {
		b, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("tls: no certificate in %s", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// httpClient is the client of HTTP exporters: bounded by the export's
// timeout, the export's TLS settings, no redirects (a redirect to another
// host would carry the signature or token there).
func httpClient(c *Config, deps Deps) (*http.Client, error) {
	if deps.HTTPClient != nil {
		return deps.HTTPClient, nil
	}
	tc, err := c.TLS.config()
	if err != nil {
		return nil, configErr(c.Name, "%v", err)
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: time.Duration(c.Timeout),
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr, Timeout: time.Duration(c.Timeout),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// statusError classifies an HTTP answer: 408, 425, 429 and 5xx are worth
// retrying; other 4xx are permanent for the request's records.
func statusError(op string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	err := fmt.Errorf("%s: HTTP %d: %s", op, resp.StatusCode, oneLine(string(body)))
	switch {
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooEarly,
		resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			if s, perr := strconv.Atoi(ra); perr == nil {
				return &retryAfterError{err: err, after: time.Duration(s) * time.Second}
			}
		}
		return err
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		// A wrong or revoked credential is fixed by the operator, not by
		// dropping the records: retry (with backoff) until it is.
		return err
	case resp.StatusCode >= 400:
		return Permanent(err)
	}
	return err
}

// retryAfterError carries a receiver's Retry-After.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// drain reads and closes a response body so the connection is reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}
