package store

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestQueueDedup(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		d := digestOf("dedup")
		id1, created, err := s.Enqueue(ctx, NewJob{Kind: "scan", Key: d, Payload: json.RawMessage(`{"ref":"a"}`)})
		if err != nil || !created {
			t.Fatalf("enqueue = %d, %v, %v", id1, created, err)
		}
		id2, created, err := s.Enqueue(ctx, NewJob{Kind: "scan", Key: d})
		if err != nil || created || id2 != id1 {
			t.Fatalf("duplicate enqueue = %d, %v, %v; want %d, false", id2, created, err, id1)
		}
		// Another kind with the same key is another job.
		if _, created, _ := s.Enqueue(ctx, NewJob{Kind: "rematch", Key: d}); !created {
			t.Error("other kind deduplicated")
		}
		// Still deduplicated while running.
		jobs, err := s.Claim(ctx, "w", 10, time.Minute)
		if err != nil || len(jobs) != 2 {
			t.Fatalf("claim = %d, %v", len(jobs), err)
		}
		if id3, created, _ := s.Enqueue(ctx, NewJob{Kind: "scan", Key: d}); created || id3 != id1 {
			t.Errorf("enqueue while running = %d, %v", id3, created)
		}
		var job Job
		for _, j := range jobs {
			if j.ID == id1 {
				job = j
			}
		}
		if string(job.Payload) != `{"ref":"a"}` && string(job.Payload) != `{"ref": "a"}` {
			t.Errorf("payload = %s", job.Payload)
		}
		if err := s.Complete(ctx, job.Lease); err != nil {
			t.Fatal(err)
		}
		// Done: the same digest can be scanned again.
		id4, created, err := s.Enqueue(ctx, NewJob{Kind: "scan", Key: d})
		if err != nil || !created || id4 == id1 {
			t.Errorf("enqueue after done = %d, %v, %v", id4, created, err)
		}
		// Jobs without a key are never deduplicated.
		a, _, _ := s.Enqueue(ctx, NewJob{Kind: "sweep"})
		b, _, _ := s.Enqueue(ctx, NewJob{Kind: "sweep"})
		if a == b {
			t.Error("keyless jobs deduplicated")
		}
		// Bad input.
		if _, _, err := s.Enqueue(ctx, NewJob{Kind: ""}); !errors.Is(err, ErrInvalid) {
			t.Errorf("empty kind: %v", err)
		}
		if _, _, err := s.Enqueue(ctx, NewJob{Kind: "scan", Payload: json.RawMessage("{")}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad payload: %v", err)
		}
		if _, _, err := s.ListJobs(ctx, JobFilter{State: "queued"}, Page{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad state filter: %v", err)
		}
		if _, err := s.Claim(ctx, "w", 0, time.Minute); !errors.Is(err, ErrInvalid) {
			t.Errorf("claim 0: %v", err)
		}
	})
}

// TestQueueConcurrentDedup races enqueuers of the same key: exactly one job.
func TestQueueConcurrentDedup(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		ids := map[int64]int{}
		createdN := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					id, created, err := s.Enqueue(ctx, NewJob{Kind: "scan", Key: digestOf(strconv.Itoa(i))})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					ids[id]++
					if created {
						createdN++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(ids) != 20 || createdN != 20 {
			t.Errorf("%d distinct jobs, %d created; want 20, 20", len(ids), createdN)
		}
	})
}

// TestQueueConcurrentClaims: 8 workers on two Store instances (two central
// replicas on one database) drain 200 jobs; each is completed exactly once.
func TestQueueConcurrentClaims(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			testConcurrentClaims(ctx, t, [2]*Store{openStore(t, dsn, Options{}), openStore(t, dsn, Options{})})
		})
	}
}

