package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
)

// TestHookLoad sends registry notifications at a fixed rate over TLS on
// loopback — 1,000 a second, each a push of a distinct digest — for 3 s
// (BULWARK_LOAD_SECONDS=30 for the full 30 s run) and checks that every
// accepted notification became exactly one scan job. The load generator
// is bounded: at most 64 requests in flight and a queue of one second of
// notifications; what it could not send in time is counted, not retried.
func TestHookLoad(t *testing.T) {
	seconds := 3
	if v := os.Getenv("BULWARK_LOAD_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 300 {
			t.Fatalf("BULWARK_LOAD_SECONDS=%q: want 1-300", v)
		}
		seconds = n
	}
	const rate = 1000
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			e := startEnv(t, b.DSN(t), Config{Workers: -1, SweepInterval: -1, DBWatchInterval: -1})
			createRegistry(t, e.st, "load", "https://registry.example.com", "distribution", distSecret)
			total := rate * seconds
			queue := make(chan int, rate)
			var sent, accepted, failed, dropped atomic.Int64
			var mu sync.Mutex
			var lat []time.Duration
			var wg sync.WaitGroup
			for range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range queue {
						d := sha256.Sum256([]byte("load-" + strconv.Itoa(i)))
						body, _ := json.Marshal(distributionPush(fmt.Sprintf("load-%d", i), "load/app", "v"+strconv.Itoa(i),
							"sha256:"+hex.EncodeToString(d[:])))
						start := time.Now()
						st, rb := e.do("POST", "/api/v1/hooks/distribution", "", body, "Authorization", "Bearer "+distSecret)
						el := time.Since(start)
						sent.Add(1)
						var hr hookResponse
						if st == 202 && json.Unmarshal(rb, &hr) == nil && hr.Accepted == 1 {
							accepted.Add(1)
						} else {
							failed.Add(1)
							t.Errorf("notification %d: %d %s", i, st, rb)
						}
						mu.Lock()
						lat = append(lat, el)
						mu.Unlock()
					}
				}()
			}
			start := time.Now()
			tick := time.NewTicker(time.Millisecond)
			for i := 0; i < total; {
				<-tick.C
				// Catch up on ticks the scheduler merged: keep the rate.
				due := min(int(time.Since(start)/time.Millisecond)+1, total)
				for ; i < due; i++ {
					select {
					case queue <- i:
					default:
						dropped.Add(1)
					}
				}
			}
			tick.Stop()
			close(queue)
			wg.Wait()
			elapsed := time.Since(start)
			slices.Sort(lat)
			pct := func(p float64) time.Duration {
				if len(lat) == 0 {
					return 0
				}
				return lat[min(int(float64(len(lat))*p), len(lat)-1)]
			}
			t.Logf("%s: %d notifications offered at %d/s over %s: %d sent, %d accepted, %d failed, %d dropped by the generator; "+
				"%.0f/s achieved; latency p50 %s p99 %s max %s", b.Name, total, rate, elapsed.Round(time.Millisecond), sent.Load(),
				accepted.Load(), failed.Load(), dropped.Load(), float64(sent.Load())/elapsed.Seconds(), pct(0.5), pct(0.99), pct(1))
			jobs, n, err := e.st.ListJobs(context.Background(), store.JobFilter{Kind: jobScan}, store.Page{Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			_ = jobs
			if int64(n) != accepted.Load() {
				t.Errorf("%d scan jobs for %d accepted notifications", n, accepted.Load())
			}
			// Each accepted notification has its own job: distinct keys.
			keys := map[string]bool{}
			for off := 0; off < n; off += store.MaxLimit {
				js, _, err := e.st.ListJobs(context.Background(), store.JobFilter{Kind: jobScan}, store.Page{Limit: store.MaxLimit, Offset: off, Sort: "id"})
				if err != nil {
					t.Fatal(err)
				}
				for _, j := range js {
					if keys[j.Key] {
						t.Errorf("two jobs for %s", j.Key)
					}
					keys[j.Key] = true
				}
			}
			if len(keys) != n {
				t.Errorf("%d distinct keys among %d jobs", len(keys), n)
			}
			if dropped.Load() > int64(total/10) {
				t.Errorf("the server kept up with only %d of %d notifications", total-int(dropped.Load()), total)
			}
		})
	}
}
