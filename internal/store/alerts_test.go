package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// ruleDef is what alert fixtures take from Bulwark's real default rule
// files (internal/rules/defaults): name, priority, tags, source.
type ruleDef struct {
	Rule     string   `yaml:"rule"`
	Priority string   `yaml:"priority"`
	Source   string   `yaml:"source"`
	Tags     []string `yaml:"tags"`
	Output   string   `yaml:"output"`
}

var loadRuleDefs = sync.OnceValues(func() ([]ruleDef, error) {
	var out []ruleDef
	for _, f := range []string{"runtime.yaml", "audit.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "rules", "defaults", f))
		if err != nil {
			return nil, err
		}
		var items []ruleDef
		if err := yaml.Unmarshal(b, &items); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, it := range items {
			if it.Rule != "" && it.Priority != "" {
				out = append(out, it)
			}
		}
	}
	if len(out) < 10 {
		return nil, fmt.Errorf("only %d rules in the default rule files", len(out))
	}
	return out, nil
})

func ruleDefs(t testing.TB) []ruleDef {
	t.Helper()
	r, err := loadRuleDefs()
	if err != nil {
		t.Fatalf("load default rules: %v", err)
	}
	return r
}

// genAlert builds alert i of a realistic stream: a real rule (severity and
// MITRE ids from its priority and tags), spread over 2 clusters, 7
// namespaces and `workloads` workloads; evidence shaped like the sensor's
// and audit receiver's events. Alerts with the same i modulo
// len(rules)*workloads share a fingerprint.
func genAlert(t testing.TB, rules []ruleDef, i, workloads int, at time.Time) AlertIn {
	r := rules[i%len(rules)]
	sev, err := alerts.SeverityFromPriority(r.Priority)
	if err != nil {
		t.Fatalf("rule %s: %v", r.Rule, err)
	}
	tac, tech := alerts.MITREFromTags(r.Tags)
	w := (i / len(rules)) % workloads
	ns := []string{"shop", "payments", "search", "ci-runner", "monitoring", "kube-system", "default"}[w%7]
	src, ev := alerts.SourceSensor, fmt.Sprintf(`{"evt.type":"execve","proc.name":"sh","proc.cmdline":"sh -c id #%d","proc.pid":%d,"container.id":"c%011d"}`, i, 1000+i, w)
	if r.Source == "k8s_audit" {
		src, ev = alerts.SourceAudit, fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a-%d","verb":"create","user":{"username":"system:serviceaccount:%s:deployer"},"objectRef":{"resource":"pods","namespace":"%s"}}`, i, ns, ns)
	}
	return AlertIn{
		ID: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, at.UnixNano()&0xffffffffffff), Time: at, Source: src,
		Rule: r.Rule, RuleVersion: "defaults-1", Severity: sev, Title: r.Rule + fmt.Sprintf(" (pod=svc-%d-abc ns=%s)", w, ns),
		MitreTactic: tac, MitreTechnique: tech, Cluster: []string{"prod", "staging"}[w%2], Namespace: ns,
		Pod: fmt.Sprintf("svc-%d-7d9c-%d", w, i%3), Container: "app", ContainerID: fmt.Sprintf("c%011d", w),
		Image: fmt.Sprintf("registry.example.com/team/svc-%d:1.%d", w, w%4), ImageDigest: digestOf(fmt.Sprint("img", w)),
		Node: fmt.Sprintf("node-%d", w%5), Workload: fmt.Sprintf("Deployment/svc-%d", w), Evidence: json.RawMessage(ev),
	}
}

