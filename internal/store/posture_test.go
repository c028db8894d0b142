package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

func TestPostureReports(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		// A real-sized report body: repetitive JSON, stored compressed.
		report := json.RawMessage(`{"catalogueVersion":"2026.1","results":[` + strings.Repeat(`{"control":"BW-K8S-0001","status":"pass"},`, 2000) + `{}]}`)
		saved := map[string]int64{}
		for i, r := range []PostureReport{
			{Target: "cluster", Name: "prod", Score: 71.5, Objects: 120, Passed: 900, Failed: 40, UploadedBy: "token:agent"},
			{Target: "cluster", Name: "prod", Score: 80, Objects: 121, Passed: 920, Failed: 20},
			{Target: "node", Name: "cp-1", Score: 55, Objects: 19, Passed: 30, Failed: 25},
		} {
			r.Catalogue, r.Report, r.Summary = "2026.1", report, json.RawMessage(`{"frameworks":[]}`)
			out, err := s.SavePostureReport(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if out.ID == 0 || out.CreatedAt.IsZero() {
				t.Fatalf("saved %+v", out)
			}
			saved[r.Name+string(rune('0'+i))] = out.ID
		}
		got, err := s.GetPostureReport(ctx, saved["prod0"])
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Report) != string(report) || got.Score != 71.5 || got.UploadedBy != "token:agent" || got.Target != "cluster" {
			t.Errorf("get: score %v by %q, report %d bytes", got.Score, got.UploadedBy, len(got.Report))
		}
		list, total, err := s.ListPostureReports(ctx, PostureFilter{Target: "cluster", Name: "prod"}, Page{})
		if err != nil || total != 2 || len(list) != 2 {
			t.Fatalf("list: %d %v", total, err)
		}
		if list[0].ID != saved["prod1"] || list[0].Report != nil {
			t.Errorf("newest first, no body: %+v", list[0])
		}
		list, _, err = s.ListPostureReports(ctx, PostureFilter{}, Page{Sort: "score"})
		if err != nil || len(list) != 3 || list[0].Name != "cp-1" {
			t.Fatalf("sort by score: %+v %v", list, err)
		}
		if _, total, _ := s.ListPostureReports(ctx, PostureFilter{Since: time.Now().Add(time.Hour)}, Page{}); total != 0 {
			t.Errorf("since the future: %d", total)
		}
		if _, _, err := s.ListPostureReports(ctx, PostureFilter{Target: "bogus"}, Page{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad target filter: %v", err)
		}
		if _, err := s.SavePostureReport(ctx, PostureReport{Target: "laptop", Report: report, Summary: report}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad target: %v", err)
		}
		if _, err := s.SavePostureReport(ctx, PostureReport{Target: "node", Report: json.RawMessage("{"), Summary: report}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad JSON: %v", err)
		}
		if _, err := s.GetPostureReport(ctx, 999999); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing: %v", err)
		}
	})
}

// TestPostureReportExports: the records a report makes are queued in the
// transaction that stores it — for an export taking kind posture only —
// and a report whose records cannot be made is not stored either.
func TestPostureReportExports(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		report := json.RawMessage(`{"catalogueVersion":"2026.1"}`)
		r := PostureReport{Target: "cluster", Name: "prod", Catalogue: "2026.1", Report: report, Summary: json.RawMessage(`{}`)}
		items := func(id int64, at time.Time) ([]ExportItem, error) {
			return []ExportItem{{Kind: ExportKindPosture, Key: fmt.Sprintf("posture:%d", id), Source: "posture",
				Severity: alerts.SeverityHigh, Payload: json.RawMessage(fmt.Sprintf(`{"kind":"posture","id":"posture:%d"}`, id))}}, nil
		}
		if take, err := s.ExportsTake(ctx, ExportKindPosture); err != nil || take {
			t.Fatalf("no export yet takes posture: %v %v", take, err)
		}
		alertsOnly, err := s.CreateExport(ctx, Export{Name: "alerts", Type: "webhook", Enabled: true, Config: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		if take, _ := s.ExportsTake(ctx, ExportKindAlert); !take {
			t.Error("an export without kinds takes alerts")
		}
		if take, _ := s.ExportsTake(ctx, ExportKindPosture); take {
			t.Error("an export without kinds takes posture")
		}
		exp, err := s.CreateExport(ctx, Export{Name: "posture", Type: "webhook", Enabled: true, Config: json.RawMessage(`{}`),
			Filter: ExportFilter{Kinds: []string{ExportKindPosture}}})
		if err != nil {
			t.Fatal(err)
		}
		if take, _ := s.ExportsTake(ctx, ExportKindPosture); !take {
			t.Fatal("the posture export is not seen")
		}
		saved, err := s.SavePostureReportExporting(ctx, r, items)
		if err != nil {
			t.Fatal(err)
		}
		recs, _, err := s.LeaseExportBatch(ctx, exp.ID, "w", 10, time.Minute)
		if err != nil || len(recs) != 1 || recs[0].Key != fmt.Sprintf("posture:%d", saved.ID) {
			t.Fatalf("posture export's log: %+v %v", recs, err)
		}
		if recs, _, err := s.LeaseExportBatch(ctx, alertsOnly.ID, "w", 10, time.Minute); err != nil || len(recs) != 0 {
			t.Errorf("alerts-only export's log: %+v %v", recs, err)
		}
		last, err := s.LatestPostureReport(ctx, "cluster", "prod")
		if err != nil || last.ID != saved.ID || string(last.Report) != string(report) {
			t.Fatalf("latest: %+v %v", last, err)
		}
		if _, err := s.LatestPostureReport(ctx, "cluster", "staging"); !errors.Is(err, ErrNotFound) {
			t.Errorf("latest of a scope never reported: %v", err)
		}
		// Records that cannot be made: nothing is stored.
		boom := errors.New("boom")
		if _, err := s.SavePostureReportExporting(ctx, r, func(int64, time.Time) ([]ExportItem, error) { return nil, boom }); !errors.Is(err, boom) {
			t.Fatalf("failing records: %v", err)
		}
		if _, total, _ := s.ListPostureReports(ctx, PostureFilter{}, Page{}); total != 1 {
			t.Errorf("%d reports stored, want 1 (the failed one rolled back)", total)
		}
	})
}