func testConcurrentClaims(ctx context.Context, t *testing.T, replicas [2]*Store) {
	s := replicas[0]
	const jobs = 200
	for i := range jobs {
		if _, _, err := s.Enqueue(ctx, NewJob{Kind: "scan", Key: digestOf(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	done := map[int64]int{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := replicas[w%2]
			for {
				js, err := s.Claim(ctx, fmt.Sprintf("worker-%d", w), 1+w%3, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(js) == 0 {
					return
				}
				for _, j := range js {
					if j.Attempts != 1 || j.State != JobRunning || j.ClaimedBy != fmt.Sprintf("worker-%d", w) {
						t.Errorf("claimed %+v", j)
					}
					if err := s.Complete(ctx, j.Lease); err != nil {
						t.Error(err)
						continue
					}
					mu.Lock()
					done[j.ID]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(done) != jobs {
		t.Errorf("%d jobs completed, want %d", len(done), jobs)
	}
	for id, n := range done {
		if n != 1 {
			t.Errorf("job %d completed %d times", id, n)
		}
	}
	st, err := s.QueueStats(ctx)
	if err != nil || st.Done != jobs || st.Pending+st.Running+st.Failed != 0 {
		t.Errorf("stats = %+v, %v", st, err)
	}
}

func TestQueueLeaseExpiry(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		clk := newClock()
		s.now = clk.Now
		id, _, _ := s.Enqueue(ctx, NewJob{Kind: "scan", Key: "k", MaxAttempts: 3})
		first, err := s.Claim(ctx, "dies", 1, time.Minute)
		if err != nil || len(first) != 1 {
			t.Fatalf("claim = %v, %v", first, err)
		}
		// While the lease holds, nobody else gets the job.
		if js, _ := s.Claim(ctx, "other", 1, time.Minute); len(js) != 0 {
			t.Fatalf("claimed a leased job: %+v", js)
		}
		// Heartbeat keeps it.
		clk.Advance(50 * time.Second)
		if err := s.Extend(ctx, first[0].Lease, time.Minute); err != nil {
			t.Fatal(err)
		}
		clk.Advance(50 * time.Second)
		if js, _ := s.Claim(ctx, "other", 1, time.Minute); len(js) != 0 {
			t.Fatal("extended lease ignored")
		}
		// The worker dies; its lease expires; another worker takes over.
		clk.Advance(time.Minute)
		second, err := s.Claim(ctx, "takes-over", 1, time.Minute)
		if err != nil || len(second) != 1 || second[0].ID != id || second[0].Attempts != 2 {
			t.Fatalf("re-claim = %+v, %v", second, err)
		}
		if second[0].Lease.Token == first[0].Lease.Token {
			t.Fatal("re-claim reused the lease token")
		}
		// The presumed-dead worker wakes up: all its calls are fenced off.
		if err := s.Complete(ctx, first[0].Lease); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("stale complete: %v, want ErrLeaseLost", err)
		}
		if _, _, err := s.Fail(ctx, first[0].Lease, "x"); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("stale fail: %v", err)
		}
		if err := s.Extend(ctx, first[0].Lease, time.Minute); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("stale extend: %v", err)
		}
		if err := s.Release(ctx, first[0].Lease); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("stale release: %v", err)
		}
		if err := s.Complete(ctx, second[0].Lease); err != nil {
			t.Fatal(err)
		}
		// Completing again with the same lease is a no-op (a retry after a
		// lost reply), not a second completion.
		if err := s.Complete(ctx, second[0].Lease); err != nil {
			t.Errorf("idempotent complete: %v", err)
		}
		if err := s.Complete(ctx, Lease{JobID: id, Token: ""}); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("empty token: %v", err)
		}
		j, _ := s.GetJob(ctx, id)
		if j.State != JobDone || j.Attempts != 2 || j.FinishedAt.IsZero() {
			t.Errorf("job = %+v", j)
		}

		// Lease expiry on the last attempt fails the job instead of
		// handing it out again.
		id2, _, _ := s.Enqueue(ctx, NewJob{Kind: "scan", Key: "k2", MaxAttempts: 1})
		if js, _ := s.Claim(ctx, "w", 1, time.Minute); len(js) != 1 || js[0].ID != id2 {
			t.Fatalf("claim k2: %+v", js)
		}
		clk.Advance(2 * time.Minute)
		if js, _ := s.Claim(ctx, "w", 1, time.Minute); len(js) != 0 {
			t.Fatalf("exhausted job handed out: %+v", js)
		}
		j2, _ := s.GetJob(ctx, id2)
		if j2.State != JobFailed || !strings.Contains(j2.LastError, "lease expired") {
			t.Errorf("exhausted job = %+v", j2)
		}
	})
}

func TestQueueFailBackoff(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		clk := newClock()
		s.now = clk.Now
		id, _, _ := s.Enqueue(ctx, NewJob{Kind: "scan", Key: "k", MaxAttempts: 3})
		wantMin := []time.Duration{JobBackoffBase, 2 * JobBackoffBase}
		for attempt := 1; attempt <= 3; attempt++ {
			js, err := s.Claim(ctx, "w", 1, time.Minute)
			if err != nil || len(js) != 1 || js[0].Attempts != attempt {
				t.Fatalf("attempt %d: claim = %+v, %v", attempt, js, err)
			}
			retryAt, final, err := s.Fail(ctx, js[0].Lease, fmt.Sprintf("registry timeout %d", attempt))
			if err != nil {
				t.Fatal(err)
			}
			if attempt == 3 {
				if !final {
					t.Fatal("third failure not final")
				}
				break
			}
			delay := retryAt.Sub(clk.Now())
			if final || delay < wantMin[attempt-1] || delay > wantMin[attempt-1]*6/5 {
				t.Fatalf("attempt %d: retry in %v (final %v), want %v..+20%%", attempt, delay, final, wantMin[attempt-1])
			}
			// Not before the backoff.
			if js, _ := s.Claim(ctx, "w", 1, time.Minute); len(js) != 0 {
				t.Fatalf("attempt %d: claimed during backoff", attempt)
			}
			st, _ := s.QueueStats(ctx)
			if st.Pending != 1 || st.Due != 0 {
				t.Errorf("stats during backoff = %+v", st)
			}
			clk.Advance(delay)
		}
		j, _ := s.GetJob(ctx, id)
		if j.State != JobFailed || j.LastError != "registry timeout 3" || j.Attempts != 3 {
			t.Errorf("job = %+v", j)
		}
		// A failed job no longer blocks a new one for the same key.
		if _, created, _ := s.Enqueue(ctx, NewJob{Kind: "scan", Key: "k"}); !created {
			t.Error("failed job still deduplicates")
		}
		// Release gives a job back without spending an attempt.
		js, _ := s.Claim(ctx, "w", 1, time.Minute)
		if err := s.Release(ctx, js[0].Lease); err != nil {
			t.Fatal(err)
		}
		js2, _ := s.Claim(ctx, "w", 1, time.Minute)
		if len(js2) != 1 || js2[0].ID != js[0].ID || js2[0].Attempts != 1 {
			t.Errorf("after release: %+v", js2)
		}
		list, total, err := s.ListJobs(ctx, JobFilter{State: JobFailed}, Page{})
		if err != nil || total != 1 || list[0].ID != id || list[0].Lease.Token != "" {
			t.Errorf("failed jobs = %+v, %v", list, err)
		}
		clk.Advance(24 * time.Hour)
		if n, err := s.PurgeJobs(ctx, clk.Now()); err != nil || n != 1 {
			t.Errorf("purge = %d, %v", n, err)
		}
	})
}

