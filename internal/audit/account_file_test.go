package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFileAccountStoreAcrossRestart: the detector over a FileAccountStore
// keeps what it learned, and what it alerted on, across a restart (a new
// store and detector over the same file), ages out what was not seen, and
// writes the documented format.
func TestFileAccountStoreAcrossRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state", "audit.accounts.json")
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	cfg := func() AccountConfig {
		return AccountConfig{Learn: time.Hour, MaxIPs: 8, Forget: 48 * time.Hour, Store: NewFileAccountStore(path, nil)}
	}
	d := newAccountDetector(cfg())
	if err := d.load(ctx, t0); err != nil {
		t.Fatalf("load without a file: %v", err)
	}
	for i, ip := range []string{"10.0.0.1", "10.0.0.2"} {
		if _, alert := d.observe("prod", saEvent("l"+ip, ip), t0.Add(time.Duration(i)*time.Minute)); alert {
			t.Errorf("alert while learning on %s", ip)
		}
	}
	if err := d.flush(ctx, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}

	// Restart, two hours later: past learning, nothing relearned.
	at := t0.Add(2 * time.Hour)
	d = newAccountDetector(cfg())
	if err := d.load(ctx, at); err != nil {
		t.Fatal(err)
	}
	if _, alert := d.observe("prod", saEvent("k1", "10.0.0.1"), at); alert {
		t.Error("a learned address alerted after a restart")
	}
	if ip, alert := d.observe("prod", saEvent("n1", "192.0.2.50"), at); !alert || ip != "192.0.2.50" {
		t.Errorf("new address after a restart: alert=%v ip=%q (a restart must not open a new learning period)", alert, ip)
	}
	if err := d.flush(ctx, at); err != nil {
		t.Fatal(err)
	}

	// The file: version 1, one account, three addresses, the alerting
	// request named.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f accountStateFile
	if err := json.Unmarshal(raw, &f); err != nil || f.Version != 1 || len(f.Accounts) != 1 || len(f.Accounts[0].IPs) != 3 ||
		!f.Accounts[0].First.Equal(t0) || f.Accounts[0].Account != "system:serviceaccount:shop:deployer" {
		t.Fatalf("state file %s: %+v %v", raw, f, err)
	}
	if ip := f.Accounts[0].IPs[2]; ip.IP != "192.0.2.50" || ip.AlertedBy != "n1" {
		t.Errorf("alerted address stored as %+v", ip)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, %v", fi.Mode(), err)
	}

	// Restart again: the alerting request alerts again (a retried batch),
	// a new request on that address does not.
	d = newAccountDetector(cfg())
	if err := d.load(ctx, at); err != nil {
		t.Fatal(err)
	}
	if _, alert := d.observe("prod", saEvent("n1", "192.0.2.50"), at); !alert {
		t.Error("the alerting request replayed after a restart did not alert again")
	}
	if _, alert := d.observe("prod", saEvent("n2", "192.0.2.50"), at.Add(time.Second)); alert {
		t.Error("an alerted address alerted again after a restart")
	}

	// Age-out: 49 h later what was not seen for 48 h leaves the file.
	late := t0.Add(49 * time.Hour)
	d.observe("prod", saEvent("k2", "10.0.0.1"), late)
	d.lastPrune = time.Time{}
	if err := d.flush(ctx, late); err != nil {
		t.Fatal(err)
	}
	srcs, err := NewFileAccountStore(path, nil).LoadAccountSources(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, s := range srcs {
		ips = append(ips, s.IP)
	}
	// 10.0.0.2 was last seen at t0+1m, before the 48 h horizon; the
	// others since (most recently seen first).
	if strings.Join(ips, ",") != "10.0.0.1,192.0.2.50" {
		t.Errorf("after age-out the file keeps %v, want 10.0.0.1,192.0.2.50", ips)
	}
}