func TestIngestAlerts(t *testing.T) {
	ctx := context.Background()
	rules := ruleDefs(t)
	forEach(t, func(t *testing.T, s *Store) {
		t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		// 3 occurrences of each of len(rules)*4 groups, one minute apart.
		nGroups := len(rules) * 4
		var batch []AlertIn
		for i := range 3 * nGroups {
			batch = append(batch, genAlert(t, rules, i, 4, t0.Add(time.Duration(i/nGroups)*time.Minute)))
		}
		rep, err := s.IngestAlertBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Accepted != len(batch) || rep.Duplicates != 0 || rep.Suppressed != 0 {
			t.Fatalf("report = %+v", rep)
		}
		if c := rep.BySource[alerts.SourceAudit]; c.Accepted == 0 || c.Accepted+rep.BySource[alerts.SourceSensor].Accepted != len(batch) {
			t.Errorf("by source = %+v", rep.BySource)
		}
		list, total, err := s.ListAlerts(ctx, AlertFilter{}, Page{Limit: 1000})
		if err != nil || total != nGroups {
			t.Fatalf("stored %d alert rows, want %d (%v)", total, nGroups, err)
		}
		for _, a := range list {
			if a.Count != 3 || !a.FirstSeen.Equal(t0) || !a.LastSeen.Equal(t0.Add(2*time.Minute)) {
				t.Fatalf("group %s: count %d first %s last %s", a.Rule, a.Count, a.FirstSeen, a.LastSeen)
			}
		}
		// The row carries every contract field of its newest occurrence.
		newest := batch[len(batch)-1]
		got, _, err := s.ListAlerts(ctx, AlertFilter{Rule: newest.Rule, Cluster: newest.Cluster, Workload: newest.Workload}, Page{})
		if err != nil || len(got) != 1 {
			t.Fatalf("find newest: %v %v", got, err)
		}
		want := Alert{ID: got[0].ID, Fingerprint: alerts.Fingerprint(&newest), Source: newest.Source, Rule: newest.Rule,
			RuleVersion: "defaults-1", Severity: newest.Severity, Title: newest.Title, MitreTactic: newest.MitreTactic,
			MitreTechnique: newest.MitreTechnique, Cluster: newest.Cluster, Namespace: newest.Namespace, Pod: newest.Pod,
			Container: "app", ContainerID: newest.ContainerID, Image: newest.Image, ImageDigest: newest.ImageDigest,
			Node: newest.Node, Workload: newest.Workload, Evidence: newest.Evidence, SourceEventID: newest.ID, Count: 3,
			FirstSeen: t0, LastSeen: newest.Time, Status: AlertNew}
		jsonEq := cmp.Comparer(func(a, b json.RawMessage) bool {
			var x, y any
			return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && cmp.Equal(x, y)
		})
		if diff := cmp.Diff(want, got[0], jsonEq); diff != "" {
			t.Errorf("stored alert (-want +got):\n%s", diff)
		}
		if want.MitreTactic == "" || want.MitreTechnique == "" {
			t.Errorf("rule %s tags %v gave no MITRE ids", newest.Rule, rules[(len(batch)-1)%len(rules)].Tags)
		}

		// A replayed batch stores nothing; a half-replayed one only its new half.
		rep, err = s.IngestAlertBatch(ctx, batch)
		if err != nil || rep.Accepted != 0 || rep.Duplicates != len(batch) {
			t.Fatalf("replay = %+v, %v", rep, err)
		}
		more := append([]AlertIn{}, batch[:10]...)
		for i := range 10 {
			more = append(more, genAlert(t, rules, i, 4, t0.Add(time.Hour)))
			more[len(more)-1].ID = fmt.Sprintf("later-%d", i)
		}
		more = append(more, more[len(more)-1]) // twice in one batch: the copy is a duplicate
		if acc, dups, err := s.IngestAlerts(ctx, more); err != nil || acc != 10 || dups != 11 {
			t.Fatalf("half replay: accepted %d dups %d, %v", acc, dups, err)
		}
		var sum int64
		list, total, _ = s.ListAlerts(ctx, AlertFilter{}, Page{Limit: 1000})
		for _, a := range list {
			sum += a.Count
		}
		if total != nGroups || sum != int64(len(batch)+10) {
			t.Errorf("after replays: %d rows, %d occurrences; want %d, %d", total, sum, nGroups, len(batch)+10)
		}

		// The timeline counts occurrences per minute and severity.
		tl, err := s.AlertTimeline(ctx, t0, t0.Add(2*time.Hour), 30*time.Minute, "")
		if err != nil || len(tl) != 4 {
			t.Fatalf("timeline = %+v, %v", tl, err)
		}
		if tl[0].Total() != int64(len(batch)) || tl[2].Total() != 10 || tl[1].Total() != 0 || tl[3].Total() != 0 {
			t.Errorf("timeline totals = %d %d %d %d", tl[0].Total(), tl[1].Total(), tl[2].Total(), tl[3].Total())
		}
		var wantSev [5]int64
		for _, a := range batch {
			wantSev[a.Severity]++
		}
		if tl[0].BySeverity != wantSev {
			t.Errorf("timeline by severity = %v, want %v", tl[0].BySeverity, wantSev)
		}
		if tl, _ := s.AlertTimeline(ctx, t0, t0.Add(time.Hour), time.Hour, alerts.SourceAudit); tl[0].Total() != int64(rep.BySource[alerts.SourceAudit].Duplicates) {
			t.Errorf("audit timeline = %d, want %d", tl[0].Total(), rep.BySource[alerts.SourceAudit].Duplicates)
		}
		// A sender whose clock runs a day ahead is counted when received;
		// one a minute ahead (within the tolerance) at its own time.
		recv := time.Now().UTC().Truncate(time.Minute)
		ahead := []AlertIn{genAlert(t, rules, 0, 4, recv.Add(24*time.Hour)), genAlert(t, rules, 1, 4, recv.Add(time.Minute))}
		ahead[0].ID, ahead[1].ID = "clock-ahead-day", "clock-ahead-minute"
		if rep, err := s.IngestAlertBatch(ctx, ahead); err != nil || rep.Accepted != 2 {
			t.Fatalf("ingest clock-ahead alerts: %+v %v", rep, err)
		}
		if tl, err := s.AlertTimeline(ctx, recv.Add(-10*time.Minute), recv.Add(20*time.Minute), 10*time.Minute, ""); err != nil ||
			tl[1].Total()+tl[2].Total() != 2 {
			t.Errorf("timeline around reception: %+v %v (want both clock-ahead alerts)", tl, err)
		}
		if tl, _ := s.AlertTimeline(ctx, recv.Add(23*time.Hour), recv.Add(25*time.Hour), time.Hour, ""); tl[0].Total()+tl[1].Total() != 0 {
			t.Errorf("the day-ahead alert is counted in the future: %+v", tl)
		}
		for _, bad := range []struct {
			bucket time.Duration
			until  time.Time
		}{{30 * time.Second, t0.Add(time.Hour)}, {time.Minute, t0}, {time.Minute, t0.Add(48 * time.Hour)}} {
			if _, err := s.AlertTimeline(ctx, t0, bad.until, bad.bucket, ""); !errors.Is(err, ErrInvalid) {
				t.Errorf("timeline bucket %s until %s: %v", bad.bucket, bad.until, err)
			}
		}

		// Filters.
		for name, tc := range map[string]struct {
			f    AlertFilter
			want func(a *Alert) bool
		}{
			"severity>=high": {AlertFilter{MinSeverity: alerts.SeverityHigh}, func(a *Alert) bool { return a.Severity >= alerts.SeverityHigh }},
			"audit":          {AlertFilter{Source: alerts.SourceAudit}, func(a *Alert) bool { return a.Source == alerts.SourceAudit }},
			"ns":             {AlertFilter{Cluster: "prod", Namespace: "shop"}, func(a *Alert) bool { return a.Cluster == "prod" && a.Namespace == "shop" }},
			"q":              {AlertFilter{Q: "REVERSE"}, func(a *Alert) bool { return strings.Contains(strings.ToLower(a.Title+a.Rule), "reverse") }},
			"q literal %":    {AlertFilter{Q: "%"}, func(a *Alert) bool { return false }},
			"until":          {AlertFilter{Until: t0.Add(time.Minute)}, func(a *Alert) bool { return false }},
			"since":          {AlertFilter{Since: t0.Add(30 * time.Minute)}, func(a *Alert) bool { return !a.LastSeen.Before(t0.Add(30 * time.Minute)) }},
		} {
			got, n, err := s.ListAlerts(ctx, tc.f, Page{Limit: 1000})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			wantN := 0
			for i := range list {
				if tc.want(&list[i]) {
					wantN++
				}
			}
			if n != wantN || len(got) != n {
				t.Errorf("filter %s: %d alerts (%d rows), want %d", name, n, len(got), wantN)
			}
		}

		// An invalid alert refuses the whole batch and stores nothing.
		bad := []AlertIn{genAlert(t, rules, 1, 4, t0.Add(3*time.Hour)), genAlert(t, rules, 2, 4, t0.Add(3*time.Hour))}
		bad[0].ID, bad[1].ID, bad[1].Severity = "ok-1", "bad-1", 9
		if _, err := s.IngestAlertBatch(ctx, bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "alert 1") {
			t.Fatalf("bad batch: %v", err)
		}
		bad[1].Severity = alerts.SeverityLow
		if acc, _, err := s.IngestAlerts(ctx, bad); err != nil || acc != 2 {
			t.Errorf("after fixing the batch: accepted %d, %v (the refused batch must not have recorded ids)", acc, err)
		}
	})
}

