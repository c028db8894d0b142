package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// TestCopyAlertGroupsRoundTrip: new alert groups (on PostgreSQL written
// by the hand-built binary COPY stream) read back with every column as
// sent: text with multi-byte characters and quotes, empty optional
// fields, severity, count, times cut to the microsecond in any zone,
// evidence JSON (or {} without it).
func TestCopyAlertGroupsRoundTrip(t *testing.T) {
	forEach(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		full := payloadAlert()
		full.ID, full.Fingerprint = "copy-1", "fp-copy-1"
		full.Title = `größe "quoted" \ back` + "\u2028 日本"
		full.Time = time.Date(2026, 11, 27, 16, 30, 0, 123456789, time.UTC)
		bare := alerts.Alert{ID: "copy-2", Time: time.Date(2026, 11, 27, 16, 31, 0, 999, time.FixedZone("", -5*3600)),
			Source: alerts.SourceAudit, Rule: "r", Severity: alerts.SeverityCritical, Title: "t"}
		twice := bare
		twice.ID, twice.Time = "copy-3", bare.Time.Add(time.Minute) // same group as bare: count 2
		rep, err := s.IngestAlertBatch(ctx, []AlertIn{full, bare, twice})
		if err != nil || rep.Accepted != 3 {
			t.Fatalf("ingest: %+v %v", rep, err)
		}
		got, _, err := s.ListAlerts(ctx, AlertFilter{Suppressed: WithSuppressed}, Page{Sort: "id"})
		if err != nil || len(got) != 2 {
			t.Fatalf("list: %d %v", len(got), err)
		}
		want := []Alert{{
			Fingerprint: "fp-copy-1", Source: full.Source, Rule: full.Rule, RuleVersion: full.RuleVersion, Severity: full.Severity,
			Title: full.Title, MitreTactic: full.MitreTactic, MitreTechnique: full.MitreTechnique, Cluster: full.Cluster,
			Namespace: full.Namespace, Pod: full.Pod, Container: full.Container, ContainerID: full.ContainerID, Image: full.Image,
			ImageDigest: full.ImageDigest, Node: full.Node, Workload: full.Workload, Evidence: full.Evidence, SourceEventID: "copy-1",
			Count: 1, FirstSeen: full.Time.Truncate(time.Microsecond), LastSeen: full.Time.Truncate(time.Microsecond), Status: AlertNew,
		}, {
			Fingerprint: bare.EffectiveFingerprint(), Source: alerts.SourceAudit, Rule: "r", Severity: alerts.SeverityCritical,
			Title: "t", Evidence: json.RawMessage(`{}`), SourceEventID: "copy-3", Count: 2,
			FirstSeen: bare.Time.Truncate(time.Microsecond), LastSeen: twice.Time.Truncate(time.Microsecond), Status: AlertNew,
		}}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Alert{}, "ID"), cmpopts.EquateEmpty(),
			cmpopts.SortSlices(func(a, b Alert) bool { return a.Fingerprint < b.Fingerprint }),
			cmp.Comparer(func(a, b json.RawMessage) bool {
				var x, y any
				return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && cmp.Equal(x, y)
			})); diff != "" {
			t.Errorf("stored alerts (-want +got):\n%s", diff)
		}
	})
}

// TestIngestExportLogPayloads: the ingest's export log rows (on
// PostgreSQL written by the hand-built COPY stream) carry each accepted
// alert's payload byte for byte, with its key, kind and time, in the
// batch's order.
func TestIngestExportLogPayloads(t *testing.T) {
	forEach(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e, err := s.CreateExport(ctx, Export{Name: "all", Type: "webhook", Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		var batch []AlertIn
		for i := range 300 {
			a := payloadAlert()
			a.ID, a.Title = fmt.Sprintf("p-%03d", 299-i), fmt.Sprintf("größe <%d> \"x\"", i) // ids against the order
			a.Severity = alerts.Severity(i % 5)
			batch = append(batch, a)
		}
		if rep, err := s.IngestAlertBatch(ctx, batch); err != nil || rep.Accepted != len(batch) {
			t.Fatalf("ingest: %+v %v", rep, err)
		}
		recs, _, err := s.LeaseExportBatch(ctx, e.ID, "t", 1000, time.Minute)
		if err != nil || len(recs) != len(batch) {
			t.Fatalf("lease: %d records, %v", len(recs), err)
		}
		for i, r := range recs {
			want, err := AlertExportItem(&batch[i])
			if err != nil {
				t.Fatal(err)
			}
			if r.Key != want.Key || r.Kind != ExportKindAlert || !bytes.Equal(r.Payload, want.Payload) ||
				r.CreatedAt.IsZero() || time.Since(r.CreatedAt) > time.Hour {
				t.Fatalf("record %d: key %s kind %s created %v payload\n%s\nwant key %s payload\n%s", i, r.Key, r.Kind,
					r.CreatedAt, r.Payload, want.Key, want.Payload)
			}
		}
	})
}
