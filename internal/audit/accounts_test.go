package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/rules"
)

// memAccountStore stands in for central's store in these unit tests of the
// detector's bookkeeping (the real store, SQLite and PostgreSQL, is
// exercised across a real central restart in internal/server's
// TestAuditAccountStateAcrossRestart).
type memAccountStore struct {
	mu                sync.Mutex
	rows              map[[3]string]AccountSource
	failLoad, failSav bool
	saves             int
	lastForget        time.Time
}

func newMemAccountStore() *memAccountStore {
	return &memAccountStore{rows: map[[3]string]AccountSource{}}
}

func (m *memAccountStore) LoadAccountSources(_ context.Context, since time.Time) ([]AccountSource, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failLoad {
		return nil, errors.New("database is down")
	}
	var out []AccountSource
	for _, r := range m.rows {
		if !r.LastSeen.Before(since) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (m *memAccountStore) SaveAccountSources(_ context.Context, srcs []AccountSource, forgetBefore time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failSav {
		return errors.New("disk full")
	}
	m.saves++
	for _, s := range srcs {
		m.rows[[3]string{s.Cluster, s.Account, s.IP}] = s
	}
	if !forgetBefore.IsZero() {
		m.lastForget = forgetBefore
		for k, r := range m.rows {
			if r.LastSeen.Before(forgetBefore) {
				delete(m.rows, k)
			}
		}
	}
	return nil
}

func saEvent(id, ip string) *rules.AuditEvent {
	return &rules.AuditEvent{AuditID: id, User: "system:serviceaccount:shop:deployer", SourceIPs: []string{ip}}
}

func TestAccountDetectorPersistence(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	ms := newMemAccountStore()
	cfg := AccountConfig{Learn: time.Hour, MaxIPs: 3, Forget: 48 * time.Hour, Store: ms}

	d := newAccountDetector(cfg)
	if err := d.load(ctx, t0); err != nil {
		t.Fatal(err)
	}
	for i, ip := range []string{"10.0.0.1", "10.0.0.2"} {
		if _, alert := d.observe("prod", saEvent(fmt.Sprint("l", i), ip), t0.Add(time.Duration(i)*time.Minute)); alert {
			t.Errorf("alert while learning on %s", ip)
		}
	}
	if err := d.flush(ctx, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if len(ms.rows) != 2 {
		t.Fatalf("saved %d rows, want 2", len(ms.rows))
	}

	// Restart: a new detector over the same store is past learning.
	d = newAccountDetector(cfg)
	at := t0.Add(2 * time.Hour)
	if err := d.load(ctx, at); err != nil {
		t.Fatal(err)
	}
	if _, alert := d.observe("prod", saEvent("k1", "10.0.0.1"), at); alert {
		t.Error("learned address alerted after a restart")
	}
	if ip, alert := d.observe("prod", saEvent("n1", "192.0.2.50"), at); !alert || ip != "192.0.2.50" {
		t.Errorf("new address after a restart: alert=%v ip=%q", alert, ip)
	}
	// A failed save keeps the change for the next flush.
	ms.failSav = true
	if err := d.flush(ctx, at); err == nil {
		t.Fatal("save error not reported")
	}
	ms.failSav = false
	if err := d.flush(ctx, at); err != nil {
		t.Fatal(err)
	}
	if r := ms.rows[[3]string{"prod", "system:serviceaccount:shop:deployer", "192.0.2.50"}]; r.AlertedBy != "n1" || !r.AccountFirst.Equal(t0) {
		t.Errorf("alerted address saved as %+v", r)
	}
	// Restart again: the alerted address alerts again only for the very
	// same request (a retried batch), not for a new one.
	d = newAccountDetector(cfg)
	if err := d.load(ctx, at); err != nil {
		t.Fatal(err)
	}
	if _, alert := d.observe("prod", saEvent("n1", "192.0.2.50"), at); !alert {
		t.Error("the alerting request replayed after a restart did not alert again (its alert could be lost)")
	}
	if _, alert := d.observe("prod", saEvent("n2", "192.0.2.50"), at.Add(time.Second)); alert {
		t.Error("alerted address alerted again after a restart")
	}

	// Bounded: 3 addresses per account; the full account alerts on a new
	// one without remembering it, until age-out makes room.
	if _, alert := d.observe("prod", saEvent("n3", "192.0.2.51"), at); !alert {
		t.Error("4th address: no alert")
	}
	if n := len(d.accts[accountKey("prod", "system:serviceaccount:shop:deployer")].ips); n != 3 {
		t.Errorf("account remembers %d addresses, cap 3", n)
	}
	if _, alert := d.observe("prod", saEvent("n4", "192.0.2.51"), at.Add(time.Minute)); !alert {
		t.Error("address not remembered (cap) should alert again")
	}
	// 10.0.0.2 was last seen at t0+1m: after Forget it is evicted to make
	// room, and the age-out deletes it from the store.
	late := t0.Add(49 * time.Hour)
	d.observe("prod", saEvent("k2", "10.0.0.1"), late)
	d.observe("prod", saEvent("k3", "192.0.2.50"), late)
	if _, alert := d.observe("prod", saEvent("n5", "192.0.2.52"), late); !alert {
		t.Error("new address after age-out: no alert")
	}
	ips := d.accts[accountKey("prod", "system:serviceaccount:shop:deployer")].ips
	if _, ok := ips["10.0.0.2"]; ok || ips["192.0.2.52"] == nil {
		t.Errorf("after age-out the account remembers %v", keys(ips))
	}
	d.lastPrune = time.Time{}
	if err := d.flush(ctx, late); err != nil {
		t.Fatal(err)
	}
	if _, ok := ms.rows[[3]string{"prod", "system:serviceaccount:shop:deployer", "10.0.0.2"}]; ok || !ms.lastForget.Equal(late.Add(-48*time.Hour)) {
		t.Errorf("store age-out: rows %v, forget before %v", ms.rows, ms.lastForget)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A store that cannot load fails the batch (the API server retries it)
// instead of learning again silently.
func TestAccountStoreLoadFailureFailsBatch(t *testing.T) {
	ms := newMemAccountStore()
	ms.failLoad = true
	sink := newMemSink()
	proc, err := NewProcessor(Config{Accounts: AccountConfig{Store: ms}}, sink)
	if err != nil {
		t.Fatal(err)
	}
	line := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x1","stage":"ResponseComplete","verb":"list",` +
		`"user":{"username":"system:serviceaccount:shop:deployer"},"sourceIPs":["10.0.0.9"],"requestURI":"/api/v1/pods"}`
	if err := proc.Process(context.Background(), "prod", []string{line}); err == nil {
		t.Fatal("batch accepted although the detector's state could not be loaded")
	}
	ms.failLoad = false
	if err := proc.Process(context.Background(), "prod", []string{line}); err != nil {
		t.Fatal(err)
	}
	if len(ms.rows) != 1 {
		t.Errorf("state after the retried batch: %v", ms.rows)
	}
}
