package export

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bulwark-security/bulwark/internal/store"
)

// logRecords are records as a delivery worker has them: queued through
// the store's real payload writer and decoded from those bytes.
func logRecords(t testing.TB, recs []Record) []Record {
	t.Helper()
	out := make([]Record, len(recs))
	for i := range recs {
		it, err := store.AlertExportItem(&recs[i].Alert)
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = decodeRecord(it.Payload); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// trickyRecord has the characters encoding/json escapes in its fields.
func trickyRecord() Record {
	r := sampleRecord(7)
	r.Title = `cmdline=sh -c "echo <x> && cat /etc/shadow" \ é` + "\u2028"
	r.Namespace = "ns&<>"
	r.Evidence = json.RawMessage(`{"proc.cmdline":"sh -c \"echo \u003cx\u003e\"","n":[1,2.5,null]}`)
	return r
}

// TestDecodedRecordJSON: a record decoded from the log (whose stored
// bytes are reused) has the same JSON, bulk body and fields as the same
// record encoded by encoding/json.
func TestDecodedRecordJSON(t *testing.T) {
	src := []Record{sampleRecord(1), trickyRecord()}
	src[1].Alert.Fingerprint = ""
	dec := logRecords(t, src)
	for i := range src {
		if dec[i].raw == nil {
			t.Errorf("record %d: stored bytes not recognized as canonical", i)
		}
		if diff := cmp.Diff(src[i], dec[i], cmpopts.IgnoreUnexported(Record{})); diff != "" {
			t.Errorf("record %d decoded (-want +got):\n%s", i, diff)
		}
		want, err := json.Marshal(&src[i])
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeRecord(&dec[i], FormatJSON, "1.0")
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("record %d JSON:\n got %s, %v\nwant %s", i, got, err, want)
		}
	}
	e := &elastic{c: &Config{Index: "bulwark-<alerts>"}}
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	for i := range src {
		_ = enc.Encode(bulkAction{bulkMeta{Index: e.c.Index, ID: src[i].ID}})
		_ = enc.Encode(esDoc{Timestamp: src[i].Time.UTC().Format(time.RFC3339Nano), Record: &src[i]})
	}
	for name, recs := range map[string][]Record{"decoded": dec, "encoded": src} {
		got, err := e.appendBulk(nil, recs)
		if err != nil || !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s bulk body:\n got %s, %v\nwant %s", name, got, err, want.Bytes())
		}
	}
}

// BenchmarkDecodeRecord is the cost of reading one export log payload
// back into a Record (once per record and batch, shared by the exports).
func BenchmarkDecodeRecord(b *testing.B) {
	r := sampleRecord(1)
	it, err := store.AlertExportItem(&r.Alert)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(it.Payload)))
	for b.Loop() {
		if _, err := decodeRecord(it.Payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkElasticBulkBody is the per-record cost of the bulk body, for
// records read from the log.
func BenchmarkElasticBulkBody(b *testing.B) {
	recs := logRecords(b, records(100, 0))
	e := &elastic{c: &Config{Index: "bulwark-alerts"}}
	var body []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if body, err = e.appendBulk(body[:0], recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}
