package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// HTTPSink posts alerts to central's POST /api/v1/alerts (role agent or
// admin), split to the contract's batch limits. Central is idempotent by
// alert id, so a batch retried after a timeout stores nothing twice.
type HTTPSink struct {
	// Server is central's base URL (https://host:8443).
	Server string
	Token  string
	// Client is the HTTP client (its TLS config carries the server CA);
	// nil is http.DefaultClient.
	Client *http.Client
}

// IngestAlerts posts as in batches of at most alerts.MaxBatch alerts and
// about alerts.MaxBodyBytes.
func (s *HTTPSink) IngestAlerts(ctx context.Context, as []alerts.Alert) (int, int, error) {
	var accepted, dups int
	for len(as) > 0 {
		n, body, err := s.nextBatch(as)
		if err != nil {
			return accepted, dups, err
		}
		res, err := s.post(ctx, body)
		if err != nil {
			return accepted, dups, err
		}
		accepted += res.Accepted
		dups += res.Duplicates
		as = as[n:]
	}
	return accepted, dups, nil
}

// nextBatch encodes the longest prefix of as within the limits.
func (s *HTTPSink) nextBatch(as []alerts.Alert) (int, []byte, error) {
	n := min(len(as), alerts.MaxBatch)
	for {
		body, err := json.Marshal(alerts.Batch{Alerts: as[:n]})
		if err != nil {
			return 0, nil, fmt.Errorf("encode alert batch: %w", err)
		}
		if len(body) <= alerts.MaxBodyBytes || n == 1 {
			return n, body, nil
		}
		n /= 2
	}
}

func (s *HTTPSink) post(ctx context.Context, body []byte) (*alerts.IngestResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(s.Server, "/")+"/api/v1/alerts", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("post alerts: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set(alerts.HeaderSentAt, alerts.SentAt(time.Now()))
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("post alerts: %w", err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("post alerts: %s: %s", resp.Status, strings.TrimSpace(string(rb)))
	}
	var res alerts.IngestResult
	if err := json.Unmarshal(rb, &res); err != nil {
		return nil, fmt.Errorf("post alerts: decode answer: %w", err)
	}
	return &res, nil
}
