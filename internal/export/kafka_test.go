package export

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The Kafka exporter is tested against franz-go's kfake, an in-process
// broker speaking the Kafka protocol (produce with idempotence sequence
// checks, fetch, persistence to a data directory). No real Kafka broker
// can be installed here (Debian has no Kafka package and nothing beyond the
// Go module proxy is reachable); kfake is the closest real protocol peer.

func startKfake(t *testing.T, dir string, port int) *kfake.Cluster {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, "bulwark-alerts"), kfake.DataDir(dir), kfake.SyncWrites()}
	if port != 0 {
		opts = append(opts, kfake.Ports(port))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	return c
}

// consumeAll reads every record of the topic.
func consumeAll(t *testing.T, addrs []string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics("bulwark-alerts"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for len(out) < want && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	// Anything beyond want (duplicates) arrives with the same fetches or
	// shortly after.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	cl.PollFetches(ctx2).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	return out
}

// TestKafkaExactlyOnceAcrossBrokerRestart: the broker is restarted (same
// data directory and port) while the exporter is producing; every record
// is consumed exactly once, keyed by fingerprint, with its id header.
func TestKafkaExactlyOnceAcrossBrokerRestart(t *testing.T) {
	dir := t.TempDir()
	cluster := startKfake(t, dir, 0)
	addrs := cluster.ListenAddrs()
	var port int
	if _, err := fmt.Sscanf(addrs[0][len("127.0.0.1:"):], "%d", &port); err != nil {
		t.Fatalf("kfake address %q: %v", addrs[0], err)
	}
	c := Config{Name: "kafka", Type: TypeKafka, Brokers: addrs, Topic: "bulwark-alerts", Timeout: Duration(30 * time.Second)}
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	exp, err := New(&c, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer exp.(*kafkaExporter).Close()
	ctx := context.Background()
	recs := records(300, 0)
	if err := exp.Deliver(ctx, recs[:100]); err != nil {
		t.Fatal(err)
	}
	// Restart the broker while the next batches are in flight.
	var wg sync.WaitGroup
	var derr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 100; i < 300 && derr == nil; i += 50 {
			derr = exp.Deliver(ctx, recs[i:i+50])
		}
	}()
	time.Sleep(5 * time.Millisecond)
	cluster.Close()
	time.Sleep(200 * time.Millisecond)
	cluster = startKfake(t, dir, port)
	defer cluster.Close()
	wg.Wait()
	if derr != nil {
		t.Fatalf("deliver across the restart: %v", derr)
	}
	got := consumeAll(t, cluster.ListenAddrs(), len(recs))
	count := map[string]int{}
	for _, m := range got {
		var r Record
		if err := json.Unmarshal(m.Value, &r); err != nil {
			t.Fatalf("value: %v", err)
		}
		count[r.ID]++
		if string(m.Key) != r.Fingerprint() {
			t.Errorf("key %q, want fingerprint %q", m.Key, r.Fingerprint())
		}
		if len(m.Headers) == 0 || m.Headers[0].Key != "bulwark-id" || string(m.Headers[0].Value) != r.ID {
			t.Errorf("headers %v", m.Headers)
		}
	}
	for _, r := range recs {
		if count[r.ID] != 1 {
			t.Errorf("%s consumed %d times", r.ID, count[r.ID])
		}
	}
	if len(got) != len(recs) {
		t.Errorf("consumed %d records, produced %d", len(got), len(recs))
	}
}

func TestKafkaOCSF(t *testing.T) {
	cluster := startKfake(t, t.TempDir(), 0)
	defer cluster.Close()
	c := Config{Name: "lake", Type: TypeKafka, Brokers: cluster.ListenAddrs(), Topic: "bulwark-alerts", Format: FormatOCSF}
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	exp, _ := New(&c, Deps{})
	defer exp.(*kafkaExporter).Close()
	if err := exp.Deliver(context.Background(), records(1, 7)); err != nil {
		t.Fatal(err)
	}
	got := consumeAll(t, cluster.ListenAddrs(), 1)
	var f map[string]any
	if len(got) != 1 || json.Unmarshal(got[0].Value, &f) != nil || f["class_uid"] != 2004.0 {
		t.Fatalf("OCSF on Kafka: %d records, %s", len(got), got[0].Value)
	}
}

// TestKafkaExactlyOnceAcrossCentralRestart: a central commits a batch to
// Kafka and dies before moving the export's cursor (the lease expires and
// the same batch is leased again by the next process). The new producer
// session, with the same transactional id, reads the topic's committed
// tail, sees the batch's positions and skips them: a read_committed
// consumer sees every record exactly once.
func TestKafkaExactlyOnceAcrossCentralRestart(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			cluster := startKfake(t, t.TempDir(), 0)
			defer cluster.Close()
			st := openStore(t, b.DSN(t))
			c := Config{Name: "lake", Type: TypeKafka, Brokers: cluster.ListenAddrs(), Topic: "bulwark-alerts", BatchSize: 20,
				Timeout: Duration(10 * time.Second)}
			e := createExport(t, st, c)
			if err := c.Normalize(); err != nil {
				t.Fatal(err)
			}
			recs := records(50, 500)
			enqueue(t, st, recs...)
			ctx := context.Background()

			// The first central: leases and delivers a batch, then dies
			// (no FinishExportBatch); its producer is gone with it.
			first, _ := New(&c, Deps{})
			leased, _, err := st.LeaseExportBatch(ctx, e.ID, "first", 20, 50*time.Millisecond)
			if err != nil || len(leased) != 20 {
				t.Fatalf("lease: %d, %v", len(leased), err)
			}
			if out := DeliverBatch(ctx, first, leased, 10*time.Second); len(out.Done) != 20 {
				t.Fatalf("first delivery: %+v", out)
			}
			first.(*kafkaExporter).Close()
			time.Sleep(100 * time.Millisecond) // its lease expires

			// The next central delivers everything from the cursor.
			d := runDispatcher(t, st, DispatcherOptions{LeaseFor: time.Second})
			d.Nudge()
			waitFor(t, 30*time.Second, "every record delivered", func() bool {
				s, err := st.ExportOutboxStats(ctx, e.ID)
				return err == nil && s.Pending == 0
			})
			got := consumeCommitted(t, cluster.ListenAddrs(), len(recs))
			count := map[string]int{}
			for _, m := range got {
				if id := kafkaHeader(m, "bulwark-id"); id != "" {
					count[id]++
				}
			}
			for _, r := range recs {
				if count[r.ID] != 1 {
					t.Errorf("%s consumed %d times", r.ID, count[r.ID])
				}
			}
			if len(got) != len(recs) {
				t.Errorf("consumed %d records, want %d", len(got), len(recs))
			}
		})
	}
}

// consumeCommitted reads the topic as a read_committed consumer.
func consumeCommitted(t *testing.T, addrs []string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics("bulwark-alerts"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for len(out) < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	cl.PollFetches(ctx2).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	return out
}
