package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

func TestAlertShape(t *testing.T) {
	sink := newMemSink()
	proc, err := NewProcessor(Config{}, sink)
	if err != nil {
		t.Fatal(err)
	}
	rec := privilegedPod("7d0f", "payments", "miner")
	if err := proc.Process(context.Background(), "prod-eu", []string{rec}); err != nil {
		t.Fatal(err)
	}
	as := sink.all()
	if len(as) != 1 {
		t.Fatalf("alerts %v", sink.rules())
	}
	a := as[0]
	_, version, _ := DefaultEngine()
	want := alerts.Alert{
		ID: a.ID, Time: time.Date(2026, 11, 27, 10, 0, 0, 1_000_000, time.UTC), Source: alerts.SourceAudit,
		Rule: "Privileged container created", RuleVersion: version, Severity: alerts.SeverityMedium,
		Title:       "Privileged container created (user=alice resource=pods ns=payments name=miner images=busybox:1.36)",
		MitreTactic: "TA0004", MitreTechnique: "T1610",
		Cluster: "prod-eu", Namespace: "payments", Pod: "miner", Image: "busybox:1.36",
		Evidence: json.RawMessage(rec), Fingerprint: a.Fingerprint,
	}
	if d := cmp.Diff(want, a); d != "" {
		t.Errorf("alert (-want +got):\n%s", d)
	}
	// The id is a function of cluster, audit id and rule: the same record
	// processed by another processor (a restarted central) makes the same id.
	sink2 := newMemSink()
	proc2, _ := NewProcessor(Config{}, sink2)
	proc2.Process(context.Background(), "prod-eu", []string{rec})
	proc2.Process(context.Background(), "prod-us", []string{rec})
	got := sink2.all()
	if len(got) != 2 || got[0].ID != a.ID || got[1].ID == a.ID {
		t.Errorf("ids: first %s, other processor %v", a.ID, got)
	}
	// Workload template alerts name the workload.
	dep := auditRecord("d1", "create", "deployments", "", "web", "front", "bob", "192.0.2.1",
		`,"requestObject":{"kind":"Deployment","spec":{"template":{"spec":{"volumes":[{"name":"h","hostPath":{"path":"/etc"}}],"containers":[{"image":"nginx"}]}}}}`)
	proc.Process(context.Background(), "prod-eu", []string{dep})
	for _, a := range sink.all() {
		if a.Rule == "Sensitive hostPath mounted" && (a.Workload != "Deployment/front" || a.Pod != "") {
			t.Errorf("workload alert: workload %q pod %q", a.Workload, a.Pod)
		}
	}
	if sink.rules()["Sensitive hostPath mounted"] != 1 {
		t.Errorf("hostPath alert missing: %v", sink.rules())
	}
}

// Hostile strings in a record cannot put control characters into alert
// fields (they would reach terminals and SIEMs).
func TestAlertFieldsCleaned(t *testing.T) {
	sink := newMemSink()
	proc, _ := NewProcessor(Config{}, sink)
	rec := auditRecord("c1", "create", "pods", "exec", "default", "webX", "alice", "192.0.2.1", "")
	rec = strings.ReplaceAll(rec, `"webX"`, `"web\u001b[31m"`)
	if err := proc.Process(context.Background(), "c", []string{rec}); err != nil {
		t.Fatal(err)
	}
	as := sink.all()
	if len(as) != 1 {
		t.Fatalf("alerts %v (stats %+v)", sink.rules(), proc.Stats())
	}
	if as[0].Pod != "web?[31m" {
		t.Errorf("pod %q", as[0].Pod)
	}
}

