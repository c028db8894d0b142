package export

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// splunk sends a batch as concatenated HEC event envelopes to
// /services/collector/event ("Authorization: Splunk TOKEN"). With Ack, it
// sends on a channel and polls /services/collector/ack until the indexer
// acknowledges the batch, so "delivered" means indexed, not just received.
// HEC has no idempotency key: delivery is at least once.
type splunk struct {
	c       *Config
	deps    Deps
	client  *http.Client
	channel string
}

func newSplunk(c *Config, deps Deps) (*splunk, error) {
	cl, err := httpClient(c, deps)
	if err != nil {
		return nil, err
	}
	s := &splunk{c: c, deps: deps, client: cl, channel: c.Channel}
	if c.Ack && s.channel == "" {
		s.channel = uuid4()
	}
	return s, nil
}

func uuid4() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func (s *splunk) Name() string { return s.c.Name }

// hecEvent is the HEC event envelope.
type hecEvent struct {
	Time       float64 `json:"time"`
	Host       string  `json:"host,omitempty"`
	Source     string  `json:"source"`
	SourceType string  `json:"sourcetype"`
	Index      string  `json:"index,omitempty"`
	Event      any     `json:"event"`
}

func (s *splunk) Deliver(ctx context.Context, recs []Record) error {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for i := range recs {
		r := &recs[i]
		var ev any = r
		if s.c.Format == FormatOCSF {
			ev = OCSF(r, s.deps.Version)
		}
		host := r.Node
		if host == "" {
			host = r.Cluster
		}
		if err := enc.Encode(hecEvent{Time: float64(r.Time.UnixMicro()) / 1e6, Host: host, Source: "bulwark",
			SourceType: s.c.SourceType, Index: s.c.Index, Event: ev}); err != nil {
			return Permanent(fmt.Errorf("encode record %s: %w", r.ID, err))
		}
	}
	resp, err := s.post(ctx, "/services/collector/event", body.Bytes())
	if err != nil {
		return err
	}
	var ans struct {
		Text  string `json:"text"`
		Code  int    `json:"code"`
		AckID *int64 `json:"ackId"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		resp.Body = io.NopCloser(bytes.NewReader(b))
		return statusError("splunk hec "+s.c.Name, resp)
	}
	if err := json.Unmarshal(b, &ans); err != nil || ans.Code != 0 {
		return fmt.Errorf("splunk hec %s: unexpected answer %q", s.c.Name, cut(string(b), 200))
	}
	if !s.c.Ack {
		return nil
	}
	if ans.AckID == nil {
		return fmt.Errorf("splunk hec %s: ack requested but the answer has no ackId (is indexer acknowledgement enabled on the token?)", s.c.Name)
	}
	return s.waitAck(ctx, *ans.AckID)
}

func (s *splunk) post(ctx context.Context, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(s.c.URL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("splunk hec %s: %w", s.c.Name, err)
	}
	req.Header.Set("Authorization", "Splunk "+s.c.Secrets.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bulwark/"+s.deps.Version)
	if s.channel != "" {
		req.Header.Set("X-Splunk-Request-Channel", s.channel)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("splunk hec %s: %w", s.c.Name, err)
	}
	return resp, nil
}

// waitAck polls the ack endpoint until the batch is indexed or ctx ends
// (then the batch is retried: at least once).
func (s *splunk) waitAck(ctx context.Context, id int64) error {
	body, _ := json.Marshal(map[string][]int64{"acks": {id}})
	for wait := 100 * time.Millisecond; ; wait = min(wait*2, 2*time.Second) {
		resp, err := s.post(ctx, "/services/collector/ack", body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			defer drain(resp)
			return statusError("splunk hec ack "+s.c.Name, resp)
		}
		var ans struct {
			Acks map[string]bool `json:"acks"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&ans)
		drain(resp)
		if err != nil {
			return fmt.Errorf("splunk hec ack %s: %w", s.c.Name, err)
		}
		if ans.Acks[fmt.Sprint(id)] {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("splunk hec %s: ack %d not received: %w", s.c.Name, id, ctx.Err())
		case <-time.After(wait):
		}
	}
}