// A merge keeps the earliest first-seen and the latest last-seen, as
// central's store does.
func TestFileAccountStoreMerge(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.json")
	s := NewFileAccountStore(path, nil)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	acct := "system:serviceaccount:x:y"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.SaveAccountSources(ctx, []AccountSource{{Cluster: "c", Account: acct, IP: "1.1.1.1", AccountFirst: t0, LastSeen: t0.Add(time.Hour)}}, time.Time{}))
	must(s.SaveAccountSources(ctx, []AccountSource{{Cluster: "c", Account: acct, IP: "1.1.1.1", AccountFirst: t0.Add(time.Hour), LastSeen: t0,
		AlertedBy: "q"}}, time.Time{}))
	got, err := NewFileAccountStore(path, nil).LoadAccountSources(ctx, time.Time{})
	if err != nil || len(got) != 1 || !got[0].AccountFirst.Equal(t0) || !got[0].LastSeen.Equal(t0.Add(time.Hour)) || got[0].AlertedBy != "q" {
		t.Errorf("merged = %+v, %v", got, err)
	}
	if err := s.SaveAccountSources(ctx, []AccountSource{{Account: acct, IP: "2.2.2.2"}}, time.Time{}); err == nil {
		t.Error("a source without times was saved")
	}
	// since filters on last seen.
	if got, _ := NewFileAccountStore(path, nil).LoadAccountSources(ctx, t0.Add(2*time.Hour)); len(got) != 0 {
		t.Errorf("since after last seen: %+v", got)
	}
}

// An unusable file is set aside and the detector learns from scratch; the
// batch is not failed forever.
func TestFileAccountStoreCorrupt(t *testing.T) {
	ctx := context.Background()
	for name, content := range map[string]string{
		"garbage":      "{not json",
		"version":      `{"version":2,"accounts":[]}`,
		"empty acct":   `{"version":1,"accounts":[{"cluster":"c","account":"","first":"2026-11-27T10:00:00Z","ips":[]}]}`,
		"bad time":     `{"version":1,"accounts":[{"cluster":"c","account":"a","first":"0001-01-01T00:00:00Z","ips":[]}]}`,
		"empty ip":     `{"version":1,"accounts":[{"cluster":"c","account":"a","first":"2026-11-27T10:00:00Z","ips":[{"ip":"","last":"2026-11-27T10:00:00Z"}]}]}`,
		"truncated":    `{"version":1,"accounts":[{"cluster":"c","acc`,
		"wrong shapes": `{"version":"1"}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			s := NewFileAccountStore(path, testLogger(&logs))
			got, err := s.LoadAccountSources(ctx, time.Time{})
			if err != nil || len(got) != 0 {
				t.Fatalf("load = %v, %v; want nothing and no error", got, err)
			}
			if b, err := os.ReadFile(path + ".corrupt"); err != nil || string(b) != content {
				t.Errorf("not set aside: %v", err)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the unusable file is still in place: %v", err)
			}
			if !strings.Contains(logs.String(), "set aside") {
				t.Errorf("no warning logged: %q", logs.String())
			}
			// The next save writes a fresh, readable file.
			t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
			if err := s.SaveAccountSources(ctx, []AccountSource{{Cluster: "c", Account: "a", IP: "1.2.3.4", AccountFirst: t0, LastSeen: t0}}, time.Time{}); err != nil {
				t.Fatal(err)
			}
			if got, err := NewFileAccountStore(path, nil).LoadAccountSources(ctx, time.Time{}); err != nil || len(got) != 1 {
				t.Errorf("after a fresh save: %v %v", got, err)
			}
		})
	}
}

// An oversized file is refused before it is parsed.
func TestParseAccountStateBounded(t *testing.T) {
	big := strings.NewReader(`{"version":1,"accounts":[` + strings.Repeat(" ", MaxAccountStateBytes) + `]}`)
	if _, err := parseAccountState(big); !errors.Is(err, ErrAccountState) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized: %v", err)
	}
}

// FuzzAccountState: any bytes as the state file are refused with
// ErrAccountState or accepted within the bounds — never a panic.
func FuzzAccountState(f *testing.F) {
	f.Add([]byte(`{"version":1,"saved":"2026-11-28T00:00:00Z","accounts":[{"cluster":"prod","account":"system:serviceaccount:a:b",` +
		`"first":"2026-11-27T10:00:00Z","ips":[{"ip":"10.0.0.7","last":"2026-11-28T00:00:00Z","alerted_by":"x"}]}]}`))
	f.Add([]byte(`{"version":1,"accounts":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"version":1,"accounts":[{"account":"a","first":"9999-12-31T23:59:59Z","ips":[{"ip":"x","last":"2000-01-01T00:00:00Z"}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseAccountState(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrAccountState) {
				t.Fatalf("error does not wrap ErrAccountState: %v", err)
			}
			return
		}
		n := 0
		for _, a := range st.Accounts {
			n += len(a.IPs)
			if a.Account == "" {
				t.Fatal("accepted an empty account")
			}
		}
		if n > MaxAccountStatePairs {
			t.Fatalf("accepted %d pairs", n)
		}
	})
}

func testLogger(w *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