func TestServiceAccountDetector(t *testing.T) {
	sink := newMemSink()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	proc, _ := NewProcessor(Config{Accounts: AccountConfig{Learn: time.Hour}}, sink)
	sa := "system:serviceaccount:ci:deployer"
	n := 0
	send := func(at time.Time, ip string) {
		n++
		rec := auditRecord(fmt.Sprintf("sa-%d", n), "get", "configmaps", "", "ci", "cfg", sa, ip, "")
		rec = rec[:len(rec)-1] + `,"stageTimestamp":"` + at.Format(time.RFC3339Nano) + `"}`
		if err := proc.Process(context.Background(), "prod", []string{rec}); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int { return sink.rules()[AccountRuleName] }
	send(now, "10.0.0.7")
	send(now.Add(10*time.Minute), "10.0.0.8") // still learning
	if count() != 0 {
		t.Fatalf("alert while learning")
	}
	send(now.Add(2*time.Hour), "10.0.0.7") // learned
	send(now.Add(2*time.Hour), "10.0.0.8")
	if count() != 0 {
		t.Fatalf("alert for a learned source")
	}
	send(now.Add(3*time.Hour), "203.0.113.50") // new after learning
	if count() != 1 {
		t.Fatalf("no alert for a new source after learning (%v)", sink.rules())
	}
	send(now.Add(3*time.Hour+time.Minute), "203.0.113.50") // alerts once per new IP
	if count() != 1 {
		t.Errorf("second request from the same new source alerted again")
	}
	// A forged X-Forwarded-For naming a learned address does not hide a new
	// peer: every entry of sourceIPs counts.
	n++
	forged := auditRecord(fmt.Sprintf("sa-%d", n), "get", "configmaps", "", "ci", "cfg", sa, "10.0.0.7", "")
	forged = strings.Replace(forged, `"sourceIPs":["10.0.0.7"]`, `"sourceIPs":["10.0.0.7","198.51.100.23"]`, 1)
	forged = forged[:len(forged)-1] + `,"stageTimestamp":"` + now.Add(4*time.Hour).Format(time.RFC3339Nano) + `"}`
	if err := proc.Process(context.Background(), "prod", []string{forged}); err != nil {
		t.Fatal(err)
	}
	if count() != 2 {
		t.Errorf("new peer behind a forged X-Forwarded-For not detected (%v)", sink.rules())
	}
	// Other users are not tracked; another cluster learns separately.
	rec := auditRecord("u1", "get", "configmaps", "", "ci", "cfg", "alice", "198.51.100.1", "")
	proc.Process(context.Background(), "prod", []string{rec})
	if count() != 2 {
		t.Errorf("a user (not a service account) alerted")
	}
	a := func() alerts.Alert {
		for _, a := range sink.all() {
			if a.Rule == AccountRuleName {
				return a
			}
		}
		return alerts.Alert{}
	}()
	if a.MitreTactic != "TA0001" || a.MitreTechnique != "T1078" || a.Severity != alerts.SeverityMedium {
		t.Errorf("detector alert %+v", a)
	}
}

// A sink failure after the detector saw a new source must not silence the
// alert on the retry.
func TestServiceAccountDetectorRetry(t *testing.T) {
	sink := newMemSink()
	proc, _ := NewProcessor(Config{Accounts: AccountConfig{Learn: time.Minute}}, sink)
	sa := "system:serviceaccount:ci:deployer"
	first := auditRecord("s1", "get", "pods", "", "ci", "p", sa, "10.0.0.1", "")
	proc.Process(context.Background(), "c", []string{first})
	later := auditRecord("s2", "get", "pods", "", "ci", "p", sa, "203.0.113.9", "")
	later = later[:len(later)-1] + `,"stageTimestamp":"2026-11-27T11:00:00Z"}`
	sink.mu.Lock()
	sink.fail = 1
	sink.mu.Unlock()
	if err := proc.Process(context.Background(), "c", []string{later}); err == nil {
		t.Fatal("sink failure not reported")
	}
	if err := proc.Process(context.Background(), "c", []string{later}); err != nil {
		t.Fatal(err)
	}
	if sink.rules()[AccountRuleName] != 1 {
		t.Errorf("retry lost the alert: %v", sink.rules())
	}
}

func TestDedupBounded(t *testing.T) {
	d := newDedup(time.Minute, 3)
	now := time.Now()
	k := func(s string) uint64 { return d.key("cluster", s, "ResponseComplete") }
	for i := range 10 {
		d.add(k(fmt.Sprint(i)), now)
	}
	if len(d.cur)+len(d.prev) > 6 {
		t.Errorf("dedup holds %d keys, bound 6", len(d.cur)+len(d.prev))
	}
	if !d.seen(k("9"), now) || d.seen(k("0"), now) {
		t.Errorf("recent key forgotten or old key kept")
	}
	if d.key("a", "bc") == d.key("ab", "c") {
		t.Errorf("key parts are not separated")
	}
	d.add(k("x"), now)
	if d.seen(k("x"), now.Add(3*time.Minute)) {
		t.Errorf("key outlived two windows")
	}
}

func BenchmarkProcess(b *testing.B) {
	proc, _ := NewProcessor(Config{DedupWindow: time.Hour, DedupMax: 1 << 16}, newMemSink())
	recs := make([]string, 1000)
	for i := range recs {
		switch i % 4 {
		case 0:
			recs[i] = auditRecord(fmt.Sprint(i), "get", "configmaps", "", "kube-system", "cm", "system:kube-controller-manager", "10.0.0.1", "")
		case 1:
			recs[i] = auditRecord(fmt.Sprint(i), "update", "leases", "", "kube-system", "sched", "system:kube-scheduler", "10.0.0.1", "")
		case 2:
			recs[i] = auditRecord(fmt.Sprint(i), "list", "pods", "", "default", "", "system:serviceaccount:default:app", "10.0.0.9", "")
		default:
			recs[i] = auditRecord(fmt.Sprint(i), "watch", "endpoints", "", "default", "", "system:kube-proxy", "10.0.0.2", "")
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		// Unique cluster per round so dedup does not skip the records.
		if err := proc.Process(context.Background(), fmt.Sprint(i), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/event")
}
