package store

import (
	"time"
	"unsafe"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// The export log's payload is the JSON of internal/export.Record: the kind
// then the alert's fields, exactly as encoding/json writes
// exportPayload{Kind, *alerts.Alert}. It is written once per accepted
// alert and read back once per delivery batch, and encoding/json's
// reflection made both the largest CPU costs of an exported alert (about
// 5 µs to write and 13 µs to read a sensor alert). The two functions here
// do the same work directly on the bytes, for that one flat shape only:
//
//   - appendExportPayload writes byte for byte what json.Marshal writes
//     (TestExportPayloadMatchesMarshal and FuzzExportPayload compare them),
//     and says when it cannot (then the caller marshals).
//   - DecodeExportPayload (alerts.ReadJSON) reads what appendExportPayload
//     and json.Marshal write, reports whether the payload is exactly that
//     canonical form (so an exporter may send the stored bytes as the
//     record's JSON instead of encoding it again), and declines anything
//     else (unknown or differently cased keys, whitespace, non-string
//     values, malformed UTF-8), which the caller then hands to
//     encoding/json: the result is always what json.Unmarshal gives for a
//     valid payload (FuzzDecodeExportPayload).

// appendExportPayload appends the JSON of exportPayload{kind, a} exactly
// as json.Marshal writes it. ok is false when it cannot vouch for that (a
// time or severity json.Marshal refuses, evidence that is not already
// compact, HTML-safe JSON): the caller then uses json.Marshal.
func appendExportPayload(b []byte, kind string, a *alerts.Alert) (_ []byte, ok bool) {
	_, off := a.Time.Zone()
	if y := a.Time.Year(); y < 0 || y > 9999 || off <= -24*3600 || off >= 24*3600 || !a.Severity.Valid() {
		return b, false
	}
	if len(a.Evidence) > 0 && !alerts.CanonicalJSON(a.Evidence) {
		return b, false
	}
	b = append(b, `{"kind":`...)
	b = alerts.AppendJSONString(b, kind)
	b = append(b, `,"id":`...)
	b = alerts.AppendJSONString(b, a.ID)
	b = append(b, `,"time":"`...)
	b = a.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","source":`...)
	b = alerts.AppendJSONString(b, string(a.Source))
	b = append(b, `,"rule":`...)
	b = alerts.AppendJSONString(b, a.Rule)
	b = appendOmitEmpty(b, `,"rule_version":`, a.RuleVersion)
	b = append(b, `,"severity":"`...)
	b = append(b, a.Severity.String()...)
	b = append(b, `","title":`...)
	b = alerts.AppendJSONString(b, a.Title)
	b = appendOmitEmpty(b, `,"mitre_tactic":`, a.MitreTactic)
	b = appendOmitEmpty(b, `,"mitre_technique":`, a.MitreTechnique)
	b = appendOmitEmpty(b, `,"cluster":`, a.Cluster)
	b = appendOmitEmpty(b, `,"namespace":`, a.Namespace)
	b = appendOmitEmpty(b, `,"pod":`, a.Pod)
	b = appendOmitEmpty(b, `,"container":`, a.Container)
	b = appendOmitEmpty(b, `,"container_id":`, a.ContainerID)
	b = appendOmitEmpty(b, `,"image":`, a.Image)
	b = appendOmitEmpty(b, `,"image_digest":`, a.ImageDigest)
	b = appendOmitEmpty(b, `,"node":`, a.Node)
	b = appendOmitEmpty(b, `,"workload":`, a.Workload)
	if len(a.Evidence) > 0 {
		b = append(b, `,"evidence":`...)
		b = append(b, a.Evidence...)
	}
	b = appendOmitEmpty(b, `,"fingerprint":`, a.Fingerprint)
	return append(b, '}'), true
}

func appendOmitEmpty(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return alerts.AppendJSONString(append(b, key...), v)
}

// DecodeExportPayload reads an export log payload (the JSON of
// internal/export.Record: kind and alert) with alerts.ReadJSON. ok is
// false when the payload is not in the form json.Marshal writes: the
// caller must then decode it with encoding/json, which handles every form.
// When ok, the result is what json.Unmarshal gives, and canonical reports
// whether p is byte for byte what json.Marshal writes for it. The string
// fields and the evidence share p's memory (p must not change: a leased
// record's payload never does), so decoding copies nothing.
func DecodeExportPayload(p []byte) (kind string, a alerts.Alert, canonical, ok bool) {
	if len(p) == 0 {
		return "", a, false, false
	}
	return alerts.ReadJSONString(unsafe.String(&p[0], len(p)), true)
}
