package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
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