// TestSaveScanCompletesJob: the result is stored iff the job is done.
func TestSaveScanCompletesJob(t *testing.T) {
	ctx := context.Background()
	f := fix(t)
	forEach(t, func(t *testing.T, s *Store) {
		clk := newClock()
		s.now = clk.Now
		res := f.result("jobbed", 20, 3, 0)
		if _, _, err := s.Enqueue(ctx, NewJob{Kind: "scan", Key: res.Target.Digest}); err != nil {
			t.Fatal(err)
		}
		stale, _ := s.Claim(ctx, "slow", 1, time.Minute)
		clk.Advance(2 * time.Minute)
		fresh, _ := s.Claim(ctx, "fast", 1, time.Minute)
		if len(stale) != 1 || len(fresh) != 1 {
			t.Fatal("claims failed")
		}
		// The slow worker's save is rolled back entirely.
		if _, err := s.SaveScan(ctx, res, ScanMeta{Job: &stale[0].Lease}); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("save with a lost lease: %v", err)
		}
		if _, err := s.GetImage(ctx, res.Target.Digest); !errors.Is(err, ErrNotFound) {
			t.Errorf("image stored despite the lost lease: %v", err)
		}
		if _, err := s.SaveScan(ctx, res, ScanMeta{Job: &fresh[0].Lease}); err != nil {
			t.Fatal(err)
		}
		j, _ := s.GetJob(ctx, fresh[0].ID)
		if j.State != JobDone {
			t.Errorf("job after save = %s", j.State)
		}
	})
}

// The kill -9 test: a child process (this test binary, re-executed) claims
// and completes jobs and is killed with SIGKILL in the middle. The parent
// then reopens the database and drains the queue. Every job ends done,
// none is completed twice, and the jobs the child held are taken over
// through lease expiry.

const killChildEnv = "BULWARK_STORE_KILL_CHILD_DSN"

// killChild is the child's main: three workers claim, "work" for 50 ms and
// complete, printing "claimed ID" and "done ID" lines as they go.
func killChild(dsn string) int {
	ctx := context.Background()
	s, err := Open(ctx, dsn, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 2
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				js, err := s.Claim(ctx, fmt.Sprintf("child-%d", w), 1, 2*time.Second)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child claim:", err)
					return
				}
				if len(js) == 0 {
					return
				}
				say("claimed %d", js[0].ID)
				time.Sleep(50 * time.Millisecond)
				if err := s.Complete(ctx, js[0].Lease); err != nil {
					fmt.Fprintln(os.Stderr, "child complete:", err)
					continue
				}
				say("done %d", js[0].ID)
			}
		}()
	}
	wg.Wait()
	return 0
}

func TestQueueKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			const jobs = 40
			s := openStore(t, dsn, Options{})
			for i := range jobs {
				if _, _, err := s.Enqueue(ctx, NewJob{Kind: "scan", Key: digestOf(strconv.Itoa(i))}); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()

			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), killChildEnv+"="+dsn)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			claimed, childDone := map[int64]bool{}, map[int64]int{}
			killed := false
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				verb, idStr, _ := strings.Cut(sc.Text(), " ")
				id, _ := strconv.ParseInt(idStr, 10, 64)
				switch verb {
				case "claimed":
					claimed[id] = true
					// Kill right after a claim (the child is inside its
					// 50 ms of "work" on it) once some jobs are done.
					if len(childDone) >= 10 && !killed {
						if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
							t.Fatal(err)
						}
						killed = true
					}
				case "done":
					childDone[id]++
				}
			}
			err = cmd.Wait()
			if !killed {
				t.Fatalf("child finished before it could be killed (%d done): %v", len(childDone), err)
			}
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("child did not die of SIGKILL: %v", cmd.ProcessState)
			}
			inFlight := 0
			for id := range claimed {
				if childDone[id] == 0 {
					inFlight++
				}
			}
			t.Logf("child: %d claimed, %d done, %d in flight when killed", len(claimed), len(childDone), inFlight)

			// The parent takes over. Its clock runs ahead past the child's
			// 2 s leases rather than sleeping.
			p := openStore(t, dsn, Options{Now: func() time.Time { return time.Now().Add(time.Minute) }})
			parentDone := map[int64]int{}
			retaken := 0
			for {
				js, err := p.Claim(ctx, "parent", 5, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				if len(js) == 0 {
					break
				}
				for _, j := range js {
					if j.Attempts > 1 {
						retaken++
					}
					if err := p.Complete(ctx, j.Lease); err != nil {
						t.Fatal(err)
					}
					parentDone[j.ID]++
				}
			}
			st, err := p.QueueStats(ctx)
			if err != nil || st.Done != jobs || st.Pending+st.Running+st.Failed != 0 {
				t.Fatalf("after recovery: %+v, %v; want all %d done", st, err, jobs)
			}
			if retaken == 0 {
				t.Error("no job was taken over through lease expiry: the kill did not interrupt any work")
			}
			silent := 0 // completed by the child, killed before it printed "done"
			all, _, err := p.ListJobs(ctx, JobFilter{}, Page{Limit: jobs})
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range all {
				n := childDone[j.ID] + parentDone[j.ID]
				switch {
				case n > 1:
					t.Errorf("job %d completed %d times (child %d, parent %d)", j.ID, n, childDone[j.ID], parentDone[j.ID])
				case n == 0:
					silent++
				}
			}
			if silent > inFlight {
				t.Errorf("%d jobs done without a recorded completion; at most the %d in flight could be", silent, inFlight)
			}
		})
	}
}

func TestEnqueueMany(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		existing, _, _ := s.Enqueue(ctx, NewJob{Kind: "scan", Key: "a"})
		got, err := s.EnqueueMany(ctx, []NewJob{{Kind: "scan", Key: "a"}, {Kind: "scan", Key: "b"}, {Kind: "scan", Key: "b"}, {Kind: "scan"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 4 {
			t.Fatalf("EnqueueMany returned %d results, want 4", len(got))
		}
		// "a" exists; "b" is created once and then deduplicated within the
		// batch; the keyless job is its own.
		want := []Enqueued{{existing, false}, {got[1].ID, true}, {got[1].ID, false}, {got[3].ID, true}}
		if diff := cmp.Diff(want, got); diff != "" || got[1].ID == existing || got[3].ID == got[1].ID {
			t.Fatalf("EnqueueMany = %+v (-want +got):\n%s", got, diff)
		}
		// All or nothing: one invalid job rejects the batch before any insert.
		if _, err := s.EnqueueMany(ctx, []NewJob{{Kind: "scan", Key: "c"}, {Kind: ""}}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("batch with an invalid job: %v", err)
		}
		if _, total, _ := s.ListJobs(ctx, JobFilter{Key: "c"}, Page{}); total != 0 {
			t.Error("part of a rejected batch was stored")
		}
		st, _ := s.QueueStats(ctx)
		if st.Pending != 3 || st.Due != 3 {
			t.Errorf("stats = %+v, want 3 pending", st)
		}
	})
}
