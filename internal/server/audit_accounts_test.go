package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/bulwark-security/bulwark/internal/audit"
	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
	"github.com/bulwark-security/bulwark/internal/store"
)

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The service-account source detector's learned state survives a restart
// of central: real audit events from a real kube-apiserver (its audit log
// file, followed by central) teach central 1 the account's address; central
// 2, started on the same store after the learning period, alerts on a new
// address at once and not on the learned one (a detector that learned
// again would stay silent on both for a whole new learning period);
// central 3 does not alert again on the address central 2 alerted on.
func TestAuditAccountStateAcrossRestart(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) { testAuditAccountRestart(t, b) })
	}
}

func testAuditAccountRestart(t *testing.T, b backend) {
	c := k8stest.Start(t, k8stest.Options{AuditPolicy: audit.RecommendedPolicy})
	ctx := context.Background()
	ns := "sa-restart"
	c.Namespace(t, ns)
	if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "deployer", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A request as the service account, from an address set with
	// X-Forwarded-For (kube-apiserver lists it first in sourceIPs).
	from := func(ip string) {
		t.Helper()
		cfg := rest.AnonymousClientConfig(c.Config)
		cfg.BearerToken = tr.Status.Token
		cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return rtFunc(func(r *http.Request) (*http.Response, error) {
				r = r.Clone(r.Context())
				r.Header.Set("X-Forwarded-For", ip)
				return rt.RoundTrip(r)
			})
		}
		cs := kubernetes.NewForConfigOrDie(cfg)
		_, _ = cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}) // forbidden, still audited
	}
	const learn = 4 * time.Second
	dsn, dataDir := b.DSN(t), t.TempDir()
	cfg := Config{Workers: -1, SweepInterval: -1, DBWatchInterval: -1, DataDir: dataDir, Audit: AuditConfig{
		LogFiles: []AuditLogFile{{Cluster: "real", Path: c.AuditLogPath}},
		Accounts: audit.AccountConfig{Learn: learn},
	}}
	const account = "system:serviceaccount:sa-restart:deployer"
	learned := func(e *env, ip string) bool {
		srcs, err := e.st.LoadAuditAccountSources(ctx, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range srcs {
			if s.Account == account && s.IP == ip {
				return true
			}
		}
		return false
	}
	saAlerts := func(e *env) []store.Alert {
		as, _, err := e.st.ListAlerts(ctx, store.AlertFilter{Rule: audit.AccountRuleName, Suppressed: store.WithSuppressed}, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var out []store.Alert
		for _, a := range as {
			if strings.Contains(a.Title, "user="+account) {
				out = append(out, a)
			}
		}
		return out
	}

	// Central 1 learns 10.244.1.17.
	e1 := startEnv(t, dsn, cfg)
	start := time.Now()
	from("10.244.1.17")
	waitFor(t, 30*time.Second, "central 1 to learn the address", func() bool { return learned(e1, "10.244.1.17") })
	if n := len(saAlerts(e1)); n != 0 {
		t.Fatalf("alerts while learning: %d", n)
	}
	if err := e1.stop(); err != nil {
		t.Fatal(err)
	}

	// After the learning period, central 2: the learned address is quiet,
	// a new one alerts.
	time.Sleep(time.Until(start.Add(learn + time.Second)))
	e2 := startEnv(t, dsn, cfg)
	from("10.244.1.17")
	from("203.0.113.9")
	var got []store.Alert
	waitFor(t, 30*time.Second, "central 2's alert on the new address", func() bool { got = saAlerts(e2); return len(got) > 0 })
	waitFor(t, 30*time.Second, "central 2 to save the alerted address", func() bool { return learned(e2, "203.0.113.9") })
	if len(got) != 1 || !strings.Contains(got[0].Title, "sourceip=203.0.113.9") || got[0].Cluster != "real" {
		t.Fatalf("central 2 alerts = %+v, want one for 203.0.113.9", got)
	}
	if err := e2.stop(); err != nil {
		t.Fatal(err)
	}

	// Central 3: the address central 2 alerted on stays known (no second
	// alert for a new request from it); another new one still alerts.
	e3 := startEnv(t, dsn, cfg)
	from("203.0.113.9")
	from("198.51.100.4")
	waitFor(t, 30*time.Second, "central 3's alert on another address", func() bool { got = saAlerts(e3); return len(got) >= 2 })
	time.Sleep(500 * time.Millisecond) // a wrong second alert for 203.0.113.9 would be in the same batch
	got = saAlerts(e3)
	var titles []string
	for _, a := range got {
		if a.Count != 1 {
			t.Errorf("alert %q counted %d occurrences, want 1 (a repeat alert after the restart)", a.Title, a.Count)
		}
		titles = append(titles, a.Title)
	}
	joined := strings.Join(titles, "\n")
	if len(got) != 2 || strings.Count(joined, "sourceip=203.0.113.9") != 1 || !strings.Contains(joined, "sourceip=198.51.100.4") {
		t.Errorf("after central 3: %d alerts:\n%s", len(got), joined)
	}
}
