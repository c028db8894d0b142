package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/audit"
	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
	"github.com/bulwark-security/bulwark/internal/store"
)

func auditLine(id, ns, name string) string {
	return fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":%q,"stage":"ResponseComplete",`+
		`"requestURI":"/api/v1/namespaces/%s/pods","verb":"create","user":{"username":"alice"},"sourceIPs":["192.0.2.7"],`+
		`"objectRef":{"resource":"pods","namespace":%q,"name":%q,"apiVersion":"v1"},"responseStatus":{"code":201},`+
		`"requestObject":{"kind":"Pod","spec":{"containers":[{"name":"c","image":"busybox","securityContext":{"privileged":true}}]}},`+
		`"stageTimestamp":"2026-11-27T10:00:00.000001Z"}`, id, ns, ns, name)
}

// Central with the audit listener and a followed log file: alerts from
// both reach the real store (SQLite and PostgreSQL), once each.
func TestAuditInCentral(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "audit.log")
			os.WriteFile(logPath, []byte(auditLine("log-1", "batch", "from-file")+"\n"), 0o600)
			token := "audit-token-0123456789abcdef"
			e := startEnv(t, b.DSN(t), Config{Workers: -1, SweepInterval: -1, DBWatchInterval: -1, Audit: AuditConfig{
				Listen:   "127.0.0.1:0",
				Clients:  []audit.Client{{Cluster: "prod", Token: token}},
				LogFiles: []AuditLogFile{{Cluster: "managed", Path: logPath}},
			}})
			url := "https://" + e.srv.AuditAddr().String() + "/api/v1/audit/webhook"
			body := `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[` + auditLine("wh-1", "web", "p1") + `,` + auditLine("wh-2", "web", "p2") + `]}`
			post := func(tok string) int {
				req, _ := http.NewRequest("POST", url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := e.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if st := post("wrong-token-0123456789"); st != 401 {
				t.Errorf("wrong token: %d", st)
			}
			if st := post(token); st != 200 {
				t.Fatalf("post: %d", st)
			}
			if st := post(token); st != 200 { // replay
				t.Fatalf("replay: %d", st)
			}
			list := func() []store.Alert {
				as, _, err := e.st.ListAlerts(context.Background(), store.AlertFilter{Source: store.AlertSource("audit")}, store.Page{})
				if err != nil {
					t.Fatal(err)
				}
				return as
			}
			waitFor(t, 10*time.Second, "3 audit alerts", func() bool { return len(list()) >= 3 })
			time.Sleep(100 * time.Millisecond)
			got := map[string]int{}
			for _, a := range list() {
				got[a.Cluster+"/"+a.Namespace+"/"+a.Pod]++
				if a.Rule != "Privileged container created" || a.Count != 1 || !strings.Contains(string(a.Evidence), `"auditID"`) {
					t.Errorf("alert %+v", a)
				}
			}
			want := map[string]int{"prod/web/p1": 1, "prod/web/p2": 1, "managed/batch/from-file": 1}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("alerts %v, want %v", got, want)
			}
			// The receiver's per-cluster counters on /metrics: two batches of
			// two events stored (the replay is answered 200 too), one
			// unauthenticated request rejected.
			_, m := e.do("GET", "/metrics", e.admin, nil)
			for _, line := range []string{
				`bulwark_audit_webhook_events_total{cluster="prod"} 4`,
				`bulwark_audit_webhook_batches_total{cluster="prod",outcome="stored"} 2`,
				`bulwark_audit_webhook_batches_total{cluster="prod",outcome="throttled"} 0`,
				`bulwark_audit_webhook_batches_total{cluster="",outcome="rejected"} 1`,
				`bulwark_audit_records_total{outcome="replay"} 2`,
			} {
				if !strings.Contains(string(m), line+"\n") {
					t.Errorf("/metrics lacks %q", line)
				}
			}
		})
	}
}

// The real kube-apiserver's webhook backend, authenticated by token, posts
// to central's audit listener; the alert lands in the real store.
func TestAuditFromRealAPIServer(t *testing.T) {
	token := "apiserver-token-0123456789abcdef"
	e := startEnv(t, backends[0].DSN(t), Config{Workers: -1, SweepInterval: -1, DBWatchInterval: -1, Audit: AuditConfig{
		Listen:  "127.0.0.1:0",
		Clients: []audit.Client{{Cluster: "real", Token: token}},
	}})
	caPEM, err := os.ReadFile(e.caPath)
	if err != nil {
		t.Fatal(err)
	}
	c := k8stest.Start(t, k8stest.Options{AuditPolicy: audit.RecommendedPolicy, AuditWebhook: &k8stest.AuditWebhook{
		URL: "https://" + e.srv.AuditAddr().String() + "/api/v1/audit/webhook", CAPEM: caPEM, Token: token, BatchMaxWait: time.Second}})
	c.Namespace(t, "central-audit")
	priv := true
	_, err = c.Client.CoreV1().Pods("central-audit").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "root"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36",
			SecurityContext: &corev1.SecurityContext{Privileged: &priv}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []store.Alert
	waitFor(t, 30*time.Second, "the privileged-pod alert in the store", func() bool {
		got, _, err = e.st.ListAlerts(context.Background(), store.AlertFilter{Rule: "Privileged container created"}, store.Page{})
		return err == nil && len(got) > 0
	})
	if a := got[0]; a.Cluster != "real" || a.Namespace != "central-audit" || a.Pod != "root" || a.MitreTechnique != "T1610" {
		t.Errorf("alert %+v", a)
	}
}

