package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestAdmissionDecisions(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			s := openStore(t, b.DSN(t), Options{})
			at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
			ds := []AdmissionDecision{
				{ID: "d1", At: at, Cluster: "eu", Operation: "CREATE", Kind: "Deployment", Namespace: "prod", Name: "web", User: "alice",
					Verdict: "deny", Allowed: false, Violations: 2, PolicyVersion: "v1", Record: json.RawMessage(`{"id":"d1","violations":[{},{}]}`)},
				{ID: "d2", At: at.Add(time.Minute), Cluster: "eu", Operation: "CONNECT", Kind: "PodExecOptions", SubResource: "exec",
					Namespace: "prod", Name: "web-1", User: "bob", Verdict: "audit", Allowed: true, Record: json.RawMessage(`{"id":"d2"}`)},
			}
			acc, dups, err := s.InsertAdmissionDecisions(ctx, ds)
			if err != nil || acc != 2 || dups != 0 {
				t.Fatalf("insert: %d %d %v", acc, dups, err)
			}
			// A replayed batch stores nothing twice.
			acc, dups, err = s.InsertAdmissionDecisions(ctx, ds)
			if err != nil || acc != 0 || dups != 2 {
				t.Fatalf("replay: %d %d %v", acc, dups, err)
			}
			got, total, err := s.ListAdmissionDecisions(ctx, AdmissionFilter{}, Page{})
			if err != nil || total != 2 || got[0].ID != "d2" || got[1].ID != "d1" {
				t.Fatalf("list: %d %+v %v", total, got, err)
			}
			d := got[1]
			if d.Allowed || d.Violations != 2 || !d.At.Equal(at) || d.User != "alice" || string(d.Record) != `{"id":"d1","violations":[{},{}]}` {
				t.Errorf("round trip: %+v", d)
			}
			if !got[0].Allowed || got[0].SubResource != "exec" {
				t.Errorf("round trip: %+v", got[0])
			}
			for f, want := range map[AdmissionFilter]int{
				{Verdict: "deny"}: 1, {Namespace: "prod"}: 2, {Cluster: "us"}: 0, {Operation: "CONNECT"}: 1, {Since: at.Add(30 * time.Second)}: 1,
			} {
				if _, n, err := s.ListAdmissionDecisions(ctx, f, Page{}); err != nil || n != want {
					t.Errorf("filter %+v: %d, want %d (%v)", f, n, want, err)
				}
			}
			if _, _, err := s.ListAdmissionDecisions(ctx, AdmissionFilter{}, Page{Sort: "bogus"}); !errors.Is(err, ErrInvalid) {
				t.Errorf("bad sort: %v", err)
			}
			// A bad record rejects the whole batch.
			bad := []AdmissionDecision{{ID: "d3", At: at, Operation: "CREATE", Kind: "Pod", Verdict: "deny", Record: json.RawMessage(`{`)}}
			if _, _, err := s.InsertAdmissionDecisions(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("bad record: %v", err)
			}
		})
	}
}
