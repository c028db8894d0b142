package export

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// Positions committed with the records (kafka_position.go), against kfake:
// a real Kafka cannot be installed here; kfake implements the
// transactional offset commits, read_committed fetches and require_stable
// offset fetches these tests rely on, in both transaction versions.

// kfakeVersions are the two transaction protocols: version 2 (KIP-890,
// kfake's default: TxnOffsetCommit adds the group itself) and version 1
// (Kafka 3.9: AddOffsetsToTxn first).
var kfakeVersions = []struct {
	name string
	opts []kfake.Opt
	v2   bool
}{
	{"transactions v2", nil, true},
	{"transactions v1", []kfake.Opt{kfake.MaxVersions(kversion.V3_9_0())}, false},
}

func startKfakeWith(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, recoverTopic)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// countExport counts each record id of export "lake" among the committed
// records of the topic.
func countExport(t *testing.T, addrs []string, total int) map[string]int {
	t.Helper()
	got := consumeCommitted(t, addrs, total)
	if len(got) != total {
		t.Errorf("consumed %d committed records, want %d", len(got), total)
	}
	count := map[string]int{}
	for _, m := range got {
		if kafkaHeader(m, "bulwark-export") == "lake" {
			count[kafkaHeader(m, "bulwark-id")]++
		}
	}
	return count
}

// TestKafkaCommittedPosition: central commits a batch and dies before
// moving the cursor; then 60,000 records of other traffic (and another
// export's transaction, and an aborted one carrying this export's name and
// later positions) bury its records. With the search limited to the tail
// (4,000 offsets, where the old search alone would stop short and warn),
// the restarted central still reads the exact position from the export's
// group, skips the re-leased records, and a read_committed consumer sees
// each record once — in both transaction versions.
func TestKafkaCommittedPosition(t *testing.T) {
	for _, v := range kfakeVersions {
		t.Run(v.name, func(t *testing.T) {
			c := startKfakeWith(t, v.opts...)
			addrs := c.ListenAddrs()
			ctx := context.Background()
			var addOffsets atomic.Int32
			c.ControlKey(kmsg.AddOffsetsToTxn.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				addOffsets.Add(1)
				return nil, nil, false
			})
			recs := positioned(50, 0)

			first, _ := newKafkaSession(t, addrs)
			if err := first.Deliver(ctx, recs[:30]); err != nil {
				t.Fatalf("first session: %v", err)
			}
			if first.implicitGroup != v.v2 {
				t.Errorf("implicit group add %v, want %v", first.implicitGroup, v.v2)
			}
			if n := addOffsets.Load(); (n == 0) == !v.v2 {
				t.Errorf("%d AddOffsetsToTxn requests with transactions v2 %v", n, v.v2)
			}
			first.Close() // dies before moving the cursor

			produceOther(t, addrs, 30, func(i int) []kgo.RecordHeader { return exportHeaders("lake", LogPos{7, int64(1000 + i)}) },
				"intruder", false)
			produceOther(t, addrs, 600, func(i int) []kgo.RecordHeader { return exportHeaders("other", LogPos{9, int64(5000 + i)}) },
				"other-export", true)
			produceOther(t, addrs, 60_000, nil, "", false)

			second, log := newKafkaSession(t, addrs)
			second.searchLimit = kafkaTailWindow
			if last, err := second.recover(ctx); err != nil || last != (LogPos{7, 30}) {
				t.Errorf("recover: %v, %v; want 7/30", last, err)
			}
			if err := second.Deliver(ctx, recs[20:]); err != nil {
				t.Fatalf("second session: %v", err)
			}
			if s := log.String(); s != "" {
				t.Errorf("log: %s", s)
			}
			count := countExport(t, addrs, 50+600+60_000)
			for _, r := range recs {
				if count[r.ID] != 1 {
					t.Errorf("%s consumed %d times", r.ID, count[r.ID])
				}
			}
			// The group now names the second session's last position.
			third, _ := newKafkaSession(t, addrs)
			third.searchLimit = kafkaTailWindow
			if last, err := third.recover(ctx); err != nil || last != (LogPos{7, 50}) {
				t.Errorf("recover after the second session: %v, %v; want 7/50", last, err)
			}
		})
	}
}

