package export

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook signature headers. The signature is
// "sha256=" + hex(HMAC-SHA256(key, timestamp + "." + body)), where
// timestamp is the X-Bulwark-Timestamp header (Unix seconds): binding the
// time into the signature lets a receiver refuse replays older than a few
// minutes, and Idempotency-Key (the record id) lets it drop a redelivery.
const (
	HeaderSignature = "X-Bulwark-Signature"
	HeaderTimestamp = "X-Bulwark-Timestamp"
	HeaderIdemKey   = "Idempotency-Key"
)

// Sign computes the X-Bulwark-Signature value of a body.
func Sign(key []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(strconv.AppendInt(nil, ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Sentinel errors of VerifySignature.
var (
	ErrBadSignature = errors.New("webhook signature does not verify")
	ErrStale        = errors.New("webhook timestamp outside the tolerance (replay?)")
)

// VerifySignature is the receiver's check (Go receivers can call it; the
// README shows the same in a few lines of another language): the
// signature must match and the timestamp must be within tolerance of now.
func VerifySignature(key []byte, tsHeader, sigHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed timestamp", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	if !hmac.Equal([]byte(Sign(key, ts, body)), []byte(sigHeader)) {
		return ErrBadSignature
	}
	return nil
}

// webhook POSTs each record as one JSON document.
type webhook struct {
	c      *Config
	deps   Deps
	client *http.Client
}

func newWebhook(c *Config, deps Deps) (*webhook, error) {
	cl, err := httpClient(c, deps)
	if err != nil {
		return nil, err
	}
	return &webhook{c: c, deps: deps, client: cl}, nil
}

func (w *webhook) Name() string { return w.c.Name }

// body encodes a record in the export's format.
func encodeRecord(r *Record, format, version string) ([]byte, error) {
	if format == FormatOCSF {
		return json.Marshal(OCSF(r, version))
	}
	return r.appendJSON(nil)
}

// deliverEach sends the records one by one, in order, stopping at the first
// failure: with one record that error is returned as is; with more, a
// BatchError marks the failed record and the ones after it as not attempted,
// so they keep their place for the retry.
func deliverEach(ctx context.Context, recs []Record, send func(context.Context, *Record) error) error {
	errs := make([]error, len(recs))
	for i := range recs {
		if err := send(ctx, &recs[i]); err != nil {
			if len(recs) == 1 {
				return err
			}
			errs[i] = err
			for j := i + 1; j < len(recs); j++ {
				errs[j] = errNotAttempted
			}
			return &BatchError{Errs: errs}
		}
	}
	return nil
}

// Deliver sends the records one by one (deliverEach).
func (w *webhook) Deliver(ctx context.Context, recs []Record) error {
	return deliverEach(ctx, recs, w.send)
}

func (w *webhook) send(ctx context.Context, r *Record) error {
	body, err := encodeRecord(r, w.c.Format, w.deps.Version)
	if err != nil {
		return Permanent(fmt.Errorf("encode record %s: %w", r.ID, err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.c.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.c.Name, err)
	}
	for k, v := range w.c.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bulwark/"+w.deps.Version)
	req.Header.Set(HeaderIdemKey, sanitizeKey(r.ID))
	req.Header.Set("X-Bulwark-Export", w.c.Name)
	if w.c.Secrets.HMACKey != "" {
		ts := w.deps.Now().Unix()
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(HeaderSignature, Sign([]byte(w.c.Secrets.HMACKey), ts, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.c.Name, err)
	}
	defer drain(resp)
	if resp.StatusCode/100 == 2 {
		return nil
	}
	// 409 Conflict: the receiver already has this idempotency key.
	if resp.StatusCode == http.StatusConflict {
		return nil
	}
	return statusError("webhook "+w.c.Name, resp)
}

// chat posts a readable message per record to a Slack or Teams incoming
// webhook.
type chat struct {
	c      *Config
	deps   Deps
	client *http.Client
	build  func(r *Record) any
}

func newChat(c *Config, deps Deps, build func(r *Record) any) (*chat, error) {
	cl, err := httpClient(c, deps)
	if err != nil {
		return nil, err
	}
	return &chat{c: c, deps: deps, client: cl, build: build}, nil
}

func (h *chat) Name() string { return h.c.Name }

func (h *chat) Deliver(ctx context.Context, recs []Record) error {
	return deliverEach(ctx, recs, h.send)
}

func (h *chat) send(ctx context.Context, r *Record) error {
	body, err := json.Marshal(h.build(r))
	if err != nil {
		return Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.c.Secrets.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: bad webhook URL", h.c.Type, h.c.Name) // never echo the URL: it is the credential
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bulwark/"+h.deps.Version)
	resp, err := h.client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			err = ue.Unwrap() // *url.Error would print the URL
		}
		return fmt.Errorf("%s %s: %w", h.c.Type, h.c.Name, err)
	}
	defer drain(resp)
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return statusError(h.c.Type+" "+h.c.Name, resp)
}

var severityEmoji = map[string]string{"critical": ":red_circle:", "high": ":large_orange_circle:", "medium": ":large_yellow_circle:",
	"low": ":large_blue_circle:", "info": ":white_circle:"}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// where describes a record's place in one line ("prod/web · pod web-1 · node n1").
func where(r *Record) string {
	var parts []string
	if r.Cluster != "" {
		parts = append(parts, "cluster "+r.Cluster)
	}
	if r.Namespace != "" {
		parts = append(parts, "namespace "+r.Namespace)
	}
	if r.Workload != "" {
		parts = append(parts, r.Workload)
	} else if r.Pod != "" {
		parts = append(parts, "pod "+r.Pod)
	}
	if r.Container != "" {
		parts = append(parts, "container "+r.Container)
	}
	if r.Image != "" {
		parts = append(parts, "image "+r.Image)
	}
	if r.Node != "" {
		parts = append(parts, "node "+r.Node)
	}
	return strings.Join(parts, " · ")
}

// slackMessage is a Slack incoming-webhook payload: text (the
// notification fallback) and Block Kit blocks.
func slackMessage(r *Record) any {
	sev := r.Severity.String()
	head := fmt.Sprintf("%s *%s* %s alert: %s", severityEmoji[sev], strings.ToUpper(sev), r.Source, slackEscape(cut(r.Title, 2000)))
	fields := []map[string]string{
		{"type": "mrkdwn", "text": "*Rule*\n" + slackEscape(cut(r.Rule, 500))},
		{"type": "mrkdwn", "text": "*Time*\n" + r.Time.UTC().Format(time.RFC3339)},
	}
	if w := where(r); w != "" {
		fields = append(fields, map[string]string{"type": "mrkdwn", "text": "*Where*\n" + slackEscape(cut(w, 1000))})
	}
	if r.MitreTechnique != "" || r.MitreTactic != "" {
		fields = append(fields, map[string]string{"type": "mrkdwn", "text": "*MITRE ATT&amp;CK*\n" + strings.Trim(r.MitreTactic+" "+r.MitreTechnique, " ")})
	}
	return map[string]any{
		"text": fmt.Sprintf("[%s] %s", strings.ToUpper(sev), cut(r.Title, 2000)),
		"blocks": []any{
			map[string]any{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": head}},
			map[string]any{"type": "section", "fields": fields},
			map[string]any{"type": "context", "elements": []any{map[string]string{"type": "mrkdwn", "text": "Bulwark alert `" + slackEscape(r.ID) + "`"}}},
		},
	}
}

// teamsMessage is a Microsoft Teams incoming-webhook payload: a message
// with one Adaptive Card attachment (what Teams Workflows webhooks and
// the older connectors both accept).
func teamsMessage(r *Record) any {
	sev := r.Severity.String()
	color := map[string]string{"critical": "Attention", "high": "Attention", "medium": "Warning", "low": "Accent", "info": "Default"}[sev]
	facts := []map[string]string{{"title": "Severity", "value": sev}, {"title": "Source", "value": string(r.Source)},
		{"title": "Rule", "value": cut(r.Rule, 500)}, {"title": "Time", "value": r.Time.UTC().Format(time.RFC3339)}}
	if w := where(r); w != "" {
		facts = append(facts, map[string]string{"title": "Where", "value": cut(w, 1000)})
	}
	if r.MitreTechnique != "" || r.MitreTactic != "" {
		facts = append(facts, map[string]string{"title": "MITRE ATT&CK", "value": strings.Trim(r.MitreTactic+" "+r.MitreTechnique, " ")})
	}
	facts = append(facts, map[string]string{"title": "Alert id", "value": r.ID})
	return map[string]any{
		"type": "message",
		"attachments": []any{map[string]any{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"contentUrl":  nil,
			"content": map[string]any{
				"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
				"type":    "AdaptiveCard",
				"version": "1.4",
				"body": []any{
					map[string]any{"type": "TextBlock", "size": "Medium", "weight": "Bolder", "color": color, "wrap": true,
						"text": fmt.Sprintf("%s %s alert: %s", strings.ToUpper(sev), r.Source, cut(r.Title, 2000))},
					map[string]any{"type": "FactSet", "facts": facts},
				},
			},
		}},
	}
}
