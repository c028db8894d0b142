package store

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// payloadAlert is a full sensor alert, the shape the ingest queues.
func payloadAlert() alerts.Alert {
	return alerts.Alert{
		ID: "0b7c6f2e-4d1a-4c8e-9f00-000000000001", Time: time.Date(2026, 11, 27, 16, 30, 0, 1000, time.UTC),
		Source: alerts.SourceSensor, Rule: "Terminal shell in container", RuleVersion: "falco-rules@3.2.0",
		Severity: alerts.SeverityHigh, Title: "A shell was spawned (user=root shell=bash cmdline=bash -i)",
		MitreTactic: "TA0002", MitreTechnique: "T1059.004", Cluster: "prod-eu", Namespace: "payments",
		Pod: "api-7d9c5b7f6-x2k4q", Container: "api", ContainerID: "3f2a9c1b7e6d",
		Image: "registry.example.com/payments/api:1.42.0", ImageDigest: "sha256:9f86d081884c7d659a2feaa0c55ad015",
		Node: "node-3", Workload: "Deployment/api",
		Evidence: json.RawMessage(`{"proc.name":"bash","proc.tty":34816,"args":["-i",null,true,1.5e3],"n":{"x":[]}}`),
	}
}

// TestExportPayloadMatchesMarshal: the direct writer gives json.Marshal's
// bytes (or declines), and the reader gives json.Unmarshal's result and
// recognizes json.Marshal's form as canonical, for alerts with the
// characters encoding/json escapes.
func TestExportPayloadMatchesMarshal(t *testing.T) {
	full := payloadAlert()
	minimal := alerts.Alert{ID: "x", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 2*3600)), Source: "audit",
		Rule: "r", Severity: alerts.SeverityInfo}
	tricky := full
	tricky.Title = "quote \" backslash \\ <script>&amp; tab\t nl\n cr\r bell\x07 \b\f é 日本 \u2028\u2029 bad\xff end"
	tricky.Workload = "Deployment/<a>"
	tricky.Evidence = json.RawMessage(`{"a":"\u003c\"x\"\\n","b":"é"}`)
	spaced := full
	spaced.Evidence = json.RawMessage(`{ "a": 1 }`)
	html := full
	html.Evidence = json.RawMessage(`{"a":"<b>"}`)
	sep := full
	sep.Evidence = json.RawMessage("{\"a\":\"x\u2028y\"}")
	nullEv := full
	nullEv.Evidence = json.RawMessage(`null`)
	for name, tc := range map[string]struct {
		a      alerts.Alert
		direct bool // appendExportPayload is expected to write it
	}{
		"full": {full, true}, "minimal": {minimal, true}, "tricky": {tricky, true}, "spaced evidence": {spaced, false},
		"html evidence": {html, false}, "U+2028 evidence": {sep, false}, "null evidence": {nullEv, true},
	} {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(exportPayload{Kind: ExportKindAlert, Alert: &tc.a})
			if err != nil {
				t.Fatal(err)
			}
			got, ok := appendExportPayload(nil, ExportKindAlert, &tc.a)
			if ok != tc.direct {
				t.Fatalf("appendExportPayload ok = %v, want %v", ok, tc.direct)
			}
			if ok && !bytes.Equal(got, want) {
				t.Fatalf("appendExportPayload:\n got %s\nwant %s", got, want)
			}
			item, err := AlertExportItem(&tc.a)
			if err != nil || !bytes.Equal(item.Payload, want) {
				t.Fatalf("AlertExportItem = %s, %v; want %s", item.Payload, err, want)
			}
			checkDecode(t, want, true)
		})
	}
}

// checkDecode compares DecodeExportPayload with json.Unmarshal on a valid
// payload (mustDecode: the reader may not decline it), and its canonical
// with whether json.Marshal writes the decoded record back as p.
func checkDecode(t *testing.T, p []byte, mustDecode bool) {
	t.Helper()
	kind, a, canonical, ok := DecodeExportPayload(p)
	if !ok {
		if mustDecode {
			t.Fatalf("DecodeExportPayload declined %s", p)
		}
		return
	}
	var want struct {
		Kind string `json:"kind"`
		alerts.Alert
	}
	if err := json.Unmarshal(p, &want); err != nil {
		t.Fatalf("DecodeExportPayload accepted %q, json.Unmarshal: %v", p, err)
	}
	if kind != want.Kind {
		t.Errorf("kind = %q, want %q", kind, want.Kind)
	}
	if diff := cmp.Diff(want.Alert, a); diff != "" {
		t.Errorf("DecodeExportPayload(%s) (-json.Unmarshal +got):\n%s", p, diff)
	}
	again, err := json.Marshal(exportPayload{Kind: kind, Alert: &a})
	if err != nil {
		return // json.Marshal refuses it: canonical would be wrong, checked below
	}
	if isCanon := bytes.Equal(again, p); canonical != isCanon {
		t.Errorf("canonical = %v, but json.Marshal gives %s for %s", canonical, again, p)
	}
}

