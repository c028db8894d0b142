package respond_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/respond"
)

// memCentral is a stand-in for central's action API, used only to drive the
// agent into cases the real server never produces (an action for another
// cluster, a lost result report). The real server is exercised end to end
// by internal/cli's TestRespondAgainstCentral.
type memCentral struct {
	mu        sync.Mutex
	actions   []alerts.Action
	results   map[int64]alerts.ActionResult
	failNext  int // Report calls to fail before one succeeds
	conflicts map[int64]bool
}

func (m *memCentral) Pending(_ context.Context, _ string) ([]alerts.Action, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []alerts.Action
	for _, a := range m.actions {
		if _, done := m.results[a.ID]; !done {
			out = append(out, a)
		}
	}
	return out, nil
}

func (m *memCentral) Report(_ context.Context, id int64, res alerts.ActionResult) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failNext > 0 {
		m.failNext--
		return errors.New("connection reset")
	}
	if m.conflicts[id] {
		m.results[id] = res
		return respond.ErrConflict
	}
	m.results[id] = res
	return nil
}

func TestAgentPoll(t *testing.T) {
	w := newWorld(t)
	r := w.responder(t)
	ctx := context.Background()
	pending := alerts.ActionPending
	mc := &memCentral{
		results:   map[int64]alerts.ActionResult{},
		conflicts: map[int64]bool{3: true},
		failNext:  1,
		actions: []alerts.Action{
			{ID: 1, Action: alerts.ActionDeletePod, Cluster: "prod", Namespace: ns, Pod: "victim", State: pending},
			{ID: 2, Action: alerts.ActionDeletePod, Cluster: "staging", Namespace: ns, Pod: "debug", State: pending},
			{ID: 3, Action: alerts.ActionCordonNode, Cluster: "prod", Node: "node-1", State: pending},
		},
	}
	agent := &respond.Agent{Central: mc, Kube: r, Cluster: "prod", Log: slog.New(slog.DiscardHandler)}

	// First poll: the report of action 1 is lost, 2 is refused, 3 conflicts.
	n, err := agent.Poll(ctx)
	if err == nil || n != 2 {
		t.Fatalf("first poll: n=%d err=%v, want 2 and the lost report's error", n, err)
	}
	if _, err := w.admin.CoreV1().Pods(ns).Get(ctx, "victim", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("victim not deleted: %v", err)
	}
	if res := mc.results[2]; res.State != alerts.ActionFailed || !strings.Contains(res.Message, `refused an action for cluster "staging"`) {
		t.Errorf("other cluster's action: %+v", res)
	}
	if _, err := w.admin.CoreV1().Pods(ns).Get(ctx, "debug", metav1.GetOptions{}); err != nil {
		t.Errorf("the staging action touched this cluster: %v", err)
	}
	// Second poll: action 1 comes back and is performed again — safely.
	n, err = agent.Poll(ctx)
	if err != nil || n != 1 {
		t.Fatalf("second poll: n=%d err=%v", n, err)
	}
	if res := mc.results[1]; res.State != alerts.ActionDone || !strings.Contains(res.Message, "already gone") {
		t.Errorf("repeated delete: %+v", res)
	}
	if n, err := agent.Poll(ctx); n != 0 || err != nil {
		t.Errorf("third poll: n=%d err=%v, want nothing left", n, err)
	}
}

// TestAgentRun drives the polling loop: actions that show up while it runs
// are handled, and cancelling the context stops it. The actions are for
// another cluster, so they are refused without touching Kubernetes (Kube
// is nil on purpose: any call to it would panic the test).
func TestAgentRun(t *testing.T) {
	mc := &memCentral{results: map[int64]alerts.ActionResult{}}
	agent := &respond.Agent{Central: mc, Cluster: "prod", Interval: 20 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	mc.mu.Lock()
	mc.actions = append(mc.actions, alerts.Action{ID: 9, Action: alerts.ActionCordonNode, Cluster: "other", Node: "n", State: alerts.ActionPending})
	mc.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mc.mu.Lock()
		res, ok := mc.results[9]
		mc.mu.Unlock()
		if ok {
			if res.State != alerts.ActionFailed {
				t.Errorf("result %+v, want failed (other cluster)", res)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the running agent did not pick up the new action within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