// A cluster over its rate: the real kube-apiserver's webhook backend is
// answered 429, retries (its backoff, --audit-webhook-initial-backoff),
// and every alert still lands once — throttling delays, it does not lose.
func TestAuditRateLimitRealAPIServer(t *testing.T) {
	token := "apiserver-token-0123456789abcdef"
	e := startEnv(t, backends[0].DSN(t), Config{Workers: -1, SweepInterval: -1, DBWatchInterval: -1, Audit: AuditConfig{
		Listen:  "127.0.0.1:0",
		Clients: []audit.Client{{Cluster: "busy", Token: token}},
		// 50 events/s and a bucket of 50: the API server's first batch (its
		// bootstrap writes, ~240 events) puts the cluster ~4 s into debt,
		// so the batches behind it are throttled and retried.
		ClusterRate: 50, ClusterBurst: 50,
	}})
	caPEM, err := os.ReadFile(e.caPath)
	if err != nil {
		t.Fatal(err)
	}
	c := k8stest.Start(t, k8stest.Options{AuditPolicy: audit.RecommendedPolicy,
		AuditWebhook: &k8stest.AuditWebhook{URL: "https://" + e.srv.AuditAddr().String() + "/api/v1/audit/webhook",
			CAPEM: caPEM, Token: token, BatchMaxWait: 500 * time.Millisecond},
		// 5 tries over ~8 × the initial backoff: 8 s here, more than the
		// debt (a batch still refused after them would be lost).
		ExtraArgs: []string{"--audit-webhook-initial-backoff=1s"}})
	c.Namespace(t, "throttled")
	priv := true
	count := func() int {
		got, _, err := e.st.ListAlerts(context.Background(), store.AlertFilter{Rule: "Privileged container created", Cluster: "busy"}, store.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	for round := range 2 {
		for i := range 8 {
			_, err = c.Client.CoreV1().Pods("throttled").Create(context.Background(), &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("root-%d-%d", round, i)},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36",
					SecurityContext: &corev1.SecurityContext{Privileged: &priv}}}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
		}
		want := 8 * (round + 1)
		waitFor(t, 60*time.Second, fmt.Sprintf("%d privileged-pod alerts", want), func() bool { return count() >= want })
	}
	var busy audit.ClusterStats
	for _, s := range e.srv.audit.receiver.ClusterStats() {
		if s.Cluster == "busy" {
			busy = s
		}
	}
	if busy.Throttled == 0 {
		t.Errorf("stats %+v: no batch was throttled; the test did not exercise the limit", busy)
	}
	time.Sleep(time.Second)
	if n := count(); n != 16 {
		t.Errorf("%d alerts, want 16 (one per pod)", n)
	}
	t.Logf("cluster stats: %+v", busy)
}

// `bulwark audit watch`'s sink posts to the real POST /api/v1/alerts with an
// agent token; the same records sent again (a restarted watcher) are
// duplicates, stored once.
func TestAuditHTTPSinkToCentral(t *testing.T) {
	e := startEnv(t, backends[0].DSN(t), Config{Workers: -1, SweepInterval: -1, DBWatchInterval: -1})
	var acc, dup int
	sink := audit.SinkFunc(func(ctx context.Context, as []alerts.Alert) (int, int, error) {
		a, d, err := (&audit.HTTPSink{Server: e.url, Token: e.token(store.RoleAgent), Client: e.client}).IngestAlerts(ctx, as)
		acc, dup = acc+a, dup+d
		return a, d, err
	})
	recs := []string{auditLine("watch-1", "web", "a"), auditLine("watch-2", "web", "b")}
	for range 2 {
		proc, err := audit.NewProcessor(audit.Config{}, sink)
		if err != nil {
			t.Fatal(err)
		}
		if err := proc.Process(context.Background(), "managed", recs); err != nil {
			t.Fatal(err)
		}
	}
	if acc != 2 || dup != 2 {
		t.Errorf("accepted %d, duplicates %d; want 2 and 2", acc, dup)
	}
	got, _, err := e.st.ListAlerts(context.Background(), store.AlertFilter{Cluster: "managed"}, store.Page{})
	if err != nil || len(got) != 2 {
		t.Fatalf("stored %d alerts (%v), want 2", len(got), err)
	}
}