// TestDecodeExportPayloadForms: forms encoding/json reads but the fast
// reader leaves to it, and valid non-canonical forms it reads.
func TestDecodeExportPayloadForms(t *testing.T) {
	good, _ := json.Marshal(exportPayload{Kind: "alert", Alert: new(payloadAlert())})
	declined := []string{
		`{"kind":"alert","ID":"x"}`,                    // case-insensitive match: encoding/json's job
		`{"kind":"alert","id":"x","extra":1}`,          // unknown key
		`{"kind": "alert"}`,                            // whitespace
		`{"kind":"alert","severity":3}`,                // not a string
		`{"kind":"alert","evidence":[1]}`,              // evidence not an object
		`{"kind":"alert","title":"` + "bad\xff" + `"}`, // malformed UTF-8 (encoding/json replaces it)
		`{"kind":"alert","time":"yesterday"}`,          // bad time
		`{"kind":"alert","severity":"urgent"}`,         // bad severity
		`{}`, `[]`, `{"kind":"alert"} `, `{"kind":"alert",}`, `{"kind":"al`,
		`{"kind":"alert","evidence":{"a":"b}`,
	}
	for _, p := range declined {
		if _, _, _, ok := DecodeExportPayload([]byte(p)); ok {
			t.Errorf("DecodeExportPayload(%s) accepted", p)
		}
	}
	for _, p := range []string{
		`{"id":"x","kind":"alert"}`,                       // order
		`{"kind":"alert","id":"x","id":"y"}`,              // repeated: last wins
		`{"kind":"alert","id":"x","severity":"HIGH"}`,     // severity in another case
		`{"kind":"alert","id":"x","pod":""}`,              // empty optional field
		`{"kind":"alert","id":"a\u0062c","title":"<b>&"}`, // escapes, unescaped HTML
		`{"kind":"alert","time":"2026-11-27T16:30:00.500+02:00","evidence":{"a":{"b":[1,{"c":"}"}]}}}`,
	} {
		checkDecode(t, []byte(p), false)
		if _, _, canonical, ok := DecodeExportPayload([]byte(p)); !ok || canonical {
			t.Errorf("DecodeExportPayload(%s): ok %v canonical %v, want true false", p, ok, canonical)
		}
	}
	checkDecode(t, good, true)
}

// FuzzExportPayload: for any alert strings, the direct writer gives
// json.Marshal's bytes whenever it does not decline, and the reader reads
// them back as json.Unmarshal does, as canonical.
func FuzzExportPayload(f *testing.F) {
	a := payloadAlert()
	f.Add(a.Title, a.Workload, string(a.Evidence), int64(0), 3)
	f.Add("<&>\u2028\"\\\x01\xff", "", `{"a":"<"}`, int64(1e18), 0)
	f.Add("", "é", "", int64(-1), 9)
	f.Add("t", "w", `{ "a" : [ 1 , 2 ] }`, int64(5), 1)
	f.Fuzz(func(t *testing.T, title, workload, evidence string, nanos int64, sev int) {
		a := payloadAlert()
		a.Title, a.Workload, a.Severity = title, workload, alerts.Severity(sev)
		a.Time = time.Unix(0, nanos).In(time.FixedZone("", int(nanos%86400)))
		a.Evidence = nil
		if evidence != "" {
			if !json.Valid([]byte(evidence)) {
				return // the ingest refuses invalid evidence
			}
			a.Evidence = json.RawMessage(evidence)
		}
		want, err := json.Marshal(exportPayload{Kind: ExportKindAlert, Alert: &a})
		got, ok := appendExportPayload(nil, ExportKindAlert, &a)
		if ok && (err != nil || !bytes.Equal(got, want)) {
			t.Fatalf("appendExportPayload = %s, json.Marshal = %s, %v", got, want, err)
		}
		if err == nil {
			// The reader takes every alert json.Marshal writes whose
			// evidence is an object or null (the ingest's rule).
			ev := strings.TrimSpace(evidence)
			checkDecode(t, want, ev == "" || ev[0] == '{' || ev == "null")
		}
	})
}

// FuzzDecodeExportPayload: arbitrary bytes never panic; a valid payload
// the reader accepts decodes as json.Unmarshal decodes it, and is called
// canonical only when it is json.Marshal's form.
func FuzzDecodeExportPayload(f *testing.F) {
	good, _ := json.Marshal(exportPayload{Kind: "alert", Alert: new(payloadAlert())})
	f.Add(good)
	f.Add([]byte(`{"kind":"alert","id":"x","title":"a\"b\u003c"}`))
	f.Add([]byte(`{"kind":"alert","evidence":{"a":["}",{"b":"\\"}]}}`))
	f.Add([]byte(`{"kind":"alert","evidence":{`))
	f.Add([]byte(`{"id":"x","id":"y","severity":"Low"}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		_, _, _, ok := DecodeExportPayload(p)
		if ok && json.Valid(p) {
			checkDecode(t, p, false)
		}
	})
}
