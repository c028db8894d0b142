package sensor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/sensor/spool"
)

// SpoolSink makes alerts durable before they go to central: once
// WriteAlert returns nil the alert survives a crash. A full spool refuses
// the alert, counted in AlertsSpoolFull.
type SpoolSink struct {
	Spool *spool.Spool
	C     *Counters
}

// WriteAlert implements Sink.
func (s *SpoolSink) WriteAlert(_ *alerts.Alert, enc []byte) error {
	if err := s.Spool.Append(enc); err != nil {
		if errors.Is(err, spool.ErrFull) {
			s.C.AlertsSpoolFull.Add(1)
		} else {
			s.C.OutputErrors.Add(1)
		}
		return err
	}
	s.C.AlertsSpooled.Add(1)
	return nil
}

// WriteAlerts implements BatchSink: one fsync for the batch. When the
// batch does not fit in a nearly full spool, alerts are appended one by one
// so every alert that fits is kept (the rest counted).
func (s *SpoolSink) WriteAlerts(as []*alerts.Alert, encs [][]byte) error {
	if err := s.Spool.Append(encs...); err != nil {
		if !errors.Is(err, spool.ErrFull) {
			s.C.OutputErrors.Add(uint64(len(encs)))
			return err
		}
		var last error
		for i := range encs {
			if err := s.WriteAlert(as[i], encs[i]); err != nil {
				last = err
			}
		}
		return last
	}
	s.C.AlertsSpooled.Add(uint64(len(encs)))
	return nil
}

// Forwarder sends spooled alerts to central's POST /api/v1/alerts in
// order, in batches, and acknowledges them in the spool only after central
// answered 2xx. Central is idempotent by alert id, so the batch that was in
// flight when the sensor died is simply sent again after a restart.
type Forwarder struct {
	Spool  *spool.Spool
	URL    string // central's base URL
	Token  string
	Client *http.Client
	C      *Counters
	Log    *slog.Logger
	// BatchMax (≤ alerts.MaxBatch, default 500) and BatchBytes (default
	// 4 MiB, below alerts.MaxBodyBytes) bound one request.
	BatchMax   int
	BatchBytes int
	// Backoff bounds the wait after a failure (default 1s doubling to 30s).
	MinBackoff, MaxBackoff time.Duration

	// After a 400 on a batch, records are sent one at a time up to the end
	// of that batch, so only the offending alert is skipped.
	singleUntil *spool.Position
}

// ErrRejected is a 4xx answer other than 401/403/429: the batch will never
// be accepted as it is.
var ErrRejected = errors.New("central rejected the batch")

// Run delivers until ctx ends. When ctx ends it stops immediately; what is
// not acknowledged stays in the spool for the next start.
func (f *Forwarder) Run(ctx context.Context) {
	f.defaults()
	backoff := f.MinBackoff
	tick := time.NewTicker(2 * time.Second) // also polls, in case a notify was coalesced away
	defer tick.Stop()
	for ctx.Err() == nil {
		n, err := f.Once(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			f.C.DeliveryFailures.Add(1)
			f.Log.Warn("deliver alerts to central (will retry)", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, f.MaxBackoff)
			continue
		}
		backoff = f.MinBackoff
		if n > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-f.Spool.Notify():
		case <-tick.C:
		}
	}
}

func (f *Forwarder) defaults() {
	if f.BatchMax <= 0 || f.BatchMax > alerts.MaxBatch {
		f.BatchMax = 500
	}
	if f.BatchBytes <= 0 || f.BatchBytes > alerts.MaxBodyBytes/2 {
		f.BatchBytes = 4 << 20
	}
	if f.MinBackoff <= 0 {
		f.MinBackoff = time.Second
	}
	if f.MaxBackoff <= 0 {
		f.MaxBackoff = 30 * time.Second
	}
	if f.Client == nil {
		f.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if f.Log == nil {
		f.Log = slog.New(slog.DiscardHandler)
	}
}

// Once sends one batch (if any is pending) and returns how many alerts
// central acknowledged.
func (f *Forwarder) Once(ctx context.Context) (int, error) {
	f.defaults()
	max := f.BatchMax
	if f.singleUntil != nil {
		max = 1
	}
	recs, pos, err := f.Spool.Read(max, f.BatchBytes)
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	var body bytes.Buffer
	body.WriteString(`{"alerts":[`)
	for i, r := range recs {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(r)
	}
	body.WriteString(`]}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL+"/api/v1/alerts", &body)
	if err != nil {
		return 0, fmt.Errorf("post alerts: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(alerts.HeaderSentAt, alerts.SentAt(time.Now()))
	if f.Token != "" {
		req.Header.Set("Authorization", "Bearer "+f.Token)
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post alerts: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode/100 == 2:
		var res alerts.IngestResult
		if err := json.Unmarshal(msg, &res); err != nil {
			return 0, fmt.Errorf("post alerts: answer: %w", err)
		}
		if err := f.Spool.Ack(pos); err != nil {
			return 0, err
		}
		f.passed(pos)
		f.C.AlertsDelivered.Add(uint64(len(recs)))
		f.Log.Debug("alerts delivered", "sent", len(recs), "accepted", res.Accepted, "duplicates", res.Duplicates)
		return len(recs), nil
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusRequestEntityTooLarge:
		if len(recs) > 1 {
			// Find the offending alert(s): resend this batch one by one.
			f.singleUntil = &pos
			return 0, fmt.Errorf("post alerts: %w: %s (resending one by one): %s", ErrRejected, resp.Status, trunc(string(msg), 300))
		}
		// One alert central will never take: retrying forever would block
		// every later alert, so it is skipped, loudly, and counted.
		f.Log.Error("central rejected an alert; skipping it", "status", resp.Status, "alert", trunc(string(recs[0]), 300), "answer", trunc(string(msg), 300))
		if err := f.Spool.Ack(pos); err != nil {
			return 0, err
		}
		f.passed(pos)
		f.C.AlertsRejected.Add(1)
		return 1, nil
	default:
		return 0, fmt.Errorf("post alerts: %s: %s", resp.Status, trunc(string(bytes.TrimSpace(msg)), 300))
	}
}

func (f *Forwarder) passed(p spool.Position) {
	if u := f.singleUntil; u != nil && (p.Seg > u.Seg || p.Seg == u.Seg && p.Off >= u.Off) {
		f.singleUntil = nil
	}
}