func TestIngestAlertsConcurrentReplay(t *testing.T) {
	ctx := context.Background()
	rules := ruleDefs(t)
	forEach(t, func(t *testing.T, s *Store) {
		t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		var batch []AlertIn
		for i := range 500 {
			batch = append(batch, genAlert(t, rules, i, 20, t0.Add(time.Duration(i)*time.Millisecond)))
		}
		// Four senders (or one sender retrying through four replicas)
		// deliver the same batch at once: it is stored exactly once, and
		// no transaction deadlocks.
		var wg sync.WaitGroup
		var mu sync.Mutex
		acc, dups := 0, 0
		for range 4 {
			wg.Go(func() {
				a, d, err := s.IngestAlerts(ctx, batch)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				acc, dups = acc+a, dups+d
				mu.Unlock()
			})
		}
		wg.Wait()
		if acc != len(batch) || dups != 3*len(batch) {
			t.Errorf("accepted %d duplicates %d; want %d and %d", acc, dups, len(batch), 3*len(batch))
		}
		list, _, err := s.ListAlerts(ctx, AlertFilter{}, Page{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, a := range list {
			sum += a.Count
		}
		if sum != int64(len(batch)) {
			t.Errorf("%d occurrences stored, want %d", sum, len(batch))
		}
	})
}

func TestAlertWorkflowThroughIngest(t *testing.T) {
	ctx := context.Background()
	rules := ruleDefs(t)
	forEach(t, func(t *testing.T, s *Store) {
		t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		a := genAlert(t, rules, 0, 1, t0)
		if _, _, err := s.IngestAlerts(ctx, []AlertIn{a}); err != nil {
			t.Fatal(err)
		}
		list, _, _ := s.ListAlerts(ctx, AlertFilter{}, Page{})
		id := list[0].ID
		if err := s.SetAlertStatus(ctx, id, AlertAcknowledged, "user:alice", "on it"); err != nil {
			t.Fatal(err)
		}
		// Acknowledged is open: a repeat is counted into it.
		a.ID, a.Time = "second", t0.Add(time.Minute)
		s.IngestAlerts(ctx, []AlertIn{a})
		got, _ := s.GetAlert(ctx, id)
		if got.Count != 2 || got.Status != AlertAcknowledged || got.StatusBy != "user:alice" || got.StatusNote != "on it" || got.StatusAt.IsZero() {
			t.Fatalf("after repeat while acknowledged: %+v", got)
		}
		// An older occurrence arriving late counts but keeps the newest fields.
		late := a
		late.ID, late.Time, late.Title = "late", t0.Add(-time.Hour), "late title"
		s.IngestAlerts(ctx, []AlertIn{late})
		got, _ = s.GetAlert(ctx, id)
		if got.Count != 3 || got.Title == "late title" || !got.FirstSeen.Equal(t0.Add(-time.Hour)) || got.SourceEventID != "second" {
			t.Fatalf("after a late occurrence: %+v", got)
		}
		if err := s.SetAlertStatus(ctx, id, AlertFalsePositive, "user:bob", "test pod"); err != nil {
			t.Fatal(err)
		}
		// Closed: the next occurrence opens a new alert.
		a.ID, a.Time = "third", t0.Add(2*time.Minute)
		s.IngestAlerts(ctx, []AlertIn{a})
		_, n, _ := s.ListAlerts(ctx, AlertFilter{Status: AlertNew}, Page{})
		if n != 1 {
			t.Fatalf("%d new alerts after a false positive and a repeat, want 1", n)
		}
		if err := s.SetAlertStatus(ctx, id, AlertNew, "user:bob", ""); !errors.Is(err, ErrConflict) {
			t.Errorf("reopen while another is open: %v, want ErrConflict", err)
		}
		if err := s.SetAlertStatus(ctx, 9999, AlertResolved, "user:bob", ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown alert: %v", err)
		}
		if err := s.SetAlertStatus(ctx, id, AlertResolved, "", ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("no actor: %v", err)
		}
	})
}

func TestSuppressions(t *testing.T) {
	ctx := context.Background()
	rules := ruleDefs(t)
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			c := newClock()
			s := openStore(t, b.DSN(t), Options{Now: c.Now})
			t0 := c.Now()
			// Stored before the suppression: left alone, but listed by MatchingAlerts.
			before := genAlert(t, rules, 0, 4, t0)
			other := genAlert(t, rules, 1, 4, t0)
			if _, _, err := s.IngestAlerts(ctx, []AlertIn{before, other}); err != nil {
				t.Fatal(err)
			}
			sp, err := s.CreateSuppression(ctx, Suppression{Rule: strings.ToUpper(before.Rule[:4]) + "*", Cluster: before.Cluster,
				Namespace: "sh?p", Workload: "Deployment/*", Reason: "known noisy CI job", CreatedBy: "user:alice",
				ExpiresAt: t0.Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			m, n, err := s.MatchingAlerts(ctx, *sp, "", Page{})
			if err != nil || n != 1 || m[0].Rule != before.Rule {
				t.Fatalf("matching alerts = %+v (%d), %v", m, n, err)
			}
			if _, n, _ := s.ListAlerts(ctx, AlertFilter{}, Page{}); n != 2 {
				t.Errorf("creating a suppression changed stored alerts: %d visible", n)
			}
			// Applied at ingest: counted, hidden, listable.
			c.Advance(time.Minute)
			in := []AlertIn{genAlert(t, rules, 0, 4, c.Now()), genAlert(t, rules, 1, 4, c.Now())}
			rep, err := s.IngestAlertBatch(ctx, in)
			if err != nil || rep.Accepted != 2 || rep.Suppressed != 1 || rep.BySource[in[0].Source].Suppressed != 1 {
				t.Fatalf("ingest with suppression = %+v, %v", rep, err)
			}
			visible, n, _ := s.ListAlerts(ctx, AlertFilter{}, Page{})
			if n != 2 {
				t.Fatalf("visible alerts = %d, want 2", n)
			}
			for _, a := range visible {
				if a.Rule == before.Rule && a.Count != 1 {
					t.Errorf("suppressed occurrence counted into the visible alert: %+v", a)
				}
			}
			hidden, n, _ := s.ListAlerts(ctx, AlertFilter{SuppressionID: sp.ID}, Page{})
			if n != 1 || hidden[0].SuppressionID != sp.ID || hidden[0].Rule != before.Rule {
				t.Fatalf("suppressed alerts = %+v", hidden)
			}
			if _, n, _ := s.ListAlerts(ctx, AlertFilter{Suppressed: WithSuppressed}, Page{}); n != 3 {
				t.Errorf("with suppressed = %d, want 3", n)
			}
			got, _ := s.GetSuppression(ctx, sp.ID)
			if got.Hits != 1 || !got.LastHit.Equal(c.Now()) {
				t.Errorf("suppression after a hit = %+v", got)
			}
			tl, _ := s.AlertTimeline(ctx, t0, t0.Add(time.Hour), time.Hour, "")
			if tl[0].Suppressed != 1 || tl[0].Total() != 3 {
				t.Errorf("timeline = %+v", tl[0])
			}
			// Expired: stops matching, stays listed with its hits.
			c.Advance(time.Hour)
			if _, n, _ := s.IngestAlerts(ctx, []AlertIn{genAlert(t, rules, 0, 4, c.Now())}); n != 0 {
				t.Fatal("dup")
			}
			if _, n, _ := s.ListAlerts(ctx, AlertFilter{SuppressionID: sp.ID}, Page{}); n != 1 {
				t.Error("suppressed row changed after expiry")
			}
			if a, _, _ := s.ListAlerts(ctx, AlertFilter{Rule: before.Rule}, Page{}); len(a) != 1 || a[0].Count != 2 {
				t.Errorf("after expiry the occurrence should count into the visible alert: %+v", a)
			}
			if act, _ := s.ListSuppressions(ctx, false); len(act) != 0 {
				t.Errorf("active suppressions after expiry: %+v", act)
			}
			if all, _ := s.ListSuppressions(ctx, true); len(all) != 1 || all[0].Hits != 1 {
				t.Errorf("all suppressions: %+v", all)
			}
			// Validation.
			for name, bad := range map[string]Suppression{
				"no rule":       {Reason: "r", CreatedBy: "u"},
				"no reason":     {Rule: "x", CreatedBy: "u"},
				"no actor":      {Rule: "x", Reason: "r"},
				"everything":    {Rule: "*", Reason: "r", CreatedBy: "u"},
				"expired":       {Rule: "x", Reason: "r", CreatedBy: "u", ExpiresAt: c.Now().Add(-time.Second)},
				"huge workload": {Rule: "x", Reason: "r", CreatedBy: "u", Workload: strings.Repeat("a", 600)},
			} {
				if _, err := s.CreateSuppression(ctx, bad); !errors.Is(err, ErrInvalid) {
					t.Errorf("%s: %v, want ErrInvalid", name, err)
				}
			}
			sp2, err := s.CreateSuppression(ctx, Suppression{Rule: "*", Image: "registry.example.com/team/*", Reason: "r", CreatedBy: "u"})
			if err != nil || !sp2.ExpiresAt.IsZero() {
				t.Fatalf("no-expiry suppression: %+v %v", sp2, err)
			}
			if err := s.ExpireSuppression(ctx, sp2.ID); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteSuppression(ctx, sp2.ID); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteSuppression(ctx, sp2.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("delete twice: %v", err)
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pat, s string
		want   bool
	}{
		{"", "anything", true},
		{"*", "", true},
		{"Deployment/*", "deployment/web", true},
		{"registry.example.com/*/svc-?:*", "registry.example.com/team/svc-1:1.2", true},
		{"registry.example.com/*/svc-?:*", "registry.example.com/team/svc-10:1.2", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"%", "%", true},
		{"a_b", "axb", false},
		{strings.Repeat("*a", 50) + "b", strings.Repeat("a", 200), false},
	} {
		if got := globMatch(tc.pat, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.pat, tc.s, got)
		}
	}
}

func TestResponseActions(t *testing.T) {
	ctx := context.Background()
	rules := ruleDefs(t)
	forEach(t, func(t *testing.T, s *Store) {
		t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		a := genAlert(t, rules, 0, 1, t0)
		noPod := genAlert(t, rules, 1, 1, t0)
		noPod.Pod, noPod.Node = "", ""
		if _, _, err := s.IngestAlerts(ctx, []AlertIn{a, noPod}); err != nil {
			t.Fatal(err)
		}
		al, _, _ := s.ListAlerts(ctx, AlertFilter{Rule: a.Rule}, Page{})
		np, _, _ := s.ListAlerts(ctx, AlertFilter{Rule: noPod.Rule}, Page{})
		act, err := s.CreateAction(ctx, al[0].ID, alerts.ActionDeletePod, "reverse shell", "user:alice")
		if err != nil {
			t.Fatal(err)
		}
		want := alerts.Action{ID: act.ID, AlertID: al[0].ID, Action: alerts.ActionDeletePod, Cluster: a.Cluster, Namespace: a.Namespace,
			Pod: a.Pod, Workload: a.Workload, Node: a.Node, Reason: "reverse shell", State: alerts.ActionPending,
			RequestedBy: "user:alice", RequestedAt: act.RequestedAt}
		if diff := cmp.Diff(&want, act); diff != "" || act.RequestedAt.IsZero() {
			t.Errorf("action (-want +got):\n%s", diff)
		}
		if _, err := s.CreateAction(ctx, al[0].ID, alerts.ActionDeletePod, "again", "user:bob"); !errors.Is(err, ErrConflict) {
			t.Errorf("second pending delete: %v, want ErrConflict", err)
		}
		cordon, err := s.CreateAction(ctx, al[0].ID, alerts.ActionCordonNode, "", "user:alice")
		if err != nil {
			t.Fatal(err)
		}
		for name, tc := range map[string]struct {
			id   int64
			kind alerts.ActionKind
			want error
		}{
			"no pod":     {np[0].ID, alerts.ActionIsolatePod, ErrInvalid},
			"no node":    {np[0].ID, alerts.ActionCordonNode, ErrInvalid},
			"bad kind":   {al[0].ID, "reboot", ErrInvalid},
			"no alert":   {9999, alerts.ActionDeletePod, ErrNotFound},
			"scale ok":   {al[0].ID, alerts.ActionScaleToZero, nil},
			"scale nopd": {np[0].ID, alerts.ActionScaleToZero, ErrInvalid},
		} {
			if _, err := s.CreateAction(ctx, tc.id, tc.kind, "", "user:alice"); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Errorf("%s: %v, want %v", name, err, tc.want)
			}
		}
		pending, n, err := s.ListActions(ctx, ActionFilter{Cluster: a.Cluster, State: alerts.ActionPending}, Page{Sort: "id"})
		if err != nil || n != 3 || pending[0].ID != act.ID || pending[1].ID != cordon.ID {
			t.Fatalf("pending = %+v (%d), %v", pending, n, err)
		}
		if _, n, _ := s.ListActions(ctx, ActionFilter{Cluster: "elsewhere"}, Page{}); n != 0 {
			t.Errorf("another cluster sees %d actions", n)
		}
		done, err := s.CompleteAction(ctx, act.ID, alerts.ActionResult{State: alerts.ActionDone, Message: "pod deleted"}, "token:responder")
		if err != nil || done.State != alerts.ActionDone || done.CompletedBy != "token:responder" || done.CompletedAt == nil || done.Message != "pod deleted" {
			t.Fatalf("complete = %+v, %v", done, err)
		}
		if _, err := s.CompleteAction(ctx, act.ID, alerts.ActionResult{State: alerts.ActionDone}, "token:responder"); err != nil {
			t.Errorf("repeated done report: %v", err)
		}
		if _, err := s.CompleteAction(ctx, act.ID, alerts.ActionResult{State: alerts.ActionFailed}, "token:responder"); !errors.Is(err, ErrConflict) {
			t.Errorf("done then failed: %v, want ErrConflict", err)
		}
		if _, err := s.CompleteAction(ctx, cordon.ID, alerts.ActionResult{State: alerts.ActionPending}, "token:responder"); !errors.Is(err, ErrInvalid) {
			t.Errorf("pending as a result: %v", err)
		}
		if _, err := s.CompleteAction(ctx, 9999, alerts.ActionResult{State: alerts.ActionDone}, "token:responder"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown action: %v", err)
		}
		// The delete is no longer pending, so it can be requested again.
		if _, err := s.CreateAction(ctx, al[0].ID, alerts.ActionDeletePod, "", "user:alice"); err != nil {
			t.Errorf("new delete after the first completed: %v", err)
		}
		if _, n, _ := s.ListActions(ctx, ActionFilter{AlertID: al[0].ID}, Page{}); n != 4 {
			t.Errorf("actions of the alert = %d, want 4", n)
		}
		if _, _, err := s.ListActions(ctx, ActionFilter{State: "running"}, Page{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad state filter: %v", err)
		}
	})
}

func TestPurgeAlertIngests(t *testing.T) {
	ctx := context.Background()
	rules := ruleDefs(t)
	forEach(t, func(t *testing.T, s *Store) {
		a := genAlert(t, rules, 0, 1, time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
		s.IngestAlerts(ctx, []AlertIn{a})
		if n, err := s.PurgeAlertIngests(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
			t.Fatalf("purge of nothing old: %d, %v", n, err)
		}
		if _, dups, _ := s.IngestAlerts(ctx, []AlertIn{a}); dups != 1 {
			t.Fatal("not a duplicate before the purge")
		}
		if n, err := s.PurgeAlertIngests(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
			t.Fatalf("purge = %d, %v", n, err)
		}
		if acc, _, _ := s.IngestAlerts(ctx, []AlertIn{a}); acc != 1 {
			t.Error("purged id still a duplicate")
		}
	})
}
