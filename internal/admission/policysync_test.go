package admission

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/policy"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/testlog"
)

// TestPoliciesFromCentral runs a webhook whose policies are a local file
// plus central's documents, polled from a real central: a deny policy put
// on central starts denying after a poll, a conflicting document leaves the
// set in force, deleting the policy allows again, and central going away
// keeps the last good set.
func TestPoliciesFromCentral(t *testing.T) {
	c := startCentral(t)
	ctx := context.Background()
	admin, _, err := c.Store.CreateToken(ctx, "admin", store.RoleAdmin, time.Time{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: c.TLS.Clone()}, Timeout: 30 * time.Second}
	call := func(method, name, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, c.URL+PathPolicies+"/"+name, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %s %s", method, name, resp.Status, b)
		}
	}

	dir := t.TempDir()
	local := policyDoc("local-audit", "  mode: audit\n  scope: {namespaces: [audit]}\n  provenance: {noLatest: true}")
	if err := os.WriteFile(filepath.Join(dir, "local.yaml"), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	watcher, err := policy.NewWatcher(ctx, newLoader(t), []string{dir}, log)
	if err != nil {
		t.Fatal(err)
	}
	ps := NewPolicySync(PolicySyncConfig{URL: c.URL, Token: c.Agent, TLS: c.TLS, Interval: 20 * time.Millisecond}, watcher, log)
	if err := ps.Sync(ctx); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	if err := ps.Sync(ctx); !errors.Is(err, ErrPoliciesUnchanged) {
		t.Fatalf("second sync: %v, want 304", err)
	}
	w := startWebhook(t, Config{}, watcher, c, false)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { ps.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()

	n := 0
	allowed := func() bool {
		t.Helper()
		n++
		_, resp, raw := w.send(t, review(fmt.Sprintf("p%d", n), "CREATE", "Pod", "dev", "web", podObj("web", "nginx")))
		if resp == nil {
			t.Fatalf("no response: %s", raw)
		}
		return resp.Allowed
	}
	if !allowed() {
		t.Fatal("denied before any central policy")
	}

	call("PUT", "no-latest", policyDoc("central-no-latest", "  mode: deny\n  scope: {namespaces: [dev]}\n  provenance: {noLatest: true}"))
	waitFor(t, 10*time.Second, func() bool { return !allowed() })
	if got := len(watcher.Current().Policies()); got != 2 {
		t.Errorf("%d policies in force, want the local and the central one", got)
	}

	// A central document that clashes with the local file (central cannot
	// see local files, so it accepts it): the webhook keeps its set.
	before := watcher.Current().Version()
	call("PUT", "clash", local)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "do not load") })
	if watcher.Current().Version() != before || allowed() {
		t.Error("a set that does not load replaced the policies in force")
	}
	if !strings.Contains(logs.String(), "central:clash") {
		t.Errorf("the log does not name the document:\n%s", logs.String())
	}
	call("DELETE", "clash", "")

	call("DELETE", "no-latest", "")
	waitFor(t, 10*time.Second, allowed)
	if got := len(watcher.Current().Policies()); got != 1 {
		t.Errorf("%d policies after delete, want the local one", got)
	}

	// Central goes away: the last good set stays.
	call("PUT", "no-latest", policyDoc("central-no-latest", "  mode: deny\n  scope: {namespaces: [dev]}\n  provenance: {noLatest: true}"))
	waitFor(t, 10*time.Second, func() bool { return !allowed() })
	cancel()
	<-done
	c.Stop()
	err = ps.Sync(ctx)
	if err == nil || errors.Is(err, ErrPoliciesUnchanged) || errors.Is(err, policy.ErrInvalid) {
		t.Fatalf("sync with central down: %v", err)
	}
	if allowed() || len(watcher.Current().Policies()) != 2 {
		t.Error("central unreachable dropped the central policies")
	}
}

func TestDecodeCentralPolicies(t *testing.T) {
	srcs, etag, err := decodeCentralPolicies(strings.NewReader(`{"etag":"\"7\"","items":[{"name":"a","yaml":"x: 1\n"},{"name":"b","yaml":""}]}`))
	if err != nil || etag != `"7"` || len(srcs) != 2 || srcs[0].Name != "central:a" || string(srcs[0].Data) != "x: 1\n" {
		t.Fatalf("decode = %+v %q %v", srcs, etag, err)
	}
	for _, bad := range []string{
		``, `{`, `[]`, `{"items":[{"name":"","yaml":"x"}]}`,
		`{"items":[{"name":"a"},{"name":"a"}]}`,
		`{"items":[` + strings.Repeat(`{"name":"x"},`, policy.MaxPolicies) + `{"name":"y"}]}`,
	} {
		if _, _, err := decodeCentralPolicies(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %.60q", bad)
		}
	}
}

// FuzzDecodeCentralPolicies: central's answer is outside data.
func FuzzDecodeCentralPolicies(f *testing.F) {
	f.Add([]byte(`{"etag":"\"1\"","items":[{"name":"a","yaml":"apiVersion: x\n"}]}`))
	f.Add([]byte(`{"items":null}`))
	f.Add([]byte(`{"items":[{"name":"a"},{"name":"a"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		srcs, _, err := decodeCentralPolicies(bytes.NewReader(b))
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, s := range srcs {
			if !strings.HasPrefix(s.Name, policy.CentralSource("")) || s.Name == policy.CentralSource("") || seen[s.Name] {
				t.Fatalf("bad source name %q", s.Name)
			}
			seen[s.Name] = true
		}
	})
}
