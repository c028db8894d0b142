package export

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bulwark-security/bulwark/internal/testlog"
)

// Recovery on a topic shared with other traffic, against kfake (in memory:
// these tests restart central, not the broker).

const recoverTopic = "bulwark-alerts"

func startSharedKfake(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, recoverTopic))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// newKafkaSession is a new exporter object for the export "lake", as a
// restarted central builds it; its log goes to the returned buffer.
func newKafkaSession(t *testing.T, addrs []string) (*kafkaExporter, *testlog.Buffer) {
	t.Helper()
	return newKafkaSessionTimeout(t, addrs, 10*time.Second)
}

func newKafkaSessionTimeout(t *testing.T, addrs []string, timeout time.Duration) (*kafkaExporter, *testlog.Buffer) {
	t.Helper()
	c := Config{Name: "lake", Type: TypeKafka, Brokers: addrs, Topic: recoverTopic, Timeout: Duration(timeout)}
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	log := &testlog.Buffer{}
	exp, err := New(&c, Deps{Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	k := exp.(*kafkaExporter)
	t.Cleanup(func() { k.Close() })
	return k, log
}

// produceOther produces n records of other traffic, round robin over the
// topic's three partitions, in one call; header (nil: none) gives each its
// headers. With a transactional id they are one transaction, committed or
// aborted.
func produceOther(t *testing.T, addrs []string, n int, header func(i int) []kgo.RecordHeader, txn string, commit bool) {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(recoverTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0)}
	if txn != "" {
		opts = append(opts, kgo.TransactionalID(txn))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if txn != "" {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
	}
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Partition: int32(i % 3), Value: fmt.Appendf(nil, `{"other":%d}`, i)}
		if header != nil {
			recs[i].Headers = header(i)
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce other traffic: %v", err)
	}
	if txn != "" {
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
}

// exportHeaders are the headers the exporter writes for export name at pos.
func exportHeaders(name string, pos LogPos) []kgo.RecordHeader {
	return []kgo.RecordHeader{{Key: "bulwark-id", Value: []byte("x")}, {Key: "bulwark-export", Value: []byte(name)},
		{Key: "bulwark-pos", Value: []byte(pos.String())}}
}

// positioned are n records with the export log positions (7, from+1..).
func positioned(n, from int) []Record {
	recs := records(n, 900+from)
	for i := range recs {
		recs[i].Pos = LogPos{7, int64(from + i + 1)}
	}
	return recs
}

// TestKafkaRecoverBeyondTail: a version that did not commit positions
// (positions off) commits a batch and dies before
// moving the cursor; then other traffic (plain records, another export's
// committed transaction, an aborted transaction carrying this export's name
// and later positions) pushes its records more than kafkaTailWindow offsets
// back in every partition. The restarted central finds the position in an
// older window, skips the re-leased records and delivers the new ones: a
// read_committed consumer sees each record once.
func TestKafkaRecoverBeyondTail(t *testing.T) {
	addrs := startSharedKfake(t).ListenAddrs()
	ctx := context.Background()
	recs := positioned(50, 0)

	first, _ := newKafkaSession(t, addrs)
	first.positions = false // a version before positions: only the search finds it
	if err := first.Deliver(ctx, recs[:30]); err != nil {
		t.Fatalf("first session: %v", err)
	}
	first.Close() // dies before moving the cursor

	produceOther(t, addrs, 30, func(i int) []kgo.RecordHeader { return exportHeaders("lake", LogPos{7, int64(1000 + i)}) },
		"intruder", false)
	produceOther(t, addrs, 600, func(i int) []kgo.RecordHeader { return exportHeaders("other", LogPos{9, int64(5000 + i)}) },
		"other-export", true)
	produceOther(t, addrs, 21_000, nil, "", false)

	second, _ := newKafkaSession(t, addrs)
	if last, err := second.recover(ctx); err != nil || last != (LogPos{7, 30}) {
		t.Errorf("recover: %v, %v; want 7/30", last, err)
	}
	if err := second.Deliver(ctx, recs[20:]); err != nil {
		t.Fatalf("second session: %v", err)
	}

	const total = 50 + 600 + 21_000
	got := consumeCommitted(t, addrs, total)
	if len(got) != total {
		t.Errorf("consumed %d committed records, want %d", len(got), total)
	}
	count := map[string]int{}
	lastLake := map[int32]int64{}
	end := map[int32]int64{}
	for _, m := range got {
		end[m.Partition] = max(end[m.Partition], m.Offset+1)
		if kafkaHeader(m, "bulwark-export") == "lake" {
			count[kafkaHeader(m, "bulwark-id")]++
			if m.Offset < 1000 { // the first session's records, before the other traffic
				lastLake[m.Partition] = max(lastLake[m.Partition], m.Offset)
			}
		}
	}
	for _, r := range recs {
		if count[r.ID] != 1 {
			t.Errorf("%s consumed %d times", r.ID, count[r.ID])
		}
	}
	if len(count) != len(recs) {
		t.Errorf("%d record ids of the export, want %d", len(count), len(recs))
	}
	// The setup pushes the first session's records out of the old tail.
	for p, off := range lastLake {
		if end[p]-off <= kafkaTailWindow {
			t.Errorf("partition %d: the export's last record at %d is within %d offsets of the end %d", p, off, kafkaTailWindow, end[p])
		}
	}
}

// TestKafkaRecoverSearchesToStart: partitions holding none of the export's
// records are searched back to their start (also a start moved by
// DeleteRecords) without error and without a warning; an export that never
// wrote recovers the zero position.
func TestKafkaRecoverSearchesToStart(t *testing.T) {
	ctx := context.Background()
	t.Run("never wrote", func(t *testing.T) {
		addrs := startSharedKfake(t).ListenAddrs()
		produceOther(t, addrs, 300, func(i int) []kgo.RecordHeader { return exportHeaders("other", LogPos{2, int64(i + 1)}) },
			"other-export", true)
		produceOther(t, addrs, 18_000, nil, "", false)
		deleteRecordsBefore(t, addrs, 1, 1_000)
		k, log := newKafkaSession(t, addrs)
		last, err := k.recover(ctx)
		if err != nil || !last.IsZero() {
			t.Fatalf("recover: %v, %v; want the zero position", last, err)
		}
		if s := log.String(); s != "" {
			t.Errorf("log: %s", s)
		}
	})
	t.Run("oldest record", func(t *testing.T) {
		addrs := startSharedKfake(t).ListenAddrs()
		// Partition 0 starts with one record of the export; the others
		// hold none.
		produceOther(t, addrs, 1, func(int) []kgo.RecordHeader { return exportHeaders("lake", LogPos{3, 9}) }, "", false)
		produceOther(t, addrs, 18_000, nil, "", false)
		k, log := newKafkaSession(t, addrs)
		last, err := k.recover(ctx)
		if err != nil || last != (LogPos{3, 9}) {
			t.Fatalf("recover: %v, %v; want 3/9", last, err)
		}
		if s := log.String(); s != "" {
			t.Errorf("log: %s", s)
		}
	})
}

// TestKafkaRecoverLimit: when the export's records were written without
// positions (an older version) and are further back than the search limit, recovery warns and finds nothing, and the batch is sent
// again (at-least-once) rather than failing.
func TestKafkaRecoverLimit(t *testing.T) {
	addrs := startSharedKfake(t).ListenAddrs()
	ctx := context.Background()
	recs := positioned(10, 0)
	first, _ := newKafkaSession(t, addrs)
	first.positions = false // a version before positions: only the search finds it
	if err := first.Deliver(ctx, recs); err != nil {
		t.Fatal(err)
	}
	first.Close()
	produceOther(t, addrs, 18_000, nil, "", false) // 6,000 per partition

	second, log := newKafkaSession(t, addrs)
	second.searchLimit = 5_000
	if err := second.Deliver(ctx, recs); err != nil {
		t.Fatalf("deliver: %v", err)
	}
	s := log.String()
	if !strings.Contains(s, "level=WARN") || !strings.Contains(s, "stopped short") || !strings.Contains(s, "partitions=\"[0 1 2]\"") {
		t.Errorf("want a warning naming the three partitions, log: %s", s)
	}
	got := consumeCommitted(t, addrs, 2*len(recs)+18_000)
	n := 0
	for _, m := range got {
		if kafkaHeader(m, "bulwark-export") == "lake" {
			n++
		}
	}
	if n != 2*len(recs) {
		t.Errorf("the export's records on the topic: %d, want %d (sent twice)", n, 2*len(recs))
	}
}

// TestKafkaRecoverTimeout: the export's timeout bounds recovery. A broker
// too slow to serve the older windows in time stops the search short
// (a warning, the position found in the tails, at-least-once for the
// rest); one too slow to serve the tails fails the session start, as
// before.
func TestKafkaRecoverTimeout(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		below   int64 // fetches below this offset are slow
		tailErr bool  // the tails are slow too: recovery fails
	}{
		{"older windows", 2_000, false},
		{"tail", 7_000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startSharedKfake(t)
			addrs := c.ListenAddrs()
			produceOther(t, addrs, 18_000, nil, "", false) // 6,000 per partition
			// The tail of partition 0 holds the export's record.
			produceOther(t, addrs, 3, func(i int) []kgo.RecordHeader {
				if i%3 == 0 {
					return exportHeaders("lake", LogPos{5, 1})
				}
				return nil
			}, "", false)
			c.ControlKey(kmsg.Fetch.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				for _, rt := range req.(*kmsg.FetchRequest).Topics {
					for _, rp := range rt.Partitions {
						if rp.FetchOffset < tc.below {
							c.SleepControl(func() { time.Sleep(2 * time.Second) })
							return nil, nil, false
						}
					}
				}
				return nil, nil, false
			})
			k, log := newKafkaSessionTimeout(t, addrs, 700*time.Millisecond)
			last, err := k.recover(ctx)
			if tc.tailErr {
				if err == nil || !strings.Contains(err.Error(), "read the topic's tail") {
					t.Fatalf("recover: %v, %v; want the tail's timeout", last, err)
				}
				return
			}
			if err != nil || last != (LogPos{5, 1}) {
				t.Fatalf("recover: %v, %v; want 5/1", last, err)
			}
			s := log.String()
			if !strings.Contains(s, "stopped short") || !strings.Contains(s, "timed_out=true") || !strings.Contains(s, "partitions=\"[1 2]\"") {
				t.Errorf("want a timeout warning naming partitions 1 and 2, log: %s", s)
			}
		})
	}
}

