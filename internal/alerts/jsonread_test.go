package alerts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// stdBatch is DecodeBatch's encoding/json path on its own.
func stdBatch(body []byte) (Batch, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var b Batch
	if err := dec.Decode(&b); err != nil {
		return b, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return b, fmt.Errorf("trailing data")
	}
	return b, nil
}

// checkFastBatch: what readBatch accepts, encoding/json decodes the same
// way — or refuses only for evidence that is not valid JSON, which
// Validate then refuses too (ReadJSON delimits evidence, it does not
// validate it).
func checkFastBatch(t *testing.T, body []byte) {
	t.Helper()
	fast, ok := readBatch(body)
	if !ok {
		return
	}
	std, err := stdBatch(body)
	if err != nil {
		for i := range fast.Alerts {
			if ev := fast.Alerts[i].Evidence; len(ev) > 0 && !json.Valid(ev) && fast.Alerts[i].Validate() != nil {
				return
			}
		}
		t.Fatalf("fast path accepted %q, encoding/json: %v", body, err)
	}
	if diff := cmp.Diff(std, fast); diff != "" {
		t.Fatalf("fast path differs on %q (-encoding/json +fast):\n%s", body, diff)
	}
}

// TestDecodeBatchFastPath: a batch as json.Marshal writes it (what Go
// senders send) takes the fast path and decodes exactly as encoding/json
// does, characters that need escaping included; forms it leaves to
// encoding/json still decode.
func TestDecodeBatchFastPath(t *testing.T) {
	var b Batch
	for i := range 5 {
		a := validAlert()
		a.ID = fmt.Sprintf("id-%d", i)
		a.Title = fmt.Sprintf(`shell "%d" <b>&amp; é 日本 \ tab	end`, i)
		if i == 3 {
			a.Evidence, a.RuleVersion, a.Workload = nil, "", ""
		}
		if i == 4 {
			a.Evidence = json.RawMessage(`null`)
		}
		b.Alerts = append(b.Alerts, a)
	}
	body, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, form := range [][]byte{body, append(body, '\n')} {
		if _, ok := readBatch(form); !ok {
			t.Fatalf("json.Marshal's batch did not take the fast path: %s", form)
		}
		checkFastBatch(t, form)
		got, err := DecodeBatch(bytes.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(b, *got); diff != "" {
			t.Errorf("DecodeBatch (-sent +got):\n%s", diff)
		}
	}
	for _, form := range []string{
		" " + string(body), // leading space
		strings.Replace(string(body), `"id":`, `"ID":`, 1), // encoding/json matches keys case-insensitively
		strings.Replace(string(body), `,"title"`, ` ,"title"`, 1),
	} {
		if _, ok := readBatch([]byte(form)); ok {
			t.Errorf("fast path took %q", form)
		}
		if _, err := DecodeBatch(strings.NewReader(form)); err != nil {
			t.Errorf("DecodeBatch(%q): %v", form, err)
		}
	}
}

// FuzzDecodeBatchFastPath compares the fast path with encoding/json on
// any body.
func FuzzDecodeBatchFastPath(f *testing.F) {
	good, _ := json.Marshal(Batch{Alerts: []Alert{validAlert()}})
	f.Add(good)
	f.Add([]byte(`{"alerts":[{"id":"a","time":"2026-01-02T03:04:05Z","source":"audit","rule":"r","severity":"info","title":"t\u003c\"x\""}]}`))
	f.Add([]byte(`{"alerts":[{"id":"a","id":"b","severity":"CRITICAL","evidence":{"a":[1,2,{"b":null}]}},{"evidence":null}]}`))
	f.Add([]byte(`{"alerts":[{"evidence":{"a":]}}]}`))
	f.Add([]byte(`{"alerts":[{"kind":"alert"}]}`))
	f.Add([]byte(`{"alerts":[{}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFastBatch(t, body)
	})
}

// FuzzReadJSON compares ReadJSON with json.Unmarshal on one object, with
// and without the kind key, and checks its canonical verdict against
// json.Marshal.
func FuzzReadJSON(f *testing.F) {
	good, _ := json.Marshal(validAlert())
	f.Add(good)
	f.Add([]byte(`{"kind":"alert","id":"x","time":"2026-01-02T03:04:05.5+02:00","severity":"Low","title":"a\"b\u003c"}`))
	f.Add([]byte(`{"id":"x","evidence":{"a":["}",{"b":"\\"}]}}`))
	f.Add([]byte(`{"id":"x","evidence":{`))
	f.Fuzz(func(t *testing.T, p []byte) {
		for _, withKind := range []bool{false, true} {
			kind, a, canonical, ok := ReadJSON(p, withKind)
			// The string form reads the same bytes the same way.
			skind, sa, scanonical, sok := ReadJSONString(string(p), withKind)
			if skind != kind || scanonical != canonical || sok != ok || !cmp.Equal(sa, a) {
				t.Fatalf("ReadJSONString(%q) = %q %+v %v %v, ReadJSON = %q %+v %v %v", p, skind, sa, scanonical, sok,
					kind, a, canonical, ok)
			}
			if !ok {
				continue
			}
			var std struct {
				Kind string `json:"kind"`
				Alert
			}
			if err := json.Unmarshal(p, &std); err != nil {
				if len(a.Evidence) > 0 && !json.Valid(a.Evidence) {
					continue // delimited, not validated (documented)
				}
				t.Fatalf("ReadJSON accepted %q, json.Unmarshal: %v", p, err)
			}
			if !withKind && kind != "" {
				t.Fatalf("kind %q read without withKind", kind)
			}
			if kind != std.Kind && withKind {
				t.Fatalf("kind %q, want %q", kind, std.Kind)
			}
			if diff := cmp.Diff(std.Alert, a); diff != "" {
				t.Fatalf("ReadJSON(%q) (-json.Unmarshal +got):\n%s", p, diff)
			}
			var again []byte
			var err error
			if withKind {
				again, err = json.Marshal(struct {
					Kind string `json:"kind"`
					*Alert
				}{kind, &a})
			} else {
				again, err = json.Marshal(&a)
			}
			if err == nil && bytes.Equal(again, p) != canonical {
				t.Fatalf("canonical = %v for %q, json.Marshal gives %q", canonical, p, again)
			}
		}
	})
}

// BenchmarkDecodeBatch is the ingest handler's decode of a batch of 1000
// sensor alerts as a Go sender marshals it (fast path), and the same body
// through encoding/json for comparison.
func BenchmarkDecodeBatch(b *testing.B) {
	var batch Batch
	for i := range 1000 {
		a := validAlert()
		a.ID = fmt.Sprintf("0b7c6f2e-4d1a-4c8e-9f00-%012d", i)
		a.Title = fmt.Sprintf("A shell was spawned in a container with an attached terminal (user=root shell=bash n=%d)", i)
		batch.Alerts = append(batch.Alerts, a)
	}
	body, _ := json.Marshal(batch)
	for _, path := range []string{"fast", "encoding-json"} {
		b.Run(path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if path == "fast" {
					if _, err := DecodeBatch(bytes.NewReader(body)); err != nil {
						b.Fatal(err)
					}
					continue
				}
				got, err := stdBatch(body)
				if err != nil {
					b.Fatal(err)
				}
				for i := range got.Alerts {
					if err := got.Alerts[i].Validate(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch.Alerts)), "ns/alert")
		})
	}
}
