package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bulwark-security/bulwark/internal/store"
)

// Tests of session 5's delivery CPU work: sendmmsg batches, the shared
// decode cache, the Elasticsearch answer's two-step read.

// TestDatagramBatches: a batch of several sendmmsg chunks reaches a UDP
// receiver as one datagram per record, each exactly the formatted
// message, in order.
func TestDatagramBatches(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) { testDatagramBatches(t, addr) })
	}
}

func testDatagramBatches(t *testing.T, addr string) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil && addr[0] == '[' {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_ = pc.(*net.UDPConn).SetReadBuffer(4 << 20)
	c := Config{Name: "udp", Type: TypeSyslog, Network: "udp", Address: pc.LocalAddr().String(), Format: FormatCEF, Hostname: "central-1"}
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	exp, err := New(&c, Deps{Version: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	defer exp.(*syslogExporter).Close()
	n := 2*datagramBatch + 37
	recs := records(n, 0)
	recs[5].Title = string(bytes.Repeat([]byte("long "), 1000)) // cut to MaxMessageBytes
	if err := exp.Deliver(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	if exp.(*syslogExporter).batch == nil {
		t.Fatal("the UDP connection has no batch writer: one write per datagram")
	}
	buf := make([]byte, 65536)
	for i := range n {
		_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("datagram %d of %d: %v", i, n, err)
		}
		want := AppendCEFSyslog(nil, &recs[i], *c.Facility, "central-1", c.AppName, "1.2.3", c.MaxMessageBytes)
		if !bytes.Equal(buf[:k], want) {
			t.Fatalf("datagram %d:\n got %q\nwant %q", i, buf[:k], want)
		}
		if k > c.MaxMessageBytes {
			t.Fatalf("datagram %d is %d bytes, limit %d", i, k, c.MaxMessageBytes)
		}
	}
}

// TestDatagramFailureIsSuffix: sending to a port nobody listens on fails
// (the kernel reports the ICMP refusal on a later send); the failed
// records are always a suffix of the batch — the ones before were sent —
// and the next batch redials.
func TestDatagramFailureIsSuffix(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close() // nobody listens there now
	c := Config{Name: "udp", Type: TypeSyslog, Network: "udp", Address: addr}
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	exp, err := New(&c, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer exp.(*syslogExporter).Close()
	recs := records(3*datagramBatch, 0)
	failures := 0
	for range 20 {
		err := exp.Deliver(context.Background(), recs)
		if err == nil {
			continue
		}
		failures++
		var be *BatchError
		if !errors.As(err, &be) {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("whole-batch error %v, want connection refused", err)
			}
			continue
		}
		if len(be.Errs) != len(recs) {
			t.Fatalf("%d errors for %d records", len(be.Errs), len(recs))
		}
		first := -1
		for i, e := range be.Errs {
			if e != nil && first < 0 {
				first = i
			}
			if first >= 0 && e == nil {
				t.Fatalf("record %d succeeded after record %d failed: %v", i, first, be.Errs)
			}
		}
		if first <= 0 {
			t.Fatalf("a BatchError with record 0 failed should be a whole-batch error (first failure %d)", first)
		}
	}
	if failures == 0 {
		t.Fatal("20 batches to a closed port all succeeded: the refusal is never reported")
	}
}

// leasedRecords are records as the store leases them: sequence numbers
// and their stored payloads.
func leasedRecords(t testing.TB, seqs []int64) []store.OutboxRecord {
	t.Helper()
	out := make([]store.OutboxRecord, len(seqs))
	for i, seq := range seqs {
		r := sampleRecord(int(seq))
		it, err := store.AlertExportItem(&r.Alert)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = store.OutboxRecord{ID: seq, XID: 7, Payload: it.Payload}
	}
	return out
}

// TestRecordCacheDecodesOnce: three workers decoding the same batch at
// the same moment (as the exports do) decode each record once between
// them, and every one gets what decodeRecord gives; a record whose slot
// another record holds is decoded right too.
func TestRecordCacheDecodesOnce(t *testing.T) {
	var seqs []int64
	for i := range 1000 {
		seqs = append(seqs, int64(1+i))
	}
	// Same slot as 1 and 2 (direct-mapped), in the same batch.
	seqs = append(seqs, 1+recordCacheSize, 2+recordCacheSize)
	leased := leasedRecords(t, seqs)
	want := make([]Record, len(leased))
	for i := range leased {
		var err error
		if want[i], err = decodeRecord(leased[i].Payload); err != nil {
			t.Fatal(err)
		}
	}
	c := newRecordCache()
	var wg sync.WaitGroup
	got := make([][]Record, 3)
	for w := range got {
		wg.Go(func() {
			var sc decodeScratch
			// In batches of 250, as a worker leases them.
			got[w] = make([]Record, len(leased))
			errs := make([]error, len(leased))
			for from := 0; from < len(leased); from += 250 {
				end := min(from+250, len(leased))
				c.decodeAll(leased[from:end], got[w][from:end], errs[from:end], &sc)
			}
			for i, err := range errs {
				if err != nil {
					t.Errorf("worker %d record %d: %v", w, i, err)
				}
			}
		})
	}
	wg.Wait()
	for w := range got {
		if diff := cmp.Diff(want, got[w], cmpopts.IgnoreUnexported(Record{})); diff != "" {
			t.Fatalf("worker %d (-decodeRecord +cache):\n%s", w, diff)
		}
	}
	// The two colliding records are decoded by whoever meets them; the
	// rest once. At most: the 1000 once, the two colliders (and the two
	// they displaced, decoded again) by each worker.
	if n := c.decodes.Load(); n < int64(len(leased)) || n > int64(len(leased))+3*4 {
		t.Fatalf("%d decodes for %d records by 3 workers (want each about once)", n, len(leased))
	}
	// A second pass is all cache hits (the colliders aside).
	before := c.decodes.Load()
	var sc decodeScratch
	again := make([]Record, 1000)
	c.decodeAll(leased[:1000], again, make([]error, 1000), &sc)
	if n := c.decodes.Load() - before; n > 2 {
		t.Fatalf("%d decodes on a second read of cached records", n)
	}
}

// TestDeliverBatchReusesBuffers: a worker's buffers carry nothing from
// one batch into the next (a failed record of the first is not in the
// second's outcome; records and ids line up).
func TestDeliverBatchReusesBuffers(t *testing.T) {
	c := newRecordCache()
	var bufs deliverBufs
	first := leasedRecords(t, []int64{1, 2, 3, 4})
	first[2].Payload = json.RawMessage(`{"kind":"alert"}`) // no id: a dead letter
	var got []string
	exp := exporterFunc(func(_ context.Context, recs []Record) error {
		got = got[:0]
		for _, r := range recs {
			got = append(got, fmt.Sprintf("%s@%s", r.ID, r.Pos))
		}
		return nil
	})
	out := deliverBatch(context.Background(), exp, first, time.Second, c, &bufs)
	if !cmp.Equal(out.Done, []int64{1, 2, 4}) || !cmp.Equal(out.Dead, []int64{3}) {
		t.Fatalf("first batch: done %v dead %v", out.Done, out.Dead)
	}
	second := leasedRecords(t, []int64{5, 6})
	out = deliverBatch(context.Background(), exp, second, time.Second, c, &bufs)
	if !cmp.Equal(out.Done, []int64{5, 6}) || len(out.Dead) != 0 || out.Err != "" {
		t.Fatalf("second batch: %+v", out)
	}
	want := []string{sampleRecord(5).ID + "@7.5", sampleRecord(6).ID + "@7.6"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("second batch delivered (-want +got):\n%s", diff)
	}
}

type exporterFunc func(context.Context, []Record) error

func (f exporterFunc) Name() string                                     { return "func" }
func (f exporterFunc) Deliver(ctx context.Context, recs []Record) error { return f(ctx, recs) }

// TestBulkOutcomeHostile: answers that are not a bulk answer for the
// batch fail the whole batch with a clear error (never nil, never a
// panic); per-item failures are classified.
func TestBulkOutcomeHostile(t *testing.T) {
	e := &elastic{c: &Config{Name: "es"}}
	recs := records(2, 0)
	for _, tc := range []struct {
		body    string
		wantErr string // "" : nil; "batch": *BatchError
	}{
		{`{"errors":false,"items":[{"create":{"status":201}},{"create":{"status":201}}]}`, ""},
		{`{"errors":false,"items":[{"create":{"status":201}}]}`, "1 items for 2 records"},
		{`{"errors":false,"items":[{},{},{}]}`, "3 items for 2 records"},
		{`{"errors":false}`, "0 items for 2 records"},
		{``, "read bulk answer"},
		{`{"errors":false,"items":[`, "read bulk answer"},
		{`{"errors":"no","items":[{},{}]}`, "read bulk answer"},
		{`[1,2]`, "read bulk answer"},
		{`{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":409}}]}`, ""},
		{`{"errors":true,"items":[{"create":{"status":201}},{"index":{"status":201}}]}`, "batch"},
		{`{"errors":true,"items":[{"create":{"status":429}},{"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"x"}}}]}`, "batch"},
		{`{"errors":true,"items":[1,2]}`, "read bulk answer"},
	} {
		err := e.bulkOutcome([]byte(tc.body), recs)
		var be *BatchError
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v, want nil", tc.body, err)
		case tc.wantErr == "batch" && !errors.As(err, &be):
			t.Errorf("%s: %v, want a BatchError", tc.body, err)
		case tc.wantErr != "" && tc.wantErr != "batch" && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.wantErr))):
			t.Errorf("%s: %v, want %q", tc.body, err, tc.wantErr)
		}
	}
	// The classification of a per-item answer.
	err := e.bulkOutcome([]byte(`{"errors":true,"items":[{"create":{"status":429}},{"create":{"status":400}}]}`), recs)
	var be *BatchError
	if !errors.As(err, &be) || errors.Is(be.Errs[0], ErrPermanent) || !errors.Is(be.Errs[1], ErrPermanent) {
		t.Fatalf("429 then 400: %v", err)
	}
}

// FuzzBulkOutcome: any answer is read without panic; nil only for valid
// JSON, a BatchError always one error per record.
func FuzzBulkOutcome(f *testing.F) {
	f.Add([]byte(`{"errors":false,"items":[{"create":{"status":201}},{"create":{"status":201}}]}`))
	f.Add([]byte(`{"errors":true,"items":[{"create":{"status":429}},{"create":{"status":400,"error":{"type":"t","reason":"r"}}}]}`))
	f.Add([]byte(`{"errors":true,"items":[{"index":{}},{}]}`))
	f.Add([]byte(`{"items":[{},{}],"errors":false}`))
	e := &elastic{c: &Config{Name: "es"}}
	recs := records(2, 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		err := e.bulkOutcome(body, recs)
		if err == nil && !json.Valid(body) {
			t.Fatalf("invalid answer %q accepted", body)
		}
		var be *BatchError
		if errors.As(err, &be) && len(be.Errs) != len(recs) {
			t.Fatalf("%d errors for %d records", len(be.Errs), len(recs))
		}
	})
}