// TestKafkaRecoverRetriesFetch: a fetch answered with a retriable error
// (a leader change) is asked again of the leader the metadata names.
func TestKafkaRecoverRetriesFetch(t *testing.T) {
	c := startSharedKfake(t)
	addrs := c.ListenAddrs()
	produceOther(t, addrs, 3, func(int) []kgo.RecordHeader { return exportHeaders("lake", LogPos{4, 2}) }, "", false)
	produceOther(t, addrs, 15_000, nil, "", false)
	var mu sync.Mutex
	failed := 0
	c.ControlKey(kmsg.Fetch.Int16(), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		if failed == 2 {
			return nil, nil, false
		}
		failed++
		req := kreq.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	k, _ := newKafkaSession(t, addrs)
	if last, err := k.recover(context.Background()); err != nil || last != (LogPos{4, 2}) {
		t.Fatalf("recover: %v, %v; want 4/2", last, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if failed != 2 {
		t.Errorf("%d fetches failed, want 2", failed)
	}
}

// deleteRecordsBefore moves the partition's log start to offset.
func deleteRecordsBefore(t *testing.T, addrs []string, partition int32, offset int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = recoverTopic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = partition, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, t2 := range resp.Topics {
		for _, p := range t2.Partitions {
			if p.ErrorCode != 0 || p.LowWatermark != offset {
				t.Fatalf("delete records: partition %d error %d low watermark %d", p.Partition, p.ErrorCode, p.LowWatermark)
			}
		}
	}
}

// TestKafkaWindows: the windows are adjacent, grow ×4 from the tail, and
// stop at the partition's start or at the search limit.
func TestKafkaWindows(t *testing.T) {
	type w = kafkaWindow
	for _, tc := range []struct {
		start, end, limit int64
		want              []kafkaWindow
		capped            bool
	}{
		{0, 0, kafkaSearchLimit, nil, false},
		{500, 500, kafkaSearchLimit, nil, false},
		{0, 3_000, kafkaSearchLimit, []w{{0, 3_000}}, false},
		{0, 4_000, kafkaSearchLimit, []w{{0, 4_000}}, false},
		{0, 20_000, kafkaSearchLimit, []w{{16_000, 20_000}, {0, 16_000}}, false},
		{100, 100_000, kafkaSearchLimit, []w{{96_000, 100_000}, {80_000, 96_000}, {16_000, 80_000}, {100, 16_000}}, false},
		{0, 1_000_000, kafkaSearchLimit,
			[]w{{996_000, 1_000_000}, {980_000, 996_000}, {916_000, 980_000}, {660_000, 916_000}, {0, 660_000}}, false},
		{0, 2_000_000, kafkaSearchLimit,
			[]w{{1_996_000, 2_000_000}, {1_980_000, 1_996_000}, {1_916_000, 1_980_000}, {1_660_000, 1_916_000}, {1_000_000, 1_660_000}}, true},
		{0, 18_000, 5_000, []w{{14_000, 18_000}, {13_000, 14_000}}, true},
	} {
		got, capped := kafkaWindows(tc.start, tc.end, tc.limit)
		if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(kafkaWindow{})); diff != "" || capped != tc.capped {
			t.Errorf("kafkaWindows(%d, %d, %d): capped %v, want %v; windows (-want +got):\n%s",
				tc.start, tc.end, tc.limit, capped, tc.capped, diff)
		}
	}
	// Over many shapes: adjacent, newest first, each the next ×4 (but the
	// clipped last), covering exactly min(end-start, limit) offsets.
	for _, end := range []int64{1, 3_999, 4_001, 19_999, 84_001, 340_000, 999_999, 1_000_001, 1 << 40} {
		for _, start := range []int64{0, 1, end / 2, end - 1} {
			ws, capped := kafkaWindows(start, end, kafkaSearchLimit)
			hi, size, n := end, int64(kafkaTailWindow), int64(0)
			for i, x := range ws {
				if x.hi != hi || x.lo >= x.hi || (i < len(ws)-1 && x.hi-x.lo != size) || x.hi-x.lo > size {
					t.Fatalf("start %d end %d: window %d %v after %d, size %d", start, end, i, x, hi, size)
				}
				hi, size, n = x.lo, size*kafkaWindowGrowth, n+x.hi-x.lo
			}
			if n != min(end-start, kafkaSearchLimit) || capped != (end-start > kafkaSearchLimit) {
				t.Errorf("start %d end %d: %d offsets, capped %v", start, end, n, capped)
			}
		}
	}
}
