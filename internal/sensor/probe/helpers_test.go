package probe

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor/probe/runctest"
)

// needKernel skips when this machine cannot load the sensor (not root, no
// BTF) and, for container tests, when runc or busybox-static are missing.
// With BULWARK_REQUIRE_SENSOR=1 (CI) it fails instead: there the kernel
// tests must run.
func needKernel(t testing.TB, containers bool) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("BULWARK_REQUIRE_SENSOR") == "1" {
		skip = t.Fatalf
	}
	if err := Supported(); err != nil {
		skip("sensor cannot run here: %v", err)
	}
	if containers {
		if err := runctest.Available(); err != nil {
			skip("no containers here: %v", err)
		}
	}
}

// seen is one event a collector kept, with the rules it matched.
type seen struct {
	ev    rules.Event
	rules []string
}

// collector runs Probe.Read and keeps the events that keep accepts,
// evaluated against eng when eng is not nil.
type collector struct {
	mu   sync.Mutex
	evs  []seen
	cond *sync.Cond
}

func collect(t *testing.T, p *Probe, eng *rules.Engine, keep func(*rules.Event) bool) *collector {
	t.Helper()
	c := &collector{}
	c.cond = sync.NewCond(&c.mu)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var dst []rules.Match
		done <- p.Read(ctx, func(ev *rules.Event) {
			if !keep(ev) {
				return
			}
			s := seen{ev: *ev}
			if eng != nil {
				dst = eng.Evaluate(ev, dst[:0])
				for _, m := range dst {
					s.rules = append(s.rules, m.Rule.Name)
				}
			}
			c.mu.Lock()
			c.evs = append(c.evs, s)
			c.cond.Broadcast()
			c.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("read: %v", err)
		}
	})
	return c
}

// wait returns the first event kept since start for which match holds, or
// fails the test after timeout.
func (c *collector) wait(t *testing.T, what string, timeout time.Duration, match func(*seen) bool) *seen {
	t.Helper()
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for i := range c.evs {
			if match(&c.evs[i]) {
				s := c.evs[i]
				return &s
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: no matching event within %v (%d events kept)", what, timeout, len(c.evs))
			for i := range c.evs {
				e := &c.evs[i].ev
				t.Logf("  kept: %s %s %q fd=%q rules=%v", e.Type, e.Proc.Name, e.Proc.Args, e.FD.Name, c.evs[i].rules)
			}
			return nil
		}
		// Wake up periodically: Broadcast only comes with new events.
		go func() { time.Sleep(50 * time.Millisecond); c.mu.Lock(); c.cond.Broadcast(); c.mu.Unlock() }()
		c.cond.Wait()
	}
}

// reset forgets the events kept so far.
func (c *collector) reset() {
	c.mu.Lock()
	c.evs = nil
	c.mu.Unlock()
}

func hasRule(s *seen, name string) bool {
	for _, r := range s.rules {
		if r == name {
			return true
		}
	}
	return false
}

func defaultEngine(t testing.TB) *rules.Engine {
	t.Helper()
	files, err := rules.DefaultRuleFiles()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := rules.Compile(files)
	if err != nil {
		t.Fatal(err)
	}
	return eng
}
