package audit

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Per-cluster limits. One receiver serves every cluster's API servers, so a
// cluster that floods it (a noisy controller, an audit policy logging every
// read, a compromised API server) must not starve the others. Two limits,
// both answered 429 with Retry-After, which the API server's webhook backend
// retries (its batch buffer holds the events meanwhile):
//
//   - a share of the queue: one cluster's batches may hold at most
//     ClusterShare of the QueueSize places at once (default half when more
//     than one cluster is configured), so the rest stays free for the others;
//   - a rate: at most ClusterRate events per second per cluster, averaged
//     over a bucket of ClusterBurst events (off unless configured).
//
// The rate is a token bucket that may go into debt: a batch is let in when
// the cluster's bucket is not in debt, whatever its size, and then charged
// in full. An API server's batches (400 events by default, up to MaxEvents)
// are never refused for being larger than the bucket, and over time the
// cluster's events stay within the rate.

// clusterState is one cluster's limits and counters; the API servers of one
// cluster (several clients with the same Cluster) share it.
type clusterState struct {
	name     string
	inFlight atomic.Int32

	mu     sync.Mutex
	rate   float64 // events per second; 0 = unlimited
	burst  float64
	tokens float64
	last   time.Time

	events, stored, throttled, busy, failed, rejected atomic.Int64
}

func newClusterState(name string, rate float64, burst int, now time.Time) *clusterState {
	c := &clusterState{name: name, rate: rate, burst: float64(burst), last: now}
	if rate > 0 && burst <= 0 {
		// One second's worth, and at least the API server's default batch.
		c.burst = math.Max(math.Ceil(rate), 400)
	}
	c.tokens = c.burst
	return c
}

// refill adds the tokens earned since the last call; c.mu is held.
func (c *clusterState) refill(now time.Time) {
	if d := now.Sub(c.last); d > 0 {
		c.tokens = math.Min(c.burst, c.tokens+d.Seconds()*c.rate)
		c.last = now
	}
}

// wait is how long the cluster must wait before posting again: 0 when its
// bucket is not in debt (or it has no rate).
func (c *clusterState) wait(now time.Time) time.Duration {
	if c.rate <= 0 {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refill(now)
	if c.tokens > 0 {
		return 0
	}
	return time.Duration((-c.tokens/c.rate)*float64(time.Second)) + time.Millisecond
}

// charge takes n events from the cluster's bucket.
func (c *clusterState) charge(now time.Time, n int) {
	if c.rate <= 0 {
		return
	}
	c.mu.Lock()
	c.refill(now)
	c.tokens -= float64(n)
	c.mu.Unlock()
}

// retryAfter is d as a Retry-After value: whole seconds, at least 1.
func retryAfter(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// ClusterStats are one cluster's receiver counters.
type ClusterStats struct {
	Cluster string
	// Events are the events of batches answered 200.
	Events int64
	// Batches by outcome: Stored (200), Throttled (429, over the cluster's
	// rate), Busy (429, the queue or the cluster's share of it full), Failed
	// (503, not stored in time or the store failing), Rejected (4xx: size,
	// syntax; unauthenticated requests have no cluster and are counted
	// under Cluster "").
	Stored, Throttled, Busy, Failed, Rejected int64
	// InFlight are the cluster's batches in the receiver now.
	InFlight int
}

func (c *clusterState) stats() ClusterStats {
	return ClusterStats{Cluster: c.name, Events: c.events.Load(), Stored: c.stored.Load(), Throttled: c.throttled.Load(),
		Busy: c.busy.Load(), Failed: c.failed.Load(), Rejected: c.rejected.Load(), InFlight: int(c.inFlight.Load())}
}