// TestKafkaPositionAborted: the position is committed with the records or
// not at all. A commit that never reaches the broker (the process dies
// with its transaction open) leaves the group at the previous batch: the
// next session's fence aborts records and position together, and the
// batch is delivered again — once. A position committed outside the
// transaction would skip it and lose ten records.
func TestKafkaPositionAborted(t *testing.T) {
	for _, v := range kfakeVersions {
		t.Run(v.name, func(t *testing.T) {
			c := startKfakeWith(t, v.opts...)
			addrs := c.ListenAddrs()
			ctx := context.Background()
			recs := positioned(20, 0)

			first, _ := newKafkaSession(t, addrs)
			if err := first.Deliver(ctx, recs[:10]); err != nil {
				t.Fatalf("first batch: %v", err)
			}
			var dropped atomic.Int32
			c.ControlKey(kmsg.EndTxn.Int16(), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
				if !kreq.(*kmsg.EndTxnRequest).Commit {
					c.KeepControl()
					return nil, nil, false
				}
				// The commit is lost with the process: answered with
				// an error the producer does not retry, never applied.
				dropped.Add(1)
				resp := kreq.ResponseKind().(*kmsg.EndTxnResponse)
				resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
				return resp, nil, true
			})
			if err := first.Deliver(ctx, recs[10:]); err == nil {
				t.Fatal("second batch: delivered, want the commit's error")
			}
			if dropped.Load() != 1 {
				t.Fatalf("%d commits dropped, want 1", dropped.Load())
			}
			first.Close()

			// The session start fences the first producer (aborting its
			// open transaction), then recovers.
			second, log := newKafkaSession(t, addrs)
			second.mu.Lock()
			if _, err := second.client(ctx); err != nil || second.last != (LogPos{7, 10}) {
				t.Errorf("session start: %v, recovered %v; want 7/10", err, second.last)
			}
			second.mu.Unlock()
			if s := log.String(); s != "" {
				t.Errorf("log: %s", s)
			}
			if err := second.Deliver(ctx, recs[10:]); err != nil {
				t.Fatalf("second session: %v", err)
			}
			count := countExport(t, addrs, len(recs))
			for _, r := range recs {
				if count[r.ID] != 1 {
					t.Errorf("%s consumed %d times", r.ID, count[r.ID])
				}
			}
		})
	}
}

// TestKafkaPositionGroupDenied: a principal without the group ACL (the
// broker's denial injected by kfake's request control: kfake's ACLs need
// SASL users, which the other tests do not run) still delivers, with one
// warning per session, and a restart finds the position by the search.
func TestKafkaPositionGroupDenied(t *testing.T) {
	for _, v := range kfakeVersions {
		t.Run(v.name, func(t *testing.T) {
			c := startKfakeWith(t, v.opts...)
			addrs := c.ListenAddrs()
			ctx := context.Background()
			deny := func(kreq kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				switch req := kreq.(type) {
				case *kmsg.AddOffsetsToTxnRequest:
					resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
					resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
					return resp, nil, true
				case *kmsg.TxnOffsetCommitRequest:
					resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
					for _, rt := range req.Topics {
						st := kmsg.NewTxnOffsetCommitResponseTopic()
						st.Topic, st.TopicID = rt.Topic, rt.TopicID
						for _, rp := range rt.Partitions {
							sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
							sp.Partition, sp.ErrorCode = rp.Partition, kerr.GroupAuthorizationFailed.Code
							st.Partitions = append(st.Partitions, sp)
						}
						resp.Topics = append(resp.Topics, st)
					}
					return resp, nil, true
				}
				return nil, nil, false
			}
			c.ControlKey(kmsg.AddOffsetsToTxn.Int16(), deny)
			c.ControlKey(kmsg.TxnOffsetCommit.Int16(), deny)
			recs := positioned(20, 0)

			first, log := newKafkaSession(t, addrs)
			for _, b := range [][]Record{recs[:10], recs[10:15]} {
				if err := first.Deliver(ctx, b); err != nil {
					t.Fatalf("deliver: %v", err)
				}
			}
			if n := strings.Count(log.String(), "may not use its consumer group"); n != 1 {
				t.Errorf("%d warnings, want 1; log: %s", n, log.String())
			}
			first.Close()

			second, log2 := newKafkaSession(t, addrs)
			if last, err := second.recover(ctx); err != nil || last != (LogPos{7, 15}) {
				t.Errorf("recover: %v, %v; want 7/15 (searched)", last, err)
			}
			if err := second.Deliver(ctx, recs[10:]); err != nil {
				t.Fatalf("second session: %v", err)
			}
			if strings.Contains(log2.String(), "could not read") {
				t.Errorf("log: %s", log2.String())
			}
			count := countExport(t, addrs, len(recs))
			for _, r := range recs {
				if count[r.ID] != 1 {
					t.Errorf("%s consumed %d times", r.ID, count[r.ID])
				}
			}
		})
	}
}
