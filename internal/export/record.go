package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/store"
)

// Record is one thing to export: an alert (the ingest contract's shape)
// tagged with its kind. Scan findings and posture results use the same
// fields (source scanner or posture, the rule naming the check or the
// vulnerability, the evidence holding the details), so every receiver
// needs one mapping only.
type Record struct {
	// Kind is alert, finding or posture.
	Kind string `json:"kind"`
	alerts.Alert
	// Pos is the record's position in the store's export log (zero for a
	// record from elsewhere, e.g. a test delivery). Receivers that can
	// store it (Kafka headers) let a restarted exporter learn where it
	// stopped.
	Pos LogPos `json:"-"`

	// raw is the record's JSON exactly as json.Marshal writes it, when it
	// was read from the log in that form (nil otherwise): exporters that
	// send the record's JSON send these bytes instead of encoding it
	// again (appendJSON). Records are read-only to exporters, so it cannot
	// go stale.
	raw []byte
	// fp is the computed fingerprint of a decoded record that has none
	// (Fingerprint): computed once when decoded, not by every format of
	// every export.
	fp string
}

// appendJSON appends the record's JSON (json.Marshal's bytes).
func (r *Record) appendJSON(b []byte) ([]byte, error) {
	if r.raw != nil {
		return append(b, r.raw...), nil
	}
	j, err := json.Marshal(r)
	if err != nil {
		return b, err
	}
	return append(b, j...), nil
}

// LogPos is a position in the export log: (XID, Seq) order is delivery
// order (store.OutboxRecord's XID and ID).
type LogPos struct{ XID, Seq int64 }

// IsZero reports a record from outside the log.
func (p LogPos) IsZero() bool { return p == LogPos{} }

// Less orders positions.
func (p LogPos) Less(q LogPos) bool { return p.XID < q.XID || (p.XID == q.XID && p.Seq < q.Seq) }

// String is "XID.Seq", the bulwark-pos header.
func (p LogPos) String() string {
	return strconv.FormatInt(p.XID, 10) + "." + strconv.FormatInt(p.Seq, 10)
}

// parseLogPos reads String's form.
func parseLogPos(s string) (LogPos, bool) {
	x, q, ok := strings.Cut(s, ".")
	xi, err1 := strconv.ParseInt(x, 10, 64)
	qi, err2 := strconv.ParseInt(q, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return LogPos{}, false
	}
	return LogPos{xi, qi}, true
}

// Key is the record's idempotency key (the alert's id).
func (r *Record) Key() string { return r.ID }

// Fingerprint is the grouping key (Kafka message key).
func (r *Record) Fingerprint() string {
	if r.Alert.Fingerprint == "" && r.fp != "" {
		return r.fp
	}
	return r.EffectiveFingerprint()
}

// decodeRecord reads an outbox payload: directly when it is in the form
// the store writes (store.DecodeExportPayload, several times faster than
// encoding/json, which was the largest cost of a delivery), else with
// encoding/json. The record shares b's memory (b must not change).
//
// The record is not validated again (alerts.Validate): the log is
// central's own table, written only by central in the transaction that
// accepted the record, after the ingest validated it (or built by central
// itself: findings, the test record). What is checked is what delivery
// relies on: a well-formed record with an id (the idempotency key);
// anything else becomes a dead letter. Nothing here allocates more than
// the payload's size, so no size bound is needed to stay bounded.
func decodeRecord(b []byte) (Record, error) {
	var r Record
	if kind, a, canonical, ok := store.DecodeExportPayload(b); ok {
		r.Kind, r.Alert = kind, a
		if canonical {
			r.raw = b
		}
		if r.ID == "" {
			return r, errors.New("decode record: no id")
		}
		if r.Kind == "" {
			r.Kind, r.raw = store.ExportKindAlert, nil
		}
		if r.Alert.Fingerprint == "" {
			r.fp = alerts.Fingerprint(&r.Alert)
		}
		return r, nil
	}
	return decodeRecordJSON(b)
}

// decodeRecordJSON is decodeRecord's encoding/json path (its own
// function: the common path's record then stays off the heap).
func decodeRecordJSON(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode record: %w", err)
	}
	if r.ID == "" {
		return r, errors.New("decode record: no id")
	}
	if r.Kind == "" {
		r.Kind = store.ExportKindAlert
	}
	if r.Alert.Fingerprint == "" {
		r.fp = alerts.Fingerprint(&r.Alert)
	}
	return r, nil
}

// FindingItem makes the outbox item of a vulnerability finding (kind
// finding, source scanner): for example a CISA KEV vulnerability newly
// found in a stored image. key must identify the finding (image digest and
// vulnerability id), so it is exported once.
func FindingItem(key string, at time.Time, sev alerts.Severity, vulnID, pkg, image, digest, title string, evidence json.RawMessage) (store.ExportItem, error) {
	r := Record{Kind: store.ExportKindFinding, Alert: alerts.Alert{
		ID: key, Time: at.UTC(), Source: alerts.SourceScanner, Rule: vulnID, Severity: sev,
		Title: title, Image: image, ImageDigest: digest, Evidence: evidence,
		Fingerprint: digest + "/" + vulnID + "/" + pkg,
	}}
	b, err := json.Marshal(r)
	if err != nil {
		return store.ExportItem{}, fmt.Errorf("finding item %s: %w", key, err)
	}
	return store.ExportItem{Kind: store.ExportKindFinding, Key: key, Source: string(alerts.SourceScanner), Severity: sev, Payload: b}, nil
}

// sanitizeKey makes a record id safe in a header or a URL path segment
// (ids are validated by the ingest; findings' keys are built here).
func sanitizeKey(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e {
			return '_'
		}
		return r
	}, s)
}

// testRecord is the synthetic alert of a test delivery.
func testRecord(deps Deps) Record {
	now := time.Now
	if deps.Now != nil {
		now = deps.Now
	}
	t := now().UTC()
	return Record{Kind: store.ExportKindAlert, Alert: alerts.Alert{
		ID: "bulwark-test-" + strconv.FormatInt(t.UnixNano(), 36), Time: t, Source: alerts.SourceSensor,
		Rule: "Bulwark export test", Severity: alerts.SeverityInfo,
		Title: "Test delivery from Bulwark central: the export works", Evidence: json.RawMessage(`{"test":true}`),
	}}
}
