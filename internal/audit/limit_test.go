package audit

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClock is a settable clock for the receiver's rate limits.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// batch is an EventList of n privileged-pod creations with ids from prefix.
func batch(prefix string, n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = privilegedPod(fmt.Sprintf("%s-%d", prefix, i), "ns", fmt.Sprintf("p%d", i))
	}
	return eventList(items...)
}

func serve(rcv *Receiver, token, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	rcv.ServeHTTP(w, req)
	return w
}

const edgeToken = "another-token-for-the-edge-cluster"

func statsOf(rcv *Receiver, cluster string) ClusterStats {
	for _, s := range rcv.ClusterStats() {
		if s.Cluster == cluster {
			return s
		}
	}
	return ClusterStats{Cluster: "missing " + cluster}
}

// A cluster over its rate is answered 429 with a Retry-After that is long
// enough for its bucket to leave debt; the other cluster goes on; once the
// time has passed the cluster is let in again, and the events stored are
// exactly those of the batches answered 200.
func TestReceiverClusterRate(t *testing.T) {
	sink := newMemSink()
	proc, _ := NewProcessor(Config{}, sink)
	clk := &testClock{t: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	rcv, err := NewReceiver(ReceiverConfig{
		Clients:      []Client{{Cluster: "prod", Token: testToken}, {Cluster: "edge", Token: edgeToken}},
		ClusterRate:  10,
		ClusterBurst: 5,
		ClusterRates: map[string]float64{"edge": 0}, // edge: no cap
		now:          clk.now,
	}, proc)
	if err != nil {
		t.Fatal(err)
	}
	runReceiver(t, rcv)

	// 25 events against a bucket of 5: let in (the bucket was not in
	// debt), 20 events in debt = 2 s at 10/s.
	if w := serve(rcv, testToken, batch("a", 25)); w.Code != 200 {
		t.Fatalf("first batch: %d %s", w.Code, w.Body)
	}
	w := serve(rcv, testToken, batch("b", 1))
	if w.Code != 429 || w.Header().Get("Retry-After") != "3" || !strings.Contains(w.Body.String(), `cluster \"prod\" is over its rate of 10 audit events/s`) {
		t.Fatalf("in debt: %d Retry-After %q %s; want 429, Retry-After 3 (20 events at 10/s, rounded up)", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	for i := range 3 {
		if w := serve(rcv, edgeToken, batch(fmt.Sprintf("e%d", i), 30)); w.Code != 200 {
			t.Fatalf("edge (no cap) batch %d: %d %s", i, w.Code, w.Body)
		}
	}
	clk.add(1900 * time.Millisecond)
	if w := serve(rcv, testToken, batch("c", 1)); w.Code != 429 {
		t.Fatalf("after 1.9 s, still 1 event in debt: %d", w.Code)
	}
	clk.add(200 * time.Millisecond)
	if w := serve(rcv, testToken, batch("d", 2)); w.Code != 200 {
		t.Fatalf("after 2.1 s: %d %s", w.Code, w.Body)
	}
	p, e := statsOf(rcv, "prod"), statsOf(rcv, "edge")
	if p.Events != 27 || p.Stored != 2 || p.Throttled != 2 || p.Busy != 0 {
		t.Errorf("prod stats %+v: want 27 events in 2 batches stored, 2 throttled", p)
	}
	if e.Events != 90 || e.Stored != 3 || e.Throttled != 0 {
		t.Errorf("edge stats %+v: want 90 events in 3 batches", e)
	}
	if got := sink.rules()["Privileged container created"]; got != 27+90 {
		t.Errorf("%d alerts stored, want %d (the throttled batches are not stored: the API server sends them again)", got, 27+90)
	}
}

// One cluster cannot fill the queue: past its share it is answered 429
// while the other cluster's batch is still taken.
func TestReceiverClusterShare(t *testing.T) {
	proc, _ := NewProcessor(Config{}, newMemSink())
	rcv, err := NewReceiver(ReceiverConfig{Clients: []Client{{Cluster: "prod", Token: testToken}, {Cluster: "edge", Token: edgeToken}},
		QueueSize: 4, Wait: time.Second}, proc)
	if err != nil {
		t.Fatal(err)
	}
	// No Run: nothing drains the queue, so batches stay in the receiver.
	codes := make(chan int, 3)
	for i := range 2 {
		go func() { codes <- serve(rcv, testToken, batch(fmt.Sprintf("p%d", i), 1)).Code }()
	}
	waitFor(t, 5*time.Second, "prod's two batches to be queued", func() bool { return len(rcv.jobs) == 2 })
	w := serve(rcv, testToken, batch("p2", 1))
	if w.Code != 429 || !strings.Contains(w.Body.String(), `cluster \"prod\" already has 2 batches`) || w.Header().Get("Retry-After") == "" {
		t.Fatalf("prod's third batch: %d %s, want 429 (its share of a queue of 4 is 2)", w.Code, w.Body)
	}
	go func() { codes <- serve(rcv, edgeToken, batch("e0", 1)).Code }()
	waitFor(t, 5*time.Second, "edge's batch to be queued", func() bool { return len(rcv.jobs) == 3 })
	for range 3 {
		if c := <-codes; c != 503 {
			t.Errorf("queued batch never processed: %d, want 503", c)
		}
	}
	if p := statsOf(rcv, "prod"); p.Busy != 1 || p.Failed != 2 || p.InFlight != 0 {
		t.Errorf("prod stats %+v: want 1 busy, 2 failed, none in flight", p)
	}
	if e := statsOf(rcv, "edge"); e.Busy != 0 || e.Failed != 1 {
		t.Errorf("edge stats %+v", e)
	}
}

// The bucket's arithmetic: refills up to the burst, goes into debt by a
// whole batch, and waits exactly the debt.
func TestClusterBucket(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := newClusterState("x", 100, 0, t0)
	if c.burst != 400 {
		t.Fatalf("default burst %v, want 400 (the API server's batch)", c.burst)
	}
	if c2 := newClusterState("y", 1000, 0, t0); c2.burst != 1000 {
		t.Fatalf("default burst at 1000/s: %v, want one second's worth", c2.burst)
	}
	c.charge(t0, 600) // 400 - 600 = -200
	if d := c.wait(t0); d < 2*time.Second || d > 2*time.Second+5*time.Millisecond {
		t.Fatalf("wait %v, want 2 s", d)
	}
	if d := c.wait(t0.Add(2100 * time.Millisecond)); d != 0 {
		t.Fatalf("after 2.1 s: wait %v", d)
	}
	if d := c.wait(t0.Add(time.Hour)); d != 0 || c.tokens != 400 {
		t.Fatalf("after an hour: wait %v tokens %v, want a full bucket of 400", d, c.tokens)
	}
	if u := newClusterState("u", 0, 0, t0); u.wait(t0) != 0 {
		t.Fatal("no rate: never waits")
	}
	if retryAfter(100*time.Millisecond) != 1 || retryAfter(2001*time.Millisecond) != 3 {
		t.Fatal("retryAfter rounds up to whole seconds, at least 1")
	}
}

func TestNewReceiverChecksRates(t *testing.T) {
	proc, _ := NewProcessor(Config{}, newMemSink())
	cs := []Client{{Cluster: "a", Token: testToken}}
	for _, cfg := range []ReceiverConfig{
		{Clients: cs, ClusterRate: -1},
		{Clients: cs, ClusterRates: map[string]float64{"a": -5}},
		{Clients: cs, ClusterRates: map[string]float64{"nope": 5}},
	} {
		if _, err := NewReceiver(cfg, proc); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

// runReceiver runs rcv's workers until the test ends.
func runReceiver(t *testing.T, rcv *Receiver) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); rcv.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
}
